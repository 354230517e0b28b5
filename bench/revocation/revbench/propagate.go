package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/big"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/trustgate/trustgate/internal/apiv1"
)

// latStats summarizes latencies in milliseconds. With n samples, p99 is
// the ceil(0.99 n)-th smallest: the largest for n <= 100.
type latStats struct {
	N      int     `json:"n"`
	MinMs  float64 `json:"min_ms"`
	P50ms  float64 `json:"p50_ms"`
	P90ms  float64 `json:"p90_ms"`
	P99ms  float64 `json:"p99_ms"`
	MaxMs  float64 `json:"max_ms"`
	MeanMs float64 `json:"mean_ms"`
}

func summarize(d []time.Duration) latStats {
	if len(d) == 0 {
		return latStats{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	var sum time.Duration
	for _, v := range s {
		sum += v
	}
	q := func(f float64) float64 { return ms(s[min(len(s)-1, int(math.Ceil(f*float64(len(s))))-1)]) }
	return latStats{N: len(s), MinMs: ms(s[0]), P50ms: q(0.5), P90ms: q(0.9), P99ms: q(0.99), MaxMs: ms(s[len(s)-1]), MeanMs: ms(sum / time.Duration(len(s)))}
}

// serverHist is the server's own propagation histogram over the run.
type serverHist struct {
	Count  float64 `json:"count"`
	MeanMs float64 `json:"mean_ms"`
	P50ms  float64 `json:"p50_ms"`
	P90ms  float64 `json:"p90_ms"`
	P99ms  float64 `json:"p99_ms"`
	// Le* count observations at or under a bucket bound.
	Le100ms float64 `json:"le_100ms"`
	Le200ms float64 `json:"le_200ms"`
	Le1s    float64 `json:"le_1s"`
}

type propResult struct {
	Kind      string                `json:"kind"` // "propagation"
	Label     string                `json:"label"`
	N         int                   `json:"n"`
	PollMs    float64               `json:"poll_ms"`
	Reason    string                `json:"reason"`
	Timeouts  int                   `json:"timeouts"`
	FirstErr  string                `json:"first_error,omitempty"`
	API       latStats              `json:"api_revoke"`
	OCSP      latStats              `json:"ocsp"`
	CRL       latStats              `json:"crl"`
	Both      latStats              `json:"both"`
	OCSPPolls int                   `json:"ocsp_polls"`
	CRLPolls  int                   `json:"crl_polls"`
	CRLFetch  int                   `json:"crl_downloads"` // 200 answers (others were 304)
	CRLBytes  int                   `json:"crl_bytes_last"`
	CRLNumber string                `json:"crl_number_last"`
	Server    map[string]serverHist `json:"server_histogram"`
}

// reasonCodes maps RFC 5280 reason names to codes.
var reasonCodes = map[string]int{
	"unspecified": 0, "keyCompromise": 1, "cACompromise": 2, "affiliationChanged": 3, "superseded": 4,
	"cessationOfOperation": 5, "certificateHold": 6, "privilegeWithdrawn": 9, "aACompromise": 10,
}

// prober polls one CA's OCSP responder (POST, no nonce: the cached
// answer, as a relying party gets it) and its full CRL (with If-None-Match).
type prober struct {
	hc      *http.Client
	ocspURL string
	crlURL  string
	issuer  *x509.Certificate

	etag   string
	crl    *x509.RevocationList
	size   int
	polls  [2]int // ocsp, crl
	crlGot int
}

// ocspStatus POSTs e's request and checks the answer in full.
func (p *prober) ocspStatus(ctx context.Context, e *poolEntry) (*ocsp.Response, error) {
	req, _ := http.NewRequestWithContext(ctx, "POST", p.ocspURL, bytes.NewReader(e.ReqDER))
	req.Header.Set("Content-Type", "application/ocsp-request")
	resp, err := p.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("OCSP POST: HTTP %d", resp.StatusCode)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		return nil, fmt.Errorf("OCSP POST answer has Cache-Control %q, want no-store", cc)
	}
	return fullCheck(body, e.cert, p.issuer, time.Now())
}

// refreshCRL fetches the CRL if it changed (If-None-Match) and checks it.
func (p *prober) refreshCRL(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", p.crlURL, nil)
	if p.etag != "" {
		req.Header.Set("If-None-Match", p.etag)
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return err
	}
	switch resp.StatusCode {
	case http.StatusNotModified:
		return nil
	case http.StatusOK:
	default:
		return fmt.Errorf("CRL: HTTP %d", resp.StatusCode)
	}
	crl, err := x509.ParseRevocationList(body)
	if err != nil {
		return fmt.Errorf("CRL: %w", err)
	}
	if err := crl.CheckSignatureFrom(p.issuer); err != nil {
		return fmt.Errorf("CRL: %w", err)
	}
	if p.crl != nil && crl.Number.Cmp(p.crl.Number) < 0 {
		return fmt.Errorf("CRL number went back from %s to %s", p.crl.Number, crl.Number)
	}
	p.crl, p.etag, p.size = crl, resp.Header.Get("ETag"), len(body)
	p.crlGot++
	return nil
}

// crlReason returns the reason code of serial on the current CRL, or -1.
func (p *prober) crlReason(serial *big.Int) int {
	if p.crl == nil {
		return -1
	}
	for _, e := range p.crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(serial) == 0 {
			return e.ReasonCode
		}
	}
	return -1
}

func cmdPropagate(args []string) error {
	fs := flag.NewFlagSet("propagate", flag.ExitOnError)
	addr := fs.String("addr", "", "API address (default $TRUSTGATE_ADDR)")
	token := fs.String("token", "", "API token (default $TRUSTGATE_TOKEN)")
	cacert := fs.String("cacert", "", "PEM roots for the API (default $TRUSTGATE_CACERT)")
	label := fs.String("label", "trustgate", "name of the run")
	poolPath := fs.String("pool", "prop-pool.json", "pool of certificates to revoke, all good now")
	public := fs.String("public", "", "public base URL, e.g. http://127.0.0.1:9080")
	ca := fs.String("ca", "demo-intermediate", "the CA of the pool")
	reason := fs.String("reason", "keyCompromise", "revocation reason")
	poll := fs.Duration("poll", 10*time.Millisecond, "polling interval of OCSP and CRL")
	timeout := fs.Duration("timeout", 10*time.Second, "give up on one revocation after this")
	fs.Parse(args)
	code, ok := reasonCodes[*reason]
	if !ok {
		return fmt.Errorf("unknown reason %q", *reason)
	}
	if *public == "" {
		return errors.New("-public is required")
	}
	api, err := newAPIClient(*addr, *token, *cacert)
	if err != nil {
		return err
	}
	p, err := loadPool(*poolPath)
	if err != nil {
		return err
	}
	base := strings.TrimRight(*public, "/")
	pr := &prober{
		hc:      &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}},
		ocspURL: base + "/ocsp/" + *ca, crlURL: base + "/crl/" + *ca + ".crl", issuer: p.issuer,
	}
	metricsURL := base + "/metrics"
	const metric = "trustgate_revocation_propagation_seconds"
	before, err := scrapeHistograms(metricsURL, metric, "kind")
	if err != nil {
		return fmt.Errorf("metrics before: %w", err)
	}
	ctx := context.Background()
	res := propResult{Kind: "propagation", Label: *label, PollMs: float64(*poll) / 1e6, Reason: *reason}
	var apiLat, ocspLat, crlLat, bothLat []time.Duration
	fail := func(err error) {
		res.Timeouts++
		if res.FirstErr == "" {
			res.FirstErr = err.Error()
		}
		fmt.Fprintln(os.Stderr, "propagate:", err)
	}
	if err := pr.refreshCRL(ctx); err != nil {
		return err
	}
	for i := range p.Entries {
		e := &p.Entries[i]
		// Before: good on OCSP, absent from the CRL.
		r, err := pr.ocspStatus(ctx, e)
		if err != nil {
			return fmt.Errorf("serial %s before revocation: %w", e.Serial, err)
		}
		if r.Status != ocsp.Good {
			return fmt.Errorf("serial %s is not good before its revocation (status %d)", e.Serial, r.Status)
		}
		if err := pr.refreshCRL(ctx); err != nil {
			return err
		}
		if pr.crlReason(e.cert.SerialNumber) >= 0 {
			return fmt.Errorf("serial %s is on the CRL before its revocation", e.Serial)
		}

		t0 := time.Now()
		var cert apiv1.Certificate
		if err := api.do(ctx, "POST", "/v1/certificates/"+e.Serial+"/revoke", apiv1.RevokeRequest{Reason: *reason}, &cert); err != nil {
			return err
		}
		apiLat = append(apiLat, time.Since(t0))
		if cert.Status != "revoked" || cert.RevocationReason != *reason {
			return fmt.Errorf("serial %s: revoke answered status %q reason %q", e.Serial, cert.Status, cert.RevocationReason)
		}
		deadline := t0.Add(*timeout)
		var ocspAt, crlAt time.Duration
		var ocspErr, crlErr error
		var wg sync.WaitGroup
		wg.Go(func() { // OCSP
			for k := 1; ; k++ {
				pr.polls[0]++
				r, err := pr.ocspStatus(ctx, e)
				if err != nil {
					ocspErr = err
					return
				}
				if r.Status == ocsp.Revoked {
					ocspAt = time.Since(t0)
					if r.RevocationReason != code {
						ocspErr = fmt.Errorf("OCSP says reason %d, want %d", r.RevocationReason, code)
					}
					return
				}
				next := t0.Add(time.Duration(k) * *poll)
				if next.After(deadline) {
					ocspErr = fmt.Errorf("serial %s: OCSP still good after %s", e.Serial, *timeout)
					return
				}
				time.Sleep(time.Until(next))
			}
		})
		wg.Go(func() { // CRL
			for k := 1; ; k++ {
				pr.polls[1]++
				if err := pr.refreshCRL(ctx); err != nil {
					crlErr = err
					return
				}
				if rc := pr.crlReason(e.cert.SerialNumber); rc >= 0 {
					crlAt = time.Since(t0)
					if rc != code {
						crlErr = fmt.Errorf("CRL says reason %d, want %d", rc, code)
					}
					return
				}
				next := t0.Add(time.Duration(k) * *poll)
				if next.After(deadline) {
					crlErr = fmt.Errorf("serial %s: not on the CRL after %s", e.Serial, *timeout)
					return
				}
				time.Sleep(time.Until(next))
			}
		})
		wg.Wait()
		if err := errors.Join(ocspErr, crlErr); err != nil {
			fail(err)
			continue
		}
		ocspLat = append(ocspLat, ocspAt)
		crlLat = append(crlLat, crlAt)
		bothLat = append(bothLat, max(ocspAt, crlAt))
	}
	after, err := scrapeHistograms(metricsURL, metric, "kind")
	if err != nil {
		return fmt.Errorf("metrics after: %w", err)
	}
	res.N = len(p.Entries)
	res.API, res.OCSP, res.CRL, res.Both = summarize(apiLat), summarize(ocspLat), summarize(crlLat), summarize(bothLat)
	res.OCSPPolls, res.CRLPolls, res.CRLFetch, res.CRLBytes = pr.polls[0], pr.polls[1], pr.crlGot, pr.size
	if pr.crl != nil {
		res.CRLNumber = pr.crl.Number.String()
	}
	res.Server = map[string]serverHist{}
	for kind, h := range after {
		d := h.minus(before[kind])
		sh := serverHist{Count: d.count}
		if d.count > 0 {
			sh.MeanMs = round(d.sum/d.count*1e3, 1)
			sh.P50ms = round(d.quantile(0.5)*1e3, 1)
			sh.P90ms = round(d.quantile(0.9)*1e3, 1)
			sh.P99ms = round(d.quantile(0.99)*1e3, 1)
		}
		for i, le := range d.les {
			switch le {
			case 0.1:
				sh.Le100ms = d.counts[i]
			case 0.2:
				sh.Le200ms = d.counts[i]
			case 1:
				sh.Le1s = d.counts[i]
			}
		}
		res.Server[kind] = sh
	}
	line, _ := json.Marshal(res)
	fmt.Println(string(line))
	fmt.Fprintf(os.Stderr, "%s: %d revocations; OCSP p50 %.1f ms p99 %.1f ms; CRL p50 %.1f ms p99 %.1f ms; both p99 %.1f ms; API p50 %.1f ms; failures %d\n",
		*label, res.N, res.OCSP.P50ms, res.OCSP.P99ms, res.CRL.P50ms, res.CRL.P99ms, res.Both.P99ms, res.API.P50ms, res.Timeouts)
	if res.Timeouts > 0 {
		return fmt.Errorf("%d revocations not seen within %s; first: %s", res.Timeouts, *timeout, res.FirstErr)
	}
	return nil
}
