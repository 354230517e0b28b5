package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationFS holds the schema, one file per version: NNNN_name.sql, numbered
// from 0001 without gaps. A released file is never edited; a change is a new
// file. The versions are this store's own, unrelated to the SQLite store's.
// Nodes of the previous release keep running on the schema while a new
// release rolls out, so a migration must leave it usable by them: add
// columns with defaults and new tables, and drop things only a release later.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// migration is one schema version.
type migration struct {
	version int
	name    string
	sql     string
}

// SchemaVersion is the schema version this code creates and understands: the
// number of the newest file in migrations/.
const SchemaVersion = 6

// ErrSchemaTooNew is wrapped by the error of Open for a database written by a
// newer Trustgate, whose schema version this code does not know.
var ErrSchemaTooNew = errors.New("database schema is newer than this version of Trustgate supports; upgrade Trustgate or restore a backup")

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

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    integer     NOT NULL PRIMARY KEY,
	name       text        NOT NULL,
	applied_at timestamptz NOT NULL
)`

// migrateLockClass is the first key of the advisory lock that serializes
// migrations ("tgmg"); the second is derived from the schema name, so that
// stores in different schemas of one database do not wait for each other.
const migrateLockClass int32 = 0x74676d67

// lockKey returns the second key of the advisory locks of schema.
func lockKey(schema string) int32 {
	h := fnv.New32a()
	h.Write([]byte(schema))
	return int32(h.Sum32())
}

// migrate brings the schema up to SchemaVersion and returns how many
// migrations it applied. Each migration runs in one transaction with its
// record in schema_migrations, all under a transaction-scoped advisory lock
// taken again for each, so that of several nodes opening at once one applies
// each migration and the others then find it applied. A failed migration
// leaves the schema at the version before it (PostgreSQL DDL is
// transactional). A schema newer than SchemaVersion is ErrSchemaTooNew, and
// nothing is written.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string, now time.Time) (int, error) {
	ms, err := migrations()
	if err != nil {
		return 0, err
	}
	applied := 0
	for {
		done, err := migrateStep(ctx, pool, schema, ms, now)
		if err != nil {
			return applied, err
		}
		if done {
			return applied, nil
		}
		applied++
	}
}

// migrateStep applies the migration after the schema's current version, in
// one transaction under the migration lock, and reports whether there was
// none to apply.
func migrateStep(ctx context.Context, pool *pgxpool.Pool, schema string, ms []migration, now time.Time) (done bool, err error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return false, wrapErr(ctx, "migrate: begin", err)
	}
	defer func() {
		if err != nil || done {
			// Rollback also ends a transaction that wrote nothing.
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2)", migrateLockClass, lockKey(schema)); err != nil {
		return false, wrapErr(ctx, "migrate: lock", err)
	}
	cur, err := storedVersion(ctx, tx)
	if err != nil {
		return false, fmt.Errorf("migrate: %w", err)
	}
	if cur > SchemaVersion {
		return false, fmt.Errorf("schema %s: version %d, this code knows up to %d: %w", schemaName(schema), cur, SchemaVersion, ErrSchemaTooNew)
	}
	if cur == SchemaVersion {
		return true, nil
	}
	if schema != "" {
		if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()); err != nil {
			return false, wrapErr(ctx, "migrate: create schema "+schemaName(schema), err)
		}
	}
	if _, err := tx.Exec(ctx, createMigrationsTable); err != nil {
		return false, wrapErr(ctx, "migrate: create schema_migrations", err)
	}
	m := ms[cur]
	// The simple protocol: a migration is several statements.
	if _, err := tx.Exec(ctx, m.sql, pgx.QueryExecModeSimpleProtocol); err != nil {
		return false, wrapErr(ctx, "migrate: apply "+m.name, err)
	}
	if _, err := tx.Exec(ctx,
		"INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
		m.version, m.name, now); err != nil {
		return false, wrapErr(ctx, "migrate: record "+m.name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, wrapErr(ctx, "migrate: commit "+m.name, err)
	}
	return false, nil
}

// storedVersion returns the highest applied schema version, 0 when there is
// no schema_migrations table on the search_path. It only reads.
func storedVersion(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int, error) {
	var exists bool
	if err := q.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return 0, wrapErr(ctx, "read schema version", err)
	}
	if !exists {
		return 0, nil
	}
	var v int
	if err := q.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&v); err != nil {
		return 0, wrapErr(ctx, "read schema version", err)
	}
	return v, nil
}

// schemaName names schema in messages.
func schemaName(schema string) string {
	if schema == "" {
		return "(search_path)"
	}
	return strconv.Quote(schema)
}
