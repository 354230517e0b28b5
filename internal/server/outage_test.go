package server

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/store/postgres/pgtest"
)

// tcpProxy forwards loopback connections to a server and can cut them all,
// refusing new ones, as a database that went down does.
type tcpProxy struct {
	addr   string
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{target: target, conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.pipe(c)
		}
	}()
}

func (p *tcpProxy) pipe(c net.Conn) {
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // cut meanwhile
		p.mu.Unlock()
		c.Close()
		u.Close()
		return
	}
	p.conns[c], p.conns[u] = true, true
	p.mu.Unlock()
	go func() { io.Copy(u, c); u.Close() }()
	io.Copy(c, u)
	c.Close()
}

// cut closes every connection and stops listening.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// restore listens again on the same address, unless it listens.
func (p *tcpProxy) restore(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	up := p.ln != nil
	p.mu.Unlock()
	if up {
		return
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("proxy: listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

// TestStoreOutage runs the API on PostgreSQL behind a proxy, cuts the
// proxy as a database outage would, and checks that every request answers
// 503 with the error naming the store, never a 500, and that the API
// recovers by itself once the database is back.
func TestStoreOutage(t *testing.T) {
	ctx := t.Context()
	pg := pgtest.NewSchema(t)
	base, err := url.Parse(pg.URL)
	if err != nil {
		t.Fatal(err)
	}

	proxy := newTCPProxy(t, base.Host)
	u := *base
	u.Host = proxy.addr
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()

	cfg := DevConfig(t.TempDir(), "127.0.0.1:0", "")
	cfg.Store = u.String()
	cfg.Public.BaseURL = "http://pki.test"
	logs := &syncBuffer{}
	s, files, err := PrepareDev(ctx, cfg, Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	tok, err := os.ReadFile(files.Token)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)

	do := func(method, path, body string) (int, apiv1.ErrorBody) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		var eb apiv1.ErrorBody
		b, _ := io.ReadAll(resp.Body)
		json.Unmarshal(b, &eb)
		return resp.StatusCode, eb
	}
	issue := `{"ca":"` + DemoIntermediate + `","profile":"client","common_name":"outage","validity":"1h"}`
	if code, eb := do("POST", "/v1/certificates", issue); code != http.StatusOK && code != http.StatusCreated {
		t.Fatalf("issue before the outage: %d %+v", code, eb)
	}

	cases := []struct{ name, method, path, body string }{
		{"issue", "POST", "/v1/certificates", issue},
		{"list certificates", "GET", "/v1/certificates", ""},
		{"list CAs", "GET", "/v1/cas", ""},
		{"show certificate", "GET", "/v1/certificates/0123", ""},
		{"revoke", "POST", "/v1/certificates/0123/revoke", `{}`},
		{"list trust stores", "GET", "/v1/truststores", ""},
	}
	check := func(t *testing.T, method, path, body string) {
		t.Helper()
		code, eb := do(method, path, body)
		if code != http.StatusServiceUnavailable || eb.Error.Code != "unavailable" ||
			!strings.Contains(eb.Error.Message, "store unavailable") {
			t.Errorf("during the outage: %d %+v; want 503, code unavailable, a message naming the store", code, eb)
			if eb.Error.ID != "" {
				for _, l := range strings.Split(string(logs.Bytes()), "\n") {
					if strings.Contains(l, eb.Error.ID) {
						t.Logf("log: %s", l)
					}
				}
			}
		}
	}
	// Warm: the credential and the issuer are cached (for 1 s), and pooled
	// connections break under the request, so that each request fails
	// deep in its path, not at authentication.
	for _, tc := range cases {
		t.Run("fail/warm/"+tc.name, func(t *testing.T) {
			proxy.restore(t)
			if code, eb := do("POST", "/v1/certificates", issue); code != http.StatusOK && code != http.StatusCreated {
				t.Fatalf("warm-up issue: %d %+v", code, eb)
			}
			proxy.cut()
			check(t, tc.method, tc.path, tc.body)
		})
	}
	// Cold: past the caches, every request needs the database from the start.
	time.Sleep(1200 * time.Millisecond)
	for _, tc := range cases {
		t.Run("fail/cold/"+tc.name, func(t *testing.T) {
			check(t, tc.method, tc.path, tc.body)
		})
	}

	proxy.restore(t)
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, eb := do("POST", "/v1/certificates", issue)
		if code == http.StatusOK || code == http.StatusCreated {
			break
		}
		if code != http.StatusServiceUnavailable {
			t.Fatalf("recovering: %d %+v; want 503 until the store answers, then success", code, eb)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery within 15 s of the database coming back: %d %+v", code, eb)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
