package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/trustgate/trustgate/internal/store"
)

// ListMeta returns every small named value.
func (d *DB) ListMeta(ctx context.Context) (map[string][]byte, error) {
	const op = "list meta"
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	err := eachRow(ctx, d.pool, "SELECT key, value FROM meta", nil, func(row pgx.Rows) error {
		var k string
		var v []byte
		if err := row.Scan(&k, &v); err != nil {
			return err
		}
		out[k] = v
		return nil
	})
	if err != nil {
		return nil, d.fail(ctx, op, err)
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
	err := eachRow(ctx, d.pool, "SELECT ca_id, partition, number FROM crl_numbers ORDER BY ca_id, partition", nil, func(row pgx.Rows) error {
		var n store.CRLNumber
		var part int32
		if err := row.Scan(&n.CAID, &part, &n.Number); err != nil {
			return err
		}
		n.Partition = int(part)
		out = append(out, n)
		return nil
	})
	if err != nil {
		return nil, d.fail(ctx, op, err)
	}
	return out, nil
}

// RaiseCRLNumber makes the last CRL number of (caID, partition) at least n.
func (d *DB) RaiseCRLNumber(ctx context.Context, caID string, partition int, n int64) error {
	op := fmt.Sprintf("raise crl number (ca %q, partition %d)", caID, partition)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	if !storable(caID) || partition < 0 || partition > 1<<31-1 {
		return fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	return d.inTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO crl_numbers (ca_id, partition, number) VALUES ($1, $2, $3)
			ON CONFLICT (ca_id, partition) DO UPDATE SET number = greatest(crl_numbers.number, excluded.number)`, caID, partition, n)
		if isCode(err, codeForeignKeyViolation) {
			return fmt.Errorf("ca does not exist: %w", store.ErrNotFound)
		}
		return err
	})
}

// RaiseTrustStoreVersion makes a trust store's version at least version.
func (d *DB) RaiseTrustStoreVersion(ctx context.Context, id string, version int64) error {
	op := fmt.Sprintf("raise trust store version (%q to %d)", id, version)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	if !storable(id) {
		return fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	return d.inTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "UPDATE truststores SET version = greatest(version, $1) WHERE id = $2", version, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		return nil
	})
}
