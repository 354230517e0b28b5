package gateway

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// parseXFCC reads an X-Forwarded-Client-Cert value in Envoy's grammar:
// elements separated by ',', key=value pairs by ';', values either bare or
// double-quoted with '\' escapes. Quoted values are returned unescaped
// (not percent-decoded).
func parseXFCC(s string) ([][][2]string, error) {
	var elems [][][2]string
	var cur [][2]string
	i := 0
	for {
		// key
		j := i
		for j < len(s) && s[j] != '=' && s[j] != ';' && s[j] != ',' && s[j] != '"' {
			j++
		}
		if j >= len(s) || s[j] != '=' || j == i {
			return nil, errors.New("missing key=")
		}
		key := s[i:j]
		i = j + 1
		var val strings.Builder
		if i < len(s) && s[i] == '"' {
			i++
			closed := false
			for i < len(s) {
				c := s[i]
				if c == '\\' && i+1 < len(s) {
					val.WriteByte(s[i+1])
					i += 2
					continue
				}
				if c == '"' {
					closed = true
					i++
					break
				}
				val.WriteByte(c)
				i++
			}
			if !closed {
				return nil, errors.New("unterminated quote")
			}
		} else {
			for i < len(s) && s[i] != ';' && s[i] != ',' {
				if s[i] == '"' || s[i] == '=' {
					return nil, errors.New("special character in a bare value")
				}
				val.WriteByte(s[i])
				i++
			}
		}
		cur = append(cur, [2]string{key, val.String()})
		if i >= len(s) {
			elems = append(elems, cur)
			return elems, nil
		}
		switch s[i] {
		case ';':
		case ',':
			elems = append(elems, cur)
			cur = nil
		default:
			return nil, errors.New("junk after a value")
		}
		i++
	}
}

// validHeaderValue is the check net/http applies before sending a header.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func TestXFCCFormatParses(t *testing.T) {
	subject := `CN=svc \"a\"\, b\; c\+d=e,O=Exämple`
	v := xfccFormat("00ff", []byte("-----BEGIN CERTIFICATE-----\nAB+/=\n-----END CERTIFICATE-----\n"), subject,
		[]string{"spiffe://prod.internal/ns/a;b,c=d"}, []string{"a.example", `we"ird\`})
	if strings.ContainsAny(v[strings.Index(v, "Cert="):strings.Index(v, ";Subject")], "+/ \n") {
		t.Errorf("Cert is not strictly escaped: %s", v)
	}
	elems, err := parseXFCC(v)
	if err != nil || len(elems) != 1 {
		t.Fatalf("parse %q: %v (%d elements)", v, err, len(elems))
	}
	want := [][2]string{{"Hash", "00ff"}, {"Cert", "-----BEGIN%20CERTIFICATE-----%0AAB%2B%2F%3D%0A-----END%20CERTIFICATE-----%0A"},
		{"Subject", subject}, {"URI", "spiffe://prod.internal/ns/a;b,c=d"}, {"DNS", "a.example"}, {"DNS", `we"ird\`}}
	if len(elems[0]) != len(want) {
		t.Fatalf("pairs = %q", elems[0])
	}
	for i, p := range elems[0] {
		if p != want[i] {
			t.Errorf("pair %d = %q, want %q", i, p, want[i])
		}
	}
}

// FuzzXFCCRoundTrip: whatever the certificate's names hold, the header is a
// valid header value, parses as one element, and gives every value back.
func FuzzXFCCRoundTrip(f *testing.F) {
	f.Add("CN=a,O=b", "spiffe://x/y", "a.example", []byte("pem+/="))
	f.Add(`CN=\"q\"`, `u"r;i,=`, "d\x00n\ns", []byte{0, 1, 255})
	f.Fuzz(func(t *testing.T, subject, uri, dns string, pemBytes []byte) {
		v := xfccFormat("abcd", pemBytes, subject, []string{uri}, []string{dns})
		if !validHeaderValue(v) {
			t.Fatalf("invalid header value %q", v)
		}
		elems, err := parseXFCC(v)
		if err != nil || len(elems) != 1 || len(elems[0]) != 5 {
			t.Fatalf("parse %q: %v %q", v, err, elems)
		}
		got := elems[0]
		dec := func(s string) string {
			d, err := url.PathUnescape(s)
			if err != nil {
				t.Fatalf("unescape %q: %v", s, err)
			}
			return d
		}
		if got[0] != [2]string{"Hash", "abcd"} {
			t.Errorf("hash %q", got[0])
		}
		if got[1][0] != "Cert" || dec(got[1][1]) != string(pemBytes) || strings.Contains(got[1][1], "+") {
			t.Errorf("cert %q", got[1])
		}
		if got[2][0] != "Subject" || dec(got[2][1]) != subject {
			t.Errorf("subject %q, want %q", got[2], subject)
		}
		if got[3][0] != "URI" || dec(got[3][1]) != uri {
			t.Errorf("uri %q, want %q", got[3], uri)
		}
		if got[4][0] != "DNS" || dec(got[4][1]) != dns {
			t.Errorf("dns %q, want %q", got[4], dns)
		}
	})
}

// FuzzALBEscape: ALB's encoding percent-decodes back to the input, keeps
// only unreserved characters and "+=/", and is a valid header value.
func FuzzALBEscape(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB+/==\n-----END CERTIFICATE-----\n"))
	f.Add([]byte{0, '%', '+', 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		s := albEscape(b)
		d, err := url.PathUnescape(s)
		if err != nil || d != string(b) {
			t.Fatalf("PathUnescape(%q) = %q, %v", s, d, err)
		}
		for i := 0; i < len(s); i++ {
			if c := s[i]; !unreserved(c) && !strings.ContainsRune("+=/%", rune(c)) {
				t.Fatalf("%q left in %q", c, s)
			}
		}
		if strings.Contains(string(b), " ") && strings.Contains(s, " ") {
			t.Fatal("space left")
		}
	})
}

// unescapeDNValue reverses escapeDNValue (RFC 4514 §3 escapes).
func unescapeDNValue(s string) (string, error) {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b = append(b, s[i])
			continue
		}
		if i+1 >= len(s) {
			return "", errors.New("trailing backslash")
		}
		if i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			n, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			b = append(b, byte(n))
			i += 2
			continue
		}
		b = append(b, s[i+1])
		i++
	}
	return string(b), nil
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' || 'a' <= c && c <= 'f' }

// FuzzDNValue: an escaped attribute value has no control characters, no
// unescaped special, reads back to the original, and is valid UTF-8.
func FuzzDNValue(f *testing.F) {
	for _, s := range []string{"svc-a", ` lead`, `trail `, "#x", `a,b+c;d"e<f>g\h`, "nul\x00ctl\n", "bad\xffutf8", "Exämple"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var b strings.Builder
		escapeDNValue(&b, s)
		e := b.String()
		if !validHeaderValue(e) || !utf8.ValidString(e) {
			t.Fatalf("escaped %q to %q", s, e)
		}
		for i := 0; i < len(e); i++ {
			if e[i] == '\\' {
				i++
				if i < len(e) && isHex(e[i]) && i+1 < len(e) && isHex(e[i+1]) {
					i++
				}
				continue
			}
			if strings.IndexByte(`,+;"<>`, e[i]) >= 0 {
				t.Fatalf("unescaped %q in %q", e[i], e)
			}
		}
		got, err := unescapeDNValue(e)
		if err != nil || got != s {
			t.Fatalf("round trip %q -> %q -> %q (%v)", s, e, got, err)
		}
	})
}

func TestFormatDN(t *testing.T) {
	name := func(rdns ...[]pkix.AttributeTypeAndValue) []byte {
		var seq pkix.RDNSequence
		for _, r := range rdns {
			seq = append(seq, r)
		}
		b, err := asn1.Marshal(seq)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	atv := func(oid asn1.ObjectIdentifier, v any) []pkix.AttributeTypeAndValue {
		return []pkix.AttributeTypeAndValue{{Type: oid, Value: v}}
	}
	cn, o, c := asn1.ObjectIdentifier{2, 5, 4, 3}, asn1.ObjectIdentifier{2, 5, 4, 10}, asn1.ObjectIdentifier{2, 5, 4, 6}
	ou := asn1.ObjectIdentifier{2, 5, 4, 11}
	tests := []struct {
		name string
		der  []byte
		want string
	}{
		{"ok/order-reversed", name(atv(c, "US"), atv(o, "Example"), atv(cn, "svc-a")), "CN=svc-a,O=Example,C=US"},
		{"ok/escapes", name(atv(cn, `a,b+c;"d"<e>\`)), `CN=a\,b\+c\;\"d\"\<e\>\\`},
		{"ok/leading-trailing", name(atv(cn, " #x ")), `CN=\ #x\ `},
		{"ok/leading-hash", name(atv(cn, "#x")), `CN=\#x`},
		{"ok/control", name(atv(cn, "a\nb")), `CN=a\0Ab`},
		{"ok/multi-valued", name(append(atv(ou, "a"), atv(cn, "b")...)), "CN=b+OU=a"},
		{"ok/unknown-oid", name(atv(asn1.ObjectIdentifier{1, 2, 3}, "x")), "1.2.3=#130178"},
		{"ok/utf8", name(atv(o, "Exämple")), "O=Exämple"},
		{"fail/not-a-name", []byte{0x05, 0x00}, "#0500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := formatDN(tt.der); got != tt.want {
				t.Errorf("formatDN = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSerialHex(t *testing.T) {
	for n, want := range map[int64]string{0: "00", 10: "0A", 255: "FF", 256: "0100", -5: "-05"} {
		if got := serialHex(big.NewInt(n)); got != want {
			t.Errorf("serialHex(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestIsIdentityHeader(t *testing.T) {
	for name, want := range map[string]bool{
		"X-Amzn-Mtls-Clientcert":               true,
		"x-amzn-mtls-clientcert-subject":       true,
		"X-AMZN-MTLS-ANYTHING":                 true,
		"X_Amzn_Mtls_Clientcert_Leaf":          true,
		"X-Forwarded-Client-Cert":              true,
		"x_forwarded_client_cert":              true,
		"X_Forwarded_Proto":                    true,
		"x_forwarded_for":                      true,
		"X-Forwarded-For":                      false, // appended to, not dropped
		"X-Amzn-Trace-Id":                      false,
		"Authorization":                        false,
		"X-Amzn-Mtls":                          false,
		"X-Amzn-Mtls-Clientcert-Serial-Number": true,
	} {
		if got := isIdentityHeader(name); got != want {
			t.Errorf("isIdentityHeader(%q) = %v, want %v", name, got, want)
		}
	}
	h := http.Header{"X-Amzn-Mtls-Clientcert-Subject": {"x"}, "Keep": {"y"}, "x_amzn_mtls_clientcert": {"z"}}
	stripIdentityHeaders(h)
	if len(h) != 1 || h.Get("Keep") != "y" {
		t.Errorf("after strip: %v", h)
	}
}
