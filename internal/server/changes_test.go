package server

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/store"
	"github.com/trustgate/trustgate/internal/store/sqlite"
)

// publishHook is a real store's Changes with a hook that runs inside
// PublishChange, before the change goes out: what happens while a
// publication is on its way.
type publishHook struct {
	store.Changes
	before func(key string)
}

func (p publishHook) PublishChange(ctx context.Context, key string) error {
	p.before(key)
	return p.Changes.PublishChange(ctx, key)
}

// ignoreNotify is a revocation service that is not looked at.
type ignoreNotify struct{}

func (ignoreNotify) Notify(string, string, time.Time) {}

// TestFeedPublishesRevocationQueuedDuringPublish queues a second revocation
// of a CA while the feed's publication of the first is on its way. The
// other nodes may have read the store for the first before the second
// committed, so the CA must be published again; before, the feed dropped
// the CA from its queue after the first publication and the second
// revocation reached no other node.
func TestFeedPublishesRevocationQueuedDuringPublish(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "trustgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	var f *revocationFeed
	var once sync.Once
	hook := publishHook{Changes: st, before: func(string) {
		once.Do(func() { f.revoked("ca-1") }) // the second revocation
	}}
	noCAs := func(context.Context) ([]*store.CA, error) { return nil, nil }
	f = newRevocationFeed(hook, noCAs, ignoreNotify{}, slog.New(slog.DiscardHandler))

	// Another node's view: every key published, counted.
	var mu sync.Mutex
	got := map[string]int{}
	listening := make(chan struct{})
	var listened sync.Once
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		st.SubscribeChanges(ctx, func(key string) {
			if key == "" {
				listened.Do(func() { close(listening) })
				return
			}
			mu.Lock()
			got[key]++
			mu.Unlock()
		})
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	<-listening
	wg.Go(func() { f.publishLoop(ctx) })

	f.revoked("ca-1") // the first revocation
	key := f.node + "/ca-1"
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return got[key]
	}
	// The wakeup left by the second revocation publishes at once; give the
	// loop's one-second retry two turns as well before calling it lost.
	waitFor(t, 3*time.Second, "the revocation queued during a publication is published", func() bool { return count() >= 2 })
	if n := count(); n != 2 {
		t.Errorf("%q published %d times, want 2", key, n)
	}
}
