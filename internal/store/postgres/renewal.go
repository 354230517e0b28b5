package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/store"
)

var _ store.RenewalStore = (*DB)(nil)

const (
	// listRenewableSQL reads managed, active, unexpired certificates that
	// no successor replaced. Unqualified columns are the certificate's.
	listRenewableSQL = selectCertSQL + `
	WHERE seq > $1 AND managed AND status = 'active' AND ca_id IS NOT NULL AND not_after > $2
	AND NOT EXISTS (SELECT FROM certificate_renewals r
		WHERE r.ca_id = certificates.ca_id AND r.serial = certificates.serial AND r.successor <> '')
	ORDER BY seq LIMIT $3`
	// claimRenewalSQL takes the claim when there is none, or when the
	// one there is stale and no successor was recorded: one statement, so
	// two writers cannot both take it (the conflicting row is locked).
	claimRenewalSQL = `INSERT INTO certificate_renewals (ca_id, serial, claimed_at, successor, renewed_at)
	VALUES ($1, $2, $3, '', $5)
	ON CONFLICT (ca_id, serial) DO UPDATE SET claimed_at = excluded.claimed_at
	WHERE certificate_renewals.successor = '' AND certificate_renewals.claimed_at < $4`
	setSuccessorSQL = `INSERT INTO certificate_renewals (ca_id, serial, claimed_at, successor, renewed_at)
	VALUES ($1, $2, $3, $4, $3)
	ON CONFLICT (ca_id, serial) DO UPDATE SET successor = excluded.successor, renewed_at = excluded.renewed_at
	WHERE certificate_renewals.successor = ''`
)

// ListRenewable returns the certificates managed renewal looks at.
func (d *DB) ListRenewable(ctx context.Context, now time.Time, after int64, limit int) ([]*store.Certificate, error) {
	const op = "list renewable certificates"
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	if err := checkTime("now", now); err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", op, err)
	}
	rows, err := d.pool.Query(ctx, listRenewableSQL, max(after, 0), now, limit)
	if err != nil {
		return nil, d.fail(ctx, op, err)
	}
	defer rows.Close()
	var out []*store.Certificate
	for rows.Next() {
		c, err := scanCert(rows)
		if err != nil {
			return nil, d.fail(ctx, op, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, d.fail(ctx, op, err)
	}
	return out, nil
}

// certExists reports, inside tx, whether the CA caID issued serial.
func certExists(ctx context.Context, tx pgx.Tx, caID, serial string) error {
	var found bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT FROM certificates WHERE ca_id = $1 AND serial = $2)", caID, serial).Scan(&found); err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("certificate %s of CA %q: %w", serial, caID, store.ErrNotFound)
	}
	return nil
}

// ClaimRenewal claims the renewal of (caID, serial) with one conditional
// upsert.
func (d *DB) ClaimRenewal(ctx context.Context, caID, serial string, at, staleBefore time.Time) (bool, error) {
	op := fmt.Sprintf("claim renewal of certificate %s of CA %q", serial, caID)
	if err := d.begin(ctx, op); err != nil {
		return false, err
	}
	if err := errors.Join(checkTime("claimed at", at), checkTime("stale before", staleBefore)); err != nil {
		return false, fmt.Errorf("postgres: %s: %w", op, err)
	}
	if !storable(caID, serial) {
		return false, fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	won := false
	err := d.inTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		if err := certExists(ctx, tx, caID, serial); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, claimRenewalSQL, caID, serial, at, staleBefore, time.Time{})
		won = err == nil && tag.RowsAffected() == 1
		return err
	})
	return won, err
}

// SetSuccessor records the certificate that renewed (caID, serial).
func (d *DB) SetSuccessor(ctx context.Context, caID, serial, successor string, at time.Time) error {
	op := fmt.Sprintf("set successor of certificate %s of CA %q", serial, caID)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	if err := checkTime("renewed at", at); err != nil {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	if !storable(caID, serial) {
		return fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	if !storable(successor) || successor == "" {
		return fmt.Errorf("postgres: %s: %w", op, fault.New(fault.Invalid, "the successor serial is empty, not UTF-8 or holds a NUL"))
	}
	return d.inTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		if err := certExists(ctx, tx, caID, serial); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, setSuccessorSQL, caID, serial, at, successor)
		if err != nil || tag.RowsAffected() == 1 {
			return err
		}
		var got string
		if err := tx.QueryRow(ctx, "SELECT successor FROM certificate_renewals WHERE ca_id = $1 AND serial = $2", caID, serial).Scan(&got); err != nil {
			return err
		}
		if got != successor {
			return fmt.Errorf("already renewed by %s: %w", got, store.ErrConflict)
		}
		return nil
	})
}

// GetSuccessor returns the serial that renewed (caID, serial), or "".
func (d *DB) GetSuccessor(ctx context.Context, caID, serial string) (string, error) {
	op := fmt.Sprintf("get successor of certificate %s of CA %q", serial, caID)
	if !storable(caID, serial) {
		return "", d.begin(ctx, op)
	}
	return d.getString(ctx, op, "SELECT successor FROM certificate_renewals WHERE ca_id = $1 AND serial = $2", caID, serial)
}

// SetCASuccessor records that successorID took over issuance from caID.
func (d *DB) SetCASuccessor(ctx context.Context, caID, successorID string, at time.Time) error {
	op := fmt.Sprintf("set successor of CA %q", caID)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	if err := checkTime("rotated at", at); err != nil {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	if !storable(caID, successorID) {
		return fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	return d.inTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO ca_successors (ca_id, successor_id, rotated_at) VALUES ($1, $2, $3)", caID, successorID, at)
		switch {
		case isCode(err, codeForeignKeyViolation):
			return fmt.Errorf("a CA does not exist: %w", store.ErrNotFound)
		case isCode(err, codeUniqueViolation):
			return fmt.Errorf("CA %q was already rotated, or %q already succeeds a CA: %w", caID, successorID, store.ErrConflict)
		}
		return err
	})
}

// GetCASuccessor returns the ID of the CA that took over from caID, or "".
func (d *DB) GetCASuccessor(ctx context.Context, caID string) (string, error) {
	op := fmt.Sprintf("get successor of CA %q", caID)
	if !storable(caID) {
		return "", d.begin(ctx, op)
	}
	return d.getString(ctx, op, "SELECT successor_id FROM ca_successors WHERE ca_id = $1", caID)
}

// GetCAPredecessor returns the ID of the CA that caID took over from, or "".
func (d *DB) GetCAPredecessor(ctx context.Context, caID string) (string, error) {
	op := fmt.Sprintf("get predecessor of CA %q", caID)
	if !storable(caID) {
		return "", d.begin(ctx, op)
	}
	return d.getString(ctx, op, "SELECT ca_id FROM ca_successors WHERE successor_id = $1", caID)
}

// ListRenewals calls fn for every recorded renewal.
func (d *DB) ListRenewals(ctx context.Context, fn func(store.Renewal) error) error {
	const op = "list renewals"
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	rows, err := d.pool.Query(ctx, "SELECT ca_id, serial, claimed_at, successor, renewed_at FROM certificate_renewals ORDER BY ca_id, serial")
	if err != nil {
		return d.fail(ctx, op, err)
	}
	defer rows.Close()
	for rows.Next() {
		var r store.Renewal
		if err := rows.Scan(&r.CAID, &r.Serial, &r.ClaimedAt, &r.Successor, &r.RenewedAt); err != nil {
			return d.fail(ctx, op, err)
		}
		r.ClaimedAt, r.RenewedAt = fromDB(r.ClaimedAt), fromDB(r.RenewedAt)
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return d.fail(ctx, op, err)
	}
	return nil
}

// RestoreRenewal records r exactly as it was.
func (d *DB) RestoreRenewal(ctx context.Context, r store.Renewal) error {
	op := fmt.Sprintf("restore renewal of certificate %s of CA %q", r.Serial, r.CAID)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	if err := errors.Join(checkTime("claimed at", r.ClaimedAt), checkTime("renewed at", r.RenewedAt)); err != nil {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	if !storable(r.CAID, r.Serial, r.Successor) {
		return fmt.Errorf("postgres: %s: %w", op, fault.New(fault.Invalid, "a text field is not UTF-8 or holds a NUL"))
	}
	return d.inTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		if err := certExists(ctx, tx, r.CAID, r.Serial); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO certificate_renewals (ca_id, serial, claimed_at, successor, renewed_at) VALUES ($1, $2, $3, $4, $5)",
			r.CAID, r.Serial, r.ClaimedAt, r.Successor, r.RenewedAt)
		if isCode(err, codeUniqueViolation) {
			return fmt.Errorf("a renewal is already recorded: %w", store.ErrConflict)
		}
		return err
	})
}

// ListCASuccessions returns every recorded CA rotation.
func (d *DB) ListCASuccessions(ctx context.Context) ([]store.CASuccession, error) {
	const op = "list CA successions"
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	rows, err := d.pool.Query(ctx, "SELECT ca_id, successor_id, rotated_at FROM ca_successors ORDER BY rotated_at, ca_id")
	if err != nil {
		return nil, d.fail(ctx, op, err)
	}
	defer rows.Close()
	var out []store.CASuccession
	for rows.Next() {
		var c store.CASuccession
		if err := rows.Scan(&c.CAID, &c.SuccessorID, &c.RotatedAt); err != nil {
			return nil, d.fail(ctx, op, err)
		}
		c.RotatedAt = fromDB(c.RotatedAt)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, d.fail(ctx, op, err)
	}
	return out, nil
}

// getString reads one text value; no row is "".
func (d *DB) getString(ctx context.Context, op, query string, args ...any) (string, error) {
	if err := d.begin(ctx, op); err != nil {
		return "", err
	}
	var s string
	err := d.pool.QueryRow(ctx, query, args...).Scan(&s)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", d.fail(ctx, op, err)
	}
	return s, nil
}
