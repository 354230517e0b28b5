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

// Changes travel as PostgreSQL notifications (NOTIFY/LISTEN) on a channel
// of the store's schema: every node's listening session receives each one
// as its transaction commits. Notifications are not stored: a node that
// is not listening at the time (its session is not connected yet, or
// broke) misses them, which SubscribeChanges reports as a gap each time
// its LISTEN takes effect.
const (
	// changesRetry is how long a subscriber waits before listening again
	// after its session broke.
	changesRetry = time.Second
)

// changesCheck is how long a subscriber waits for a notification before it
// checks its session: a session whose server vanished without closing it
// would otherwise wait forever. A variable for tests.
var changesCheck = 15 * time.Second

// changesChannel is the notification channel of the store whose keys
// derive from schema (see keySchema). Notifications are database-wide;
// stores in other schemas of one database use other channels.
func changesChannel(schema string) string {
	return fmt.Sprintf("trustgate_changes_%08x", uint32(lockKey(schema)))
}

// listenerName is the application_name of the listening session of the
// store whose keys derive from schema.
func listenerName(schema string) string {
	return fmt.Sprintf("trustgate-changes-%08x", uint32(lockKey(schema)))
}

// PublishChange implements store.Changes with pg_notify.
func (d *DB) PublishChange(ctx context.Context, key string) error {
	const op = "publish change"
	if err := d.begin(ctx, op); err != nil {
		return err
	}
	if len(key) > store.MaxChangeKey {
		return fault.New(fault.Invalid, "postgres: %s: key of %d bytes, longer than %d", op, len(key), store.MaxChangeKey)
	}
	if _, err := d.pool.Exec(ctx, "SELECT pg_notify($1, $2)", changesChannel(d.keySchema), key); err != nil {
		return d.fail(ctx, op, err)
	}
	return nil
}

// SubscribeChanges implements store.Changes: it listens on a connection of
// its own, outside the pool, and listens again on a new one when that
// breaks. Each time its LISTEN has taken effect it reports the gap before
// it with fn(""): on the first connection too, since a change published
// while that connection was being opened reached no one here.
func (d *DB) SubscribeChanges(ctx context.Context, fn func(key string)) error {
	if err := d.begin(ctx, "subscribe to changes"); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-d.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		conn, err := d.listen(ctx)
		if err == nil {
			// LISTEN has returned, so every notification committed from
			// now on reaches conn; those before it did not.
			fn("")
			err = d.receive(ctx, conn, fn)
			closeConn(conn)
		}
		if ctx.Err() != nil {
			return nil
		}
		_ = err // the session broke or could not start: changes may be missed
		t := time.NewTimer(changesRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// listen opens a session that listens on the store's channel.
func (d *DB) listen(ctx context.Context) (*pgx.Conn, error) {
	cc := d.pool.Config().ConnConfig.Copy()
	for k, v := range leaseKeepalives {
		if _, ok := cc.RuntimeParams[k]; !ok {
			cc.RuntimeParams[k] = v
		}
	}
	// What the session is for, in pg_stat_activity.
	cc.RuntimeParams["application_name"] = listenerName(d.keySchema)
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{changesChannel(d.keySchema)}.Sanitize()); err != nil {
		closeConn(conn)
		return nil, err
	}
	return conn, nil
}

// receive hands the notifications of conn to fn until the session breaks
// or ctx ends.
func (d *DB) receive(ctx context.Context, conn *pgx.Conn, fn func(string)) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, changesCheck)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			fn(n.Payload)
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) || wctx.Err() != nil:
			// Quiet for a while: make sure the session is alive.
			pctx, cancel := context.WithTimeout(ctx, leaseCheckTimeout)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return err
			}
		default:
			return err
		}
	}
}
