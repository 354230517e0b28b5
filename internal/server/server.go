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
	Config     config.Server
	Store      store.Store
	CA         *ca.Service
	Inventory  *inventory.Service
	Tokens     *authz.Tokens
	Revocation *revocation.Service
	// TrustStores follows the CAs' revocations through Revocation.
	TrustStores *truststore.Service
	Logger      *slog.Logger
	Registry    *prometheus.Registry

	ready atomic.Bool
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
	casvc, err := ca.New(ca.Config{
		Store: st, Sealer: sealer, Linter: linter, PublicBaseURL: cfg.Public.BaseURL,
		Backdate: time.Duration(cfg.Issuance.Backdate), Now: opts.Now, Logger: log.With("component", "ca"),
		Revocations: ca.NotifyFunc(func(caID, serial string, at time.Time) { rev.Notify(caID, serial, at) }),
		Issuances:   ca.IssuedFunc(func(caID, serial string) { rev.Issued(caID, serial) }),
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
	trust, err := truststore.New(truststore.Config{
		Store: st, CRLs: rev, Now: opts.Now, Logger: log.With("component", "truststore"),
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	return &Server{
		Config:      cfg,
		Store:       st,
		CA:          casvc,
		Inventory:   inventory.New(inventory.Config{Store: st, Now: opts.Now}),
		Tokens:      authz.NewTokens(st, opts.Now),
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

// Close releases the store.
func (s *Server) Close() error { return s.Store.Close() }

// Handler returns the API handler (all routes).
func (s *Server) Handler() http.Handler {
	h := api.New(api.Config{
		CA: s.CA, Inventory: s.Inventory, TrustStores: s.TrustStores, Auth: s.Tokens, CAByID: s.Store.GetCAByID,
		MaxBodyBytes: s.Config.API.MaxBodyBytes, Ready: s.ready.Load,
		Logger: s.Logger.With("component", "api"), Registerer: s.Registry,
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
	})
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

// Run serves until ctx ends, then drains connections for up to 10 s. The
// listeners are bound before Run returns an error or starts serving, so a
// port in use is reported at once.
func (s *Server) Run(ctx context.Context, started func(apiAddr, publicAddr string)) error {
	cert, err := tls.LoadX509KeyPair(s.Config.API.TLSCert, s.Config.API.TLSKey)
	if err != nil {
		return fmt.Errorf("API TLS identity: %w", err)
	}
	all := s.Handler()
	servers := []*http.Server{}
	lns := []net.Listener{}
	apiLn, err := net.Listen("tcp", s.Config.API.Listen)
	if err != nil {
		return fmt.Errorf("API listener: %w", err)
	}
	lns = append(lns, apiLn)
	servers = append(servers, &http.Server{
		Handler:           all,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
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
	errc := make(chan error, len(servers)+1)
	var wg sync.WaitGroup
	rctx, stopRev := context.WithCancel(ctx)
	defer stopRev()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.Revocation.Run(rctx); err != nil && !errors.Is(err, context.Canceled) {
			errc <- fmt.Errorf("revocation publisher: %w", err)
		}
	}()
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
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, srv := range servers {
		srv.Shutdown(sctx)
	}
	stopRev()
	wg.Wait()
	s.Logger.Info("control plane stopped")
	return runErr
}
