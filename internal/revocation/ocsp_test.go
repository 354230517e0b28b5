package revocation

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/store"
)

// TestOCSPOpenSSL has openssl ask the responder: good, then revoked with
// the reason after a revocation; two certificates in one request; with
// and without a nonce.
func TestOCSPOpenSSL(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.issue(e.sub, "a.example")
	b := e.issue(e.sub, "b.example")
	e.run()
	srv := e.server()
	dir := t.TempDir()
	issuer := writePEM(t, dir, "ca.pem", e.sub.cert)
	root := writePEM(t, dir, "root.pem", e.root.cert)
	leafA := writePEM(t, dir, "a.pem", a)
	leafB := writePEM(t, dir, "b.pem", b)
	url := srv.URL + "/ocsp/sub"
	query := func(t *testing.T, extra ...string) string {
		t.Helper()
		args := append([]string{"ocsp", "-issuer", issuer, "-url", url, "-CAfile", root}, extra...)
		out, err := openssl(t, args...)
		if err != nil {
			t.Fatalf("openssl ocsp: %v\n%s", err, out)
		}
		if !strings.Contains(out, "Response verify OK") {
			t.Fatalf("openssl did not verify the response:\n%s", out)
		}
		return out
	}

	out := query(t, "-cert", leafA)
	if !strings.Contains(out, "a.pem: good") {
		t.Errorf("want good:\n%s", out)
	}
	if strings.Contains(out, "WARNING") {
		t.Errorf("openssl warns (a nonce request must get the nonce back):\n%s", out)
	}

	e.revoke(e.sub, a, 1)
	eventually(t, time.Second, "OCSP answers revoked", func() bool {
		return strings.Contains(query(t, "-cert", leafA, "-no_nonce"), "a.pem: revoked")
	})
	out = query(t, "-cert", leafA, "-no_nonce")
	if !strings.Contains(out, "Reason: keyCompromise") || !strings.Contains(out, "Revocation Time:") {
		t.Errorf("revoked answer lacks time or reason:\n%s", out)
	}

	t.Run("two certificates", func(t *testing.T) {
		for _, nonce := range []string{"-nonce", "-no_nonce"} {
			out := query(t, "-cert", leafA, "-cert", leafB, nonce)
			if !strings.Contains(out, "a.pem: revoked") || !strings.Contains(out, "b.pem: good") {
				t.Errorf("%s: want a revoked and b good:\n%s", nonce, out)
			}
			if strings.Contains(out, "WARNING") {
				t.Errorf("%s: openssl warns:\n%s", nonce, out)
			}
		}
	})
	t.Run("nonce", func(t *testing.T) {
		out := query(t, "-cert", leafB, "-nonce", "-resp_text")
		if !strings.Contains(out, "OCSP Nonce") {
			t.Errorf("nonce not echoed:\n%s", out)
		}
		out = query(t, "-cert", leafB, "-no_nonce", "-resp_text")
		if strings.Contains(out, "OCSP Nonce") {
			t.Errorf("nonce in an answer to a request without one:\n%s", out)
		}
	})
	t.Run("sha256", func(t *testing.T) {
		if out := query(t, "-sha256", "-cert", leafB, "-no_nonce"); !strings.Contains(out, "b.pem: good") {
			t.Errorf("SHA-256 CertID: want good:\n%s", out)
		}
	})
}

// TestOCSPGoClient checks answers with x/crypto/ocsp over GET and POST,
// SHA-1 and SHA-256, and the HTTP caching headers of RFC 5019 §6.
func TestOCSPGoClient(t *testing.T) {
	e := newEnv(t, envOptions{})
	good := e.issue(e.sub, "good.example")
	bad := e.issue(e.sub, "bad.example")
	e.revoke(e.sub, bad, 5)
	e.svc.flush(e.ctx)
	srv := e.server()
	now := e.clock.Now()

	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		for _, tc := range []struct {
			cert   *x509.Certificate
			status int
		}{{good, ocsp.Good}, {bad, ocsp.Revoked}} {
			req := ocspRequestFor(t, tc.cert, e.sub.cert, h)

			res, body := postOCSP(t, srv.URL+"/ocsp/sub", req)
			if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/ocsp-response" {
				t.Fatalf("POST: %s %s", res.Status, res.Header.Get("Content-Type"))
			}
			if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("POST Cache-Control %q", cc)
			}
			r := checkOCSP(t, body, tc.cert, e.sub.cert, now)
			if r.Status != tc.status {
				t.Errorf("%v POST: status %d, want %d", h, r.Status, tc.status)
			}
			if tc.status == ocsp.Revoked && (r.RevocationReason != 5 || r.RevokedAt.IsZero()) {
				t.Errorf("revoked: reason %d at %s", r.RevocationReason, r.RevokedAt)
			}

			res, body2 := get(t, srv.URL+"/ocsp/sub/"+url.PathEscape(base64.StdEncoding.EncodeToString(req)))
			if res.StatusCode != http.StatusOK {
				t.Fatalf("GET: %s", res.Status)
			}
			if !bytes.Equal(body, body2) {
				t.Errorf("%v: GET and POST answers differ; both should come from the cache", h)
			}
			r = checkOCSP(t, body2, tc.cert, e.sub.cert, now)
			lm, err1 := http.ParseTime(res.Header.Get("Last-Modified"))
			exp, err2 := http.ParseTime(res.Header.Get("Expires"))
			if err1 != nil || err2 != nil || !lm.Equal(r.ThisUpdate) || !exp.Equal(r.NextUpdate) {
				t.Errorf("Last-Modified %q Expires %q, want %s and %s", res.Header.Get("Last-Modified"), res.Header.Get("Expires"), r.ThisUpdate, r.NextUpdate)
			}
			cc := res.Header.Get("Cache-Control")
			for _, want := range []string{"max-age=300", "public", "no-transform", "must-revalidate"} {
				if !strings.Contains(cc, want) {
					t.Errorf("GET Cache-Control %q lacks %s", cc, want)
				}
			}
			etag := res.Header.Get("ETag")
			if res, _ := get(t, srv.URL+"/ocsp/sub/"+base64.StdEncoding.EncodeToString(req), "If-None-Match", etag); res.StatusCode != http.StatusNotModified {
				t.Errorf("If-None-Match: %s", res.Status)
			}
		}
	}
	// The unknown serial of a served issuer is unknown.
	other := e.newCA("other", e.root, 0)
	stranger := e.issue(other, "x.example")
	req, _ := ocsp.CreateRequest(stranger, e.sub.cert, nil) // issuer sub, serial sub never issued
	_, body := postOCSP(t, srv.URL+"/ocsp/sub", req)
	if r := checkOCSP(t, body, stranger, e.sub.cert, now); r.Status != ocsp.Unknown {
		t.Errorf("serial never issued: status %d, want unknown", r.Status)
	}
}

// certIDASN1 and the types below encode requests independently of the
// code under test.
type certIDASN1 struct {
	HashAlgorithm pkix.AlgorithmIdentifier
	NameHash      []byte
	IssuerKeyHash []byte
	SerialNumber  *big.Int
}

type requestASN1 struct {
	Cert certIDASN1
}

type tbsRequestASN1 struct {
	Version       int              `asn1:"explicit,tag:0,default:0,optional"`
	RequestorName pkix.RDNSequence `asn1:"explicit,tag:1,optional"`
	RequestList   []requestASN1
	Extensions    []pkix.Extension `asn1:"explicit,tag:2,optional"`
}

type ocspRequestASN1 struct {
	TBSRequest tbsRequestASN1
}

// certIDOf returns the CertID a request for cert carries.
func certIDOf(t testing.TB, cert, issuer *x509.Certificate, h crypto.Hash) certIDASN1 {
	t.Helper()
	der := ocspRequestFor(t, cert, issuer, h)
	var req ocspRequestASN1
	if _, err := asn1.Unmarshal(der, &req); err != nil {
		t.Fatal(err)
	}
	return req.TBSRequest.RequestList[0].Cert
}

func buildRequest(t testing.TB, ids []certIDASN1, exts ...pkix.Extension) []byte {
	t.Helper()
	var req ocspRequestASN1
	for _, id := range ids {
		req.TBSRequest.RequestList = append(req.TBSRequest.RequestList, requestASN1{id})
	}
	req.TBSRequest.Extensions = exts
	der, err := asn1.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

var oidNonce = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}

func nonceExt(t testing.TB, n int) pkix.Extension {
	t.Helper()
	v, err := asn1.Marshal(bytes.Repeat([]byte{0x5a}, n))
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oidNonce, Value: v}
}

// TestOCSPMultipleCertIDs: one request, three certificates, three
// SingleResponses, each found by x/crypto/ocsp and by our own reading.
func TestOCSPMultipleCertIDs(t *testing.T) {
	e := newEnv(t, envOptions{})
	good := e.issue(e.sub, "good.example")
	bad := e.issue(e.sub, "bad.example")
	held := e.issue(e.sub, "held.example")
	e.revoke(e.sub, bad, 0)
	e.revoke(e.sub, held, store.ReasonCertificateHold)
	srv := e.server()
	ids := []certIDASN1{
		certIDOf(t, good, e.sub.cert, crypto.SHA1),
		certIDOf(t, bad, e.sub.cert, crypto.SHA256),
		certIDOf(t, held, e.sub.cert, crypto.SHA1),
	}
	unknown := ids[0]
	unknown.SerialNumber = big.NewInt(12345)
	ids = append(ids, unknown)
	for _, exts := range [][]pkix.Extension{nil, {nonceExt(t, 32)}} {
		_, body := postOCSP(t, srv.URL+"/ocsp/sub", buildRequest(t, ids, exts...))
		for _, tc := range []struct {
			cert   *x509.Certificate
			status int
			reason int
		}{{good, ocsp.Good, 0}, {bad, ocsp.Revoked, 0}, {held, ocsp.Revoked, store.ReasonCertificateHold}} {
			r := checkOCSP(t, body, tc.cert, e.sub.cert, e.clock.Now())
			if r.Status != tc.status || r.RevocationReason != tc.reason {
				t.Errorf("%s: status %d reason %d, want %d %d", tc.cert.Subject.CommonName, r.Status, r.RevocationReason, tc.status, tc.reason)
			}
		}
		resp := parseBasic(t, body)
		if len(resp.TBSResponseData.Responses) != len(ids) {
			t.Fatalf("%d SingleResponses for %d CertIDs", len(resp.TBSResponseData.Responses), len(ids))
		}
		for i, sr := range resp.TBSResponseData.Responses {
			want, _ := asn1.Marshal(ids[i])
			if !bytes.Equal(sr.CertID.FullBytes, want) {
				t.Errorf("SingleResponse %d does not echo its CertID", i)
			}
		}
		if last := resp.TBSResponseData.Responses[3]; last.Unknown.Tag != 2 || last.Unknown.Class != asn1.ClassContextSpecific {
			t.Errorf("serial never issued: %+v, want unknown", last)
		}
		gotNonce := len(resp.TBSResponseData.Extensions) == 1 && resp.TBSResponseData.Extensions[0].Id.Equal(oidNonce)
		if gotNonce != (exts != nil) || gotNonce && !bytes.Equal(resp.TBSResponseData.Extensions[0].Value, exts[0].Value) {
			t.Errorf("nonce echoed %v, want %v", gotNonce, exts != nil)
		}
	}
}

// Our own reading of a response, with encoding/asn1.
type basicResponseASN1 struct {
	TBSResponseData struct {
		Raw         asn1.RawContent
		Version     int `asn1:"optional,default:0,explicit,tag:0"`
		ResponderID asn1.RawValue
		ProducedAt  time.Time `asn1:"generalized"`
		Responses   []struct {
			CertID     asn1.RawValue
			Good       asn1.Flag     `asn1:"tag:0,optional"`
			Revoked    asn1.RawValue `asn1:"tag:1,optional"`
			Unknown    asn1.RawValue `asn1:"tag:2,optional"`
			ThisUpdate time.Time     `asn1:"generalized"`
			NextUpdate time.Time     `asn1:"generalized,explicit,tag:0,optional"`
		}
		Extensions []pkix.Extension `asn1:"explicit,tag:1,optional"`
	}
	SignatureAlgorithm pkix.AlgorithmIdentifier
	Signature          asn1.BitString
	Certificates       []asn1.RawValue `asn1:"explicit,tag:0,optional"`
}

func parseBasic(t testing.TB, der []byte) *basicResponseASN1 {
	t.Helper()
	var outer struct {
		Status   asn1.Enumerated
		Response struct {
			Type  asn1.ObjectIdentifier
			Bytes []byte
		} `asn1:"explicit,tag:0,optional"`
	}
	if rest, err := asn1.Unmarshal(der, &outer); err != nil || len(rest) > 0 {
		t.Fatalf("OCSPResponse: %v (%d trailing octets)", err, len(rest))
	}
	var basic basicResponseASN1
	if rest, err := asn1.Unmarshal(outer.Response.Bytes, &basic); err != nil || len(rest) > 0 {
		t.Fatalf("BasicOCSPResponse: %v", err)
	}
	return &basic
}

// TestOCSPCacheAndNotify: a cached answer is served again without being
// re-signed; after a revocation the answer changes; a request with a
// nonce is always fresh.
func TestOCSPCacheAndNotify(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.issue(e.sub, "c.example")
	e.run()
	srv := e.server()
	req := ocspRequestFor(t, c, e.sub.cert, crypto.SHA1)
	getURL := srv.URL + "/ocsp/sub/" + base64.StdEncoding.EncodeToString(req)
	_, first := get(t, getURL)
	_, second := get(t, getURL)
	if !bytes.Equal(first, second) {
		t.Error("a repeated request was signed again")
	}
	withNonce := buildRequest(t, []certIDASN1{certIDOf(t, c, e.sub.cert, crypto.SHA1)}, nonceExt(t, 16))
	_, n1 := postOCSP(t, srv.URL+"/ocsp/sub", withNonce)
	_, n2 := postOCSP(t, srv.URL+"/ocsp/sub", withNonce)
	if bytes.Equal(n1, n2) {
		t.Error("nonce answers are identical: not freshly signed")
	}
	e.revoke(e.sub, c, 1)
	eventually(t, time.Second, "cached answer re-signed as revoked", func() bool {
		_, body := get(t, getURL)
		return checkOCSP(t, body, c, e.sub.cert, e.clock.Now()).Status == ocsp.Revoked
	})
	if n := e.svc.cacheEntries.Load(); n != 1 {
		t.Errorf("%d cached answers, want 1", n)
	}
}

// TestOCSPFirstRequestFillsCache: nothing is signed when a certificate is
// issued; the first request signs the answer and caches it, and the next
// one is served from the cache (ECDSA signatures are randomized, so equal
// bytes mean the answer was not signed again).
func TestOCSPFirstRequestFillsCache(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.issue(e.sub, "c.example")
	e.run()
	if n := e.svc.cacheEntries.Load(); n != 0 {
		t.Fatalf("%d cached answers before any request, want 0", n)
	}
	srv := e.server()
	req := ocspRequestFor(t, c, e.sub.cert, crypto.SHA1)
	_, first := postOCSP(t, srv.URL+"/ocsp/sub", req)
	if r := checkOCSP(t, first, c, e.sub.cert, e.clock.Now()); r.Status != ocsp.Good {
		t.Errorf("status %d", r.Status)
	}
	if n := e.svc.cacheEntries.Load(); n != 1 {
		t.Errorf("%d cached answers after the first request, want 1", n)
	}
	_, second := postOCSP(t, srv.URL+"/ocsp/sub", req)
	if !bytes.Equal(first, second) {
		t.Error("the second answer differs from the first: it was signed again, not served from the cache")
	}
}

// TestOCSPResponderRotation walks a fake clock through three responder
// lifetimes: the responder is replaced at half its life, answers are
// re-signed by the new one, and at every moment the answer served
// verifies with a responder certificate valid then.
func TestOCSPResponderRotation(t *testing.T) {
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	e := newEnv(t, envOptions{now: start, cfg: func(c *Config) {
		c.ResponderValidity = time.Hour
		c.OCSPValidity = 10 * time.Minute
	}})
	c := e.issue(e.sub, "c.example")
	req := ocspRequestFor(t, c, e.sub.cert, crypto.SHA1)
	h := e.svc.Handler()
	serve := func() []byte {
		r, _ := http.NewRequest(http.MethodPost, "/ocsp/sub", bytes.NewReader(req))
		r.Header.Set("Content-Type", "application/ocsp-request")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Body.Bytes()
	}
	seen := map[string]bool{}
	for now := start; now.Before(start.Add(3 * time.Hour)); now = e.clock.Advance(time.Minute) {
		if now.Sub(start)%(5*time.Minute) == 0 {
			e.svc.sweep(e.ctx, now) // the Run loop, on the fake clock
		}
		r := checkOCSP(t, serve(), c, e.sub.cert, now)
		seen[r.Certificate.SerialNumber.String()] = true
		if left := r.Certificate.NotAfter.Sub(now); left < 20*time.Minute {
			t.Fatalf("at %s the answer is signed by a responder with %s left: rotation is late", now.Sub(start), left)
		}
	}
	if len(seen) < 5 {
		t.Errorf("%d responder certificates in 3 hours of 1-hour responders, want at least 5", len(seen))
	}
	if n := e.resp.count(); n > 7 {
		t.Errorf("%d responder certificates issued, want about 6", n)
	}
	for _, cert := range e.resp.issued {
		if err := mustLinter(t).Lint(cert.Raw); err != nil {
			t.Errorf("responder certificate fails zlint: %v", err)
		}
	}
}

// TestOCSPOfflineCA: a CA that cannot sign keeps answering with its
// current responder until that expires, then answers tryLater (HTTP 200).
func TestOCSPOfflineCA(t *testing.T) {
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	e := newEnv(t, envOptions{now: start, cfg: func(c *Config) {
		c.ResponderValidity = time.Hour
		c.OCSPValidity = 10 * time.Minute
	}})
	c := e.issue(e.sub, "c.example")
	req := ocspRequestFor(t, c, e.sub.cert, crypto.SHA1)
	h := e.svc.Handler()
	serve := func() []byte {
		r := httptest.NewRequest(http.MethodPost, "/ocsp/sub", bytes.NewReader(req))
		r.Header.Set("Content-Type", "application/ocsp-request")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			t.Fatalf("HTTP %d", w.Code)
		}
		return w.Body.Bytes()
	}
	first := checkOCSP(t, serve(), c, e.sub.cert, start)
	e.keys.setOffline(e.sub.id(), true)
	for now := start; now.Before(first.Certificate.NotAfter); now = e.clock.Advance(5 * time.Minute) {
		e.svc.sweep(e.ctx, now)
		r := checkOCSP(t, serve(), c, e.sub.cert, now)
		if !r.Certificate.Equal(first.Certificate) {
			t.Fatal("offline CA got a new responder certificate")
		}
	}
	e.svc.sweep(e.ctx, e.clock.Now())
	if got := ocspStatus(t, serve()); got != ocsp.TryLater {
		t.Errorf("after the responder expired: status %d, want tryLater", got)
	}
	// Online again: a new responder, answers again.
	e.keys.setOffline(e.sub.id(), false)
	now := e.clock.Advance(responderRetry)
	if r := checkOCSP(t, serve(), c, e.sub.cert, now); r.Certificate.Equal(first.Certificate) {
		t.Error("no new responder after coming back online")
	}
}

// countingStore counts the status lookups and revoked-list walks the
// service makes.
type countingStore struct {
	Store
	lookups, walks atomic.Int64
}

func (c *countingStore) GetCertificateByCA(ctx context.Context, caID, serial string) (*store.Certificate, error) {
	c.lookups.Add(1)
	return c.Store.GetCertificateByCA(ctx, caID, serial)
}

func (c *countingStore) ListRevoked(ctx context.Context, caID string, partition int, expiresAfter time.Time, fn func(store.RevokedEntry) error) error {
	c.walks.Add(1)
	return c.Store.ListRevoked(ctx, caID, partition, expiresAfter, fn)
}

func (c *countingStore) ReadCRL(ctx context.Context, q store.CRLQuery, fn func(store.RevokedEntry) error, keep func() bool) (int64, error) {
	c.walks.Add(1)
	return c.Store.ReadCRL(ctx, q, fn, keep)
}

// TestOCSPNotifyRefreshesOnlyChanged: a change re-checks the cached
// answers of the changed certificate alone, in every CertID variant, and
// leaves the others as they were signed; a hold and its release each
// reach the cache; a Notify without a serial re-checks everything.
func TestOCSPNotifyRefreshesOnlyChanged(t *testing.T) {
	e := newEnv(t, envOptions{})
	cs := &countingStore{Store: e.st}
	e.svc.cfg.Store = cs
	var certs []*x509.Certificate
	for i := range 20 {
		certs = append(certs, e.issue(e.sub, fmt.Sprintf("c%d.example", i)))
	}
	changed, held := certs[0], certs[1]
	h := e.svc.Handler()
	ask := func(c *x509.Certificate, hash crypto.Hash) *ocsp.Response {
		t.Helper()
		r := httptest.NewRequest(http.MethodPost, "/ocsp/sub", bytes.NewReader(ocspRequestFor(t, c, e.sub.cert, hash)))
		r.Header.Set("Content-Type", "application/ocsp-request")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return checkOCSP(t, w.Body.Bytes(), c, e.sub.cert, e.clock.Now())
	}
	for _, c := range certs {
		ask(c, crypto.SHA1)
	}
	ask(changed, crypto.SHA256) // a second variant of the same certificate
	a, err := e.svc.authorityByID(e.ctx, e.sub.id())
	if err != nil {
		t.Fatal(err)
	}
	snapshot := func() map[string]*answer {
		m := map[string]*answer{}
		for v := range a.cache {
			for _, it := range a.cache[v].collect(nil, v, func(*answer) bool { return true }) {
				m[fmt.Sprint(v, it.serial)] = it.ans
			}
		}
		return m
	}
	// unchangedBut fails the test if an answer other than those of the
	// serials in except was replaced.
	unchangedBut := func(before map[string]*answer, except ...*x509.Certificate) {
		t.Helper()
		after := snapshot()
		if len(after) != len(before) {
			t.Fatalf("%d cached answers, want %d", len(after), len(before))
		}
		skip := map[string]bool{}
		for _, c := range except {
			skip[string(c.SerialNumber.Bytes())] = true
		}
		for k, ans := range before {
			serial := ans.serialHex
			key, _ := cacheKey(serial)
			if !skip[key] && after[k] != ans {
				t.Errorf("the answer of %s was re-signed, though its certificate did not change", serial)
			}
		}
	}

	before := snapshot()
	e.revoke(e.sub, changed, 1)
	lookups, walks := cs.lookups.Load(), cs.walks.Load()
	e.svc.flush(e.ctx)
	if got := cs.lookups.Load() - lookups; got > 2 {
		t.Errorf("one revocation made %d status lookups, want at most 2 (one per cached variant)", got)
	}
	for _, hash := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
		if r := ask(changed, hash); r.Status != ocsp.Revoked || r.RevocationReason != 1 {
			t.Errorf("%v answer after the revocation: status %d, reason %d", hash, r.Status, r.RevocationReason)
		}
	}
	unchangedBut(before, changed)
	if got := cs.walks.Load() - walks; got > 1 {
		t.Errorf("%d walks of the revoked list, want only the CRL's", got)
	}

	for _, step := range []struct {
		name   string
		do     func()
		status int
	}{
		{"hold", func() { e.revoke(e.sub, held, store.ReasonCertificateHold) }, ocsp.Revoked},
		{"release", func() { e.unhold(e.sub, held) }, ocsp.Good},
	} {
		before = snapshot()
		step.do()
		e.svc.flush(e.ctx)
		unchangedBut(before, held)
		// Straight from the cache: what a cached answer says now.
		key, _ := cacheKey(pki.SerialHex(held.SerialNumber))
		if ans := a.cache[0].get([]byte(key)); ans == nil || ans == before[fmt.Sprint(0, key)] {
			t.Fatalf("after %s: the cached answer was not re-signed", step.name)
		}
		if r := ask(held, crypto.SHA1); r.Status != step.status {
			t.Errorf("after %s: status %d, want %d", step.name, r.Status, step.status)
		}
	}

	// A Notify that names no certificate re-checks every cached answer.
	lookups = cs.lookups.Load()
	e.svc.Notify(e.sub.id(), "", e.clock.Now())
	e.svc.flush(e.ctx)
	if got := cs.lookups.Load() - lookups; got < int64(len(certs)) {
		t.Errorf("Notify without a serial: %d status lookups, want one per cached answer (%d+)", got, len(certs))
	}
}

// TestPendingSerialsBounded: past maxPendingSerials changed serials, a
// pending change stops listing them and re-checks everything instead.
func TestPendingSerialsBounded(t *testing.T) {
	var p pendingChange
	for i := range maxPendingSerials {
		p.addSerial(fmt.Sprintf("%x", i+1))
	}
	p.addSerial("1") // already there
	if p.allSerials || len(p.serials) != maxPendingSerials {
		t.Fatalf("at the bound: all=%v, %d serials", p.allSerials, len(p.serials))
	}
	p.addSerial("ffff")
	if !p.allSerials || p.serials != nil {
		t.Fatalf("past the bound: all=%v, %d serials", p.allSerials, len(p.serials))
	}
	var q pendingChange
	q.addSerial("ab")
	q.mergeSerials(&p)
	if !q.allSerials {
		t.Error("merging a change of all serials kept a list")
	}
}
