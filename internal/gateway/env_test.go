package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/config"
)

// syncBuffer collects log lines written from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []map[string]any {
	s.mu.Lock()
	data := append([]byte(nil), s.b.Bytes()...)
	s.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err == nil {
			out = append(out, m)
		}
	}
	return out
}

// find waits for a line whose key equals val.
func (s *syncBuffer) find(t testing.TB, key string, val any) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range s.lines() {
			if jsonEqual(m[key], val) {
				return m
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no log line with %s=%v", key, val)
	return nil
}

func jsonEqual(a, b any) bool {
	switch bv := b.(type) {
	case int:
		f, ok := a.(float64)
		return ok && f == float64(bv)
	}
	return a == b
}

// echo is what the echo backend answers: what it received.
type echo struct {
	Method string      `json:"method"`
	Path   string      `json:"path"`
	Host   string      `json:"host"`
	Header http.Header `json:"header"`
}

// env is a running gateway in front of a real echo backend, with a test PKI.
type env struct {
	t         *testing.T
	dir       string
	root      *tca
	inter     *tca
	server    *leafCert
	client    *leafCert // valid, via inter, with DNS and URI SANs
	revoked   *leafCert // on inter's CRL
	backend   *httptest.Server
	downURL   string
	gw        *Gateway
	connLog   *syncBuffer
	accessLog *syncBuffer
	logs      *syncBuffer
	cfg       config.Gateway
	cancel    context.CancelFunc
	done      chan error
}

// Paths of the files the base configuration uses.
func (e *env) path(name string) string { return filepath.Join(e.dir, name) }

type envOpt struct {
	mutate    func(e *env, g *config.Gateway)
	beforeRun func(e *env)
	sources   func(e *env) map[string]TrustSource
}

func newEnv(t *testing.T, opt envOpt) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), connLog: &syncBuffer{}, accessLog: &syncBuffer{}, logs: &syncBuffer{}}
	e.root = newCA(t, "Test Root")
	e.inter = e.root.sub(t, "Test Intermediate")
	e.server = e.root.issue(t, leafOpts{subject: pkix.Name{CommonName: "gateway"}, dns: []string{"localhost"},
		ips: []net.IP{net.IPv4(127, 0, 0, 1)}, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	e.client = e.inter.issue(t, leafOpts{subject: pkix.Name{CommonName: "svc-a", Organization: []string{"Example"}},
		dns: []string{"svc-a.prod.internal"}, uris: []string{"spiffe://prod.internal/ns/web/sa/svc-a"}})
	e.revoked = e.inter.client(t, "revoked")
	writeFile(t, e.path("server.pem"), pemCerts(e.server.chain...))
	writeFile(t, e.path("server.key"), pemKey(t, e.server.key))
	writeFile(t, e.path("ca.pem"), pemCerts(e.root.cert, e.inter.cert))
	now := time.Now()
	writeFile(t, e.path("inter.crl"), e.inter.crl(t, now.Add(-time.Hour), now.Add(24*time.Hour), e.revoked.cert.SerialNumber))

	e.backend = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/slow") {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(3 * time.Second):
			}
		}
		if strings.HasPrefix(r.URL.Path, "/sleep") {
			time.Sleep(300 * time.Millisecond)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(echo{Method: r.Method, Path: r.URL.Path, Host: r.Host, Header: r.Header})
	}))
	t.Cleanup(e.backend.Close)
	// A port that refuses connections.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.downURL = "http://" + ln.Addr().String()
	ln.Close()

	e.cfg = config.Gateway{
		Timeouts: config.GatewayTimeouts{ReadHeader: config.Duration(2 * time.Second), Shutdown: config.Duration(5 * time.Second)},
		Listeners: []config.GatewayListener{{
			Name:        "main",
			Address:     "127.0.0.1:0",
			Certificate: config.GatewayCertificate{CertFile: e.path("server.pem"), KeyFile: e.path("server.key")},
			MTLS: config.GatewayMTLS{
				Mode:        config.MTLSVerify,
				TrustStore:  config.GatewayTrustStore{CAFile: e.path("ca.pem"), CRLFiles: []string{e.path("inter.crl")}},
				MaxCertSize: 4096,
			},
			Routes: e.routes(),
		}},
	}
	if opt.mutate != nil {
		opt.mutate(e, &e.cfg)
	}
	e.start(opt)
	return e
}

// routes are the base routes, for listeners that tests add.
func (e *env) routes() []config.GatewayRoute {
	ms := func(d time.Duration) config.Duration { return config.Duration(d) }
	return []config.GatewayRoute{
		{Name: "default", Backend: config.GatewayBackend{URL: e.backend.URL}},
		{Name: "slow", PathPrefix: "/slow", Backend: config.GatewayBackend{URL: e.backend.URL, Timeout: ms(300 * time.Millisecond)}},
		{Name: "down", PathPrefix: "/down", Backend: config.GatewayBackend{URL: e.downURL}},
		{Name: "admin", PathPrefix: "/admin", Backend: config.GatewayBackend{URL: e.backend.URL},
			Allow: config.GatewayAllow{URIPrefixes: []string{"spiffe://prod.internal/ns/admin/"}}},
	}
}

func (e *env) start(opt envOpt) {
	t := e.t
	ctx, cancel := context.WithCancel(context.Background())
	var sources map[string]TrustSource
	if opt.sources != nil {
		sources = opt.sources(e)
	}
	gw, err := New(ctx, Config{
		TrustSources:  sources,
		Spec:          e.cfg,
		Logger:        slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		ConnectionLog: e.connLog,
		AccessLog:     e.accessLog,
		PollInterval:  50 * time.Millisecond,
	})
	if err != nil {
		cancel()
		t.Fatalf("New: %v", err)
	}
	e.gw, e.cancel, e.done = gw, cancel, make(chan error, 1)
	if opt.beforeRun != nil {
		opt.beforeRun(e)
	}
	go func() { e.done <- gw.Run(ctx) }()
	t.Cleanup(e.stop)
}

func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	e.cancel = nil
	select {
	case err := <-e.done:
		if err != nil {
			e.t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		e.t.Error("Run did not return after cancel")
	}
	if e.t.Failed() {
		e.t.Logf("gateway log:\n%s", e.logs.b.String())
	}
}

func (e *env) addr(listener string) string { return e.gw.Addr(listener).String() }

// clientTLS trusts the test root and presents cert (nil: none).
func (e *env) clientTLS(cert *leafCert) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(e.root.cert)
	c := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	if cert != nil {
		c.Certificates = []tls.Certificate{cert.tls()}
	}
	return c
}

type result struct {
	status int
	body   []byte
	port   int // the client's port, to find the connection log line
	cs     tls.ConnectionState
	err    error
}

func (r result) echo(t testing.TB) echo {
	t.Helper()
	if r.err != nil || r.status != 200 {
		t.Fatalf("request: status %d, err %v, body %s", r.status, r.err, r.body)
	}
	var ec echo
	if err := json.Unmarshal(r.body, &ec); err != nil {
		t.Fatalf("echo body %q: %v", r.body, err)
	}
	return ec
}

// get makes one HTTP/1.1 request on a new connection.
func (e *env) get(listener string, cfg *tls.Config, path string, hdr http.Header) result {
	var res result
	raw, err := net.DialTimeout("tcp", e.addr(listener), 5*time.Second)
	if err != nil {
		res.err = err
		return res
	}
	defer raw.Close()
	res.port = raw.LocalAddr().(*net.TCPAddr).Port
	conn := tls.Client(raw, cfg)
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if res.err = conn.Handshake(); res.err != nil {
		return res
	}
	res.cs = conn.ConnectionState()
	req, _ := http.NewRequest(http.MethodGet, "https://localhost"+path, nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Close = true
	if res.err = req.Write(conn); res.err != nil {
		return res
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		res.err = err
		return res
	}
	defer resp.Body.Close()
	res.status = resp.StatusCode
	res.body, res.err = io.ReadAll(resp.Body)
	return res
}
