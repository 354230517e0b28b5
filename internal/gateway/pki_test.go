package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// A small test PKI on the wall clock (the gateway and the TLS peers use
// real time): roots, intermediates, leaves and CRLs made with crypto/x509.

type tca struct {
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	parent *tca
}

type leafCert struct {
	cert  *x509.Certificate
	key   *ecdsa.PrivateKey
	chain []*x509.Certificate // the leaf, then its CA certificates up to (excluding) the root
}

var serialN atomic.Int64

func init() { serialN.Store(0x7e00) }

func newSerial() *big.Int { return big.NewInt(serialN.Add(1)) }

func genKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustSign(t testing.TB, tmpl, parent *x509.Certificate, pub any, key *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newCA(t testing.TB, cn string) *tca {
	t.Helper()
	key := genKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(), Subject: pkix.Name{CommonName: cn, Organization: []string{"Trustgate Test"}},
		NotBefore: now.Add(-24 * time.Hour), NotAfter: now.Add(3650 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	return &tca{cert: mustSign(t, tmpl, tmpl, key.Public(), key), key: key}
}

func (ca *tca) sub(t testing.TB, cn string) *tca {
	t.Helper()
	key := genKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(), Subject: pkix.Name{CommonName: cn, Organization: []string{"Trustgate Test"}},
		NotBefore: now.Add(-24 * time.Hour), NotAfter: now.Add(1825 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	return &tca{cert: mustSign(t, tmpl, ca.cert, key.Public(), ca.key), key: key, parent: ca}
}

type leafOpts struct {
	subject   pkix.Name
	dns       []string
	ips       []net.IP
	uris      []string
	eku       []x509.ExtKeyUsage
	notBefore time.Time
	notAfter  time.Time
	pad       int // bytes of a private extension, to make a big certificate
}

func (ca *tca) issue(t testing.TB, o leafOpts) *leafCert {
	t.Helper()
	key := genKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(), Subject: o.subject,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: o.eku,
		DNSNames: o.dns, IPAddresses: o.ips,
	}
	if tmpl.ExtKeyUsage == nil {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	if !o.notBefore.IsZero() {
		tmpl.NotBefore = o.notBefore
	}
	if !o.notAfter.IsZero() {
		tmpl.NotAfter = o.notAfter
	}
	for _, u := range o.uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	if o.pad > 0 {
		tmpl.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 7}, Value: make([]byte, o.pad)}}
	}
	lc := &leafCert{cert: mustSign(t, tmpl, ca.cert, key.Public(), ca.key), key: key}
	lc.chain = []*x509.Certificate{lc.cert}
	for c := ca; c.parent != nil; c = c.parent {
		lc.chain = append(lc.chain, c.cert)
	}
	return lc
}

func (ca *tca) client(t testing.TB, cn string) *leafCert {
	return ca.issue(t, leafOpts{subject: pkix.Name{CommonName: cn, Organization: []string{"Example"}}})
}

// tls returns the certificate as a TLS client or server sends it: the leaf
// and its intermediates.
func (lc *leafCert) tls() tls.Certificate {
	c := tls.Certificate{PrivateKey: lc.key, Leaf: lc.cert}
	for _, x := range lc.chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

func (ca *tca) crl(t testing.TB, this, next time.Time, revoked ...*big.Int) []byte {
	t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(time.Now().UnixNano()), ThisUpdate: this, NextUpdate: next}
	for _, s := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: this})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func pemCerts(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

func pemKey(t testing.TB, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// writeFile replaces a file atomically (write, then rename), as
// deployment tools do.
func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
