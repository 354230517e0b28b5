package pki_test

import (
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/pki"
)

func TestLeafTemplate(t *testing.T) {
	server, _ := pki.LookupProfile("server")
	client, _ := pki.LookupProfile("client")
	ca, _ := pki.LookupProfile("subordinate-ca")
	pub := testKey(t, pki.ECP256, 2).Public()
	sans := func(dns, ip, uri []string) pki.SANs {
		s, err := pki.ParseSANs(dns, ip, uri, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// base returns a valid server request; cases change one thing.
	base := func() pki.LeafRequest {
		return pki.LeafRequest{
			Profile:   server,
			Subject:   pkix.Name{CommonName: "api.example.com"},
			SANs:      sans([]string{"api.example.com"}, nil, nil),
			PublicKey: pub,
			Serial:    big.NewInt(42),
			NotBefore: testNow,
			NotAfter:  testNow.Add(90 * pki.Day),
			URLs:      urlsFor("inter"),
		}
	}
	tests := map[string]struct {
		mod     func(r *pki.LeafRequest)
		err     string
		wantCN  string
		wantDNS []string
		wantIP  []string
	}{
		"ok/server":                  {mod: func(r *pki.LeafRequest) {}, wantCN: "api.example.com", wantDNS: []string{"api.example.com"}},
		"ok/cn added as dns san":     {mod: func(r *pki.LeafRequest) { r.SANs = sans([]string{"www.example.com"}, nil, nil) }, wantCN: "api.example.com", wantDNS: []string{"www.example.com", "api.example.com"}},
		"ok/cn lower-cased to match": {mod: func(r *pki.LeafRequest) { r.Subject.CommonName = "API.Example.COM" }, wantCN: "api.example.com", wantDNS: []string{"api.example.com"}},
		"ok/cn only":                 {mod: func(r *pki.LeafRequest) { r.SANs = pki.SANs{} }, wantCN: "api.example.com", wantDNS: []string{"api.example.com"}},
		"ok/ip cn added as ip san":   {mod: func(r *pki.LeafRequest) { r.Subject.CommonName = "10.0.0.1" }, wantCN: "10.0.0.1", wantDNS: []string{"api.example.com"}, wantIP: []string{"10.0.0.1"}},
		"ok/wildcard cn":             {mod: func(r *pki.LeafRequest) { r.Subject.CommonName = "*.example.com" }, wantCN: "*.example.com", wantDNS: []string{"api.example.com", "*.example.com"}},
		"ok/no cn":                   {mod: func(r *pki.LeafRequest) { r.Subject = pkix.Name{} }, wantDNS: []string{"api.example.com"}},
		"ok/client any cn": {mod: func(r *pki.LeafRequest) {
			r.Profile, r.Subject, r.SANs = client, pkix.Name{CommonName: "agent 7 (ops)"}, pki.SANs{}
		}, wantCN: "agent 7 (ops)"},
		"ok/client uri only": {mod: func(r *pki.LeafRequest) {
			r.Profile, r.Subject, r.SANs = client, pkix.Name{}, sans(nil, nil, []string{"spiffe://td/a"})
		}},
		"fail/no profile":         {mod: func(r *pki.LeafRequest) { r.Profile = nil }, err: "pki: leaf request has no profile"},
		"fail/ca profile":         {mod: func(r *pki.LeafRequest) { r.Profile = ca }, err: `profile "subordinate-ca" is a CA profile; build CA certificates with CATemplate`},
		"fail/no key":             {mod: func(r *pki.LeafRequest) { r.PublicKey = nil }, err: "public key is missing"},
		"fail/weak key":           {mod: func(r *pki.LeafRequest) { r.PublicKey = &rsa.PublicKey{N: oddModulus(1024), E: 65537} }, err: "RSA key of 1024 bits is too small (minimum 2048)"},
		"fail/no serial":          {mod: func(r *pki.LeafRequest) { r.Serial = nil }, err: "serial number is missing"},
		"fail/zero serial":        {mod: func(r *pki.LeafRequest) { r.Serial = big.NewInt(0) }, err: "serial number 0 is not positive"},
		"fail/negative serial":    {mod: func(r *pki.LeafRequest) { r.Serial = big.NewInt(-5) }, err: "serial number -5 is not positive"},
		"fail/serial too long":    {mod: func(r *pki.LeafRequest) { r.Serial = new(big.Int).Lsh(big.NewInt(1), 159) }, err: "does not fit in 20 DER octets"},
		"fail/no notBefore":       {mod: func(r *pki.LeafRequest) { r.NotBefore = time.Time{} }, err: "validity needs both notBefore and notAfter"},
		"fail/reversed":           {mod: func(r *pki.LeafRequest) { r.NotAfter = r.NotBefore.Add(-time.Hour) }, err: "notAfter 2026-06-01T11:00:00Z is not after notBefore 2026-06-01T12:00:00Z"},
		"fail/too long":           {mod: func(r *pki.LeafRequest) { r.NotAfter = r.NotBefore.Add(400 * pki.Day) }, err: `validity 400d exceeds the maximum of 398d for profile "server"`},
		"fail/too short":          {mod: func(r *pki.LeafRequest) { r.NotAfter = r.NotBefore.Add(30 * time.Second) }, err: "validity 30s is below the minimum of 1m0s"},
		"fail/server without dns": {mod: func(r *pki.LeafRequest) { r.Subject, r.SANs = pkix.Name{}, sans(nil, nil, []string{"spiffe://td/a"}) }, err: `profile "server" needs at least one DNS or IP SAN`},
		"fail/server cn not a name": {mod: func(r *pki.LeafRequest) { r.Subject.CommonName = "API Server" },
			err: `common name "API Server" of a server certificate must be a host name or IP address, since it must also be a SAN: DNS name "API Server" has invalid character ' '`},
		"fail/nothing":        {mod: func(r *pki.LeafRequest) { r.Profile, r.Subject, r.SANs = client, pkix.Name{}, pki.SANs{} }, err: "certificate needs a subject or at least one SAN"},
		"fail/hand-built san": {mod: func(r *pki.LeafRequest) { r.SANs = pki.SANs{DNS: []string{"bad_name.example"}} }, err: `DNS name "bad_name.example" has invalid character '_'`},
		"fail/hand-built ip":  {mod: func(r *pki.LeafRequest) { r.SANs.IP = []net.IP{{1, 2, 3}} }, err: "is not a valid IPv4 or IPv6 address"},
		"fail/https crl":      {mod: func(r *pki.LeafRequest) { r.URLs.CRL = []string{"https://ca.example/crl"} }, err: `CRL distribution point "https://ca.example/crl" must be an absolute http:// URL`},
		"fail/ldap aia":       {mod: func(r *pki.LeafRequest) { r.URLs.IssuingCA = []string{"ldap://ca.example/cn=ca"} }, err: `issuing CA URL "ldap://ca.example/cn=ca" must be an absolute http:// URL`},
		"fail/relative ocsp":  {mod: func(r *pki.LeafRequest) { r.URLs.OCSP = []string{"/ocsp"} }, err: `OCSP URL "/ocsp" must be an absolute http:// URL`},
		"fail/url with space": {mod: func(r *pki.LeafRequest) { r.URLs.CRL = []string{"http://ca.example/a b"} }, err: "must be an absolute http:// URL"},
		"fail/url bad host":   {mod: func(r *pki.LeafRequest) { r.URLs.CRL = []string{"http://-ca.example/crl"} }, err: `CRL distribution point "http://-ca.example/crl" is not a valid URL`},
		"fail/url twice":      {mod: func(r *pki.LeafRequest) { r.URLs.CRL = []string{"http://ca.example/crl", "http://ca.example/crl"} }, err: "is listed twice"},
		"fail/url user info":  {mod: func(r *pki.LeafRequest) { r.URLs.OCSP = []string{"http://u:p@ca.example/"} }, err: "must be an absolute http:// URL"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			r := base()
			tt.mod(&r)
			tmpl, err := pki.LeafTemplate(r)
			wantErr(t, err, pki.ErrInvalid, tt.err)
			if tt.err != "" {
				return
			}
			if tmpl.Subject.CommonName != tt.wantCN {
				t.Errorf("CN = %q, want %q", tmpl.Subject.CommonName, tt.wantCN)
			}
			if !slices.Equal(tmpl.DNSNames, tt.wantDNS) {
				t.Errorf("DNS SANs = %q, want %q", tmpl.DNSNames, tt.wantDNS)
			}
			var ips []string
			for _, ip := range tmpl.IPAddresses {
				ips = append(ips, ip.String())
			}
			if !slices.Equal(ips, tt.wantIP) {
				t.Errorf("IP SANs = %q, want %q", ips, tt.wantIP)
			}
			if tmpl.IsCA || !tmpl.BasicConstraintsValid || len(tmpl.SubjectKeyId) != 20 {
				t.Errorf("CA=%v BC valid=%v SKI=%x", tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.SubjectKeyId)
			}
		})
	}

	t.Run("ok/times truncated and UTC", func(t *testing.T) {
		r := base()
		loc := time.FixedZone("X", 3600)
		r.NotBefore = testNow.In(loc).Add(500 * time.Millisecond)
		r.NotAfter = r.NotBefore.Add(90 * pki.Day)
		tmpl, err := pki.LeafTemplate(r)
		if err != nil {
			t.Fatal(err)
		}
		if !tmpl.NotBefore.Equal(testNow) || tmpl.NotBefore.Location() != time.UTC {
			t.Errorf("NotBefore = %v, want %v", tmpl.NotBefore, testNow)
		}
	})
	t.Run("ok/request not aliased", func(t *testing.T) {
		r := base()
		tmpl, err := pki.LeafTemplate(r)
		if err != nil {
			t.Fatal(err)
		}
		r.URLs.CRL[0] = "http://changed.example/"
		r.Serial.SetInt64(7)
		if tmpl.CRLDistributionPoints[0] == "http://changed.example/" || tmpl.SerialNumber.Int64() != 42 {
			t.Error("template shares storage with the request")
		}
	})
	t.Run("ok/key usage by key type", func(t *testing.T) {
		for kt, want := range map[pki.KeyType]x509.KeyUsage{
			pki.ECP256:  x509.KeyUsageDigitalSignature,
			pki.RSA2048: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			pki.Ed25519: x509.KeyUsageDigitalSignature,
		} {
			r := base()
			r.PublicKey = testKey(t, kt, 2).Public()
			tmpl, err := pki.LeafTemplate(r)
			if err != nil {
				t.Fatal(err)
			}
			if tmpl.KeyUsage != want {
				t.Errorf("%s server key usage = %b, want %b", kt, tmpl.KeyUsage, want)
			}
			r.Profile = client
			if tmpl, _ = pki.LeafTemplate(r); tmpl.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("%s client key usage = %b, want digitalSignature", kt, tmpl.KeyUsage)
			}
		}
	})
}

func TestCATemplate(t *testing.T) {
	pub := testKey(t, pki.ECP384, 1).Public()
	base := func() pki.CARequest {
		return pki.CARequest{
			Subject:    pkix.Name{CommonName: "Issuing CA"},
			PublicKey:  pub,
			Serial:     big.NewInt(1),
			NotBefore:  testNow,
			NotAfter:   testNow.Add(5 * pki.Year),
			MaxPathLen: 0,
			URLs:       urlsFor("root"),
		}
	}
	tests := map[string]struct {
		mod      func(r *pki.CARequest)
		err      string
		pathLen  int
		zero     bool
		policies int
	}{
		"ok/subordinate path 0": {mod: func(r *pki.CARequest) {}, pathLen: 0, zero: true, policies: 1},
		"ok/subordinate path 2": {mod: func(r *pki.CARequest) { r.MaxPathLen = 2 }, pathLen: 2, policies: 1},
		"ok/root":               {mod: func(r *pki.CARequest) { r.MaxPathLen, r.URLs = -1, pki.URLs{} }, pathLen: -1},
		"fail/no cn":            {mod: func(r *pki.CARequest) { r.Subject = pkix.Name{Organization: []string{"Acme"}} }, err: `CA subject "O=Acme" has no common name (CN)`},
		"fail/blank cn":         {mod: func(r *pki.CARequest) { r.Subject.CommonName = "  " }, err: "has no common name"},
		"fail/path length":      {mod: func(r *pki.CARequest) { r.MaxPathLen = -2 }, err: "CA path length -2 is invalid"},
		"fail/no key":           {mod: func(r *pki.CARequest) { r.PublicKey = nil }, err: "public key is missing"},
		"fail/no serial":        {mod: func(r *pki.CARequest) { r.Serial = nil }, err: "serial number is missing"},
		"fail/reversed":         {mod: func(r *pki.CARequest) { r.NotAfter = r.NotBefore }, err: "is not after notBefore"},
		"fail/bad url":          {mod: func(r *pki.CARequest) { r.URLs.CRL = []string{"ftp://x.example/"} }, err: "must be an absolute http:// URL"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			r := base()
			tt.mod(&r)
			tmpl, err := pki.CATemplate(r)
			wantErr(t, err, pki.ErrInvalid, tt.err)
			if tt.err != "" {
				return
			}
			if !tmpl.IsCA || !tmpl.BasicConstraintsValid || tmpl.MaxPathLen != tt.pathLen || tmpl.MaxPathLenZero != tt.zero {
				t.Errorf("CA=%v pathlen=%d zero=%v, want %d %v", tmpl.IsCA, tmpl.MaxPathLen, tmpl.MaxPathLenZero, tt.pathLen, tt.zero)
			}
			if want := x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature; tmpl.KeyUsage != want {
				t.Errorf("key usage %b, want %b", tmpl.KeyUsage, want)
			}
			if len(tmpl.Policies) != tt.policies || len(tmpl.PolicyIdentifiers) != tt.policies {
				t.Errorf("policies %v / %v, want %d", tmpl.Policies, tmpl.PolicyIdentifiers, tt.policies)
			}
			if len(tmpl.ExtKeyUsage) != 0 {
				t.Errorf("CA template has EKU %v", tmpl.ExtKeyUsage)
			}
		})
	}
}
