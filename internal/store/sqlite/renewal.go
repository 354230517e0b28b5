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

var _ store.RenewalStore = (*DB)(nil)

const (
	// listRenewableSQL reads managed, active, unexpired certificates that
	// no successor replaced. Unqualified columns are the certificate's.
	listRenewableSQL = selectCertSQL + ` INDEXED BY certificates_managed
	WHERE seq > ? AND managed = 1 AND status = 'active' AND ca_id IS NOT NULL AND not_after > ?
	AND NOT EXISTS (SELECT 1 FROM certificate_renewals r
		WHERE r.ca_id = certificates.ca_id AND r.serial = certificates.serial AND r.successor <> '')
	ORDER BY seq LIMIT ?`
	// claimRenewalSQL takes the claim when there is none, or when the
	// one there is stale and no successor was recorded: one statement, so
	// two writers cannot both take it.
	claimRenewalSQL = `INSERT INTO certificate_renewals (ca_id, serial, claimed_at, successor, renewed_at)
	VALUES (?1, ?2, ?3, '', ?5)
	ON CONFLICT (ca_id, serial) DO UPDATE SET claimed_at = excluded.claimed_at
	WHERE certificate_renewals.successor = '' AND certificate_renewals.claimed_at < ?4`
	setSuccessorSQL = `INSERT INTO certificate_renewals (ca_id, serial, claimed_at, successor, renewed_at)
	VALUES (?1, ?2, ?3, ?4, ?3)
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
	n, err := encodeTime(now)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", op, err)
	}
	rows, err := d.r.QueryContext(ctx, listRenewableSQL, after, n, limit)
	if err != nil {
		return nil, wrapErr("sqlite: "+op, err)
	}
	defer rows.Close()
	var out []*store.Certificate
	for rows.Next() {
		c, err := scanCert(rows)
		if err != nil {
			return nil, wrapErr("sqlite: "+op, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, wrapErr("sqlite: "+op, err)
	}
	return out, nil
}

// certExists reports, inside tx, whether the CA caID issued serial.
func certExists(ctx context.Context, tx *sql.Tx, caID, serial string) error {
	var one int
	err := tx.QueryRowContext(ctx, "SELECT 1 FROM certificates WHERE ca_id = ? AND serial = ?", caID, serial).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("certificate %s of CA %q: %w", serial, caID, store.ErrNotFound)
	}
	return err
}

// ClaimRenewal claims the renewal of (caID, serial) with one conditional
// upsert in a write transaction.
func (d *DB) ClaimRenewal(ctx context.Context, caID, serial string, at, staleBefore time.Time) (bool, error) {
	op := fmt.Sprintf("claim renewal of certificate %s of CA %q", serial, caID)
	if err := d.begin(ctx, op); err != nil {
		return false, err
	}
	a, err1 := encodeTime(at)
	sb, err2 := encodeTime(staleBefore)
	if err := errors.Join(err1, err2); err != nil {
		return false, fmt.Errorf("sqlite: %s: %w", op, err)
	}
	won := false
	err := d.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		if err := certExists(ctx, tx, caID, serial); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, claimRenewalSQL, caID, serial, a, sb, zeroTime)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		won = n == 1
		return err
	})
	if err != nil {
		return false, wrapErr("sqlite: "+op, err)
	}
	return won, nil
}

// SetSuccessor records the certificate that renewed (caID, serial).
func (d *DB) SetSuccessor(ctx context.Context, caID, serial, successor string, at time.Time) error {
	op := fmt.Sprintf("set successor of certificate %s of CA %q", serial, caID)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	if successor == "" {
		return fmt.Errorf("sqlite: %s: %w", op, fault.New(fault.Invalid, "the successor serial is empty"))
	}
	a, err := encodeTime(at)
	if err != nil {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	err = d.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		if err := certExists(ctx, tx, caID, serial); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, setSuccessorSQL, caID, serial, a, successor)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		var got string
		if err := tx.QueryRowContext(ctx, "SELECT successor FROM certificate_renewals WHERE ca_id = ? AND serial = ?", caID, serial).Scan(&got); err != nil {
			return err
		}
		if got != successor {
			return fmt.Errorf("already renewed by %s: %w", got, store.ErrConflict)
		}
		return nil
	})
	if err != nil {
		return wrapErr("sqlite: "+op, err)
	}
	return nil
}

// GetSuccessor returns the serial that renewed (caID, serial), or "".
func (d *DB) GetSuccessor(ctx context.Context, caID, serial string) (string, error) {
	op := fmt.Sprintf("get successor of certificate %s of CA %q", serial, caID)
	return d.getString(ctx, op, "SELECT successor FROM certificate_renewals WHERE ca_id = ? AND serial = ?", caID, serial)
}

// SetCASuccessor records that successorID took over issuance from caID.
func (d *DB) SetCASuccessor(ctx context.Context, caID, successorID string, at time.Time) error {
	op := fmt.Sprintf("set successor of CA %q", caID)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	a, err := encodeTime(at)
	if err != nil {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	err = d.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO ca_successors (ca_id, successor_id, rotated_at) VALUES (?, ?, ?)", caID, successorID, a)
		return err
	})
	if err != nil {
		return wrapErr("sqlite: "+op, err)
	}
	return nil
}

// GetCASuccessor returns the ID of the CA that took over from caID, or "".
func (d *DB) GetCASuccessor(ctx context.Context, caID string) (string, error) {
	return d.getString(ctx, fmt.Sprintf("get successor of CA %q", caID), "SELECT successor_id FROM ca_successors WHERE ca_id = ?", caID)
}

// GetCAPredecessor returns the ID of the CA that caID took over from, or "".
func (d *DB) GetCAPredecessor(ctx context.Context, caID string) (string, error) {
	return d.getString(ctx, fmt.Sprintf("get predecessor of CA %q", caID), "SELECT ca_id FROM ca_successors WHERE successor_id = ?", caID)
}

// ListRenewals calls fn for every recorded renewal.
func (d *DB) ListRenewals(ctx context.Context, fn func(store.Renewal) error) error {
	const op = "list renewals"
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	rows, err := d.r.QueryContext(ctx, "SELECT ca_id, serial, claimed_at, successor, renewed_at FROM certificate_renewals ORDER BY ca_id, serial")
	if err != nil {
		return wrapErr("sqlite: "+op, err)
	}
	defer rows.Close()
	for rows.Next() {
		var r store.Renewal
		var ct, rt string
		if err := rows.Scan(&r.CAID, &r.Serial, &ct, &r.Successor, &rt); err != nil {
			return wrapErr("sqlite: "+op, err)
		}
		var err1, err2 error
		r.ClaimedAt, err1 = decodeTime(ct)
		r.RenewedAt, err2 = decodeTime(rt)
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("sqlite: %s: %w", op, err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return wrapErr("sqlite: "+op, err)
	}
	return nil
}

// RestoreRenewal records r exactly as it was.
func (d *DB) RestoreRenewal(ctx context.Context, r store.Renewal) error {
	op := fmt.Sprintf("restore renewal of certificate %s of CA %q", r.Serial, r.CAID)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	ct, err1 := encodeTime(r.ClaimedAt)
	rt, err2 := encodeTime(r.RenewedAt)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	err := d.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		if err := certExists(ctx, tx, r.CAID, r.Serial); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO certificate_renewals (ca_id, serial, claimed_at, successor, renewed_at) VALUES (?, ?, ?, ?, ?)",
			r.CAID, r.Serial, ct, r.Successor, rt)
		return err
	})
	if err != nil {
		return wrapErr("sqlite: "+op, err)
	}
	return nil
}

// ListCASuccessions returns every recorded CA rotation.
func (d *DB) ListCASuccessions(ctx context.Context) ([]store.CASuccession, error) {
	const op = "list CA successions"
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	rows, err := d.r.QueryContext(ctx, "SELECT ca_id, successor_id, rotated_at FROM ca_successors ORDER BY rotated_at, ca_id")
	if err != nil {
		return nil, wrapErr("sqlite: "+op, err)
	}
	defer rows.Close()
	var out []store.CASuccession
	for rows.Next() {
		var c store.CASuccession
		var at string
		if err := rows.Scan(&c.CAID, &c.SuccessorID, &at); err != nil {
			return nil, wrapErr("sqlite: "+op, err)
		}
		if c.RotatedAt, err = decodeTime(at); err != nil {
			return nil, fmt.Errorf("sqlite: %s: %w", op, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, wrapErr("sqlite: "+op, err)
	}
	return out, nil
}

// getString reads one text value; no row is "".
func (d *DB) getString(ctx context.Context, op, query string, args ...any) (string, error) {
	if err := d.begin(ctx, op); err != nil {
		return "", err
	}
	var s string
	err := d.r.QueryRowContext(ctx, query, args...).Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", wrapErr("sqlite: "+op, err)
	}
	return s, nil
}
