package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/store"
)

const caColumns = `id, name, parent_id, external_parent, state, key_type,
	sealed_key, csr_der, cert_der, chain_der, subject, depth, path_len,
	key_exported, not_before, not_after, created_at, updated_at, crl_partitions`

const (
	selectCASQL = "SELECT " + caColumns + " FROM cas"
	insertCASQL = "INSERT INTO cas (" + caColumns + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
	// updateCASQL sets the fields UpdateCA documents as mutable.
	updateCASQL = `UPDATE cas SET state = ?, sealed_key = ?, csr_der = ?,
	cert_der = ?, chain_der = ?, subject = ?, not_before = ?, not_after = ?,
	key_exported = ?, updated_at = ? WHERE id = ?`
)

// CreateCA inserts ca. A taken name or ID is an error wrapping
// store.ErrConflict; a ParentID that names no CA is an error wrapping
// store.ErrNotFound; a negative CRLPartitions is a fault.Invalid error.
func (d *DB) CreateCA(ctx context.Context, ca *store.CA) error {
	op := fmt.Sprintf("create ca %q", ca.Name)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	if ca.CRLPartitions < 0 {
		return fmt.Errorf("sqlite: %s: %w", op, fault.New(fault.Invalid, "negative CRL partition count %d", ca.CRLPartitions))
	}
	nb, err1 := encodeTime(ca.NotBefore)
	na, err2 := encodeTime(ca.NotAfter)
	ct, err3 := encodeTime(ca.CreatedAt)
	ut, err4 := encodeTime(ca.UpdatedAt)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	err := d.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		_, err := tx.StmtContext(ctx, d.insCA).ExecContext(ctx,
			ca.ID, ca.Name, nullString(ca.ParentID), boolInt(ca.ExternalParent),
			string(ca.State), ca.KeyType, ca.SealedKey, ca.CSRDER, ca.CertDER,
			ca.ChainDER, ca.Subject, ca.Depth, ca.PathLen, boolInt(ca.KeyExported),
			nb, na, ct, ut, ca.CRLPartitions)
		return err
	})
	if isForeignKey(err) {
		return fmt.Errorf("sqlite: %s: parent ca %q does not exist: %w", op, ca.ParentID, store.ErrNotFound)
	}
	if err != nil {
		return wrapErr("sqlite: "+op, err)
	}
	return nil
}

// UpdateCA replaces the mutable fields of the CA with ca.ID (state, sealed
// key, CSR, certificate, chain, subject, validity, key-exported flag) and sets
// UpdatedAt, in the database and in ca, to Config.Now. The other fields are
// left as stored, CRLPartitions among them: certificates already issued keep
// their partitions, so the count cannot change. A missing CA is an error
// wrapping store.ErrNotFound.
func (d *DB) UpdateCA(ctx context.Context, ca *store.CA) error {
	op := fmt.Sprintf("update ca %q", ca.ID)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	// UTC strips the monotonic reading, so ca.UpdatedAt is == to what a
	// later read returns.
	now := d.cfg.Now().UTC()
	nb, err1 := encodeTime(ca.NotBefore)
	na, err2 := encodeTime(ca.NotAfter)
	ut, err3 := encodeTime(now)
	if err := errors.Join(err1, err2, err3); err != nil {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	err := d.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.StmtContext(ctx, d.updCA).ExecContext(ctx,
			string(ca.State), ca.SealedKey, ca.CSRDER, ca.CertDER, ca.ChainDER,
			ca.Subject, nb, na, boolInt(ca.KeyExported), ut, ca.ID)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err == nil && n == 0 {
			err = sql.ErrNoRows // roll back, though nothing was written
		}
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlite: %s: %w", op, store.ErrNotFound)
	}
	if err != nil {
		return wrapErr("sqlite: "+op, err)
	}
	ca.UpdatedAt = now
	return nil
}

// GetCA returns the CA named name, or an error wrapping store.ErrNotFound.
func (d *DB) GetCA(ctx context.Context, name string) (*store.CA, error) {
	op := fmt.Sprintf("get ca %q", name)
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	return d.scanOneCA(op, d.getCA.QueryRowContext(ctx, name))
}

// GetCAByID returns the CA with the given ID, or an error wrapping
// store.ErrNotFound.
func (d *DB) GetCAByID(ctx context.Context, id string) (*store.CA, error) {
	op := fmt.Sprintf("get ca by id %q", id)
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	return d.scanOneCA(op, d.getCAByID.QueryRowContext(ctx, id))
}

// scanOneCA scans the single-row result of a CA lookup.
func (d *DB) scanOneCA(op string, row *sql.Row) (*store.CA, error) {
	ca, err := scanCA(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: %s: %w", op, store.ErrNotFound)
	}
	if err != nil {
		return nil, wrapErr("sqlite: "+op, err)
	}
	return ca, nil
}

// ListCAs returns every CA ordered by CreatedAt, then by insertion.
func (d *DB) ListCAs(ctx context.Context) ([]*store.CA, error) {
	const op = "list cas"
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	rows, err := d.listCAs.QueryContext(ctx)
	if err != nil {
		return nil, wrapErr("sqlite: "+op, err)
	}
	defer rows.Close()
	var cas []*store.CA
	for rows.Next() {
		ca, err := scanCA(rows)
		if err != nil {
			return nil, wrapErr("sqlite: "+op, err)
		}
		cas = append(cas, ca)
	}
	if err := rows.Err(); err != nil {
		return nil, wrapErr("sqlite: "+op, err)
	}
	return cas, nil
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanCA scans one row of caColumns.
func scanCA(s scanner) (*store.CA, error) {
	var (
		ca                          store.CA
		state                       string
		extParent, keyExported      int64
		notBefore, notAfter, ct, ut string
	)
	err := s.Scan(&ca.ID, &ca.Name, nullStr{&ca.ParentID}, &extParent, &state,
		&ca.KeyType, blob{&ca.SealedKey}, blob{&ca.CSRDER}, blob{&ca.CertDER},
		blob{&ca.ChainDER}, &ca.Subject, &ca.Depth, &ca.PathLen, &keyExported,
		&notBefore, &notAfter, &ct, &ut, &ca.CRLPartitions)
	if err != nil {
		return nil, err
	}
	ca.State = store.CAState(state)
	ca.ExternalParent = extParent != 0
	ca.KeyExported = keyExported != 0
	var errs [4]error
	ca.NotBefore, errs[0] = decodeTime(notBefore)
	ca.NotAfter, errs[1] = decodeTime(notAfter)
	ca.CreatedAt, errs[2] = decodeTime(ct)
	ca.UpdatedAt, errs[3] = decodeTime(ut)
	if err := errors.Join(errs[:]...); err != nil {
		return nil, fmt.Errorf("ca %q: %w", ca.ID, err)
	}
	return &ca, nil
}
