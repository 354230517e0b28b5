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

const dueDeliveriesSQL = `SELECT e.id, e.key, e.type, e.payload, e.created_at, d.webhook, d.attempts, d.next_attempt, d.last_error
	FROM event_deliveries d JOIN events e ON e.id = d.event_id
	WHERE d.delivered = 0 AND d.next_attempt <= ?
	ORDER BY d.next_attempt, d.rowid LIMIT ?`

// AddEvent records e and its pending deliveries in one transaction; an
// event with the same key already recorded makes it a no-op returning false.
func (d *DB) AddEvent(ctx context.Context, e *store.Event, webhooks []string) (bool, error) {
	op := fmt.Sprintf("add event %q", e.Key)
	if err := d.begin(ctx, op); err != nil {
		return false, err
	}
	if e.ID == "" || e.Key == "" || e.Payload == nil {
		return false, fmt.Errorf("sqlite: %s: %w", op, fault.New(fault.Invalid, "an event needs an ID, a key and a payload"))
	}
	ct, err := encodeTime(e.CreatedAt)
	if err != nil {
		return false, fmt.Errorf("sqlite: %s: %w", op, err)
	}
	added := false
	err = d.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "INSERT INTO events (id, key, type, payload, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
			e.ID, e.Key, e.Type, e.Payload, ct)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		added = true
		for _, w := range webhooks {
			if _, err := tx.ExecContext(ctx, `INSERT INTO event_deliveries (event_id, webhook, attempts, next_attempt, last_error, delivered, delivered_at)
				VALUES (?, ?, 0, ?, '', 0, ?)`, e.ID, w, ct, zeroTime); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, wrapErr("sqlite: "+op, err)
	}
	return added, nil
}

// HasEvent reports whether an event with key was recorded.
func (d *DB) HasEvent(ctx context.Context, key string) (bool, error) {
	op := fmt.Sprintf("has event %q", key)
	if err := d.begin(ctx, op); err != nil {
		return false, err
	}
	var n int64
	if err := d.r.QueryRowContext(ctx, "SELECT count(*) FROM events WHERE key = ?", key).Scan(&n); err != nil {
		return false, wrapErr("sqlite: "+op, err)
	}
	return n > 0, nil
}

// DueDeliveries returns pending deliveries due at now, earliest first.
func (d *DB) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]*store.Delivery, error) {
	const op = "due deliveries"
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	at, err := encodeTime(now)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", op, err)
	}
	if limit <= 0 {
		limit = DefaultListLimit
	}
	rows, err := d.r.QueryContext(ctx, dueDeliveriesSQL, at, limit)
	if err != nil {
		return nil, wrapErr("sqlite: "+op, err)
	}
	defer rows.Close()
	var out []*store.Delivery
	for rows.Next() {
		var (
			dl     store.Delivery
			ct, na string
			att    int64
		)
		if err := rows.Scan(&dl.Event.ID, &dl.Event.Key, &dl.Event.Type, blob{&dl.Event.Payload}, &ct, &dl.Webhook, &att, &na, &dl.LastError); err != nil {
			return nil, wrapErr("sqlite: "+op, err)
		}
		var err1, err2 error
		dl.Event.CreatedAt, err1 = decodeTime(ct)
		dl.NextAttempt, err2 = decodeTime(na)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("sqlite: %s: %w", op, err)
		}
		dl.Attempts = int(att)
		out = append(out, &dl)
	}
	if err := rows.Err(); err != nil {
		return nil, wrapErr("sqlite: "+op, err)
	}
	return out, nil
}

// MarkDelivered ends a pending delivery.
func (d *DB) MarkDelivered(ctx context.Context, eventID, webhook string, at time.Time) error {
	t, err := encodeTime(at)
	if err != nil {
		return fmt.Errorf("sqlite: mark delivered: %w", err)
	}
	return d.updateDelivery(ctx, fmt.Sprintf("mark event %q delivered to %q", eventID, webhook),
		"UPDATE event_deliveries SET delivered = 1, delivered_at = ? WHERE event_id = ? AND webhook = ? AND delivered = 0", t, eventID, webhook)
}

// MarkFailed counts a failed attempt and sets the next one.
func (d *DB) MarkFailed(ctx context.Context, eventID, webhook string, next time.Time, lastErr string) error {
	t, err := encodeTime(next)
	if err != nil {
		return fmt.Errorf("sqlite: mark failed: %w", err)
	}
	return d.updateDelivery(ctx, fmt.Sprintf("mark delivery of event %q to %q failed", eventID, webhook),
		"UPDATE event_deliveries SET attempts = attempts + 1, next_attempt = ?, last_error = ? WHERE event_id = ? AND webhook = ? AND delivered = 0",
		t, lastErr, eventID, webhook)
}

func (d *DB) updateDelivery(ctx context.Context, op, query string, args ...any) error {
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	var n int64
	err := d.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
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
		return fmt.Errorf("sqlite: %s: no pending delivery: %w", op, store.ErrNotFound)
	}
	return nil
}
