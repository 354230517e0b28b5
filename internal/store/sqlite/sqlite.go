// Package sqlite implements store.Store on one SQLite database file, with the
// pure-Go driver modernc.org/sqlite.
//
// # Durability and concurrency
//
// The database runs in WAL mode with synchronous=FULL: every commit syncs the
// write-ahead log, so a write that returned nil survives a crash or a power
// loss. All writes go through a single connection (SQLite admits one writer at
// a time, and one connection avoids SQLITE_BUSY between our own writers);
// reads use a separate pool of query_only connections, which under WAL never
// wait for the writer.
//
// InsertCertificate is on the issuance hot path, and one fsync per
// certificate would cap issuance at the disk's sync rate. Concurrent calls are
// therefore queued to one goroutine that commits them in batches: one
// transaction and one fsync for up to Config.MaxBatch rows, each row under its
// own SAVEPOINT so that a duplicate fails only its own caller. See
// DB.InsertCertificate for how this interacts with ctx.
//
// Revocation writes (RevokeCertificate, ReleaseHold, CRL numbers) are rare
// and their callers need the outcome of a conditional change, so each is its
// own transaction on the writer connection rather than a row in a batch; the
// shared connection orders them with the batches. ListRevoked streams a CRL's
// entries from a partial, covering index of revoked certificates, so building
// a CRL costs the revoked entries only, never the active inventory, and never
// holds them all in memory.
//
// # Schema
//
// The schema is versioned: the embedded migrations/NNNN_*.sql files are
// applied in one transaction at Open and recorded in schema_migrations. Open
// refuses a database whose version is newer than this code knows, without
// changing it. Stored formats (times as fixed-width UTC text, SANs as
// newline-separated text, nil versus empty blobs) are described in
// migrations/0001_init.sql.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/store"
)

var _ store.Store = (*DB)(nil)

// Defaults for the zero fields of Config.
const (
	// DefaultBusyTimeout is the default of Config.BusyTimeout.
	DefaultBusyTimeout = 5 * time.Second
	// DefaultMaxBatch is the default of Config.MaxBatch.
	DefaultMaxBatch = 256
	// minReadConns is the least default of Config.ReadConns.
	minReadConns = 4
)

// Limits of CertFilter.Limit as ListCertificates applies them.
const (
	// DefaultListLimit is used when CertFilter.Limit is zero or negative.
	DefaultListLimit = 100
	// MaxListLimit caps CertFilter.Limit.
	MaxListLimit = 1000
)

// Config configures a DB. Every field but Path has a default for its zero value.
type Config struct {
	// Path is the database file. It is created, readable only by its owner,
	// when missing; its directory must exist. SQLite keeps two companion
	// files next to it, Path+"-wal" and Path+"-shm"; back up all three or
	// none, or use SQLite's online backup.
	Path string
	// BusyTimeout bounds how long a statement waits for a lock held by
	// another process (such as a backup tool) before failing with an error
	// wrapping store.ErrUnavailable. Default 5s.
	BusyTimeout time.Duration
	// ReadConns caps the pool of read-only connections. Default
	// 2×GOMAXPROCS, at least 4.
	ReadConns int
	// MaxBatch caps how many InsertCertificate calls share one transaction.
	// Default 256.
	MaxBatch int
	// Now returns the current time. It stamps CA.UpdatedAt in UpdateCA and
	// stands in for a zero CertFilter.Now. Default time.Now.
	Now func() time.Time
}

// setDefaults fills the zero fields of c.
func (c *Config) setDefaults() {
	if c.BusyTimeout <= 0 {
		c.BusyTimeout = DefaultBusyTimeout
	}
	if c.ReadConns <= 0 {
		c.ReadConns = max(minReadConns, 2*runtime.GOMAXPROCS(0))
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// DB is a store.Store on one SQLite file. It is safe for concurrent use. Its
// zero value is not usable; create one with Open or OpenConfig.
type DB struct {
	cfg Config
	w   *sql.DB // the one writer connection
	r   *sql.DB // query_only readers

	// Statements on w.
	insCA, updCA, insCert, insToken, putMeta *sql.Stmt
	spSave, spRelease, spRollback            *sql.Stmt
	// getCertByCAw is getCertByCA on w, to read inside a write transaction.
	revokeCert, releaseHold, getCertByCAw, nextCRL, takeCRL *sql.Stmt
	// auditHead and auditInsert append audit records (see appendAudit).
	auditHead, auditInsert *sql.Stmt
	// Statements on r.
	getCA, getCAByID, listCAs, getCert, countCerts, countImports, getToken, getMeta *sql.Stmt
	getCertByCA, crlNumber                                                          *sql.Stmt
	// getPrincipal and getPolicy are read on every authorized request.
	getPrincipal, getPolicy *sql.Stmt
	// accessGen is read on every authenticated request.
	accessGen *sql.Stmt
	// listRevoked holds the ListRevoked query of each revokedShape.
	listRevoked [numRevokedShapes]*sql.Stmt

	// listStmts caches the prepared ListCertificates query of each filter shape.
	listMu    sync.Mutex
	listStmts map[listShape]*sql.Stmt

	// The group-commit queue. sendMu is held for reading around each send on
	// queue and for writing when Close stops new sends, so that the writer
	// goroutine sees every queued request before it exits.
	queue      chan *insertReq
	sendMu     sync.RWMutex
	closed     atomic.Bool
	quit       chan struct{} // closed by Close: drain queue and stop
	writerDone chan struct{} // closed when the writer goroutine has exited

	closeOnce sync.Once
	closeErr  error
}

// Open opens, creating it if needed, the database at path with the default
// Config, and brings its schema up to date.
func Open(path string) (*DB, error) {
	return OpenConfig(Config{Path: path})
}

// OpenConfig opens, creating it if needed, the database at cfg.Path and
// brings its schema up to date. A database whose schema is newer than this
// code is refused and left as it was. A file that cannot be opened is an error
// wrapping store.ErrUnavailable.
func OpenConfig(cfg Config) (_ *DB, err error) {
	cfg.setDefaults()
	if cfg.Path == "" || cfg.Path == ":memory:" || strings.HasPrefix(cfg.Path, "file:") {
		return nil, fault.New(fault.Invalid, "sqlite: path %q is not a file path", cfg.Path)
	}
	// Create the file ourselves so that it, and the -wal and -shm files that
	// SQLite creates with the same mode, are private to the owner: they hold
	// sealed CA keys and token hashes.
	f, err := os.OpenFile(cfg.Path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w: %w", cfg.Path, store.ErrUnavailable, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w: %w", cfg.Path, store.ErrUnavailable, err)
	}

	d := &DB{
		cfg:        cfg,
		listStmts:  make(map[listShape]*sql.Stmt),
		queue:      make(chan *insertReq, 4*cfg.MaxBatch),
		quit:       make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	defer func() {
		if err != nil {
			d.closeHandles()
		}
	}()

	ctx := context.Background()
	busy := strconv.FormatInt(cfg.BusyTimeout.Milliseconds(), 10)
	// journal_mode is deliberately absent: it is a persistent change to the
	// file, made only once the schema version has been checked.
	d.w, err = sql.Open("sqlite", dsn(cfg.Path,
		"_pragma=busy_timeout("+busy+")",
		"_pragma=foreign_keys(1)",
		"_pragma=synchronous(FULL)",
		"_pragma=journal_size_limit(67108864)",
		"_txlock=immediate",
	))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
	}
	d.w.SetMaxOpenConns(1)
	d.w.SetMaxIdleConns(1)
	d.w.SetConnMaxLifetime(0)
	d.w.SetConnMaxIdleTime(0)

	if err := checkVersion(ctx, d.w); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
	}
	var mode string
	if err := d.w.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode); err != nil {
		return nil, wrapErr(fmt.Sprintf("sqlite: open %s: set WAL mode", cfg.Path), err)
	}
	if !strings.EqualFold(mode, "wal") {
		return nil, fmt.Errorf("sqlite: open %s: journal mode is %q, want wal", cfg.Path, mode)
	}
	if err := migrate(ctx, d.w, cfg.Now()); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
	}
	// Refresh the query planner's statistics where they are missing or
	// stale; bounded by analysis_limit, so cheap even on large files.
	if _, err := d.w.ExecContext(ctx, "PRAGMA analysis_limit=400; PRAGMA optimize=0x10002"); err != nil {
		return nil, wrapErr(fmt.Sprintf("sqlite: open %s: optimize", cfg.Path), err)
	}

	d.r, err = sql.Open("sqlite", dsn(cfg.Path,
		"_pragma=busy_timeout("+busy+")",
		"_pragma=query_only(1)",
	))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: readers: %w", cfg.Path, err)
	}
	d.r.SetMaxOpenConns(cfg.ReadConns)
	d.r.SetMaxIdleConns(cfg.ReadConns)
	if err := d.r.PingContext(ctx); err != nil {
		return nil, wrapErr(fmt.Sprintf("sqlite: open %s: readers", cfg.Path), err)
	}
	if err := d.prepare(ctx); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
	}

	go d.writer()
	return d, nil
}

// dsn builds a modernc.org/sqlite data source name for the file at path.
func dsn(path string, params ...string) string {
	// In a file: URI, SQLite decodes %XX, and '?' and '#' end the path.
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	if filepath.IsAbs(path) {
		// "file:///abs": an empty authority, so that a path starting
		// with "//" is not read as a host.
		esc = "//" + esc
	}
	return "file:" + esc + "?" + strings.Join(params, "&")
}

// prepare prepares the fixed statements.
func (d *DB) prepare(ctx context.Context) error {
	for _, p := range []struct {
		db    *sql.DB
		stmt  **sql.Stmt
		query string
	}{
		{d.w, &d.insCA, insertCASQL},
		{d.w, &d.updCA, updateCASQL},
		{d.w, &d.insCert, insertCertSQL},
		{d.w, &d.insToken, insertTokenSQL},
		{d.w, &d.putMeta, putMetaSQL},
		{d.w, &d.spSave, "SAVEPOINT cert"},
		{d.w, &d.spRelease, "RELEASE cert"},
		{d.w, &d.spRollback, "ROLLBACK TO cert"},
		{d.w, &d.revokeCert, revokeCertSQL},
		{d.w, &d.releaseHold, releaseHoldSQL},
		{d.w, &d.getCertByCAw, getCertByCASQL},
		{d.w, &d.nextCRL, nextCRLNumberSQL},
		{d.w, &d.takeCRL, takeCRLNumberSQL},
		{d.w, &d.auditHead, auditHeadSQL},
		{d.w, &d.auditInsert, auditInsertSQL},
		{d.r, &d.getPrincipal, selectPrincipalSQL + " WHERE name = ?"},
		{d.r, &d.getPolicy, selectPolicySQL + " WHERE name = ?"},
		{d.r, &d.accessGen, "SELECT gen FROM access_generation WHERE id = 1"},
		{d.r, &d.getCA, selectCASQL + " WHERE name = ?"},
		{d.r, &d.getCAByID, selectCASQL + " WHERE id = ?"},
		{d.r, &d.listCAs, selectCASQL + " ORDER BY created_at, rowid"},
		{d.r, &d.getCert, selectCertSQL + " WHERE serial = ? ORDER BY seq DESC LIMIT 1"},
		{d.r, &d.countCerts, "SELECT count(*) FROM certificates WHERE ca_id = ?"},
		{d.r, &d.countImports, "SELECT count(*) FROM certificates WHERE ca_id IS NULL"},
		{d.r, &d.getToken, selectTokenSQL + " WHERE hash = ?"},
		{d.r, &d.getMeta, "SELECT value FROM meta WHERE key = ?"},
		{d.r, &d.getCertByCA, getCertByCASQL},
		{d.r, &d.crlNumber, crlNumberSQL},
		{d.r, &d.listRevoked[0], listRevokedSQL(0)},
		{d.r, &d.listRevoked[revokedInPartition], listRevokedSQL(revokedInPartition)},
		{d.r, &d.listRevoked[revokedExpiresAfter], listRevokedSQL(revokedExpiresAfter)},
		{d.r, &d.listRevoked[revokedInPartition|revokedExpiresAfter], listRevokedSQL(revokedInPartition | revokedExpiresAfter)},
	} {
		s, err := p.db.PrepareContext(ctx, p.query)
		if err != nil {
			return wrapErr(fmt.Sprintf("prepare %q", p.query), err)
		}
		*p.stmt = s
	}
	return nil
}

// Close drains the InsertCertificate queue, committing what was queued before
// it was called, and then closes the database. Calls after the first do
// nothing and return the first call's result. Other methods called after
// Close fail with an error wrapping store.ErrUnavailable.
func (d *DB) Close() error {
	d.closeOnce.Do(func() {
		d.sendMu.Lock()
		d.closed.Store(true)
		d.sendMu.Unlock()
		close(d.quit)
		<-d.writerDone
		// Advisory: refresh planner statistics for the next Open. A
		// failure here costs only query plans, so it does not fail Close.
		_, _ = d.w.Exec("PRAGMA optimize")
		d.closeErr = d.closeHandles()
	})
	return d.closeErr
}

// closeHandles closes the statements and both pools; it tolerates a
// half-opened DB.
func (d *DB) closeHandles() error {
	var errs []error
	d.listMu.Lock()
	for _, s := range d.listStmts {
		errs = append(errs, s.Close())
	}
	d.listStmts = nil
	d.listMu.Unlock()
	stmts := []*sql.Stmt{
		d.insCA, d.updCA, d.insCert, d.insToken, d.putMeta,
		d.spSave, d.spRelease, d.spRollback,
		d.revokeCert, d.releaseHold, d.getCertByCAw, d.nextCRL, d.takeCRL,
		d.getCA, d.getCAByID, d.listCAs, d.getCert, d.countCerts, d.countImports, d.getToken, d.getMeta,
		d.getCertByCA, d.crlNumber, d.auditHead, d.auditInsert, d.getPrincipal, d.getPolicy, d.accessGen,
	}
	for _, s := range append(stmts, d.listRevoked[:]...) {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	if d.r != nil {
		errs = append(errs, d.r.Close())
	}
	if d.w != nil {
		// Closing the last connection checkpoints the WAL into the main
		// file and removes the -wal file.
		errs = append(errs, d.w.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

// errClosed is returned by every method called after Close.
var errClosed = fmt.Errorf("sqlite: database is closed: %w", store.ErrUnavailable)

// begin checks that d is open and ctx not done, so that a call with a
// cancelled context fails before it touches the database.
func (d *DB) begin(ctx context.Context, op string) error {
	if d.closed.Load() {
		return fmt.Errorf("sqlite: %s: %w", op, errClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	return nil
}

// wrapErr adds context to err from the driver and, where one applies, the
// store sentinel: ErrConflict for a uniqueness violation, ErrNotFound for a
// reference to a missing row, ErrUnavailable for a database that cannot be
// reached (locked, unopenable, failing I/O, full, read-only).
func wrapErr(op string, err error) error {
	if sentinel := classify(err); sentinel != nil {
		return fmt.Errorf("%s: %w: %w", op, sentinel, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// classify returns the store sentinel that err falls under, or nil.
func classify(err error) error {
	if errors.Is(err, sql.ErrConnDone) {
		return store.ErrUnavailable
	}
	var se *msqlite.Error
	if !errors.As(err, &se) {
		return nil
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return store.ErrConflict
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return store.ErrNotFound
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN,
		sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_PERM,
		sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PROTOCOL:
		return store.ErrUnavailable
	}
	return nil
}

// isForeignKey reports whether err is a foreign-key violation.
func isForeignKey(err error) bool {
	var se *msqlite.Error
	return errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}
