package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/trustgate/trustgate/internal/store"
)

// Every trust-store write is one transaction: the version bump and the
// change commit together or not at all. The bump is a conditional UPDATE of
// the trust store's row; under READ COMMITTED a concurrent change of the
// same store waits for the row lock and then finds the version moved on, so
// of two changes made from one version exactly one succeeds, on any node.

const (
	tsColumns     = "id, name, version, created_at, updated_at"
	tsCRLColumns  = "id, key, url, der, issuer_ref, number, this_update, next_update, added_at"
	tsCRLNoDER    = "id, key, url, NULL::bytea, issuer_ref, number, this_update, next_update, added_at"
	insertTSSQL   = "INSERT INTO truststores (" + tsColumns + ") VALUES ($1, $2, 1, $3, $4)"
	insertTSCA    = "INSERT INTO truststore_cas (truststore_id, ca_id, added_at) VALUES ($1, $2, $3)"
	insertTSCert  = "INSERT INTO truststore_certs (truststore_id, fingerprint, der, added_at) VALUES ($1, $2, $3, $4)"
	insertTSCRL   = "INSERT INTO truststore_crls (truststore_id, " + tsCRLColumns + ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
	bumpTSVersion = "UPDATE truststores SET version = version + 1, updated_at = $1 WHERE id = $2 AND version = $3"
)

// tsQuerier is a pgx.Tx or a pool.
type tsQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// CreateTrustStore inserts ts and its members at version 1, in one
// transaction, and sets ts.Version. A taken name or ID, or a member listed
// twice, is an error wrapping store.ErrConflict; a CA ID that names no CA
// one wrapping store.ErrNotFound; a time outside the years 0000-9999 a
// fault.Invalid error. On error nothing is written.
func (d *DB) CreateTrustStore(ctx context.Context, ts *store.TrustStore) error {
	op := fmt.Sprintf("create trust store %q", ts.Name)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	if err := errors.Join(checkTime("created at", ts.CreatedAt), checkTime("updated at", ts.UpdatedAt),
		checkTSMembers(ts.CAs, ts.Certs, ts.CRLs)); err != nil {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	err := d.inTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, insertTSSQL, ts.ID, ts.Name, ts.CreatedAt, ts.UpdatedAt); err != nil {
			return err
		}
		return addTSMembers(ctx, tx, ts.ID, ts.CAs, ts.Certs, ts.CRLs)
	})
	if err != nil {
		return err
	}
	ts.Version = 1
	return nil
}

// checkTSMembers refuses member times the store does not keep.
func checkTSMembers(cas []store.TrustStoreCA, certs []store.TrustStoreCert, crls []store.TrustStoreCRL) error {
	var errs []error
	for _, c := range cas {
		errs = append(errs, checkTime("added at", c.AddedAt))
	}
	for _, c := range certs {
		errs = append(errs, checkTime("added at", c.AddedAt))
	}
	for _, c := range crls {
		errs = append(errs, checkTime("this update", c.ThisUpdate), checkTime("next update", c.NextUpdate), checkTime("added at", c.AddedAt))
	}
	return errors.Join(errs...)
}

// addTSMembers inserts members of the trust store id within tx.
func addTSMembers(ctx context.Context, tx pgx.Tx, id string, cas []store.TrustStoreCA, certs []store.TrustStoreCert, crls []store.TrustStoreCRL) error {
	for _, c := range cas {
		_, err := tx.Exec(ctx, insertTSCA, id, c.CAID, c.AddedAt)
		switch {
		case isCode(err, codeForeignKeyViolation):
			return fmt.Errorf("ca %q does not exist: %w", c.CAID, store.ErrNotFound)
		case isCode(err, codeUniqueViolation):
			return fmt.Errorf("ca %q is already in the trust store: %w", c.CAID, store.ErrConflict)
		case err != nil:
			return err
		}
	}
	for _, c := range certs {
		_, err := tx.Exec(ctx, insertTSCert, id, c.Fingerprint, c.DER, c.AddedAt)
		switch {
		case isCode(err, codeUniqueViolation):
			return fmt.Errorf("certificate %s is already in the trust store: %w", c.Fingerprint, store.ErrConflict)
		case err != nil:
			return err
		}
	}
	for _, c := range crls {
		_, err := tx.Exec(ctx, insertTSCRL, id, c.ID, c.Key, c.URL, c.DER, c.IssuerRef, c.Number, c.ThisUpdate, c.NextUpdate, c.AddedAt)
		switch {
		case isCode(err, codeUniqueViolation):
			return fmt.Errorf("CRL source %q (%s) is already in a trust store: %w", c.ID, c.Key, store.ErrConflict)
		case err != nil:
			return err
		}
	}
	return nil
}

// inTx runs fn, a write of op, in a transaction on a pooled connection and
// commits it. As with every write (see DB.write), ctx bounds only the wait
// for a connection: once the transaction has begun, the call learns its
// outcome even if ctx ends. fn's errors are wrapped with op and their
// sentinel; errors that already wrap a store sentinel keep it.
func (d *DB) inTx(ctx context.Context, op string, fn func(ctx context.Context, tx pgx.Tx) error) error {
	return d.onConn(ctx, op, func(ctx context.Context, c *pgxpool.Conn) (err error) {
		pending := store.AuditFrom(ctx)
		rec := pending.Claim(op)
		defer func() { pending.Settle(err == nil && rec != nil) }()
		tx, err := c.Begin(ctx)
		if err != nil {
			return d.fail(ctx, op, err)
		}
		if err := fn(ctx, tx); err != nil {
			_ = tx.Rollback(ctx)
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("postgres: %s: %w", op, err)
			}
			return d.fail(ctx, op, err)
		}
		if rec != nil {
			if err := appendAudit(ctx, tx, rec); err != nil {
				_ = tx.Rollback(ctx)
				return d.fail(ctx, op, err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			return d.fail(ctx, op, err)
		}
		return nil
	})
}

// GetTrustStore returns the trust store named name with its members, or an
// error wrapping store.ErrNotFound.
func (d *DB) GetTrustStore(ctx context.Context, name string) (*store.TrustStore, error) {
	op := fmt.Sprintf("get trust store %q", name)
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	if !storable(name) {
		return nil, fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	var ts *store.TrustStore
	err := d.inReadTx(ctx, func(tx pgx.Tx) error {
		var err error
		ts, err = loadTrustStore(ctx, tx, "name", name)
		return err
	})
	if err != nil {
		return nil, d.readErr(ctx, op, err)
	}
	return ts, nil
}

// GetTrustStoreVersion returns the ID and version of the trust store named
// name, or an error wrapping store.ErrNotFound. It reads one row.
func (d *DB) GetTrustStoreVersion(ctx context.Context, name string) (string, int64, error) {
	op := fmt.Sprintf("get trust store version %q", name)
	if err := d.begin(ctx, op); err != nil {
		return "", 0, err
	}
	if !storable(name) {
		return "", 0, fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	var (
		id      string
		version int64
	)
	err := d.pool.QueryRow(ctx, "SELECT id, version FROM truststores WHERE name = $1", name).Scan(&id, &version)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", 0, fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	if err != nil {
		return "", 0, d.fail(ctx, op, err)
	}
	return id, version, nil
}

// ListTrustStores returns every trust store ordered by name, with its
// members; uploaded CRLs come without their DER.
func (d *DB) ListTrustStores(ctx context.Context) ([]*store.TrustStore, error) {
	const op = "list trust stores"
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	var out []*store.TrustStore
	err := d.inReadTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT "+tsColumns+" FROM truststores ORDER BY name")
		if err != nil {
			return err
		}
		byID := map[string]*store.TrustStore{}
		for rows.Next() {
			ts, err := scanTrustStore(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, ts)
			byID[ts.ID] = ts
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		return loadTSMembers(ctx, tx, "", false, func(id string) *store.TrustStore { return byID[id] })
	})
	if err != nil {
		return nil, d.readErr(ctx, op, err)
	}
	return out, nil
}

// ChangeTrustStore applies ch to the trust store id at version, bumping its
// version and setting UpdatedAt to ch.At truncated to the microsecond, in
// one transaction, and returns the store as committed. See store.Store for
// the errors; on error nothing is changed.
func (d *DB) ChangeTrustStore(ctx context.Context, id string, version int64, ch store.TrustStoreChange) (*store.TrustStore, error) {
	op := fmt.Sprintf("change trust store %q (version %d)", id, version)
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	if err := errors.Join(checkTime("at", ch.At), checkTSMembers(ch.AddCAs, ch.AddCerts, ch.AddCRLs)); err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", op, err)
	}
	if !storable(id) {
		return nil, fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	// The database keeps microseconds; truncated here, the time it keeps
	// is the time given, not a rounding of it.
	at := ch.At.Truncate(time.Microsecond)
	var out *store.TrustStore
	err := d.inTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, bumpTSVersion, at, id, version)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			var cur int64
			err := tx.QueryRow(ctx, "SELECT version FROM truststores WHERE id = $1", id).Scan(&cur)
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("trust store %q does not exist: %w", id, store.ErrNotFound)
			}
			if err != nil {
				return err
			}
			return fmt.Errorf("version %d is not the current version %d: %w", version, cur, store.ErrConflict)
		}
		for _, r := range []struct {
			query, what string
			keys        []string
		}{
			{"DELETE FROM truststore_cas WHERE truststore_id = $1 AND ca_id = $2", "ca", ch.RemoveCAs},
			{"DELETE FROM truststore_certs WHERE truststore_id = $1 AND fingerprint = $2", "certificate", ch.RemoveCerts},
			{"DELETE FROM truststore_crls WHERE truststore_id = $1 AND id = $2", "CRL source", ch.RemoveCRLs},
		} {
			for _, k := range r.keys {
				if !storable(k) {
					return fmt.Errorf("%s %q is not in the trust store: %w", r.what, k, store.ErrNotFound)
				}
				tag, err := tx.Exec(ctx, r.query, id, k)
				if err != nil {
					return err
				}
				if tag.RowsAffected() == 0 {
					return fmt.Errorf("%s %q is not in the trust store: %w", r.what, k, store.ErrNotFound)
				}
			}
		}
		if err := addTSMembers(ctx, tx, id, ch.AddCAs, ch.AddCerts, ch.AddCRLs); err != nil {
			return err
		}
		out, err = loadTrustStore(ctx, tx, "id", id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// inReadTx runs fn in a REPEATABLE READ, read-only transaction, so that its
// queries see one snapshot, and then ends it.
func (d *DB) inReadTx(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := d.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	return fn(tx)
}

// readErr wraps an error of a read: a sentinel error of ours is kept as is.
func (d *DB) readErr(ctx context.Context, op string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	return d.fail(ctx, op, err)
}

// loadTrustStore reads the trust store whose column (name or id) is key,
// with all its members; a miss wraps store.ErrNotFound.
func loadTrustStore(ctx context.Context, q tsQuerier, column, key string) (*store.TrustStore, error) {
	ts, err := scanTrustStore(q.QueryRow(ctx, "SELECT "+tsColumns+" FROM truststores WHERE "+column+" = $1", key))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("no such trust store: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	err = loadTSMembers(ctx, q, ts.ID, true, func(id string) *store.TrustStore {
		if id == ts.ID {
			return ts
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ts, nil
}

// loadTSMembers reads the members of the trust store id ("" for all) in
// the order they were added, and appends each to the store owner returns
// for its trust store ID (skipped when nil).
func loadTSMembers(ctx context.Context, q tsQuerier, id string, withCRLDER bool, owner func(id string) *store.TrustStore) error {
	where, args := "", []any(nil)
	if id != "" {
		where, args = " WHERE truststore_id = $1", []any{id}
	}
	crlCols := tsCRLNoDER
	if withCRLDER {
		crlCols = tsCRLColumns
	}
	err := eachRow(ctx, q, "SELECT truststore_id, ca_id, added_at FROM truststore_cas"+where+" ORDER BY ord", args,
		func(r pgx.Rows) error {
			var tsID string
			var c store.TrustStoreCA
			if err := r.Scan(&tsID, &c.CAID, &c.AddedAt); err != nil {
				return err
			}
			c.AddedAt = fromDB(c.AddedAt)
			if ts := owner(tsID); ts != nil {
				ts.CAs = append(ts.CAs, c)
			}
			return nil
		})
	if err != nil {
		return err
	}
	err = eachRow(ctx, q, "SELECT truststore_id, fingerprint, der, added_at FROM truststore_certs"+where+" ORDER BY ord", args,
		func(r pgx.Rows) error {
			var tsID string
			var c store.TrustStoreCert
			if err := r.Scan(&tsID, &c.Fingerprint, &c.DER, &c.AddedAt); err != nil {
				return err
			}
			c.AddedAt = fromDB(c.AddedAt)
			if ts := owner(tsID); ts != nil {
				ts.Certs = append(ts.Certs, c)
			}
			return nil
		})
	if err != nil {
		return err
	}
	return eachRow(ctx, q, "SELECT truststore_id, "+crlCols+" FROM truststore_crls"+where+" ORDER BY ord", args,
		func(r pgx.Rows) error {
			var tsID string
			var c store.TrustStoreCRL
			if err := r.Scan(&tsID, &c.ID, &c.Key, &c.URL, &c.DER, &c.IssuerRef, &c.Number, &c.ThisUpdate, &c.NextUpdate, &c.AddedAt); err != nil {
				return err
			}
			c.ThisUpdate, c.NextUpdate, c.AddedAt = fromDB(c.ThisUpdate), fromDB(c.NextUpdate), fromDB(c.AddedAt)
			if ts := owner(tsID); ts != nil {
				ts.CRLs = append(ts.CRLs, c)
			}
			return nil
		})
}

// eachRow runs query and calls fn for each row.
func eachRow(ctx context.Context, q tsQuerier, query string, args []any, fn func(pgx.Rows) error) error {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// scanTrustStore scans one row of tsColumns.
func scanTrustStore(r pgx.Row) (*store.TrustStore, error) {
	var ts store.TrustStore
	if err := r.Scan(&ts.ID, &ts.Name, &ts.Version, &ts.CreatedAt, &ts.UpdatedAt); err != nil {
		return nil, err
	}
	ts.CreatedAt, ts.UpdatedAt = fromDB(ts.CreatedAt), fromDB(ts.UpdatedAt)
	return &ts, nil
}
