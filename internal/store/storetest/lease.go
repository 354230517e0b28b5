package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/store"
)

// leaseCases check store.Leaser: one holder at a time per name, Release
// frees the lease at once, and a held lease is not lost by itself.
func leaseCases() []testCase {
	return []testCase{
		{"ok/one holder per name", func(t *testing.T, s store.Store) {
			h1, err := s.TryLease(ctx(t), "jobs")
			must(t, err, "first TryLease")
			t.Cleanup(h1.Release)
			_, err = s.TryLease(ctx(t), "jobs")
			wantErr(t, err, store.ErrLeaseHeld, "second TryLease of a held lease")
			h2, err := s.TryLease(ctx(t), "other")
			must(t, err, "TryLease of another name")
			h2.Release()
		}},
		{"ok/release frees the lease", func(t *testing.T, s store.Store) {
			h1, err := s.TryLease(ctx(t), "jobs")
			must(t, err, "first TryLease")
			h1.Release()
			h1.Release() // a second Release does nothing
			select {
			case <-h1.Lost():
			default:
				t.Fatal("Lost is not closed after Release")
			}
			h2, err := s.TryLease(ctx(t), "jobs")
			must(t, err, "TryLease after Release")
			h2.Release()
		}},
		{"ok/held lease is kept", func(t *testing.T, s store.Store) {
			h, err := s.TryLease(ctx(t), "jobs")
			must(t, err, "TryLease")
			t.Cleanup(h.Release)
			// Longer than a backend's check of its connection.
			select {
			case <-h.Lost():
				t.Fatal("a held lease was lost with nothing wrong")
			case <-time.After(1500 * time.Millisecond):
			}
		}},
		{"fail/cancelled context", func(t *testing.T, s store.Store) {
			c, cancel := context.WithCancel(ctx(t))
			cancel()
			_, err := s.TryLease(c, "jobs")
			wantErr(t, err, context.Canceled, "TryLease with a cancelled context")
			h, err := s.TryLease(ctx(t), "jobs")
			must(t, err, "TryLease after a cancelled one")
			h.Release()
		}},
	}
}
