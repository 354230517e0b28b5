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
	"syscall"
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
	// sweeper closes the connections idle past idleTimeout even when no
	// request comes to put one back; armed while any connection is idle.
	sweeper  *time.Timer
	sweeping bool
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
	// sent counts the octets written to the connection: a request whose
	// head failed to go out with none of it sent can be sent again.
	sent int64
	// writeFailed says that a write to the connection failed: the
	// backend closed or reset it.
	writeFailed bool

	// The idle check (idleClean); see h1peek_*.go.
	rc        syscall.RawConn
	peekFn    func(fd uintptr)
	peekBuf   [1]byte
	peekClean bool
}

// Write counts what reaches the connection; the buffered writer writes
// through it.
func (c *h1Conn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.sent += int64(n)
	if err != nil {
		c.writeFailed = true
	}
	return n, err
}

func newH1Transport(dial func(ctx context.Context, network, addr string) (net.Conn, error), fallback http.RoundTripper) *h1Transport {
	return &h1Transport{
		dial: dial, fallback: fallback,
		maxIdle: 1024, idleTimeout: 90 * time.Second, fresh: 2 * time.Second,
		idle: map[string][]*h1Conn{},
	}
}

// errNoResponse marks a failure before any octet of a response arrived,
// other than a timeout. The backend may have acted on the request: only
// an idempotent request without a body is sent again (see retryable).
var errNoResponse = errors.New("backend closed the connection before answering")

// errHeadNotSent marks a failure to write a request head of which no
// octet reached the backend: any request may be sent again.
var errHeadNotSent = errors.New("backend connection failed before the request was sent")

// headError labels a failure to write or flush the head of a request on
// c, of which base octets had been written before it.
func headError(c *h1Conn, base int64, err error) error {
	if c.sent == base {
		return fmt.Errorf("%w: %w", errHeadNotSent, err)
	}
	return fmt.Errorf("%w: %w", errNoResponse, err)
}

// idempotent reports whether r may be sent twice, as http.Transport
// decides: the methods RFC 9110 §9.2.2 lists that never change anything
// (GET, HEAD, OPTIONS, TRACE), or a request that carries an idempotency
// key. PUT and DELETE are idempotent too by the RFC, but a backend's
// handlers do not always make them so.
func idempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, a := r.Header["Idempotency-Key"]
	_, b := r.Header["X-Idempotency-Key"]
	return a || b
}

// retryable reports whether r, which failed with err on a pooled
// connection, is sent again on a new one: when none of it reached the
// backend, or, for an idempotent request without a body, when the
// backend closed the connection without a word (it had likely closed it
// while idle). Never after a timeout or the client leaving.
func retryable(r *http.Request, err error, noBody bool) bool {
	if r.Context().Err() != nil || isTimeout(err) {
		return false
	}
	return errors.Is(err, errHeadNotSent) || noBody && errors.Is(err, errNoResponse) && idempotent(r)
}

// RoundTrip implements http.RoundTripper.
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" || req.Method == http.MethodConnect || req.Header.Get("Upgrade") != "" ||
		req.Header.Get("Expect") != "" {
		return t.fallback.RoundTrip(req)
	}
	hasBody := req.Body != nil && req.Body != http.NoBody
	key := req.URL.Host
	if req.URL.Port() == "" {
		key = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	for attempt := 0; ; attempt++ {
		var c *h1Conn
		if attempt == 0 {
			c = t.getIdle(key, !hasBody && idempotent(req))
		}
		reused := c != nil
		if c == nil {
			var err error
			if c, err = t.dialConn(req.Context(), key); err != nil {
				return nil, err
			}
		}
		resp, err := t.exchange(c, req, hasBody)
		if err == nil {
			return resp, nil
		}
		c.Close()
		// A pooled connection that the backend closed while it was idle
		// fails before any answer. The second attempt dials: after a
		// backend restart the other pooled connections are dead too.
		// A body was read while the head was sent (Request.Write), so a
		// request with one is never sent again.
		if attempt == 0 && reused && !hasBody && retryable(req, err, true) {
			continue
		}
		return nil, err
	}
}

// getIdle returns an idle connection to key, or nil: one used within the
// idle timeout, or within fresh for a request that cannot be replayed,
// and on which nothing arrived while it was idle. An octet there would be
// read as the next request's response; a FIN means the backend closed it.
func (t *h1Transport) getIdle(key string, replayable bool) *h1Conn {
	now := time.Now()
	t.mu.Lock()
	for list := t.idle[key]; len(list) > 0; list = t.idle[key] {
		c := list[len(list)-1]
		list[len(list)-1] = nil
		t.idle[key] = list[:len(list)-1]
		age := now.Sub(c.idleAt)
		t.mu.Unlock()
		// The peek is made outside the lock: it is a system call.
		if age <= t.idleTimeout && (replayable || age <= t.fresh) && c.idleClean() {
			return c
		}
		c.Close()
		t.mu.Lock()
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
	c := &h1Conn{Conn: nc, key: key, br: bufio.NewReaderSize(nc, 4<<10)}
	c.bw = bufio.NewWriterSize(c, 4<<10)
	c.abort = func() { c.SetDeadline(aLongTimeAgo) }
	c.initPeek()
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
	if !t.sweeping {
		t.sweeping = true
		if t.sweeper == nil {
			t.sweeper = time.AfterFunc(t.idleTimeout, t.sweep)
		} else {
			t.sweeper.Reset(t.idleTimeout)
		}
	}
	t.mu.Unlock()
	for _, o := range old {
		o.Close()
	}
}

// sweep closes the connections idle past the idle timeout, and arms the
// sweeper again for when the oldest of the others will be. Without it a
// route without traffic would keep the connections its backend closed
// (in CLOSE_WAIT) for as long as it gets none.
func (t *h1Transport) sweep() {
	now := time.Now()
	var old []*h1Conn
	t.mu.Lock()
	var next time.Time
	for key, list := range t.idle {
		stale := 0
		for stale < len(list) && now.Sub(list[stale].idleAt) >= t.idleTimeout {
			stale++
		}
		old = append(old, list[:stale]...)
		if stale == len(list) {
			delete(t.idle, key)
			continue
		}
		t.idle[key] = slices.Delete(list, 0, stale)
		if at := t.idle[key][0].idleAt.Add(t.idleTimeout); next.IsZero() || at.Before(next) {
			next = at
		}
	}
	if next.IsZero() || t.closed {
		t.sweeping = false
	} else {
		t.sweeper.Reset(next.Sub(now))
	}
	t.mu.Unlock()
	for _, c := range old {
		c.Close()
	}
}

// CloseIdleConnections closes the idle connections; with the route gone,
// later ones are closed when they become idle.
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle, t.closed = map[string][]*h1Conn{}, true
	if t.sweeper != nil {
		t.sweeper.Stop()
		t.sweeping = false
	}
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
// becomes the connection's, and its cancellation unblocks the I/O. A
// request with a body is written on another goroutine while the response
// head is read here, so that an answer the backend gives before it read
// the body (413, 401, or a download it streams first) gets through.
func (t *h1Transport) exchange(c *h1Conn, req *http.Request, hasBody bool) (*http.Response, error) {
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
	var w *bodyWriter
	if hasBody {
		w = startBodyWriter(c, func() error {
			if err := req.Write(c.bw); err != nil {
				return err
			}
			return c.bw.Flush()
		})
	} else {
		base := c.sent
		err := req.Write(c.bw)
		if err == nil {
			err = c.bw.Flush()
		}
		if err != nil {
			return fail(headError(c, base, err))
		}
	}
	resp, err := readResponseHead(c.br, req)
	if w != nil {
		if err != nil {
			err = w.failed(err)
		} else {
			w.gotHead(ctx)
		}
	}
	if err != nil {
		return fail(err)
	}
	body := &h1Body{ReadCloser: resp.Body, t: t, c: c, stop: stop, w: w, reuse: !resp.Close && !req.Close}
	if resp.Body == http.NoBody {
		body.eof = true
	}
	resp.Body = body
	return resp, nil
}

// readResponseHead reads the head of the backend's final answer to req.
// A failure before its first octet wraps errNoResponse, unless it is a
// timeout: a backend too slow to answer is not asked again.
func readResponseHead(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	if _, err := br.Peek(1); err != nil {
		if isTimeout(err) {
			return nil, err
		}
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
	w         *bodyWriter // the request body's writer, if any
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
	sent := true
	if b.w != nil {
		sent, _ = b.w.finish()
	}
	// An idle connection keeps its last deadline: nothing reads from it
	// while it is idle, and the next exchange sets its own.
	if b.eof && b.reuse && live && sent && b.c.br.Buffered() == 0 {
		b.ReadCloser.Close() // at EOF: reads nothing
		b.t.put(b.c)
		return nil
	}
	return b.c.Close()
}

// bodyWriter sends a request's body (with its head, on the transport's
// path) on its own goroutine while the response head is read on the
// caller's; the caller ends it with failed or finish before the exchange
// ends, so it never outlives the exchange.
type bodyWriter struct {
	c    *h1Conn
	done chan struct{}

	mu       sync.Mutex
	headRead bool
	aborted  bool  // the writer failed first and cut the head's read short
	err      error // set before done is closed
}

// startBodyWriter runs write, which writes on c.bw, on a new goroutine.
func startBodyWriter(c *h1Conn, write func() error) *bodyWriter {
	w := &bodyWriter{c: c, done: make(chan struct{})}
	go w.run(write)
	return w
}

func (w *bodyWriter) run(write func() error) {
	err := write()
	w.mu.Lock()
	if err != nil {
		w.err = fmt.Errorf("sending the request body: %w", err)
		// The body could not be read to its end (the client went away,
		// or sent less than it announced): a backend waiting for the
		// rest would never answer, so end the wait for its head. Not
		// when the backend closed the connection: its answer, which may
		// be in already (a 413), is read as far as it goes. Once the head
		// is in, the answer is forwarded as far as the backend sends it.
		if !w.headRead && !w.c.writeFailed {
			w.aborted = true
			w.c.abort()
		}
	}
	w.mu.Unlock()
	close(w.done)
}

// gotHead tells the writer that the response head was read. If the
// writer failed in the meantime and cut the read short, the connection's
// deadline is set back for the response body.
func (w *bodyWriter) gotHead(ctx context.Context) {
	w.mu.Lock()
	w.headRead = true
	aborted := w.aborted
	w.mu.Unlock()
	if aborted && ctx.Err() == nil {
		w.c.SetDeadline(w.c.deadline)
	}
}

// failed ends the exchange after the response head could not be read
// (rerr): it closes the connection, which stops the writer, waits for
// it, and returns the error to report: the writer's if it failed on its
// own, since the backend then had no complete request to answer.
func (w *bodyWriter) failed(rerr error) error {
	w.c.Close()
	<-w.done
	if w.err != nil && !errors.Is(w.err, net.ErrClosed) {
		return fmt.Errorf("%w (reading the response: %v)", w.err, rerr)
	}
	return rerr
}

// finish waits for the writer after the response: it reports the
// writer's error and whether the whole body went out. A writer still at
// work (the backend answered without reading all of the body) is stopped
// by closing the connection, which cannot be used again.
func (w *bodyWriter) finish() (sent bool, err error) {
	select {
	case <-w.done:
		return w.err == nil, w.err
	default:
	}
	w.c.Close()
	<-w.done
	return false, w.err
}

// Compile-time check that the transport can be closed like http.Transport.
var _ interface{ CloseIdleConnections() } = (*h1Transport)(nil)
