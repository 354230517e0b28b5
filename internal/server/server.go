// Package server assembles the control plane: it opens the store, checks the
// master key, builds the CA, inventory, revocation, trust-store and token
// services, and serves the authenticated HTTPS API and the public plain-HTTP
// endpoints (CA certificates, CRLs, OCSP, health, metrics) until its context ends.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/trustgate/trustgate/internal/api"
	"github.com/trustgate/trustgate/internal/authz"
	"github.com/trustgate/trustgate/internal/ca"
	"github.com/trustgate/trustgate/internal/config"
	"github.com/trustgate/trustgate/internal/inventory"
	"github.com/trustgate/trustgate/internal/keystore"
	"github.com/trustgate/trustgate/internal/lifecycle"
	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/revocation"
	"github.com/trustgate/trustgate/internal/store"
	"github.com/trustgate/trustgate/internal/store/postgres"
	"github.com/trustgate/trustgate/internal/store/sqlite"
	"github.com/trustgate/trustgate/internal/truststore"
)

// metaCanary is the meta key of the master-key canary.
const metaCanary = "master_key_canary"

// ErrNotInitialized means the data directory has no database yet.
var ErrNotInitialized = errors.New("the data directory is not initialized (run `trustgate init --data DIR`)")

// Server is an assembled control plane.
type Server struct {
	Config    config.Server
	Store     store.Store
	CA        *ca.Service
	Inventory *inventory.Service
	Tokens    *authz.Tokens
	Access    *authz.Service
	// Bootstrap holds the enrolment tokens of /v1/tokens and /v1/enroll.
	Bootstrap  *authz.Bootstrap
	Revocation *revocation.Service
	// TrustStores follows the CAs' revocations through Revocation.
	TrustStores *truststore.Service
	// Lifecycle records expiry and renewal events and delivers them.
	Lifecycle *lifecycle.Service
	// Managed renews managed certificates (issued with managed: true).
	Managed *lifecycle.Managed
	// Jobs runs the singleton jobs (the revocation publisher's Run, the
	// lifecycle events' scan and delivery, managed renewal) while this node
	// holds the store's lease.
	Jobs     *Singleton
	Logger   *slog.Logger
	Registry *prometheus.Registry

	// feed carries revocations between the nodes sharing the store.
	feed  *revocationFeed
	ready atomic.Bool
	// draining is closed when Run begins to shut down: long polls of the
	// API answer at once instead of holding the shutdown up.
	draining     chan struct{}
	drainingOnce sync.Once
}

// Options are the dependencies a caller may inject.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time
	// Create allows creating a new database and master-key canary (init, dev).
	Create bool
}

// Open assembles a server from its configuration. It changes nothing on
// disk unless opts.Create is set: a missing or wrong master key is an error
// before the store is touched.
func Open(ctx context.Context, cfg config.Server, opts Options) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mk, err := keystore.LoadMasterKeyFile(cfg.MasterKeyFile)
	if err != nil {
		return nil, err
	}
	sealer, err := keystore.New(mk)
	clear(mk)
	if err != nil {
		return nil, err
	}
	st, err := openStore(ctx, cfg, opts.Create)
	if err != nil {
		return nil, err
	}
	if err := checkCanary(ctx, st, sealer, opts.Create); err != nil {
		st.Close()
		return nil, err
	}
	linter, err := pki.NewLinter()
	if err != nil {
		st.Close()
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// The CA service tells the revocation service of every change, and the
	// revocation service signs with the CA service's keys: rev is set
	// before either is used.
	var rev *revocation.Service
	var feed *revocationFeed
	var trust *truststore.Service
	casvc, err := ca.New(ca.Config{
		Store: st, Sealer: sealer, Linter: linter, PublicBaseURL: cfg.Public.BaseURL,
		Backdate: time.Duration(cfg.Issuance.Backdate), Now: opts.Now, Logger: log.With("component", "ca"),
		Revocations: ca.NotifyFunc(func(caID, serial string, at time.Time) { rev.Notify(caID, serial, at); feed.revoked(caID) }),
		// A rotated CA's successor joins the trust stores of the old one.
		Rotations: ca.RotatedFunc(func(ctx context.Context, old, successor *store.CA) ([]string, error) {
			return trust.CARotated(ctx, old, successor)
		}),
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	rev, err = revocation.New(revocation.Config{
		Store: st, Keys: casvc, Responders: casvc, BaseURL: cfg.Public.BaseURL,
		CRLValidity:  time.Duration(cfg.Revocation.CRLValidity),
		OCSPValidity: time.Duration(cfg.Revocation.OCSPValidity),
		KeepExpired:  cfg.Revocation.KeepExpiredOnCRL,
		Now:          opts.Now, Logger: log.With("component", "revocation"), Registerer: reg,
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	feed = newRevocationFeed(st, st.ListCAs, rev, log.With("component", "feed"))
	trust, err = truststore.New(truststore.Config{
		Store: st, CRLs: rev, Now: opts.Now, Logger: log.With("component", "truststore"), Registerer: reg,
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	limits := map[string]authz.RateLimit{}
	if a := cfg.Access; a.IssuePerMinute > 0 {
		limits["cert:Issue"] = authz.RateLimit{Rate: float64(a.IssuePerMinute) / 60, Burst: a.IssueBurst}
	}
	if a := cfg.Access; a.RevokePerMinute > 0 {
		limits["cert:Revoke"] = authz.RateLimit{Rate: float64(a.RevokePerMinute) / 60, Burst: a.RevokeBurst}
	}
	access := authz.New(authz.Config{Store: st, Limits: limits, OperatorCA: cfg.Access.OperatorCA, CertStore: st, Now: opts.Now})
	if ps, err := st.ListPrincipals(ctx); err != nil {
		st.Close()
		return nil, err
	} else if len(ps) == 0 && !opts.Create {
		// A data directory from before principals existed: its tokens
		// belong to "admin", who becomes the bootstrap principal.
		if _, err := access.EnsureAdmin(ctx, BootstrapPrincipal); err != nil {
			st.Close()
			return nil, err
		}
	}
	life, err := newLifecycle(cfg, st, opts.Now, log, reg)
	if err != nil {
		st.Close()
		return nil, err
	}
	managed, err := newManaged(cfg, st, casvc, life, opts.Now, log)
	if err != nil {
		st.Close()
		return nil, err
	}
	jobs, err := NewSingleton(SingletonConfig{
		Leaser: st, Logger: log.With("component", "lease"), Registerer: reg,
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	return &Server{
		draining:    make(chan struct{}),
		feed:        feed,
		Jobs:        jobs,
		Config:      cfg,
		Lifecycle:   life,
		Managed:     managed,
		Store:       st,
		CA:          casvc,
		Inventory:   inventory.New(inventory.Config{Store: st, Now: opts.Now}),
		Tokens:      access.Tokens,
		Access:      access,
		Bootstrap:   authz.NewBootstrap(st, opts.Now),
		Revocation:  rev,
		TrustStores: trust,
		Logger:      log,
		Registry:    reg,
	}, nil
}

// openStore opens the configured store. Without create, a SQLite file
// must already exist; a PostgreSQL database is judged by its canary.
func openStore(ctx context.Context, cfg config.Server, create bool) (store.Store, error) {
	kind, target, err := cfg.StoreLocation()
	if err != nil {
		return nil, err
	}
	switch kind {
	case config.StorePostgres:
		st, err := postgres.Open(ctx, target)
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL store: %w", err)
		}
		return st, nil
	default:
		if !create && !fileExists(target) {
			return nil, fmt.Errorf("%w: no database at %s", ErrNotInitialized, target)
		}
		st, err := sqlite.Open(target)
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		return st, nil
	}
}

// checkCanary proves the master key opens this database before anything is
// written. A new database gets a canary only when create is set.
func checkCanary(ctx context.Context, st store.Store, sealer *keystore.Sealer, create bool) error {
	c, err := st.GetMeta(ctx, metaCanary)
	switch {
	case err == nil:
		if err := sealer.VerifyCanary(c); err != nil {
			return fmt.Errorf("master key check: %w", err)
		}
		return nil
	case !store.IsNotFound(err):
		return fmt.Errorf("master key check: %w", err)
	case !create:
		return fmt.Errorf("master key check: the database has no master-key canary: %w", ErrNotInitialized)
	}
	cas, err := st.ListCAs(ctx)
	if err != nil {
		return err
	}
	if len(cas) > 0 {
		return errors.New("master key check: the database holds CAs but no canary; refusing to guess the master key")
	}
	canary, err := sealer.Canary()
	if err != nil {
		return err
	}
	return st.PutMeta(ctx, metaCanary, canary)
}

// BootstrapPrincipal is the administrator that init and dev create, with
// the admin policy.
const BootstrapPrincipal = "admin"

// Close releases the store.
func (s *Server) Close() error { return s.Store.Close() }

// Handler returns the API handler (all routes).
func (s *Server) Handler() http.Handler {
	all, _ := s.handlers()
	return all
}

// handlers returns the handler of all routes, and the API's own, which
// Run closes once it has stopped serving.
func (s *Server) handlers() (http.Handler, *api.Handler) {
	h := api.New(api.Config{
		CA: s.CA, Inventory: s.Inventory, TrustStores: s.TrustStores, CAByID: s.Store.GetCAByID,
		Auth: s.Access, Authz: s.Access, Access: s.Access, AccessStore: s.Store, Audit: s.Store,
		Bootstrap: s.Bootstrap, Renewal: &lifecycle.Renewer{CA: s.CA, Events: s.Lifecycle, Successors: s.Store},
		MaxBodyBytes: s.Config.API.MaxBodyBytes, Ready: s.ready.Load,
		Logger: s.Logger.With("component", "api"), Registerer: s.Registry, Draining: s.draining,
	})
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{}))
	mux.Handle("/", h)
	rev := s.Revocation.Handler()
	// CRL and OCSP paths go to the revocation handler before ServeMux,
	// whose path cleaning would redirect the "//" an OCSP GET's base64 may hold.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/crl/") || strings.HasPrefix(r.URL.Path, "/ocsp/") {
			rev.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	}), h
}

// publicHandler serves only the routes marked public, over plain HTTP.
func publicHandler(all http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if p == "/healthz" || p == "/metrics" || strings.HasPrefix(p, "/ca/") || strings.HasPrefix(p, "/crl/") || strings.HasPrefix(p, "/ocsp/") {
			all.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"error":{"code":"not_found","message":"the public listener serves /ca/, /crl/, /ocsp/, /healthz and /metrics; the API is on HTTPS"}}`+"\n")
	})
}

// apiTLSConfig is the API listener's TLS configuration. It requests, but
// does not require, a client certificate, and leaves its verification to
// the routes that use one (ca.Service.VerifyPeer): token-authenticated and
// public callers connect without one, and a certificate's standing (in the
// inventory, not revoked) is a question for the store, not for a static
// pool of roots.
func apiTLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, ClientAuth: tls.RequestClientCert}
}

// Run serves until ctx ends, then drains connections for up to 10 s. The
// listeners are bound before Run returns an error or starts serving, so a
// port in use is reported at once.
func (s *Server) Run(ctx context.Context, started func(apiAddr, publicAddr string)) error {
	cert, err := tls.LoadX509KeyPair(s.Config.API.TLSCert, s.Config.API.TLSKey)
	if err != nil {
		return fmt.Errorf("API TLS identity: %w", err)
	}
	all, apiHandler := s.handlers()
	servers := []*http.Server{}
	lns := []net.Listener{}
	apiLn, err := net.Listen("tcp", s.Config.API.Listen)
	if err != nil {
		return fmt.Errorf("API listener: %w", err)
	}
	lns = append(lns, apiLn)
	servers = append(servers, &http.Server{
		Handler: all,
		// A client certificate is asked for, never required: operators
		// (access.operator_ca) and agents renewing (/v1/renew) log in with
		// one, which the API verifies itself.
		TLSConfig:         apiTLSConfig(cert),
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second, WriteTimeout: 60 * time.Second,
		IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(s.Logger.Handler(), slog.LevelWarn),
	})
	publicAddr := ""
	if s.Config.Public.Listen != "" {
		pl, err := net.Listen("tcp", s.Config.Public.Listen)
		if err != nil {
			apiLn.Close()
			return fmt.Errorf("public listener: %w", err)
		}
		publicAddr = pl.Addr().String()
		lns = append(lns, pl)
		servers = append(servers, &http.Server{
			Handler: publicHandler(all), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 16 << 10,
			ErrorLog: slog.NewLogLogger(s.Logger.Handler(), slog.LevelWarn),
		})
	}
	errc := make(chan error, len(servers)+3)
	var wg sync.WaitGroup
	rctx, stopRev := context.WithCancel(ctx)
	defer stopRev()
	// Every node publishes the revocations made through it and, told by
	// the feed, those made through the others; the singleton jobs run on
	// the one node holding the store's lease: periodic CRL republication
	// and OCSP work, the lifecycle scan and webhook deliveries (so two nodes
	// do not send the same delivery at once), and managed renewal.
	wg.Go(func() { s.Revocation.PublishChanges(rctx) })
	wg.Go(func() { s.feed.run(rctx) })
	wg.Go(func() {
		s.Jobs.Run(rctx, func(ctx context.Context) {
			var jobs sync.WaitGroup
			jobs.Go(func() {
				if err := s.Revocation.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
					s.Logger.Error("revocation publisher", "err", err)
				}
			})
			jobs.Go(func() {
				if err := s.Lifecycle.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
					s.Logger.Error("lifecycle events", "err", err)
				}
			})
			// Managed renewal is claimed in the store, so a renewal happens
			// once even while a lease changes hands.
			jobs.Go(func() {
				if err := s.Managed.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
					s.Logger.Error("managed renewal", "err", err)
				}
			})
			jobs.Wait()
		})
	})
	for i, srv := range servers {
		wg.Add(1)
		go func(i int, srv *http.Server) {
			defer wg.Done()
			var err error
			if i == 0 {
				err = srv.ServeTLS(lns[i], "", "")
			} else {
				err = srv.Serve(lns[i])
			}
			if !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}(i, srv)
	}
	s.ready.Store(true)
	s.Logger.Info("control plane ready", "api", "https://"+apiLn.Addr().String(), "public", publicAddr)
	if started != nil {
		started(apiLn.Addr().String(), publicAddr)
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	s.ready.Store(false)
	s.drainingOnce.Do(func() { close(s.draining) })
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, srv := range servers {
		srv.Shutdown(sctx)
	}
	// Counts of refused calls left out of the audit log, waiting for
	// their summary, are written now.
	apiHandler.Close()
	stopRev()
	wg.Wait()
	s.Logger.Info("control plane stopped")
	return runErr
}
