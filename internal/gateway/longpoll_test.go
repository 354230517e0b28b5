package gateway

import (
	"context"
	"crypto/x509"
	"math/big"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/apiv1"
)

// watchingControlPlane is a fakeControlPlane that holds long polls until
// it publishes a new snapshot, the wait ends, or the caller gives up.
type watchingControlPlane struct {
	*fakeControlPlane
	changed chan struct{} // closed and replaced by publish; under fakeControlPlane.mu
	watches atomic.Int32
}

func newWatchingControlPlane() *watchingControlPlane {
	return &watchingControlPlane{fakeControlPlane: &fakeControlPlane{}, changed: make(chan struct{})}
}

func (w *watchingControlPlane) WatchTrustStoreSnapshot(ctx context.Context, name, etag string, wait time.Duration) (*apiv1.TrustStoreSnapshot, string, bool, error) {
	w.watches.Add(1)
	w.mu.Lock()
	same := w.snap != nil && etag == w.snap.ETag
	ch := w.changed
	w.mu.Unlock()
	if same {
		select {
		case <-ch:
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, "", false, ctx.Err()
		}
	}
	return w.TrustStoreSnapshot(ctx, name, etag)
}

func (w *watchingControlPlane) publish(version int64, cas []*x509.Certificate, crls [][]byte) {
	w.set(version, cas, crls)
	w.mu.Lock()
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
}

// loadResult is what one Load returned.
type loadResult struct {
	version string
	err     error
}

// loadAsync runs src.Load on its own goroutine.
func loadAsync(t *testing.T, src *ControlPlaneSource) <-chan loadResult {
	t.Helper()
	out := make(chan loadResult, 1)
	go func() {
		_, ver, err := src.Load(t.Context())
		out <- loadResult{ver, err}
	}()
	return out
}

// TestControlPlaneSourceLongPoll: with Wait set, a Load that holds a
// snapshot is a long poll that returns as soon as the snapshot changes;
// Invalidate ends a long poll under way with a whole fetch; without Wait,
// or without a watching client, Load polls as before.
func TestControlPlaneSourceLongPoll(t *testing.T) {
	inter := newCA(t, "LP Intermediate")
	doomed := inter.client(t, "doomed")
	now := time.Now()
	crl := func(revoked ...*big.Int) []byte {
		return inter.crl(t, now.Add(-time.Minute), now.Add(time.Hour), revoked...)
	}
	cp := newWatchingControlPlane()
	cp.publish(1, []*x509.Certificate{inter.cert}, [][]byte{crl()})

	tests := []struct {
		name      string
		client    SnapshotClient
		wait      time.Duration
		longPolls bool
	}{
		{"ok/long poll", cp, time.Minute, true},
		{"ok/no wait", cp, 0, false},
		{"ok/client without long poll", cp.fakeControlPlane, time.Minute, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &ControlPlaneSource{Client: tt.client, Name: "partners", Wait: tt.wait}
			if got := src.LongPolls(); got != tt.longPolls {
				t.Fatalf("LongPolls() = %v, want %v", got, tt.longPolls)
			}
			if _, _, err := src.Load(t.Context()); err != nil {
				t.Fatalf("first Load: %v", err)
			}
			watches := cp.watches.Load()
			res := loadAsync(t, src)
			if !tt.longPolls {
				// An unchanged store answers at once.
				select {
				case r := <-res:
					if r.err != nil {
						t.Fatal(r.err)
					}
				case <-time.After(2 * time.Second):
					t.Fatal("a plain poll waited")
				}
				if cp.watches.Load() != watches {
					t.Error("a plain poll was a long poll")
				}
				return
			}
			select {
			case r := <-res:
				t.Fatalf("the long poll of an unchanged store returned at once: %+v", r)
			case <-time.After(100 * time.Millisecond):
			}
			cp.publish(1, []*x509.Certificate{inter.cert}, [][]byte{crl(doomed.cert.SerialNumber)})
			var ver string
			select {
			case r := <-res:
				if r.err != nil {
					t.Fatal(r.err)
				}
				ver = r.version
			case <-time.After(2 * time.Second):
				t.Fatal("the long poll did not return on a change")
			}
			if _, err := src.v.Verify(doomed.chain, time.Now()); err == nil {
				t.Error("the revoked client passes after the long poll returned")
			}

			// Invalidate ends a long poll under way with a whole fetch.
			_, _, before := cp.counts()
			res = loadAsync(t, src)
			time.Sleep(50 * time.Millisecond)
			src.Invalidate()
			select {
			case r := <-res:
				if r.err != nil || r.version != ver {
					t.Fatalf("Load ended by Invalidate: %+v, want version %s", r, ver)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("Invalidate did not end the long poll")
			}
			if _, _, after := cp.counts(); after != before+1 {
				t.Errorf("Invalidate: %d requests without an ETag, want 1", after-before)
			}
		})
	}
}
