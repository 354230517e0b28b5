package gateway

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/config"
	"github.com/trustgate/trustgate/internal/truststore/verify"
)

// route is a compiled GatewayRoute.
type route struct {
	name      string
	host      string // "" any, "*.suffix", or exact
	prefix    string // without a trailing slash; "" matches every path
	allow     config.GatewayAllow
	timeout   time.Duration
	proxy     *httputil.ReverseProxy
	transport *http.Transport // HTTPS backends, and the fallback of h1
	h1        *h1Transport    // plain-HTTP backends; nil for HTTPS ones
	// fwd forwards most requests of routes to plain-HTTP backends, proxy
	// the others; nil for HTTPS backends and for a backend URL with a path.
	fwd        *forwarder
	clientCert *keyPair // the gateway's certificate for mTLS to the backend
}

// router picks the most specific route: exact host, then wildcard host
// (longest suffix first), then any host; within those the longest prefix.
type router struct{ routes []*route }

func newRouter(l *listener, specs []config.GatewayRoute) (*router, error) {
	rt := &router{}
	for _, s := range specs {
		r, err := newRoute(l, s)
		if err != nil {
			rt.close()
			return nil, err
		}
		rt.routes = append(rt.routes, r)
	}
	sortRoutes(rt)
	return rt, nil
}

func sortRoutes(rt *router) {
	sort.SliceStable(rt.routes, func(i, j int) bool {
		a, b := rt.routes[i], rt.routes[j]
		if ra, rb := hostRank(a.host), hostRank(b.host); ra != rb {
			return ra > rb
		}
		return len(a.prefix) > len(b.prefix)
	})
}

func hostRank(h string) int {
	switch {
	case h == "":
		return 0
	case strings.HasPrefix(h, "*."):
		return 1 + len(h) // a longer suffix is more specific
	}
	return 1 << 20
}

func (rt *router) close() {
	for _, r := range rt.routes {
		if r.h1 != nil {
			r.h1.CloseIdleConnections() // and its fallback's
		} else {
			r.transport.CloseIdleConnections()
		}
	}
}

// match returns the route for a request's Host and (clean) path, or nil.
func (rt *router) match(host, p string) *route {
	host = strings.ToLower(host)
	// Only a host with a port is split: SplitHostPort's error for one
	// without is an allocation on every request.
	if i := strings.LastIndexByte(host, ':'); i > strings.LastIndexByte(host, ']') {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
	}
	host = strings.TrimSuffix(host, ".")
	for _, r := range rt.routes {
		if !hostMatches(r.host, host) {
			continue
		}
		if r.prefix == "" || p == r.prefix || strings.HasPrefix(p, r.prefix+"/") {
			return r
		}
	}
	return nil
}

func hostMatches(pattern, host string) bool {
	switch {
	case pattern == "":
		return true
	case strings.HasPrefix(pattern, "*."):
		return strings.HasSuffix(host, pattern[1:]) && len(host) > len(pattern)-1
	}
	return pattern == host
}

// permits applies a route's identity rules to a verified client: one
// entry of each non-empty list must match.
func (r *route) permits(id *identity) bool {
	if r.allow.Empty() {
		return true
	}
	if id == nil {
		return false
	}
	a := r.allow
	if len(a.Subjects) > 0 && !contains(a.Subjects, id.subject) {
		return false
	}
	if len(a.Issuers) > 0 && !contains(a.Issuers, id.issuer) {
		return false
	}
	if len(a.DNS) > 0 && !anyDNS(a.DNS, id.leaf.DNSNames) {
		return false
	}
	if len(a.URIPrefixes) > 0 && !anyURIPrefix(a.URIPrefixes, id.leaf.URIs) {
		return false
	}
	return true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func anyDNS(patterns, names []string) bool {
	for _, n := range names {
		n = strings.ToLower(n)
		for _, p := range patterns {
			if p == n || strings.HasPrefix(p, "*.") && strings.HasSuffix(n, p[1:]) && len(n) > len(p)-1 {
				return true
			}
		}
	}
	return false
}

func anyURIPrefix(prefixes []string, uris []*url.URL) bool {
	for _, u := range uris {
		s := u.String()
		for _, p := range prefixes {
			if strings.HasPrefix(s, p) {
				return true
			}
		}
	}
	return false
}

func newRoute(l *listener, s config.GatewayRoute) (*route, error) {
	target, err := url.Parse(s.Backend.URL)
	if err != nil {
		return nil, fmt.Errorf("route %s: backend url: %w", s.Name, err)
	}
	r := &route{
		name:    s.Name,
		host:    s.Host,
		prefix:  strings.TrimSuffix(s.PathPrefix, "/"),
		allow:   s.Allow,
		timeout: time.Duration(s.Backend.Timeout),
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.Backend.CAFile != "" {
		b, err := os.ReadFile(s.Backend.CAFile)
		if err != nil {
			return nil, fmt.Errorf("route %s: %w", s.Name, err)
		}
		certs, err := parseCertsPEM(b)
		if err != nil {
			return nil, fmt.Errorf("route %s: ca_file %s: %w", s.Name, s.Backend.CAFile, err)
		}
		tlsCfg.RootCAs = x509.NewCertPool()
		for _, c := range certs {
			tlsCfg.RootCAs.AddCert(c)
		}
	}
	if s.Backend.ClientCertFile != "" {
		if r.clientCert, err = loadKeyPair(s.Backend.ClientCertFile, s.Backend.ClientKeyFile); err != nil {
			return nil, fmt.Errorf("route %s: %w", s.Name, err)
		}
		kp := r.clientCert
		tlsCfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return kp.get(), nil }
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	r.transport = &http.Transport{
		Proxy:               nil, // never the environment's proxy
		DialContext:         dialer.DialContext,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        256,
		// Enough idle connections for every keep-alive client to have its
		// own: a small pool closes and reopens backend connections under load.
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	var transport http.RoundTripper = r.transport
	if target.Scheme == "http" {
		r.h1 = newH1Transport(dialer.DialContext, r.transport)
		transport = r.h1
		r.fwd = newForwarder(l, r.h1, target, r.timeout)
	}
	r.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // backends see the name the client asked for
			// X-Forwarded-For: the client's list with the peer appended;
			// -Proto: https; -Host: the client's Host.
			pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
			pr.SetXForwarded()
			stripIdentityHeaders(pr.Out.Header)
			if info := connInfoFrom(pr.In.Context()); info != nil && info.ident != nil {
				for _, h := range info.ident.headers {
					pr.Out.Header[h[0]] = []string{h[1]}
				}
			}
		},
		Transport:    transport,
		BufferPool:   copyBuffers,
		ErrorHandler: l.backendError,
		ErrorLog:     slog.NewLogLogger(l.g.log.Handler(), slog.LevelDebug),
	}
	return r, nil
}

// backendError answers 504 when the route's timeout expired and 502 for
// any other failure to get a response (connection refused, reset, TLS),
// with a generic body: the cause goes to the log under the error ID only.
func (l *listener) backendError(w http.ResponseWriter, r *http.Request, err error) {
	sw, _ := w.(*statusWriter)
	if r.Context().Err() == context.Canceled {
		// The client went away: nobody to answer.
		if sw != nil {
			sw.status = 499
		}
		return
	}
	id := newErrorID()
	status, msg := http.StatusBadGateway, "the backend is unavailable"
	if errors.Is(err, context.DeadlineExceeded) || r.Context().Err() == context.DeadlineExceeded {
		status, msg = http.StatusGatewayTimeout, "the backend did not answer in time"
	}
	route := ""
	if sw != nil {
		sw.errorID = id
		route = sw.route
	}
	l.g.log.Warn("gateway: backend request failed", keyListener, l.name, keyRoute, route, keyErrorID, id, keyError, err, "status", status)
	writeError(w, status, "unavailable", msg, id)
}

// writeError writes the API's error envelope.
func writeError(w http.ResponseWriter, status int, code, msg, id string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(apiv1.ErrorBody{Error: apiv1.Error{Code: code, Message: msg, ID: id}})
}

// statusWriter records what was written, for the access log and metrics.
// Unwrap lets http.ResponseController (which ReverseProxy uses to flush and
// to switch protocols) reach the connection.
type statusWriter struct {
	http.ResponseWriter
	status  int
	bytes   int64
	route   string
	errorID string
	reason  string
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ServeHTTP routes one request: canonical path, route, identity rules,
// then the backend within the route's timeout. Panics are contained here.
func (l *listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, route: "none"}
	info := connInfoFrom(r.Context())
	defer func() {
		v := recover()
		if v != nil && v != http.ErrAbortHandler {
			id := newErrorID()
			l.g.log.Error("gateway: panic while serving a request", keyListener, l.name, keyRoute, sw.route,
				keyErrorID, id, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			sw.errorID = id
			if sw.status == 0 {
				writeError(sw, http.StatusInternalServerError, "internal", "internal error", id)
			} else {
				v = http.ErrAbortHandler // headers are out: only closing the connection is left
			}
		}
		l.finish(sw, r, info, start)
		if v == http.ErrAbortHandler {
			panic(v) // net/http closes the connection quietly
		}
	}()
	if !plainTarget(r.RequestURI) {
		writeError(sw, http.StatusBadRequest, "invalid", "the request target must be printable ASCII without spaces: percent-encode other octets", "")
		return
	}
	if !canonicalPath(r.URL.Path) {
		writeError(sw, http.StatusBadRequest, "invalid", "the request path must be absolute and clean (no //, /./ or /../)", "")
		return
	}
	rt := l.router.match(r.Host, r.URL.Path)
	if rt == nil {
		writeError(sw, http.StatusNotFound, "not_found", "no route for this host and path", "")
		return
	}
	sw.route = rt.name
	var id *identity
	if info != nil {
		id = info.ident
	}
	if !rt.permits(id) {
		sw.reason = verify.ClientCertRejectedByRoute.String()
		writeError(sw, http.StatusForbidden, "denied", "the client certificate is not allowed on this route", "")
		return
	}
	if r.ContentLength != 0 && r.ProtoMajor == 1 {
		// The body is sent to the backend while its answer is awaited
		// and forwarded: let the server read the one while writing the
		// other, rather than discard what is left of the body when the
		// answer starts, as it does by default.
		if fd, ok := w.(interface{ EnableFullDuplex() error }); ok {
			fd.EnableFullDuplex()
		}
	}
	if rt.fwd != nil && rt.fwd.takes(r) {
		rt.fwd.serve(sw, r, info, start)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), rt.timeout)
	defer cancel()
	rt.proxy.ServeHTTP(sw, r.WithContext(ctx))
}

// plainTarget reports whether a request target (path and query, as the
// client sent it) holds only printable ASCII without spaces. Both paths
// to a backend write the query as it came, and HTTP/2 lets a client send
// a :path with a space, which would end the HTTP/1.1 request line early
// (the rest would be read as the protocol version, or worse); control
// octets could split it, and non-ASCII octets are not allowed in a URI
// (RFC 3986 §2). The printable delimiters RFC 3986 leaves out ("[]{}|^
// and the like) are let through, as HTTP/1.1 servers commonly accept
// them: clients send them unencoded in queries, and they cannot break the
// request line.
func plainTarget(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// canonicalPath rejects paths that a backend could resolve differently
// from the router ("/api/../admin" must not reach /admin through the /api
// route's rules). Percent-encoded slashes and dots are decoded in
// r.URL.Path, so they are caught too.
func canonicalPath(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c == p
}

// finish writes the access log line and the request metrics.
func (l *listener) finish(sw *statusWriter, r *http.Request, info *connInfo, start time.Time) {
	d := time.Since(start)
	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	series := l.series.get(l.g.m, l.name, sw.route, status)
	series.count.Inc()
	series.duration.Observe(d.Seconds())
	if !l.g.accessLog.Enabled(r.Context(), slog.LevelInfo) {
		// access_log: off. LogAttrs would drop the line, but only after
		// the attributes below were built: a dozen allocations a request.
		return
	}
	ip, port := splitAddrString(r.RemoteAddr)
	attrs := []slog.Attr{
		slog.String(keyListener, l.name),
		slog.String("client_ip", ip),
		slog.Int("client_port", port),
		slog.String("method", r.Method),
		slog.String("host", r.Host),
		slog.String("path", r.URL.Path),
		slog.String("proto", r.Proto),
		slog.Int("status", status),
		slog.Int64("bytes", sw.bytes),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000),
		slog.String(keyRoute, sw.route),
	}
	if info != nil {
		attrs = append(attrs, slog.String(keyConnID, info.id))
		if info.ident != nil {
			attrs = append(attrs, slog.String("client_subject", info.ident.subject), slog.String("client_serial", info.ident.serial))
		}
	}
	if sw.reason != "" {
		attrs = append(attrs, slog.String("reason", sw.reason))
	}
	if sw.errorID != "" {
		attrs = append(attrs, slog.String(keyErrorID, sw.errorID))
	}
	l.g.accessLog.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
}

func splitAddrString(a string) (string, int) {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return a, 0
	}
	n, _ := strconv.Atoi(port)
	return host, n
}

// IDs: connection IDs are a per-process random prefix and a counter
// (unique, cheap, sortable by arrival); error IDs are random.
var (
	connPrefix = func() string {
		b := make([]byte, 4)
		rand.Read(b)
		return hex.EncodeToString(b)
	}()
	connCounter atomic.Uint64
)

func newConnID() string {
	return connPrefix + "-" + strconv.FormatUint(connCounter.Add(1), 36)
}

func newErrorID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// copyBuffers recycles the 32 KiB buffers ReverseProxy copies bodies
// through; without it each proxied response allocates one, and that garbage
// dominates the collector's work under load.
var copyBuffers = &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte  { return *b.p.Get().(*[]byte) }
func (b *bufferPool) Put(v []byte) { b.p.Put(&v) }

// get and put hand out the pool's pointers as they are, which Put, the
// interface ReverseProxy wants, cannot: it allocates a new one each time.
func (b *bufferPool) get() *[]byte  { return b.p.Get().(*[]byte) }
func (b *bufferPool) put(p *[]byte) { b.p.Put(p) }
