package gateway

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/config"
)

// seen is what the recording backend got.
type seen struct {
	Method, URI, Host, Proto string
	Header                   http.Header
	TE                       []string
	CL                       int64
	Body                     string
	Trailer                  http.Header
}

// recordingBackend answers with what it received as JSON, and with the
// response headers and trailers the test asks for.
func recordingBackend(t *testing.T) *httptest.Server {
	t.Helper()
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s := seen{Method: r.Method, URI: r.RequestURI, Host: r.Host, Proto: r.Proto, Header: r.Header,
			TE: r.TransferEncoding, CL: r.ContentLength, Body: string(body), Trailer: r.Trailer}
		h := w.Header()
		if strings.Contains(r.URL.Path, "/hop") {
			h.Set("Connection", "X-Hop-Resp, close-not")
			h.Set("X-Hop-Resp", "1")
			h.Set("Keep-Alive", "timeout=5")
			h.Set("Proxy-Authenticate", "Basic")
			h.Set("Upgrade", "h2c")
			h.Add("X-Multi", "a")
			h.Add("X-Multi", "b")
		}
		if strings.Contains(r.URL.Path, "/trailer") {
			h.Set("Trailer", "X-Sum")
		}
		h.Set("Content-Type", "application/json")
		if r.Method != http.MethodHead {
			json.NewEncoder(w).Encode(s)
		}
		if strings.Contains(r.URL.Path, "/trailer") {
			h.Set("X-Sum", "42")
			h.Set(http.TrailerPrefix+"X-Late", "late")
		}
	}))
	t.Cleanup(b.Close)
	return b
}

// rawExchange sends raw, one HTTP/1.1 request, on a new mTLS connection
// and returns the response with its body read.
func rawExchange(t *testing.T, e *env, raw string) (*http.Response, string) {
	t.Helper()
	conn, err := tls.Dial("tcp", e.addr("main"), e.clientTLS(e.client))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	method, _, _ := strings.Cut(raw, " ")
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// TestForwarderMatchesReverseProxy sends the same requests through the
// forwarder and through the route's ReverseProxy, and compares what the
// backend received and what the client got back.
func TestForwarderMatchesReverseProxy(t *testing.T) {
	backend := recordingBackend(t)
	e := newEnv(t, envOpt{
		mutate: func(e *env, g *config.Gateway) {
			g.Listeners[0].Routes = append(g.Listeners[0].Routes,
				config.GatewayRoute{Name: "fast", PathPrefix: "/fast", Backend: config.GatewayBackend{URL: backend.URL}},
				config.GatewayRoute{Name: "proxy", PathPrefix: "/proxy", Backend: config.GatewayBackend{URL: backend.URL + "/"}})
		},
		beforeRun: func(e *env) {
			for _, r := range e.gw.listeners[0].router.routes {
				switch r.name {
				case "fast":
					if r.fwd == nil {
						t.Fatal("the route to a plain-HTTP backend has no forwarder")
					}
				case "proxy":
					r.fwd = nil
				}
			}
		},
	})
	const common = "Host: localhost\r\nUser-Agent: one\r\nUser-Agent: two\r\nAccept: */*\r\n"
	cases := map[string]string{
		"get": "GET /P/a%2Fb?x=1&y=%41 HTTP/1.1\r\n" + common + "\r\n",
		"hop-by-hop": "GET /P/hop HTTP/1.1\r\n" + common +
			"Connection: keep-alive, X-Named, x-lower-named\r\nX-Named: 1\r\nX-Lower-Named: 2\r\nKeep-Alive: 300\r\n" +
			"Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nTe: trailers, deflate\r\nTrailer: X-T\r\n" +
			"X-Kept: yes\r\n\r\n",
		"forwarding": "GET /P/fwd HTTP/1.1\r\n" + common +
			"Forwarded: for=203.0.113.9\r\nX-Forwarded-For: 203.0.113.7\r\nX-Forwarded-For: 198.51.100.1, 198.51.100.2\r\n" +
			"X-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: http\r\nX_Forwarded_For: 1.2.3.4\r\n" +
			"X-Amzn-Mtls-Clientcert-Subject: CN=admin\r\nx-amzn-mtls-clientcert: spoof\r\nX-Forwarded-Client-Cert: spoof\r\n\r\n",
		"no-user-agent":  "GET /P/ HTTP/1.1\r\nHost: localhost\r\n\r\n",
		"empty-agent":    "GET /P/ HTTP/1.1\r\nHost: localhost\r\nUser-Agent:\r\n\r\n",
		"bad-query":      "GET /P/q?a=1;b=2&c=3&d=%zz HTTP/1.1\r\n" + common + "\r\n",
		"force-query":    "GET /P/q? HTTP/1.1\r\n" + common + "\r\n",
		"host-port":      "GET /P/ HTTP/1.1\r\nHost: LocalHost:443\r\n\r\n",
		"post-length":    "POST /P/post HTTP/1.1\r\n" + common + "Content-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world",
		"post-chunked":   "POST /P/post HTTP/1.1\r\n" + common + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
		"post-empty":     "POST /P/post HTTP/1.1\r\n" + common + "Content-Length: 0\r\n\r\n",
		"delete":         "DELETE /P/thing HTTP/1.1\r\n" + common + "\r\n",
		"head":           "HEAD /P/thing HTTP/1.1\r\n" + common + "\r\n",
		"trailer":        "GET /P/trailer HTTP/1.1\r\n" + common + "Te: trailers\r\n\r\n",
		"custom-method":  "PURGE /P/x HTTP/1.1\r\n" + common + "\r\n",
		"http/1.0":       "GET /P/old HTTP/1.0\r\nHost: localhost\r\n\r\n",
		"absolute-form":  "GET https://localhost/P/abs?q=1 HTTP/1.1\r\nHost: localhost\r\n\r\n",
		"connection-xff": "GET /P/x HTTP/1.1\r\nHost: localhost\r\nConnection: X-Forwarded-For\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n",
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			type answer struct {
				status  int
				header  http.Header
				trailer http.Header
				seen    seen
			}
			get := func(prefix string) answer {
				resp, body := rawExchange(t, e, strings.Replace(raw, "/P/", prefix, 1))
				a := answer{status: resp.StatusCode, header: resp.Header, trailer: resp.Trailer}
				a.header.Del("Date")
				if resp.Request.Method != http.MethodHead {
					if err := json.Unmarshal([]byte(body), &a.seen); err != nil {
						t.Fatalf("%s: %v: %q", prefix, err, body)
					}
				}
				if a.seen.URI != "" {
					a.seen.URI = strings.Replace(a.seen.URI, prefix, "/P/", 1)
				}
				// The backend's JSON carries the length of what it got, so
				// the response's Content-Length differs with the prefix.
				a.header.Del("Content-Length")
				return a
			}
			fast, slow := get("/fast/"), get("/proxy/")
			if !reflect.DeepEqual(fast, slow) {
				t.Errorf("forwarder and ReverseProxy differ:\nforwarder:    %+v\nReverseProxy: %+v", fast, slow)
			}
			if fast.status != http.StatusOK {
				t.Errorf("status %d", fast.status)
			}
		})
	}
	// What the comparisons above rely on, spelled out once.
	resp, body := rawExchange(t, e, strings.Replace(cases["hop-by-hop"], "/P/", "/fast/", 1))
	var s seen
	json.Unmarshal([]byte(body), &s)
	for _, k := range []string{"Connection", "X-Named", "X-Lower-Named", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Trailer"} {
		if v, ok := s.Header[k]; ok {
			t.Errorf("backend got hop-by-hop header %s: %q", k, v)
		}
	}
	if s.Header.Get("Te") != "trailers" || s.Header.Get("X-Kept") != "yes" {
		t.Errorf("backend got Te %q, X-Kept %q", s.Header.Get("Te"), s.Header.Get("X-Kept"))
	}
	for _, k := range []string{"X-Hop-Resp", "Keep-Alive", "Proxy-Authenticate", "Upgrade"} {
		if v, ok := resp.Header[k]; ok {
			t.Errorf("client got hop-by-hop response header %s: %q", k, v)
		}
	}
	if got := resp.Header["X-Multi"]; !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("X-Multi %q", got)
	}
	_, body = rawExchange(t, e, strings.Replace(cases["forwarding"], "/P/", "/fast/", 1))
	s = seen{}
	json.Unmarshal([]byte(body), &s)
	for k, v := range s.Header {
		if strings.Contains(k, "_") || strings.Contains(strings.Join(v, ","), "spoof") || strings.Contains(strings.Join(v, ","), "admin") {
			t.Errorf("spoofed %s: %q reached the backend", k, v)
		}
	}
	if got := s.Header.Get("X-Forwarded-For"); got != "203.0.113.7, 198.51.100.1, 198.51.100.2, 127.0.0.1" {
		t.Errorf("X-Forwarded-For %q", got)
	}
	if s.Header.Get("X-Forwarded-Host") != "localhost" || s.Header.Get("X-Forwarded-Proto") != "https" || s.Header.Get("Forwarded") != "" {
		t.Errorf("forwarding headers %v", s.Header)
	}
	if s.Header.Get(HeaderSubject) != "CN=svc-a,O=Example" {
		t.Errorf("subject header %q", s.Header.Get(HeaderSubject))
	}
	resp, _ = rawExchange(t, e, strings.Replace(cases["trailer"], "/P/", "/fast/", 1))
	if resp.Trailer.Get("X-Sum") != "42" || resp.Trailer.Get("X-Late") != "late" {
		t.Errorf("trailers %v", resp.Trailer)
	}
}

// TestForwarderStreams: bodies of unknown length flow through as they
// come, both ways, without waiting for their end.
func TestForwarderStreams(t *testing.T) {
	gotFirst := make(chan struct{})
	release := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/down":
			io.WriteString(w, "first;")
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-time.After(5 * time.Second):
			}
			io.WriteString(w, "second")
		case "/up":
			first := make([]byte, len("first;"))
			if _, err := io.ReadFull(r.Body, first); err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			close(gotFirst)
			rest, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s%s", first, rest)
		}
	}))
	t.Cleanup(backend.Close)
	e := newEnv(t, envOpt{mutate: func(e *env, g *config.Gateway) {
		g.Listeners[0].Routes = []config.GatewayRoute{{Name: "stream", Backend: config.GatewayBackend{URL: backend.URL}}}
	}})
	tr := &http.Transport{TLSClientConfig: e.clientTLS(e.client)}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	t.Run("response", func(t *testing.T) {
		resp, err := client.Get("https://" + e.addr("main") + "/down")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		first := make([]byte, len("first;"))
		if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first;" {
			t.Fatalf("first part %q, %v", first, err)
		}
		close(release) // the backend finishes only once the client has the first part
		rest, _ := io.ReadAll(resp.Body)
		if string(rest) != "second" {
			t.Errorf("rest %q", rest)
		}
	})
	t.Run("request", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() {
			io.WriteString(pw, "first;")
			select {
			case <-gotFirst: // the backend has the first part before the client sends more
				io.WriteString(pw, "second")
				pw.Close()
			case <-time.After(5 * time.Second):
				pw.CloseWithError(fmt.Errorf("the backend did not get the first part"))
			}
		}()
		resp, err := client.Post("https://"+e.addr("main")+"/up", "text/plain", pr)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if string(body) != "first;second" {
			t.Errorf("status %d body %q", resp.StatusCode, body)
		}
	})
}

// TestForwarderBackendFailures: a backend that closes without answering is
// a 502, one that answers late a 504, both with the error envelope and
// logged; a response cut short cuts the client's connection.
func TestForwarderBackendFailures(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hangup":
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		case "/late":
			time.Sleep(500 * time.Millisecond)
		case "/cut":
			w.Header().Set("Content-Length", "100")
			io.WriteString(w, "short")
			w.(http.Flusher).Flush()
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		}
	}))
	t.Cleanup(backend.Close)
	e := newEnv(t, envOpt{mutate: func(e *env, g *config.Gateway) {
		g.Listeners[0].Routes = []config.GatewayRoute{{Name: "b", Backend: config.GatewayBackend{URL: backend.URL,
			Timeout: config.Duration(200 * time.Millisecond)}}}
	}})
	cfg := e.clientTLS(e.client)
	for _, tc := range []struct {
		path, msg string
		status    int
	}{
		{"/hangup", "the backend is unavailable", http.StatusBadGateway},
		{"/late", "the backend did not answer in time", http.StatusGatewayTimeout},
	} {
		res := e.get("main", cfg, tc.path, nil)
		var body struct {
			Error struct{ Code, Message, ID string }
		}
		if err := json.Unmarshal(res.body, &body); err != nil || res.status != tc.status || body.Error.Message != tc.msg || body.Error.ID == "" {
			t.Errorf("%s: status %d body %s err %v", tc.path, res.status, res.body, res.err)
			continue
		}
		acc := e.accessLog.find(t, "client_port", res.port)
		if acc["status"] != float64(tc.status) || acc["error_id"] != body.Error.ID || acc["route"] != "b" {
			t.Errorf("%s: access log %v", tc.path, acc)
		}
	}
	res := e.get("main", cfg, "/cut", nil)
	if res.err == nil {
		t.Errorf("a response cut short by the backend reached the client whole: %d %q", res.status, res.body)
	}
	e.get("main", cfg, "/", nil) // still serving
}

// TestIdentityCache: a certificate seen again gets the identity computed
// the first time; another certificate, mode or header set gets its own.
func TestIdentityCache(t *testing.T) {
	root := newCA(t, "Cache Root")
	inter := root.sub(t, "Cache Intermediate")
	a, b := inter.client(t, "a"), inter.client(t, "b")
	var c identityCache
	first := c.get("verify", a.chain, "alb")
	if again := c.get("verify", a.chain, "alb"); again != first {
		t.Error("the same leaf got a new identity")
	}
	// verify mode: the headers come from the leaf alone.
	if c.get("verify", a.chain[:1], "alb") != first {
		t.Error("verify mode keyed on more than the leaf")
	}
	for name, id := range map[string]*identity{
		"other leaf":        c.get("verify", b.chain, "alb"),
		"other headers":     c.get("verify", a.chain, "both"),
		"other mode":        c.get("passthrough", a.chain, "alb"),
		"passthrough chain": c.get("passthrough", a.chain[:1], "alb"),
	} {
		if id == first {
			t.Errorf("%s: got the cached identity of another key", name)
		}
	}
	if got, want := c.get("verify", b.chain, "alb").subject, "CN=b"; !strings.HasPrefix(got, want) {
		t.Errorf("subject %q", got)
	}
	if !reflect.DeepEqual(c.get("passthrough", a.chain, "alb").headers, newIdentity("passthrough", a.chain, "alb").headers) {
		t.Error("a cached passthrough identity differs from a fresh one")
	}
	if c.get("verify", nil, "alb") != nil {
		t.Error("no chain, an identity")
	}
	for i := 0; i < identityCacheMax+10; i++ {
		c.get("verify", a.chain, strconv.Itoa(i))
	}
	if len(c.m) > identityCacheMax {
		t.Errorf("%d entries, over the bound", len(c.m))
	}
}

// TestFileSourceVersion: the version of a file trust store changes with
// the CA file or a CRL's content, not with a rewrite of the same bytes or
// the same CRL in PEM.
func TestFileSourceVersion(t *testing.T) {
	dir := t.TempDir()
	root := newCA(t, "Version Root")
	inter := root.sub(t, "Version Intermediate")
	now := time.Now()
	crl1 := inter.crl(t, now.Add(-time.Hour), now.Add(time.Hour), big.NewInt(1))
	crl2 := inter.crl(t, now.Add(-time.Hour), now.Add(time.Hour), big.NewInt(1), big.NewInt(2))
	ca, crl := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "crl")
	writeFile(t, ca, pemCerts(root.cert, inter.cert))
	src := &FileSource{CAFile: ca, CRLFiles: []string{crl}}
	version := func(data []byte) string {
		t.Helper()
		writeFile(t, crl, data)
		_, v, err := src.compile()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	v1 := version(crl1)
	if version(crl1) != v1 {
		t.Error("the same CRL again: another version")
	}
	if version(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crl1})) != v1 {
		t.Error("the same CRL in PEM: another version")
	}
	if version(crl2) == v1 {
		t.Error("another CRL: the same version")
	}
	writeFile(t, ca, pemCerts(inter.cert, root.cert))
	if version(crl1) == v1 {
		t.Error("another CA file: the same version")
	}
}
