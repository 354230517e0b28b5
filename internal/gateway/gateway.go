// Package gateway is Trustgate's mTLS-terminating reverse proxy, modelled on
// the mutual TLS of an AWS Application Load Balancer: listeners in the
// modes off, passthrough and verify; the X-Amzn-Mtls-Clientcert-* headers
// (and optionally Envoy's X-Forwarded-Client-Cert) for backends; routes by
// host and path prefix with per-route identity rules; JSON connection and
// access logs; Prometheus metrics; and certificates, trust stores and CRLs
// reloaded without dropping connections. A listener's certificate comes
// from files, follows the control plane's managed renewals of it, or is
// issued and renewed by the control plane for keys generated here
// (certificate.issue, kept by the agent package's worker).
//
// Client certificates are verified in tls.Config.VerifyConnection, which
// crypto/tls calls for every handshake including resumed sessions, against
// a compiled verify.Verifier held in an atomic pointer: a new trust store
// or CRL applies to the next handshake, and connections already
// established keep going. See docs/gateway.md.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/trustgate/trustgate/internal/agent"
	"github.com/trustgate/trustgate/internal/config"
)

// Config is what New needs. Spec is the YAML configuration; the other
// fields are dependencies, and nil gets a sane default.
type Config struct {
	// Spec is the gateway configuration; New applies its defaults and
	// validates it.
	Spec config.Gateway
	// Logger is the gateway's own log (reloads, backend errors, panics);
	// nil means slog.Default().
	Logger *slog.Logger
	// ConnectionLog and AccessLog, when set, replace the destinations
	// named in Spec (tests capture the logs this way).
	ConnectionLog io.Writer
	AccessLog     io.Writer
	// Registry receives the gateway's metrics and is served on
	// Spec.MetricsListen; nil means a new registry with the Go and process
	// collectors.
	Registry *prometheus.Registry
	// Now is the clock of certificate and CRL checks; nil means time.Now.
	Now func() time.Time
	// PollInterval is how often certificate, key, CA and CRL files are
	// checked for changes; 0 means one second.
	PollInterval time.Duration
	// HTTPClient fetches CRL URLs; nil means a client with a 30 s timeout.
	HTTPClient *http.Client
	// TrustSources replaces, by listener name, the trust store a verify
	// listener's configuration names (files, or a trust store of the
	// control plane). A source must compile its Verifiers with
	// VerifyOptions(listener).
	TrustSources map[string]TrustSource
}

// Gateway runs the listeners of one configuration. New binds the sockets,
// Run serves until its context ends, Reload re-reads files, Close releases
// what Run did not.
type Gateway struct {
	cfg       Config
	spec      config.Gateway
	log       *slog.Logger
	connLog   *slog.Logger
	accessLog *slog.Logger
	sinks     []*logSink
	reg       *prometheus.Registry
	m         *metrics
	listeners []*listener
	// controlPlane is the API client of the listeners whose trust store
	// is named; nil when none is.
	controlPlane SnapshotClient
	// certificates answers the listeners that follow the renewals of
	// their certificate (certificate.follow_renewals); nil when none does.
	certificates CertificateClient
	// enroller keeps the gateway's own client certificate for the API
	// fresh (control_plane.enroll); nil without one.
	enroller *agent.Agent
	// issuing has the certificates of the listeners in issue mode
	// (certificate.issue) issued, and issuer keeps them fresh; issueCerts
	// are those listeners by the issuer's certificate name. nil when no
	// listener is in issue mode.
	issuing    CertificateIssuer
	issuer     *agent.Agent
	issueCerts map[string]config.GatewayListener

	metricsLn  net.Listener
	metricsSrv *http.Server

	reloadMu  sync.Mutex
	closeOnce sync.Once
}

// New loads every certificate and trust store (fetching CRL URLs), and
// binds every listener; any failure is returned and nothing stays open.
func New(ctx context.Context, cfg Config) (_ *Gateway, err error) {
	spec := cfg.Spec
	spec.ApplyDefaults()
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("gateway configuration: %w", err)
	}
	g := &Gateway{cfg: cfg, spec: spec, log: cfg.Logger, reg: cfg.Registry}
	if g.log == nil {
		g.log = slog.Default()
	}
	defer func() {
		if err != nil {
			g.Close()
		}
	}()
	if g.connLog, err = g.openLog(cfg.ConnectionLog, spec.ConnectionLog); err != nil {
		return nil, err
	}
	if g.accessLog, err = g.openLog(cfg.AccessLog, spec.AccessLog); err != nil {
		return nil, err
	}
	if g.reg == nil {
		g.reg = prometheus.NewRegistry()
		g.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if g.m, err = newMetrics(g.reg, g); err != nil {
		return nil, err
	}
	for _, ls := range spec.Listeners {
		named := ls.MTLS.Mode == config.MTLSVerify && ls.MTLS.TrustStore.Name != "" && cfg.TrustSources[ls.Name] == nil
		if named || ls.Certificate.FollowRenewals || ls.Certificate.Issue.Enabled() {
			if spec.ControlPlane.Enroll.Enabled() {
				if g.enroller, err = g.enrol(ctx); err != nil {
					return nil, err
				}
			}
			c, err := newControlPlaneClient(spec.ControlPlane)
			if err != nil {
				return nil, err
			}
			g.controlPlane, g.certificates, g.issuing = c, c, c
			break
		}
	}
	if spec.IssuesCertificates() {
		if g.issuer, err = g.newIssuer(ctx); err != nil {
			return nil, err
		}
	}
	for _, ls := range spec.Listeners {
		l, err := newListener(ctx, g, ls)
		if err != nil {
			return nil, err
		}
		g.listeners = append(g.listeners, l)
	}
	if spec.MetricsListen != "" {
		if g.metricsLn, err = (&net.ListenConfig{}).Listen(ctx, "tcp", spec.MetricsListen); err != nil {
			return nil, fmt.Errorf("metrics_listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(g.reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
		g.metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute, ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelDebug)}
	}
	return g, nil
}

func (g *Gateway) openLog(w io.Writer, spec string) (*slog.Logger, error) {
	if w == nil && spec == "off" {
		// Not even formatted: a discarded JSON line still costs its encoding.
		return slog.New(slog.DiscardHandler), nil
	}
	if w == nil {
		s, err := openSink(spec, os.Stderr)
		if err != nil {
			return nil, err
		}
		g.sinks = append(g.sinks, s)
		w = s
	}
	return slog.New(slog.NewJSONHandler(w, nil)), nil
}

func (g *Gateway) now() time.Time {
	if g.cfg.Now != nil {
		return g.cfg.Now()
	}
	return time.Now()
}

// Addr returns the address a listener is bound to (its port when the
// configuration said :0), or nil for an unknown name.
func (g *Gateway) Addr(listener string) net.Addr {
	for _, l := range g.listeners {
		if l.name == listener {
			return l.hs.Addr()
		}
	}
	return nil
}

// MetricsAddr returns the address of the metrics listener, or nil.
func (g *Gateway) MetricsAddr() net.Addr {
	if g.metricsLn == nil {
		return nil
	}
	return g.metricsLn.Addr()
}

// Run serves until ctx is done, then shuts down gracefully: listeners stop
// accepting, idle connections close, and requests in flight get up to
// timeouts.shutdown to finish before the remaining connections are cut.
// It returns nil after a graceful stop, or the error that stopped a listener.
func (g *Gateway) Run(ctx context.Context) error {
	defer g.Close()
	bg, stopLoops := context.WithCancel(context.Background())
	var loops sync.WaitGroup
	errc := make(chan error, len(g.listeners)+1)
	for _, l := range g.listeners {
		go l.hs.acceptLoop()
		go func() {
			if err := l.srv.Serve(l.hs); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("listener %s: %w", l.name, err)
			}
		}()
		if l.trust != nil {
			loops.Add(1)
			go func() { defer loops.Done(); g.pollTrust(bg, l) }()
		}
		if l.spec.Certificate.FollowRenewals {
			loops.Add(1)
			go func() { defer loops.Done(); g.followRenewals(bg, l) }()
		}
	}
	if g.metricsSrv != nil {
		go func() {
			if err := g.metricsSrv.Serve(g.metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("metrics: %w", err)
			}
		}()
	}
	loops.Add(1)
	go func() { defer loops.Done(); g.pollFiles(bg) }()
	if g.enroller != nil {
		loops.Add(1)
		go func() { defer loops.Done(); g.enroller.Run(bg) }()
	}
	if g.issuer != nil {
		loops.Add(1)
		go func() { defer loops.Done(); g.issuer.Run(bg) }()
	}
	g.log.Info("gateway: serving", "listeners", len(g.listeners))

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	stopLoops()
	g.shutdown()
	loops.Wait()
	g.log.Info("gateway: stopped")
	return runErr
}

// shutdown drains every server within timeouts.shutdown, then closes what remains.
func (g *Gateway) shutdown() {
	sctx, cancel := context.WithTimeout(context.Background(), time.Duration(g.spec.Timeouts.Shutdown))
	defer cancel()
	var wg sync.WaitGroup
	for _, l := range g.listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.srv.Shutdown(sctx); err != nil {
				g.log.Warn("gateway: connections still open at the end of the shutdown timeout; closing them", keyListener, l.name, keyError, err)
				l.srv.Close()
			}
			l.hs.Close()
			l.hs.wg.Wait()
		}()
	}
	if g.metricsSrv != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := g.metricsSrv.Shutdown(sctx); err != nil {
				g.metricsSrv.Close()
			}
		}()
	}
	wg.Wait()
}

// Reload re-reads every certificate and trust store now, even if the files
// seem unchanged, and reopens log files: what SIGHUP does. Errors are
// logged and returned; whatever failed to load keeps its previous state.
func (g *Gateway) Reload(ctx context.Context) error {
	var errs []error
	for _, s := range g.sinks {
		if err := s.reopen(); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, g.reloadCerts(true))
	for _, l := range g.listeners {
		if l.trust != nil {
			errs = append(errs, g.reloadTrust(ctx, l, true))
		}
	}
	err := errors.Join(errs...)
	if err == nil {
		g.log.Info("gateway: reloaded")
	}
	return err
}

// reloadCerts checks every listener and backend certificate.
func (g *Gateway) reloadCerts(force bool) error {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	var errs []error
	for _, l := range g.listeners {
		pairs := []*keyPair{l.cert}
		for _, r := range l.router.routes {
			if r.clientCert != nil {
				pairs = append(pairs, r.clientCert)
			}
		}
		for i, kp := range pairs {
			what := "certificate"
			reloadForce := force
			if i > 0 {
				what = "backend_certificate"
			} else if l.spec.Certificate.Issue.Enabled() && !force {
				// The gateway writes these files itself and swaps the
				// pair in when both are written (issued); a poll between
				// the key and the certificate would see a mismatch. Only
				// when that swap failed, and the listener serves another
				// certificate than the one written last, is it tried
				// again here, until it succeeds; and one issued not
				// valid yet is swapped in here once it is (swapDue).
				w, cur := l.written.Load(), kp.get()
				if w == nil || cur != nil && cur.Leaf != nil && cur.Leaf.Equal(w) || !swapDue(cur, w, g.now()) {
					continue
				}
				reloadForce = true
			}
			changed, err := kp.reload(reloadForce)
			switch {
			case err != nil:
				g.m.reloads.WithLabelValues(l.name, what, "error").Inc()
				g.log.Error("gateway: certificate reload failed; keeping the previous one", keyListener, l.name, keyError, err)
				errs = append(errs, fmt.Errorf("listener %s: %w", l.name, err))
			case changed:
				g.m.reloads.WithLabelValues(l.name, what, "changed").Inc()
				g.log.Info("gateway: certificate loaded", keyListener, l.name, "file", kp.certFile, "not_after", kp.notAfter())
			}
		}
	}
	return errors.Join(errs...)
}

func (g *Gateway) reloadTrust(ctx context.Context, l *listener, force bool) error {
	version, swapped, err := l.trust.refresh(ctx, force)
	if swapped {
		g.m.reloads.WithLabelValues(l.name, "trust_store", "changed").Inc()
		g.log.Info("gateway: trust store loaded", keyListener, l.name, "version", version, "crls", len(l.trust.current().CRLs()))
	}
	if err != nil && ctx.Err() != nil {
		// The gateway stops: a long poll cut short is no failure.
		return nil
	}
	if err != nil {
		g.m.reloads.WithLabelValues(l.name, "trust_store", "error").Inc()
		g.log.Error("gateway: trust store reload failed; keeping the previous one", keyListener, l.name, keyError, err)
		return fmt.Errorf("listener %s: %w", l.name, err)
	}
	return nil
}

func (g *Gateway) pollInterval() time.Duration {
	if g.cfg.PollInterval > 0 {
		return g.cfg.PollInterval
	}
	return time.Second
}

func (g *Gateway) pollFiles(ctx context.Context) {
	t := time.NewTicker(g.pollInterval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.reloadCerts(false)
		}
	}
}

// pollTrust runs one listener's trust source on its own goroutine, so a
// slow CRL download or control plane delays no other reload.
func (g *Gateway) pollTrust(ctx context.Context, l *listener) {
	if src, ok := l.trust.src.(*ControlPlaneSource); ok && src.LongPolls() {
		g.longPollTrust(ctx, l)
		return
	}
	t := time.NewTicker(l.trustPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.reloadTrust(ctx, l, false)
		}
	}
}

// longPollTrust refreshes a listener's trust store from the control plane
// by long polls, back to back: each returns when the snapshot changed or
// after control_plane.long_poll. After a failed poll it waits
// control_plane.poll_interval, so that a control plane that answers
// errors at once is not asked in a tight loop; so it does after a second
// 304 in a row that came back well before the wait, from a control-plane
// node that does not hold long polls (an older version, or a proxy in
// between). One early 304 is asked again at once: a node that shuts down
// answers its long polls so.
func (g *Gateway) longPollTrust(ctx context.Context, l *listener) {
	wait := l.trust.src.(*ControlPlaneSource).Wait
	wasEarly := false
	for ctx.Err() == nil {
		start := time.Now()
		g.reloadTrust(ctx, l, false)
		result, _ := l.lastPoll.Load().(string)
		early := result == PollNotModified && time.Since(start) < wait/2
		if result != PollError && !(early && wasEarly) {
			wasEarly = early
			continue
		}
		wasEarly = false
		select {
		case <-ctx.Done():
		case <-time.After(l.trustPoll):
		}
	}
}

// enrol sets up the agent that keeps the gateway's own client certificate
// (control_plane.enroll), and obtains the certificate now when the files
// hold none that is valid, or one due for renewal. A failure is logged,
// not returned: a gateway whose control plane is down starts from its
// snapshot files (control_plane.snapshot_dir), and the agent retries.
func (g *Gateway) enrol(ctx context.Context) (*agent.Agent, error) {
	cp := g.spec.ControlPlane
	a, err := agent.New(agent.Config{Spec: cp.Enroll.Agent(cp), Logger: g.log.With("component", "enroll"), Registry: g.reg})
	if err != nil {
		return nil, fmt.Errorf("control_plane.enroll: %w", err)
	}
	if err := a.RunOnce(ctx); err != nil {
		g.log.Error("gateway: cannot obtain its client certificate for the control plane; retrying in the background",
			"cert_file", cp.Enroll.CertFile, keyError, err)
	}
	return a, nil
}

// Close closes the sockets, backend connections and log files. Run calls
// it; call it yourself only when Run was never called.
func (g *Gateway) Close() error {
	g.closeOnce.Do(func() {
		for _, l := range g.listeners {
			l.hs.Close()
			l.router.close()
		}
		if g.metricsLn != nil {
			g.metricsLn.Close()
		}
		for _, s := range g.sinks {
			s.close()
		}
		// Their loops are done (Run waits for them): the files they
		// manage are free for another process.
		for _, a := range []*agent.Agent{g.enroller, g.issuer} {
			if a != nil {
				a.Close()
			}
		}
	})
	return nil
}
