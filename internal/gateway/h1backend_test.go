package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// h1Backend is a test backend that counts the connections it accepted.
type h1Backend struct {
	*httptest.Server
	conns atomic.Int64
}

func newH1Backend(t *testing.T, h http.HandlerFunc) *h1Backend {
	t.Helper()
	b := &h1Backend{}
	b.Server = httptest.NewUnstartedServer(h)
	b.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			b.conns.Add(1)
		}
	}
	b.Start()
	t.Cleanup(b.Close)
	return b
}

// fallbackRecorder is a RoundTripper that records the requests it gets.
type fallbackRecorder struct {
	mu   sync.Mutex
	seen []string
	next http.RoundTripper
}

func (f *fallbackRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	f.seen = append(f.seen, r.Method+" "+r.URL.Path)
	f.mu.Unlock()
	return f.next.RoundTrip(r)
}

// proxyTo returns a ReverseProxy to b over an h1Transport, and the transport.
func proxyTo(t *testing.T, b *h1Backend) (*httptest.Server, *h1Transport, *fallbackRecorder) {
	t.Helper()
	target, _ := url.Parse(b.URL)
	fb := &fallbackRecorder{next: &http.Transport{}}
	tr := newH1Transport((&net.Dialer{}).DialContext, fb)
	t.Cleanup(tr.CloseIdleConnections)
	p := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport: tr,
	}
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	return front, tr, fb
}

func idleCount(tr *h1Transport) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, l := range tr.idle {
		n += len(l)
	}
	return n
}

func TestH1Transport(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	backend := newH1Backend(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("X-Te", strings.Join(r.TransferEncoding, ","))
			w.Write(body)
		case "/big":
			w.Write(big)
		case "/chunked":
			for i := range 3 {
				io.WriteString(w, strings.Repeat(string(rune('a'+i)), 1000))
				w.(http.Flusher).Flush()
			}
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/slow":
			time.Sleep(500 * time.Millisecond)
		case "/close":
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		default:
			io.WriteString(w, "ok")
		}
	})
	front, tr, fb := proxyTo(t, backend)
	client := front.Client()
	do := func(t *testing.T, method, path string, body io.Reader) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, front.URL+path, body)
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res, b
	}

	t.Run("ok/keep-alive", func(t *testing.T) {
		before := backend.conns.Load()
		for range 20 {
			if res, b := do(t, "GET", "/", nil); res.StatusCode != 200 || string(b) != "ok" {
				t.Fatalf("%s %q", res.Status, b)
			}
		}
		// The proxy returns a connection to the pool just after the client
		// has its answer, so a request can now and then beat it and open
		// another; most must reuse one.
		if n := backend.conns.Load() - before; n > 5 {
			t.Errorf("20 sequential requests opened %d backend connections, want them reused", n)
		}
	})
	t.Run("ok/request-bodies", func(t *testing.T) {
		payload := strings.Repeat("p", 100_000)
		if _, b := do(t, "POST", "/echo", strings.NewReader(payload)); string(b) != payload {
			t.Errorf("Content-Length body: got %d bytes back", len(b))
		}
		// No length: the front server reads it chunked, and the backend
		// must get it chunked too.
		res, b := do(t, "POST", "/echo", io.MultiReader(strings.NewReader(payload)))
		if string(b) != payload {
			t.Errorf("chunked body: got %d bytes back", len(b))
		}
		if te := res.Header.Get("X-Te"); te != "chunked" {
			t.Errorf("backend saw transfer encodings %q, want chunked", te)
		}
	})
	t.Run("ok/response-bodies", func(t *testing.T) {
		if _, b := do(t, "GET", "/big", nil); !bytes.Equal(b, big) {
			t.Errorf("big body: %d bytes, want %d", len(b), len(big))
		}
		if _, b := do(t, "GET", "/chunked", nil); string(b) != strings.Repeat("a", 1000)+strings.Repeat("b", 1000)+strings.Repeat("c", 1000) {
			t.Errorf("chunked body: %d bytes", len(b))
		}
		if res, b := do(t, "GET", "/empty", nil); res.StatusCode != http.StatusNoContent || len(b) != 0 {
			t.Errorf("204: %s, %d bytes", res.Status, len(b))
		}
		if res, _ := do(t, "HEAD", "/big", nil); res.StatusCode != 200 {
			t.Errorf("HEAD: %s", res.Status)
		}
		// Every body was read to its end: the connection went back. The
		// proxy closes the backend's body after the client has its answer,
		// so wait for it a little.
		deadline := time.Now().Add(2 * time.Second)
		for idleCount(tr) != 1 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if n := idleCount(tr); n != 1 {
			t.Errorf("%d idle connections, want 1", n)
		}
	})
	t.Run("ok/backend-closes", func(t *testing.T) {
		if _, b := do(t, "GET", "/close", nil); string(b) != "bye" {
			t.Errorf("body %q", b)
		}
		if _, b := do(t, "GET", "/", nil); string(b) != "ok" {
			t.Errorf("after Connection: close: %q", b)
		}
		// An idle connection the backend closed: the request is sent again.
		backend.CloseClientConnections()
		time.Sleep(50 * time.Millisecond)
		if res, b := do(t, "GET", "/", nil); res.StatusCode != 200 || string(b) != "ok" {
			t.Errorf("after the backend closed the idle connection: %s %q", res.Status, b)
		}
	})
	t.Run("ok/upgrade-and-expect-go-to-fallback", func(t *testing.T) {
		req, _ := http.NewRequest("GET", front.URL+"/up", nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		if res, err := client.Do(req); err == nil {
			res.Body.Close()
		}
		req, _ = http.NewRequest("POST", front.URL+"/echo", strings.NewReader("x"))
		req.Header.Set("Expect", "100-continue")
		if res, err := client.Do(req); err == nil {
			res.Body.Close()
		}
		fb.mu.Lock()
		defer fb.mu.Unlock()
		if len(fb.seen) != 2 {
			t.Errorf("fallback saw %v, want the upgrade and the 100-continue request", fb.seen)
		}
	})
	t.Run("fail/unread-body-not-reused", func(t *testing.T) {
		before := idleCount(tr)
		res, err := client.Get(front.URL + "/big")
		if err != nil {
			t.Fatal(err)
		}
		io.ReadFull(res.Body, make([]byte, 10))
		res.Body.Close() // the front server aborts; the proxy stops reading
		time.Sleep(100 * time.Millisecond)
		if n := idleCount(tr); n > before {
			t.Errorf("a connection whose response was not read to the end went back to the pool")
		}
	})
	t.Run("fail/deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", backend.URL+"/slow", nil)
		start := time.Now()
		_, err := tr.RoundTrip(req)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want one wrapping context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 400*time.Millisecond {
			t.Errorf("returned after %s; the deadline was 100ms", d)
		}
	})
}

// TestH1TransportClosesStaleIdle: putting a connection back closes the
// ones that have been idle longer than the idle timeout.
func TestH1TransportClosesStaleIdle(t *testing.T) {
	tr := newH1Transport(nil, nil)
	pipe := func() (*h1Conn, net.Conn) {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		return &h1Conn{Conn: a, key: "backend:80"}, b
	}
	old, oldPeer := pipe()
	tr.put(old)
	old.idleAt = time.Now().Add(-2 * tr.idleTimeout)
	fresh, _ := pipe()
	tr.put(fresh)
	if n := idleCount(tr); n != 1 {
		t.Fatalf("%d idle connections, want 1", n)
	}
	oldPeer.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := oldPeer.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("the stale connection's peer read %v, want EOF (closed)", err)
	}
}
