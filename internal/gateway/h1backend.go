package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"
)

// h1Transport is the http.RoundTripper of routes to plain-HTTP backends.
// It does all of a request's work on the goroutine that calls it: write
// the request, read the response head, and (through the body) the response.
//
// http.Transport hands every request to a writer goroutine and every
// response to a reader goroutine per backend connection, and keeps a
// background read on idle connections. Under keep-alive load those
// hand-offs (channel operations, scheduler passes, futex wake-ups) cost as
// much CPU as the proxying itself, and the gateway's backends are plain
// HTTP/1.1 servers on a near network. Requests this transport does not
// handle (protocol upgrades, Expect: 100-continue, other schemes) go to
// fallback, the route's http.Transport.
type h1Transport struct {
	dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	fallback http.RoundTripper
	// maxIdle caps the idle connections kept per backend address.
	maxIdle int
	// idleTimeout closes connections idle longer than this.
	idleTimeout time.Duration
	// fresh is how long an idle connection is trusted with a request whose
	// body cannot be sent again: without a reader on idle connections, a
	// backend's close is noticed only when a request fails on it, and such
	// a request cannot be retried on another connection.
	fresh time.Duration

	mu     sync.Mutex
	idle   map[string][]*h1Conn // by host:port, most recently used last
	closed bool
}

// h1Conn is one backend connection with its buffers.
type h1Conn struct {
	net.Conn
	key    string
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
	// deadline is the one last set, so that an unchanged deadline is not
	// set again (each change is a call into the runtime's poller).
	deadline time.Time
	// abort makes blocked I/O on the connection return: what a request's
	// cancellation runs, made once so that a request allocates no closure.
	abort func()
}

func newH1Transport(dial func(ctx context.Context, network, addr string) (net.Conn, error), fallback http.RoundTripper) *h1Transport {
	return &h1Transport{
		dial: dial, fallback: fallback,
		maxIdle: 1024, idleTimeout: 90 * time.Second, fresh: 2 * time.Second,
		idle: map[string][]*h1Conn{},
	}
}

// errNoResponse marks a failure before any octet of a response arrived:
// the request may be sent again on another connection.
var errNoResponse = errors.New("backend closed the connection before answering")

// RoundTrip implements http.RoundTripper.
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" || req.Method == http.MethodConnect || req.Header.Get("Upgrade") != "" ||
		req.Header.Get("Expect") != "" {
		return t.fallback.RoundTrip(req)
	}
	replayable := req.Body == nil || req.Body == http.NoBody
	key := req.URL.Host
	if req.URL.Port() == "" {
		key = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	for attempt := 0; ; attempt++ {
		c, reused, err := t.get(req.Context(), key, replayable)
		if err != nil {
			return nil, err
		}
		resp, err := t.exchange(c, req)
		if err == nil {
			return resp, nil
		}
		c.Close()
		// A pooled connection that the backend closed while it was idle
		// fails before any answer; like http.Transport, send a request
		// without a body once more, on a new connection.
		if reused && replayable && attempt == 0 && errors.Is(err, errNoResponse) && req.Context().Err() == nil {
			continue
		}
		return nil, err
	}
}

// get returns an idle connection to key, or a new one; reused says which.
// A request whose body cannot be replayed gets only a recently used one.
func (t *h1Transport) get(ctx context.Context, key string, replayable bool) (*h1Conn, bool, error) {
	if c := t.getIdle(key, replayable); c != nil {
		return c, true, nil
	}
	c, err := t.dialConn(ctx, key)
	return c, false, err
}

// getIdle returns an idle connection to key, or nil: one used within the
// idle timeout, or within fresh for a request that cannot be replayed.
func (t *h1Transport) getIdle(key string, replayable bool) *h1Conn {
	now := time.Now()
	t.mu.Lock()
	for list := t.idle[key]; len(list) > 0; list = t.idle[key] {
		c := list[len(list)-1]
		list[len(list)-1] = nil
		t.idle[key] = list[:len(list)-1]
		age := now.Sub(c.idleAt)
		if age > t.idleTimeout || !replayable && age > t.fresh {
			t.mu.Unlock()
			c.Close()
			t.mu.Lock()
			continue
		}
		t.mu.Unlock()
		return c
	}
	t.mu.Unlock()
	return nil
}

// dialConn opens a new connection to key.
func (t *h1Transport) dialConn(ctx context.Context, key string) (*h1Conn, error) {
	nc, err := t.dial(ctx, "tcp", key)
	if err != nil {
		return nil, err
	}
	c := &h1Conn{Conn: nc, key: key, br: bufio.NewReaderSize(nc, 4<<10), bw: bufio.NewWriterSize(nc, 4<<10)}
	c.abort = func() { c.SetDeadline(aLongTimeAgo) }
	return c, nil
}

// put keeps c for the next request to its backend.
func (t *h1Transport) put(c *h1Conn) {
	c.idleAt = time.Now()
	t.mu.Lock()
	if t.closed || len(t.idle[c.key]) >= t.maxIdle {
		t.mu.Unlock()
		c.Close()
		return
	}
	// The list is in the order connections went idle, and get takes from
	// its end: connections at its start have waited longest. Close those
	// past the idle timeout here, since nothing else watches idle
	// connections (the backend has likely closed its side already).
	list := append(t.idle[c.key], c)
	stale := 0
	for stale < len(list) && c.idleAt.Sub(list[stale].idleAt) > t.idleTimeout {
		stale++
	}
	old := slices.Clone(list[:stale])
	t.idle[c.key] = slices.Delete(list, 0, stale)
	t.mu.Unlock()
	for _, o := range old {
		o.Close()
	}
}

// CloseIdleConnections closes the idle connections; with the route gone,
// later ones are closed when they become idle.
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle, t.closed = map[string][]*h1Conn{}, true
	t.mu.Unlock()
	for _, list := range idle {
		for _, c := range list {
			c.Close()
		}
	}
	if f, ok := t.fallback.(interface{ CloseIdleConnections() }); ok {
		f.CloseIdleConnections()
	}
}

// aLongTimeAgo is a deadline in the past: it makes blocked I/O return.
var aLongTimeAgo = time.Unix(1, 0)

// exchange sends req on c and reads the response head. The request's
// context bounds the whole exchange, the body included: its deadline
// becomes the connection's, and its cancellation unblocks the I/O.
func (t *h1Transport) exchange(c *h1Conn, req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if deadline, _ := ctx.Deadline(); !deadline.Equal(c.deadline) {
		if err := c.SetDeadline(deadline); err != nil {
			return nil, err
		}
		c.deadline = deadline
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(aLongTimeAgo) })
	fail := func(err error) (*http.Response, error) {
		stop()
		if cerr := ctx.Err(); cerr != nil {
			// The I/O error only says that the deadline passed.
			return nil, fmt.Errorf("backend %s: %w", c.key, cerr)
		}
		// The connection's deadline is the context's, and it can fire
		// before the context's own timer has marked it done: report the
		// deadline, not a failure of the backend.
		if d, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(d) {
			return nil, fmt.Errorf("backend %s: %w", c.key, context.DeadlineExceeded)
		}
		return nil, fmt.Errorf("backend %s: %w", c.key, err)
	}
	// A write that fails has not delivered the request either (the
	// backend closed the connection): it may be sent again.
	if err := req.Write(c.bw); err != nil {
		return fail(fmt.Errorf("%w: %w", errNoResponse, err))
	}
	if err := c.bw.Flush(); err != nil {
		return fail(fmt.Errorf("%w: %w", errNoResponse, err))
	}
	resp, err := readResponseHead(c.br, req)
	if err != nil {
		return fail(err)
	}
	body := &h1Body{ReadCloser: resp.Body, t: t, c: c, stop: stop, reuse: !resp.Close && !req.Close}
	if resp.Body == http.NoBody {
		body.eof = true
	}
	resp.Body = body
	return resp, nil
}

// readResponseHead reads the head of the backend's final answer to req.
// A failure before its first octet wraps errNoResponse.
func readResponseHead(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	if _, err := br.Peek(1); err != nil {
		return nil, fmt.Errorf("%w: %w", errNoResponse, err)
	}
	for {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return nil, err
		}
		// Interim answers (RFC 9110 §15.2) other than 101 are not
		// forwarded; the final answer follows on the connection. 101
		// only answers an upgrade, which goes to the fallback.
		if resp.StatusCode >= 200 {
			return resp, nil
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return nil, errors.New("unexpected 101 Switching Protocols")
		}
	}
}

// h1Body is a response body read straight from its connection, which it
// returns to the pool once read to the end and closed.
type h1Body struct {
	io.ReadCloser
	t         *h1Transport
	c         *h1Conn
	stop      func() bool
	reuse     bool
	eof, done bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// Close returns the connection to the pool when the body was read to its
// end; otherwise it closes the connection rather than read what is left,
// which may be unbounded.
func (b *h1Body) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	// stop reports false when the context ended first: the connection's
	// deadline is then in the past.
	live := b.stop()
	// An idle connection keeps its last deadline: nothing reads from it
	// while it is idle, and the next exchange sets its own.
	if b.eof && b.reuse && live && b.c.br.Buffered() == 0 {
		b.ReadCloser.Close() // at EOF: reads nothing
		b.t.put(b.c)
		return nil
	}
	return b.c.Close()
}

// Compile-time check that the transport can be closed like http.Transport.
var _ interface{ CloseIdleConnections() } = (*h1Transport)(nil)
