package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/store"
)

const caColumns = `id, name, parent_id, external_parent, state, key_type,
	sealed_key, csr_der, cert_der, chain_der, subject, depth, path_len,
	key_exported, not_before, not_after, created_at, updated_at, crl_partitions`

const (
	selectCASQL = "SELECT " + caColumns + " FROM cas"
	insertCASQL = "INSERT INTO cas (" + caColumns + `) VALUES
	($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)`
	// updateCASQL sets the fields UpdateCA documents as mutable.
	updateCASQL = `UPDATE cas SET state = $1, sealed_key = $2, csr_der = $3,
	cert_der = $4, chain_der = $5, subject = $6, not_before = $7, not_after = $8,
	key_exported = $9, updated_at = $10 WHERE id = $11`
)

// CreateCA inserts ca. A taken name or ID is an error wrapping
// store.ErrConflict; a ParentID that names no CA is an error wrapping
// store.ErrNotFound; a negative CRLPartitions, a number out of the range of
// a PostgreSQL integer, a time outside the years 0000-9999 or text that is
// not UTF-8 or holds a NUL is a fault.Invalid error.
func (d *DB) CreateCA(ctx context.Context, ca *store.CA) error {
	op := fmt.Sprintf("create ca %q", ca.Name)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	if err := checkCA(ca); err != nil {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	if err := errors.Join(checkInt32("depth", ca.Depth), checkInt32("path length", ca.PathLen),
		checkTime("created at", ca.CreatedAt), checkTime("updated at", ca.UpdatedAt)); err != nil {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	if ca.CRLPartitions < 0 || ca.CRLPartitions > 1<<31-1 {
		return fmt.Errorf("postgres: %s: %w", op, fault.New(fault.Invalid, "CRL partition count %d is out of range", ca.CRLPartitions))
	}
	return d.write(ctx, op, func(ctx context.Context, c *pgxpool.Conn) error {
		_, err := c.Exec(ctx, insertCASQL,
			ca.ID, ca.Name, nullString(ca.ParentID), ca.ExternalParent,
			string(ca.State), ca.KeyType, ca.SealedKey, ca.CSRDER, ca.CertDER,
			ca.ChainDER, ca.Subject, ca.Depth, ca.PathLen, ca.KeyExported,
			ca.NotBefore, ca.NotAfter, ca.CreatedAt, ca.UpdatedAt, ca.CRLPartitions)
		if isCode(err, codeForeignKeyViolation) {
			return fmt.Errorf("postgres: %s: parent ca %q does not exist: %w", op, ca.ParentID, store.ErrNotFound)
		}
		if err != nil {
			return d.fail(ctx, op, err)
		}
		return nil
	})
}

// checkCA checks the values of ca that UpdateCA writes too.
func checkCA(ca *store.CA) error {
	return errors.Join(checkTime("not before", ca.NotBefore), checkTime("not after", ca.NotAfter))
}

// UpdateCA replaces the mutable fields of the CA with ca.ID (state, sealed
// key, CSR, certificate, chain, subject, validity, key-exported flag) and sets
// UpdatedAt, in the database and in ca, to Config.Now truncated to the
// microsecond. The other fields are left as stored, CRLPartitions among them.
// A missing CA is an error wrapping store.ErrNotFound.
func (d *DB) UpdateCA(ctx context.Context, ca *store.CA) error {
	op := fmt.Sprintf("update ca %q", ca.ID)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	if err := checkCA(ca); err != nil {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	if !storable(ca.ID) {
		return fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	now := nowMicro(d.cfg.Now)
	return d.write(ctx, op, func(ctx context.Context, c *pgxpool.Conn) error {
		tag, err := c.Exec(ctx, updateCASQL,
			string(ca.State), ca.SealedKey, ca.CSRDER, ca.CertDER, ca.ChainDER,
			ca.Subject, ca.NotBefore, ca.NotAfter, ca.KeyExported, now, ca.ID)
		if err != nil {
			return d.fail(ctx, op, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
		}
		ca.UpdatedAt = now
		return nil
	})
}

// GetCA returns the CA named name, or an error wrapping store.ErrNotFound.
func (d *DB) GetCA(ctx context.Context, name string) (*store.CA, error) {
	op := fmt.Sprintf("get ca %q", name)
	return d.getCA(ctx, op, "name", name)
}

// GetCAByID returns the CA with the given ID, or an error wrapping
// store.ErrNotFound.
func (d *DB) GetCAByID(ctx context.Context, id string) (*store.CA, error) {
	op := fmt.Sprintf("get ca by id %q", id)
	return d.getCA(ctx, op, "id", id)
}

// getCA returns the CA whose column (name or id, a constant) is key.
func (d *DB) getCA(ctx context.Context, op, column, key string) (*store.CA, error) {
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	if !storable(key) {
		return nil, fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	ca, err := scanCA(d.pool.QueryRow(ctx, selectCASQL+" WHERE "+column+" = $1", key))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	if err != nil {
		return nil, d.fail(ctx, op, err)
	}
	return ca, nil
}

// ListCAs returns every CA ordered by CreatedAt, then by insertion.
func (d *DB) ListCAs(ctx context.Context) ([]*store.CA, error) {
	const op = "list cas"
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	rows, err := d.pool.Query(ctx, selectCASQL+" ORDER BY created_at, ord")
	if err != nil {
		return nil, d.fail(ctx, op, err)
	}
	defer rows.Close()
	var cas []*store.CA
	for rows.Next() {
		ca, err := scanCA(rows)
		if err != nil {
			return nil, d.fail(ctx, op, err)
		}
		cas = append(cas, ca)
	}
	if err := rows.Err(); err != nil {
		return nil, d.fail(ctx, op, err)
	}
	return cas, nil
}

// scanCA scans one row of caColumns.
func scanCA(row pgx.Row) (*store.CA, error) {
	var (
		ca       store.CA
		parentID *string
		state    string
	)
	err := row.Scan(&ca.ID, &ca.Name, &parentID, &ca.ExternalParent, &state,
		&ca.KeyType, &ca.SealedKey, &ca.CSRDER, &ca.CertDER, &ca.ChainDER,
		&ca.Subject, &ca.Depth, &ca.PathLen, &ca.KeyExported,
		&ca.NotBefore, &ca.NotAfter, &ca.CreatedAt, &ca.UpdatedAt, &ca.CRLPartitions)
	if err != nil {
		return nil, err
	}
	ca.ParentID = fromNull(parentID)
	ca.State = store.CAState(state)
	ca.NotBefore, ca.NotAfter = fromDB(ca.NotBefore), fromDB(ca.NotAfter)
	ca.CreatedAt, ca.UpdatedAt = fromDB(ca.CreatedAt), fromDB(ca.UpdatedAt)
	return &ca, nil
}
