package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// forwarder proxies a request to a plain-HTTP/1.1 backend without
// httputil.ReverseProxy, on top of the route's h1Transport: it writes the
// outgoing request head straight from the client's request (no clone of
// the request or of its header map), bounds the exchange with deadlines on
// the backend connection (no timer context per request), and copies the
// response head into the client's header map without copying its values.
// Under keep-alive load ReverseProxy's clone, header copies and
// per-request contexts are a tenth of the gateway's CPU.
//
// It does what ReverseProxy with the route's Rewrite does, for the
// requests it takes (see takes): the hop-by-hop headers of RFC 9110 §7.6.1
// and those the Connection header names are removed both ways;
// Forwarded, the identity headers and their underscore spellings are
// stripped, X-Forwarded-For/-Proto/-Host and the identity headers set;
// "Te: trailers" passes; response trailers are forwarded; bodies stream
// both ways; a failure before the response head is a 502, or a 504 when
// the route's timeout passed. Other requests go through the route's
// ReverseProxy.
type forwarder struct {
	l       *listener
	t       *h1Transport
	key     string // the backend's host:port
	timeout time.Duration
}

// newForwarder returns the forwarder of a route to target, or nil when
// target has a path or query to merge into each request's, which
// ReverseProxy does for the route instead.
func newForwarder(l *listener, t *h1Transport, target *url.URL, timeout time.Duration) *forwarder {
	if target.Scheme != "http" || (target.Path != "" && target.Path != "/") || target.RawPath != "" ||
		target.RawQuery != "" || target.ForceQuery || target.Opaque != "" || target.User != nil {
		return nil
	}
	key := target.Host
	if target.Port() == "" {
		key = net.JoinHostPort(target.Hostname(), "80")
	}
	return &forwarder{l: l, t: t, key: key, timeout: timeout}
}

// takes reports whether the forwarder handles r. Protocol upgrades, CONNECT
// and Expect need the exchanges http.Transport implements; requests with
// trailers, and those whose Host or query would need the checks and
// rewriting of Request.Write, are rare enough to leave to ReverseProxy.
func (f *forwarder) takes(r *http.Request) bool {
	if r.Method == http.MethodConnect || r.Trailer != nil || r.URL.Opaque != "" {
		return false
	}
	h := r.Header
	if _, ok := h["Upgrade"]; ok {
		return false
	}
	if _, ok := h["Expect"]; ok {
		return false
	}
	return plainToken(r.Method) && plainHost(r.Host) && !hasCTL(r.URL.RawQuery)
}

// plainToken reports whether s is a non-empty RFC 9110 token.
func plainToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

func isTokenChar(c byte) bool {
	if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// plainHost reports whether a Host value can be written as it is: printable
// ASCII without spaces, and no IPv6 zone (which must not leave the host,
// RFC 6874).
func plainHost(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '%' {
			return false
		}
	}
	return true
}

func hasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c == 0x7f {
			return true
		}
	}
	return false
}

// serve forwards r, which takes accepted, and writes the answer to sw.
// start is when the gateway got the request: the route's timeout runs
// from there, as the context of the ReverseProxy path does.
func (f *forwarder) serve(sw *statusWriter, r *http.Request, info *connInfo, start time.Time) {
	ctx := r.Context()
	deadline := start.Add(f.timeout)
	// n is the body's length, -1 if unknown: then sent chunked, unless,
	// for a method that seldom has a body, a first read finds it empty
	// (an HTTP/2 GET whose HEADERS frame did not end the stream, say).
	n, body := r.ContentLength, io.Reader(r.Body)
	if n < 0 && usuallyNoBody(r.Method) {
		if body = probeBody(r.Body); body == nil {
			n = 0
		}
	}
	var (
		c    *h1Conn
		resp *http.Response
		stop func() bool
		w    *bodyWriter
	)
	for attempt := 0; ; attempt++ {
		var err error
		if attempt == 0 {
			c = f.t.getIdle(f.key, n == 0 && idempotent(r))
		} else {
			c = nil // after a failure, the other pooled ones are suspect too
		}
		reused := c != nil
		if c == nil {
			dctx, cancel := context.WithDeadline(ctx, deadline)
			c, err = f.t.dialConn(dctx, f.key)
			cancel()
			if err != nil {
				f.fail(sw, r, deadline, fmt.Errorf("backend %s: %w", f.key, err))
				return
			}
		}
		if !deadline.Equal(c.deadline) {
			c.SetDeadline(deadline)
			c.deadline = deadline
		}
		// The client going away ends the exchange at once, as the
		// cancellation of the request's context does on the other path.
		stop = context.AfterFunc(ctx, c.abort)
		w = nil
		if err = f.writeHead(c, r, info, n); err == nil {
			if n != 0 {
				// The body goes out while the answer is awaited: a backend
				// may answer before it read it all.
				w = startBodyWriter(c, func() error { return writeBody(c.bw, body, n) })
			}
			resp, err = readResponseHead(c.br, r)
			if w != nil {
				if err != nil {
					err = w.failed(err)
				} else {
					w.gotHead(ctx)
				}
			}
		}
		if err == nil {
			break
		}
		stop()
		c.Close()
		// A pooled connection that the backend closed while it was idle
		// fails before any answer: the request is sent once more, on a
		// new connection, if the backend cannot have acted on it (see
		// retryable). A body is read only once the head went out.
		if attempt == 0 && reused && retryable(r, err, n == 0) {
			continue
		}
		f.fail(sw, r, deadline, fmt.Errorf("backend %s: %w", f.key, err))
		return
	}

	dst := sw.Header()
	copyEndToEnd(dst, resp.Header)
	announced := len(resp.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		dst.Add("Trailer", strings.Join(keys, ", "))
	}
	sw.WriteHeader(resp.StatusCode)
	err := copyBody(sw, resp.Body, flushesEachWrite(resp))
	live := stop()
	if err != nil {
		// Half an answer is out: only cutting the connection is left, as
		// ReverseProxy does.
		c.Close()
		if w != nil {
			w.finish()
		}
		f.l.g.log.Debug("gateway: backend response cut short", keyListener, f.l.name, keyRoute, sw.route, keyError, err)
		panic(http.ErrAbortHandler)
	}
	resp.Body.Close() // at its end: reads nothing, sets resp.Trailer
	// The connection is used again only if the whole body went out too.
	// A body the backend did not read is not an error: its answer is the
	// client's.
	sent := true
	if w != nil {
		var werr error
		if sent, werr = w.finish(); werr != nil {
			f.l.g.log.Debug("gateway: request body not sent in full", keyListener, f.l.name, keyRoute, sw.route, keyError, werr)
		}
	}
	if live && sent && !resp.Close && c.br.Buffered() == 0 {
		f.t.put(c)
	} else {
		c.Close()
	}
	if len(resp.Trailer) > 0 {
		// Flush so that net/http sends the body chunked, with trailers,
		// rather than compute a Content-Length for a short body.
		if fl, ok := sw.ResponseWriter.(http.Flusher); ok {
			fl.Flush()
		}
		if len(resp.Trailer) == announced {
			for k, vv := range resp.Trailer {
				dst[k] = append(dst[k], vv...)
			}
			return
		}
		for k, vv := range resp.Trailer {
			k = http.TrailerPrefix + k
			dst[k] = append(dst[k], vv...)
		}
	}
}

// fail answers a failure before the response head: 504 when the route's
// timeout passed, 502 otherwise (backendError; 499 in the log when the
// client went away).
func (f *forwarder) fail(sw *statusWriter, r *http.Request, deadline time.Time, err error) {
	if r.Context().Err() == nil && isTimeout(err) && !time.Now().Before(deadline) {
		err = fmt.Errorf("%w (%w)", context.DeadlineExceeded, err)
	}
	f.l.backendError(sw, r, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		errors.As(err, &ne) && ne.Timeout()
}

// writeHead writes the head of r, with a body of n octets (-1: chunked),
// to the backend as ReverseProxy would after the route's Rewrite. A
// failure to write or flush it wraps errHeadNotSent, or errNoResponse
// when part of it went out: the backend cannot have answered it.
func (f *forwarder) writeHead(c *h1Conn, r *http.Request, info *connInfo, n int64) error {
	base, bw := c.sent, c.bw
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	if p := r.URL.EscapedPath(); p != "" {
		bw.WriteString(p)
	} else {
		bw.WriteByte('/')
	}
	if q := cleanQuery(r.URL.RawQuery); r.URL.ForceQuery || q != "" {
		bw.WriteByte('?')
		bw.WriteString(q)
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(r.Host)
	bw.WriteString("\r\n")

	h := r.Header
	conn := h["Connection"]
	for k, vv := range h {
		if !forwardRequestHeader(k) || namedIn(conn, k) || !plainToken(k) {
			continue
		}
		if k == "User-Agent" {
			// Request.Write sends the first value only, and none when empty.
			if len(vv) > 0 {
				if v := headerValue(vv[0]); v != "" {
					writeField(bw, k, v)
				}
			}
			continue
		}
		for _, v := range vv {
			writeField(bw, k, headerValue(v))
		}
	}
	if containsToken(h["Te"], "trailers") {
		bw.WriteString("Te: trailers\r\n")
	}
	// X-Forwarded-For: the client's list, then the peer.
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		bw.WriteString("X-Forwarded-For: ")
		for _, v := range h["X-Forwarded-For"] {
			bw.WriteString(headerValue(v))
			bw.WriteString(", ")
		}
		bw.WriteString(ip)
		bw.WriteString("\r\n")
	}
	writeField(bw, "X-Forwarded-Host", r.Host)
	if r.TLS != nil {
		bw.WriteString("X-Forwarded-Proto: https\r\n")
	} else {
		bw.WriteString("X-Forwarded-Proto: http\r\n")
	}
	if info != nil && info.ident != nil {
		for _, kv := range info.ident.headers {
			writeField(bw, kv[0], kv[1])
		}
	}
	switch {
	case n > 0:
		bw.WriteString("Content-Length: ")
		var b [20]byte
		bw.Write(strconv.AppendInt(b[:0], n, 10))
		bw.WriteString("\r\n")
	case n < 0:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	case r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch:
		// What Request.Write sends for these methods without a body.
		bw.WriteString("Content-Length: 0\r\n")
	}
	bw.WriteString("\r\n")
	if err := bw.Flush(); err != nil {
		return headError(c, base, err)
	}
	return nil
}

// usuallyNoBody reports whether requests with method seldom have a body:
// those whose body of unknown length is probed (as Request.Write does).
// Others, uploads, stream their body from the start.
func usuallyNoBody(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodDelete, http.MethodOptions, "PROPFIND", "SEARCH":
		return true
	}
	return false
}

// probeBody reads the first octet of a body of unknown length, as
// http.Transport does: it returns nil when the body turned out empty,
// else a reader of the whole body. A client that sends nothing for a
// while may be waiting for the answer to start (a stream): after 200 ms
// the body is taken to be there, and the read goes on in the background,
// ending at the latest when the server ends the request.
func probeBody(body io.Reader) io.Reader {
	p := &probedBody{body: body, res: make(chan probeResult, 1)}
	go func() {
		n, err := body.Read(p.first[:])
		p.res <- probeResult{n, err}
	}()
	t := time.NewTimer(200 * time.Millisecond)
	defer t.Stop()
	select {
	case res := <-p.res:
		if res.n == 0 && res.err == io.EOF {
			return nil
		}
		p.res <- res
	case <-t.C:
	}
	return p
}

type probeResult struct {
	n   int
	err error
}

// probedBody is a body whose first read probeBody made.
type probedBody struct {
	body  io.Reader
	first [1]byte
	res   chan probeResult
	done  bool
}

func (p *probedBody) Read(b []byte) (int, error) {
	if p.done {
		return p.body.Read(b)
	}
	res := <-p.res
	p.done = true
	if res.n > 0 {
		b[0] = p.first[0]
		if res.err == io.EOF {
			// Hand the EOF on with the next read.
			res.err = nil
			p.body = eofReader{}
		}
		return 1, res.err
	}
	return 0, res.err
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// writeBody copies a request body to the backend: n octets, or, when n
// is -1, in chunks as they come, each one flushed so that a streamed body
// streams on.
func writeBody(bw *bufio.Writer, body io.Reader, n int64) error {
	chunked := n < 0
	bp := copyBuffers.get()
	defer copyBuffers.put(bp)
	buf := *bp
	var sent int64
	for {
		k, rerr := body.Read(buf)
		if k > 0 {
			if chunked {
				var b [20]byte
				bw.Write(strconv.AppendInt(b[:0], int64(k), 16))
				bw.WriteString("\r\n")
				bw.Write(buf[:k])
				bw.WriteString("\r\n")
				if err := bw.Flush(); err != nil {
					return err
				}
			} else {
				if sent+int64(k) > n {
					return fmt.Errorf("request body longer than its Content-Length %d", n)
				}
				if _, err := bw.Write(buf[:k]); err != nil {
					return err
				}
			}
			sent += int64(k)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("reading the request body: %w", rerr)
		}
	}
	if chunked {
		bw.WriteString("0\r\n\r\n")
	} else if sent != n {
		return fmt.Errorf("request body of %d bytes, its Content-Length is %d", sent, n)
	}
	return bw.Flush()
}

// forwardRequestHeader reports whether a client's header goes to the
// backend as it is. The hop-by-hop headers (RFC 9110 §7.6.1, and the
// older Keep-Alive, Proxy-Connection, Proxy-Authenticate and
// Proxy-Authorization) are the connection's; Host and the body framing
// are written from the request; Forwarded and X-Forwarded-* are the
// gateway's to set; so are the identity headers.
func forwardRequestHeader(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade",
		"Host", "Content-Length",
		"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
		return false
	}
	return !isIdentityHeader(k)
}

// hopByHop reports whether a response header is the connection's.
func hopByHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// namedIn reports whether the Connection header values conn name k
// (RFC 9110 §7.6.1: those headers are for the next hop only).
func namedIn(conn []string, k string) bool {
	for _, v := range conn {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.Trim(tok, " \t"), k) {
				return true
			}
		}
	}
	return false
}

// containsToken reports whether a comma-separated header has token.
func containsToken(vals []string, token string) bool {
	for _, v := range vals {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			tok = strings.Trim(tok, " \t")
			if param := strings.IndexByte(tok, ';'); param >= 0 {
				tok = strings.TrimRight(tok[:param], " \t")
			}
			if strings.EqualFold(tok, token) {
				return true
			}
		}
	}
	return false
}

// copyEndToEnd adds the backend's response headers but the hop-by-hop
// ones to dst. The value slices are taken over, not copied: the response
// is the forwarder's own.
func copyEndToEnd(dst, src http.Header) {
	conn := src["Connection"]
	for k, vv := range src {
		if hopByHop(k) || namedIn(conn, k) {
			continue
		}
		if cur, ok := dst[k]; ok {
			dst[k] = append(cur, vv...)
		} else {
			dst[k] = vv
		}
	}
}

// headerValue makes v safe for a header line: line breaks become spaces
// and the surrounding white space goes, as Header.Write does.
func headerValue(v string) string {
	if strings.ContainsAny(v, "\r\n") {
		v = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ").Replace(v)
	}
	return strings.Trim(v, " \t")
}

func writeField(bw *bufio.Writer, k, v string) {
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

// cleanQuery drops the query parameters that Go's URL parsing refuses
// (those with a ';' or a bad %-escape), so that the backend sees the
// parameters the gateway would see, as ReverseProxy does. A query without
// either is returned as it is.
func cleanQuery(q string) string {
	for i := 0; i < len(q); i++ {
		switch q[i] {
		case ';':
			return reencodeQuery(q)
		case '%':
			if i+2 >= len(q) || !isHexDigit(q[i+1]) || !isHexDigit(q[i+2]) {
				return reencodeQuery(q)
			}
			i += 2
		}
	}
	return q
}

func reencodeQuery(q string) string {
	v, _ := url.ParseQuery(q)
	return v.Encode()
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// flushesEachWrite reports whether each part of the body goes to the
// client as soon as it arrives: for a body of unknown length (a stream)
// and for server-sent events, as ReverseProxy does.
func flushesEachWrite(resp *http.Response) bool {
	if resp.ContentLength == -1 {
		return true
	}
	ct, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
	return strings.EqualFold(strings.TrimSpace(ct), "text/event-stream")
}

// copyBody copies the response body to the client through a pooled buffer.
// It returns nil at the body's end, or the first read or write error.
func copyBody(sw *statusWriter, body io.Reader, flush bool) error {
	var fl http.Flusher
	if flush {
		fl, _ = sw.ResponseWriter.(http.Flusher)
	}
	bp := copyBuffers.get()
	defer copyBuffers.put(bp)
	buf := *bp
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, err := sw.Write(buf[:n]); err != nil {
				return err
			}
			if fl != nil {
				fl.Flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}
