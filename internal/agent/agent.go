// Package agent is Trustgate's renewer: it keeps one or more certificates
// of a workload fresh. It generates each private key on the host (a key
// never leaves it), enrols the first time with a bootstrap token
// (POST /v1/enroll), and renews over mTLS with the current certificate
// (POST /v1/renew), with a new key every time; or, for a caller that
// brings its own request (Config.Issue: the gateway's listener
// certificates, through POST /v1/certificates), has each CSR issued so.
// It writes certificate, key,
// chain and bundle files atomically (internal/atomicfile) and runs a
// reload command or signals a process after each renewal. It renews at a
// fraction of the lifetime with jitter, and when the control plane cannot
// be reached it keeps the current files and retries with capped
// exponential backoff. Its decisions are pure functions of the time
// (Policy), and it reports its state on a health endpoint and as
// Prometheus metrics.
//
// The agent depends only on the API client and leaf packages, never on the
// store or the CA: it is small and holds no state beyond its files.
package agent

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/atomicfile"
	"github.com/trustgate/trustgate/internal/config"
	"github.com/trustgate/trustgate/internal/pki"
)

// Clock is the agent's time: the current instant and a timer. Tests inject
// one they move by hand.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Config configures an Agent.
type Config struct {
	// Spec is the agent configuration; New applies its defaults and
	// validates it.
	Spec config.Agent
	// Clock is the time of every decision; nil means the system clock.
	Clock Clock
	// Rand returns a number in [0, 1) for jitter; nil means math/rand/v2.
	Rand func() float64
	// Logger receives the agent's log; nil means slog.Default(). Keys and
	// tokens are never logged.
	Logger *slog.Logger
	// Registry receives the agent's metrics and is served on
	// Spec.HealthListen; nil means a new registry.
	Registry *prometheus.Registry
	// RequestTimeout bounds one call to the control plane; default 30 s.
	RequestTimeout time.Duration
	// HookTimeout bounds one run of an on_renew command; default 1 min.
	HookTimeout time.Duration
	// Issue, when set, obtains every certificate of this agent in place of
	// enrolment and renewal: it is given the certificate's name and a CSR
	// for a key generated here (a new one each time), and returns the
	// control plane's answer, which the agent checks against the key and
	// writes as it writes any other. Tokens are then not used. The gateway
	// obtains its listeners' certificates so, through POST /v1/certificates.
	Issue func(ctx context.Context, name, csrPEM string) (*apiv1.IssueResponse, error)
	// Obtained, when set, is called after a new certificate is written to
	// its files, before the reload hook; an error is reported as a failed
	// reload (logged and counted), not as a failure to obtain.
	Obtained func(name string, leaf *x509.Certificate) error
	// Failed, when set, is told of each failed attempt to obtain a
	// certificate, after the agent logged and counted it.
	Failed func(name string, err error)
	// Check, when set, is asked by Run whether a valid certificate found
	// in the files (at start, or put there by someone else) still
	// matches what is asked for; an error makes it due at once, and it
	// is kept and served meanwhile. It is asked once per certificate;
	// not by RunOnce, which must not wait on it. An error that wraps
	// ErrCheckUnknown says it could not tell (what it checks against
	// could not be had): the certificate is not stale, and Check is asked
	// again after at most the longest backoff.
	Check func(ctx context.Context, name string, leaf *x509.Certificate) error
}

// ErrCheckUnknown is wrapped by an error of Config.Check that could not
// tell whether the certificate matches.
var ErrCheckUnknown = errors.New("cannot tell whether the certificate matches the configuration")

// RefusedError is a failure after the control plane issued a certificate:
// its answer was refused (for another key, unusable, or refused by
// Config.Issue's own checks). Such a failure is retried only after
// Policy.RefusedBackoff, since each attempt costs a certificate.
type RefusedError struct{ Err error }

func (e *RefusedError) Error() string { return e.Err.Error() }
func (e *RefusedError) Unwrap() error { return e.Err }

// Agent keeps certificates fresh. Run or RunOnce drive it, one at a time;
// Status and Handler are safe to call while they run. It holds a lock on
// the files of each certificate from New to Close.
type Agent struct {
	cfg     Config
	workers []*worker
	m       *metrics
}

// New checks the configuration and returns an Agent.
func New(cfg Config) (*Agent, error) {
	cfg.Spec.ApplyDefaults()
	if err := cfg.Spec.Validate(); err != nil {
		return nil, fmt.Errorf("agent configuration: %w", err)
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	if cfg.HookTimeout == 0 {
		cfg.HookTimeout = time.Minute
	}
	a := &Agent{cfg: cfg, m: newMetrics(cfg.Registry)}
	for _, spec := range cfg.Spec.Certificates {
		kt, err := pki.ParseKeyType(spec.KeyType)
		if err != nil {
			return nil, fmt.Errorf("agent configuration: certificate %q: key_type: %w", spec.Name, err)
		}
		w := &worker{
			a: a, spec: spec, keyType: kt, log: cfg.Logger.With("certificate", spec.Name),
			policy: Policy{RenewAt: spec.RenewAt, Jitter: min(DefaultJitter, spec.RenewAt/2),
				InitialBackoff: time.Duration(cfg.Spec.Retry.Initial), MaxBackoff: time.Duration(cfg.Spec.Retry.Max),
				RefusedBackoff: max(DefaultRefusedBackoff, time.Duration(cfg.Spec.Retry.Max))},
			u: cfg.Rand(),
		}
		w.status.Name, w.status.CertFile = spec.Name, spec.CertFile
		a.workers = append(a.workers, w)
	}
	// The files are this agent's until Close: another process on them
	// (a second agent, an agent --once from cron beside the daemon)
	// would remove the temporary files and the kept key of a renewal
	// under way, and could leave no valid pair.
	for _, w := range a.workers {
		l, err := atomicfile.TryLock(w.spec.KeyFile)
		if err != nil {
			a.Close()
			return nil, fmt.Errorf("certificate %q: another agent or gateway manages its files: %w", w.spec.Name, err)
		}
		w.lock = l
	}
	// The agent starts: no write of its files is under way, and a
	// temporary file left by one that was cut short may hold a key.
	for _, w := range a.workers {
		w.removeTemps()
	}
	return a, nil
}

// Close releases the locks New took on the files of every certificate
// (see atomicfile.TryLock). Call it once Run or RunOnce has returned.
func (a *Agent) Close() error {
	var errs []error
	for _, w := range a.workers {
		errs = append(errs, w.lock.Unlock())
		w.lock = nil
	}
	return errors.Join(errs...)
}

// Run keeps every certificate fresh, and serves the health endpoint when
// one is configured, until ctx ends. It returns nil when ctx ends; an
// error only when the health listener cannot be opened.
func (a *Agent) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	if addr := a.cfg.Spec.HealthListen; addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("health listener: %w", err)
		}
		srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.cfg.Logger.Error("health endpoint stopped", "err", err)
			}
		}()
		a.cfg.Logger.Info("health endpoint listening", "address", ln.Addr().String())
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
			wg.Wait()
		}()
	}
	var ww sync.WaitGroup
	for _, w := range a.workers {
		ww.Add(1)
		go func() { defer ww.Done(); w.run(ctx) }()
	}
	ww.Wait()
	return nil
}

// RunOnce makes one pass for cron jobs and init containers: each
// certificate that is missing, invalid or due for renewal is obtained
// once, all of them at the same time (as Run does: an unreachable control
// plane costs one timeout, not one per certificate); the others are left
// alone. The error joins every failure, in configuration order.
func (a *Agent) RunOnce(ctx context.Context) error {
	errs := make([]error, len(a.workers))
	var wg sync.WaitGroup
	for i, w := range a.workers {
		now := a.cfg.Clock.Now()
		cur := w.load(now)
		if due := w.policy.Next(now, cur.Current, Failures{}, w.u); due.After(now) {
			w.log.Info("certificate is not due for renewal", "not_after", cur.NotAfter, "renew_at", due)
			w.setNext(due)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.attempt(ctx, cur); err != nil {
				errs[i] = fmt.Errorf("certificate %q: %w", w.spec.Name, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Status returns the state of every certificate, in configuration order.
func (a *Agent) Status() []Status {
	out := make([]Status, 0, len(a.workers))
	for _, w := range a.workers {
		out = append(out, w.snapshot())
	}
	return out
}
