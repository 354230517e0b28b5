package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/trustgate/trustgate/internal/config"
	"github.com/trustgate/trustgate/internal/gateway"
)

// DevAddrs are the addresses `trustgate dev` serves on.
type DevAddrs struct {
	API, Public, Gateway, Echo string
}

// RunDev runs the control plane and, unless gatewayListen is empty, the
// mTLS gateway in verify mode in front of a built-in echo backend. The
// gateway trusts the demo CAs and fetches their CRLs from the control plane
// every second, so a revoke takes effect at the gateway within about two
// seconds (one to publish the CRL, one to fetch it).
func RunDev(ctx context.Context, s *Server, files DevFiles, gatewayListen string, started func(DevAddrs)) error {
	if gatewayListen == "" {
		return s.Run(ctx, func(api, public string) {
			if started != nil {
				started(DevAddrs{API: api, Public: public})
			}
		})
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type ready struct{ api, public string }
	up := make(chan ready, 1)
	errc := make(chan error, 3)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		errc <- s.Run(ctx, func(api, public string) { up <- ready{api, public} })
	}()
	var addrs DevAddrs
	select {
	case r := <-up:
		addrs.API, addrs.Public = r.api, r.public
	case err := <-errc:
		wg.Wait()
		return err
	}
	stopAll := func(err error) error {
		cancel()
		wg.Wait()
		return err
	}
	if addrs.Public == "" {
		return stopAll(errors.New("the dev gateway needs the public listener (its CRLs come from there)"))
	}

	echoLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return stopAll(fmt.Errorf("echo backend: %w", err))
	}
	echo := &http.Server{Handler: http.HandlerFunc(echoIdentity), ReadHeaderTimeout: 5 * time.Second}
	wg.Add(1)
	go func() { defer wg.Done(); echo.Serve(echoLn) }()
	go func() { <-ctx.Done(); echo.Close() }()
	addrs.Echo = echoLn.Addr().String()

	crl := func(ca string) string { return "http://" + addrs.Public + "/crl/" + ca + ".crl" }
	spec := config.Gateway{
		ConnectionLog: "stderr",
		AccessLog:     "stderr",
		Listeners: []config.GatewayListener{{
			Name:        "dev",
			Address:     gatewayListen,
			Certificate: config.GatewayCertificate{CertFile: files.ServerCert, KeyFile: files.ServerKey},
			MTLS: config.GatewayMTLS{
				Mode: config.MTLSVerify,
				TrustStore: config.GatewayTrustStore{
					CAFile:     files.Chain,
					CRLURLs:    []string{crl(DemoIntermediate), crl(DemoRoot)},
					CRLRefresh: config.Duration(time.Second),
				},
				Headers: config.HeadersBoth,
			},
			Routes: []config.GatewayRoute{{Name: "echo", Backend: config.GatewayBackend{URL: "http://" + addrs.Echo}}},
		}},
	}
	gw, err := gateway.New(ctx, gateway.Config{Spec: spec, Logger: s.Logger.With("component", "gateway")})
	if err != nil {
		return stopAll(fmt.Errorf("dev gateway: %w", err))
	}
	addrs.Gateway = gw.Addr("dev").String()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := gw.Run(ctx); err != nil {
			errc <- fmt.Errorf("dev gateway: %w", err)
		}
	}()
	if started != nil {
		started(addrs)
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	cancel()
	wg.Wait()
	return runErr
}

// echoIdentity answers with the identity headers the gateway forwarded, as
// JSON: what a backend behind the gateway learns about its caller.
func echoIdentity(w http.ResponseWriter, r *http.Request) {
	h := map[string]string{}
	keys := []string{}
	for k := range r.Header {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "x-amzn-mtls-") || strings.HasPrefix(lk, "x-forwarded-") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		h[k] = r.Header.Get(k)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"method": r.Method, "path": r.URL.Path, "headers": h})
}
