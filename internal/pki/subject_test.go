package pki_test

import (
	"crypto/x509/pkix"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/trustgate/trustgate/internal/pki"
)

func TestParseSubject(t *testing.T) {
	tests := map[string]struct {
		in   string
		want pkix.Name
		err  string
	}{
		"ok/cn": {in: "CN=api", want: pkix.Name{CommonName: "api"}},
		"ok/all attributes": {in: "cn=api, o=Acme, ou=Ops, c=us, st=Oregon, l=Portland, street=1 Main St, postalCode=97201, serialNumber=42",
			want: pkix.Name{CommonName: "api", Organization: []string{"Acme"}, OrganizationalUnit: []string{"Ops"}, Country: []string{"US"},
				Province: []string{"Oregon"}, Locality: []string{"Portland"}, StreetAddress: []string{"1 Main St"}, PostalCode: []string{"97201"}, SerialNumber: "42"}},
		"ok/escapes":          {in: `CN=a\,b\+c\=d\\e`, want: pkix.Name{CommonName: `a,b+c=d\e`}},
		"ok/repeated o ou":    {in: "O=A,O=B,OU=X,OU=Y", want: pkix.Name{Organization: []string{"A", "B"}, OrganizationalUnit: []string{"X", "Y"}}},
		"ok/spaces trimmed":   {in: "  CN =  spaced out  ,O=x", want: pkix.Name{CommonName: "spaced out", Organization: []string{"x"}}},
		"ok/escaped space":    {in: `CN=trailing\ `, want: pkix.Name{CommonName: "trailing "}},
		"ok/utf-8":            {in: "CN=Zürich Büro,L=São Paulo", want: pkix.Name{CommonName: "Zürich Büro", Locality: []string{"São Paulo"}}},
		"ok/64-char cn":       {in: "CN=" + strings.Repeat("x", 64), want: pkix.Name{CommonName: strings.Repeat("x", 64)}},
		"ok/semicolon kept":   {in: "CN=a;b", want: pkix.Name{CommonName: "a;b"}},
		"fail/empty":          {in: "", err: "pki: subject is empty"},
		"fail/blank":          {in: "   ", err: "subject is empty"},
		"fail/no equals":      {in: "CN", err: `subject "CN": attribute "CN" has no '='`},
		"fail/empty value":    {in: "CN=", err: `subject "CN=": attribute CN has an empty value`},
		"fail/blank value":    {in: "CN=  ,O=x", err: "attribute CN has an empty value"},
		"fail/unknown":        {in: "CN=x,X=1", err: `subject "CN=x,X=1" has unknown attribute "X" (known: CN, O, OU, C, ST, L, STREET, POSTALCODE, SERIALNUMBER)`},
		"fail/email":          {in: "EMAILADDRESS=a@b.example", err: `unknown attribute "EMAILADDRESS"`},
		"fail/two cns":        {in: "CN=a,CN=b", err: "has attribute CN more than once"},
		"fail/two countries":  {in: "C=US,C=DE", err: "has attribute C more than once"},
		"fail/country long":   {in: "C=USA", err: `country "USA" must be a two-letter ISO 3166 code such as US`},
		"fail/country digit":  {in: "C=1A", err: "must be a two-letter ISO 3166 code"},
		"fail/multi-valued":   {in: "CN=a+O=b", err: "has an unescaped '+': multi-valued RDNs are not supported"},
		"fail/bare equals":    {in: "CN=a=b", err: `has an unescaped '=' in a value (escape it as \=)`},
		"fail/lone backslash": {in: `CN=a\`, err: "ends with a lone backslash"},
		"fail/bad escape":     {in: `CN=a\q`, err: "backslash may only escape one of"},
		"fail/escape in name": {in: `C\N=x`, err: "has a backslash in an attribute name"},
		"fail/openssl form":   {in: "/CN=x/O=y", err: "use the comma-separated form CN=x,O=y"},
		"fail/stray comma":    {in: "CN=a,,O=b", err: "has an empty attribute (stray ',')"},
		"fail/trailing comma": {in: "CN=a,", err: "stray ','"},
		"fail/no name":        {in: "=x", err: "has a value without an attribute name"},
		"fail/cn too long":    {in: "CN=" + strings.Repeat("x", 65), err: "attribute CN has 65 characters (maximum 64)"},
		"fail/postal long":    {in: "POSTALCODE=" + strings.Repeat("1", 17), err: "attribute POSTALCODE has 17 characters (maximum 16)"},
		"fail/control":        {in: "CN=a\x01b", err: "attribute CN has a control character"},
		"fail/newline":        {in: "CN=a\nb", err: "has a control character"},
		"fail/bad utf-8":      {in: "CN=\xff", err: "is not valid UTF-8"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := pki.ParseSubject(tt.in)
			wantErr(t, err, pki.ErrInvalid, tt.err)
			if tt.err == "" && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseSubject(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzParseSubject checks that an accepted subject has only non-empty
// values free of control characters, within the RFC 5280 bounds, and a
// two-letter upper-case country.
func FuzzParseSubject(f *testing.F) {
	for _, s := range []string{"CN=api", "cn=a, o=b, c=us", `CN=a\,b\+c`, "CN=a+O=b", "/CN=x", "C=USA", "CN=\xff", "O=A,O=B,OU=\\ x\\ "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := pki.ParseSubject(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "pki: ") {
				t.Fatalf("error without pki prefix: %v", err)
			}
			return
		}
		values := append([]string{n.CommonName, n.SerialNumber}, n.Organization...)
		values = append(values, n.OrganizationalUnit...)
		values = append(values, n.Province...)
		values = append(values, n.Locality...)
		for _, v := range values {
			for _, r := range v {
				if r < 0x20 || r == 0x7f {
					t.Fatalf("value %q has a control character", v)
				}
			}
		}
		if len(n.ToRDNSequence()) == 0 {
			t.Fatal("accepted an empty subject")
		}
		if utf8.RuneCountInString(n.CommonName) > 64 {
			t.Fatalf("CN %q over 64 characters", n.CommonName)
		}
		for _, c := range n.Country {
			if len(c) != 2 || c != strings.ToUpper(c) {
				t.Fatalf("country %q is not two upper-case letters", c)
			}
		}
	})
}
