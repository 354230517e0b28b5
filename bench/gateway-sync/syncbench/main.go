// Command syncbench measures how long a revocation takes to reach gateways
// that long-poll a trust store of the control plane: it runs G gateways
// (the gateway package, in this process) against a running control plane,
// revokes N client certificates one after another through the API, and for
// each revoke and each gateway measures the time from the revoke request to
// the first refused mTLS request with the revoked certificate (a real TLS
// handshake on loopback, probed every -probe). It prints one JSON line per
// run with p50/p90/p99/max.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/trustgate/trustgate/internal/api/client"
	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/config"
	"github.com/trustgate/trustgate/internal/gateway"
)

func main() {
	addr := flag.String("addr", "", "control plane API, https://host:port")
	caFile := flag.String("cacert", "", "PEM that verifies the API's and the gateways' certificates (dev root.pem)")
	tokenFile := flag.String("token-file", "", "API token file (admin)")
	certFile := flag.String("cert", "", "gateway listeners' server certificate (dev server.pem)")
	keyFile := flag.String("key", "", "its key (dev server.key)")
	issuer := flag.String("ca", "demo-intermediate", "CA that issues the client certificates")
	gateways := flag.Int("gateways", 10, "gateways")
	n := flag.Int("n", 20, "certificates revoked one after another")
	longPoll := flag.Duration("long-poll", 30*time.Second, "control_plane.long_poll of the gateways")
	pollInterval := flag.Duration("poll-interval", time.Hour, "control_plane.poll_interval of the gateways")
	probe := flag.Duration("probe", 25*time.Millisecond, "time between two mTLS probes of one gateway")
	settle := flag.Duration("settle", 500*time.Millisecond, "least pause before each revoke, so that every long poll waits; a random 0..1s is added so that revokes do not fall in step with a poll interval")
	limit := flag.Duration("limit", 10*time.Second, "a gateway that still accepts a revoked certificate after this counts as a miss")
	flag.Parse()
	if *addr == "" || *caFile == "" || *tokenFile == "" || *certFile == "" || *keyFile == "" {
		log.Fatal("-addr, -cacert, -token-file, -cert and -key are required")
	}
	ctx := context.Background()
	tok, err := os.ReadFile(*tokenFile)
	if err != nil {
		log.Fatal(err)
	}
	admin, err := client.New(client.Config{Addr: *addr, Token: strings.TrimSpace(string(tok)), CACertFile: *caFile})
	if err != nil {
		log.Fatal(err)
	}
	store := fmt.Sprintf("syncbench-%d", time.Now().Unix())
	if _, err := admin.CreateTrustStore(ctx, apiv1.CreateTrustStoreRequest{Name: store, CAs: []string{*issuer}}); err != nil {
		log.Fatalf("create trust store: %v", err)
	}

	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	defer backend.Close()
	runCtx, stop := context.WithCancel(ctx)
	var running sync.WaitGroup
	var urls []string
	for i := range *gateways {
		spec := config.Gateway{
			ConnectionLog: "off", AccessLog: "off",
			ControlPlane: config.GatewayControlPlane{Address: *addr, TokenFile: *tokenFile, CAFile: *caFile,
				PollInterval: config.Duration(*pollInterval), LongPoll: config.Duration(*longPoll)},
			Listeners: []config.GatewayListener{{
				Name: "bench", Address: "127.0.0.1:0",
				Certificate: config.GatewayCertificate{CertFile: *certFile, KeyFile: *keyFile},
				MTLS:        config.GatewayMTLS{Mode: config.MTLSVerify, TrustStore: config.GatewayTrustStore{Name: store}},
				Routes:      []config.GatewayRoute{{Backend: config.GatewayBackend{URL: backend.URL}}},
			}},
		}
		gw, err := gateway.New(ctx, gateway.Config{Spec: spec, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			log.Fatalf("gateway %d: %v", i, err)
		}
		running.Add(1)
		go func() { defer running.Done(); gw.Run(runCtx) }()
		urls = append(urls, "https://"+gw.Addr("bench").String()+"/")
	}
	defer func() { stop(); running.Wait() }()

	rootPEM, err := os.ReadFile(*caFile)
	if err != nil {
		log.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	passes := func(url string, cert tls.Certificate) bool {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
			TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{cert}}}}
		resp, err := c.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}

	var samples []time.Duration
	misses := 0
	for i := range *n {
		res, err := admin.Issue(ctx, apiv1.IssueRequest{CA: *issuer, Profile: "client", CommonName: fmt.Sprintf("syncbench-%d", i), Validity: "1h"})
		if err != nil {
			log.Fatalf("issue: %v", err)
		}
		cert, err := tls.X509KeyPair([]byte(res.CertificatePEM+res.ChainPEM), []byte(res.PrivateKeyPEM))
		if err != nil {
			log.Fatalf("issued pair: %v", err)
		}
		for _, u := range urls {
			if !passes(u, cert) {
				log.Fatalf("gateway %s refuses a valid certificate", u)
			}
		}
		time.Sleep(*settle + rand.N(time.Second))
		start := time.Now()
		if _, err := admin.Revoke(ctx, res.Certificate.Serial, "keyCompromise"); err != nil {
			log.Fatalf("revoke: %v", err)
		}
		took := make([]time.Duration, len(urls))
		var wg sync.WaitGroup
		for j, u := range urls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Since(start) < *limit {
					if !passes(u, cert) {
						took[j] = time.Since(start)
						return
					}
					time.Sleep(*probe)
				}
				took[j] = -1
			}()
		}
		wg.Wait()
		for _, d := range took {
			if d < 0 {
				misses++
				continue
			}
			samples = append(samples, d)
		}
	}
	slices.Sort(samples)
	pct := func(p float64) float64 {
		if len(samples) == 0 {
			return 0
		}
		i := int(p*float64(len(samples))+0.5) - 1
		return samples[max(0, min(i, len(samples)-1))].Seconds() * 1000
	}
	out := map[string]any{
		"gateways": *gateways, "revokes": *n, "samples": len(samples), "misses": misses,
		"long_poll": longPoll.String(), "poll_interval": pollInterval.String(), "probe_ms": probe.Milliseconds(),
		"p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99), "max_ms": pct(1), "min_ms": pct(0),
		"cpus": runtime.NumCPU(),
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		log.Fatal(err)
	}
	if misses > 0 {
		log.Fatal(errors.New("some gateways never refused a revoked certificate"))
	}
}
