package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/trustgate/trustgate/internal/store"
)

// Trust stores change rarely and each change touches several tables, so
// every write is its own transaction on the writer connection (like the
// revocation writes); reads take one read transaction, so that a store and
// its members come from one snapshot.

const (
	tsColumns     = "id, name, version, created_at, updated_at"
	tsCRLColumns  = "id, key, url, der, issuer_ref, number, this_update, next_update, added_at"
	tsCRLNoDER    = "id, key, url, NULL, issuer_ref, number, this_update, next_update, added_at"
	insertTSSQL   = "INSERT INTO truststores (" + tsColumns + ") VALUES (?, ?, 1, ?, ?)"
	insertTSCA    = "INSERT INTO truststore_cas (truststore_id, ca_id, added_at) VALUES (?, ?, ?)"
	insertTSCert  = "INSERT INTO truststore_certs (truststore_id, fingerprint, der, added_at) VALUES (?, ?, ?, ?)"
	insertTSCRL   = "INSERT INTO truststore_crls (truststore_id, " + tsCRLColumns + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
	bumpTSVersion = "UPDATE truststores SET version = version + 1, updated_at = ? WHERE id = ? AND version = ?"
)

// querier is a *sql.Tx or *sql.DB.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
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
	ct, err1 := encodeTime(ts.CreatedAt)
	ut, err2 := encodeTime(ts.UpdatedAt)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	err := d.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, insertTSSQL, ts.ID, ts.Name, ct, ut); err != nil {
			return err
		}
		return addTSMembers(ctx, tx, ts.ID, ts.CAs, ts.Certs, ts.CRLs)
	})
	if err != nil {
		return wrapErr("sqlite: "+op, err)
	}
	ts.Version = 1
	return nil
}

// addTSMembers inserts members of the trust store id within tx.
func addTSMembers(ctx context.Context, tx *sql.Tx, id string, cas []store.TrustStoreCA, certs []store.TrustStoreCert, crls []store.TrustStoreCRL) error {
	for _, c := range cas {
		at, err := encodeTime(c.AddedAt)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, insertTSCA, id, c.CAID, at)
		if isForeignKey(err) {
			return fmt.Errorf("ca %q does not exist: %w", c.CAID, store.ErrNotFound)
		}
		if classify(err) == store.ErrConflict {
			return fmt.Errorf("ca %q is already in the trust store: %w: %w", c.CAID, store.ErrConflict, err)
		}
		if err != nil {
			return err
		}
	}
	for _, c := range certs {
		at, err := encodeTime(c.AddedAt)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, insertTSCert, id, c.Fingerprint, c.DER, at)
		if classify(err) == store.ErrConflict {
			return fmt.Errorf("certificate %s is already in the trust store: %w: %w", c.Fingerprint, store.ErrConflict, err)
		}
		if err != nil {
			return err
		}
	}
	for _, c := range crls {
		tu, err1 := encodeTime(c.ThisUpdate)
		nu, err2 := encodeTime(c.NextUpdate)
		at, err3 := encodeTime(c.AddedAt)
		if err := errors.Join(err1, err2, err3); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, insertTSCRL, id, c.ID, c.Key, c.URL, c.DER, c.IssuerRef, c.Number, tu, nu, at)
		if classify(err) == store.ErrConflict {
			return fmt.Errorf("CRL source %q (%s) is already in a trust store: %w: %w", c.ID, c.Key, store.ErrConflict, err)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// GetTrustStore returns the trust store named name with its members, or an
// error wrapping store.ErrNotFound.
func (d *DB) GetTrustStore(ctx context.Context, name string) (*store.TrustStore, error) {
	op := fmt.Sprintf("get trust store %q", name)
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	var ts *store.TrustStore
	err := d.inReadTx(ctx, func(tx *sql.Tx) error {
		var err error
		ts, err = loadTrustStore(ctx, tx, "name", name)
		return err
	})
	if err != nil {
		return nil, wrapErr("sqlite: "+op, err)
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
	var (
		id      string
		version int64
	)
	err := d.r.QueryRowContext(ctx, "SELECT id, version FROM truststores WHERE name = ?", name).Scan(&id, &version)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, fmt.Errorf("sqlite: %s: %w", op, store.ErrNotFound)
	}
	if err != nil {
		return "", 0, wrapErr("sqlite: "+op, err)
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
	err := d.inReadTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, "SELECT "+tsColumns+" FROM truststores ORDER BY name")
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
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		return loadTSMembers(ctx, tx, "", false, func(id string) *store.TrustStore { return byID[id] })
	})
	if err != nil {
		return nil, wrapErr("sqlite: "+op, err)
	}
	return out, nil
}

// ChangeTrustStore applies ch to the trust store id at version, bumping its
// version and setting UpdatedAt to ch.At, in one transaction on the writer
// connection, and returns the store as committed. See store.Store for the
// errors; on error nothing is changed.
func (d *DB) ChangeTrustStore(ctx context.Context, id string, version int64, ch store.TrustStoreChange) (*store.TrustStore, error) {
	op := fmt.Sprintf("change trust store %q (version %d)", id, version)
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	at, err := encodeTime(ch.At)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", op, err)
	}
	var out *store.TrustStore
	err = d.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, bumpTSVersion, at, id, version)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			var cur int64
			err := tx.QueryRowContext(ctx, "SELECT version FROM truststores WHERE id = ?", id).Scan(&cur)
			if errors.Is(err, sql.ErrNoRows) {
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
			{"DELETE FROM truststore_cas WHERE truststore_id = ? AND ca_id = ?", "ca", ch.RemoveCAs},
			{"DELETE FROM truststore_certs WHERE truststore_id = ? AND fingerprint = ?", "certificate", ch.RemoveCerts},
			{"DELETE FROM truststore_crls WHERE truststore_id = ? AND id = ?", "CRL source", ch.RemoveCRLs},
		} {
			for _, k := range r.keys {
				res, err := tx.ExecContext(ctx, r.query, id, k)
				if err != nil {
					return err
				}
				if n, err := res.RowsAffected(); err != nil {
					return err
				} else if n == 0 {
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
		return nil, wrapErr("sqlite: "+op, err)
	}
	return out, nil
}

// loadTrustStore reads the trust store whose column (name or id) is key,
// with all its members; a miss wraps store.ErrNotFound.
func loadTrustStore(ctx context.Context, q querier, column, key string) (*store.TrustStore, error) {
	ts, err := scanTrustStore(q.QueryRowContext(ctx, "SELECT "+tsColumns+" FROM truststores WHERE "+column+" = ?", key))
	if errors.Is(err, sql.ErrNoRows) {
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
func loadTSMembers(ctx context.Context, q querier, id string, withCRLDER bool, owner func(id string) *store.TrustStore) error {
	where, args := "", []any(nil)
	if id != "" {
		where, args = " WHERE truststore_id = ?", []any{id}
	}
	crlCols := tsCRLNoDER
	if withCRLDER {
		crlCols = tsCRLColumns
	}
	// CA references.
	if err := eachRow(ctx, q, "SELECT truststore_id, ca_id, added_at FROM truststore_cas"+where+" ORDER BY rowid", args,
		func(s scanner) error {
			var tsID, at string
			var c store.TrustStoreCA
			if err := s.Scan(&tsID, &c.CAID, &at); err != nil {
				return err
			}
			var err error
			if c.AddedAt, err = decodeTime(at); err != nil {
				return err
			}
			if ts := owner(tsID); ts != nil {
				ts.CAs = append(ts.CAs, c)
			}
			return nil
		}); err != nil {
		return err
	}
	// External certificates.
	if err := eachRow(ctx, q, "SELECT truststore_id, fingerprint, der, added_at FROM truststore_certs"+where+" ORDER BY rowid", args,
		func(s scanner) error {
			var tsID, at string
			var c store.TrustStoreCert
			if err := s.Scan(&tsID, &c.Fingerprint, blob{&c.DER}, &at); err != nil {
				return err
			}
			var err error
			if c.AddedAt, err = decodeTime(at); err != nil {
				return err
			}
			if ts := owner(tsID); ts != nil {
				ts.Certs = append(ts.Certs, c)
			}
			return nil
		}); err != nil {
		return err
	}
	// CRL sources.
	return eachRow(ctx, q, "SELECT truststore_id, "+crlCols+" FROM truststore_crls"+where+" ORDER BY rowid", args,
		func(s scanner) error {
			var tsID, tu, nu, at string
			var c store.TrustStoreCRL
			if err := s.Scan(&tsID, &c.ID, &c.Key, &c.URL, blob{&c.DER}, &c.IssuerRef, &c.Number, &tu, &nu, &at); err != nil {
				return err
			}
			var errs [3]error
			c.ThisUpdate, errs[0] = decodeTime(tu)
			c.NextUpdate, errs[1] = decodeTime(nu)
			c.AddedAt, errs[2] = decodeTime(at)
			if err := errors.Join(errs[:]...); err != nil {
				return fmt.Errorf("CRL source %q: %w", c.ID, err)
			}
			if ts := owner(tsID); ts != nil {
				ts.CRLs = append(ts.CRLs, c)
			}
			return nil
		})
}

// eachRow runs query and calls fn for each row.
func eachRow(ctx context.Context, q querier, query string, args []any, fn func(scanner) error) error {
	rows, err := q.QueryContext(ctx, query, args...)
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
func scanTrustStore(s scanner) (*store.TrustStore, error) {
	var (
		ts     store.TrustStore
		ct, ut string
	)
	if err := s.Scan(&ts.ID, &ts.Name, &ts.Version, &ct, &ut); err != nil {
		return nil, err
	}
	var err1, err2 error
	ts.CreatedAt, err1 = decodeTime(ct)
	ts.UpdatedAt, err2 = decodeTime(ut)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("trust store %q: %w", ts.ID, err)
	}
	return &ts, nil
}

// inReadTx runs fn in a read transaction on the reader pool, so that its
// queries see one snapshot of the database, and then ends it.
func (d *DB) inReadTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := d.r.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	return fn(tx)
}
