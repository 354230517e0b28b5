package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/trustgate/trustgate/internal/store"
)

const (
	tokenColumns   = "id, principal, hash, created_at, expires_at, revoked"
	selectTokenSQL = "SELECT " + tokenColumns + " FROM tokens"
	insertTokenSQL = "INSERT INTO tokens (" + tokenColumns + ") VALUES ($1, $2, $3, $4, $5, $6)"
	putMetaSQL     = "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)

// CreateToken stores t. A taken ID or hash is an error wrapping
// store.ErrConflict.
func (d *DB) CreateToken(ctx context.Context, t *store.Token) error {
	op := fmt.Sprintf("create token %q", t.ID)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	if len(t.Hash) == 0 {
		return fmt.Errorf("postgres: %s: empty hash", op)
	}
	if err := errors.Join(checkTime("created at", t.CreatedAt), checkTime("expires at", t.ExpiresAt)); err != nil {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	return d.write(ctx, op, func(ctx context.Context, c *pgxpool.Conn) error {
		_, err := c.Exec(ctx, insertTokenSQL, t.ID, t.Principal, t.Hash, t.CreatedAt, t.ExpiresAt, t.Revoked)
		return d.failIf(ctx, op, err)
	})
}

// GetTokenByHash returns the token whose secret hashes to hash, or an error
// wrapping store.ErrNotFound.
func (d *DB) GetTokenByHash(ctx context.Context, hash []byte) (*store.Token, error) {
	const op = "get token by hash" // the hash stays out of messages and logs
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	if hash == nil {
		// NULL would compare as unknown anyway; no stored hash is empty.
		return nil, fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	t, err := scanToken(d.pool.QueryRow(ctx, selectTokenSQL+" WHERE hash = $1", hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	if err != nil {
		return nil, d.fail(ctx, op, err)
	}
	return t, nil
}

// scanToken scans one row of tokenColumns.
func scanToken(row pgx.Row) (*store.Token, error) {
	var t store.Token
	if err := row.Scan(&t.ID, &t.Principal, &t.Hash, &t.CreatedAt, &t.ExpiresAt, &t.Revoked); err != nil {
		return nil, err
	}
	t.CreatedAt, t.ExpiresAt = fromDB(t.CreatedAt), fromDB(t.ExpiresAt)
	return &t, nil
}

// GetMeta returns the value stored under key, or an error wrapping
// store.ErrNotFound. A value stored as nil comes back nil, an empty one empty.
func (d *DB) GetMeta(ctx context.Context, key string) ([]byte, error) {
	op := fmt.Sprintf("get meta %q", key)
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	if !storable(key) {
		return nil, fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	var v []byte
	err := d.pool.QueryRow(ctx, "SELECT value FROM meta WHERE key = $1", key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	if err != nil {
		return nil, d.fail(ctx, op, err)
	}
	return v, nil
}

// PutMeta stores value under key, replacing any previous value. A key that
// is not UTF-8 or holds a NUL is a fault.Invalid error.
func (d *DB) PutMeta(ctx context.Context, key string, value []byte) error {
	op := fmt.Sprintf("put meta %q", key)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	return d.onConn(ctx, op, func(ctx context.Context, c *pgxpool.Conn) error {
		_, err := c.Exec(ctx, putMetaSQL, key, value)
		return d.failIf(ctx, op, err)
	})
}
