package sqlite

import (
	"context"
	"fmt"
	"sync"

	"github.com/trustgate/trustgate/internal/store"
)

// A SQLite database has one control-plane node: the process that opened
// it. Its leases are therefore local: exclusive among the holders of one
// *DB, which the node always wins, and never lost but by Release.
//
// They are kept beside DB rather than in it: a lease of a DB that is
// released is forgotten, so the map holds only live leases.
var leases = struct {
	sync.Mutex
	held map[leaseKey]*localHeld
}{held: map[leaseKey]*localHeld{}}

type leaseKey struct {
	db   *DB
	name string
}

// TryLease implements store.Leaser: the lease is free unless another
// holder of this DB has it.
func (d *DB) TryLease(ctx context.Context, name string) (store.Held, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: lease %q: %w", name, err)
	}
	if d.closed.Load() {
		return nil, fmt.Errorf("sqlite: lease %q: database is closed: %w", name, store.ErrUnavailable)
	}
	k := leaseKey{d, name}
	leases.Lock()
	defer leases.Unlock()
	if _, ok := leases.held[k]; ok {
		return nil, fmt.Errorf("sqlite: lease %q: %w", name, store.ErrLeaseHeld)
	}
	h := &localHeld{key: k, lost: make(chan struct{})}
	leases.held[k] = h
	return h, nil
}

// localHeld is a lease of a SQLite DB.
type localHeld struct {
	key  leaseKey
	lost chan struct{}
	once sync.Once
}

func (h *localHeld) Lost() <-chan struct{} { return h.lost }

func (h *localHeld) Release() {
	h.once.Do(func() {
		leases.Lock()
		delete(leases.held, h.key)
		leases.Unlock()
		close(h.lost)
	})
}
