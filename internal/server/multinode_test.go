package server

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/trustgate/trustgate/internal/ca"
	"github.com/trustgate/trustgate/internal/pki"
)

// postgresStore returns the URL of a new, empty schema on the test server,
// dropped at cleanup; it skips the test when no server answers.
func postgresStore(t *testing.T) string {
	t.Helper()
	base, err := url.Parse(testPostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(t.Context(), base.String())
	if err != nil {
		t.Skipf("no PostgreSQL at %s: %v", base.Redacted(), err)
	}
	// Named as internal/store/postgres names its test schemas, whose sweep
	// drops the leftovers of killed test binaries after an hour.
	b := make([]byte, 6)
	rand.Read(b)
	schema := fmt.Sprintf("tg_test_%d_%s", time.Now().Unix(), hex.EncodeToString(b))
	if _, err := admin.Exec(t.Context(), "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		admin.Exec(c, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
		admin.Close(c)
	})
	q := base.Query()
	q.Set("search_path", schema)
	base.RawQuery = q.Encode()
	return base.String()
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
	crlOn := func(s *Server) *x509.RevocationList {
		t.Helper()
		der, err := s.Revocation.CurrentCRL(ctx, inter.ID)
		if err != nil {
			t.Fatal(err)
		}
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			t.Fatal(err)
		}
		return crl
	}
	listed := func(crl *x509.RevocationList, serial string) bool {
		for _, e := range crl.RevokedCertificateEntries {
			if pki.SerialHex(e.SerialNumber) == serial {
				return true
			}
		}
		return false
	}
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
			waitFor(t, 5*time.Second, "the other node's CRL lists the revocation", func() bool { return listed(crlOn(tc.observer), serial) })
			t.Logf("on the other node's CRL %s after the revoke", time.Since(start).Round(time.Millisecond))
			if after := crlOn(tc.observer); after.Number.Cmp(before.Number) <= 0 {
				t.Errorf("CRL number %s does not follow %s", after.Number, before.Number)
			}
		})
	}
}
