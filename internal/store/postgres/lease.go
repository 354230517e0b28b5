package postgres

import (
	"context"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/trustgate/trustgate/internal/store"
)

// Leases are PostgreSQL session-level advisory locks, each held by a
// connection of its own, outside the pool.
//
// Why an advisory lock rather than a lease row with an expiry and a fencing
// token: the lock lives exactly as long as the holder's session. When the
// holder dies (kill -9, a crash) the kernel closes its socket, the server
// ends the session and frees the lock at once, so another node takes over
// on its next try, without waiting for an expiry that would have to be
// long enough to survive a slow node and short enough for a quick
// takeover, and without trusting the clocks of the nodes. A fencing token
// protects writes that must not come from a holder that lost the lease
// without knowing; the singleton jobs' only such write, the CRL number, is
// already taken in the database together with the list it numbers
// (ReadCRL), so CRL numbers go up across holders whoever writes them, and
// a higher number never lists less than a lower one. What is left is a
// window in which two holders may both publish: a holder checks its
// connection every leaseCheckInterval and stops its work when the check
// fails, while the server notices a holder that vanished without closing
// its socket (a host lost, a partition) only through TCP keepalives,
// leaseKeepalives, after some seconds more: the old holder normally stops
// before the new one starts.
const (
	// leaseCheckInterval is how often a holder checks its connection.
	leaseCheckInterval = time.Second
	// leaseCheckTimeout bounds one check; past it the lease counts as lost.
	leaseCheckTimeout = 2 * time.Second
	// leaseCloseTimeout bounds the goodbye of a released lease's session.
	leaseCloseTimeout = 2 * time.Second
)

// leaseKeepalives make the server probe an idle lease connection after 4 s
// and give up on it after two unanswered probes 2 s apart, so that the lock
// of a holder whose host vanished is freed in about 8 s. They apply to TCP
// connections only, and the connection string's own values win.
var leaseKeepalives = map[string]string{
	"tcp_keepalives_idle":     "4",
	"tcp_keepalives_interval": "2",
	"tcp_keepalives_count":    "2",
}

// leaseLockKey is the key of the advisory lock of the lease name of the
// store whose keys derive from schema (see keySchema). It takes the one-bigint form of the advisory-lock functions,
// whose keys PostgreSQL keeps apart from the two-int4 keys of the
// migration and insert locks.
func leaseLockKey(schema, name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("trustgate lease\x00"))
	h.Write([]byte(schema))
	h.Write([]byte{0})
	h.Write([]byte(name))
	return int64(h.Sum64())
}

// TryLease implements store.Leaser with a session-level advisory lock taken
// on a new connection, which the lease keeps until it is released or lost.
// Closing d loses every lease taken from it.
func (d *DB) TryLease(ctx context.Context, name string) (store.Held, error) {
	op := fmt.Sprintf("lease %q", name)
	if err := d.begin(ctx, op); err != nil {
		return nil, err
	}
	cc := d.pool.Config().ConnConfig.Copy()
	for k, v := range leaseKeepalives {
		if _, ok := cc.RuntimeParams[k]; !ok {
			cc.RuntimeParams[k] = v
		}
	}
	// What the session is for, in pg_stat_activity.
	cc.RuntimeParams["application_name"] = "trustgate-lease"
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, d.fail(ctx, op, err)
	}
	var ok bool
	err = conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", leaseLockKey(d.keySchema, name)).Scan(&ok)
	if err != nil || !ok {
		// Ending the session frees the lock if the server took it before
		// the answer was lost.
		closeConn(conn)
		if err != nil {
			return nil, d.fail(ctx, op, err)
		}
		return nil, fmt.Errorf("postgres: %s: %w", op, store.ErrLeaseHeld)
	}
	h := &pgHeld{conn: conn, quit: d.quit, stop: make(chan struct{}), lost: make(chan struct{})}
	go h.watch()
	return h, nil
}

// closeConn ends a session, waiting at most leaseCloseTimeout for the
// server; the socket is closed in any case.
func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), leaseCloseTimeout)
	defer cancel()
	conn.Close(ctx)
}

// pgHeld is a lease held by a session. Only its watch goroutine uses conn
// (a pgx.Conn is not safe for concurrent use).
type pgHeld struct {
	conn *pgx.Conn
	quit <-chan struct{} // the DB's: closed by DB.Close
	stop chan struct{}   // closed by Release
	lost chan struct{}   // closed by watch as it returns
	once sync.Once
}

// watch checks the session every leaseCheckInterval until a check fails,
// Release is called or the DB is closed; then it ends the session, which
// frees the lock, and closes lost.
func (h *pgHeld) watch() {
	defer close(h.lost)
	defer closeConn(h.conn)
	t := time.NewTicker(leaseCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-h.quit:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), leaseCheckTimeout)
			err := h.conn.Ping(ctx)
			cancel()
			if err != nil {
				return
			}
		}
	}
}

func (h *pgHeld) Lost() <-chan struct{} { return h.lost }

// Release ends the session and returns once the lock is freed (or the
// goodbye timed out).
func (h *pgHeld) Release() {
	h.once.Do(func() { close(h.stop) })
	<-h.lost
}
