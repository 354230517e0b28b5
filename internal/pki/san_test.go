package pki_test

import (
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/internal/pki"
)

func TestParseSANs(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	name253 := strings.Repeat(long63+".", 3) + strings.Repeat("b", 61) // 3*64 + 61 = 253
	tests := map[string]struct {
		dns, ip, uri, email []string
		want                []string // Strings() of the result
		err                 string
	}{
		"ok/empty":                   {want: []string{}},
		"ok/dns lower-cased":         {dns: []string{"API.Example.COM"}, want: []string{"dns:api.example.com"}},
		"ok/wildcard":                {dns: []string{"*.svc.cluster.local"}, want: []string{"dns:*.svc.cluster.local"}},
		"ok/single label":            {dns: []string{"localhost"}, want: []string{"dns:localhost"}},
		"ok/internal tld":            {dns: []string{"db-1.prod.internal"}, want: []string{"dns:db-1.prod.internal"}},
		"ok/idn a-label":             {dns: []string{"xn--bcher-kva.example"}, want: []string{"dns:xn--bcher-kva.example"}},
		"ok/63-char label":           {dns: []string{long63 + ".example"}, want: []string{"dns:" + long63 + ".example"}},
		"ok/253 chars":               {dns: []string{name253}, want: []string{"dns:" + name253}},
		"ok/digits in labels":        {dns: []string{"1.2.3.example", "0a.example"}, want: []string{"dns:1.2.3.example", "dns:0a.example"}},
		"ok/duplicates dropped":      {dns: []string{"a.example", "A.EXAMPLE", "b.example"}, ip: []string{"10.0.0.1", "::ffff:10.0.0.1"}, want: []string{"dns:a.example", "dns:b.example", "ip:10.0.0.1"}},
		"ok/ipv4":                    {ip: []string{"10.0.0.1", "127.0.0.1"}, want: []string{"ip:10.0.0.1", "ip:127.0.0.1"}},
		"ok/ipv6 normalized":         {ip: []string{"2001:DB8:0:0::1"}, want: []string{"ip:2001:db8::1"}},
		"ok/ipv4-mapped unmapped":    {ip: []string{"::ffff:192.0.2.1"}, want: []string{"ip:192.0.2.1"}},
		"ok/spiffe id":               {uri: []string{"spiffe://trustgate.internal/ns/prod/sa/api"}, want: []string{"uri:spiffe://trustgate.internal/ns/prod/sa/api"}},
		"ok/spiffe trust domain":     {uri: []string{"spiffe://example.org"}, want: []string{"uri:spiffe://example.org"}},
		"ok/https uri":               {uri: []string{"https://api.example.com:8443/v1?x=1#frag"}, want: []string{"uri:https://api.example.com:8443/v1?x=1#frag"}},
		"ok/uri with ip host":        {uri: []string{"https://[2001:db8::1]/x"}, want: []string{"uri:https://[2001:db8::1]/x"}},
		"ok/urn":                     {uri: []string{"urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"}, want: []string{"uri:urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"}},
		"ok/email domain lower-case": {email: []string{"Ops.Team+pki@Example.COM"}, want: []string{"email:Ops.Team+pki@example.com"}},
		"ok/all types in order": {dns: []string{"a.example"}, ip: []string{"10.1.2.3"}, uri: []string{"spiffe://td/x"}, email: []string{"a@b.example"},
			want: []string{"dns:a.example", "ip:10.1.2.3", "uri:spiffe://td/x", "email:a@b.example"}},

		"fail/dns space":                 {dns: []string{"exa mple.com"}, err: `DNS name "exa mple.com" has invalid character ' ' (only letters, digits and hyphens)`},
		"fail/dns leading hyphen":        {dns: []string{"-a.com"}, err: `DNS name "-a.com" has label "-a" that starts or ends with a hyphen`},
		"fail/dns trailing hyphen":       {dns: []string{"a-.com"}, err: `label "a-" that starts or ends with a hyphen`},
		"fail/dns empty label":           {dns: []string{"a..b"}, err: `DNS name "a..b" has an empty label`},
		"fail/dns leading dot":           {dns: []string{".a.com"}, err: "has an empty label"},
		"fail/dns double wildcard":       {dns: []string{"*.*.a"}, err: `DNS name "*.*.a": a wildcard may only be the whole left-most label`},
		"fail/dns wildcard on tld":       {dns: []string{"*.com"}, err: `DNS name "*.com": a wildcard needs at least two labels after it`},
		"fail/dns bare wildcard":         {dns: []string{"*"}, err: "a wildcard needs at least two labels"},
		"fail/dns partial wildcard":      {dns: []string{"f*.example.com"}, err: "a wildcard may only be the whole left-most label"},
		"fail/dns inner wildcard":        {dns: []string{"a.*.example.com"}, err: "a wildcard may only be the whole left-most label"},
		"fail/dns too long":              {dns: []string{strings.Repeat("a.", 150) + "com"}, err: "is 303 characters long (maximum 253)"},
		"fail/dns 254 chars":             {dns: []string{name253 + "b"}, err: "is 254 characters long (maximum 253)"},
		"fail/dns label too long":        {dns: []string{long63 + "a.example"}, err: "has a label of 64 characters (maximum 63)"},
		"fail/dns trailing dot":          {dns: []string{"example.com."}, err: `DNS name "example.com." has a trailing dot`},
		"fail/dns underscore":            {dns: []string{"_acme.example.com"}, err: `has invalid character '_'`},
		"fail/dns unicode":               {dns: []string{"bücher.example"}, err: "is not ASCII; give internationalized names as A-labels (xn--...)"},
		"fail/dns bad a-label":           {dns: []string{"xn--zz.example"}, err: `label "xn--zz" that is not a valid IDNA A-label`},
		"fail/dns reserved label":        {dns: []string{"ab--cd.example"}, err: `label "ab--cd" with the reserved "--" in positions 3-4`},
		"fail/dns looks like ipv4":       {dns: []string{"1.2.3.4"}, err: `DNS name "1.2.3.4" has an all-numeric top-level label; put IP addresses in an IP SAN`},
		"fail/dns empty":                 {dns: []string{""}, err: "DNS name is empty"},
		"fail/dns slash":                 {dns: []string{"a/b.example"}, err: "invalid character '/'"},
		"fail/ip octet out of range":     {ip: []string{"1.2.3.999"}, err: `IP address "1.2.3.999" is not a valid IPv4 or IPv6 address`},
		"fail/ip short":                  {ip: []string{"10.0.0"}, err: "is not a valid IPv4 or IPv6 address"},
		"fail/ip leading zero":           {ip: []string{"010.0.0.1"}, err: "is not a valid IPv4 or IPv6 address"},
		"fail/ip hostname":               {ip: []string{"example.com"}, err: "is not a valid IPv4 or IPv6 address"},
		"fail/ip cidr":                   {ip: []string{"10.0.0.0/8"}, err: "is not a valid IPv4 or IPv6 address"},
		"fail/ip zone":                   {ip: []string{"fe80::1%eth0"}, err: `IP address "fe80::1%eth0" has a zone`},
		"fail/ip unspecified v4":         {ip: []string{"0.0.0.0"}, err: "is the unspecified address"},
		"fail/ip unspecified v6":         {ip: []string{"::"}, err: "is the unspecified address"},
		"fail/uri with spaces":           {uri: []string{"not a uri"}, err: `URI "not a uri" has character ' ' that RFC 3986 does not allow`},
		"fail/uri relative":              {uri: []string{"relative/path"}, err: `URI "relative/path" is not absolute: it has no scheme`},
		"fail/uri network-path":          {uri: []string{"//example.com/x"}, err: "is not absolute"},
		"fail/uri mailto":                {uri: []string{"mailto:ops@example.com"}, err: `URI "mailto:ops@example.com" is an email address; put it in an email SAN`},
		"fail/uri MAILTO":                {uri: []string{"MAILTO:ops@example.com"}, err: "is an email address"},
		"fail/uri no host":               {uri: []string{"https:///path"}, err: "has an authority without a host"},
		"fail/uri scheme only":           {uri: []string{"https:"}, err: "has no scheme-specific part"},
		"fail/uri bad host":              {uri: []string{"https://bad_host.example/"}, err: `has host "bad_host.example" that is neither a DNS name nor an IP address`},
		"fail/uri ip zone":               {uri: []string{"http://[fe80::1%25eth0]/"}, err: "has an IP address host with a zone"},
		"fail/uri unicode":               {uri: []string{"https://example.com/ü"}, err: "that RFC 3986 does not allow"},
		"fail/uri bad escape":            {uri: []string{"https://example.com/%zz"}, err: "cannot be parsed"},
		"fail/uri empty":                 {uri: []string{""}, err: "URI is empty"},
		"fail/uri too long":              {uri: []string{"https://example.com/" + strings.Repeat("a", 2100)}, err: "characters long (maximum 2048)"},
		"fail/spiffe upper trust domain": {uri: []string{"spiffe://Example.org/x"}, err: "has a trust domain with characters other than lower-case letters"},
		"fail/spiffe empty segment":      {uri: []string{"spiffe://example.org/a//b"}, err: `SPIFFE ID "spiffe://example.org/a//b" has an empty, "." or ".." path segment`},
		"fail/spiffe trailing slash":     {uri: []string{"spiffe://example.org/a/"}, err: "path segment"},
		"fail/spiffe dot dot":            {uri: []string{"spiffe://example.org/a/../b"}, err: "path segment"},
		"fail/spiffe query":              {uri: []string{"spiffe://example.org/x?q=1"}, err: "must not have a query or fragment"},
		"fail/spiffe port":               {uri: []string{"spiffe://example.org:8443/x"}, err: "must not have user info or a port"},
		"fail/spiffe user":               {uri: []string{"spiffe://me@example.org/x"}, err: "must not have user info or a port"},
		"fail/spiffe no trust domain":    {uri: []string{"spiffe:///x"}, err: "has an authority without a host"},
		"fail/spiffe opaque":             {uri: []string{"spiffe:example.org/x"}, err: `must start with "spiffe://"`},
		"fail/spiffe percent":            {uri: []string{"spiffe://example.org/a%41"}, err: "percent-encoded"},
		"fail/email mailto":              {email: []string{"mailto:ops@example.com"}, err: `email address "mailto:ops@example.com": give the bare address without "mailto:"`},
		"fail/email display name":        {email: []string{"Ops <ops@example.com>"}, err: "must be a bare addr-spec (local@domain)"},
		"fail/email quoted":              {email: []string{`"a b"@example.com`}, err: "must be a bare addr-spec"},
		"fail/email no at":               {email: []string{"ops.example.com"}, err: `email address "ops.example.com" has no '@'`},
		"fail/email no local":            {email: []string{"@example.com"}, err: "has a local part of 0 characters (want 1 to 64)"},
		"fail/email no domain":           {email: []string{"ops@"}, err: `email address "ops@" has an invalid domain: DNS name is empty`},
		"fail/email bad domain":          {email: []string{"ops@-x.example"}, err: "has an invalid domain"},
		"fail/email wildcard domain":     {email: []string{"ops@*.a.example"}, err: "a wildcard is not allowed here"},
		"fail/email two ats":             {email: []string{"a@b@example.com"}, err: "has character '@' in its local part"},
		"fail/email double dot":          {email: []string{"a..b@example.com"}, err: "has an empty dot-separated part before the '@'"},
		"fail/email long local":          {email: []string{strings.Repeat("a", 65) + "@example.com"}, err: "has a local part of 65 characters"},
		"fail/email unicode":             {email: []string{"jürgen@example.com"}, err: "in its local part that needs quoting"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			s, err := pki.ParseSANs(tt.dns, tt.ip, tt.uri, tt.email)
			wantErr(t, err, pki.ErrInvalid, tt.err)
			if tt.err != "" {
				return
			}
			if got := s.Strings(); !slices.Equal(got, tt.want) {
				t.Errorf("Strings() = %q, want %q", got, tt.want)
			}
			if s.Empty() != (len(tt.want) == 0) {
				t.Errorf("Empty() = %v with %d names", s.Empty(), len(tt.want))
			}
		})
	}
}

func TestParseSANStrings(t *testing.T) {
	tests := map[string]struct {
		in   []string
		want []string
		err  string
	}{
		"ok/round trip":    {in: []string{"email:a@b.example", "dns:A.example", "ip:10.0.0.1", "uri:spiffe://td/x"}, want: []string{"dns:a.example", "ip:10.0.0.1", "uri:spiffe://td/x", "email:a@b.example"}},
		"ok/empty":         {in: nil, want: []string{}},
		"fail/no prefix":   {in: []string{"a.example"}, err: `SAN "a.example" has no type prefix (want dns:, ip:, uri: or email:)`},
		"fail/bad type":    {in: []string{"rid:1.2.3"}, err: `SAN "rid:1.2.3" has unknown type "rid"`},
		"fail/bad name":    {in: []string{"dns:-x.example"}, err: "starts or ends with a hyphen"},
		"fail/upper types": {in: []string{"DNS:a.example"}, err: `unknown type "DNS"`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			s, err := pki.ParseSANStrings(tt.in)
			wantErr(t, err, pki.ErrInvalid, tt.err)
			if tt.err == "" && !slices.Equal(s.Strings(), tt.want) {
				t.Errorf("Strings() = %q, want %q", s.Strings(), tt.want)
			}
		})
	}
}

func TestSANsOf(t *testing.T) {
	u, _ := url.Parse("spiffe://td/x")
	c := &x509.Certificate{
		DNSNames:       []string{"a.example"},
		IPAddresses:    []net.IP{net.ParseIP("10.0.0.1").To4()},
		URIs:           []*url.URL{u},
		EmailAddresses: []string{"a@b.example"},
	}
	s := pki.SANsOf(c)
	want := []string{"dns:a.example", "ip:10.0.0.1", "uri:spiffe://td/x", "email:a@b.example"}
	if !slices.Equal(s.Strings(), want) {
		t.Fatalf("SANsOf = %q, want %q", s.Strings(), want)
	}
	s.DNS[0] = "changed.example"
	s.IP[0][0] = 99
	s.URI[0].Host = "changed"
	if c.DNSNames[0] != "a.example" || c.IPAddresses[0][0] != 10 || c.URIs[0].Host != "td" {
		t.Fatal("SANsOf shares storage with the certificate")
	}
	if !(pki.SANs{}).Empty() || pki.SANsOf(&x509.Certificate{}).Empty() == false {
		t.Fatal("zero SANs are not Empty")
	}
}

func TestNormalizeDNSName(t *testing.T) {
	if got, err := pki.NormalizeDNSName("WWW.Example.com", false); err != nil || got != "www.example.com" {
		t.Fatalf("NormalizeDNSName = %q, %v", got, err)
	}
	_, err := pki.NormalizeDNSName("*.a.example", false)
	wantErr(t, err, pki.ErrInvalid, "a wildcard is not allowed here")
}

// FuzzParseSANs checks ParseSANs' invariants: accepted DNS names are
// lower-case and normalize to themselves, IPs are in shortest form, and
// Strings() parses back to the same names (so the inventory and the
// certificate never disagree).
func FuzzParseSANs(f *testing.F) {
	f.Add("api.example.com", "10.0.0.1", "spiffe://td/ns/x", "ops@example.com")
	f.Add("*.svc.cluster.local", "::1", "https://a.example:8443/p?q#f", "a.b+c@x.example")
	f.Add("XN--BCHER-KVA.example", "::ffff:1.2.3.4", "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6", "mailto:a@b")
	f.Add("a..b", "1.2.3.999", "not a uri", "a@")
	f.Add("exa mple.com", "fe80::1%eth0", "http://[::1]:80/%41", "\"q\"@x")
	f.Add("localhost", "2001:db8::1", "foo:/a//b", "x@localhost")
	f.Fuzz(func(t *testing.T, dns, ip, uri, email string) {
		// Each kind alone, so that one bad value does not hide the
		// others from the invariants, then all together.
		checkSANInvariants(t, []string{dns}, nil, nil, nil)
		checkSANInvariants(t, nil, []string{ip}, nil, nil)
		checkSANInvariants(t, nil, nil, []string{uri}, nil)
		checkSANInvariants(t, nil, nil, nil, []string{email})
		checkSANInvariants(t, []string{dns}, []string{ip}, []string{uri}, []string{email})
	})
}

func checkSANInvariants(t *testing.T, dns, ip, uri, email []string) {
	t.Helper()
	s, err := pki.ParseSANs(dns, ip, uri, email)
	if err != nil {
		if !strings.HasPrefix(err.Error(), "pki: ") || !errors.Is(err, pki.ErrInvalid) {
			t.Fatalf("error is not a pki ErrInvalid: %v", err)
		}
		return
	}
	for _, d := range s.DNS {
		if d != strings.ToLower(d) {
			t.Fatalf("DNS name %q is not lower-case", d)
		}
		if again, err := pki.NormalizeDNSName(d, true); err != nil || again != d {
			t.Fatalf("DNS name %q re-normalizes to %q, %v", d, again, err)
		}
	}
	for _, a := range s.IP {
		if len(a) != net.IPv4len && len(a) != net.IPv6len || (len(a) == net.IPv6len && a.To4() != nil) {
			t.Fatalf("IP %v is not in shortest form (%d bytes)", a, len(a))
		}
	}
	typed := s.Strings()
	again, err := pki.ParseSANStrings(typed)
	if err != nil {
		t.Fatalf("Strings() %q does not parse back: %v", typed, err)
	}
	if !slices.Equal(again.Strings(), typed) {
		t.Fatalf("Strings() round trip: %q -> %q", typed, again.Strings())
	}
}
