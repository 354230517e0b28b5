package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	mrand "math/rand/v2"
	"testing"
	"time"
)

// now is the fixed clock of these tests.
var now = time.Date(2026, time.June, 1, 12, 0, 0, 0, time.UTC)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var serialCounter = big.NewInt(1000)

func nextSerial() *big.Int {
	serialCounter.Add(serialCounter, big.NewInt(1))
	return new(big.Int).Set(serialCounter)
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func sign(tb testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	tb.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func newRoot(tb testing.TB, cn string) *testCA {
	tb.Helper()
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Trustgate Test"}},
		NotBefore:             now.Add(-24 * time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	return &testCA{cert: sign(tb, tmpl, tmpl, key.Public(), key), key: key}
}

func (ca *testCA) child(tb testing.TB, cn string, mod ...func(*x509.Certificate)) *testCA {
	tb.Helper()
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Trustgate Test"}},
		NotBefore:             now.Add(-24 * time.Hour),
		NotAfter:              now.Add(5 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	for _, m := range mod {
		m(tmpl)
	}
	return &testCA{cert: sign(tb, tmpl, ca.cert, key.Public(), ca.key), key: key}
}

func (ca *testCA) leaf(tb testing.TB, cn string, mod ...func(*x509.Certificate)) *x509.Certificate {
	tb.Helper()
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, m := range mod {
		m(tmpl)
	}
	return sign(tb, tmpl, ca.cert, key.Public(), ca.key)
}

type crlOpt func(*x509.RevocationList)

func (ca *testCA) crl(tb testing.TB, serials []*big.Int, opts ...crlOpt) *x509.RevocationList {
	tb.Helper()
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(1),
		ThisUpdate: now.Add(-time.Hour),
		NextUpdate: now.Add(24 * time.Hour),
	}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: s, RevocationTime: now.Add(-2 * time.Hour)})
	}
	for _, o := range opts {
		o(tmpl)
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.cert, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		tb.Fatal(err)
	}
	return crl
}

// bigCRLDER encodes and signs a CRL of n random 16-byte serials (plus the
// extra ones) directly in DER: x509.CreateRevocationList takes seconds and
// gigabytes for a million entries.
func (ca *testCA) bigCRLDER(tb testing.TB, n int, extra ...*big.Int) []byte {
	tb.Helper()
	revoked := now.Add(-2 * time.Hour)
	entryTime, err := asn1.Marshal(revoked)
	if err != nil {
		tb.Fatal(err)
	}
	var entries []byte
	entries = make([]byte, 0, n*36)
	serial := make([]byte, 16)
	appendEntry := func(s []byte) {
		// SEQUENCE { INTEGER serial, UTCTime }
		ib := []byte{0x02, byte(len(s))}
		body := len(ib) + len(s) + len(entryTime)
		entries = append(entries, 0x30, byte(body))
		entries = append(entries, ib...)
		entries = append(entries, s...)
		entries = append(entries, entryTime...)
	}
	rng := mrand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)})
	for i := 0; i < n; i++ {
		rng.Read(serial)
		serial[0] &= 0x7f
		serial[0] |= 0x01 // 16 bytes, positive, no leading zero
		appendEntry(serial)
	}
	for _, s := range extra {
		b := s.Bytes()
		if b[0]&0x80 != 0 {
			b = append([]byte{0}, b...)
		}
		appendEntry(b)
	}
	algo, _ := asn1.Marshal(pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}})
	this, _ := asn1.Marshal(now.Add(-time.Hour))
	next, _ := asn1.Marshal(now.Add(24 * time.Hour))
	var tbs []byte
	tbs = append(tbs, 0x02, 0x01, 0x01) // version v2
	tbs = append(tbs, algo...)
	tbs = append(tbs, ca.cert.RawSubject...)
	tbs = append(tbs, this...)
	tbs = append(tbs, next...)
	tbs = appendTLV(tbs, 0x30, entries)
	tbs = appendTLV(nil, 0x30, tbs)
	digest := sha256.Sum256(tbs)
	sig, err := ecdsa.SignASN1(rand.Reader, ca.key, digest[:])
	if err != nil {
		tb.Fatal(err)
	}
	out := append([]byte(nil), tbs...)
	out = append(out, algo...)
	out = appendTLV(out, 0x03, append([]byte{0}, sig...))
	return appendTLV(nil, 0x30, out)
}
