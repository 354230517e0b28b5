// Package pkitest builds throwaway PKIs for tests, in the way of SPIRE's
// test/testca: a root from [New], intermediates from [CA.Child] and leaves
// from [CA.Leaf], all made with the templates and the linting signer of
// package pki, so that tests see exactly what production issues.
//
// Every CA runs on a fixed clock (by default 2026-06-01 12:00 UTC; see
// [WithNow]), never the wall clock: verify with
// x509.VerifyOptions{CurrentTime: ca.Now()} or tls.Config{Time: ca.Now}.
// Failures stop the test with tb.Fatal. A CA is safe for concurrent use.
package pkitest

import (
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/pki"
)

// defaultNow is the fixed clock of a CA made without [WithNow].
var defaultNow = time.Date(2026, time.June, 1, 12, 0, 0, 0, time.UTC)

// CA is a certificate authority of a test PKI.
type CA struct {
	// Cert is the CA's certificate.
	Cert *x509.Certificate
	// Key is the CA's private key.
	Key crypto.Signer

	parent  *CA
	name    string
	now     time.Time
	keyType pki.KeyType
	urls    pki.URLs
}

// Option configures [New] and [CA.Child].
type Option func(*options)

type options struct {
	keyType    pki.KeyType
	now        time.Time
	name       string
	validity   time.Duration
	maxPathLen *int
}

// WithKeyType sets the CA's key type (default ec-p256; a child inherits
// its parent's).
func WithKeyType(kt pki.KeyType) Option { return func(o *options) { o.keyType = kt } }

// WithNow sets the fixed clock (a child inherits its parent's).
func WithNow(now time.Time) Option { return func(o *options) { o.now = now } }

// WithName sets the root's common name (default "pkitest Root CA").
func WithName(cn string) Option { return func(o *options) { o.name = cn } }

// WithValidity sets the CA's lifetime from an hour before the clock
// (default 10 years for a root, 5 for a child, capped at the parent's end).
func WithValidity(d time.Duration) Option { return func(o *options) { o.validity = d } }

// WithMaxPathLen sets the basicConstraints path length (default -1,
// unconstrained, so that children can have children).
func WithMaxPathLen(n int) Option { return func(o *options) { o.maxPathLen = &n } }

// linter is shared by all CAs: the zlint registry is built once.
var linter = sync.OnceValues(pki.NewLinter)

func sign(tb testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	tb.Helper()
	l, err := linter()
	if err != nil {
		tb.Fatalf("pkitest: %v", err)
	}
	der, err := l.Sign(tmpl, parent, pub, key)
	if err != nil {
		tb.Fatalf("pkitest: sign %q: %v", tmpl.Subject.String(), err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("pkitest: parse %q: %v", tmpl.Subject.String(), err)
	}
	return c
}

// New returns a new self-signed root CA.
func New(tb testing.TB, opts ...Option) *CA {
	tb.Helper()
	o := options{keyType: pki.ECP256, now: defaultNow, name: "pkitest Root CA", validity: 10 * pki.Year}
	for _, opt := range opts {
		opt(&o)
	}
	return newCA(tb, nil, o)
}

// Child returns a new intermediate CA called name, issued by ca.
func (ca *CA) Child(tb testing.TB, name string, opts ...Option) *CA {
	tb.Helper()
	o := options{keyType: ca.keyType, now: ca.now, name: name, validity: 5 * pki.Year}
	for _, opt := range opts {
		opt(&o)
	}
	return newCA(tb, ca, o)
}

func newCA(tb testing.TB, parent *CA, o options) *CA {
	tb.Helper()
	key := NewKey(tb, o.keyType)
	pathLen := -1
	if o.maxPathLen != nil {
		pathLen = *o.maxPathLen
	}
	notBefore := o.now.Add(-time.Hour)
	notAfter := notBefore.Add(o.validity)
	var urls pki.URLs
	if parent != nil {
		urls = parent.urls
		if notAfter.After(parent.Cert.NotAfter) {
			notAfter = parent.Cert.NotAfter
		}
	}
	tmpl, err := pki.CATemplate(pki.CARequest{
		Subject:    pkix.Name{CommonName: o.name},
		PublicKey:  key.Public(),
		Serial:     newSerial(tb),
		NotBefore:  notBefore,
		NotAfter:   notAfter,
		MaxPathLen: pathLen,
		URLs:       urls,
	})
	if err != nil {
		tb.Fatalf("pkitest: CA %q: %v", o.name, err)
	}
	ca := &CA{Key: key, parent: parent, name: o.name, now: o.now, keyType: o.keyType, urls: urlsFor(o.name)}
	if parent == nil {
		ca.Cert = sign(tb, tmpl, tmpl, key.Public(), key)
	} else {
		ca.Cert = sign(tb, tmpl, parent.Cert, key.Public(), parent.Key)
	}
	return ca
}

// urlsFor gives each CA CRL and AIA locations under the reserved .invalid
// domain (RFC 2606): linted like production, resolvable nowhere.
func urlsFor(name string) pki.URLs {
	slug := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '-'
	}, name)
	base := "http://pkitest.invalid/" + slug
	return pki.URLs{CRL: []string{base + "/crl"}, IssuingCA: []string{base + "/ca.crt"}}
}

// LeafOptions describes a leaf certificate for [CA.Leaf]. The zero value
// is a server-client certificate without names, which fails: give at
// least a CN or a SAN.
type LeafOptions struct {
	// CN is the subject common name. For a server certificate it is also
	// added as a SAN, as production does.
	CN string
	// DNS, IP, URI and Email are the SANs.
	DNS, IP, URI, Email []string
	// ServerAuth and ClientAuth pick the profile: "server", "client" or,
	// with both or neither, "server-client".
	ServerAuth, ClientAuth bool
	// NotBefore defaults to the CA's clock, NotAfter to NotBefore plus
	// the profile's default validity. Unlike production, pkitest lets
	// any lifetime through (expired or very long certificates), but a
	// leaf still may not outlive its CA.
	NotBefore, NotAfter time.Time
	// KeyType is the leaf's key type; default, the CA's.
	KeyType pki.KeyType
	// Key, when set, is used instead of a new key.
	Key crypto.Signer
}

// Leaf issues a leaf certificate and returns it with its private key.
func (ca *CA) Leaf(tb testing.TB, o LeafOptions) (*x509.Certificate, crypto.Signer) {
	tb.Helper()
	profile := "server-client"
	switch {
	case o.ServerAuth && !o.ClientAuth:
		profile = "server"
	case o.ClientAuth && !o.ServerAuth:
		profile = "client"
	}
	p, err := pki.LookupProfile(profile)
	if err != nil {
		tb.Fatalf("pkitest: %v", err)
	}
	p.MinValidity, p.MaxValidity = 0, 0
	key := o.Key
	if key == nil {
		kt := o.KeyType
		if kt == "" {
			kt = ca.keyType
		}
		key = NewKey(tb, kt)
	}
	sans, err := pki.ParseSANs(o.DNS, o.IP, o.URI, o.Email)
	if err != nil {
		tb.Fatalf("pkitest: leaf %q: %v", o.CN, err)
	}
	notBefore, notAfter := o.NotBefore, o.NotAfter
	if notBefore.IsZero() {
		notBefore = ca.now
	}
	if notAfter.IsZero() {
		notAfter = notBefore.Add(p.DefaultValidity)
		if notAfter.After(ca.Cert.NotAfter) {
			notAfter = ca.Cert.NotAfter
		}
	}
	tmpl, err := pki.LeafTemplate(pki.LeafRequest{
		Profile:   p,
		Subject:   pkix.Name{CommonName: o.CN},
		SANs:      sans,
		PublicKey: key.Public(),
		Serial:    newSerial(tb),
		NotBefore: notBefore,
		NotAfter:  notAfter,
		URLs:      ca.urls,
	})
	if err != nil {
		tb.Fatalf("pkitest: leaf %q: %v", o.CN, err)
	}
	return sign(tb, tmpl, ca.Cert, key.Public(), ca.Key), key
}

// Now returns the CA's fixed clock.
func (ca *CA) Now() time.Time { return ca.now }

// KeyType returns the type of the CA's key.
func (ca *CA) KeyType() pki.KeyType { return ca.keyType }

// Parent returns the issuing CA, or nil for a root.
func (ca *CA) Parent() *CA { return ca.parent }

// Root returns the root CA of ca's chain.
func (ca *CA) Root() *CA {
	for ca.parent != nil {
		ca = ca.parent
	}
	return ca
}

// URLs returns the CRL and AIA locations ca writes into what it issues.
func (ca *CA) URLs() pki.URLs { return ca.urls }

// Chain returns ca's certificate followed by its issuers', root last.
func (ca *CA) Chain() []*x509.Certificate {
	var chain []*x509.Certificate
	for c := ca; c != nil; c = c.parent {
		chain = append(chain, c.Cert)
	}
	return chain
}

// Intermediates returns [CA.Chain] without the root: what a server sends
// after its leaf.
func (ca *CA) Intermediates() []*x509.Certificate {
	chain := ca.Chain()
	return chain[:len(chain)-1]
}

// RootPool returns a pool holding only the root certificate.
func (ca *CA) RootPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Root().Cert)
	return p
}

// IntermediatePool returns a pool of [CA.Intermediates].
func (ca *CA) IntermediatePool() *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range ca.Intermediates() {
		p.AddCert(c)
	}
	return p
}

// VerifyOptions returns options that verify leaves of ca at its clock.
func (ca *CA) VerifyOptions(usages ...x509.ExtKeyUsage) x509.VerifyOptions {
	return x509.VerifyOptions{
		Roots:         ca.RootPool(),
		Intermediates: ca.IntermediatePool(),
		CurrentTime:   ca.now,
		KeyUsages:     usages,
	}
}

// TLSCertificate returns leaf and key, issued by ca, as a tls.Certificate
// carrying ca's intermediates.
func (ca *CA) TLSCertificate(leaf *x509.Certificate, key crypto.Signer) tls.Certificate {
	c := tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
	for _, i := range ca.Intermediates() {
		c.Certificate = append(c.Certificate, i.Raw)
	}
	return c
}

// CertPEM returns ca's certificate in PEM.
func (ca *CA) CertPEM() []byte { return CertPEM(ca.Cert) }

// CertPEM encodes certificates as concatenated PEM "CERTIFICATE" blocks.
func CertPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// KeyPEM encodes a private key as a PEM "PRIVATE KEY" block (PKCS #8).
func KeyPEM(tb testing.TB, key crypto.Signer) []byte {
	tb.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatalf("pkitest: marshal key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// WriteFile writes data to name in dir (typically tb.TempDir()) and
// returns the path.
func WriteFile(tb testing.TB, dir, name string, data []byte) string {
	tb.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatalf("pkitest: %v", err)
	}
	return path
}

func newSerial(tb testing.TB) *big.Int {
	tb.Helper()
	n, err := pki.NewSerial(rand.Reader)
	if err != nil {
		tb.Fatalf("pkitest: %v", err)
	}
	return n
}

// rsaPoolSize is how many RSA keys of each size NewKey hands out in turn:
// enough for a root, an intermediate and a server and a client leaf.
const rsaPoolSize = 4

var (
	keyCache sync.Map // "type/index" -> func() (crypto.Signer, error)
	rsaNext  sync.Map // key type -> *atomic.Uint64
)

// Key returns the i-th cached key of type kt, generating it on first use:
// the same (kt, i) gives the same key for the whole test binary, and
// different indexes give different keys. Use it where key generation
// would dominate a test (an RSA-4096 key takes about a second).
func Key(tb testing.TB, kt pki.KeyType, i int) crypto.Signer {
	tb.Helper()
	gen, _ := keyCache.LoadOrStore(fmt.Sprintf("%s/%d", kt, i), sync.OnceValues(func() (crypto.Signer, error) {
		return pki.GenerateKey(kt)
	}))
	k, err := gen.(func() (crypto.Signer, error))()
	if err != nil {
		tb.Fatalf("pkitest: %v", err)
	}
	return k
}

// NewKey returns a private key of type kt. ECDSA and Ed25519 keys are
// fresh. RSA keys are [Key] with indexes 0 to 3 handed out in turn, since
// generating them is slow; four keys drawn one after another (like those
// of a chain with two leaves) differ.
func NewKey(tb testing.TB, kt pki.KeyType) crypto.Signer {
	tb.Helper()
	if strings.HasPrefix(string(kt), "rsa-") {
		next, _ := rsaNext.LoadOrStore(kt, new(atomic.Uint64))
		return Key(tb, kt, int(next.(*atomic.Uint64).Add(1)%rsaPoolSize))
	}
	k, err := pki.GenerateKey(kt)
	if err != nil {
		tb.Fatalf("pkitest: %v", err)
	}
	return k
}
