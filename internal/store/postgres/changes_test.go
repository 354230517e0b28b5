package postgres

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestChangesAcrossNodes plays two nodes on one database: the subscriber
// reports with "" that it listens, then a change published by one node
// reaches the other; when the listener's session is killed, the subscriber
// listens again, reports the gap with another "", and receives the changes
// published after it. Quiet periods longer than changesCheck keep the
// session.
func TestChangesAcrossNodes(t *testing.T) {
	old := changesCheck
	changesCheck = 300 * time.Millisecond // not parallel: no other test reads it meanwhile
	t.Cleanup(func() { changesCheck = old })

	schema := testSchema(t)
	open := func() *DB {
		t.Helper()
		db, err := OpenConfig(context.Background(), testConfig(schema))
		if err != nil {
			t.Fatalf("OpenConfig: %v", err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	a, b := open(), open()
	var mu sync.Mutex
	var got []string
	count := func(key string) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, k := range got {
			if k == key {
				n++
			}
		}
		return n
	}
	has := func(key string) bool { return count(key) > 0 }
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- b.SubscribeChanges(ctx, func(key string) {
			mu.Lock()
			got = append(got, key)
			mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("SubscribeChanges: %v", err)
		}
	})
	publishUntil := func(key string, want func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !want() {
			if err := a.PublishChange(t.Context(), key); err != nil {
				t.Fatalf("PublishChange: %v", err)
			}
			if time.Now().After(deadline) {
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("node b received %q, not %q", got, key)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	publishUntil("ca-1", func() bool { return has("ca-1") })
	mu.Lock()
	if len(got) == 0 || got[0] != "" {
		t.Errorf("node b received %q, want the start of listening (\"\") first", got)
	}
	mu.Unlock()

	// Quiet for longer than changesCheck: the session is checked and kept.
	time.Sleep(3 * changesCheck)
	if n := count(""); n != 1 {
		t.Fatalf("%d starts of listening reported, want 1: a quiet period was reported as a gap", n)
	}

	// Kill node b's listening session.
	var n int
	err := adminPool(t).QueryRow(t.Context(), "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
		listenerName(schema)).Scan(&n)
	if err != nil || n != 1 {
		t.Fatalf("terminate the listener: %d sessions, %v", n, err)
	}
	publishUntil("ca-2", func() bool { return count("") == 2 && has("ca-2") })
}
