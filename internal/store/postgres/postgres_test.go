package postgres

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/trustgate/trustgate/internal/store"
	"github.com/trustgate/trustgate/internal/store/storetest"
)

// urlEnv names the environment variable holding the URL of the test server.
const urlEnv = "TRUSTGATE_TEST_POSTGRES"

// defaultTestURL is the server CI starts: trust authentication, database test.
const defaultTestURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// t0 is the reference instant of these tests, with microsecond precision.
var t0 = time.Date(2026, time.March, 14, 15, 9, 26, 535897000, time.UTC)

// testURL returns the URL of the test server.
func testURL() string {
	if u := os.Getenv(urlEnv); u != "" {
		return u
	}
	return defaultTestURL
}

// redacted returns u without its password, for messages.
func redacted(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.User == nil {
		return u
	}
	return p.Redacted()
}

// admin is the pool the tests create and drop schemas with, shared by the
// whole test binary and closed by TestMain.
var admin struct {
	once sync.Once
	pool *pgxpool.Pool
	err  error
}

// minParallel is the least -parallel the tests run with unless the command
// line says otherwise: they wait on the server, not on the CPU, so more of
// them at once than GOMAXPROCS finishes sooner. Each store has a pool of at
// most testConfig's MaxConns, well within max_connections.
const minParallel = 4

func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit && runtime.GOMAXPROCS(0) < minParallel {
		if err := flag.Set("test.parallel", strconv.Itoa(minParallel)); err != nil {
			panic(err)
		}
	}
	code := m.Run()
	if admin.pool != nil {
		admin.pool.Close()
	}
	os.Exit(code)
}

// adminPool returns the admin pool. It skips the test when no PostgreSQL
// server answers at testURL, and fails it when one answers but refuses us.
func adminPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	admin.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cfg, err := pgxpool.ParseConfig(testURL())
		if err != nil {
			admin.err = fmt.Errorf("parse %s: %w", urlEnv, err)
			return
		}
		cfg.MaxConns = 4
		cfg.ConnConfig.ConnectTimeout = 3 * time.Second
		admin.pool, admin.err = pgxpool.NewWithConfig(ctx, cfg)
		if admin.err == nil {
			admin.err = admin.pool.Ping(ctx)
		}
		if admin.err == nil {
			admin.err = sweepSchemas(ctx, admin.pool)
		}
	})
	if admin.err != nil {
		_, answered := errors.AsType[*pgconn.PgError](admin.err)
		if _, connect := errors.AsType[*pgconn.ConnectError](admin.err); connect && !answered {
			tb.Skipf("no PostgreSQL answers at %s (set %s to another URL, or start the server: "+
				"pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start): %v",
				redacted(testURL()), urlEnv, admin.err)
		}
		tb.Fatalf("PostgreSQL at %s: %v", redacted(testURL()), admin.err)
	}
	return admin.pool
}

// schemaPrefix starts the name of every schema the tests create.
const schemaPrefix = "tg_test_"

// newSchemaName returns a new, unused schema name, which records when it
// was made so that sweepSchemas can tell a leftover.
func newSchemaName() string {
	b := make([]byte, 6)
	rand.Read(b)
	return fmt.Sprintf("%s%d_%s", schemaPrefix, time.Now().Unix(), hex.EncodeToString(b))
}

// sweepSchemas drops the test schemas made more than an hour ago: the
// leftovers of test binaries that were killed or panicked before their
// cleanups ran. A live test binary is at most minutes old.
func sweepSchemas(ctx context.Context, pool *pgxpool.Pool) error {
	names, err := staleTestNames(ctx, pool, "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)")
	if err != nil {
		return err
	}
	for _, name := range names {
		if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			return fmt.Errorf("drop leftover schema %s: %w", name, err)
		}
	}
	return nil
}

// staleTestNames returns the names that query (with schemaPrefix as $1)
// lists whose newSchemaName stamp is more than an hour old.
func staleTestNames(ctx context.Context, pool *pgxpool.Pool, query string) ([]string, error) {
	rows, err := pool.Query(ctx, query, schemaPrefix)
	if err != nil {
		return nil, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	var stale []string
	for _, name := range names {
		stamp, _, _ := strings.Cut(strings.TrimPrefix(name, schemaPrefix), "_")
		if made, err := strconv.ParseInt(stamp, 10, 64); err == nil && time.Since(time.Unix(made, 0)) >= time.Hour {
			stale = append(stale, name)
		}
	}
	return stale, nil
}

// testSchema creates a new schema, dropped with everything in it at cleanup,
// and returns its name.
func testSchema(tb testing.TB) string {
	tb.Helper()
	pool := adminPool(tb)
	name := newSchemaName()
	if _, err := pool.Exec(context.Background(), "CREATE SCHEMA "+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	dropSchemaAtCleanup(tb, name)
	return name
}

// dropSchemaAtCleanup drops the schema name, if it exists, when tb ends.
// Registered before the store's Close, it runs after it.
func dropSchemaAtCleanup(tb testing.TB, name string) {
	tb.Helper()
	pool := adminPool(tb)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", name, err)
		}
	})
}

// testConfig returns the Config of a store in schema.
func testConfig(schema string) Config {
	return Config{URL: testURL(), Schema: schema, MaxConns: 6}
}

// openTest opens a store in a schema of its own, closed and dropped at
// cleanup. mod, when not nil, changes the Config first.
func openTest(tb testing.TB, mod func(*Config)) *DB {
	tb.Helper()
	cfg := testConfig(testSchema(tb))
	if mod != nil {
		mod(&cfg)
	}
	db, err := OpenConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("OpenConfig: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// testCA returns a CA record with the given ID.
func testCA(id string) *store.CA {
	return &store.CA{
		ID: id, Name: "name-" + id, State: store.CAActive, KeyType: "ecdsa-p256",
		SealedKey: []byte("k"), CertDER: []byte("c"), Subject: "CN=" + id, PathLen: -1,
		NotBefore: t0, NotAfter: t0.Add(time.Hour), CreatedAt: t0, UpdatedAt: t0,
	}
}

// partitionedCA returns a test CA record with the given number of partitions.
func partitionedCA(id string, partitions int) *store.CA {
	ca := testCA(id)
	ca.CRLPartitions = partitions
	return ca
}

// testCert returns a certificate record of caID.
func testCert(caID, serial string) *store.Certificate {
	return &store.Certificate{
		Serial: serial, CAID: caID, IssuerKey: caID, Subject: "CN=" + serial,
		SANs: []string{"dns:" + serial + ".example"}, Profile: "server", KeyType: "ecdsa-p256",
		NotBefore: t0, NotAfter: t0.Add(24 * time.Hour), Fingerprint: strings.Repeat("0", 64),
		Status: store.CertActive, DER: bytes.Repeat([]byte{0x30}, 600), Managed: true, CreatedAt: t0,
	}
}

func TestConformance(t *testing.T) {
	adminPool(t) // skip before the suite starts its parallel subtests
	storetest.Run(t, func(t *testing.T) store.Store {
		return openTest(t, nil)
	})
}
