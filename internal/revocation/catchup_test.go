package revocation

import (
	"context"
	"crypto"
	"crypto/x509"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/store"
	"github.com/trustgate/trustgate/internal/store/postgres/pgtest"
	"github.com/trustgate/trustgate/internal/store/sqlite"
)

// testCheckInterval is the CheckInterval of the catch-up tests.
const testCheckInterval = 50 * time.Millisecond

// runPublishChanges runs svc.PublishChanges until the test ends.
func runPublishChanges(t *testing.T, svc *Service) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.PublishChanges(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("PublishChanges: %v", err)
		}
	})
}

// TestLostNoticeCaughtUp runs two control-plane nodes, A and B, on one
// database. B serves a CA's CRL and an OCSP answer; a certificate is
// revoked through A, which publishes it, and B is never told (the notice
// is lost). Until B's periodic check runs, B serves the stale CRL; once it
// runs, B serves the revocation on its CRL and in its OCSP answer. Later
// checks find nothing more to do and use up no CRL number.
func TestLostNoticeCaughtUp(t *testing.T) {
	backends := []struct {
		name string
		// open returns the openers of the stores of nodes A and B, on
		// one database.
		open func(t *testing.T) (a, b func(testing.TB) store.Store)
	}{
		{"sqlite", func(t *testing.T) (a, b func(testing.TB) store.Store) {
			path := filepath.Join(t.TempDir(), "trustgate.db")
			open := func(tb testing.TB) store.Store {
				st, err := sqlite.Open(path)
				if err != nil {
					tb.Fatal(err)
				}
				tb.Cleanup(func() { st.Close() })
				return st
			}
			return open, open
		}},
		{"postgres", func(t *testing.T) (a, b func(testing.TB) store.Store) {
			schema := pgtest.NewSchema(t).Name
			return func(tb testing.TB) store.Store { return openPostgres(tb, schema, "trustgate-node-a") },
				func(tb testing.TB) store.Store { return openPostgres(tb, schema, "trustgate-node-b") }
		}},
	}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			openA, openB := be.open(t)
			e := newEnv(t, envOptions{store: openA})
			for _, tc := range []struct {
				name string
				ca   *testCA
			}{
				{"full CRL", e.sub},
				{"partition CRL", e.parts},
			} {
				t.Run(tc.name, func(t *testing.T) {
					catchUpLostNotice(t, e, openB(t), tc.ca)
				})
			}
		})
	}
}

func catchUpLostNotice(t *testing.T, e *env, stB store.Store, ca *testCA) {
	cert := e.issue(ca, "lost.example")
	serial := pki.SerialHex(cert.SerialNumber)
	part := partitionOf(cert.SerialNumber, ca.rec.CRLPartitions)

	cfg := e.cfg
	cfg.Store = stB
	cfg.CheckInterval = testCheckInterval
	nodeB, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(nodeB.Handler())
	t.Cleanup(srv.Close)
	crlAt := srv.URL + strings.TrimPrefix(crlURL(ca, part), testBase)
	ocspAt := srv.URL + "/ocsp/" + ca.rec.Name
	ocspReq := ocspRequestFor(t, cert, ca.cert, crypto.SHA1)
	served := func() (number int64, listed bool, status int) {
		t.Helper()
		crl := fetchCRL(t, crlAt, ca.cert)
		_, listed = revokedSerials(crl)[serial]
		_, body := postOCSP(t, ocspAt, ocspReq)
		return crl.Number.Int64(), listed, checkOCSP(t, body, cert, ca.cert, e.clock.Now()).Status
	}

	// B serves the CRL and an answer (cached) from before the revocation.
	before, listed, status := served()
	if listed || status != ocsp.Good {
		t.Fatalf("node B before the revocation: listed %v, OCSP status %d", listed, status)
	}

	// Revoked through A, which publishes it; B is not told.
	e.revoke(ca, cert, 1)
	e.svc.flush(e.ctx)
	a := e.svc.scopeOf(t, ca, part)
	if a.number <= before {
		t.Fatalf("node A published CRL %d, not above node B's %d", a.number, before)
	}
	if n, listed, status := served(); listed || status != ocsp.Good || n != before {
		t.Fatalf("node B without its check: CRL %d (listed %v), OCSP status %d; want the stale CRL %d and answer",
			n, listed, status, before)
	}

	// B's periodic check finds A's number above its own.
	runPublishChanges(t, nodeB)
	var after int64
	eventually(t, 10*time.Second, "node B serves the revocation", func() bool {
		n, listed, status := served()
		after = n
		return listed && status == ocsp.Revoked
	})
	if after <= a.number {
		t.Errorf("node B's CRL %d is not above node A's %d", after, a.number)
	}

	// Nothing more to catch up: B's later checks, and A's, which finds
	// B's number above its own but the same list, publish no new CRL.
	// A reads its lists once for B's number, and not again.
	time.Sleep(5 * testCheckInterval)
	cs := &countingStore{Store: e.svc.cfg.Store}
	e.svc.cfg.Store = cs // A runs nothing of its own meanwhile
	t.Cleanup(func() { e.svc.cfg.Store = cs.Store })
	for i := range 2 {
		if err := e.svc.catchUp(e.ctx); err != nil {
			t.Fatal(err)
		}
		e.svc.flush(e.ctx)
		if got := e.svc.scopeOf(t, ca, part).number; got != a.number {
			t.Errorf("node A's catch-up with an unchanged list published CRL %d (was %d)", got, a.number)
		}
		reads := cs.walks.Load() + cs.lookups.Load()
		switch {
		case i == 0 && reads == 0:
			t.Errorf("node A did not read the store after B published past it")
		case i == 1 && reads != 0:
			t.Errorf("node A's second check read the store %d times with nothing new", reads)
		}
		cs.walks.Store(0)
		cs.lookups.Store(0)
	}
	if n, _, _ := served(); n != after {
		t.Errorf("node B published CRL %d after %d with nothing changed", n, after)
	}
	if got := storeNumber(t, e.st, ca, a.numberKey); got != after {
		t.Errorf("the store's CRL number is %d, want %d: a check used up numbers", got, after)
	}
}

// scopeState is what a node serves for one CRL scope.
type scopeState struct {
	number    int64
	numberKey int
}

// scopeOf returns the CRL svc serves for the scope of ca that holds
// partition part (the full CRL of a CA without partitions).
func (s *Service) scopeOf(t *testing.T, ca *testCA, part int) scopeState {
	t.Helper()
	a, err := s.authorityByID(context.Background(), ca.id())
	if err != nil {
		t.Fatal(err)
	}
	sc := a.scopes[0]
	if ca.rec.CRLPartitions > 1 {
		sc = a.scopes[1+part]
	}
	c := sc.cur.Load()
	if c == nil {
		return scopeState{numberKey: sc.numberKey}
	}
	return scopeState{number: c.number, numberKey: sc.numberKey}
}

// storeNumber returns the last CRL number the store handed out for the
// scope of ca with numberKey.
func storeNumber(t *testing.T, st store.Store, ca *testCA, numberKey int) int64 {
	t.Helper()
	nums, err := st.ListCRLNumbers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nums {
		if n.CAID == ca.id() && n.Partition == numberKey {
			return n.Number
		}
	}
	return 0
}

// TestCatchUpSingleNode checks that on a single node, whose CRLs are the
// only ones, the periodic check publishes nothing: a revocation takes one
// CRL number, however many checks follow.
func TestCatchUpSingleNode(t *testing.T) {
	e := newEnv(t, envOptions{cfg: func(c *Config) { c.CheckInterval = testCheckInterval }})
	srv := e.server()
	cert := e.issue(e.sub, "single.example")
	url := srv.URL + "/crl/sub.crl"
	before := fetchCRL(t, url, e.sub.cert).Number.Int64()
	runPublishChanges(t, e.svc)
	e.revoke(e.sub, cert, 1)
	var crl *x509.RevocationList
	eventually(t, 10*time.Second, "the revocation is served", func() bool {
		crl = fetchCRL(t, url, e.sub.cert)
		_, ok := revokedSerials(crl)[pki.SerialHex(cert.SerialNumber)]
		return ok
	})
	if got := crl.Number.Int64(); got != before+1 {
		t.Errorf("CRL %d after one revocation from %d", got, before)
	}
	time.Sleep(5 * testCheckInterval)
	if got := fetchCRL(t, url, e.sub.cert).Number.Int64(); got != before+1 {
		t.Errorf("CRL %d after checks with nothing changed, want %d", got, before+1)
	}
	if got := storeNumber(t, e.st, e.sub, 0); got != before+1 {
		t.Errorf("store CRL number %d, want %d", got, before+1)
	}
}
