package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/trustgate/trustgate/internal/store"
)

// ListMeta returns every small named value.
func (d *DB) ListMeta(ctx context.Context) (map[string][]byte, error) {
	const op = "list meta"
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	err := eachRow(ctx, d.r, "SELECT key, value FROM meta", nil, func(s scanner) error {
		var k string
		var v []byte
		if err := s.Scan(&k, blob{&v}); err != nil {
			return err
		}
		out[k] = v
		return nil
	})
	if err != nil {
		return nil, wrapErr("sqlite: "+op, err)
	}
	return out, nil
}

// ListCRLNumbers returns the last CRL number of every (CA, partition).
func (d *DB) ListCRLNumbers(ctx context.Context) ([]store.CRLNumber, error) {
	return listAll(ctx, d, "list crl numbers", "SELECT ca_id, partition, number FROM crl_numbers ORDER BY ca_id, partition", nil,
		func(s scanner) (store.CRLNumber, error) {
			var n store.CRLNumber
			err := s.Scan(&n.CAID, &n.Partition, &n.Number)
			return n, err
		})
}

// RaiseCRLNumber makes the last CRL number of (caID, partition) at least n.
func (d *DB) RaiseCRLNumber(ctx context.Context, caID string, partition int, n int64) error {
	op := fmt.Sprintf("raise crl number (ca %q, partition %d)", caID, partition)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	err := d.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO crl_numbers (ca_id, partition, number) VALUES (?, ?, ?)
			ON CONFLICT (ca_id, partition) DO UPDATE SET number = max(number, excluded.number)`, caID, partition, n)
		return err
	})
	if isForeignKey(err) {
		return fmt.Errorf("sqlite: %s: ca does not exist: %w", op, store.ErrNotFound)
	}
	if err != nil {
		return wrapErr("sqlite: "+op, err)
	}
	return nil
}

// RaiseTrustStoreVersion makes a trust store's version at least version.
func (d *DB) RaiseTrustStoreVersion(ctx context.Context, id string, version int64) error {
	op := fmt.Sprintf("raise trust store version (%q to %d)", id, version)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	err := d.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE truststores SET version = max(version, ?) WHERE id = ?", version, id)
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

// ListBootstrapTokens returns every bootstrap token, oldest first.
func (d *DB) ListBootstrapTokens(ctx context.Context) ([]*store.BootstrapToken, error) {
	return listAll(ctx, d, "list bootstrap tokens", selectBootstrap+" ORDER BY created_at, id", nil, scanBootstrap)
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
	var out []*store.EventCopy
	byID := map[string]*store.EventCopy{}
	err := d.inReadTx(ctx, func(tx *sql.Tx) error {
		err := eachRow(ctx, tx, "SELECT id, key, type, payload, created_at FROM events WHERE id > ? ORDER BY id LIMIT ?",
			[]any{afterID, limit}, func(s scanner) error {
				var e store.EventCopy
				var ct string
				if err := s.Scan(&e.Event.ID, &e.Event.Key, &e.Event.Type, blob{&e.Event.Payload}, &ct); err != nil {
					return err
				}
				var err error
				e.Event.CreatedAt, err = decodeTime(ct)
				out = append(out, &e)
				byID[e.Event.ID] = &e
				return err
			})
		if err != nil || len(out) == 0 {
			return err
		}
		return eachRow(ctx, tx, `SELECT event_id, webhook, attempts, next_attempt, last_error, delivered, delivered_at
			FROM event_deliveries WHERE event_id > ? AND event_id <= ? ORDER BY event_id, webhook`,
			[]any{afterID, out[len(out)-1].Event.ID}, func(s scanner) error {
				var (
					id, na, da string
					ds         store.DeliveryState
					att, del   int64
				)
				if err := s.Scan(&id, &ds.Webhook, &att, &na, &ds.LastError, &del, &da); err != nil {
					return err
				}
				var err1, err2 error
				ds.NextAttempt, err1 = decodeTime(na)
				ds.DeliveredAt, err2 = decodeTime(da)
				ds.Attempts, ds.Delivered = int(att), del != 0
				if e := byID[id]; e != nil {
					e.Deliveries = append(e.Deliveries, ds)
				}
				return errors.Join(err1, err2)
			})
	})
	if err != nil {
		return nil, wrapErr("sqlite: "+op, err)
	}
	return out, nil
}

// RestoreEvent records an event and its deliveries as they were.
func (d *DB) RestoreEvent(ctx context.Context, e *store.EventCopy) error {
	op := fmt.Sprintf("restore event %q", e.Event.ID)
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	ct, err := encodeTime(e.Event.CreatedAt)
	if err != nil {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	err = d.inWriteTx(ctx, op, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO events (id, key, type, payload, created_at) VALUES (?, ?, ?, ?, ?)",
			e.Event.ID, e.Event.Key, e.Event.Type, e.Event.Payload, ct); err != nil {
			return err
		}
		for _, ds := range e.Deliveries {
			na, err1 := encodeTime(ds.NextAttempt)
			da, err2 := encodeTime(ds.DeliveredAt)
			if err := errors.Join(err1, err2); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO event_deliveries (event_id, webhook, attempts, next_attempt, last_error, delivered, delivered_at)
				VALUES (?, ?, ?, ?, ?, ?, ?)`, e.Event.ID, ds.Webhook, ds.Attempts, na, ds.LastError, boolInt(ds.Delivered), da); err != nil {
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
