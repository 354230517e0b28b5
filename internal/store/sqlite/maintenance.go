package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/trustgate/trustgate/internal/store"
)

// ListMeta returns every small named value.
func (d *DB) ListMeta(ctx context.Context) (map[string][]byte, error) {
	const op = "list meta"
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	err := eachRow(ctx, d.r, "SELECT key, value FROM meta", nil, func(s scanner) error {
		var k string
		var v []byte
		if err := s.Scan(&k, blob{&v}); err != nil {
			return err
		}
		out[k] = v
		return nil
	})
	if err != nil {
		return nil, wrapErr("sqlite: "+op, err)
	}
	return out, nil
}

// ListCRLNumbers returns the last CRL number of every (CA, partition).
func (d *DB) ListCRLNumbers(ctx context.Context) ([]store.CRLNumber, error) {
	const op = "list crl numbers"
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	var out []store.CRLNumber
	err := eachRow(ctx, d.r, "SELECT ca_id, partition, number FROM crl_numbers ORDER BY ca_id, partition", nil, func(s scanner) error {
		var n store.CRLNumber
		if err := s.Scan(&n.CAID, &n.Partition, &n.Number); err != nil {
			return err
		}
		out = append(out, n)
		return nil
	})
	if err != nil {
		return nil, wrapErr("sqlite: "+op, err)
	}
	return out, nil
}

// RaiseCRLNumber makes the last CRL number of (caID, partition) at least n.
func (d *DB) RaiseCRLNumber(ctx context.Context, caID string, partition int, n int64) error {
	op := fmt.Sprintf("raise crl number (ca %q, partition %d)", caID, partition)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	err := d.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO crl_numbers (ca_id, partition, number) VALUES (?, ?, ?)
			ON CONFLICT (ca_id, partition) DO UPDATE SET number = max(number, excluded.number)`, caID, partition, n)
		return err
	})
	if isForeignKey(err) {
		return fmt.Errorf("sqlite: %s: ca does not exist: %w", op, store.ErrNotFound)
	}
	if err != nil {
		return wrapErr("sqlite: "+op, err)
	}
	return nil
}

// RaiseTrustStoreVersion makes a trust store's version at least version.
func (d *DB) RaiseTrustStoreVersion(ctx context.Context, id string, version int64) error {
	op := fmt.Sprintf("raise trust store version (%q to %d)", id, version)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	err := d.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE truststores SET version = max(version, ?) WHERE id = ?", version, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return errors.Join(err, store.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return wrapErr("sqlite: "+op, err)
	}
	return nil
}
