package pki

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
)

func TestCheckNameConstraints(t *testing.T) {
	nc, err := ParseNameConstraints(NameConstraintsInput{
		PermittedDNS: []string{"svc.internal"}, ExcludedDNS: []string{"admin.svc.internal"},
		PermittedIP: []string{"10.20.0.0/16", "fd00::/8"}, PermittedURI: []string{".prod.example", "exact.example"},
		PermittedEmail: []string{"example.com", ".corp.example", "boss@other.example"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{Subject: pkix.Name{CommonName: "Confined"}}
	nc.apply(ca)
	if !ca.PermittedDNSDomainsCritical {
		t.Fatal("name constraints must be critical")
	}
	tests := []struct {
		name string
		dns  []string
		ip   []string
		uri  []string
		mail []string
		cn   string
		ok   bool
	}{
		{"apex", []string{"svc.internal"}, nil, nil, nil, "", true},
		{"below", []string{"a.b.svc.internal"}, nil, nil, nil, "", true},
		{"excluded", []string{"admin.svc.internal"}, nil, nil, nil, "", false},
		{"below excluded", []string{"x.admin.svc.internal"}, nil, nil, nil, "", false},
		{"suffix trick", []string{"evilsvc.internal"}, nil, nil, nil, "", false},
		{"case", []string{"API.SVC.INTERNAL"}, nil, nil, nil, "", true},
		{"ipv4 in", nil, []string{"10.20.255.1"}, nil, nil, "", true},
		{"ipv4 out", nil, []string{"10.21.0.1"}, nil, nil, "", false},
		{"ipv6 in", nil, []string{"fd12::1"}, nil, nil, "", true},
		{"ipv6 out", nil, []string{"2001:db8::1"}, nil, nil, "", false},
		{"uri below", nil, nil, []string{"spiffe://a.prod.example/x"}, nil, "", true},
		{"uri dot needs a label", nil, nil, []string{"spiffe://prod.example/x"}, nil, "", false},
		{"uri exact", nil, nil, []string{"https://exact.example/p"}, nil, "", true},
		{"uri exact not below", nil, nil, []string{"https://a.exact.example/p"}, nil, "", false},
		{"mail host", nil, nil, nil, []string{"a@example.com"}, "", true},
		{"mail below", nil, nil, nil, []string{"a@x.corp.example"}, "", true},
		{"mail mailbox", nil, nil, nil, []string{"boss@other.example"}, "", true},
		{"mail other mailbox", nil, nil, nil, []string{"intern@other.example"}, "", false},
		{"cn host outside", []string{"a.svc.internal"}, nil, nil, nil, "evil.example", false},
		{"cn not a host", []string{"a.svc.internal"}, nil, nil, nil, "Payments API (prod)", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sans, err := ParseSANs(tt.dns, tt.ip, tt.uri, tt.mail)
			if err != nil {
				t.Fatal(err)
			}
			err = CheckNameConstraints([]*x509.Certificate{{Subject: pkix.Name{CommonName: "Root"}}, ca}, sans, tt.cn)
			if (err == nil) != tt.ok {
				t.Fatalf("CheckNameConstraints = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func TestParseNameConstraintsRefuses(t *testing.T) {
	for name, in := range map[string]NameConstraintsInput{
		"wildcard dns": {PermittedDNS: []string{"*.example"}},
		"empty dns":    {ExcludedDNS: []string{""}},
		"bad cidr":     {PermittedIP: []string{"10.0.0.1"}},
		"bad uri host": {PermittedURI: []string{"https://x"}},
		"bad mailbox":  {PermittedEmail: []string{"@example.com"}},
	} {
		if _, err := ParseNameConstraints(in); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if nc, err := ParseNameConstraints(NameConstraintsInput{}); nc != nil || err != nil {
		t.Errorf("no subtrees: %v %v, want nil", nc, err)
	}
}
