// Command renewstorm measures a renewal storm: N distinct simulated agents,
// each holding its own client certificate, all renew at once over mTLS
// (POST /v1/renew) against one control plane. Each renewal is what an agent
// does: a new P-256 key, a CSR, a fresh TLS connection presenting the
// current certificate (a full handshake, no session reuse), and the check
// of the answer (the certificate parses, holds the new key, keeps the
// common name, and chains to the issuing CA).
//
// Setup, not measured: the N agents' first certificates are issued through
// the admin API (POST /v1/certificates from CSRs, distinct common names).
//
// It prints one JSON line on stdout and exits 1 when any renewal failed.
//
//	renewstorm -url https://127.0.0.1:9443 -token-file DIR/dev/admin.token \
//	    -cacert DIR/dev/root.pem -ca demo-intermediate -n 10000 -c 64
package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trustgate/trustgate/internal/apiv1"
)

type report struct {
	N             int     `json:"agents"`
	C             int     `json:"c"`
	SetupS        float64 `json:"setup_s"`
	StormS        float64 `json:"storm_s"`
	Renewals      int64   `json:"renewals"`
	Errors        int64   `json:"errors"`
	RenewalsPerS  float64 `json:"renewals_per_s"`
	P50Ms         float64 `json:"p50_ms"`
	P90Ms         float64 `json:"p90_ms"`
	P99Ms         float64 `json:"p99_ms"`
	MaxMs         float64 `json:"max_ms"`
	FirstError    string  `json:"first_error,omitempty"`
	GOMAXPROCS    int     `json:"gomaxprocs"`
	ClientVersion string  `json:"go"`
}

// agent is one simulated agent: its key and current certificate.
type agent struct {
	cn   string
	key  crypto.Signer
	cert *x509.Certificate
}

func main() {
	var (
		url, tokenFile, caFile, caName string
		n, c                           int
	)
	flag.StringVar(&url, "url", "https://127.0.0.1:9443", "API base URL")
	flag.StringVar(&tokenFile, "token-file", "", "admin API token file (for the setup issuance)")
	flag.StringVar(&caFile, "cacert", "", "PEM that verifies the API's certificate")
	flag.StringVar(&caName, "ca", "demo-intermediate", "issuing CA")
	flag.IntVar(&n, "n", 10000, "number of agents")
	flag.IntVar(&c, "c", 64, "renewals in flight at once")
	flag.Parse()
	if tokenFile == "" || caFile == "" {
		fmt.Fprintln(os.Stderr, "renewstorm: -token-file and -cacert are required")
		os.Exit(2)
	}
	tok, err := os.ReadFile(tokenFile)
	check(err)
	caPEM, err := os.ReadFile(caFile)
	check(err)
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		check(errors.New("no certificate in -cacert"))
	}
	ctx := context.Background()

	// Setup: N certificates through the admin API, on keep-alive connections.
	start := time.Now()
	admin := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, MaxIdleConnsPerHost: c}}
	agents := make([]*agent, n)
	var issuer *x509.Certificate
	var issuerOnce sync.Once
	run(n, c, func(i int) error {
		a := &agent{cn: fmt.Sprintf("agent-%05d", i)}
		var csr string
		a.key, csr = newCSR(a.cn)
		var res apiv1.IssueResponse
		if err := post(ctx, admin, url+"/v1/certificates", strings.TrimSpace(string(tok)),
			apiv1.IssueRequest{CA: caName, Profile: "client", CSR: csr, Validity: "1h"}, &res); err != nil {
			return err
		}
		var err error
		if a.cert, err = firstCert(res.CertificatePEM); err != nil {
			return err
		}
		issuerOnce.Do(func() { issuer, _ = firstCert(res.ChainPEM) })
		agents[i] = a
		return nil
	}, func(err error) { check(fmt.Errorf("setup: %w", err)) })
	setup := time.Since(start)

	// The storm: every agent renews once, c at a time, each on a new
	// TLS connection with its own certificate.
	lat := make([]time.Duration, n)
	var errs atomic.Int64
	var firstErr atomic.Value
	start = time.Now()
	run(n, c, func(i int) error {
		t0 := time.Now()
		err := renew(ctx, url, roots, issuer, agents[i])
		lat[i] = time.Since(t0)
		return err
	}, func(err error) {
		errs.Add(1)
		firstErr.CompareAndSwap(nil, err.Error())
	})
	storm := time.Since(start)

	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	r := report{N: n, C: c, SetupS: setup.Seconds(), StormS: storm.Seconds(), Renewals: int64(n) - errs.Load(), Errors: errs.Load(),
		RenewalsPerS: float64(int64(n)-errs.Load()) / storm.Seconds(), P50Ms: pct(0.5), P90Ms: pct(0.9), P99Ms: pct(0.99),
		MaxMs: float64(lat[len(lat)-1].Microseconds()) / 1000, GOMAXPROCS: runtime.GOMAXPROCS(0), ClientVersion: runtime.Version()}
	if v, ok := firstErr.Load().(string); ok {
		r.FirstError = v
	}
	json.NewEncoder(os.Stdout).Encode(r)
	if r.Errors > 0 {
		os.Exit(1)
	}
}

// renew is one agent's renewal: new key, CSR, new mTLS connection.
func renew(ctx context.Context, url string, roots *x509.CertPool, issuer *x509.Certificate, a *agent) error {
	key, csr := newCSR(a.cn)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ClientSessionCache: nil,
		Certificates: []tls.Certificate{{Certificate: [][]byte{a.cert.Raw}, PrivateKey: a.key, Leaf: a.cert}}}, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	var res apiv1.IssueResponse
	if err := post(ctx, &http.Client{Transport: tr, Timeout: time.Minute}, url+"/v1/renew", "", apiv1.RenewRequest{CSR: csr}, &res); err != nil {
		return err
	}
	cert, err := firstCert(res.CertificatePEM)
	if err != nil {
		return err
	}
	if !cert.PublicKey.(*ecdsa.PublicKey).Equal(key.Public()) || cert.Subject.CommonName != a.cn {
		return fmt.Errorf("%s: renewed certificate has another key or name", a.cn)
	}
	if issuer != nil {
		if err := cert.CheckSignatureFrom(issuer); err != nil {
			return fmt.Errorf("%s: renewed certificate: %w", a.cn, err)
		}
	}
	a.key, a.cert = key, cert
	return nil
}

// run calls fn(0..n-1) with c goroutines; onErr sees each error.
func run(n, c int, fn func(int) error, onErr func(error)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					onErr(err)
				}
			}
		}()
	}
	wg.Wait()
}

func newCSR(cn string) (crypto.Signer, string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	check(err)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	check(err)
	return key, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func post(ctx context.Context, hc *http.Client, url, token string, in, out any) error {
	b, _ := json.Marshal(in)
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("POST %s: HTTP %d: %s", url, resp.StatusCode, bytes.TrimSpace(body))
	}
	return json.Unmarshal(body, out)
}

func firstCert(s string) (*x509.Certificate, error) {
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		return nil, errors.New("no PEM certificate in the answer")
	}
	return x509.ParseCertificate(b.Bytes)
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "renewstorm:", err)
		os.Exit(2)
	}
}
