// Command mtlsload is the mTLS load generator of bench/gateway/run.sh. It
// uses the standard library only and talks HTTP/1.1 over TLS 1.3 to one
// address on the loopback.
//
// Modes:
//
//   - handshake: each operation is a new TCP connection, a full TLS 1.3
//     handshake with a client certificate (no session ticket, no PSK: no
//     resumption), one "GET / HTTP/1.1" with "Connection: close", and the
//     200 response read to its end. In TLS 1.3 the client's handshake ends
//     before the server has checked the client certificate, so the request
//     is what proves the server accepted it.
//   - request: one keep-alive connection per worker and GETs back to back.
//
// It prints one JSON line: operations per second over the measured window
// (after a warmup), latency percentiles, errors, the negotiated TLS
// parameters, its own CPU time, and the CPU time of the processes given
// with -watch (from /proc/PID/stat, all threads, children included), so
// that a server's CPU cost per operation can be compared across servers
// that share the machine with the load generator.
//
// With -once it does a single operation and exits 0 when it succeeded, 1
// otherwise (run.sh uses it to check that a revoked certificate is refused).
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat times: 100 on every
// Linux architecture Go runs on (getconf CLK_TCK).
const clockTicks = 100

type watchList []string

func (w *watchList) String() string     { return strings.Join(*w, " ") }
func (w *watchList) Set(v string) error { *w = append(*w, v); return nil }

var (
	addr      = flag.String("addr", "127.0.0.1:19441", "server address (loopback only)")
	sni       = flag.String("sni", "localhost", "TLS server name, also the Host header")
	certFile  = flag.String("cert", "", "client certificate chain, PEM, leaf first")
	keyFile   = flag.String("key", "", "client private key, PEM")
	caFile    = flag.String("ca", "", "CA certificates that verify the server, PEM")
	modeFlag  = flag.String("mode", "handshake", "handshake | request")
	workers   = flag.Int("c", 8, "concurrent workers")
	duration  = flag.Duration("d", 10*time.Second, "measured window")
	warmup    = flag.Duration("warmup", time.Second, "load before the measured window, not counted")
	opTimeout = flag.Duration("timeout", 3*time.Second, "deadline of one operation")
	path      = flag.String("path", "/", "request path")
	expect    = flag.String("expect-subject", "", "require the backend's X-Echo-Subject response header to contain this (the proxy forwarded the client identity)")
	localIPs  = flag.Int("local-ips", 8, "spread source addresses over 127.0.0.1..127.0.0.N, so that TIME_WAIT does not exhaust ports")
	label     = flag.String("label", "", "copied into the JSON line")
	once      = flag.Bool("once", false, "one operation; exit status 0 if it succeeded")
	watches   watchList
)

func init() {
	flag.Var(&watches, "watch", "NAME=PID[,PID...]: CPU time of these processes and their children over the window; repeatable")
}

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mtlsload:", err)
		os.Exit(2)
	}
}

// result is the JSON line.
type result struct {
	Label        string               `json:"label"`
	Mode         string               `json:"mode"`
	Addr         string               `json:"addr"`
	Workers      int                  `json:"c"`
	WindowS      float64              `json:"window_s"`
	Ops          int                  `json:"ops"`
	OpsPerS      float64              `json:"ops_per_s"`
	Errors       int                  `json:"errors"`
	ErrorsTotal  int                  `json:"errors_total"`
	ErrorSamples []string             `json:"error_samples,omitempty"`
	P50ms        float64              `json:"p50_ms"`
	P90ms        float64              `json:"p90_ms"`
	P99ms        float64              `json:"p99_ms"`
	MaxMs        float64              `json:"max_ms"`
	TLSVersion   string               `json:"tls_version"`
	Cipher       string               `json:"cipher"`
	Group        string               `json:"group"`
	Resumed      int64                `json:"resumed"`
	ClientCPUS   float64              `json:"client_cpu_s"`
	ClientUsOp   float64              `json:"client_cpu_us_per_op"`
	Watch        map[string]watchFigs `json:"watch,omitempty"`
	// MachineCores is the busy CPU of the whole machine over the window
	// (/proc/stat), in cores; OtherCores is that minus this process and
	// the watched ones: what other work took from the machine meanwhile.
	MachineCores float64 `json:"machine_cores"`
	OtherCores   float64 `json:"other_cores"`
	Start        string  `json:"start"`
}

type watchFigs struct {
	PIDs     []int   `json:"pids"`
	CPUS     float64 `json:"cpu_s"`
	UsPerOp  float64 `json:"cpu_us_per_op"`
	CoreUtil float64 `json:"cores"`
}

type cpuSample struct {
	pids  []int
	ticks uint64
}

// worker state: latencies of the operations that ended in the window.
type worker struct {
	lat      []time.Duration
	errs     int
	errTotal int
}

type shared struct {
	cfg        *tls.Config
	req        []byte
	start      time.Time // window start
	end        time.Time // window end
	stop       atomic.Bool
	resumed    atomic.Int64
	mu         sync.Mutex
	errSamples map[string]int
	tlsInfo    atomic.Value // "version cipher group" of the first connection
}

func (s *shared) noteErr(err error) {
	msg := err.Error()
	if len(msg) > 160 {
		msg = msg[:160]
	}
	s.mu.Lock()
	if len(s.errSamples) < 8 || s.errSamples[msg] > 0 {
		s.errSamples[msg]++
	}
	s.mu.Unlock()
}

func run() error {
	if *certFile == "" || *keyFile == "" || *caFile == "" {
		return errors.New("-cert, -key and -ca are required")
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s: only loopback addresses are allowed", *addr)
	}
	pair, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(*caFile)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("%s: no certificate", *caFile)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{pair},
		RootCAs:      roots,
		ServerName:   *sni,
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		// X25519 as OpenSSL 3.0 peers offer it (no hybrid ML-KEM, which
		// they lack and which costs more); P-256 as a fallback.
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256},
		// No resumption: no session cache, no tickets, no PSK offered.
		SessionTicketsDisabled: true,
		ClientSessionCache:     nil,
		NextProtos:             []string{"http/1.1"},
	}
	var mode string
	switch *modeFlag {
	case "handshake", "hs":
		mode = "handshake"
	case "request", "ka", "keepalive":
		mode = "request"
	default:
		return fmt.Errorf("-mode %q: handshake or request", *modeFlag)
	}
	sh := &shared{cfg: cfg, errSamples: map[string]int{}}
	var rb bytes.Buffer
	fmt.Fprintf(&rb, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: trustgate-bench-mtlsload\r\n", *path, *sni)
	if mode == "handshake" {
		rb.WriteString("Connection: close\r\n")
	}
	rb.WriteString("\r\n")
	sh.req = rb.Bytes()

	if *once {
		sh.start, sh.end = time.Now(), time.Now().Add(time.Hour)
		var err error
		if mode == "handshake" {
			_, err = handshakeOp(sh, dialer(0))
		} else {
			var c *tls.Conn
			if c, err = dialTLS(sh, dialer(0)); err == nil {
				_, err = requestOp(sh, c, bufio.NewReader(c))
				c.Close()
			}
		}
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("ok", sh.tlsInfo.Load())
		return nil
	}

	res := &result{Label: *label, Mode: mode, Addr: *addr, Workers: *workers, Watch: map[string]watchFigs{}}
	t0 := time.Now()
	sh.start = t0.Add(*warmup)
	sh.end = sh.start.Add(*duration)
	res.Start = sh.start.UTC().Format(time.RFC3339)
	ws := make([]*worker, *workers)
	var wg sync.WaitGroup
	for i := range ws {
		w := &worker{lat: make([]time.Duration, 0, 1<<14)}
		ws[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			if mode == "handshake" {
				handshakeWorker(sh, w, i)
			} else {
				requestWorker(sh, w, i)
			}
		}()
	}
	// The window: sample the CPU counters at its edges.
	time.Sleep(time.Until(sh.start))
	m0 := machineTicks()
	ru0 := rusage()
	before := map[string]cpuSample{}
	for _, spec := range watches {
		name, s, err := sampleWatch(spec, nil)
		if err != nil {
			return err
		}
		before[name] = s
	}
	time.Sleep(time.Until(sh.end))
	m1 := machineTicks()
	ru1 := rusage()
	after := map[string]cpuSample{}
	for _, spec := range watches {
		name, _, _ := strings.Cut(spec, "=")
		_, s, err := sampleWatch(spec, before[name].pids)
		if err != nil {
			return err
		}
		after[name] = s
	}
	sh.stop.Store(true)
	wg.Wait()

	var all []time.Duration
	for _, w := range ws {
		all = append(all, w.lat...)
		res.Errors += w.errs
		res.ErrorsTotal += w.errTotal
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	win := duration.Seconds()
	res.WindowS = win
	res.Ops = len(all)
	res.OpsPerS = round(float64(len(all))/win, 1)
	res.P50ms, res.P90ms, res.P99ms = pct(all, 50), pct(all, 90), pct(all, 99)
	if len(all) > 0 {
		res.MaxMs = ms(all[len(all)-1])
	}
	res.Resumed = sh.resumed.Load()
	if v, ok := sh.tlsInfo.Load().(string); ok {
		parts := strings.SplitN(v, " ", 3)
		if len(parts) == 3 {
			res.TLSVersion, res.Cipher, res.Group = parts[0], parts[1], parts[2]
		}
	}
	res.ClientCPUS = round(ru1-ru0, 3)
	if res.Ops > 0 {
		res.ClientUsOp = round((ru1-ru0)*1e6/float64(res.Ops), 1)
	}
	for name, b := range before {
		a := after[name]
		cpu := float64(a.ticks-b.ticks) / clockTicks
		f := watchFigs{PIDs: b.pids, CPUS: round(cpu, 2), CoreUtil: round(cpu/win, 3)}
		if res.Ops > 0 {
			f.UsPerOp = round(cpu*1e6/float64(res.Ops), 1)
		}
		res.Watch[name] = f
	}
	if m0 > 0 && m1 > m0 {
		busy := float64(m1-m0) / clockTicks
		other := busy - (ru1 - ru0)
		for _, f := range res.Watch {
			other -= f.CPUS
		}
		res.MachineCores = round(busy/win, 2)
		res.OtherCores = round(max(other, 0)/win, 2)
	}
	for msg, n := range sh.errSamples {
		res.ErrorSamples = append(res.ErrorSamples, fmt.Sprintf("%dx %s", n, msg))
	}
	sort.Strings(res.ErrorSamples)
	out, err := json.Marshal(res)
	if err != nil {
		return err
	}
	fmt.Println(string(out))
	return nil
}

// dialer returns worker i's dialer, bound to one of the loopback source
// addresses.
func dialer(i int) *net.Dialer {
	d := &net.Dialer{Timeout: *opTimeout}
	if *localIPs > 1 {
		d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%*localIPs))}
	}
	return d
}

func dialTLS(sh *shared, d *net.Dialer) (*tls.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), *opTimeout)
	defer cancel()
	raw, err := d.DialContext(ctx, "tcp", *addr)
	if err != nil {
		return nil, err
	}
	raw.SetDeadline(time.Now().Add(*opTimeout))
	c := tls.Client(raw, sh.cfg)
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	cs := c.ConnectionState()
	if cs.DidResume {
		sh.resumed.Add(1)
	}
	if sh.tlsInfo.Load() == nil {
		sh.tlsInfo.Store(versionName(cs.Version) + " " + tls.CipherSuiteName(cs.CipherSuite) + " " + cs.CurveID.String())
	}
	return c, nil
}

// handshakeOp is one full handshake plus one request with Connection: close.
func handshakeOp(sh *shared, d *net.Dialer) (time.Duration, error) {
	t0 := time.Now()
	c, err := dialTLS(sh, d)
	if err != nil {
		return time.Since(t0), err
	}
	defer c.Close()
	_, err = requestOp(sh, c, bufio.NewReaderSize(c, 4096))
	return time.Since(t0), err
}

// requestOp sends one request and reads the whole response.
func requestOp(sh *shared, c *tls.Conn, br *bufio.Reader) (time.Duration, error) {
	t0 := time.Now()
	c.SetDeadline(t0.Add(*opTimeout))
	if _, err := c.Write(sh.req); err != nil {
		return time.Since(t0), fmt.Errorf("write: %w", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return time.Since(t0), fmt.Errorf("read response: %w", err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return time.Since(t0), fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return time.Since(t0), fmt.Errorf("status %d", resp.StatusCode)
	}
	if *expect != "" && !strings.Contains(resp.Header.Get("X-Echo-Subject"), *expect) {
		return time.Since(t0), fmt.Errorf("X-Echo-Subject %q does not contain %q", resp.Header.Get("X-Echo-Subject"), *expect)
	}
	return time.Since(t0), nil
}

// record files one operation that started at t0 and took d.
func (w *worker) record(sh *shared, t0 time.Time, d time.Duration, err error) {
	end := t0.Add(d)
	inWindow := !end.Before(sh.start) && end.Before(sh.end)
	if err != nil {
		w.errTotal++
		if inWindow {
			w.errs++
		}
		sh.noteErr(err)
		return
	}
	if inWindow {
		w.lat = append(w.lat, d)
	}
}

func handshakeWorker(sh *shared, w *worker, i int) {
	d := dialer(i)
	for !sh.stop.Load() {
		t0 := time.Now()
		dur, err := handshakeOp(sh, d)
		w.record(sh, t0, dur, err)
		if err != nil {
			time.Sleep(10 * time.Millisecond) // do not spin on a dead server
		}
	}
}

func requestWorker(sh *shared, w *worker, i int) {
	d := dialer(i)
	var c *tls.Conn
	var br *bufio.Reader
	for !sh.stop.Load() {
		if c == nil {
			t0 := time.Now()
			var err error
			if c, err = dialTLS(sh, d); err != nil {
				w.record(sh, t0, time.Since(t0), err)
				c = nil
				time.Sleep(10 * time.Millisecond)
				continue
			}
			br = bufio.NewReaderSize(c, 16<<10)
		}
		t0 := time.Now()
		dur, err := requestOp(sh, c, br)
		w.record(sh, t0, dur, err)
		if err != nil {
			c.Close()
			c = nil
		}
	}
	if c != nil {
		c.Close()
	}
}

// sampleWatch reads the CPU ticks of "NAME=PID,PID": the processes and
// (when pids is nil) their descendants found now.
func sampleWatch(spec string, pids []int) (string, cpuSample, error) {
	name, list, ok := strings.Cut(spec, "=")
	if !ok {
		return "", cpuSample{}, fmt.Errorf("-watch %q: NAME=PID[,PID...]", spec)
	}
	if pids == nil {
		for _, f := range strings.Split(list, ",") {
			if f == "" {
				continue
			}
			pid, err := strconv.Atoi(f)
			if err != nil {
				return "", cpuSample{}, fmt.Errorf("-watch %q: %w", spec, err)
			}
			pids = append(pids, withDescendants(pid)...)
		}
		pids = dedup(pids)
	}
	var total uint64
	for _, pid := range pids {
		t, err := procTicks(pid)
		if err != nil {
			return "", cpuSample{}, fmt.Errorf("-watch %s: %w", name, err)
		}
		total += t
	}
	return name, cpuSample{pids: pids, ticks: total}, nil
}

// procTicks is utime+stime of a process, all its threads (fields 14 and 15
// of /proc/PID/stat).
func procTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return u + s, nil
}

// machineTicks is the busy time of all CPUs from /proc/stat: user, nice,
// system, irq, softirq and steal (idle and iowait left out).
func machineTicks() uint64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var total uint64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, _ := strconv.ParseUint(f[i], 10, 64)
		total += v
	}
	return total
}

func withDescendants(pid int) []int {
	out := []int{pid}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, withDescendants(c)...)
			}
		}
	}
	return out
}

func dedup(p []int) []int {
	sort.Ints(p)
	out := p[:0]
	for i, v := range p {
		if i == 0 || v != p[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func rusage() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// pct is the p-th percentile (nearest rank) in milliseconds.
func pct(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	k := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	k = max(0, min(k, len(sorted)-1))
	return ms(sorted[k])
}

func ms(d time.Duration) float64 { return round(float64(d)/1e6, 3) }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func versionName(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "TLSv1.3"
	case tls.VersionTLS12:
		return "TLSv1.2"
	}
	return "0x" + strconv.FormatUint(uint64(v), 16)
}
