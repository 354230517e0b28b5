package server

import (
	"context"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/ca"
	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/store/postgres/pgtest"
)

// postgresStore returns the URL of a new, empty schema on the test server,
// dropped at cleanup; it skips the test when no server answers.
func postgresStore(t *testing.T) string {
	t.Helper()
	return pgtest.NewSchema(t).URL
}

// runServer runs s until the test ends.
func runServer(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	up, done := make(chan struct{}), make(chan error, 1)
	go func() { done <- s.Run(ctx, func(string, string) { close(up) }) }()
	select {
	case <-up:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not start")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// TestRevocationReachesEveryNode runs two control-plane nodes on one
// PostgreSQL database. A certificate revoked through one node is on the
// CRL the other node serves within seconds, whichever holds the lease.
func TestRevocationReachesEveryNode(t *testing.T) {
	ctx := t.Context()
	store := postgresStore(t)
	cfgA := DevConfig(t.TempDir(), "127.0.0.1:0", "")
	cfgA.Public.BaseURL = "http://pki.test"
	cfgA.Store = store
	a, _, err := PrepareDev(ctx, cfgA, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	cfgB := cfgA // the same master key and API identity, files of node a
	b, err := Open(ctx, cfgB, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	runServer(t, a)
	runServer(t, b)

	inter, err := a.CA.GetCA(ctx, DemoIntermediate)
	if err != nil {
		t.Fatal(err)
	}
	crlOn := func(s *Server) *x509.RevocationList { t.Helper(); return currentCRL(t, s, inter.ID) }
	for _, tc := range []struct {
		name     string
		through  *Server
		observer *Server
	}{
		{"ok/revoked through a, served by b", a, b},
		{"ok/revoked through b, served by a", b, a},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is, err := tc.through.CA.Issue(ctx, ca.IssueRequest{CA: DemoIntermediate, Profile: "client", CommonName: "x", Validity: "1d", Requester: "test"})
			if err != nil {
				t.Fatal(err)
			}
			serial := pki.SerialHex(is.Cert.SerialNumber)
			before := crlOn(tc.observer) // built and cached on the observer
			if _, err := tc.through.CA.Revoke(ctx, serial, 1, "test"); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			waitFor(t, 5*time.Second, "the other node's CRL lists the revocation", func() bool { return crlLists(crlOn(tc.observer), serial) })
			t.Logf("on the other node's CRL %s after the revoke", time.Since(start).Round(time.Millisecond))
			if after := crlOn(tc.observer); after.Number.Cmp(before.Number) <= 0 {
				t.Errorf("CRL number %s does not follow %s", after.Number, before.Number)
			}
		})
	}
}

// currentCRL returns the full CRL that s serves for the CA caID.
func currentCRL(t *testing.T, s *Server, caID string) *x509.RevocationList {
	t.Helper()
	der, err := s.Revocation.CurrentCRL(t.Context(), caID)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	return crl
}

// crlLists reports whether crl lists the certificate with serial.
func crlLists(crl *x509.RevocationList, serial string) bool {
	for _, e := range crl.RevokedCertificateEntries {
		if pki.SerialHex(e.SerialNumber) == serial {
			return true
		}
	}
	return false
}

// TestRevocationBeforeNodeListens is a node that starts while a
// revocation is made through another: it has served the CA's CRL already,
// but its listening session is not connected yet when the other node's
// notification goes out, so the notification never reaches it. It must
// still serve the revocation within seconds once it listens, not at its
// next periodic republication (days away). The test holds the
// singleton-jobs lease itself, so that neither node runs the periodic
// jobs and only the feed can bring the revocation; it listens too, and
// starts the late node only once the notification has been delivered.
func TestRevocationBeforeNodeListens(t *testing.T) {
	ctx := t.Context()
	cfg := DevConfig(t.TempDir(), "127.0.0.1:0", "")
	cfg.Public.BaseURL = "http://pki.test"
	cfg.Store = postgresStore(t)
	a, _, err := PrepareDev(ctx, cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b, err := Open(ctx, cfg, Options{}) // the same master key and API identity
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	// The lease is keyed by the schema the store's URL selects, the
	// test's own: no other test holds it.
	held, err := a.Store.TryLease(ctx, jobsLease)
	if err != nil {
		t.Fatalf("take the jobs lease: %v", err)
	}
	t.Cleanup(held.Release)

	// The test's own subscriber: it sees the notification go out.
	keys := make(chan string, 64)
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- a.Store.SubscribeChanges(sctx, func(key string) {
			select {
			case keys <- key:
			default:
			}
		})
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("SubscribeChanges: %v", err)
		}
	})
	waitKey := func(want func(string) bool, what string) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case key := <-keys:
				if want(key) {
					return
				}
			case <-deadline:
				t.Fatalf("%s: not within 10s", what)
			}
		}
	}
	waitKey(func(key string) bool { return key == "" }, "the test's subscriber listens")
	runServer(t, a)

	inter, err := a.CA.GetCA(ctx, DemoIntermediate)
	if err != nil {
		t.Fatal(err)
	}
	is, err := a.CA.Issue(ctx, ca.IssueRequest{CA: DemoIntermediate, Profile: "client", CommonName: "x", Validity: "1d", Requester: "test"})
	if err != nil {
		t.Fatal(err)
	}
	serial := pki.SerialHex(is.Cert.SerialNumber)
	before := currentCRL(t, b, inter.ID) // built and cached on b, which does not listen yet
	if _, err := a.CA.Revoke(ctx, serial, 1, "test"); err != nil {
		t.Fatal(err)
	}
	waitKey(func(key string) bool { return strings.HasSuffix(key, "/"+inter.ID) }, "node a publishes the revocation")
	if crlLists(currentCRL(t, b, inter.ID), serial) {
		t.Fatal("node b lists the revocation before it runs: the test does not show the window")
	}

	runServer(t, b)
	start := time.Now()
	waitFor(t, 5*time.Second, "node b's CRL lists the revocation made before it listened", func() bool {
		return crlLists(currentCRL(t, b, inter.ID), serial)
	})
	t.Logf("on node b's CRL %s after it started", time.Since(start).Round(time.Millisecond))
	if after := currentCRL(t, b, inter.ID); after.Number.Cmp(before.Number) <= 0 {
		t.Errorf("CRL number %s does not follow %s", after.Number, before.Number)
	}
}
