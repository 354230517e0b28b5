package revocation

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/ocsp"

	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/store"
	"github.com/trustgate/trustgate/internal/store/sqlite"
)

// testBase is the public base URL of the test service: certificates name
// their CRLs under it, and CRLs name themselves under it.
const testBase = "http://pki.trustgate.test"

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// linter is shared by the whole test binary: building zlint's registry
// takes a while.
var linter = sync.OnceValues(pki.NewLinter)

func mustLinter(tb testing.TB) *pki.Linter {
	tb.Helper()
	l, err := linter()
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// testCA is a CA of the test PKI: its record in the store, key and certificate.
type testCA struct {
	rec    *store.CA
	key    crypto.Signer
	cert   *x509.Certificate
	parent *testCA
}

func (c *testCA) id() string { return c.rec.ID }

// env is a test PKI in a real SQLite store with a revocation Service.
type env struct {
	tb     testing.TB
	ctx    context.Context
	dbPath string
	st     store.Store
	open   func(testing.TB) store.Store // nil: SQLite at dbPath
	clock  *clock
	keys   *testKeys
	resp   *testResponders
	reg    *prometheus.Registry
	svc    *Service
	cfg    Config

	root, sub, parts *testCA
}

// envOptions changes newEnv's defaults.
type envOptions struct {
	now time.Time     // default: the wall clock (openssl checks times against it)
	cfg func(*Config) // adjusts the Config before New
	// store, when set, opens the store instead of SQLite in a temporary
	// directory.
	store func(testing.TB) store.Store
}

// newEnv builds a root, an intermediate "sub" and an intermediate
// "parts" with 4 CRL partitions, and a Service (not running) over them.
func newEnv(tb testing.TB, o envOptions) *env {
	tb.Helper()
	if o.now.IsZero() {
		o.now = time.Now().UTC().Truncate(time.Second)
	}
	e := &env{tb: tb, ctx: context.Background(), clock: newClock(o.now), open: o.store}
	e.dbPath = filepath.Join(tb.TempDir(), "trustgate.db")
	e.st = e.openStore()
	e.keys = &testKeys{cas: map[string]*testCA{}, offline: map[string]bool{}}
	e.resp = &testResponders{keys: e.keys, clock: e.clock, linter: mustLinter(tb)}
	e.root = e.newCA("root", nil, 0)
	e.sub = e.newCA("sub", e.root, 0)
	e.parts = e.newCA("parts", e.root, 4)
	e.cfg = Config{
		Store: e.st, Keys: e.keys, Responders: e.resp, BaseURL: testBase,
		Now: e.clock.Now, Coalesce: 20 * time.Millisecond,
	}
	if o.cfg != nil {
		o.cfg(&e.cfg)
	}
	e.svc = e.newService()
	return e
}

func (e *env) openStore() store.Store {
	e.tb.Helper()
	if e.open != nil {
		return e.open(e.tb)
	}
	st, err := sqlite.Open(e.dbPath)
	if err != nil {
		e.tb.Fatal(err)
	}
	e.tb.Cleanup(func() { st.Close() })
	return st
}

// newService returns a new Service on e's store, with its own registry.
func (e *env) newService() *Service {
	e.tb.Helper()
	cfg := e.cfg
	cfg.Store = e.st
	e.reg = prometheus.NewRegistry()
	cfg.Registerer = e.reg
	svc, err := New(cfg)
	if err != nil {
		e.tb.Fatal(err)
	}
	return svc
}

// run runs e.svc until the test ends.
func (e *env) run() {
	e.tb.Helper()
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	before := e.svc.sweeps.Load()
	go func() { done <- e.svc.Run(ctx) }()
	e.tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.tb.Errorf("Run: %v", err)
		}
	})
	// Run publishes every CRL afresh as it starts; tests begin after that.
	deadline := time.Now().Add(10 * time.Second)
	for e.svc.sweeps.Load() == before {
		if time.Now().After(deadline) {
			e.tb.Fatal("Run did not finish its first sweep within 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// server serves e.svc.Handler() on a loopback port until the test ends.
func (e *env) server() *httptest.Server {
	srv := httptest.NewServer(e.svc.Handler())
	e.tb.Cleanup(srv.Close)
	return srv
}

func crlURL(ca *testCA, part int) string {
	if ca.rec.CRLPartitions > 1 {
		return fmt.Sprintf("%s/crl/%s/%d.crl", testBase, ca.rec.Name, part)
	}
	return testBase + "/crl/" + ca.rec.Name + ".crl"
}

func urlsFor(ca *testCA, part int) pki.URLs {
	return pki.URLs{
		CRL:       []string{crlURL(ca, part)},
		IssuingCA: []string{testBase + "/ca/" + ca.rec.Name + ".pem"},
		OCSP:      []string{testBase + "/ocsp/" + ca.rec.Name},
	}
}

func newSerial(tb testing.TB) *big.Int {
	tb.Helper()
	n, err := pki.NewSerial(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

func partitionOf(serial *big.Int, partitions int) int {
	if partitions <= 1 {
		return 0
	}
	return int(new(big.Int).Mod(serial, big.NewInt(int64(partitions))).Int64())
}

// newCA creates a CA in the store, issued by parent (nil: a root), and
// records its certificate in the parent's inventory.
func (e *env) newCA(name string, parent *testCA, partitions int) *testCA {
	e.tb.Helper()
	key, err := pki.GenerateKey(pki.ECP256)
	if err != nil {
		e.tb.Fatal(err)
	}
	now := e.clock.Now()
	serial := newSerial(e.tb)
	req := pki.CARequest{
		Subject:   pkix.Name{CommonName: "Test " + name + " CA", Organization: []string{"Trustgate Test"}},
		PublicKey: key.Public(), Serial: serial,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(5 * pki.Year), MaxPathLen: -1,
	}
	part := 0
	if parent != nil {
		part = partitionOf(serial, parent.rec.CRLPartitions)
		req.URLs = urlsFor(parent, part)
		req.NotAfter = parent.cert.NotAfter
		req.MaxPathLen = 0
	}
	tmpl, err := pki.CATemplate(req)
	if err != nil {
		e.tb.Fatal(err)
	}
	var der []byte
	if parent == nil {
		der, err = mustLinter(e.tb).Sign(tmpl, tmpl, key.Public(), key)
	} else {
		der, err = mustLinter(e.tb).Sign(tmpl, parent.cert, key.Public(), parent.key)
	}
	if err != nil {
		e.tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		e.tb.Fatal(err)
	}
	c := &testCA{key: key, cert: cert, parent: parent, rec: &store.CA{
		ID: "ca-" + name, Name: name, State: store.CAActive, KeyType: string(pki.ECP256),
		SealedKey: []byte("sealed"), CertDER: der, Subject: cert.Subject.String(), PathLen: -1,
		CRLPartitions: partitions, NotBefore: cert.NotBefore, NotAfter: cert.NotAfter,
		CreatedAt: now, UpdatedAt: now,
	}}
	if parent != nil {
		c.rec.ParentID, c.rec.Depth = parent.id(), parent.rec.Depth+1
	}
	if err := e.st.CreateCA(e.ctx, c.rec); err != nil {
		e.tb.Fatal(err)
	}
	if parent != nil {
		e.record(parent, cert, "subordinate-ca", part)
	}
	e.keys.mu.Lock()
	e.keys.cas[c.id()] = c
	e.keys.mu.Unlock()
	return c
}

// record inserts cert, issued by ca, into the store.
func (e *env) record(ca *testCA, cert *x509.Certificate, profile string, part int) *store.Certificate {
	e.tb.Helper()
	fp := sha256.Sum256(cert.Raw)
	rec := &store.Certificate{
		Serial: pki.SerialHex(cert.SerialNumber), CAID: ca.id(), IssuerKey: ca.id(),
		Subject: cert.Subject.String(), Profile: profile, KeyType: string(pki.ECP256),
		NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, Fingerprint: hex.EncodeToString(fp[:]),
		Status: store.CertActive, DER: cert.Raw, CreatedAt: e.clock.Now(), Partition: part,
	}
	if err := e.st.InsertCertificate(e.ctx, rec); err != nil {
		e.tb.Fatal(err)
	}
	return rec
}

// leafOptions changes issue's defaults.
type leafOptions struct {
	notAfter time.Time // default: 30 days from the clock
}

// issue issues and records a server certificate for name under ca.
func (e *env) issue(ca *testCA, name string, o ...leafOptions) *x509.Certificate {
	e.tb.Helper()
	key, err := pki.GenerateKey(pki.ECP256)
	if err != nil {
		e.tb.Fatal(err)
	}
	profile, err := pki.LookupProfile("server")
	if err != nil {
		e.tb.Fatal(err)
	}
	profile.MinValidity = 0
	sans, err := pki.ParseSANs([]string{name}, nil, nil, nil)
	if err != nil {
		e.tb.Fatal(err)
	}
	now := e.clock.Now()
	notAfter := now.Add(30 * pki.Day)
	if len(o) > 0 && !o[0].notAfter.IsZero() {
		notAfter = o[0].notAfter
	}
	serial := newSerial(e.tb)
	part := partitionOf(serial, ca.rec.CRLPartitions)
	tmpl, err := pki.LeafTemplate(pki.LeafRequest{
		Profile: profile, Subject: pkix.Name{CommonName: name}, SANs: sans, PublicKey: key.Public(),
		Serial: serial, NotBefore: now.Add(-time.Minute), NotAfter: notAfter, URLs: urlsFor(ca, part),
	})
	if err != nil {
		e.tb.Fatal(err)
	}
	der, err := mustLinter(e.tb).Sign(tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		e.tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		e.tb.Fatal(err)
	}
	e.record(ca, cert, "server", part)
	return cert
}

// revoke revokes cert of ca in the store and notifies the service.
func (e *env) revoke(ca *testCA, cert *x509.Certificate, reason int) {
	e.tb.Helper()
	at := e.clock.Now()
	if _, err := e.st.RevokeCertificate(e.ctx, ca.id(), pki.SerialHex(cert.SerialNumber), reason, at); err != nil {
		e.tb.Fatal(err)
	}
	e.svc.Notify(ca.id(), pki.SerialHex(cert.SerialNumber), at)
}

// unhold releases cert of ca from hold and notifies the service.
func (e *env) unhold(ca *testCA, cert *x509.Certificate) {
	e.tb.Helper()
	if _, err := e.st.ReleaseHold(e.ctx, ca.id(), pki.SerialHex(cert.SerialNumber)); err != nil {
		e.tb.Fatal(err)
	}
	e.svc.Notify(ca.id(), pki.SerialHex(cert.SerialNumber), e.clock.Now())
}

// testKeys is the Keys of the test PKI; an offline CA cannot sign.
type testKeys struct {
	mu      sync.Mutex
	cas     map[string]*testCA
	offline map[string]bool
}

var errOffline = errors.New("test: CA is offline")

func (k *testKeys) ca(id string) (*testCA, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	c := k.cas[id]
	switch {
	case c == nil:
		return nil, fmt.Errorf("test: no CA %q: %w", id, store.ErrNotFound)
	case k.offline[id]:
		return nil, errOffline
	}
	return c, nil
}

func (k *testKeys) setOffline(id string, off bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.offline[id] = off
}

func (k *testKeys) Signer(ctx context.Context, caID string) (crypto.Signer, *x509.Certificate, error) {
	c, err := k.ca(caID)
	if err != nil {
		return nil, nil, err
	}
	return c.key, c.cert, nil
}

// testResponders issues responder certificates the way the CA service
// does: pki.OCSPResponderTemplate, linted and signed by the CA's key.
type testResponders struct {
	keys   *testKeys
	clock  *clock
	linter *pki.Linter

	mu     sync.Mutex
	issued []*x509.Certificate
}

func (r *testResponders) IssueOCSPResponder(ctx context.Context, caID string, pub crypto.PublicKey, validity time.Duration) (*x509.Certificate, error) {
	ca, err := r.keys.ca(caID)
	if err != nil {
		return nil, err
	}
	serial, err := pki.NewSerial(rand.Reader)
	if err != nil {
		return nil, err
	}
	now := r.clock.Now()
	notAfter := now.Add(validity)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	tmpl, err := pki.OCSPResponderTemplate(pki.OCSPResponderRequest{
		Subject:   pkix.Name{CommonName: ca.rec.Name + " OCSP responder"},
		PublicKey: pub, Serial: serial, NotBefore: now, NotAfter: notAfter,
	})
	if err != nil {
		return nil, err
	}
	der, err := r.linter.Sign(tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.issued = append(r.issued, cert)
	r.mu.Unlock()
	return cert, nil
}

func (r *testResponders) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.issued)
}

// get fetches url and returns the response and its body.
func get(tb testing.TB, url string, header ...string) (*http.Response, []byte) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return do(tb, req)
}

func do(tb testing.TB, req *http.Request) (*http.Response, []byte) {
	tb.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return res, body
}

// fetchCRL GETs a CRL and parses and verifies it against issuer.
func fetchCRL(tb testing.TB, url string, issuer *x509.Certificate) *x509.RevocationList {
	tb.Helper()
	res, body := get(tb, url)
	if res.StatusCode != http.StatusOK {
		tb.Fatalf("GET %s: %s: %s", url, res.Status, body)
	}
	return parseCRL(tb, body, issuer)
}

func parseCRL(tb testing.TB, der []byte, issuer *x509.Certificate) *x509.RevocationList {
	tb.Helper()
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		tb.Fatalf("ParseRevocationList: %v", err)
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		tb.Fatalf("CRL signature: %v", err)
	}
	return crl
}

// revokedSerials returns the serials (hex) on a CRL, with their reason codes.
func revokedSerials(crl *x509.RevocationList) map[string]int {
	m := map[string]int{}
	for _, e := range crl.RevokedCertificateEntries {
		m[pki.SerialHex(e.SerialNumber)] = e.ReasonCode
	}
	return m
}

// eventually polls cond until it holds or d passes.
func eventually(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ocspRequest returns a DER OCSP request for cert from x/crypto/ocsp.
func ocspRequestFor(tb testing.TB, cert, issuer *x509.Certificate, h crypto.Hash) []byte {
	tb.Helper()
	der, err := ocsp.CreateRequest(cert, issuer, &ocsp.RequestOptions{Hash: h})
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

// postOCSP POSTs an OCSP request and returns the HTTP response and body.
func postOCSP(tb testing.TB, url string, der []byte) (*http.Response, []byte) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(der))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/ocsp-request")
	return do(tb, req)
}

// checkOCSP parses an OCSP answer for cert and checks its signature and
// its responder certificate: issued by issuer for OCSP signing and valid
// at now, as is the answer.
func checkOCSP(tb testing.TB, body []byte, cert, issuer *x509.Certificate, now time.Time) *ocsp.Response {
	tb.Helper()
	r, err := ocsp.ParseResponseForCert(body, cert, issuer)
	if err != nil {
		tb.Fatalf("ParseResponseForCert: %v", err)
	}
	if r.Certificate == nil {
		tb.Fatal("OCSP answer carries no responder certificate")
	}
	if err := r.Certificate.CheckSignatureFrom(issuer); err != nil {
		tb.Fatalf("responder certificate: %v", err)
	}
	if now.Before(r.Certificate.NotBefore) || !now.Before(r.Certificate.NotAfter) {
		tb.Fatalf("responder certificate valid %s..%s, not at %s", r.Certificate.NotBefore, r.Certificate.NotAfter, now)
	}
	if now.Before(r.ThisUpdate) || !now.Before(r.NextUpdate) {
		tb.Fatalf("answer valid %s..%s, not at %s", r.ThisUpdate, r.NextUpdate, now)
	}
	if r.NextUpdate.After(r.Certificate.NotAfter) {
		tb.Fatalf("answer outlives its responder: %s > %s", r.NextUpdate, r.Certificate.NotAfter)
	}
	return r
}

// writePEM writes certificates as PEM into dir/name and returns the path.
func writePEM(tb testing.TB, dir, name string, certs ...*x509.Certificate) string {
	tb.Helper()
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return writeFile(tb, dir, name, b)
}

func writeFile(tb testing.TB, dir, name string, data []byte) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// openssl runs the openssl command, skipping the test when there is none.
func openssl(tb testing.TB, args ...string) (string, error) {
	tb.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		tb.Skip("openssl not found")
	}
	out, err := exec.Command(path, args...).CombinedOutput()
	return string(out), err
}
