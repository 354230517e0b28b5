package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/store"
)

// defaultDueLimit is DueDeliveries' limit when the caller gives none.
const defaultDueLimit = 100

const dueDeliveriesSQL = `SELECT e.id, e.key, e.type, e.payload, e.created_at, d.webhook, d.attempts, d.next_attempt, d.last_error
	FROM event_deliveries d JOIN events e ON e.id = d.event_id
	WHERE NOT d.delivered AND d.next_attempt <= $1
	ORDER BY d.next_attempt, d.event_id, d.webhook LIMIT $2`

// AddEvent records e and its pending deliveries in one transaction; an
// event with the same key already recorded makes it a no-op returning false.
func (d *DB) AddEvent(ctx context.Context, e *store.Event, webhooks []string) (bool, error) {
	op := fmt.Sprintf("add event %q", e.Key)
	if err := d.begin(ctx, op); err != nil {
		return false, err
	}
	if e.ID == "" || e.Key == "" || e.Payload == nil {
		return false, fmt.Errorf("postgres: %s: %w", op, fault.New(fault.Invalid, "an event needs an ID, a key and a payload"))
	}
	if !storable(append([]string{e.ID, e.Key, e.Type}, webhooks...)...) {
		return false, fmt.Errorf("postgres: %s: %w", op, fault.New(fault.Invalid, "a text field is not UTF-8 or holds a NUL"))
	}
	if err := checkTime("created at", e.CreatedAt); err != nil {
		return false, fmt.Errorf("postgres: %s: %w", op, err)
	}
	added := false
	err := d.inTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "INSERT INTO events (id, key, type, payload, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO NOTHING",
			e.ID, e.Key, e.Type, e.Payload, e.CreatedAt)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		added = true
		for _, w := range webhooks {
			if _, err := tx.Exec(ctx, `INSERT INTO event_deliveries (event_id, webhook, attempts, next_attempt, last_error, delivered, delivered_at)
				VALUES ($1, $2, 0, $3, '', false, $4)`, e.ID, w, e.CreatedAt, time.Time{}); err != nil {
				return err
			}
		}
		return nil
	})
	return added, err
}

// HasEvent reports whether an event with key was recorded.
func (d *DB) HasEvent(ctx context.Context, key string) (bool, error) {
	op := fmt.Sprintf("has event %q", key)
	if err := d.begin(ctx, op); err != nil {
		return false, err
	}
	if !storable(key) {
		return false, nil
	}
	var found bool
	if err := d.pool.QueryRow(ctx, "SELECT EXISTS (SELECT FROM events WHERE key = $1)", key).Scan(&found); err != nil {
		return false, d.fail(ctx, op, err)
	}
	return found, nil
}

// DueDeliveries returns pending deliveries due at now, earliest first.
func (d *DB) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]*store.Delivery, error) {
	const op = "due deliveries"
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	if err := checkTime("now", now); err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", op, err)
	}
	if limit <= 0 {
		limit = defaultDueLimit
	}
	rows, err := d.pool.Query(ctx, dueDeliveriesSQL, now, limit)
	if err != nil {
		return nil, d.fail(ctx, op, err)
	}
	defer rows.Close()
	var out []*store.Delivery
	for rows.Next() {
		var dl store.Delivery
		if err := rows.Scan(&dl.Event.ID, &dl.Event.Key, &dl.Event.Type, &dl.Event.Payload, &dl.Event.CreatedAt,
			&dl.Webhook, &dl.Attempts, &dl.NextAttempt, &dl.LastError); err != nil {
			return nil, d.fail(ctx, op, err)
		}
		dl.Event.CreatedAt, dl.NextAttempt = fromDB(dl.Event.CreatedAt), fromDB(dl.NextAttempt)
		out = append(out, &dl)
	}
	if err := rows.Err(); err != nil {
		return nil, d.fail(ctx, op, err)
	}
	return out, nil
}

// MarkDelivered ends a pending delivery.
func (d *DB) MarkDelivered(ctx context.Context, eventID, webhook string, at time.Time) error {
	return d.updateDelivery(ctx, fmt.Sprintf("mark event %q delivered to %q", eventID, webhook), at,
		"UPDATE event_deliveries SET delivered = true, delivered_at = $1 WHERE event_id = $2 AND webhook = $3 AND NOT delivered",
		at, eventID, webhook)
}

// MarkFailed counts a failed attempt and sets the next one.
func (d *DB) MarkFailed(ctx context.Context, eventID, webhook string, next time.Time, lastErr string) error {
	return d.updateDelivery(ctx, fmt.Sprintf("mark delivery of event %q to %q failed", eventID, webhook), next,
		"UPDATE event_deliveries SET attempts = attempts + 1, next_attempt = $1, last_error = $2 WHERE event_id = $3 AND webhook = $4 AND NOT delivered",
		next, lastErr, eventID, webhook)
}

func (d *DB) updateDelivery(ctx context.Context, op string, at time.Time, query string, args ...any) error {
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	if err := checkTime("time", at); err != nil {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	for _, a := range args {
		if s, ok := a.(string); ok && !storable(s) {
			return fmt.Errorf("postgres: %s: no pending delivery: %w", op, store.ErrNotFound)
		}
	}
	return d.write(ctx, op, func(ctx context.Context, c *pgxpool.Conn) error {
		tag, err := c.Exec(ctx, query, args...)
		if err != nil {
			return d.fail(ctx, op, err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("postgres: %s: no pending delivery: %w", op, store.ErrNotFound)
		}
		return nil
	})
}
