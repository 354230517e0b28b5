package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxAnswer caps how much of an answer is read.
const maxAnswer = 1 << 20

// The phases of a run.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStop
)

type load struct {
	adapter Adapter
	// bases, when set, spreads the workers over several servers: worker w
	// sends to the adapter's URL with its base replaced by bases[w%len].
	bases   []string
	base    string // the adapter URL's base, replaced by bases[w%len]
	csrs    []*csr
	issuer  *x509.Certificate
	workers int
	warmup  time.Duration
	dur     time.Duration
	timeout time.Duration
	roots   *x509.CertPool
	pids    []int

	phase    atomic.Int32
	errMu    sync.Mutex
	first    error
	leafOnce sync.Once
	sigAlg   string
	leafN    int
}

type loadResult struct {
	window                    time.Duration
	ops, errors, warmupErrors int64
	lat                       []time.Duration
	clientCPU, serverCPU      time.Duration
	machineBusy               time.Duration // whole machine, all processes
	firstErr                  error
	leafSigAlg                string
	leafBytes                 int
}

type workerStats struct {
	lat                       []time.Duration
	ops, errors, warmupErrors int64
}

func (l *load) run(ctx context.Context) (*loadResult, error) {
	bodies := make([][]byte, len(l.csrs))
	for i, c := range l.csrs {
		b, err := l.adapter.Body(c)
		if err != nil {
			return nil, fmt.Errorf("request body: %w", err)
		}
		bodies[i] = b
	}
	stats := make([]workerStats, l.workers)
	var wg sync.WaitGroup
	for w := 0; w < l.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.worker(ctx, w, bodies, &stats[w])
		}()
	}

	time.Sleep(l.warmup)
	m0, _, merr := machineCPU()
	s0, serr := pidsCPU(l.pids)
	c0 := processCPU()
	t0 := time.Now()
	l.phase.Store(phaseMeasure)
	time.Sleep(l.dur)
	l.phase.Store(phaseStop)
	t1 := time.Now()
	c1 := processCPU()
	s1, serr1 := pidsCPU(l.pids)
	m1, _, merr1 := machineCPU()
	wg.Wait() // each worker ends after its current request, bounded by -timeout
	if err := errors.Join(serr, serr1); err != nil {
		return nil, fmt.Errorf("server CPU (-watch): %w", err)
	}
	if err := errors.Join(merr, merr1); err != nil {
		return nil, fmt.Errorf("machine CPU: %w", err)
	}

	res := &loadResult{window: t1.Sub(t0), clientCPU: c1 - c0, serverCPU: s1 - s0, machineBusy: m1 - m0,
		firstErr: l.first, leafSigAlg: l.sigAlg, leafBytes: l.leafN}
	for i := range stats {
		res.ops += stats[i].ops
		res.errors += stats[i].errors
		res.warmupErrors += stats[i].warmupErrors
		res.lat = append(res.lat, stats[i].lat...)
	}
	return res, nil
}

// worker sends requests back to back on its own keep-alive connection
// (HTTP/1.1) until the stop phase. Only requests that complete inside the
// measured window count, and only their latencies are kept.
func (l *load) worker(ctx context.Context, w int, bodies [][]byte, st *workerStats) {
	tr := &http.Transport{
		MaxIdleConns:        1,
		MaxIdleConnsPerHost: 1,
		MaxConnsPerHost:     1,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
		TLSClientConfig:     &tls.Config{RootCAs: l.roots, MinVersion: tls.VersionTLS12},
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1 only, like the peer
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: l.timeout}
	st.lat = make([]time.Duration, 0, 4096)
	url := l.adapter.URL()
	if len(l.bases) > 1 {
		url = l.bases[w%len(l.bases)] + strings.TrimPrefix(url, l.base)
	}
	// Workers start at different places in the pool.
	i := w * len(bodies) / l.workers
	for {
		if l.phase.Load() == phaseStop {
			return
		}
		c := l.csrs[i%len(l.csrs)]
		body := bodies[i%len(bodies)]
		i++
		elapsed, err := l.once(ctx, client, url, c, body)
		switch ph := l.phase.Load(); {
		case ph == phaseMeasure && err == nil:
			st.ops++
			st.lat = append(st.lat, elapsed)
		case ph == phaseMeasure:
			st.errors++
		case ph == phaseWarmup && err != nil:
			st.warmupErrors++
		}
		if err != nil {
			l.noteErr(err)
			time.Sleep(10 * time.Millisecond) // no hot loop against a dead server
		}
	}
}

// once issues one certificate and checks the answer. The latency it
// returns runs from sending the request to having read the whole answer;
// the checks that follow are the client's own CPU and are not in it.
func (l *load) once(ctx context.Context, client *http.Client, url string, c *csr, body []byte) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	l.adapter.Header(req.Header)
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return time.Since(start), err
	}
	ans, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	resp.Body.Close()
	latency := time.Since(start)
	if err != nil {
		return latency, fmt.Errorf("read answer: %w", err)
	}
	der, serial, err := l.adapter.Leaf(resp.StatusCode, ans)
	if err != nil {
		return latency, err
	}
	return latency, l.check(c, der, serial)
}

// check verifies an issued certificate: it parses, holds the CSR's key and
// name, is signed by the issuer, and has the serial the API reported.
func (l *load) check(c *csr, der []byte, serial *big.Int) error {
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("issued certificate does not parse: %w", err)
	}
	if k, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(c.pub) {
		return errors.New("issued certificate does not hold the CSR's public key")
	}
	if !slices.Contains(leaf.DNSNames, c.name) {
		return fmt.Errorf("issued certificate lacks the DNS name %s (has %v)", c.name, leaf.DNSNames)
	}
	if err := leaf.CheckSignatureFrom(l.issuer); err != nil {
		return fmt.Errorf("issued certificate does not verify against -issuer: %w", err)
	}
	if serial != nil && serial.Cmp(leaf.SerialNumber) != 0 {
		return fmt.Errorf("API serial %v differs from the certificate's %x", serial, leaf.SerialNumber)
	}
	l.leafOnce.Do(func() { l.sigAlg, l.leafN = leaf.SignatureAlgorithm.String(), len(der) })
	return nil
}

func (l *load) noteErr(err error) {
	l.errMu.Lock()
	if l.first == nil {
		l.first = err
	}
	l.errMu.Unlock()
}
