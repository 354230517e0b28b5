package sqlite

import (
	"context"
	"fmt"
	"sync"

	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/store"
)

// A SQLite database has one process, so its changes go to the subscribers
// of the same *DB, in memory. They are kept beside DB, as its leases are.
var subscribers = struct {
	sync.Mutex
	by map[*DB]map[*subscriber]bool
}{by: map[*DB]map[*subscriber]bool{}}

// subscriber is one SubscribeChanges call. Its queue is bounded; when it
// overflows, the subscriber is told that it missed changes ("").
type subscriber struct {
	queue  chan string
	missed chan struct{} // capacity 1: the queue overflowed
}

// PublishChange implements store.Changes for the subscribers of d.
func (d *DB) PublishChange(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlite: publish change: %w", err)
	}
	if d.closed.Load() {
		return fmt.Errorf("sqlite: publish change: database is closed: %w", store.ErrUnavailable)
	}
	if len(key) > store.MaxChangeKey {
		return fault.New(fault.Invalid, "sqlite: publish change: key of %d bytes, longer than %d", len(key), store.MaxChangeKey)
	}
	subscribers.Lock()
	defer subscribers.Unlock()
	for s := range subscribers.by[d] {
		select {
		case s.queue <- key:
		default:
			select {
			case s.missed <- struct{}{}:
			default:
			}
		}
	}
	return nil
}

// SubscribeChanges implements store.Changes for the changes published
// through d. Closing d ends it. It reports the start of listening with
// fn(""), as the contract says: changes published before it registered
// did not reach it.
func (d *DB) SubscribeChanges(ctx context.Context, fn func(key string)) error {
	s := &subscriber{queue: make(chan string, 1024), missed: make(chan struct{}, 1)}
	subscribers.Lock()
	if subscribers.by[d] == nil {
		subscribers.by[d] = map[*subscriber]bool{}
	}
	subscribers.by[d][s] = true
	subscribers.Unlock()
	defer func() {
		subscribers.Lock()
		delete(subscribers.by[d], s)
		if len(subscribers.by[d]) == 0 {
			delete(subscribers.by, d)
		}
		subscribers.Unlock()
	}()
	fn("")
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.quit:
			return nil
		case key := <-s.queue:
			fn(key)
		case <-s.missed:
			fn("")
		}
	}
}
