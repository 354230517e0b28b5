package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/store"
)

func TestMigrationsAreWellFormed(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || SchemaVersion != len(ms) {
		t.Fatalf("SchemaVersion %d with %d migrations", SchemaVersion, len(ms))
	}
}

// TestConcurrentOpenMigratesOnce opens four stores at once on a schema that
// does not exist yet: all succeed, and between them they apply each
// migration once.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	t.Parallel()
	adminPool(t)
	schema := newSchemaName()
	dropSchemaAtCleanup(t, schema)
	const nodes = 4
	dbs := make([]*DB, nodes)
	errs := make([]error, nodes)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() {
			<-start
			dbs[i], errs[i] = OpenConfig(t.Context(), testConfig(schema))
		})
	}
	close(start)
	wg.Wait()
	applied := 0
	for i := range nodes {
		if errs[i] != nil {
			t.Errorf("node %d: OpenConfig: %v", i, errs[i])
			continue
		}
		defer dbs[i].Close()
		applied += dbs[i].applied
	}
	if t.Failed() {
		return
	}
	if applied != SchemaVersion {
		t.Errorf("the nodes applied %d migrations between them, want %d", applied, SchemaVersion)
	}
	var rows, maxVersion int
	err := adminPool(t).QueryRow(t.Context(),
		"SELECT count(*), max(version) FROM "+pgx.Identifier{schema, "schema_migrations"}.Sanitize()).Scan(&rows, &maxVersion)
	if err != nil || rows != SchemaVersion || maxVersion != SchemaVersion {
		t.Errorf("schema_migrations: %d rows, version %d, %v; want %d rows, version %d", rows, maxVersion, err, SchemaVersion, SchemaVersion)
	}
	// Every node works on the shared schema.
	if err := dbs[0].CreateCA(t.Context(), testCA("ca-1")); err != nil {
		t.Fatal(err)
	}
	for i, db := range dbs {
		if err := db.InsertCertificate(t.Context(), testCert("ca-1", fmt.Sprintf("%02x", i+1))); err != nil {
			t.Errorf("node %d: InsertCertificate: %v", i, err)
		}
	}
	if n, err := dbs[nodes-1].CountCertificates(t.Context(), "ca-1"); err != nil || n != nodes {
		t.Errorf("CountCertificates = %d, %v; want %d", n, err, nodes)
	}
}

// schemaSnapshot describes everything in schema that a migration could
// change: its relations with their columns, and schema_migrations.
func schemaSnapshot(t *testing.T, schema string) string {
	t.Helper()
	rows, err := adminPool(t).Query(t.Context(), `
		SELECT c.relname || ':' || c.relkind::text || ':' || coalesce(string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ',' ORDER BY a.attnum), '')
		FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		WHERE n.nspname = $1
		GROUP BY c.relname, c.relkind
		ORDER BY c.relname`, schema)
	if err != nil {
		t.Fatal(err)
	}
	rels, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	rows, err = adminPool(t).Query(t.Context(),
		"SELECT version || ' ' || name || ' ' || applied_at FROM "+pgx.Identifier{schema, "schema_migrations"}.Sanitize()+" ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(rels, "\n") + "\n--\n" + strings.Join(versions, "\n")
}

func TestSchemaTooNewIsRefused(t *testing.T) {
	t.Parallel()
	schema := testSchema(t)
	db, err := OpenConfig(t.Context(), testConfig(schema))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	// Pretend a newer Trustgate migrated the schema.
	if _, err := adminPool(t).Exec(t.Context(),
		"INSERT INTO "+pgx.Identifier{schema, "schema_migrations"}.Sanitize()+" (version, name, applied_at) VALUES ($1, 'future.sql', now())",
		SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	before := schemaSnapshot(t, schema)

	_, err = OpenConfig(t.Context(), testConfig(schema))
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open of a newer schema: err = %v, want ErrSchemaTooNew", err)
	}
	for _, want := range []string{schema, fmt.Sprintf("version %d", SchemaVersion+1), fmt.Sprintf("up to %d", SchemaVersion), "upgrade Trustgate"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if after := schemaSnapshot(t, schema); after != before {
		t.Errorf("refused Open changed the schema:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestOpenMigratesOnlyItsSchema checks that a store in one schema does not
// see, or wait for, the tables of another.
func TestOpenSchemasAreSeparate(t *testing.T) {
	t.Parallel()
	a, b := openTest(t, nil), openTest(t, nil)
	if err := a.PutMeta(t.Context(), "k", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetMeta(t.Context(), "k"); !store.IsNotFound(err) {
		t.Errorf("GetMeta in another schema: %v, want not found", err)
	}
	if a.seqLockKey == b.seqLockKey {
		t.Errorf("two schemas share the insert lock key %d", a.seqLockKey)
	}
}

func TestOpenInvalidConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"fail/malformed-url":   {URL: "postgres://user:s3cret@[::1/db"},
		"fail/unknown-sslmode": {URL: "postgres://user:s3cret@127.0.0.1/db?sslmode=sometimes"},
		"fail/negative-conns":  {URL: "postgres://127.0.0.1/db", MaxConns: -1},
	} {
		t.Run(name, func(t *testing.T) {
			db, err := OpenConfig(t.Context(), cfg)
			if err == nil {
				db.Close()
				t.Fatal("OpenConfig succeeded")
			}
			if fault.KindOf(err) != fault.Invalid {
				t.Errorf("err = %v, want kind invalid", err)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

// wantUnavailable fails the test unless err wraps store.ErrUnavailable.
func wantUnavailable(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("%s: err = %v, want one wrapping ErrUnavailable", what, err)
	}
}

// TestOpenUnreachable checks that Open fails as unavailable, quickly, when
// nothing listens at the address and when something listens but never
// answers.
func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // accepted, never answered
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()

	for name, tc := range map[string]struct {
		cfg   Config
		bound time.Duration
	}{
		"fail/refused":  {Config{URL: "postgres://postgres@127.0.0.1:1/test?sslmode=disable"}, 3 * time.Second},
		"fail/silent":   {Config{URL: "postgres://postgres@" + silent.Addr().String() + "/test?sslmode=disable", ConnectTimeout: 300 * time.Millisecond}, 3 * time.Second},
		"fail/url-wait": {Config{URL: "postgres://postgres@" + silent.Addr().String() + "/test?sslmode=disable&connect_timeout=1"}, 4 * time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			db, err := OpenConfig(t.Context(), tc.cfg)
			if err == nil {
				db.Close()
				t.Fatal("OpenConfig succeeded")
			}
			wantUnavailable(t, "OpenConfig", err)
			if d := time.Since(start); d > tc.bound {
				t.Errorf("OpenConfig took %v, want under %v", d, tc.bound)
			}
		})
	}
}

// proxy forwards TCP connections to a PostgreSQL server until it is cut.
type proxy struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	conns    []net.Conn
}

// newProxy starts a proxy to the test server, closed at cleanup.
func newProxy(t *testing.T) *proxy {
	t.Helper()
	cfg, err := pgconn.ParseConfig(testURL())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, upstream: net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))}
	go p.serve()
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.upstream)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); up.Close() }()
		go func() { _, _ = io.Copy(c, up); c.Close() }()
	}
}

// cut stops accepting and breaks every forwarded connection.
func (p *proxy) cut() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// url returns the test server's URL with the proxy's address.
func (p *proxy) url(t *testing.T) string {
	t.Helper()
	u := testURL()
	addr := p.ln.Addr().(*net.TCPAddr)
	if strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://") {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		pu.Host = addr.String()
		return pu.String()
	}
	return fmt.Sprintf("%s host=%s port=%d", u, addr.IP, addr.Port) // later keys win
}

// withParam returns the connection string u with key=value added.
func withParam(t *testing.T, u, key, value string) string {
	t.Helper()
	if strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://") {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		q := pu.Query()
		q.Set(key, value)
		// url.Values encodes a space as '+', which pgx does not decode.
		pu.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
		return pu.String()
	}
	quoted := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(value)
	return fmt.Sprintf("%s %s='%s'", u, key, quoted) // later keys win
}

// TestServerGone opens a store through a proxy, cuts the proxy, and checks
// that every kind of call then fails as unavailable, quickly, and does not
// panic or hang.
func TestServerGone(t *testing.T) {
	t.Parallel()
	schema := testSchema(t)
	p := newProxy(t)
	cfg := testConfig(schema)
	cfg.URL = p.url(t)
	cfg.ConnectTimeout = time.Second
	db, err := OpenConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := t.Context()
	if err := db.CreateCA(ctx, testCA("ca-1")); err != nil {
		t.Fatal(err)
	}
	if err := db.InsertCertificate(ctx, testCert("ca-1", "01")); err != nil {
		t.Fatal(err)
	}
	p.cut()

	start := time.Now()
	for name, call := range map[string]func() error{
		"CreateCA":          func() error { return db.CreateCA(ctx, testCA("ca-2")) },
		"GetCA":             func() error { _, err := db.GetCA(ctx, "name-ca-1"); return err },
		"InsertCertificate": func() error { return db.InsertCertificate(ctx, testCert("ca-1", "02")) },
		"GetCertificate":    func() error { _, err := db.GetCertificate(ctx, "01"); return err },
		"ListCertificates":  func() error { _, err := db.ListCertificates(ctx, store.CertFilter{}); return err },
		"RevokeCertificate": func() error { _, err := db.RevokeCertificate(ctx, "ca-1", "01", 1, t0); return err },
		"ListRevoked": func() error {
			return db.ListRevoked(ctx, "ca-1", -1, time.Time{}, func(store.RevokedEntry) error { return nil })
		},
		"NextCRLNumber": func() error { _, err := db.NextCRLNumber(ctx, "ca-1", 0); return err },
		"PutMeta":       func() error { return db.PutMeta(ctx, "k", nil) },
	} {
		wantUnavailable(t, name+" with the server gone", call())
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("calls with the server gone took %v", d)
	}
}

// TestServerTerminatesConnections has the server end the store's
// connections, as a restart or pg_terminate_backend does. The store
// recovers without being reopened: InsertCertificate resends a batch that
// provably did not run, and another call that meets a dead connection fails
// as unavailable.
func TestServerTerminatesConnections(t *testing.T) {
	t.Parallel()
	schema := testSchema(t)
	cfg := testConfig(schema)
	cfg.URL = withParam(t, cfg.URL, "application_name", schema)
	cfg.MaxConns, cfg.Writers = 2, 1
	db, err := OpenConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := t.Context()
	if err := db.CreateCA(ctx, testCA("ca-1")); err != nil {
		t.Fatal(err)
	}
	if err := db.InsertCertificate(ctx, testCert("ca-1", "01")); err != nil {
		t.Fatal(err)
	}
	var killed int
	err = adminPool(t).QueryRow(ctx,
		"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", schema).Scan(&killed)
	if err != nil {
		t.Fatal(err)
	}
	if killed == 0 {
		t.Fatal("found no session of the store to terminate")
	}
	t.Logf("terminated %d sessions", killed)
	time.Sleep(100 * time.Millisecond) // let the server send its FATAL message
	// A batch on a terminated connection is sent again on a new one: the
	// server's FATAL answer to its first statement proves none of it ran.
	for i := range 3 {
		if err := db.InsertCertificate(ctx, testCert("ca-1", fmt.Sprintf("1%d", i))); err != nil {
			t.Errorf("insert %d after the server terminated the connections: %v", i, err)
		}
	}
	// Other calls may fail once as unavailable on a dead connection.
	for i := range 3 {
		if _, err := db.GetCA(ctx, "name-ca-1"); err != nil {
			t.Logf("GetCA %d: %v", i, err)
			wantUnavailable(t, "GetCA on a terminated connection", err)
			if pe, ok := errors.AsType[*pgconn.PgError](err); ok && pe.Code != codeAdminShutdown {
				t.Errorf("server error %s, want %s (admin_shutdown)", pe.Code, codeAdminShutdown)
			}
		}
	}
	// By now the pool has replaced the dead connections.
	if err := db.InsertCertificate(ctx, testCert("ca-1", "ff")); err != nil {
		t.Fatalf("InsertCertificate after the connections were replaced: %v", err)
	}
	if _, err := db.GetCertificate(ctx, "ff"); err != nil {
		t.Fatal(err)
	}
}

func TestClassify(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	live := context.Background()
	for name, tc := range map[string]struct {
		ctx  context.Context
		err  error
		want error
	}{
		"unique":              {live, &pgconn.PgError{Code: "23505"}, store.ErrConflict},
		"foreign-key":         {live, &pgconn.PgError{Code: "23503"}, store.ErrNotFound},
		"check":               {live, &pgconn.PgError{Code: "23514"}, errInvalid},
		"bad-encoding":        {live, &pgconn.PgError{Code: "22021"}, errInvalid},
		"out-of-range":        {live, &pgconn.PgError{Code: "22003"}, errInvalid},
		"admin-shutdown":      {live, &pgconn.PgError{Code: "57P01"}, store.ErrUnavailable},
		"cannot-connect-now":  {live, &pgconn.PgError{Code: "57P03"}, store.ErrUnavailable},
		"connection-failure":  {live, &pgconn.PgError{Code: "08006"}, store.ErrUnavailable},
		"too-many-conns":      {live, &pgconn.PgError{Code: "53300"}, store.ErrUnavailable},
		"read-only":           {live, &pgconn.PgError{Code: "25006"}, store.ErrUnavailable},
		"syntax":              {live, &pgconn.PgError{Code: "42601"}, nil},
		"connect":             {live, &pgconn.ConnectError{}, store.ErrUnavailable},
		"eof":                 {live, fmt.Errorf("read: %w", io.ErrUnexpectedEOF), store.ErrUnavailable},
		"net":                 {live, &net.OpError{Op: "read", Err: errors.New("connection reset")}, store.ErrUnavailable},
		"conn-closed":         {live, fmt.Errorf("query: %w", pgconn.ErrConnClosed), store.ErrUnavailable},
		"deadline":            {live, fmt.Errorf("x: %w", context.DeadlineExceeded), store.ErrUnavailable},
		"caller-cancelled":    {cancelled, fmt.Errorf("x: %w", context.Canceled), nil},
		"other":               {live, errors.New("boom"), nil},
		"wrapped-pg-in-other": {live, fmt.Errorf("batch: %w", &pgconn.PgError{Code: "23505"}), store.ErrConflict},
	} {
		t.Run(name, func(t *testing.T) {
			if got := classify(tc.ctx, tc.err); got != tc.want {
				t.Errorf("classify(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// TestOpenSettings checks the session settings every connection gets and
// the pool's default size.
func TestOpenSettings(t *testing.T) {
	t.Parallel()
	db := openTest(t, func(c *Config) { c.MaxConns = 0 })
	schema := db.cfg.Schema
	for param, want := range map[string]string{
		"search_path":                         pgx.Identifier{schema}.Sanitize(),
		"TimeZone":                            "UTC",
		"idle_in_transaction_session_timeout": "10s",
	} {
		var got string
		if err := db.pool.QueryRow(t.Context(), "SELECT current_setting($1)", param).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s = %q, want %q", param, got, want)
		}
	}
	if got, min := db.pool.Config().MaxConns, int32(DefaultWriters+minReadConns); got < min {
		t.Errorf("default MaxConns = %d, want at least %d", got, min)
	}
	if v, err := storedVersion(t.Context(), db.pool); err != nil || v != SchemaVersion {
		t.Errorf("schema version = %d, %v; want %d", v, err, SchemaVersion)
	}

	// A session that would start with synchronous_commit off is switched
	// back on, unless the connection string sets the parameter itself.
	for opt, want := range map[string]string{
		"options":            "on",  // -c synchronous_commit=off, a session default
		"synchronous_commit": "off", // the store's own parameter: respected
	} {
		cfg := testConfig(testSchema(t))
		if opt == "options" {
			cfg.URL = withParam(t, cfg.URL, "options", "-c synchronous_commit=off")
		} else {
			cfg.URL = withParam(t, cfg.URL, "synchronous_commit", "off")
		}
		db, err := OpenConfig(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		var got string
		err = db.pool.QueryRow(t.Context(), "SHOW synchronous_commit").Scan(&got)
		db.Close()
		if err != nil || got != want {
			t.Errorf("%s: synchronous_commit = %q, %v; want %q", opt, got, err, want)
		}
	}

	// The connection string's own settings win.
	cfg := testConfig(testSchema(t))
	cfg.URL = withParam(t, withParam(t, cfg.URL, "pool_max_conns", "3"), idleInTxParam, "5min")
	cfg.MaxConns = 0
	db2, err := OpenConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	var got string
	if err := db2.pool.QueryRow(t.Context(), "SHOW "+idleInTxParam).Scan(&got); err != nil || got != "5min" {
		t.Errorf("%s = %q, %v; want the URL's 5min", idleInTxParam, got, err)
	}
	if n := db2.pool.Config().MaxConns; n != 3 {
		t.Errorf("MaxConns = %d, want the URL's 3", n)
	}
}

func TestSweepSchemas(t *testing.T) {
	t.Parallel()
	pool := adminPool(t)
	old := fmt.Sprintf("%s%d_%s", schemaPrefix, time.Now().Add(-2*time.Hour).Unix(), "5eed")
	fresh := newSchemaName()
	for _, name := range []string{old, fresh} {
		if _, err := pool.Exec(t.Context(), "CREATE SCHEMA "+pgx.Identifier{name}.Sanitize()); err != nil {
			t.Fatal(err)
		}
		dropSchemaAtCleanup(t, name)
	}
	if err := sweepSchemas(t.Context(), pool); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{old: false, fresh: true} {
		var exists bool
		if err := pool.QueryRow(t.Context(), "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)", name).Scan(&exists); err != nil {
			t.Fatal(err)
		}
		if exists != want {
			t.Errorf("schema %s exists = %v after the sweep, want %v", name, exists, want)
		}
	}
}
