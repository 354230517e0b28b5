package server

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/trustgate/trustgate/internal/store/sqlite"
)

// TestSingletonOneNodeAtATime runs two Singletons on one store, as two
// nodes would: exactly one runs the jobs, and when it stops the other
// takes over after one retry.
func TestSingletonOneNodeAtATime(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "trustgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	var running atomic.Int32 // how many nodes run the jobs now
	type node struct {
		s      *Singleton
		runs   atomic.Int32
		cancel context.CancelFunc
		done   chan struct{}
	}
	start := func(t *testing.T) *node {
		t.Helper()
		reg := prometheus.NewRegistry()
		s, err := NewSingleton(SingletonConfig{Leaser: st, Retry: 50 * time.Millisecond, Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		n := &node{s: s, done: make(chan struct{})}
		ctx, cancel := context.WithCancel(t.Context())
		n.cancel = cancel
		go func() {
			defer close(n.done)
			s.Run(ctx, func(ctx context.Context) {
				if running.Add(1) > 1 {
					t.Error("two nodes run the singleton jobs at once")
				}
				n.runs.Add(1)
				<-ctx.Done()
				running.Add(-1)
			})
		}()
		t.Cleanup(func() { cancel(); <-n.done })
		return n
	}
	a := start(t)
	waitFor(t, 5*time.Second, "node a runs the jobs", func() bool { return a.runs.Load() == 1 })
	b := start(t)
	time.Sleep(200 * time.Millisecond) // several of b's retries
	if b.runs.Load() != 0 {
		t.Fatal("node b runs the jobs while a holds the lease")
	}
	if got := value(t, a.s.held); got != 1 {
		t.Errorf("node a: trustgate_lease_held = %v, want 1", got)
	}
	a.cancel()
	<-a.done
	if got := value(t, a.s.held); got != 0 {
		t.Errorf("stopped node a: trustgate_lease_held = %v, want 0", got)
	}
	waitFor(t, 5*time.Second, "node b takes over", func() bool { return b.runs.Load() == 1 })
	if got := value(t, b.s.acquired); got != 1 {
		t.Errorf("node b: trustgate_lease_acquired_total = %v, want 1", got)
	}
}

// value reads a gauge or counter.
func value(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Gauge != nil {
		return m.Gauge.GetValue()
	}
	return m.Counter.GetValue()
}
