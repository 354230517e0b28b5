package storetest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/store"
)

// changeCases check store.Changes: a change published reaches every
// subscriber of the store; a subscriber reports first that it listens; a
// subscriber ends with its context.
func changeCases() []testCase {
	return []testCase{
		{"ok/every subscriber receives", func(t *testing.T, s store.Store) {
			const subs = 2
			var mu sync.Mutex
			got := make([]map[string]bool, subs)
			var wg sync.WaitGroup
			c, cancel := context.WithCancel(ctx(t))
			for i := range subs {
				got[i] = map[string]bool{}
				wg.Go(func() {
					err := s.SubscribeChanges(c, func(key string) {
						mu.Lock()
						got[i][key] = true
						mu.Unlock()
					})
					if err != nil {
						t.Errorf("SubscribeChanges: %v", err)
					}
				})
			}
			defer func() { cancel(); wg.Wait() }()
			// Delivery is best effort and a subscriber may not listen yet:
			// publish until both have it.
			deadline := time.Now().Add(10 * time.Second)
			for {
				must(t, s.PublishChange(ctx(t), "ca-1"), "PublishChange")
				mu.Lock()
				done := got[0]["ca-1"] && got[1]["ca-1"]
				mu.Unlock()
				if done {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("subscribers got %v, want ca-1 in each", got)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}},
		{"ok/start of listening reported first", func(t *testing.T, s store.Store) {
			// A change published before the subscriber listens reaches no
			// one; the subscriber must be told before anything else that
			// it may have missed some, whichever store it is.
			must(t, s.PublishChange(ctx(t), "ca-before"), "PublishChange")
			c, cancel := context.WithCancel(ctx(t))
			first := make(chan string, 1)
			done := make(chan error, 1)
			go func() {
				done <- s.SubscribeChanges(c, func(key string) {
					select {
					case first <- key:
					default:
					}
				})
			}()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("SubscribeChanges: %v", err)
				}
			}()
			select {
			case key := <-first:
				if key != "" {
					t.Errorf("first call of fn got %q, want \"\" (the start of listening)", key)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("SubscribeChanges did not report that it listens")
			}
		}},
		{"ok/subscriber ends with its context", func(t *testing.T, s store.Store) {
			c, cancel := context.WithCancel(ctx(t))
			done := make(chan error, 1)
			go func() { done <- s.SubscribeChanges(c, func(string) {}) }()
			time.Sleep(50 * time.Millisecond)
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("SubscribeChanges after cancel: %v, want nil", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("SubscribeChanges did not return after its context ended")
			}
		}},
		{"fail/key too long", func(t *testing.T, s store.Store) {
			err := s.PublishChange(ctx(t), strings.Repeat("k", store.MaxChangeKey+1))
			if !fault.Is(err, fault.Invalid) {
				t.Errorf("PublishChange of a long key: %v, want fault.Invalid", err)
			}
		}},
		{"fail/cancelled context", func(t *testing.T, s store.Store) {
			c, cancel := context.WithCancel(ctx(t))
			cancel()
			if err := s.PublishChange(c, "ca-1"); !errors.Is(err, context.Canceled) {
				t.Errorf("PublishChange with a cancelled context: %v, want context.Canceled", err)
			}
		}},
	}
}
