// Command syncbench measures how long a revocation takes to reach running
// gateways that follow a trust store of the control plane: it revokes N
// client certificates one after another through the API, and for each
// revoke and each gateway measures the time from the revoke request to
// the first refused mTLS request with the revoked certificate (a new TLS
// connection on loopback, probed every -probe). It prints one JSON line
// with p50/p90/p99/max. It speaks only the wire protocol: the API's JSON
// and TLS to the gateways.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/trustgate/trustgate/internal/apiv1"
)

// api calls the control plane's /v1 with a bearer token.
type api struct {
	base, token string
	hc          *http.Client
}

func (a *api) call(ctx context.Context, method, path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, body)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(body, out)
}

func main() {
	addr := flag.String("addr", "", "control plane API, https://host:port")
	caFile := flag.String("cacert", "", "PEM that verifies the API's and the gateways' certificates (dev root.pem)")
	tokenFile := flag.String("token-file", "", "API token file (admin)")
	gateways := flag.String("gateways", "", "comma-separated host:port of the gateways' listeners")
	issuer := flag.String("ca", "demo-intermediate", "CA that issues the client certificates (in the gateways' trust store)")
	n := flag.Int("n", 20, "certificates revoked one after another")
	probe := flag.Duration("probe", 25*time.Millisecond, "time between two mTLS probes of one gateway")
	settle := flag.Duration("settle", 500*time.Millisecond, "least pause before each revoke, so that every long poll waits; a random 0..1s is added so that revokes do not fall in step with a poll interval")
	limit := flag.Duration("limit", 10*time.Second, "a gateway that still accepts a revoked certificate after this counts as a miss")
	verbose := flag.Bool("v", false, "print each revoke's times to stderr")
	store := flag.String("store", "", "the gateways' trust store: its snapshot's ETag is watched to split each time into the control plane's part (revoke to new snapshot) and the sync's (new snapshot to enforced)")
	flag.Parse()
	if *addr == "" || *caFile == "" || *tokenFile == "" || *gateways == "" || *store == "" {
		log.Fatal("-addr, -cacert, -token-file, -gateways and -store are required")
	}
	ctx := context.Background()
	tok, err := os.ReadFile(*tokenFile)
	if err != nil {
		log.Fatal(err)
	}
	rootPEM, err := os.ReadFile(*caFile)
	if err != nil {
		log.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		log.Fatalf("%s holds no certificate", *caFile)
	}
	admin := &api{base: strings.TrimRight(*addr, "/"), token: strings.TrimSpace(string(tok)),
		hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}}
	var urls []string
	for _, g := range strings.Split(*gateways, ",") {
		urls = append(urls, "https://"+strings.TrimSpace(g)+"/")
	}
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

	// etag returns the current ETag of the store's snapshot.
	etag := func() string {
		var snap apiv1.TrustStoreSnapshot
		if err := admin.call(ctx, "GET", "/v1/truststores/"+*store+"/snapshot", nil, &snap); err != nil {
			log.Fatalf("snapshot: %v", err)
		}
		return snap.ETag
	}

	var samples, published, synced []time.Duration
	misses := 0
	for i := range *n {
		var res apiv1.IssueResponse
		if err := admin.call(ctx, "POST", "/v1/certificates", apiv1.IssueRequest{CA: *issuer, Profile: "client",
			CommonName: fmt.Sprintf("syncbench-%d-%d", time.Now().Unix(), i), Validity: "1h"}, &res); err != nil {
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
		before := etag()
		start := time.Now()
		if err := admin.call(ctx, "POST", "/v1/certificates/"+res.Certificate.Serial+"/revoke", apiv1.RevokeRequest{Reason: "keyCompromise"}, nil); err != nil {
			log.Fatalf("revoke: %v", err)
		}
		// The time the store's snapshot changes, seen by polling it every
		// 10 ms (as fast as it may change: the yardstick of the sync).
		var pub time.Duration
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < *limit {
				if etag() != before {
					pub = time.Since(start)
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		took := make([]time.Duration, len(urls))
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
		if *verbose {
			log.Printf("revoke %d (%s): snapshot changed after %s; enforced after %v", i, res.Certificate.Serial, pub, took)
		}
		published = append(published, pub)
		for _, d := range took {
			if d < 0 {
				misses++
				continue
			}
			samples = append(samples, d)
			synced = append(synced, max(d-pub, 0))
		}
	}
	out := map[string]any{
		"gateways": len(urls), "revokes": *n, "samples": len(samples), "misses": misses, "probe_ms": probe.Milliseconds(),
		"cpus":                        runtime.NumCPU(),
		"revoke_to_enforced_ms":       percentiles(samples),
		"revoke_to_new_snapshot_ms":   percentiles(published),
		"new_snapshot_to_enforced_ms": percentiles(synced),
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		log.Fatal(err)
	}
	if misses > 0 {
		log.Fatalf("%d gateway(s) x revoke(s) never refused the revoked certificate within %s", misses, *limit)
	}
}

// percentiles summarizes durations in milliseconds.
func percentiles(ds []time.Duration) map[string]float64 {
	ds = slices.Clone(ds)
	slices.Sort(ds)
	pct := func(p float64) float64 {
		if len(ds) == 0 {
			return 0
		}
		i := int(p*float64(len(ds))+0.5) - 1
		return float64(ds[max(0, min(i, len(ds)-1))].Microseconds()) / 1000
	}
	return map[string]float64{"min": pct(0), "p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "max": pct(1)}
}
