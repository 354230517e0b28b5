package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/trustgate/trustgate/internal/store"
)

const (
	auditHeadSQL   = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
	auditInsertSQL = `INSERT INTO audit (seq, at, actor, action, resource, decision, outcome, request_id, source, detail, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	selectPrincipalSQL = "SELECT name, kind, policies, identities, disabled, created_at, updated_at FROM principals"
	selectPolicySQL    = "SELECT name, document, created_at, updated_at FROM policies"
)

// appendAudit chains rec after the last audit record and inserts it in tx.
// The writer connection is the only one that writes, so reading the last
// record and inserting the next cannot interleave with another append.
func (d *DB) appendAudit(ctx context.Context, tx *sql.Tx, rec *store.AuditRecord) error {
	var (
		prevSeq  int64
		prevHash []byte
	)
	err := tx.StmtContext(ctx, d.auditHead).QueryRowContext(ctx).Scan(&prevSeq, blob{&prevHash})
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read audit head: %w", err)
	}
	rec.Chain(prevSeq, prevHash)
	at, err := encodeTime(rec.At)
	if err != nil {
		return fmt.Errorf("audit record: %w", err)
	}
	if _, err := tx.StmtContext(ctx, d.auditInsert).ExecContext(ctx,
		rec.Seq, at, rec.Actor, rec.Action, rec.Resource, rec.Decision, rec.Outcome, rec.RequestID, rec.Source, rec.Detail,
		rec.PrevHash, rec.Hash); err != nil {
		return fmt.Errorf("append audit record: %w", err)
	}
	return nil
}

// AppendAudit stores r as the next record of the audit log.
func (d *DB) AppendAudit(ctx context.Context, r *store.AuditRecord) error {
	const op = "append audit record"
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	err := d.inWriteTx(store.WithAudit(ctx, nil), op, func(tx *sql.Tx) error { return d.appendAudit(ctx, tx, r) })
	if err != nil {
		return wrapErr("sqlite: "+op, err)
	}
	return nil
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
	since := ""
	if !f.Since.IsZero() {
		var err error
		if since, err = encodeTime(f.Since); err != nil {
			return nil, fmt.Errorf("sqlite: %s: %w", op, err)
		}
	}
	var out []*store.AuditRecord
	err := eachRow(ctx, d.r, `SELECT seq, at, actor, action, resource, decision, outcome, request_id, source, detail, prev_hash, hash
		FROM audit WHERE seq > ? AND at >= ? ORDER BY seq LIMIT ?`, []any{f.After, since, limit}, func(s scanner) error {
		var r store.AuditRecord
		var at string
		if err := s.Scan(&r.Seq, &at, &r.Actor, &r.Action, &r.Resource, &r.Decision, &r.Outcome, &r.RequestID, &r.Source,
			&r.Detail, blob{&r.PrevHash}, blob{&r.Hash}); err != nil {
			return err
		}
		var err error
		if r.At, err = decodeTime(at); err != nil {
			return err
		}
		out = append(out, &r)
		return nil
	})
	if err != nil {
		return nil, wrapErr("sqlite: "+op, err)
	}
	return out, nil
}

// PutPolicy creates or replaces a policy.
func (d *DB) PutPolicy(ctx context.Context, p *store.PolicyRecord) error {
	op := fmt.Sprintf("put policy %q", p.Name)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	ct, err := encodeTime(p.CreatedAt)
	if err != nil {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	ut, err := encodeTime(p.UpdatedAt)
	if err != nil {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	err = d.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO policies (name, document, created_at, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET document = excluded.document, updated_at = excluded.updated_at`, p.Name, p.Document, ct, ut)
		return err
	})
	if err != nil {
		return wrapErr("sqlite: "+op, err)
	}
	return nil
}

// GetPolicy returns the policy named name.
func (d *DB) GetPolicy(ctx context.Context, name string) (*store.PolicyRecord, error) {
	return getOne(ctx, d, fmt.Sprintf("get policy %q", name), d.getPolicy, scanPolicy, name)
}

// ListPolicies returns every policy ordered by name.
func (d *DB) ListPolicies(ctx context.Context) ([]*store.PolicyRecord, error) {
	return listAll(ctx, d, "list policies", selectPolicySQL+" ORDER BY name", nil, scanPolicy)
}

// scanPolicy scans one row of selectPolicySQL.
func scanPolicy(s scanner) (*store.PolicyRecord, error) {
	var p store.PolicyRecord
	var ct, ut string
	if err := s.Scan(&p.Name, blob{&p.Document}, &ct, &ut); err != nil {
		return nil, err
	}
	var err1, err2 error
	p.CreatedAt, err1 = decodeTime(ct)
	p.UpdatedAt, err2 = decodeTime(ut)
	return &p, errors.Join(err1, err2)
}

// DeletePolicy removes a policy that no principal uses.
func (d *DB) DeletePolicy(ctx context.Context, name string) error {
	op := fmt.Sprintf("delete policy %q", name)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	err := d.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		var users int64
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM principal_policies WHERE policy = ?", name).Scan(&users); err != nil {
			return err
		}
		if users > 0 {
			return fmt.Errorf("%d principals use it: %w", users, store.ErrConflict)
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM policies WHERE name = ?", name)
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
	pol, _ := json.Marshal(nonNil(p.Policies))
	ids, _ := json.Marshal(nonNil(p.Identities))
	ct, err1 := encodeTime(p.CreatedAt)
	ut, err2 := encodeTime(p.UpdatedAt)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	err := d.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		if create {
			if _, err := tx.ExecContext(ctx, `INSERT INTO principals (name, kind, policies, identities, disabled, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?)`, p.Name, p.Kind, string(pol), string(ids), boolInt(p.Disabled), ct, ut); err != nil {
				return err
			}
		} else {
			res, err := tx.ExecContext(ctx, `UPDATE principals SET policies = ?, identities = ?, disabled = ?, updated_at = ? WHERE name = ?`,
				string(pol), string(ids), boolInt(p.Disabled), ut, p.Name)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil || n == 0 {
				return errors.Join(err, store.ErrNotFound)
			}
			if _, err := tx.ExecContext(ctx, "DELETE FROM principal_policies WHERE principal = ?", p.Name); err != nil {
				return err
			}
		}
		for _, pn := range p.Policies {
			if _, err := tx.ExecContext(ctx, "INSERT OR IGNORE INTO principal_policies (principal, policy) VALUES (?, ?)", p.Name, pn); err != nil {
				if isForeignKey(err) {
					return fmt.Errorf("policy %q: %w", pn, store.ErrNotFound)
				}
				return err
			}
		}
		return nil
	})
	if err != nil {
		return wrapErr("sqlite: "+op, err)
	}
	return nil
}

// GetPrincipal returns the principal named name.
func (d *DB) GetPrincipal(ctx context.Context, name string) (*store.Principal, error) {
	return getOne(ctx, d, fmt.Sprintf("get principal %q", name), d.getPrincipal, scanPrincipal, name)
}

// AccessGeneration returns the number that triggers move on every change to
// principals, policies, their links and tokens (migration 0007).
func (d *DB) AccessGeneration(ctx context.Context) (int64, error) {
	const op = "read access generation"
	if err := d.begin(ctx, op); err != nil {
		return 0, err
	}
	var gen int64
	if err := d.accessGen.QueryRowContext(ctx).Scan(&gen); err != nil {
		return 0, wrapErr("sqlite: "+op, err)
	}
	return gen, nil
}

// ListPrincipals returns every principal ordered by name.
func (d *DB) ListPrincipals(ctx context.Context) ([]*store.Principal, error) {
	return listAll(ctx, d, "list principals", selectPrincipalSQL+" ORDER BY name", nil, scanPrincipal)
}

// scanPrincipal scans one row of selectPrincipalSQL.
func scanPrincipal(s scanner) (*store.Principal, error) {
	var (
		p        store.Principal
		pol, ids string
		ct, ut   string
		disabled int64
	)
	if err := s.Scan(&p.Name, &p.Kind, &pol, &ids, &disabled, &ct, &ut); err != nil {
		return nil, err
	}
	p.Disabled = disabled != 0
	var e3, e4 error
	p.CreatedAt, e3 = decodeTime(ct)
	p.UpdatedAt, e4 = decodeTime(ut)
	return &p, errors.Join(json.Unmarshal([]byte(pol), &p.Policies), json.Unmarshal([]byte(ids), &p.Identities), e3, e4)
}

// ListTokens returns the tokens of a principal ("" for all), newest first.
func (d *DB) ListTokens(ctx context.Context, principal string) ([]*store.Token, error) {
	return listAll(ctx, d, "list tokens", selectTokenSQL+" WHERE ? = '' OR principal = ? ORDER BY created_at DESC, id",
		[]any{principal, principal}, scanToken)
}

// RevokeToken marks a token revoked.
func (d *DB) RevokeToken(ctx context.Context, id string) error {
	op := fmt.Sprintf("revoke token %q", id)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	err := d.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE tokens SET revoked = 1 WHERE id = ?", id)
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

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// getOne reads the one row that stmt selects for key; none is
// store.ErrNotFound.
func getOne[T any](ctx context.Context, d *DB, op string, stmt *sql.Stmt, scan func(scanner) (T, error), key any) (T, error) {
	var zero T
	if err := d.begin(ctx, op); err != nil {
		return zero, err
	}
	v, err := scan(stmt.QueryRowContext(ctx, key))
	if errors.Is(err, sql.ErrNoRows) {
		return zero, fmt.Errorf("sqlite: %s: %w", op, store.ErrNotFound)
	}
	if err != nil {
		return zero, wrapErr("sqlite: "+op, err)
	}
	return v, nil
}

// listAll reads every row of query on the readers.
func listAll[T any](ctx context.Context, d *DB, op, query string, args []any, scan func(scanner) (T, error)) ([]T, error) {
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	var out []T
	err := eachRow(ctx, d.r, query, args, func(s scanner) error {
		v, err := scan(s)
		if err == nil {
			out = append(out, v)
		}
		return err
	})
	if err != nil {
		return nil, wrapErr("sqlite: "+op, err)
	}
	return out, nil
}
