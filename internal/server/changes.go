package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/trustgate/trustgate/internal/store"
)

// revocationNotifier is what the feed tells of a revocation made through
// another node; the revocation service satisfies it.
type revocationNotifier interface {
	Notify(caID, serial string, at time.Time)
}

// revocationFeed carries revocations between the control-plane nodes that
// share a store, so that each node's CRLs and OCSP answers, which it builds
// and caches in memory, follow the revocations made through the others
// within about a second. A node publishes the ID of each CA whose
// revocations changed (after the change is durable); every other node hears
// it and has its revocation service publish that CA afresh. The start of
// listening, as the node starts and after a gap (the database was
// unreachable), makes the node publish every CA afresh: it may have missed
// changes, and may have built CRLs before it listened.
//
// Changes are keyed "NODE/CA": a node ignores its own, which its revocation
// service already knows of.
type revocationFeed struct {
	changes store.Changes
	listCAs func(context.Context) ([]*store.CA, error)
	rev     revocationNotifier
	log     *slog.Logger
	node    string

	mu      sync.Mutex
	pending map[string]bool // CA IDs to publish
	wake    chan struct{}   // capacity 1
}

func newRevocationFeed(ch store.Changes, listCAs func(context.Context) ([]*store.CA, error), rev revocationNotifier, log *slog.Logger) *revocationFeed {
	b := make([]byte, 8)
	rand.Read(b)
	return &revocationFeed{changes: ch, listCAs: listCAs, rev: rev, log: log,
		node: hex.EncodeToString(b), pending: map[string]bool{}, wake: make(chan struct{}, 1)}
}

// revoked queues the CA for publication to the other nodes. It never blocks.
func (f *revocationFeed) revoked(caID string) {
	f.mu.Lock()
	f.pending[caID] = true
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// feedRetry is how long the feed waits before publishing again what it
// could not publish, or listing the CAs again after a gap.
const feedRetry = time.Second

// run publishes the queued CAs and listens to the other nodes until ctx
// ends.
func (f *revocationFeed) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { f.publishLoop(ctx) })
	f.changes.SubscribeChanges(ctx, func(key string) {
		node, caID, ok := strings.Cut(key, "/")
		switch {
		case key == "":
			wg.Go(func() { f.refreshAll(ctx) })
		case !ok || node == f.node:
		default:
			f.rev.Notify(caID, "", time.Now())
		}
	})
	wg.Wait()
}

func (f *revocationFeed) publishLoop(ctx context.Context) {
	retry := time.NewTicker(feedRetry)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
		case <-retry.C:
		}
		// Take the queued CAs out before publishing: a revocation queued
		// while a publication is on its way may have committed after the
		// other nodes read the store for it, and must be published again,
		// which it is only if its CA is still queued afterwards.
		f.mu.Lock()
		ids := make([]string, 0, len(f.pending))
		for id := range f.pending {
			ids = append(ids, id)
		}
		clear(f.pending)
		f.mu.Unlock()
		for i, id := range ids {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := f.changes.PublishChange(pctx, f.node+"/"+id)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					f.log.Warn("cannot tell the other nodes of a revocation; retrying", "ca", id, "err", err)
				}
				f.mu.Lock()
				for _, id := range ids[i:] {
					f.pending[id] = true
				}
				f.mu.Unlock()
				break
			}
		}
	}
}

// refreshAll has every CA published afresh, after a gap in which changes
// may have been missed; it retries listing the CAs until it can.
func (f *revocationFeed) refreshAll(ctx context.Context) {
	for {
		cas, err := f.listCAs(ctx)
		if err == nil {
			now := time.Now()
			for _, c := range cas {
				if len(c.CertDER) > 0 {
					f.rev.Notify(c.ID, "", now)
				}
			}
			return
		}
		t := time.NewTimer(feedRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
