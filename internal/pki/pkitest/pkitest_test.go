package pkitest_test

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/pki/pkitest"
)

func TestPKI(t *testing.T) {
	for _, kt := range []pki.KeyType{pki.ECP256, pki.RSA2048, pki.Ed25519} {
		t.Run("ok/"+string(kt), func(t *testing.T) {
			root := pkitest.New(t, pkitest.WithKeyType(kt))
			inter := root.Child(t, "Issuing CA")
			sub := inter.Child(t, "Team CA", pkitest.WithMaxPathLen(0))
			leaf, key := sub.Leaf(t, pkitest.LeafOptions{CN: "svc.internal", IP: []string{"10.0.0.1"}, ServerAuth: true})

			if got, _ := pki.KeyTypeOf(key.Public()); got != kt {
				t.Errorf("leaf key type = %s, want %s", got, kt)
			}
			if sub.Root() != root || sub.Parent() != inter || root.Parent() != nil {
				t.Error("Root/Parent links are wrong")
			}
			if len(sub.Chain()) != 3 || len(sub.Intermediates()) != 2 || sub.Chain()[2] != root.Cert {
				t.Errorf("chain has %d certificates, intermediates %d", len(sub.Chain()), len(sub.Intermediates()))
			}
			if !sub.Cert.MaxPathLenZero || inter.Cert.MaxPathLen != -1 {
				t.Errorf("path lengths: team %d (zero %v), issuing %d", sub.Cert.MaxPathLen, sub.Cert.MaxPathLenZero, inter.Cert.MaxPathLen)
			}
			if _, err := leaf.Verify(sub.VerifyOptions(x509.ExtKeyUsageServerAuth)); err != nil {
				t.Fatalf("leaf does not verify: %v", err)
			}
			if err := leaf.VerifyHostname("svc.internal"); err != nil {
				t.Errorf("CN not added as a SAN: %v", err)
			}
			if len(leaf.CRLDistributionPoints) != 1 || leaf.CRLDistributionPoints[0] != sub.URLs().CRL[0] {
				t.Errorf("leaf CRL DP = %v, want the issuer's %v", leaf.CRLDistributionPoints, sub.URLs().CRL)
			}
			if !leaf.NotBefore.Equal(root.Now()) {
				t.Errorf("leaf NotBefore = %v, want the fixed clock %v", leaf.NotBefore, root.Now())
			}
		})
	}
}

func TestLeafOptions(t *testing.T) {
	now := time.Date(2030, time.January, 2, 3, 4, 5, 0, time.UTC)
	ca := pkitest.New(t, pkitest.WithNow(now), pkitest.WithName("Other Root"), pkitest.WithValidity(2*pki.Year))
	if ca.Cert.Subject.CommonName != "Other Root" || !ca.Cert.NotAfter.Equal(now.Add(-time.Hour).Add(2*pki.Year)) {
		t.Fatalf("root %q valid until %v", ca.Cert.Subject.CommonName, ca.Cert.NotAfter)
	}
	tests := map[string]struct {
		opts pkitest.LeafOptions
		eku  []x509.ExtKeyUsage
	}{
		"ok/server":          {pkitest.LeafOptions{DNS: []string{"a.example"}, ServerAuth: true}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		"ok/client":          {pkitest.LeafOptions{CN: "agent", ClientAuth: true}, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
		"ok/both":            {pkitest.LeafOptions{DNS: []string{"a.example"}, ServerAuth: true, ClientAuth: true}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}},
		"ok/neither is both": {pkitest.LeafOptions{DNS: []string{"a.example"}}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}},
		"ok/expired":         {pkitest.LeafOptions{DNS: []string{"a.example"}, ServerAuth: true, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(-time.Minute)}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		"ok/other key type":  {pkitest.LeafOptions{CN: "agent", ClientAuth: true, KeyType: pki.ECP384}, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			leaf, _ := ca.Leaf(t, tt.opts)
			if len(leaf.ExtKeyUsage) != len(tt.eku) {
				t.Fatalf("EKU = %v, want %v", leaf.ExtKeyUsage, tt.eku)
			}
			for i := range tt.eku {
				if leaf.ExtKeyUsage[i] != tt.eku[i] {
					t.Fatalf("EKU = %v, want %v", leaf.ExtKeyUsage, tt.eku)
				}
			}
		})
	}
	t.Run("ok/given key", func(t *testing.T) {
		key := pkitest.NewKey(t, pki.ECP256)
		leaf, got := ca.Leaf(t, pkitest.LeafOptions{CN: "x", ClientAuth: true, Key: key})
		if got != key || !leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
			t.Error("Leaf did not use the given key")
		}
	})
}

func TestPEM(t *testing.T) {
	ca := pkitest.New(t)
	leaf, key := ca.Leaf(t, pkitest.LeafOptions{DNS: []string{"a.example"}})
	dir := t.TempDir()
	path := pkitest.WriteFile(t, dir, "bundle.pem", pkitest.CertPEM(leaf, ca.Cert))
	data, err := os.ReadFile(path)
	if err != nil || filepath.Dir(path) != dir {
		t.Fatal(err)
	}
	var certs []*x509.Certificate
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) != 2 || !certs[0].Equal(leaf) || !certs[1].Equal(ca.Cert) {
		t.Fatalf("bundle holds %d certificates", len(certs))
	}
	if !bytes.Equal(ca.CertPEM(), pkitest.CertPEM(ca.Cert)) {
		t.Error("CA.CertPEM differs from CertPEM")
	}
	block, _ := pem.Decode(pkitest.KeyPEM(t, key))
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil || !parsed.(interface{ Equal(crypto.PrivateKey) bool }).Equal(key) {
		t.Fatalf("KeyPEM does not round trip: %v", err)
	}
	tc := ca.TLSCertificate(leaf, key)
	if len(tc.Certificate) != 1 || tc.Leaf != leaf {
		t.Errorf("TLS certificate of a root-issued leaf has %d certificates", len(tc.Certificate))
	}
}

func TestKeys(t *testing.T) {
	a, b := pkitest.Key(t, pki.ECP256, 0), pkitest.Key(t, pki.ECP256, 1)
	if a != pkitest.Key(t, pki.ECP256, 0) || a == b {
		t.Error("Key is not a stable per-index cache")
	}
	seen := map[any]bool{}
	for range 4 {
		k := pkitest.NewKey(t, pki.RSA2048)
		if seen[k] {
			t.Fatal("four RSA keys drawn in a row repeat")
		}
		seen[k] = true
	}
}
