package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/trustgate/trustgate/internal/store"
)

const (
	tokenColumns   = "id, principal, hash, created_at, expires_at, revoked"
	selectTokenSQL = "SELECT " + tokenColumns + " FROM tokens"
	insertTokenSQL = "INSERT INTO tokens (" + tokenColumns + ") VALUES (?, ?, ?, ?, ?, ?)"
	putMetaSQL     = "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)

// CreateToken stores t. A taken ID or hash is an error wrapping
// store.ErrConflict.
func (d *DB) CreateToken(ctx context.Context, t *store.Token) error {
	op := fmt.Sprintf("create token %q", t.ID)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	if len(t.Hash) == 0 {
		return fmt.Errorf("sqlite: %s: empty hash", op)
	}
	ct, err1 := encodeTime(t.CreatedAt)
	et, err2 := encodeTime(t.ExpiresAt)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	err := d.inWriteTx(ctx, fmt.Sprintf("create token %q for principal %q", t.ID, t.Principal), func(tx *sql.Tx) error {
		_, err := tx.StmtContext(ctx, d.insToken).ExecContext(ctx, t.ID, t.Principal, t.Hash, ct, et, boolInt(t.Revoked))
		return err
	})
	if err != nil {
		return wrapErr("sqlite: "+op, err)
	}
	return nil
}

// GetTokenByHash returns the token whose secret hashes to hash, or an error
// wrapping store.ErrNotFound.
func (d *DB) GetTokenByHash(ctx context.Context, hash []byte) (*store.Token, error) {
	const op = "get token by hash" // the hash stays out of messages and logs
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	t, err := scanToken(d.getToken.QueryRowContext(ctx, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: %s: %w", op, store.ErrNotFound)
	}
	if err != nil {
		return nil, wrapErr("sqlite: "+op, err)
	}
	return t, nil
}

// scanToken scans one row of tokenColumns.
func scanToken(s scanner) (*store.Token, error) {
	var (
		t       store.Token
		ct, et  string
		revoked int64
	)
	if err := s.Scan(&t.ID, &t.Principal, blob{&t.Hash}, &ct, &et, &revoked); err != nil {
		return nil, err
	}
	t.Revoked = revoked != 0
	var err1, err2 error
	t.CreatedAt, err1 = decodeTime(ct)
	t.ExpiresAt, err2 = decodeTime(et)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("token %q: %w", t.ID, err)
	}
	return &t, nil
}

// GetMeta returns the value stored under key, or an error wrapping
// store.ErrNotFound. A value stored as nil comes back nil, an empty one empty.
func (d *DB) GetMeta(ctx context.Context, key string) ([]byte, error) {
	op := fmt.Sprintf("get meta %q", key)
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	var v []byte
	err := d.getMeta.QueryRowContext(ctx, key).Scan(blob{&v})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: %s: %w", op, store.ErrNotFound)
	}
	if err != nil {
		return nil, wrapErr("sqlite: "+op, err)
	}
	return v, nil
}

// PutMeta stores value under key, replacing any previous value.
func (d *DB) PutMeta(ctx context.Context, key string, value []byte) error {
	op := fmt.Sprintf("put meta %q", key)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	if _, err := d.putMeta.ExecContext(ctx, key, value); err != nil {
		return wrapErr("sqlite: "+op, err)
	}
	return nil
}
