package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/trustgate/trustgate/internal/config"
)

// The tests in this file put a raw TCP backend, which answers exactly as
// each test scripts it, behind a running gateway, and check both paths
// to a plain-HTTP backend: the forwarder (routes under /fast) and the
// ReverseProxy over h1Transport (routes under /proxy).

var bothPaths = []string{"/fast", "/proxy"}

// rawBackend listens on loopback and runs serve on each connection it
// accepts, on its own goroutine; n is the connection's number from 1.
func rawBackend(t *testing.T, serve func(c net.Conn, br *bufio.Reader, n int)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
		n     int
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			n++
			num := n
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(c, bufio.NewReader(c), num)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "http://" + ln.Addr().String()
}

// twoPathEnv is a gateway with a route under /fast, served by the
// forwarder, and one under /proxy, served by ReverseProxy, both to
// backendURL with the given timeout.
func twoPathEnv(t *testing.T, backendURL string, timeout time.Duration) *env {
	t.Helper()
	return newEnv(t, envOpt{
		mutate: func(e *env, g *config.Gateway) {
			b := config.GatewayBackend{URL: backendURL, Timeout: config.Duration(timeout)}
			g.Listeners[0].Routes = []config.GatewayRoute{
				{Name: "fast", PathPrefix: "/fast", Backend: b},
				{Name: "proxy", PathPrefix: "/proxy", Backend: b},
			}
		},
		beforeRun: func(e *env) {
			for _, r := range e.gw.listeners[0].router.routes {
				if r.name == "proxy" {
					r.fwd = nil
				} else if r.fwd == nil {
					t.Fatal("the /fast route has no forwarder")
				}
			}
		},
	})
}

// exchangeRaw sends head, then bodyLen octets of body on another
// goroutine, on a new mTLS connection, and returns the status and the
// response body; unlike rawExchange it may run off the test goroutine,
// and it reads the answer while the body is still going out.
func exchangeRaw(e *env, head string, bodyLen int) (int, []byte, error) {
	conn, err := tls.Dial("tcp", e.addr("main"), e.clientTLS(e.client))
	if err != nil {
		return 0, nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, head); err != nil {
		return 0, nil, err
	}
	if bodyLen > 0 {
		go conn.Write(bytes.Repeat([]byte("x"), bodyLen)) // fails once the gateway closes
	}
	method, _, _ := strings.Cut(head, " ")
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func get(e *env, path string) (int, string, error) {
	status, b, err := exchangeRaw(e, "GET "+path+" HTTP/1.1\r\nHost: localhost\r\n\r\n", 0)
	return status, string(b), err
}

// TestBackendLateBytesNotReadAsNextResponse: octets a backend sends on a
// connection after a complete response (a body to HEAD, a stray last
// chunk after a 204, more than its Content-Length said) must not be read
// as the answer to the next request on that connection, which may be
// another client's.
func TestBackendLateBytesNotReadAsNextResponse(t *testing.T) {
	const fake = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nnot yours!!!"
	late := make(chan struct{}, 1)
	url := rawBackend(t, func(c net.Conn, br *bufio.Reader, _ int) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			var first, then string
			switch {
			case strings.HasSuffix(req.URL.Path, "/head"):
				first, then = "HTTP/1.1 200 OK\r\nContent-Length: 51\r\n\r\n", fake
			case strings.HasSuffix(req.URL.Path, "/short"):
				first, then = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", fake
			case strings.HasSuffix(req.URL.Path, "/stray"):
				first, then = "HTTP/1.1 204 No Content\r\n\r\n", "0\r\n\r\n"
			default:
				body := "answer to " + req.URL.Path
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
				continue
			}
			io.WriteString(c, first)
			// Late: once the gateway has pooled the connection.
			time.Sleep(100 * time.Millisecond)
			io.WriteString(c, then)
			late <- struct{}{}
		}
	})
	e := twoPathEnv(t, url, 5*time.Second)
	for _, p := range bothPaths {
		for _, tc := range []struct{ method, path string }{
			{"HEAD", "/head"}, {"GET", "/short"}, {"GET", "/stray"},
		} {
			t.Run(p+tc.path, func(t *testing.T) {
				if _, _, err := exchangeRaw(e, tc.method+" "+p+tc.path+" HTTP/1.1\r\nHost: localhost\r\n\r\n", 0); err != nil {
					t.Fatal(err)
				}
				select {
				case <-late:
				case <-time.After(5 * time.Second):
					t.Fatal("the backend did not send its late octets")
				}
				time.Sleep(20 * time.Millisecond) // for them to land
				status, body, err := get(e, p+"/next")
				if err != nil || status != 200 || body != "answer to "+p+"/next" {
					t.Errorf("the next request got %d %q (err %v), want its own answer", status, body, err)
				}
			})
		}
	}
}

// TestBackendNonIdempotentNotRetried: a request that may change something
// and that reached the backend is not sent again when the backend closes
// the connection without answering: it may have been carried out.
func TestBackendNonIdempotentNotRetried(t *testing.T) {
	var executed atomic.Int64
	url := rawBackend(t, func(c net.Conn, br *bufio.Reader, _ int) {
		for i := 0; ; i++ {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			if req.Method != "GET" {
				executed.Add(1)
				if i > 0 {
					return // did the work, then went down on a kept-alive connection
				}
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	e := twoPathEnv(t, url, 5*time.Second)
	for _, p := range bothPaths {
		for _, method := range []string{"POST", "DELETE", "PATCH"} {
			t.Run(p+"/"+method, func(t *testing.T) {
				if status, _, err := get(e, p+"/warm"); err != nil || status != 200 {
					t.Fatalf("warm-up: %d %v", status, err)
				}
				executed.Store(0)
				status, _, err := exchangeRaw(e, method+" "+p+"/transfer HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n", 0)
				if err != nil {
					t.Fatal(err)
				}
				if n := executed.Load(); n != 1 || status != http.StatusBadGateway {
					t.Errorf("status %d, the backend carried the %s out %d times; want 502 and once", status, method, n)
				}
			})
		}
	}
}

// TestBackendRestartRetryDials: after a backend restart every pooled
// connection is dead; the one retry of a GET must go on a new connection,
// not on another dead pooled one.
func TestBackendRestartRetryDials(t *testing.T) {
	const pooled = 3
	var (
		restarted atomic.Bool
		arrived   sync.WaitGroup
	)
	url := rawBackend(t, func(c net.Conn, br *bufio.Reader, _ int) {
		old := !restarted.Load()
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if old && restarted.Load() {
				// A connection from before the restart: it reads the
				// request and goes away without a word.
				return
			}
			if strings.HasSuffix(req.URL.Path, "/warm") {
				// Hold the answers until all warm-up requests are in, so
				// that each has its own connection.
				arrived.Done()
				arrived.Wait()
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	e := twoPathEnv(t, url, 5*time.Second)
	for _, p := range bothPaths {
		t.Run(p, func(t *testing.T) {
			restarted.Store(false)
			var wg sync.WaitGroup
			errs := make(chan error, pooled)
			arrived.Add(pooled) // one Done per warm-up request
			for range pooled {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if status, _, err := get(e, p+"/warm"); err != nil || status != 200 {
						errs <- fmt.Errorf("warm-up: %d %v", status, err)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			restarted.Store(true)
			status, body, err := get(e, p+"/after")
			if err != nil || status != 200 || body != "ok" {
				t.Errorf("GET after the restart: %d %q %v, want 200", status, body, err)
			}
		})
	}
}

// TestBackendEarlyAnswer: a backend that answers before it read the
// request body (a 413 with Connection: close, or a download it streams
// before reading the upload) gets its answer to the client.
func TestBackendEarlyAnswer(t *testing.T) {
	const upload, download = 16 << 20, 8 << 20
	url := rawBackend(t, func(c net.Conn, br *bufio.Reader, _ int) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if strings.Contains(req.URL.Path, "/too-large") {
			io.WriteString(c, "HTTP/1.1 413 Request Entity Too Large\r\nConnection: close\r\nContent-Length: 9\r\n\r\ntoo large")
			if strings.HasSuffix(req.URL.Path, "/linger") {
				// As net/http does: time for the gateway to read the
				// answer before the reset that closing with unread data
				// sends. Without it, the reset may come first.
				time.Sleep(500 * time.Millisecond)
			}
			return
		}
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", download)
		c.Write(make([]byte, download))
		io.Copy(io.Discard, req.Body)
	})
	e := twoPathEnv(t, url, 10*time.Second)
	for _, p := range bothPaths {
		for _, path := range []string{"/too-large/linger", "/too-large/now"} {
			t.Run(p+path, func(t *testing.T) {
				status, body, err := exchangeRaw(e, fmt.Sprintf("POST %s%s HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n", p, path, upload), upload)
				if err != nil || status != http.StatusRequestEntityTooLarge || string(body) != "too large" {
					t.Errorf("got %d %.60q (err %v), want the backend's 413", status, body, err)
				}
			})
		}
		t.Run(p+"/download-first", func(t *testing.T) {
			status, body, err := exchangeRaw(e, fmt.Sprintf("POST %s/dl HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n", p, upload), upload)
			if err != nil || status != 200 || len(body) != download {
				t.Errorf("got %d with %d octets (err %v), want 200 with %d", status, len(body), err, download)
			}
		})
	}
}

// h2Get sends one GET with the given :path on a new HTTP/2 connection,
// with END_STREAM on the HEADERS frame, or, when emptyBody, on an empty
// DATA frame after it (a body of unknown length that is empty), and
// returns the :status, or "reset" when the server reset the stream.
func h2Get(t *testing.T, e *env, path string, emptyBody bool) string {
	t.Helper()
	cfg := e.clientTLS(e.client)
	cfg.NextProtos = []string{"h2"}
	c, err := tls.Dial("tcp", e.addr("main"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, kv := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "localhost"}, {":path", path}} {
		enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: !emptyBody, EndHeaders: true})
	if emptyBody {
		fr.WriteData(1, true, nil)
	}
	status := ""
	dec := hpack.NewDecoder(4096, func(f hpack.HeaderField) {
		if f.Name == ":status" {
			status = f.Value
		}
	})
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the answer to %q: %v", path, err)
		}
		switch f := f.(type) {
		case *http2.HeadersFrame:
			dec.Write(f.HeaderBlockFragment())
			if f.StreamEnded() {
				return status
			}
		case *http2.DataFrame:
			if f.StreamEnded() {
				return status
			}
		case *http2.RSTStreamFrame:
			return "reset"
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY: %v", f.ErrCode)
		}
	}
}

// TestBadRequestTarget: a request target with a space or another octet
// that cannot go on an HTTP/1.1 request line, which HTTP/2 lets a client
// send in :path, is refused with 400 and never reaches the backend.
func TestBadRequestTarget(t *testing.T) {
	var lines sync.Map
	url := rawBackend(t, func(c net.Conn, br *bufio.Reader, _ int) {
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			lines.Store(line, true)
			if line == "\r\n" {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}
		}
	})
	e := twoPathEnv(t, url, 5*time.Second)
	for _, p := range bothPaths {
		for _, target := range []string{p + "/x?a b HTTP/1.1", p + "/x?a=\x7f", p + "/x?q=\xc3\xa9", p + "/a b"} {
			// The HTTP/2 server refuses some itself.
			if status := h2Get(t, e, target, false); status != "400" && status != "reset" {
				t.Errorf("%q: status %s, want 400", target, status)
			}
		}
		if status := h2Get(t, e, p+"/x?a=%20&b=[1]|2", false); status != "200" {
			t.Errorf("a query with escapes and printable delimiters: status %s, want 200", status)
		}
	}
	lines.Range(func(k, _ any) bool {
		if l := k.(string); strings.Contains(l, " HTTP/1.1 HTTP/1.1") || strings.Contains(l, "a b") {
			t.Errorf("the backend got %q", l)
		}
		return true
	})
}

// TestH2UnknownLengthEmptyBody: an HTTP/2 GET whose HEADERS frame does not
// end the stream has a body of unknown length; when it turns out empty,
// the backend gets a request without a body, not an empty chunked one.
func TestH2UnknownLengthEmptyBody(t *testing.T) {
	heads := make(chan string, 4)
	url := rawBackend(t, func(c net.Conn, br *bufio.Reader, _ int) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			heads <- fmt.Sprintf("%s te=%q cl=%d", req.URL.Path, req.TransferEncoding, req.ContentLength)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	e := twoPathEnv(t, url, 5*time.Second)
	for _, p := range bothPaths {
		if status := h2Get(t, e, p+"/empty", true); status != "200" {
			t.Fatalf("%s: status %s", p, status)
		}
		if got, want := <-heads, p+`/empty te=[] cl=0`; got != want {
			t.Errorf("the backend got %s, want %s", got, want)
		}
	}
}

// TestReadTimeoutNotRetryable: a timeout before the first octet of an
// answer is not taken for a connection the backend closed while idle.
func TestReadTimeoutNotRetryable(t *testing.T) {
	url := rawBackend(t, func(c net.Conn, br *bufio.Reader, _ int) {
		io.Copy(io.Discard, br) // never answers
	})
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	req, _ := http.NewRequest("GET", url+"/slow", nil)
	_, err = readResponseHead(bufio.NewReader(c), req)
	if err == nil || errors.Is(err, errNoResponse) || retryable(req, err, true) {
		t.Errorf("a timeout gave %v, retryable %v; want a timeout that is not retried", err, retryable(req, err, true))
	}
}

// TestH1TransportSweepsIdle: connections idle past the idle timeout are
// closed without any further request to the backend.
func TestH1TransportSweepsIdle(t *testing.T) {
	closed := make(chan struct{})
	url := rawBackend(t, func(c net.Conn, br *bufio.Reader, _ int) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := br.ReadByte(); err == io.EOF {
			close(closed)
		}
	})
	tr := newH1Transport((&net.Dialer{}).DialContext, http.DefaultTransport)
	tr.idleTimeout = 50 * time.Millisecond
	t.Cleanup(tr.CloseIdleConnections)
	req, _ := http.NewRequestWithContext(context.Background(), "GET", url+"/", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	if n := idleCount(tr); n != 1 {
		t.Fatalf("%d idle connections after the request, want 1", n)
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the idle connection was not closed after the idle timeout")
	}
	if n := idleCount(tr); n != 0 {
		t.Errorf("%d idle connections left, want 0", n)
	}
}

// TestH1TransportEarlyAnswerStopsWriter: when the backend answers in full
// before it read the request body, closing the response ends the body's
// writer (it never outlives the exchange), and the connection, whose
// request was not sent whole, is not used again.
func TestH1TransportEarlyAnswerStopsWriter(t *testing.T) {
	url := rawBackend(t, func(c net.Conn, br *bufio.Reader, _ int) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 9\r\n\r\ntoo large")
		// Keep the connection, reading the body slowly.
		buf := make([]byte, 1024)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	tr := newH1Transport((&net.Dialer{}).DialContext, http.DefaultTransport)
	t.Cleanup(tr.CloseIdleConnections)
	req, _ := http.NewRequest("POST", url+"/upload", bytes.NewReader(make([]byte, 16<<20)))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || string(b) != "too large" || err != nil {
		t.Fatalf("got %d %q (err %v), want the backend's 413", resp.StatusCode, b, err)
	}
	w := resp.Body.(*h1Body).w
	resp.Body.Close()
	select {
	case <-w.done:
	default:
		t.Error("the body's writer is still running after the response was closed")
	}
	if n := idleCount(tr); n != 0 {
		t.Errorf("%d idle connections; the one whose body was not sent whole must be closed", n)
	}
}
