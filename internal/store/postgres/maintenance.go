package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/trustgate/trustgate/internal/store"
)

// ListMeta returns every small named value.
func (d *DB) ListMeta(ctx context.Context) (map[string][]byte, error) {
	const op = "list meta"
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	err := eachRow(ctx, d.pool, "SELECT key, value FROM meta", nil, func(row pgx.Rows) error {
		var k string
		var v []byte
		if err := row.Scan(&k, &v); err != nil {
			return err
		}
		out[k] = v
		return nil
	})
	if err != nil {
		return nil, d.fail(ctx, op, err)
	}
	return out, nil
}

// ListCRLNumbers returns the last CRL number of every (CA, partition).
func (d *DB) ListCRLNumbers(ctx context.Context) ([]store.CRLNumber, error) {
	const op = "list crl numbers"
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	var out []store.CRLNumber
	err := eachRow(ctx, d.pool, "SELECT ca_id, partition, number FROM crl_numbers ORDER BY ca_id, partition", nil, func(row pgx.Rows) error {
		var n store.CRLNumber
		var part int32
		if err := row.Scan(&n.CAID, &part, &n.Number); err != nil {
			return err
		}
		n.Partition = int(part)
		out = append(out, n)
		return nil
	})
	if err != nil {
		return nil, d.fail(ctx, op, err)
	}
	return out, nil
}

// RaiseCRLNumber makes the last CRL number of (caID, partition) at least n.
func (d *DB) RaiseCRLNumber(ctx context.Context, caID string, partition int, n int64) error {
	op := fmt.Sprintf("raise crl number (ca %q, partition %d)", caID, partition)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	if !storable(caID) || partition < 0 || partition > 1<<31-1 {
		return fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	return d.inTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO crl_numbers (ca_id, partition, number) VALUES ($1, $2, $3)
			ON CONFLICT (ca_id, partition) DO UPDATE SET number = greatest(crl_numbers.number, excluded.number)`, caID, partition, n)
		if isCode(err, codeForeignKeyViolation) {
			return fmt.Errorf("ca does not exist: %w", store.ErrNotFound)
		}
		return err
	})
}

// RaiseTrustStoreVersion makes a trust store's version at least version.
func (d *DB) RaiseTrustStoreVersion(ctx context.Context, id string, version int64) error {
	op := fmt.Sprintf("raise trust store version (%q to %d)", id, version)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	if !storable(id) {
		return fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	return d.inTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "UPDATE truststores SET version = greatest(version, $1) WHERE id = $2", version, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		return nil
	})
}

// ListBootstrapTokens returns every bootstrap token, oldest first.
func (d *DB) ListBootstrapTokens(ctx context.Context) ([]*store.BootstrapToken, error) {
	const op = "list bootstrap tokens"
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	var out []*store.BootstrapToken
	err := eachRow(ctx, d.pool, selectBootstrap+" ORDER BY created_at, id", nil, func(row pgx.Rows) error {
		t, err := scanBootstrap(row)
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

// ListEvents returns a page of the outbox with every delivery's state.
func (d *DB) ListEvents(ctx context.Context, afterID string, limit int) ([]*store.EventCopy, error) {
	const op = "list events"
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = DefaultListLimit
	}
	tx, err := d.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, d.fail(ctx, op, err)
	}
	defer tx.Rollback(ctx)
	var out []*store.EventCopy
	byID := map[string]*store.EventCopy{}
	err = eachRow(ctx, tx, "SELECT id, key, type, payload, created_at FROM events WHERE id > $1 ORDER BY id LIMIT $2",
		[]any{afterID, limit}, func(row pgx.Rows) error {
			var e store.EventCopy
			if err := row.Scan(&e.Event.ID, &e.Event.Key, &e.Event.Type, &e.Event.Payload, &e.Event.CreatedAt); err != nil {
				return err
			}
			e.Event.CreatedAt = fromDB(e.Event.CreatedAt)
			out = append(out, &e)
			byID[e.Event.ID] = &e
			return nil
		})
	if err == nil && len(out) > 0 {
		err = eachRow(ctx, tx, `SELECT event_id, webhook, attempts, next_attempt, last_error, delivered, delivered_at
			FROM event_deliveries WHERE event_id > $1 AND event_id <= $2 ORDER BY event_id, webhook`,
			[]any{afterID, out[len(out)-1].Event.ID}, func(row pgx.Rows) error {
				var id string
				var ds store.DeliveryState
				var att int32
				if err := row.Scan(&id, &ds.Webhook, &att, &ds.NextAttempt, &ds.LastError, &ds.Delivered, &ds.DeliveredAt); err != nil {
					return err
				}
				ds.Attempts, ds.NextAttempt, ds.DeliveredAt = int(att), fromDB(ds.NextAttempt), fromDB(ds.DeliveredAt)
				if e := byID[id]; e != nil {
					e.Deliveries = append(e.Deliveries, ds)
				}
				return nil
			})
	}
	if err != nil {
		return nil, d.fail(ctx, op, err)
	}
	return out, nil
}

// RestoreEvent records an event and its deliveries as they were.
func (d *DB) RestoreEvent(ctx context.Context, e *store.EventCopy) error {
	op := fmt.Sprintf("restore event %q", e.Event.ID)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	return d.inTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO events (id, key, type, payload, created_at) VALUES ($1, $2, $3, $4, $5)",
			e.Event.ID, e.Event.Key, e.Event.Type, e.Event.Payload, e.Event.CreatedAt); err != nil {
			return err
		}
		for _, ds := range e.Deliveries {
			if _, err := tx.Exec(ctx, `INSERT INTO event_deliveries (event_id, webhook, attempts, next_attempt, last_error, delivered, delivered_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7)`, e.Event.ID, ds.Webhook, ds.Attempts, ds.NextAttempt, ds.LastError, ds.Delivered, ds.DeliveredAt); err != nil {
				return err
			}
		}
		return nil
	})
}
