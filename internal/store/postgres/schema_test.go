package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/trustgate/trustgate/internal/store"
)

// The keys of a store on the default schema as releases before keySchema
// derived them (from ""), written out: nodes of such a release must still
// exclude new nodes during an upgrade.
const (
	oldJobsLeaseKey int64 = -854274281956008452 // fnv-64a of "trustgate lease\x00\x00jobs"
	oldChannel            = "trustgate_changes_811c9dc5"
	oldSeqLockKey   int32 = -2128831035 // fnv-32a of ""
)

// schemaURL returns the test server's URL selecting schema the way form
// says: "search_path" as a runtime parameter, or "options" as a
// -csearch_path server option.
func schemaURL(tb testing.TB, schema, form string) string {
	tb.Helper()
	u, err := url.Parse(testURL())
	if err != nil {
		tb.Fatal(err)
	}
	q := u.Query()
	switch form {
	case "search_path":
		q.Set("search_path", schema)
	case "options":
		q.Set("options", "-csearch_path="+schema)
	default:
		tb.Fatalf("unknown form %q", form)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// openURL opens a store on u with no Config.Schema, closed at cleanup.
func openURL(tb testing.TB, u string) *DB {
	tb.Helper()
	db, err := OpenConfig(context.Background(), Config{URL: u, MaxConns: 6})
	if err != nil {
		tb.Fatalf("OpenConfig: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// collector subscribes to a store's changes until the test ends and keeps
// the keys it receives.
type collector struct {
	mu  sync.Mutex
	got []string
}

func subscribe(t *testing.T, db *DB) *collector {
	t.Helper()
	c := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- db.SubscribeChanges(ctx, func(key string) {
			c.mu.Lock()
			c.got = append(c.got, key)
			c.mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("SubscribeChanges: %v", err)
		}
	})
	return c
}

func (c *collector) keys() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

// publishUntil publishes key on db until c has received it.
func publishUntil(t *testing.T, db *DB, c *collector, key string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(c.keys(), key) {
		if time.Now().After(deadline) {
			t.Fatalf("%q not received; got %q", key, c.keys())
		}
		if err := db.PublishChange(t.Context(), key); err != nil {
			t.Fatalf("PublishChange: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestKeysFollowSchemaOfURL opens two stores on one database in two
// schemas that only their URLs select, as the server opens them: each
// holds its own jobs lease at the same time as the other, and neither
// hears the other's changes. A store opened with Config.Schema on one of
// the schemas shares that store's keys.
func TestKeysFollowSchemaOfURL(t *testing.T) {
	for _, form := range []string{"search_path", "options"} {
		t.Run(form, func(t *testing.T) {
			schemaA, schemaB := testSchema(t), testSchema(t)
			a, b := openURL(t, schemaURL(t, schemaA, form)), openURL(t, schemaURL(t, schemaB, form))
			for _, c := range []struct {
				db   *DB
				want string
			}{{a, schemaA}, {b, schemaB}} {
				if got := c.db.CurrentSchema(); got != c.want {
					t.Fatalf("CurrentSchema() = %q, want %q", got, c.want)
				}
			}
			if a.seqLockKey == b.seqLockKey {
				t.Errorf("two schemas share the insert lock key %d", a.seqLockKey)
			}
			if a.seqLockKey == oldSeqLockKey || b.seqLockKey == oldSeqLockKey {
				t.Errorf("a schema selected by URL kept the default schema's insert lock key")
			}

			ha, err := a.TryLease(t.Context(), "jobs")
			if err != nil {
				t.Fatalf("store in %s: TryLease: %v", schemaA, err)
			}
			t.Cleanup(ha.Release)
			hb, err := b.TryLease(t.Context(), "jobs")
			if err != nil {
				t.Fatalf("store in %s: TryLease while the store in %s holds its lease: %v", schemaB, schemaA, err)
			}
			t.Cleanup(hb.Release)

			// The same schema by Config.Schema: the same deployment, the
			// same keys.
			c := openTest(t, func(cfg *Config) { cfg.Schema = schemaA })
			if _, err := c.TryLease(t.Context(), "jobs"); !errors.Is(err, store.ErrLeaseHeld) {
				t.Errorf("Config.Schema %s: TryLease while the URL-selected store holds it: got %v, want ErrLeaseHeld", schemaA, err)
			}

			ca, cb := subscribe(t, a), subscribe(t, b)
			// b's key first: a change published before a's on a shared
			// channel would reach a before a's own.
			publishUntil(t, b, cb, "from-b")
			publishUntil(t, a, ca, "from-a")
			if got := ca.keys(); slices.Contains(got, "from-b") {
				t.Errorf("the store in %s received a change of the store in %s: %q", schemaA, schemaB, got)
			}
			publishUntil(t, a, ca, "from-a-2")
			publishUntil(t, b, cb, "from-b-2")
			if got := cb.keys(); slices.Contains(got, "from-a") || slices.Contains(got, "from-a-2") {
				t.Errorf("the store in %s received a change of the store in %s: %q", schemaB, schemaA, got)
			}
		})
	}
}

// TestDefaultSchemaKeepsOldKeys opens a store in the public schema of a
// database of its own, with no search_path set, and plays a node of an
// earlier release beside it with the keys that release derived: the two
// exclude each other from the jobs lease and hear each other's changes.
//
// Not parallel: CREATE and DROP DATABASE run for seconds, during which
// VACUUM in the same database cannot mark new rows visible to all, which
// changes the plans TestQueryPlans checks.
func TestDefaultSchemaKeepsOldKeys(t *testing.T) {
	u := testDatabase(t)
	db := openURL(t, u)
	if got := db.CurrentSchema(); got != "public" {
		t.Fatalf("CurrentSchema() = %q, want public", got)
	}
	if db.seqLockKey != oldSeqLockKey {
		t.Errorf("insert lock key %d, want the old %d", db.seqLockKey, oldSeqLockKey)
	}

	ctx := t.Context()
	old, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { old.Close(context.Background()) })

	// The old node holds the jobs lease: the new one must not take it.
	var ok bool
	if err := old.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", oldJobsLeaseKey).Scan(&ok); err != nil || !ok {
		t.Fatalf("old node: lock %d: %v, %v", oldJobsLeaseKey, ok, err)
	}
	if _, err := db.TryLease(ctx, "jobs"); !errors.Is(err, store.ErrLeaseHeld) {
		t.Fatalf("TryLease while an old node holds the jobs lease: got %v, want ErrLeaseHeld", err)
	}
	if _, err := old.Exec(ctx, "SELECT pg_advisory_unlock($1)", oldJobsLeaseKey); err != nil {
		t.Fatal(err)
	}
	h, err := db.TryLease(ctx, "jobs")
	if err != nil {
		t.Fatalf("TryLease once the old node let go: %v", err)
	}
	t.Cleanup(h.Release)
	if err := old.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", oldJobsLeaseKey).Scan(&ok); err != nil || ok {
		t.Fatalf("old node took the jobs lease the new node holds: %v, %v", ok, err)
	}

	// The old node hears the new node's changes, and the other way round.
	if _, err := old.Exec(ctx, "LISTEN "+oldChannel); err != nil {
		t.Fatal(err)
	}
	if err := db.PublishChange(ctx, "from-new"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	n, err := old.WaitForNotification(wctx)
	cancel()
	if err != nil || n.Channel != oldChannel || n.Payload != "from-new" {
		t.Fatalf("old node: got %+v, %v; want from-new on %s", n, err, oldChannel)
	}
	c := subscribe(t, db)
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(c.keys(), "from-old") {
		if time.Now().After(deadline) {
			t.Fatalf("the new node did not hear the old node; got %q", c.keys())
		}
		if _, err := old.Exec(ctx, "SELECT pg_notify($1, 'from-old')", oldChannel); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dropDatabaseTimeout bounds DROP DATABASE, which waits for a checkpoint:
// seconds on a server busy with other tests.
const dropDatabaseTimeout = 2 * time.Minute

// testDatabase creates a database of its own, dropped at cleanup, and
// returns its URL: the only way to give a test a public schema that no
// other test writes to. It skips the test when the role may not create
// databases. Databases named as test schemas are, and made more than an
// hour ago, are the leftovers of killed test binaries: it drops them.
func testDatabase(t *testing.T) string {
	t.Helper()
	name := newSchemaName()
	pool := adminPool(t)
	if err := sweepDatabases(t.Context(), pool); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(context.Background(), "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" ENCODING 'UTF8' TEMPLATE template0"); err != nil {
		if pe, ok := errors.AsType[*pgconn.PgError](err); ok && pe.Code == "42501" {
			t.Skipf("cannot create a database: %v", err)
		}
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), dropDatabaseTimeout)
		defer cancel()
		if _, err := pool.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(testURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// sweepDatabases drops the test databases made more than an hour ago.
func sweepDatabases(ctx context.Context, pool *pgxpool.Pool) error {
	names, err := staleTestNames(ctx, pool, "SELECT datname FROM pg_database WHERE starts_with(datname, $1)")
	if err != nil {
		return err
	}
	for _, name := range names {
		dctx, cancel := context.WithTimeout(ctx, dropDatabaseTimeout)
		_, err = pool.Exec(dctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		cancel()
		if err != nil {
			return fmt.Errorf("drop leftover database %s: %w", name, err)
		}
	}
	return nil
}
