package server

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trustgate/trustgate/internal/store"
)

// jobsLease is the name of the lease under which the singleton jobs run.
const jobsLease = "jobs"

// DefaultLeaseRetry is how often a node that does not hold the lease tries
// to take it: with a holder's death freeing the lease at once (see
// postgres.DB.TryLease), another node takes over within about this long.
const DefaultLeaseRetry = time.Second

// Singleton runs a control plane's singleton jobs (the revocation
// publisher's periodic work: republishing CRLs, refreshing OCSP answers,
// rotating responder certificates; later managed renewal and
// webhook delivery) on exactly one node of those that share a store: the
// one holding the store's lease.
// Every node runs a Singleton; the one that takes the lease starts the
// jobs, and when it loses the lease (its database session broke) it stops
// them, so that the node that takes the lease next may start them without
// both running at once. On SQLite the one node always holds it.
//
// Build one with [NewSingleton]; its zero value is not usable.
type Singleton struct {
	leaser store.Leaser
	name   string
	retry  time.Duration
	log    *slog.Logger

	held     prometheus.Gauge
	acquired prometheus.Counter
}

// SingletonConfig configures a Singleton.
type SingletonConfig struct {
	// Leaser hands out the lease; the store.
	Leaser store.Leaser
	// Name is the lease's name; "" means "jobs".
	Name string
	// Retry is how often to try to take the lease when another node holds
	// it or the store cannot be reached; 0 means DefaultLeaseRetry.
	Retry time.Duration
	// Logger receives lease changes; nil discards them.
	Logger *slog.Logger
	// Registerer, when set, gets trustgate_lease_held (1 while this node
	// holds the lease) and trustgate_lease_acquired_total.
	Registerer prometheus.Registerer
}

// NewSingleton returns a Singleton and registers its metrics.
func NewSingleton(cfg SingletonConfig) (*Singleton, error) {
	if cfg.Leaser == nil {
		return nil, errors.New("singleton: Leaser is required")
	}
	if cfg.Name == "" {
		cfg.Name = jobsLease
	}
	if cfg.Retry <= 0 {
		cfg.Retry = DefaultLeaseRetry
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	labels := prometheus.Labels{"lease": cfg.Name}
	s := &Singleton{
		leaser: cfg.Leaser, name: cfg.Name, retry: cfg.Retry, log: cfg.Logger,
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "trustgate_lease_held", ConstLabels: labels,
			Help: "1 while this node holds the lease and runs the singleton jobs, else 0.",
		}),
		acquired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "trustgate_lease_acquired_total", ConstLabels: labels,
			Help: "How many times this node took the lease.",
		}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.held, s.acquired} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// Run runs jobs whenever this node holds the lease, until ctx ends; then it
// returns nil. jobs gets a context that ends when the lease is lost or ctx
// ends, and must return soon after: Run waits for it before it gives the
// lease up, so that the jobs of two nodes never overlap on this node's
// side. jobs returning by itself gives the lease up too, to be taken again
// after the retry interval.
func (s *Singleton) Run(ctx context.Context, jobs func(ctx context.Context)) error {
	lastErr := ""
	for {
		h, err := s.leaser.TryLease(ctx, s.name)
		switch {
		case err == nil:
			lastErr = ""
			s.hold(ctx, h, jobs)
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, store.ErrLeaseHeld):
			lastErr = ""
		case err.Error() != lastErr:
			// Logged once per reason: a store that is down fails every try.
			lastErr = err.Error()
			s.log.Warn("cannot try the singleton-jobs lease; retrying", "lease", s.name, "err", err)
		}
		t := time.NewTimer(s.retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// hold runs jobs while h is held, then releases h.
func (s *Singleton) hold(ctx context.Context, h store.Held, jobs func(context.Context)) {
	s.held.Set(1)
	s.acquired.Inc()
	s.log.Info("lease taken: running the singleton jobs on this node", "lease", s.name)
	jctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		jobs(jctx)
	}()
	select {
	case <-h.Lost():
		s.log.Warn("lease lost: stopping the singleton jobs; another node may take over", "lease", s.name)
	case <-ctx.Done():
	case <-done:
	}
	cancel()
	<-done
	h.Release()
	s.held.Set(0)
}
