package gateway

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/config"
	"github.com/trustgate/trustgate/internal/truststore/verify"
)

// fakeControlPlane is a SnapshotClient serving one snapshot, or an error.
type fakeControlPlane struct {
	mu          sync.Mutex
	snap        *apiv1.TrustStoreSnapshot
	err         error
	n           int // ETag counter
	calls       int
	notModified int
	unetagged   int // requests without an ETag
}

func (f *fakeControlPlane) TrustStoreSnapshot(_ context.Context, name, etag string) (*apiv1.TrustStoreSnapshot, string, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if etag == "" {
		f.unetagged++
	}
	if f.err != nil {
		return nil, "", false, f.err
	}
	if f.snap == nil || f.snap.Name != name {
		return nil, "", false, errors.New("no such trust store")
	}
	if etag == f.snap.ETag {
		f.notModified++
		return nil, etag, true, nil
	}
	s := *f.snap
	return &s, s.ETag, false, nil
}

// set publishes a new snapshot of "partners" at version.
func (f *fakeControlPlane) set(version int64, cas []*x509.Certificate, crls [][]byte, urls ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	s := &apiv1.TrustStoreSnapshot{Name: "partners", Version: version, ETag: fmt.Sprintf(`"%d"`, f.n), CRLs: crls, CRLURLs: urls}
	for _, c := range cas {
		s.CACertificates = append(s.CACertificates, c.Raw)
	}
	if s.CRLURLs == nil {
		s.CRLURLs = []string{}
	}
	f.snap = s
}

func (f *fakeControlPlane) fail(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *fakeControlPlane) counts() (calls, notModified, unetagged int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, f.notModified, f.unetagged
}

func TestControlPlaneSource(t *testing.T) {
	root := newCA(t, "CP Root")
	inter := root.sub(t, "CP Intermediate")
	stranger := newCA(t, "Stranger")
	good, doomed := inter.client(t, "good"), inter.client(t, "doomed")
	now := time.Now()
	fresh := func(revoked ...*x509.Certificate) []byte {
		var serials []*big.Int
		for _, c := range revoked {
			serials = append(serials, c.SerialNumber)
		}
		return inter.crl(t, now.Add(-time.Minute), now.Add(time.Hour), serials...)
	}
	cp := &fakeControlPlane{}
	cp.set(1, []*x509.Certificate{inter.cert}, [][]byte{fresh()})
	polls := map[string]int{}
	var pollMu sync.Mutex
	src := &ControlPlaneSource{Client: cp, Name: "partners", OnPoll: func(r string) { pollMu.Lock(); polls[r]++; pollMu.Unlock() }}
	ctx := t.Context()
	check := func(v *verify.Verifier, lc *leafCert, revoked bool) {
		t.Helper()
		_, err := v.Verify(lc.chain, time.Now())
		switch {
		case revoked && verify.ReasonOf(err) != verify.ClientCertCrlHit:
			t.Errorf("%s: %v, want revoked", lc.cert.Subject.CommonName, err)
		case !revoked && err != nil:
			t.Errorf("%s: %v, want accepted", lc.cert.Subject.CommonName, err)
		}
	}

	v1, ver1, err := src.Load(ctx)
	if err != nil || v1 == nil {
		t.Fatalf("first Load: %v", err)
	}
	check(v1, good, false)
	check(v1, doomed, false)
	// Unchanged: a 304, the same Verifier.
	if v, ver, err := src.Load(ctx); err != nil || v != v1 || ver != ver1 {
		t.Fatalf("unchanged Load: %v, same verifier %v, version %s then %s", err, v == v1, ver1, ver)
	}
	if _, nm, _ := cp.counts(); nm != 1 {
		t.Errorf("an unchanged store cost %d 304s, want 1", nm)
	}
	// A revocation: a new snapshot, a new Verifier.
	cp.set(1, []*x509.Certificate{inter.cert}, [][]byte{fresh(doomed.cert)})
	v2, ver2, err := src.Load(ctx)
	if err != nil || v2 == v1 || ver2 == ver1 {
		t.Fatalf("Load after a revocation: %v, version %s", err, ver2)
	}
	check(v2, good, false)
	check(v2, doomed, true)

	// Whatever goes wrong, the last good Verifier stays.
	for _, tc := range []struct {
		name string
		mod  func()
		want string
	}{
		{"control plane down", func() { cp.fail(errors.New("connection refused")) }, "control plane: connection refused"},
		{"unparsable CA", func() {
			cp.fail(nil)
			cp.set(2, nil, nil)
			cp.snap.CACertificates = [][]byte{[]byte("junk")}
		}, "CA certificate 0"},
		{"CRL of an unknown issuer", func() {
			cp.set(3, []*x509.Certificate{inter.cert}, [][]byte{stranger.crl(t, now.Add(-time.Minute), now.Add(time.Hour))})
		}, "version 3"},
		{"the same, unchanged", func() {}, "version 3"},
		{"no CA", func() { cp.set(4, nil, nil) }, "no CA certificate"},
	} {
		tc.mod()
		v, ver, err := src.Load(ctx)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.want)
		}
		if v != v2 || ver != ver2 {
			t.Errorf("%s: the Verifier changed (version %s)", tc.name, ver)
		}
	}

	// CRL URLs of the snapshot are fetched, conditionally; a new one that
	// cannot be fetched keeps the last Verifier.
	var (
		crlMu   sync.Mutex
		crlBody = fresh(doomed.cert)
		crlGets int
	)
	crlSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		crlMu.Lock()
		defer crlMu.Unlock()
		crlGets++
		w.Header().Set("ETag", `"crl"`)
		if r.Header.Get("If-None-Match") == `"crl"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Write(crlBody)
	}))
	defer crlSrv.Close()
	cp.set(5, []*x509.Certificate{root.cert, inter.cert}, nil, crlSrv.URL+"/inter.crl")
	v3, ver3, err := src.Load(ctx)
	if err != nil || v3 == v2 || !strings.HasPrefix(ver3, "5-") {
		t.Fatalf("Load with a CRL URL: %v, version %s", err, ver3)
	}
	check(v3, doomed, true)
	if len(v3.CRLs()) != 1 {
		t.Errorf("%d CRLs compiled, want the fetched one", len(v3.CRLs()))
	}
	ln := httptest.NewServer(http.NotFoundHandler())
	down := ln.URL
	ln.Close()
	cp.set(6, []*x509.Certificate{root.cert, inter.cert}, nil, crlSrv.URL+"/inter.crl", down+"/root.crl")
	if v, _, err := src.Load(ctx); v != v3 || err == nil || !strings.Contains(err.Error(), "root.crl") {
		t.Errorf("a new CRL URL that cannot be fetched: %v, same verifier %v", err, v == v3)
	}

	// Invalidate fetches the whole snapshot again.
	cp.set(7, []*x509.Certificate{inter.cert}, [][]byte{fresh()})
	if _, _, err := src.Load(ctx); err != nil {
		t.Fatal(err)
	}
	_, _, before := cp.counts()
	src.Invalidate()
	if _, _, err := src.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, after := cp.counts(); after != before+1 {
		t.Errorf("Invalidate: %d requests without an ETag, want %d", after, before+1)
	}
	pollMu.Lock()
	defer pollMu.Unlock()
	if polls[PollChanged] < 5 || polls[PollNotModified] < 1 || polls[PollError] < 2 {
		t.Errorf("polls seen: %v", polls)
	}
}

// TestGatewayNamedTrustStore runs a listener whose trust store is named,
// against a control plane that speaks HTTP: the token is presented, an
// unchanged store costs 304s, a revocation arrives by polling, and a
// control plane that goes away leaves the last snapshot enforced.
func TestGatewayNamedTrustStore(t *testing.T) {
	var (
		mu       sync.Mutex
		snap     apiv1.TrustStoreSnapshot
		up       = true
		status   = map[int]int{}
		badAuths int
	)
	const token = "tgat_test-token"
	var cpURL string
	e := newEnv(t, envOpt{mutate: func(e *env, g *config.Gateway) {
		snap = apiv1.TrustStoreSnapshot{Name: "partners", Version: 1, ETag: `"v1"`,
			CACertificates: [][]byte{e.inter.cert.Raw}, CRLs: [][]byte{}, CRLURLs: []string{}}
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			defer mu.Unlock()
			code := http.StatusOK
			defer func() { status[code]++ }()
			switch {
			case !up:
				code = http.StatusServiceUnavailable
				w.WriteHeader(code)
				return
			case r.Header.Get("Authorization") != "Bearer "+token:
				badAuths++
				code = http.StatusUnauthorized
				w.WriteHeader(code)
				return
			case r.URL.Path != "/v1/truststores/partners/snapshot":
				code = http.StatusNotFound
				w.WriteHeader(code)
				return
			}
			w.Header().Set("ETag", snap.ETag)
			if r.Header.Get("If-None-Match") == snap.ETag {
				code = http.StatusNotModified
				w.WriteHeader(code)
				return
			}
			json.NewEncoder(w).Encode(snap)
		}))
		t.Cleanup(srv.Close)
		cpURL = srv.URL
		writeFile(t, e.path("cp-ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
		writeFile(t, e.path("token"), []byte(token+"\n"))
		g.Listeners[0].MTLS.TrustStore = config.GatewayTrustStore{Name: "partners"}
		g.ControlPlane = config.GatewayControlPlane{Address: cpURL, TokenFile: e.path("token"), CAFile: e.path("cp-ca.pem"),
			PollInterval: config.Duration(100 * time.Millisecond)}
	}})
	ok := func(lc *leafCert) bool {
		r := e.get("main", e.clientTLS(lc), "/", nil)
		return r.err == nil && r.status == 200
	}
	if !ok(e.client) || !ok(e.revoked) {
		t.Fatal("clients of the named trust store are refused")
	}
	// Unchanged: 304s.
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := status[http.StatusNotModified]
		mu.Unlock()
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no 304s after 5 s: %v", status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A revocation reaches the listener by polling.
	mu.Lock()
	snap.ETag, snap.CRLs = `"v1-crl"`, [][]byte{e.inter.crl(t, time.Now().Add(-time.Minute), time.Now().Add(time.Hour), e.revoked.cert.SerialNumber)}
	mu.Unlock()
	deadline = time.Now().Add(5 * time.Second)
	for ok(e.revoked) {
		if time.Now().After(deadline) {
			t.Fatal("the revoked client is still accepted after 5 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The control plane goes away: the last snapshot stays in force.
	mu.Lock()
	up = false
	mu.Unlock()
	before := pollCount(t, e.gw, "main", PollError)
	deadline = time.Now().Add(5 * time.Second)
	for pollCount(t, e.gw, "main", PollError) < before+2 {
		if time.Now().After(deadline) {
			t.Fatal("no failed polls counted")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !ok(e.client) || ok(e.revoked) {
		t.Fatal("with the control plane down, the last snapshot is not enforced")
	}
	if pollCount(t, e.gw, "main", PollNotModified) < 3 {
		t.Error("304s are not counted")
	}
	e.logs.find(t, "msg", "gateway: trust store reload failed; keeping the previous one")
	mu.Lock()
	defer mu.Unlock()
	if badAuths != 0 {
		t.Errorf("%d requests without the token", badAuths)
	}
	if b, _ := os.ReadFile(e.path("token")); strings.Contains(e.logs.b.String(), strings.TrimSpace(string(b))) {
		t.Error("the token is in the log")
	}
}

// pollCount reads trustgate_gateway_control_plane_polls_total{listener, result}.
func pollCount(t *testing.T, g *Gateway, listener, result string) float64 {
	t.Helper()
	mfs, err := g.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "trustgate_gateway_control_plane_polls_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["listener"] == listener && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
