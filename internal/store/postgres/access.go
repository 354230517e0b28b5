package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/trustgate/trustgate/internal/store"
)

// appendAudit chains rec after the head of the audit log and inserts it in
// tx. The head row is locked until tx ends, so appends of every node take
// their turn and each sees the one before it.
func appendAudit(ctx context.Context, tx pgx.Tx, rec *store.AuditRecord) error {
	var (
		prevSeq  int64
		prevHash []byte
	)
	if err := tx.QueryRow(ctx, "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE").Scan(&prevSeq, &prevHash); err != nil {
		return fmt.Errorf("lock audit head: %w", err)
	}
	rec.Chain(prevSeq, prevHash)
	if err := checkTime("audit time", rec.At); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO audit (seq, at, actor, action, resource, decision, outcome, request_id, source, detail, prev_hash, hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		rec.Seq, rec.At, rec.Actor, rec.Action, rec.Resource, rec.Decision, rec.Outcome, rec.RequestID, rec.Source, rec.Detail,
		rec.PrevHash, rec.Hash); err != nil {
		return fmt.Errorf("append audit record: %w", err)
	}
	if _, err := tx.Exec(ctx, "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1", rec.Seq, rec.Hash); err != nil {
		return fmt.Errorf("move audit head: %w", err)
	}
	return nil
}

// AppendAudit stores r as the next record of the audit log.
func (d *DB) AppendAudit(ctx context.Context, r *store.AuditRecord) error {
	const op = "append audit record"
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	return d.inTx(store.WithAudit(ctx, nil), op, func(ctx context.Context, tx pgx.Tx) error {
		return appendAudit(ctx, tx, r)
	})
}

// maxAuditPage caps ListAudit.
const maxAuditPage = 10000

// ListAudit returns audit records in Seq order.
func (d *DB) ListAudit(ctx context.Context, f store.AuditFilter) ([]*store.AuditRecord, error) {
	const op = "list audit records"
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	limit := f.Limit
	if limit <= 0 || limit > maxAuditPage {
		limit = maxAuditPage
	}
	var out []*store.AuditRecord
	err := eachRow(ctx, d.pool, `SELECT seq, at, actor, action, resource, decision, outcome, request_id, source, detail, prev_hash, hash
		FROM audit WHERE seq > $1 AND ($2::timestamptz IS NULL OR at >= $2) ORDER BY seq LIMIT $3`,
		[]any{f.After, nullTime(f.Since), limit}, func(row pgx.Rows) error {
			var r store.AuditRecord
			if err := row.Scan(&r.Seq, &r.At, &r.Actor, &r.Action, &r.Resource, &r.Decision, &r.Outcome, &r.RequestID, &r.Source,
				&r.Detail, &r.PrevHash, &r.Hash); err != nil {
				return err
			}
			r.At = fromDB(r.At)
			out = append(out, &r)
			return nil
		})
	if err != nil {
		return nil, d.fail(ctx, op, err)
	}
	return out, nil
}

// PutPolicy creates or replaces a policy.
func (d *DB) PutPolicy(ctx context.Context, p *store.PolicyRecord) error {
	op := fmt.Sprintf("put policy %q", p.Name)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	return d.inTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		if err := lockAccess(ctx, tx); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO policies (name, document, created_at, updated_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (name) DO UPDATE SET document = excluded.document, updated_at = excluded.updated_at`,
			p.Name, p.Document, p.CreatedAt, p.UpdatedAt)
		return err
	})
}

// GetPolicy returns the policy named name.
func (d *DB) GetPolicy(ctx context.Context, name string) (*store.PolicyRecord, error) {
	op := fmt.Sprintf("get policy %q", name)
	if !storable(name) {
		return nil, fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	ps, err := d.policies(ctx, op, " WHERE name = $1", name)
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	return ps[0], nil
}

// ListPolicies returns every policy ordered by name.
func (d *DB) ListPolicies(ctx context.Context) ([]*store.PolicyRecord, error) {
	return d.policies(ctx, "list policies", " ORDER BY name")
}

func (d *DB) policies(ctx context.Context, op, where string, args ...any) ([]*store.PolicyRecord, error) {
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	var out []*store.PolicyRecord
	err := eachRow(ctx, d.pool, "SELECT name, document, created_at, updated_at FROM policies"+where, args, func(row pgx.Rows) error {
		var p store.PolicyRecord
		if err := row.Scan(&p.Name, &p.Document, &p.CreatedAt, &p.UpdatedAt); err != nil {
			return err
		}
		p.CreatedAt, p.UpdatedAt = fromDB(p.CreatedAt), fromDB(p.UpdatedAt)
		out = append(out, &p)
		return nil
	})
	if err != nil {
		return nil, d.fail(ctx, op, err)
	}
	return out, nil
}

// DeletePolicy removes a policy that no principal uses.
func (d *DB) DeletePolicy(ctx context.Context, name string) error {
	op := fmt.Sprintf("delete policy %q", name)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	if !storable(name) {
		return fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	return d.inTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		if err := lockAccess(ctx, tx); err != nil {
			return err
		}
		var users int64
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM principal_policies WHERE policy = $1", name).Scan(&users); err != nil {
			return err
		}
		if users > 0 {
			return fmt.Errorf("%d principals use it: %w", users, store.ErrConflict)
		}
		tag, err := tx.Exec(ctx, "DELETE FROM policies WHERE name = $1", name)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		return nil
	})
}

// CreatePrincipal inserts a principal with its policies.
func (d *DB) CreatePrincipal(ctx context.Context, p *store.Principal) error {
	return d.writePrincipal(ctx, fmt.Sprintf("create principal %q", p.Name), p, true)
}

// UpdatePrincipal replaces a principal's policies, identities and disabled flag.
func (d *DB) UpdatePrincipal(ctx context.Context, p *store.Principal) error {
	return d.writePrincipal(ctx, fmt.Sprintf("update principal %q", p.Name), p, false)
}

func (d *DB) writePrincipal(ctx context.Context, op string, p *store.Principal, create bool) error {
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	if !storable(append([]string{p.Name, p.Kind}, append(p.Policies, p.Identities...)...)...) {
		return fmt.Errorf("postgres: %s: %w", op, errInvalid)
	}
	pol, _ := json.Marshal(nonNil(p.Policies))
	ids, _ := json.Marshal(nonNil(p.Identities))
	return d.inTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		if err := lockAccess(ctx, tx); err != nil {
			return err
		}
		if create {
			if _, err := tx.Exec(ctx, `INSERT INTO principals (name, kind, policies, identities, disabled, created_at, updated_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7)`, p.Name, p.Kind, string(pol), string(ids), p.Disabled, p.CreatedAt, p.UpdatedAt); err != nil {
				return err
			}
		} else {
			tag, err := tx.Exec(ctx, `UPDATE principals SET policies = $1, identities = $2, disabled = $3, updated_at = $4 WHERE name = $5`,
				string(pol), string(ids), p.Disabled, p.UpdatedAt, p.Name)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return store.ErrNotFound
			}
			if _, err := tx.Exec(ctx, "DELETE FROM principal_policies WHERE principal = $1", p.Name); err != nil {
				return err
			}
		}
		for _, pn := range p.Policies {
			_, err := tx.Exec(ctx, "INSERT INTO principal_policies (principal, policy) VALUES ($1, $2) ON CONFLICT DO NOTHING", p.Name, pn)
			if isCode(err, codeForeignKeyViolation) {
				return fmt.Errorf("policy %q: %w", pn, store.ErrNotFound)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// GetPrincipal returns the principal named name.
func (d *DB) GetPrincipal(ctx context.Context, name string) (*store.Principal, error) {
	op := fmt.Sprintf("get principal %q", name)
	if !storable(name) {
		return nil, fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	ps, err := d.principals(ctx, op, " WHERE name = $1", name)
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	return ps[0], nil
}

// AccessGeneration returns the number that triggers move on every change to
// principals, policies, their links and tokens (migration 0006).
func (d *DB) AccessGeneration(ctx context.Context) (int64, error) {
	const op = "read access generation"
	if err := d.begin(ctx, op); err != nil {
		return 0, err
	}
	var gen int64
	if err := d.pool.QueryRow(ctx, "SELECT gen FROM access_generation WHERE id = 1").Scan(&gen); err != nil {
		return 0, d.fail(ctx, op, err)
	}
	return gen, nil
}

// ListPrincipals returns every principal ordered by name.
func (d *DB) ListPrincipals(ctx context.Context) ([]*store.Principal, error) {
	return d.principals(ctx, "list principals", " ORDER BY name")
}

func (d *DB) principals(ctx context.Context, op, where string, args ...any) ([]*store.Principal, error) {
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	var out []*store.Principal
	err := eachRow(ctx, d.pool, "SELECT name, kind, policies, identities, disabled, created_at, updated_at FROM principals"+where, args, func(row pgx.Rows) error {
		var p store.Principal
		var pol, ids []byte
		if err := row.Scan(&p.Name, &p.Kind, &pol, &ids, &p.Disabled, &p.CreatedAt, &p.UpdatedAt); err != nil {
			return err
		}
		p.CreatedAt, p.UpdatedAt = fromDB(p.CreatedAt), fromDB(p.UpdatedAt)
		out = append(out, &p)
		return errors.Join(json.Unmarshal(pol, &p.Policies), json.Unmarshal(ids, &p.Identities))
	})
	if err != nil {
		return nil, d.fail(ctx, op, err)
	}
	return out, nil
}

// ListTokens returns the tokens of a principal ("" for all), newest first.
func (d *DB) ListTokens(ctx context.Context, principal string) ([]*store.Token, error) {
	const op = "list tokens"
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	if !storable(principal) {
		return nil, nil
	}
	var out []*store.Token
	err := eachRow(ctx, d.pool, selectTokenSQL+" WHERE $1 = '' OR principal = $1 ORDER BY created_at DESC, id", []any{principal}, func(row pgx.Rows) error {
		t, err := scanToken(row)
		if err == nil {
			out = append(out, t)
		}
		return err
	})
	if err != nil {
		return nil, d.fail(ctx, op, err)
	}
	return out, nil
}

// RevokeToken marks a token revoked.
func (d *DB) RevokeToken(ctx context.Context, id string) error {
	op := fmt.Sprintf("revoke token %q", id)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	if !storable(id) {
		return fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	return d.inTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		if err := lockAccess(ctx, tx); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, "UPDATE tokens SET revoked = true WHERE id = $1", id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		return nil
	})
}

// lockAccess takes the row of the access generation first in a
// transaction that changes principals, policies or tokens. Their triggers
// would take it anyway, but only after the transaction's first change; a
// principal's update (principal row, then a policy row's key-share lock for
// the foreign key, then the generation) and a policy's deletion (policy
// row, then the generation) would then deadlock.
func lockAccess(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, "SELECT 1 FROM access_generation WHERE id = 1 FOR UPDATE")
	return err
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// nullTime is nil for the zero time, so that SQL can test for "not set".
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}
