package gateway

import (
	"crypto/x509"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/truststore/verify"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestSnapshotFile restarts a ControlPlaneSource with no control plane
// answering: it starts from the snapshot on disk, CRL URL copies included,
// and counts the snapshot's age from the last confirmation; files that are
// missing, damaged or of another trust store are refused.
func TestSnapshotFile(t *testing.T) {
	root := newCA(t, "Snap Root")
	inter := root.sub(t, "Snap Intermediate")
	ext := newCA(t, "Snap External")
	good, doomed, extDoomed := inter.client(t, "good"), inter.client(t, "doomed"), ext.client(t, "ext-doomed")
	now := time.Now().Truncate(time.Second)
	crlURL := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write(ext.crl(t, now.Add(-time.Minute), now.Add(time.Hour), extDoomed.cert.SerialNumber))
	}))
	t.Cleanup(crlURL.Close)
	cp := &fakeControlPlane{}
	cp.set(3, []*x509.Certificate{inter.cert, ext.cert},
		[][]byte{inter.crl(t, now.Add(-time.Minute), now.Add(time.Hour), doomed.cert.SerialNumber)}, crlURL.URL)
	clock := &fakeClock{t: now}
	file := filepath.Join(t.TempDir(), "partners.snapshot.json")
	newSource := func() *ControlPlaneSource {
		return &ControlPlaneSource{Client: cp, Name: "partners", CacheFile: file, MaxStaleness: time.Hour, Now: clock.Now}
	}
	checkVerifier := func(t *testing.T, v *verify.Verifier) {
		t.Helper()
		for _, c := range []struct {
			lc     *leafCert
			reason verify.Reason
		}{{good, 0}, {doomed, verify.ClientCertCrlHit}, {extDoomed, verify.ClientCertCrlHit}} {
			if _, err := v.Verify(c.lc.chain, now); verify.ReasonOf(err) != c.reason {
				t.Errorf("%s: %v, want reason %q", c.lc.cert.Subject.CommonName, err, c.reason)
			}
		}
	}

	first := newSource()
	v, _, err := first.Load(t.Context())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	checkVerifier(t, v)
	clock.add(10 * time.Minute)
	// A 304, and the CRL URL fetched again: the file is rewritten.
	_, version, err := first.Load(t.Context())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}

	// The control plane and the CRL URL are gone; a new source starts from the file.
	cp.fail(errors.New("connection refused"))
	crlURL.Close()
	clock.add(5 * time.Minute)
	second := newSource()
	v2, version2, err := second.Load(t.Context())
	if err != nil {
		t.Fatalf("Load from the file: %v", err)
	}
	checkVerifier(t, v2)
	if version2 != version {
		t.Errorf("version from the file %q, want %q", version2, version)
	}
	if age, expired := second.Age(clock.Now()); age != 5*time.Minute || expired {
		t.Errorf("Age = %v, %v; want 5m0s, false", age, expired)
	}
	// Later polls fail; the file's snapshot stays in force until it is too old.
	if v3, _, err := second.Load(t.Context()); err == nil || v3 != v2 {
		t.Errorf("Load with no control plane: %v, same verifier %v; want an error and the same verifier", err, v3 == v2)
	}
	clock.add(56 * time.Minute)
	if age, expired := second.Age(clock.Now()); !expired {
		t.Errorf("Age = %v, not expired past MaxStaleness", age)
	}

	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		content []byte
		source  string
	}{
		{"fail/missing", nil, "partners"},
		{"fail/damaged", append(append([]byte{}, b[:len(b)-40]...), append([]byte("X"), b[len(b)-39:]...)...), "partners"},
		{"fail/not json", []byte("not a snapshot"), "partners"},
		{"fail/another trust store", b, "vendors"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "snap.json")
			if tc.content != nil {
				os.WriteFile(f, tc.content, 0o600)
			}
			src := &ControlPlaneSource{Client: cp, Name: tc.source, CacheFile: f, Now: clock.Now}
			if v, _, err := src.Load(t.Context()); err == nil || v != nil {
				t.Errorf("Load = %v, %v; want no verifier and an error", v != nil, err)
			}
		})
	}
}

// TestMaxStalenessFailsClosed runs a listener on a ControlPlaneSource whose
// control plane goes away: the listener keeps accepting the valid client
// until the snapshot is MaxStaleness old, then refuses every client with
// ClientCertCrlExpired, and accepts again once the control plane answers.
func TestMaxStalenessFailsClosed(t *testing.T) {
	cp := &fakeControlPlane{}
	const maxStale = 400 * time.Millisecond
	e := newEnv(t, envOpt{sources: func(e *env) map[string]TrustSource {
		now := time.Now()
		cp.set(1, []*x509.Certificate{e.root.cert, e.inter.cert}, [][]byte{e.inter.crl(t, now.Add(-time.Minute), now.Add(time.Hour), big.NewInt(1))})
		return map[string]TrustSource{"main": &ControlPlaneSource{Client: cp, Name: "partners", MaxStaleness: maxStale,
			Options: VerifyOptions(e.cfg.Listeners[0])}}
	}})
	e.get("main", e.clientTLS(e.client), "/", nil).echo(t)

	cp.fail(errors.New("connection refused"))
	down := time.Now()
	e.get("main", e.clientTLS(e.client), "/", nil).echo(t) // still within max staleness
	var res result
	for {
		res = e.get("main", e.clientTLS(e.client), "/", nil)
		if res.err != nil {
			break
		}
		if time.Since(down) > 5*time.Second {
			t.Fatal("the listener still accepts clients 5 s into an outage with max staleness 400ms")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The last confirmation precedes the outage by up to a poll interval
	// and scheduling delays, so the refusal may come a little before
	// maxStale after it; not at once.
	if since := time.Since(down); since < maxStale/4 {
		t.Errorf("refused %v into the outage, long before max staleness %v", since, maxStale)
	}
	if line := e.connLog.find(t, "client_port", res.port); line["failure_reason"] != "ClientCertCrlExpired" {
		t.Errorf("connection log: failure_reason %v, want ClientCertCrlExpired", line["failure_reason"])
	}

	cp.fail(nil)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if r := e.get("main", e.clientTLS(e.client), "/", nil); r.err == nil && r.status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the listener did not accept clients again after the control plane came back")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
