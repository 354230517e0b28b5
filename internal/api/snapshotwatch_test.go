package api

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSnapshotWatchSharesOneCheckLoop: many long polls of one store cost
// one computation per check period, not one per waiter; a change wakes
// them all; a failing computation counts as no change; and the loop stops
// once nobody waits.
func TestSnapshotWatchSharesOneCheckLoop(t *testing.T) {
	var calls atomic.Int64
	var mu sync.Mutex
	etag, fail := `"1"`, false
	w := &snapshotWatch{every: 10 * time.Millisecond, etag: func(context.Context, string) (string, error) {
		calls.Add(1)
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return "", errors.New("store down")
		}
		return etag, nil
	}}
	set := func(e string, f bool) {
		mu.Lock()
		etag, fail = e, f
		mu.Unlock()
	}

	const waiters = 50
	woke := make(chan time.Duration, waiters)
	start := time.Now()
	for range waiters {
		go func() {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			w.wait(ctx, "partners", `"1"`)
			woke <- time.Since(start)
		}()
	}
	time.Sleep(100 * time.Millisecond)
	set("", true) // errors are no change
	time.Sleep(50 * time.Millisecond)
	if n := calls.Load(); n > 30 {
		t.Errorf("%d computations in 150 ms for %d waiters, want one loop's (about 15)", n, waiters)
	}
	select {
	case d := <-woke:
		t.Fatalf("a waiter woke after %s with no change", d)
	default:
	}
	set(`"2"`, false)
	for range waiters {
		select {
		case <-woke:
		case <-time.After(2 * time.Second):
			t.Fatal("a change did not wake every waiter")
		}
	}
	// A waiter that holds an old ETag returns at once.
	w.waitFor(t, `"1"`)

	deadline := time.Now().Add(2 * time.Second)
	for {
		w.mu.Lock()
		n := len(w.topics)
		w.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the check loop goes on with nobody waiting")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitFor waits with etag and fails the test unless it returns within 1 s.
func (w *snapshotWatch) waitFor(t *testing.T, etag string) {
	t.Helper()
	done := make(chan struct{})
	go func() { w.wait(t.Context(), "partners", etag); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("wait with an outdated ETag did not return at once")
	}
}

// TestSnapshotWatchStop: closing stop (the server shutting down) ends the
// waits under way and those that come after.
func TestSnapshotWatchStop(t *testing.T) {
	stop := make(chan struct{})
	w := &snapshotWatch{every: 10 * time.Millisecond, stop: stop,
		etag: func(context.Context, string) (string, error) { return `"1"`, nil }}
	done := make(chan struct{})
	go func() { w.wait(t.Context(), "partners", `"1"`); close(done) }()
	select {
	case <-done:
		t.Fatal("a wait on an unchanged store returned before stop")
	case <-time.After(50 * time.Millisecond):
	}
	close(stop)
	for _, c := range []chan struct{}{done, make(chan struct{})} {
		if c != done {
			go func() { w.wait(t.Context(), "partners", `"1"`); close(c) }()
		}
		select {
		case <-c:
		case <-time.After(time.Second):
			t.Fatal("stop did not end the wait")
		}
	}
}
