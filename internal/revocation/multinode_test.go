package revocation

import (
	"context"
	"crypto/x509"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/store"
	"github.com/trustgate/trustgate/internal/store/postgres"
	"github.com/trustgate/trustgate/internal/store/postgres/pgtest"
	"github.com/trustgate/trustgate/internal/store/sqlite"
)

// openPostgres opens a store on schema, closed at cleanup, whose sessions
// carry the application name app.
func openPostgres(tb testing.TB, schema, app string) store.Store {
	tb.Helper()
	u, err := url.Parse(pgtest.URL())
	if err != nil {
		tb.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	db, err := postgres.OpenConfig(context.Background(), postgres.Config{URL: u.String(), Schema: schema, MaxConns: 4})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// pausingStore calls pause once, as the first revoked entry of a CRL (or
// of any list) reaches the service: the service has read part of its list
// and has yet to publish.
type pausingStore struct {
	store.Store
	once  sync.Once
	pause func()
}

func (p *pausingStore) hook(fn func(store.RevokedEntry) error) func(store.RevokedEntry) error {
	return func(e store.RevokedEntry) error {
		p.once.Do(p.pause)
		return fn(e)
	}
}

func (p *pausingStore) ListRevoked(ctx context.Context, caID string, partition int, expiresAfter time.Time, fn func(store.RevokedEntry) error) error {
	return p.Store.ListRevoked(ctx, caID, partition, expiresAfter, p.hook(fn))
}

func (p *pausingStore) ReadCRL(ctx context.Context, q store.CRLQuery, fn func(store.RevokedEntry) error, keep func() bool) (int64, error) {
	return p.Store.ReadCRL(ctx, q, p.hook(fn), keep)
}

// TestCRLNumberAndContentAcrossNodes runs two control-plane nodes, A and B,
// on one database, each with its own store and revocation service, and
// interleaves their builds of one CRL scope around a revocation: A reads
// its list; meanwhile a certificate is revoked and B builds its CRL; then
// A finishes. Whichever CRL gets the higher number must list the
// revocation: a gateway moves from the lower number to the higher and
// never back, so a higher CRL without it would let the certificate through
// again. On PostgreSQL, B's build waits for A's number; on SQLite (two
// handles on one file), A's number is refused and A reads again.
func TestCRLNumberAndContentAcrossNodes(t *testing.T) {
	backends := []struct {
		name string
		// open returns the stores of nodes A and B, on one database,
		// and reports whether B is waiting for a lock of the database.
		open func(t *testing.T) (a, b func(testing.TB) store.Store, waiting func() bool)
	}{
		{"sqlite", func(t *testing.T) (a, b func(testing.TB) store.Store, waiting func() bool) {
			path := filepath.Join(t.TempDir(), "trustgate.db")
			open := func(tb testing.TB) store.Store {
				st, err := sqlite.Open(path)
				if err != nil {
					tb.Fatal(err)
				}
				tb.Cleanup(func() { st.Close() })
				return st
			}
			// SQLite readers never wait for the writer; B's one write
			// waits at most for A's short one.
			return open, open, func() bool { return false }
		}},
		{"postgres", func(t *testing.T) (a, b func(testing.TB) store.Store, waiting func() bool) {
			pg := pgtest.NewSchema(t)
			schema, admin := pg.Name, pg.Admin
			appB := "trustgate-node-b-" + schema
			return func(tb testing.TB) store.Store { return openPostgres(tb, schema, "trustgate-node-a") },
				func(tb testing.TB) store.Store { return openPostgres(tb, schema, appB) },
				func() bool {
					var w bool
					err := admin.QueryRow(context.Background(),
						"SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock')", appB).Scan(&w)
					if err != nil {
						t.Fatalf("pg_stat_activity: %v", err)
					}
					return w
				}
		}},
	}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			openA, openB, waiting := be.open(t)
			e := newEnv(t, envOptions{store: openA})
			for _, sc := range []struct {
				name string
				ca   *testCA
			}{
				{"full CRL", e.sub},
				{"partition CRL", e.parts},
			} {
				t.Run(sc.name, func(t *testing.T) {
					interleaveBuilds(t, e, openB(t), waiting, sc.ca)
				})
			}
		})
	}
}

// interleaveBuilds revokes one certificate of ca, then builds the CRL
// scope of a second one on node A (e.svc's configuration on a pausingStore
// over e.st) and, while A is in the middle of its list, revokes the second
// one and builds the same scope on node B (on stB), and checks the two
// CRLs.
func interleaveBuilds(t *testing.T, e *env, stB store.Store, waiting func() bool, ca *testCA) {
	// Two certificates in one scope: the full CRL, or one partition.
	first := e.issue(ca, "first.example")
	part := partitionOf(first.SerialNumber, ca.rec.CRLPartitions)
	var second *x509.Certificate
	for second == nil || partitionOf(second.SerialNumber, ca.rec.CRLPartitions) != part {
		second = e.issue(ca, "second.example")
	}
	if _, err := e.st.RevokeCertificate(e.ctx, ca.id(), pki.SerialHex(first.SerialNumber), 1, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	idx := 0 // the full CRL
	if ca.rec.CRLPartitions > 1 {
		idx = 1 + part
	}

	newNode := func(st store.Store) (*Service, *scope) {
		t.Helper()
		cfg := e.cfg
		cfg.Store = st
		svc, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		a, err := svc.authorityByID(e.ctx, ca.id())
		if err != nil {
			t.Fatal(err)
		}
		return svc, a.scopes[idx]
	}
	nodeB, scB := newNode(stB)
	bDone := make(chan error, 1)
	paused := &pausingStore{Store: e.st, pause: func() {
		// A has read part of its list. Revoke the second certificate
		// and let B build, until B is done or waits for A.
		if _, err := stB.RevokeCertificate(e.ctx, ca.id(), pki.SerialHex(second.SerialNumber), 1, e.clock.Now()); err != nil {
			t.Fatal(err)
		}
		go func() {
			a, err := nodeB.authorityByID(e.ctx, ca.id())
			if err == nil {
				err = nodeB.buildScope(e.ctx, a, scB, e.clock.Now(), buildIfDue)
			}
			bDone <- err
		}()
		deadline := time.Now().Add(10 * time.Second)
		for {
			select {
			case err := <-bDone:
				bDone <- err // for the check after A
				return
			default:
			}
			if waiting() {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("node B neither built its CRL nor waited for node A within 10s")
			}
			time.Sleep(2 * time.Millisecond)
		}
	}}
	nodeA, scA := newNode(paused)
	a, err := nodeA.authorityByID(e.ctx, ca.id())
	if err != nil {
		t.Fatal(err)
	}
	if err := nodeA.buildScope(e.ctx, a, scA, e.clock.Now(), buildIfDue); err != nil {
		t.Fatalf("node A: %v", err)
	}
	if err := <-bDone; err != nil {
		t.Fatalf("node B: %v", err)
	}

	crlA, crlB := scA.cur.Load(), scB.cur.Load()
	if crlA == nil || crlB == nil {
		t.Fatal("a node published no CRL")
	}
	if crlA.number == crlB.number {
		t.Fatalf("both nodes published CRL number %d", crlA.number)
	}
	lo, hi, hiNode := crlA, crlB, "B"
	if crlA.number > crlB.number {
		lo, hi, hiNode = crlB, crlA, "A"
	}
	loList := revokedSerials(parseCRL(t, lo.der, ca.cert))
	hiList := revokedSerials(parseCRL(t, hi.der, ca.cert))
	t.Logf("node A published CRL %d with %d entries, node B CRL %d with %d", crlA.number, crlA.entries, crlB.number, crlB.entries)
	for _, c := range []*x509.Certificate{first, second} {
		if _, ok := hiList[pki.SerialHex(c.SerialNumber)]; !ok {
			t.Errorf("node %s's CRL %d, the newer, lacks %s, revoked before it was built", hiNode, hi.number, pki.SerialHex(c.SerialNumber))
		}
	}
	for serial := range loList {
		if _, ok := hiList[serial]; !ok {
			t.Errorf("CRL %d lists %s and the newer CRL %d does not", lo.number, serial, hi.number)
		}
	}
}
