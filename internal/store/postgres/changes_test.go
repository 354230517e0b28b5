package postgres

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestChangesAcrossNodes plays two nodes on one database: a change
// published by one reaches the other; when the listener's session is
// killed, the subscriber listens again, reports the gap with "", and
// receives the changes published after it. Quiet periods longer than
// changesCheck keep the session.
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
	has := func(key string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, k := range got {
			if k == key {
				return true
			}
		}
		return false
	}
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

	// Quiet for longer than changesCheck: the session is checked and kept.
	time.Sleep(3 * changesCheck)
	if has("") {
		t.Fatal("a quiet period was reported as a gap")
	}

	// Kill node b's listening session.
	var n int
	err := adminPool(t).QueryRow(t.Context(), "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
		listenerName(schema)).Scan(&n)
	if err != nil || n != 1 {
		t.Fatalf("terminate the listener: %d sessions, %v", n, err)
	}
	publishUntil("ca-2", func() bool { return has("") && has("ca-2") })
}
