package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/store"
)

const (
	bootstrapColumns = "id, name, hash, ca_id, profile, sans, max_validity, max_uses, uses, created_by, created_at, expires_at, revoked"
	selectBootstrap  = "SELECT " + bootstrapColumns + " FROM bootstrap_tokens"
	insertBootstrap  = "INSERT INTO bootstrap_tokens (" + bootstrapColumns + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
	// useBootstrap spends one use when the token is live at ?2; the
	// condition and the increment are one statement, so uses can never
	// pass max_uses whatever runs concurrently.
	useBootstrap = `UPDATE bootstrap_tokens SET uses = uses + 1
	WHERE id = ?1 AND revoked = 0 AND uses < max_uses AND (expires_at = ?3 OR expires_at > ?2)
	RETURNING ` + bootstrapColumns
)

var _ store.LifecycleStore = (*DB)(nil)

// CreateBootstrapToken stores t. A taken ID or hash is an error wrapping
// store.ErrConflict, a CAID naming no CA one wrapping store.ErrNotFound.
func (d *DB) CreateBootstrapToken(ctx context.Context, t *store.BootstrapToken) error {
	op := fmt.Sprintf("create bootstrap token %q", t.ID)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	if err := checkBootstrap(t); err != nil {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	sans, err1 := encodeSANs(t.SANs)
	ct, err2 := encodeTime(t.CreatedAt)
	et, err3 := encodeTime(t.ExpiresAt)
	if err := errors.Join(err1, err2, err3); err != nil {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	err := d.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, insertBootstrap, t.ID, t.Name, t.Hash, t.CAID, t.Profile, sans,
			int64(t.MaxValidity), int64(t.MaxUses), int64(t.Uses), t.CreatedBy, ct, et, boolInt(t.Revoked))
		return err
	})
	if err != nil {
		return wrapErr("sqlite: "+op, err)
	}
	return nil
}

// checkBootstrap refuses records the schema's CHECKs would refuse, with a
// message that says which field is wrong.
func checkBootstrap(t *store.BootstrapToken) error {
	switch {
	case len(t.Hash) == 0:
		return fault.New(fault.Invalid, "empty hash")
	case t.MaxUses < 1:
		return fault.New(fault.Invalid, "max uses %d is below 1", t.MaxUses)
	case t.Uses < 0 || t.Uses > t.MaxUses:
		return fault.New(fault.Invalid, "uses %d is outside 0..%d", t.Uses, t.MaxUses)
	case t.MaxValidity < 0:
		return fault.New(fault.Invalid, "negative max validity")
	}
	return nil
}

// GetBootstrapTokenByHash returns the bootstrap token whose secret hashes to
// hash, or an error wrapping store.ErrNotFound.
func (d *DB) GetBootstrapTokenByHash(ctx context.Context, hash []byte) (*store.BootstrapToken, error) {
	const op = "get bootstrap token by hash" // the hash stays out of messages and logs
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	t, err := scanBootstrap(d.r.QueryRowContext(ctx, selectBootstrap+" WHERE hash = ?", hash))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: %s: %w", op, store.ErrNotFound)
	}
	if err != nil {
		return nil, wrapErr("sqlite: "+op, err)
	}
	return t, nil
}

// GetBootstrapToken returns the bootstrap token with id, or an error
// wrapping store.ErrNotFound.
func (d *DB) GetBootstrapToken(ctx context.Context, id string) (*store.BootstrapToken, error) {
	op := fmt.Sprintf("get bootstrap token %q", id)
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	t, err := scanBootstrap(d.r.QueryRowContext(ctx, selectBootstrap+" WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: %s: %w", op, store.ErrNotFound)
	}
	if err != nil {
		return nil, wrapErr("sqlite: "+op, err)
	}
	return t, nil
}

// UseBootstrapToken spends one use of the token with id at time at: one
// conditional UPDATE in a write transaction. When it changes nothing, the
// record is read in the same transaction to tell a missing token
// (store.ErrNotFound) from a refused use (store.ErrConflict, with the record).
func (d *DB) UseBootstrapToken(ctx context.Context, id string, at time.Time) (*store.BootstrapToken, error) {
	op := fmt.Sprintf("use bootstrap token %q", id)
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	now, err := encodeTime(at)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", op, err)
	}
	var t *store.BootstrapToken
	err = d.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		var err error
		t, err = scanBootstrap(tx.QueryRowContext(ctx, useBootstrap, id, now, zeroTime))
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		t, err = scanBootstrap(tx.QueryRowContext(ctx, selectBootstrap+" WHERE id = ?", id))
		if err == nil {
			err = errRefused
		}
		return err
	})
	switch {
	case err == nil:
		return t, nil
	case errors.Is(err, errRefused):
		return t, fmt.Errorf("sqlite: %s: revoked, used up or expired: %w", op, store.ErrConflict)
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("sqlite: %s: %w", op, store.ErrNotFound)
	}
	return nil, wrapErr("sqlite: "+op, err)
}

// ReleaseBootstrapToken gives back one spent use of the token with id.
func (d *DB) ReleaseBootstrapToken(ctx context.Context, id string) error {
	return d.updateBootstrap(ctx, fmt.Sprintf("release a use of bootstrap token %q", id),
		"UPDATE bootstrap_tokens SET uses = max(uses - 1, 0) WHERE id = ?", id)
}

// RevokeBootstrapToken marks the token with id revoked.
func (d *DB) RevokeBootstrapToken(ctx context.Context, id string) error {
	return d.updateBootstrap(ctx, fmt.Sprintf("revoke bootstrap token %q", id),
		"UPDATE bootstrap_tokens SET revoked = 1 WHERE id = ?", id)
}

// updateBootstrap runs an UPDATE of one token by id; no row is ErrNotFound.
func (d *DB) updateBootstrap(ctx context.Context, op, query, id string) error {
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	var n int64
	err := d.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, id)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return wrapErr("sqlite: "+op, err)
	}
	if n == 0 {
		return fmt.Errorf("sqlite: %s: %w", op, store.ErrNotFound)
	}
	return nil
}

// scanBootstrap scans one row of bootstrapColumns.
func scanBootstrap(s scanner) (*store.BootstrapToken, error) {
	var (
		t                    store.BootstrapToken
		sans, ct, et         string
		maxVal, maxUse, uses int64
		revoked              int64
	)
	if err := s.Scan(&t.ID, &t.Name, blob{&t.Hash}, &t.CAID, &t.Profile, &sans, &maxVal, &maxUse, &uses,
		&t.CreatedBy, &ct, &et, &revoked); err != nil {
		return nil, err
	}
	var err1, err2, err3 error
	t.SANs, err1 = decodeSANs(sans)
	t.CreatedAt, err2 = decodeTime(ct)
	t.ExpiresAt, err3 = decodeTime(et)
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, fmt.Errorf("bootstrap token %q: %w", t.ID, err)
	}
	t.MaxValidity, t.MaxUses, t.Uses, t.Revoked = time.Duration(maxVal), int(maxUse), int(uses), revoked != 0
	return &t, nil
}
