package api

import (
	"context"
	"sync"
	"time"
)

// Long polls of a trust-store snapshot (GET …/snapshot?wait=30s with
// If-None-Match): the request is held until the snapshot's ETag changes or
// the wait ends.
const (
	// MaxSnapshotWait caps ?wait=: below the API listener's 60 s write
	// timeout, which would cut a longer answer off.
	MaxSnapshotWait = 50 * time.Second
	// snapshotCheckEvery is how often a watched trust store's snapshot is
	// computed while a long poll waits on it. A revocation reaches the
	// store's snapshot when the CA's new CRL is published (about 1 s), so
	// this adds at most a fifth of a second to a revoke reaching gateways.
	snapshotCheckEvery = 200 * time.Millisecond
	// snapshotCheckTimeout bounds one computation of a watched snapshot.
	snapshotCheckTimeout = 10 * time.Second
)

// snapshotWatch tells long polls when a trust store's snapshot changes.
// Whatever the number of waiting gateways, one goroutine per watched store
// computes its snapshot every snapshotCheckEvery, and only while someone
// waits on it: the cost grows with the stores being watched, not with the
// gateways watching them. Checking the store (rather than being told by
// the services of this node) also sees changes made through other nodes
// of the control plane. It is safe for concurrent use.
type snapshotWatch struct {
	// etag returns the current ETag of a trust store's snapshot.
	etag  func(ctx context.Context, name string) (string, error)
	every time.Duration
	// stop, when closed, ends every wait (the server shuts down).
	stop <-chan struct{}

	mu     sync.Mutex
	topics map[string]*watchTopic
}

// watchTopic is one watched trust store, guarded by snapshotWatch.mu.
type watchTopic struct {
	waiters int
	etag    string        // the last ETag seen; "" before the first check
	changed chan struct{} // closed, and replaced, when etag changes
}

// wait returns when the ETag of name's snapshot is seen to differ from
// etag, when ctx ends, or when stop is closed. A snapshot that cannot be computed counts as
// unchanged: the caller answers from its own computation after the wait.
func (w *snapshotWatch) wait(ctx context.Context, name, etag string) {
	w.mu.Lock()
	if w.topics == nil {
		w.topics = map[string]*watchTopic{}
	}
	t := w.topics[name]
	if t == nil {
		t = &watchTopic{changed: make(chan struct{})}
		w.topics[name] = t
		go w.check(name, t)
	}
	t.waiters++
	defer func() {
		w.mu.Lock()
		t.waiters--
		w.mu.Unlock()
	}()
	for {
		if t.etag != "" && t.etag != etag {
			w.mu.Unlock()
			return
		}
		ch := t.changed
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-w.stop:
			return
		case <-ch:
		}
		w.mu.Lock()
	}
}

// check computes the snapshot of a watched store until nobody waits on it.
func (w *snapshotWatch) check(name string, t *watchTopic) {
	tick := time.NewTicker(w.every)
	defer tick.Stop()
	for first := true; ; first = false {
		if !first {
			<-tick.C
		}
		w.mu.Lock()
		if t.waiters == 0 {
			delete(w.topics, name)
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), snapshotCheckTimeout)
		etag, err := w.etag(ctx, name)
		cancel()
		if err != nil {
			continue
		}
		w.mu.Lock()
		if etag != t.etag {
			t.etag = etag
			close(t.changed)
			t.changed = make(chan struct{})
		}
		w.mu.Unlock()
	}
}
