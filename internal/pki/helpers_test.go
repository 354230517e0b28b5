package pki_test

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/pki/pkitest"
)

// testNow is the fixed clock of these tests. Lint results depend on
// notBefore (lints have effective dates), so it is a date after the
// CA/B Forum SC-081 first milestone, like production today.
var testNow = time.Date(2026, time.June, 1, 12, 0, 0, 0, time.UTC)

// testKey returns the i-th shared test key of type kt (see pkitest.Key):
// RSA-4096 generation takes about a second, so each key is made once per
// test binary. Different indexes give different keys, so a chain can use
// 0, 1 and 2.
func testKey(tb testing.TB, kt pki.KeyType, i int) crypto.Signer {
	tb.Helper()
	return pkitest.Key(tb, kt, i)
}

// linter is shared: building the zlint registry once is the intended use.
var linter = sync.OnceValues(pki.NewLinter)

func testLinter(tb testing.TB) *pki.Linter {
	tb.Helper()
	l, err := linter()
	if err != nil {
		tb.Fatalf("NewLinter: %v", err)
	}
	return l
}

func serial(tb testing.TB) *big.Int {
	tb.Helper()
	n, err := pki.NewSerial(rand.Reader)
	if err != nil {
		tb.Fatalf("NewSerial: %v", err)
	}
	return n
}

// chain is a root, an intermediate and the URLs each publishes.
type chain struct {
	root, inter       *x509.Certificate
	rootKey, interKey crypto.Signer
	rootURLs          pki.URLs // written into certificates the root issues
	interURLs         pki.URLs // written into certificates the intermediate issues
}

func urlsFor(name string) pki.URLs {
	return pki.URLs{
		CRL:       []string{"http://ca.trustgate.internal/crl/" + name + ".crl"},
		IssuingCA: []string{"http://ca.trustgate.internal/ca/" + name + ".crt"},
		OCSP:      []string{"http://ocsp.trustgate.internal/" + name},
	}
}

// newChain builds and lints a root and an intermediate of key type kt.
func newChain(tb testing.TB, kt pki.KeyType) *chain {
	tb.Helper()
	l := testLinter(tb)
	c := &chain{
		rootKey:   testKey(tb, kt, 0),
		interKey:  testKey(tb, kt, 1),
		rootURLs:  urlsFor("root"),
		interURLs: urlsFor("inter"),
	}
	rt, err := pki.CATemplate(pki.CARequest{
		Subject:    pkix.Name{CommonName: "Trustgate Test Root " + string(kt)},
		PublicKey:  c.rootKey.Public(),
		Serial:     serial(tb),
		NotBefore:  testNow.Add(-time.Hour),
		NotAfter:   testNow.Add(20 * pki.Year),
		MaxPathLen: -1,
	})
	if err != nil {
		tb.Fatalf("root CATemplate: %v", err)
	}
	der, err := l.Sign(rt, rt, c.rootKey.Public(), c.rootKey)
	if err != nil {
		tb.Fatalf("sign root: %v", err)
	}
	c.root = parseCert(tb, der)
	it, err := pki.CATemplate(pki.CARequest{
		Subject:    pkix.Name{CommonName: "Trustgate Test Intermediate " + string(kt), Organization: []string{"Trustgate Tests"}},
		PublicKey:  c.interKey.Public(),
		Serial:     serial(tb),
		NotBefore:  testNow.Add(-time.Hour),
		NotAfter:   testNow.Add(5 * pki.Year),
		MaxPathLen: 0,
		URLs:       c.rootURLs,
	})
	if err != nil {
		tb.Fatalf("intermediate CATemplate: %v", err)
	}
	der, err = l.Sign(it, c.root, c.interKey.Public(), c.rootKey)
	if err != nil {
		tb.Fatalf("sign intermediate: %v", err)
	}
	c.inter = parseCert(tb, der)
	return c
}

func parseCert(tb testing.TB, der []byte) *x509.Certificate {
	tb.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("parse certificate: %v", err)
	}
	return c
}

// wantErr checks err against a table case: nil when want is empty,
// otherwise an error wrapping kind whose message contains want.
func wantErr(tb testing.TB, err error, kind error, want string) {
	tb.Helper()
	switch {
	case want == "" && err != nil:
		tb.Fatalf("unexpected error: %v", err)
	case want == "":
		return
	case err == nil:
		tb.Fatalf("got no error, want one containing %q", want)
	case !errors.Is(err, kind):
		tb.Fatalf("error %q does not wrap %v", err, kind)
	case !strings.Contains(err.Error(), want):
		tb.Fatalf("error %q does not contain %q", err, want)
	}
}

func mustSubject(tb testing.TB, s string) pkix.Name {
	tb.Helper()
	n, err := pki.ParseSubject(s)
	if err != nil {
		tb.Fatalf("ParseSubject(%q): %v", s, err)
	}
	return n
}
