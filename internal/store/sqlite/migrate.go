package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// migrationFS holds the schema, one file per version: NNNN_name.sql, numbered
// from 0001 without gaps. A released file is never edited; a change is a new file.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// migration is one schema version.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in version order, or an error if
// their names are malformed or their numbers have gaps.
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	var ms []migration
	for _, n := range names {
		base := path.Base(n)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || len(num) != 4 || v <= 0 {
			return nil, fmt.Errorf("migration %s: name is not NNNN_name.sql", base)
		}
		b, err := migrationFS.ReadFile(n)
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", base, err)
		}
		ms = append(ms, migration{version: v, name: base, sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: want version %d", m.name, i+1)
		}
	}
	if len(ms) != SchemaVersion {
		return nil, fmt.Errorf("%d migrations, but SchemaVersion is %d", len(ms), SchemaVersion)
	}
	return ms, nil
}

// SchemaVersion is the schema version this code creates and understands: the
// number of the newest file in migrations/.
const SchemaVersion = 7

// ErrSchemaTooNew is wrapped by the error of Open for a database written by a
// newer Trustgate, whose schema version this code does not know.
var ErrSchemaTooNew = errors.New("database schema is newer than this version of Trustgate supports; upgrade Trustgate or restore a backup")

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER NOT NULL PRIMARY KEY,
	name       TEXT    NOT NULL,
	applied_at TEXT    NOT NULL
) STRICT`

// storedVersion returns the highest applied schema version, 0 for a database
// without a schema_migrations table. It only reads.
func storedVersion(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int, error) {
	var n int
	err := q.QueryRowContext(ctx,
		"SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'").Scan(&n)
	if err != nil {
		return 0, wrapErr("read schema version", err)
	}
	if n == 0 {
		return 0, nil
	}
	var v int
	if err := q.QueryRowContext(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&v); err != nil {
		return 0, wrapErr("read schema version", err)
	}
	return v, nil
}

// checkVersion fails, without writing anything, when the database's schema
// is newer than SchemaVersion.
func checkVersion(ctx context.Context, db *sql.DB) error {
	v, err := storedVersion(ctx, db)
	if err != nil {
		return err
	}
	if v > SchemaVersion {
		return fmt.Errorf("schema version %d, this code knows up to %d: %w", v, SchemaVersion, ErrSchemaTooNew)
	}
	return nil
}

// migrate applies, in one transaction, every migration newer than the
// database's version. A failure leaves the database as it was.
func migrate(ctx context.Context, db *sql.DB, now time.Time) (err error) {
	ms, err := migrations()
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: the writer DSN sets _txlock
	if err != nil {
		return wrapErr("migrate: begin", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	// Read again under the write lock: another process may have migrated
	// since checkVersion.
	cur, err := storedVersion(ctx, tx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if cur > SchemaVersion {
		return fmt.Errorf("schema version %d, this code knows up to %d: %w", cur, SchemaVersion, ErrSchemaTooNew)
	}
	if cur == SchemaVersion {
		return tx.Commit()
	}
	if _, err := tx.ExecContext(ctx, createMigrationsTable); err != nil {
		return wrapErr("migrate: create schema_migrations", err)
	}
	at, err := encodeTime(now)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, m := range ms[cur:] {
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return wrapErr("migrate: apply "+m.name, err)
		}
		if _, err := tx.ExecContext(ctx,
			"INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
			m.version, m.name, at); err != nil {
			return wrapErr("migrate: record "+m.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return wrapErr("migrate: commit", err)
	}
	return nil
}
