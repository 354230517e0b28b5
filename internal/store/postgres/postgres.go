// Package postgres implements store.Store on PostgreSQL with pgx (pgxpool),
// for control planes of several nodes that share one database.
//
// # Durability and concurrency
//
// A write returns nil only once the server has committed it, and
// PostgreSQL with synchronous_commit on, its default, flushes the WAL before
// it reports a commit: a write that returned nil survives a crash of the
// server. A session that would start with synchronous_commit off (set for the
// server, database or role) is switched back on; only a synchronous_commit
// parameter in the connection string itself is left as it says.
//
// InsertCertificate is on the issuance hot path. As in the SQLite store,
// concurrent calls are queued to Config.Writers goroutines that commit them
// in batches, each batch one pipelined transaction: one round trip and one
// WAL flush for up to Config.MaxBatch rows. Every row is inserted with ON
// CONFLICT DO NOTHING, so a duplicate fails only its own caller, and the
// (issuer_key, serial) UNIQUE constraint settles races between goroutines and
// between nodes alike. On a loaded two-CPU machine this commits several
// thousand certificates a second where one INSERT per call, even from many
// connections at once, managed under two thousand (see
// BenchmarkInsertCertificateParallel).
//
// Every other write is one autocommitted statement. A write honours its ctx
// until its statement is sent (for InsertCertificate, until a writer takes
// the row); from then on it waits for the server's answer even if ctx ends,
// at most Config.WriteTimeout, so that an error from ctx always means nothing
// was written. Only an error that wraps store.ErrUnavailable may leave the
// outcome unknown (the connection was lost after the statement was sent);
// the caller finds out by reading.
//
// # Sequence numbers
//
// Certificate.Seq comes from an identity column, assigned as a row is
// inserted. Each batch of inserts, on every node, holds a transaction-scoped
// advisory lock from before its rows take their Seq until they are
// committed, so rows become visible in Seq order: a walk of
// ListCertificates pages by Seq never passes over a row that commits later,
// as with SQLite's single writer. Batches of all nodes therefore commit one
// after another; the lock is held only while the server works, never across a
// network round trip. Seq values are never reused and may have gaps (a
// refused row consumes one).
//
// # Schema
//
// The schema is versioned: the embedded migrations/NNNN_*.sql files are
// applied at Open, each in the one transaction that records it in
// schema_migrations, under a transaction-scoped advisory lock, so nodes
// starting together migrate once and the others wait and then find the work
// done. Open refuses, without changing anything, a schema whose version is
// newer than this code knows (ErrSchemaTooNew). Config.Schema puts the tables
// in a schema of their own, created if missing; otherwise they go where the
// server's search_path says, which on PostgreSQL 15 and later needs CREATE
// on that schema. The database must be UTF8. Stored formats are described in
// migrations/0001_init.sql.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/store"
)

var _ store.Store = (*DB)(nil)

// Defaults for the zero fields of Config.
const (
	// DefaultConnectTimeout is the default of Config.ConnectTimeout.
	DefaultConnectTimeout = 5 * time.Second
	// DefaultWriteTimeout is the default of Config.WriteTimeout.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultMaxBatch is the default of Config.MaxBatch.
	DefaultMaxBatch = 256
	// DefaultWriters is the default of Config.Writers.
	DefaultWriters = 2
	// minReadConns is how many connections beyond Config.Writers the
	// default pool has, at least.
	minReadConns = 4
)

// idleInTxParam and idleInTxTimeout end a session left idle inside a
// transaction, unless the connection string sets the parameter itself.
const (
	idleInTxParam   = "idle_in_transaction_session_timeout"
	idleInTxTimeout = "10s"
)

// Limits of CertFilter.Limit as ListCertificates applies them, the same as
// the SQLite store's.
const (
	// DefaultListLimit is used when CertFilter.Limit is zero or negative.
	DefaultListLimit = 100
	// MaxListLimit caps CertFilter.Limit.
	MaxListLimit = 1000
)

// Config configures a DB. Every field but URL has a default for its zero value.
type Config struct {
	// URL is the connection string, as a postgres:// URL or key=value
	// pairs, with everything libpq-style strings and pgxpool accept
	// (sslmode, pool_max_conns, and so on). Passwords may also come from
	// PGPASSWORD or ~/.pgpass.
	URL string
	// Schema, when set, is the PostgreSQL schema that holds Trustgate's
	// tables: it is created if missing and is the whole search_path of every
	// connection. "" keeps the search_path that the URL (search_path or
	// options=-csearch_path=...), the role or the server sets (normally
	// "$user", public); the schema it selects must exist.
	//
	// The keys that keep the stores of one database apart (the leases, the
	// channel of changes, the insert lock) derive from Schema when it is
	// set, and otherwise from the schema the connection actually uses,
	// current_schema(): see keySchema.
	Schema string
	// MaxConns caps the connection pool, and so how many statements this
	// node runs at once; the Writers use one each while they commit, and a
	// ListRevoked walk holds one while it runs. Zero keeps the URL's
	// pool_max_conns, or else takes the greater of Writers+4 and pgxpool's
	// default (the greater of 4 and the number of CPUs).
	MaxConns int32
	// ConnectTimeout bounds each attempt to open a connection, so that an
	// unreachable server fails calls with store.ErrUnavailable instead of
	// hanging. Zero keeps the URL's connect_timeout, or 5s without one.
	ConnectTimeout time.Duration
	// WriteTimeout bounds how long a write waits for the server once the
	// statement is sent, when ctx no longer interrupts it; for
	// InsertCertificate, how long a batch may take. Default 30s.
	WriteTimeout time.Duration
	// MaxBatch caps how many InsertCertificate calls share one transaction.
	// Default 256.
	MaxBatch int
	// Writers is how many goroutines commit InsertCertificate batches, each
	// on a connection of its own: while one batch commits, the next is
	// already on its way to the server. Default 2.
	Writers int
	// Now returns the current time. It stamps CA.UpdatedAt in UpdateCA and
	// migrations in schema_migrations, and stands in for a zero
	// CertFilter.Now. Default time.Now.
	Now func() time.Time
}

// setDefaults fills the zero fields of c.
func (c *Config) setDefaults() {
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.Writers <= 0 {
		c.Writers = DefaultWriters
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// DB is a store.Store on a PostgreSQL database. It is safe for concurrent
// use. Its zero value is not usable; create one with Open or OpenConfig.
type DB struct {
	cfg  Config
	pool *pgxpool.Pool
	// current is current_schema() of the store's sessions, read at Open:
	// the schema that holds its tables.
	current string
	// keySchema is the schema name the lease keys, the channel of changes
	// and seqLockKey derive from (see keySchema).
	keySchema string
	// seqLockKey is the second key of the advisory lock of insert batches.
	seqLockKey int32
	// applied is how many migrations this DB's Open applied; 0 when the
	// schema was already up to date. For tests.
	applied int

	// The group-commit queue. sendMu is held for reading around each send on
	// queue and for writing when Close stops new sends, so that the writer
	// goroutines see every queued request before they exit.
	queue   chan *insertReq
	sendMu  sync.RWMutex
	closed  atomic.Bool
	quit    chan struct{}  // closed by Close: drain queue and stop
	writers sync.WaitGroup // the writer goroutines

	closeOnce sync.Once
}

// Open connects to the database at url with the default Config and brings
// its schema up to date.
func Open(ctx context.Context, url string) (*DB, error) {
	return OpenConfig(ctx, Config{URL: url})
}

// OpenConfig connects to the database at cfg.URL and brings the schema up to
// date, waiting for another node that is migrating it. A schema newer than
// this code is refused (ErrSchemaTooNew) and left as it was. A server that
// cannot be reached is an error wrapping store.ErrUnavailable; a malformed
// Config is a fault.Invalid error. ctx bounds the whole of Open; the DB does
// not keep it.
func OpenConfig(ctx context.Context, cfg Config) (*DB, error) {
	cfg.setDefaults()
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		// The message of a parse error may quote the URL, password included.
		return nil, fault.New(fault.Invalid, "postgres: open: malformed connection string")
	}
	if cfg.MaxConns < 0 || cfg.ConnectTimeout < 0 {
		return nil, fault.New(fault.Invalid, "postgres: open: negative MaxConns or ConnectTimeout")
	}
	switch {
	case cfg.MaxConns > 0:
		pc.MaxConns = cfg.MaxConns
	case !strings.Contains(cfg.URL, "pool_max_conns"):
		// Room for readers beside the writers' connections.
		pc.MaxConns = max(pc.MaxConns, int32(cfg.Writers)+minReadConns)
	}
	pc.MinConns = min(pc.MinConns, pc.MaxConns)
	switch {
	case cfg.ConnectTimeout > 0:
		pc.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
	case pc.ConnConfig.ConnectTimeout == 0:
		pc.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.Schema != "" {
		pc.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{cfg.Schema}.Sanitize()
	}
	// The server reports times in UTC to text-format readers too (psql, a
	// COPY), which makes what it logs match what the store returns.
	pc.ConnConfig.RuntimeParams["timezone"] = "UTC"
	if _, ok := pc.ConnConfig.RuntimeParams[idleInTxParam]; !ok {
		// A client that vanishes (a partition, a dead host) in the middle
		// of a transaction would otherwise hold its locks, the insert lock
		// of every node among them, until TCP gives up. The store never
		// leaves a transaction idle on purpose.
		pc.ConnConfig.RuntimeParams[idleInTxParam] = idleInTxTimeout
	}

	if _, ok := pc.ConnConfig.RuntimeParams["synchronous_commit"]; !ok {
		pc.AfterConnect = durableCommits
	}

	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, wrapErr(ctx, "postgres: open", err)
	}
	d := &DB{
		cfg:   cfg,
		pool:  pool,
		queue: make(chan *insertReq, 4*cfg.MaxBatch),
		quit:  make(chan struct{}),
	}
	if err := checkEncoding(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if d.applied, err = migrate(ctx, pool, cfg.Schema, cfg.Now()); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	// After migrate: the tables exist, so current_schema() is the schema
	// that holds them.
	var cur *string
	if err := pool.QueryRow(ctx, "SELECT current_schema()").Scan(&cur); err != nil {
		pool.Close()
		return nil, wrapErr(ctx, "postgres: open: read current_schema()", err)
	}
	if cur != nil {
		d.current = *cur
	}
	d.keySchema = keySchema(cfg.Schema, d.current)
	d.seqLockKey = lockKey(d.keySchema)
	for range cfg.Writers {
		d.writers.Go(d.writer)
	}
	return d, nil
}

// keySchema returns the schema name that the keys of a store derive from:
// its lease keys, its channel of changes and its insert lock key.
// Notifications and advisory locks are database-wide, so stores in
// different schemas of one database must use different keys, or they would
// share one jobs lease (one deployment's singleton jobs would not run while
// the other's held it), hear each other's changes and queue behind each
// other's inserts.
//
// An explicit Config.Schema is used as it is, as before. Without one, the
// keys derive from current, the schema the sessions actually use, which
// the URL may select with search_path. Releases before this one derived
// them from "" in that case; so that nodes of the previous release and of
// this one still exclude each other while a deployment upgrades node by
// node, the default schema "public" keeps deriving them from "". Only a
// deployment that selects another schema without Config.Schema changes
// keys (it shared its keys with every other such store of the database
// before); docs/operations.md tells its operators to upgrade all nodes at
// once.
func keySchema(configured, current string) string {
	switch {
	case configured != "":
		return configured
	case current == "public":
		return ""
	default:
		return current
	}
}

// CurrentSchema returns the schema that holds the store's tables,
// current_schema() of its sessions as read at Open.
func (d *DB) CurrentSchema() string { return d.current }

// durableCommits turns synchronous_commit on in a new session that would
// have it off, so that a commit is flushed before the server reports it.
// Other values (local, remote_write, remote_apply) flush locally and are kept.
func durableCommits(ctx context.Context, conn *pgx.Conn) error {
	var v string
	if err := conn.QueryRow(ctx, "SELECT current_setting('synchronous_commit')").Scan(&v); err != nil {
		return fmt.Errorf("read synchronous_commit: %w", err)
	}
	if v == "off" {
		if _, err := conn.Exec(ctx, "SET synchronous_commit = on"); err != nil {
			return fmt.Errorf("set synchronous_commit: %w", err)
		}
	}
	return nil
}

// checkEncoding connects and refuses a database whose encoding is not UTF8:
// the store keeps UTF-8 text (subjects, SANs) and answers lookups of keys
// that are not UTF-8 without asking the server, which is only right when the
// server could not have stored them.
func checkEncoding(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return wrapErr(ctx, "connect", err)
	}
	defer conn.Release()
	if enc := conn.Conn().PgConn().ParameterStatus("server_encoding"); enc != "UTF8" {
		return fault.New(fault.Invalid, "database encoding is %q; Trustgate needs UTF8", enc)
	}
	return nil
}

// Close commits the InsertCertificate calls queued before it was called,
// then closes the pool, waiting for statements in progress (a ListRevoked
// walk among them) to finish. Calls after the first do nothing. Other methods
// called after Close fail with an error wrapping store.ErrUnavailable.
func (d *DB) Close() error {
	d.closeOnce.Do(func() {
		d.sendMu.Lock()
		d.closed.Store(true)
		d.sendMu.Unlock()
		close(d.quit)
		d.writers.Wait()
		d.pool.Close()
	})
	return nil
}

// errClosed is returned by every method called after Close.
var errClosed = fmt.Errorf("postgres: database is closed: %w", store.ErrUnavailable)

// begin checks that d is open and ctx not done, so that a call with a
// cancelled context fails before it touches the database.
func (d *DB) begin(ctx context.Context, op string) error {
	if d.closed.Load() {
		return fmt.Errorf("postgres: %s: %w", op, errClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	return nil
}

// fail wraps an error of the database for op, as wrapErr does; after Close
// it is errClosed, whatever the pool said.
func (d *DB) fail(ctx context.Context, op string, err error) error {
	if d.closed.Load() {
		return fmt.Errorf("postgres: %s: %w: %w", op, errClosed, err)
	}
	return wrapErr(ctx, "postgres: "+op, err)
}

// failIf is fail for an err that may be nil, which stays nil.
func (d *DB) failIf(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	return d.fail(ctx, op, err)
}

// write runs fn, a write of op, on a connection of the pool. Acquiring the
// connection honours ctx; fn gets a context that ctx no longer cancels,
// bounded by Config.WriteTimeout, so that once a statement is sent the call
// learns whether it committed. A ctx that is done before fn starts fails the
// call with ctx's error and nothing written. fn's error is returned as it
// is: fn adds op and the sentinels itself.
//
// When ctx carries an audit record not yet written, fn runs inside a
// transaction that appends the record too, so the change and its record
// commit together.
func (d *DB) write(ctx context.Context, op string, fn func(ctx context.Context, c *pgxpool.Conn) error) error {
	return d.onConn(ctx, op, func(ctx context.Context, c *pgxpool.Conn) (err error) {
		pending := store.AuditFrom(ctx)
		rec := pending.Claim(op)
		if rec == nil {
			return fn(ctx, c)
		}
		defer func() { pending.Settle(err == nil) }()
		tx, err := c.Begin(ctx)
		if err != nil {
			return d.fail(ctx, op, err)
		}
		// Statements fn sends on c run inside tx: it is c's session.
		if err := fn(ctx, c); err != nil {
			_ = tx.Rollback(ctx)
			return err
		}
		if err := appendAudit(ctx, tx, rec); err != nil {
			_ = tx.Rollback(ctx)
			return d.fail(ctx, op, err)
		}
		return d.failIf(ctx, op, tx.Commit(ctx))
	})
}

// onConn runs fn on a pooled connection with the context rules of write,
// and no audit record.
func (d *DB) onConn(ctx context.Context, op string, fn func(ctx context.Context, c *pgxpool.Conn) error) error {
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return d.fail(ctx, op, err)
	}
	defer conn.Release()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.WriteTimeout)
	defer cancel()
	return fn(wctx, conn)
}

// SQLSTATE codes the store acts on
// (https://www.postgresql.org/docs/current/errcodes-appendix.html).
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
	codeCheckViolation      = "23514"
	codeNotNullViolation    = "23502"
	codeAdminShutdown       = "57P01"
	codeCrashShutdown       = "57P02"
	codeCannotConnectNow    = "57P03"
	codeLockNotAvailable    = "55P03"
	codeTooManyConnections  = "53300"
	codeDiskFull            = "53100"
	codeReadOnlyTransaction = "25006"
	classDataException      = "22"
	classConnection         = "08"
)

// errInvalid marks a value the server refused as malformed or out of range.
var errInvalid = &fault.Error{Kind: fault.Invalid, Msg: "value refused by the database"}

// wrapErr adds op and, where one applies, the store sentinel to err:
// ErrConflict for a uniqueness violation, ErrNotFound for a reference to a
// missing row, ErrUnavailable for a server that cannot be reached or is
// going away, and a fault.Invalid error for a value the server refuses. A
// failure caused by ctx being cancelled is only ctx's error: the caller gave
// up, the database did not fail.
func wrapErr(ctx context.Context, op string, err error) error {
	if sentinel := classify(ctx, err); sentinel != nil {
		return fmt.Errorf("%s: %w: %w", op, sentinel, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// classify returns the store sentinel that err falls under, or nil.
func classify(ctx context.Context, err error) error {
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		switch code := pe.Code; {
		case code == codeUniqueViolation:
			return store.ErrConflict
		case code == codeForeignKeyViolation:
			return store.ErrNotFound
		case code == codeCheckViolation, code == codeNotNullViolation,
			strings.HasPrefix(code, classDataException):
			return errInvalid
		case strings.HasPrefix(code, classConnection),
			code == codeAdminShutdown, code == codeCrashShutdown, code == codeCannotConnectNow,
			code == codeLockNotAvailable, code == codeTooManyConnections, code == codeDiskFull,
			code == codeReadOnlyTransaction: // a standby, or a primary demoted under us
			return store.ErrUnavailable
		}
		return nil
	}
	if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
		// Refused, timed out, unresolvable, TLS or authentication failure:
		// the database cannot be reached with this configuration.
		return store.ErrUnavailable
	}
	if _, ok := errors.AsType[net.Error](err); ok ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		// A statement on a connection that an earlier failure closed (a
		// read transaction's second query after the server went away).
		errors.Is(err, pgconn.ErrConnClosed) ||
		pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded) {
		// The connection broke or a bounded wait for the server ran out.
		return store.ErrUnavailable
	}
	return nil
}

// isCode reports whether err is a PostgreSQL error with the SQLSTATE code.
func isCode(err error, code string) bool {
	pe, ok := errors.AsType[*pgconn.PgError](err)
	return ok && pe.Code == code
}
