package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/store"
)

const (
	bootstrapColumns = "id, name, hash, ca_id, profile, sans, max_validity, max_uses, uses, created_by, created_at, expires_at, revoked"
	selectBootstrap  = "SELECT " + bootstrapColumns + " FROM bootstrap_tokens"
	insertBootstrap  = "INSERT INTO bootstrap_tokens (" + bootstrapColumns + ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
	// useBootstrap spends one use when the token is live at $2. The row
	// lock the UPDATE takes makes concurrent uses wait and re-check the
	// condition (READ COMMITTED re-evaluates WHERE on the new row version),
	// so uses never pass max_uses.
	useBootstrap = `UPDATE bootstrap_tokens SET uses = uses + 1
	WHERE id = $1 AND NOT revoked AND uses < max_uses AND (expires_at = $3 OR expires_at > $2)
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
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	if !storable(t.ID, t.Name, t.CAID, t.Profile, t.CreatedBy) {
		return fmt.Errorf("postgres: %s: %w", op, fault.New(fault.Invalid, "a text field is not UTF-8 or holds a NUL"))
	}
	if err := errors.Join(checkTime("created at", t.CreatedAt), checkTime("expires at", t.ExpiresAt), checkSANs(t.SANs)); err != nil {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	return d.write(ctx, op, func(ctx context.Context, c *pgxpool.Conn) error {
		_, err := c.Exec(ctx, insertBootstrap, t.ID, t.Name, t.Hash, t.CAID, t.Profile, encodeSANs(t.SANs),
			int64(t.MaxValidity), t.MaxUses, t.Uses, t.CreatedBy, t.CreatedAt, t.ExpiresAt, t.Revoked)
		return d.failIf(ctx, op, err)
	})
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
	return checkInt32("max uses", t.MaxUses)
}

// GetBootstrapTokenByHash returns the bootstrap token whose secret hashes to
// hash, or an error wrapping store.ErrNotFound.
func (d *DB) GetBootstrapTokenByHash(ctx context.Context, hash []byte) (*store.BootstrapToken, error) {
	const op = "get bootstrap token by hash" // the hash stays out of messages and logs
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	if hash == nil {
		return nil, fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	t, err := scanBootstrap(d.pool.QueryRow(ctx, selectBootstrap+" WHERE hash = $1", hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	if err != nil {
		return nil, d.fail(ctx, op, err)
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
	if !storable(id) {
		return nil, fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	t, err := scanBootstrap(d.pool.QueryRow(ctx, selectBootstrap+" WHERE id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	if err != nil {
		return nil, d.fail(ctx, op, err)
	}
	return t, nil
}

// UseBootstrapToken spends one use of the token with id at time at, in one
// transaction: the conditional UPDATE, and when it changes nothing a read
// that tells a missing token (store.ErrNotFound) from a refused use
// (store.ErrConflict, with the record).
func (d *DB) UseBootstrapToken(ctx context.Context, id string, at time.Time) (*store.BootstrapToken, error) {
	op := fmt.Sprintf("use bootstrap token %q", id)
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	if err := checkTime("use time", at); err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", op, err)
	}
	if !storable(id) {
		return nil, fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	var t *store.BootstrapToken
	refused := false
	err := d.inTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		var err error
		t, err = scanBootstrap(tx.QueryRow(ctx, useBootstrap, id, at, time.Time{}))
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		t, err = scanBootstrap(tx.QueryRow(ctx, selectBootstrap+" WHERE id = $1", id))
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		refused = err == nil
		return err
	})
	if err != nil {
		return nil, err
	}
	if refused {
		return t, fmt.Errorf("postgres: %s: revoked, used up or expired: %w", op, store.ErrConflict)
	}
	return t, nil
}

// ReleaseBootstrapToken gives back one spent use of the token with id.
func (d *DB) ReleaseBootstrapToken(ctx context.Context, id string) error {
	return d.updateBootstrap(ctx, fmt.Sprintf("release a use of bootstrap token %q", id),
		"UPDATE bootstrap_tokens SET uses = greatest(uses - 1, 0) WHERE id = $1", id)
}

// RevokeBootstrapToken marks the token with id revoked.
func (d *DB) RevokeBootstrapToken(ctx context.Context, id string) error {
	return d.updateBootstrap(ctx, fmt.Sprintf("revoke bootstrap token %q", id),
		"UPDATE bootstrap_tokens SET revoked = true WHERE id = $1", id)
}

// updateBootstrap runs an UPDATE of one token by id; no row is ErrNotFound.
func (d *DB) updateBootstrap(ctx context.Context, op, query, id string) error {
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	if !storable(id) {
		return fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	return d.write(ctx, op, func(ctx context.Context, c *pgxpool.Conn) error {
		tag, err := c.Exec(ctx, query, id)
		if err != nil {
			return d.fail(ctx, op, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
		}
		return nil
	})
}

// scanBootstrap scans one row of bootstrapColumns.
func scanBootstrap(row pgx.Row) (*store.BootstrapToken, error) {
	var (
		t      store.BootstrapToken
		sans   []string
		maxVal int64
	)
	if err := row.Scan(&t.ID, &t.Name, &t.Hash, &t.CAID, &t.Profile, &sans, &maxVal, &t.MaxUses, &t.Uses,
		&t.CreatedBy, &t.CreatedAt, &t.ExpiresAt, &t.Revoked); err != nil {
		return nil, err
	}
	t.SANs = decodeSANs(sans)
	t.MaxValidity = time.Duration(maxVal)
	t.CreatedAt, t.ExpiresAt = fromDB(t.CreatedAt), fromDB(t.ExpiresAt)
	return &t, nil
}
