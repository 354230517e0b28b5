package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trustgate/trustgate/internal/config"
	"github.com/trustgate/trustgate/internal/truststore/verify"
)

// listener is one TLS listener: its socket, server certificate, trust
// store, routes and HTTP server.
type listener struct {
	g      *Gateway
	name   string
	spec   config.GatewayListener
	mode   string
	cert   *keyPair
	trust  *trustState // verify mode only
	limits verify.Options
	tmpl   *tls.Config // cloned for every handshake
	base   *tls.Config // hands out the clones; owns the session ticket keys
	router *router
	srv    *http.Server
	hs     *hsListener
	port   int

	// trustPoll is how often the trust store is refreshed: the file poll
	// interval, or control_plane.poll_interval for a named trust store.
	trustPoll time.Duration
	// lastPoll is the outcome of the last poll of the control plane
	// (PollChanged, PollNotModified, PollError).
	lastPoll atomic.Value
	// written is, in issue mode, the certificate last written to the
	// files for this listener; the file poll swaps it in when the
	// listener serves another (see Gateway.issued).
	written atomic.Pointer[x509.Certificate]

	identities identityCache
	series     requestSeriesCache
	// successes is the series of successful handshakes, resolved at the
	// first: WithLabelValues hashes its labels on every call.
	successes struct {
		once sync.Once
		c    prometheus.Counter
	}
}

// compatibleSuites are the TLS 1.2 suites of the "compatible" policy:
// ECDHE key exchange with an AEAD only (TLS 1.3 suites are not
// configurable and are all AEAD).
var compatibleSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// tlsTemplate is the per-policy part of a listener's TLS configuration.
func tlsTemplate(policy string) *tls.Config {
	c := &tls.Config{NextProtos: []string{"h2", "http/1.1"}, MaxVersion: tls.VersionTLS13}
	if policy == config.PolicyModern {
		c.MinVersion = tls.VersionTLS13
	} else {
		c.MinVersion = tls.VersionTLS12
		c.CipherSuites = compatibleSuites
	}
	return c
}

func newListener(ctx context.Context, g *Gateway, spec config.GatewayListener) (*listener, error) {
	l := &listener{g: g, name: spec.Name, spec: spec, mode: spec.MTLS.Mode, limits: VerifyOptions(spec)}
	var err error
	l.cert, err = loadKeyPair(spec.Certificate.CertFile, spec.Certificate.KeyFile)
	if spec.Certificate.Issue.Enabled() {
		err = g.servable(spec, l.cert, err)
	}
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", l.name, err)
	}
	if l.mode == config.MTLSVerify {
		ts := spec.MTLS.TrustStore
		l.trustPoll = g.pollInterval()
		if ts.Name != "" {
			l.trustPoll = time.Duration(g.spec.ControlPlane.PollInterval)
		}
		src := g.cfg.TrustSources[l.name]
		switch {
		case src != nil:
		case ts.Name != "":
			src = &ControlPlaneSource{
				Client: g.controlPlane, Name: ts.Name, Refresh: time.Duration(ts.CRLRefresh), Options: l.limits,
				HTTPClient: g.cfg.HTTPClient, Now: g.cfg.Now, Logger: g.log.With(keyListener, l.name),
				OnPoll: func(result string) {
					g.m.controlPlanePolls.WithLabelValues(l.name, result).Inc()
					l.lastPoll.Store(result)
				},
				OnCRLs: func(full, delta int) {
					g.m.crlsApplied.WithLabelValues(l.name, "full").Add(float64(full))
					g.m.crlsApplied.WithLabelValues(l.name, "delta").Add(float64(delta))
				},
				MaxStaleness: time.Duration(g.spec.ControlPlane.MaxStaleness),
				Wait:         time.Duration(g.spec.ControlPlane.LongPoll),
			}
			if dir := g.spec.ControlPlane.SnapshotDir; dir != "" {
				if err := os.MkdirAll(dir, 0o700); err != nil {
					return nil, fmt.Errorf("control_plane.snapshot_dir: %w", err)
				}
				// Trust store names are [a-z0-9][a-z0-9._-]*: safe file names.
				src.(*ControlPlaneSource).CacheFile = filepath.Join(dir, ts.Name+".snapshot.json")
			}
		default:
			src = &FileSource{
				CAFile: ts.CAFile, CRLFiles: ts.CRLFiles, CRLURLs: ts.CRLURLs,
				Refresh: time.Duration(ts.CRLRefresh), Options: l.limits,
				Client: g.cfg.HTTPClient, Now: g.cfg.Now,
			}
		}
		if l.trust, err = newTrustState(ctx, l.name, src); err != nil {
			return nil, fmt.Errorf("listener %s: %w", l.name, err)
		}
	}
	if l.router, err = newRouter(l, spec.Routes); err != nil {
		return nil, fmt.Errorf("listener %s: %w", l.name, err)
	}

	l.tmpl = tlsTemplate(spec.SecurityPolicy)
	l.tmpl.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return l.cert.get(), nil }
	switch l.mode {
	case config.MTLSVerify:
		// Verification happens in VerifyConnection, which crypto/tls also
		// calls for resumed sessions; RequireAnyClientCert makes the client
		// send a certificate without crypto/tls verifying it.
		l.tmpl.ClientAuth = tls.RequireAnyClientCert
	case config.MTLSPassthrough:
		l.tmpl.ClientAuth = tls.RequestClientCert
	default:
		l.tmpl.ClientAuth = tls.NoClientCert
	}
	l.base = &tls.Config{GetConfigForClient: l.configForClient}

	t := g.spec.Timeouts
	l.srv = &http.Server{
		Handler:           l,
		ReadHeaderTimeout: time.Duration(t.ReadHeader),
		ReadTimeout:       time.Duration(t.Read),
		WriteTimeout:      time.Duration(t.Write),
		IdleTimeout:       time.Duration(t.Idle),
		MaxHeaderBytes:    g.spec.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
		ConnContext:       connContext,
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", spec.Address)
	if err != nil {
		l.router.close()
		return nil, fmt.Errorf("listener %s: %w", l.name, err)
	}
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		l.port = a.Port
	}
	l.hs = newHSListener(ln, l)
	return l, nil
}

// VerifyOptions are the verification options of a listener's mtls
// section, which its trust store's Verifier must be compiled with.
func VerifyOptions(spec config.GatewayListener) verify.Options {
	o := verify.Options{
		MaxChainDepth: spec.MTLS.MaxChainDepth,
		MaxCertSize:   spec.MTLS.MaxCertSize,
		IgnoreExpiry:  spec.MTLS.IgnoreClientCertificateExpiry,
	}
	if spec.MTLS.TrustStore.StaleCRLPolicy == config.StaleCRLFailOpen {
		o.StaleCRL = verify.FailOpen
	}
	return o
}

// configForClient gives each handshake its own copy of the configuration,
// whose VerifyConnection records its result on the connection. Session
// ticket keys stay those of l.base: crypto/tls uses the original
// Config's keys when the returned one sets none, so resumption works
// across connections.
func (l *listener) configForClient(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	c := l.tmpl.Clone()
	tc, _ := hello.Conn.(*trackedConn)
	if tc == nil {
		return nil, errors.New("gateway: connection not tracked")
	}
	info := tc.info
	c.VerifyConnection = func(cs tls.ConnectionState) error { return l.verifyConnection(info, cs) }
	if l.mode == config.MTLSVerify && l.spec.MTLS.AdvertiseCANames {
		c.ClientCAs = l.trust.current().ClientCAs()
	}
	return c, nil
}

// verifyConnection runs at the end of every handshake, full or resumed.
func (l *listener) verifyConnection(info *connInfo, cs tls.ConnectionState) error {
	info.presented = cs.PeerCertificates
	switch l.mode {
	case config.MTLSVerify:
		if err := l.trust.expired(l.g.now()); err != nil {
			info.verr = err
			return err
		}
		v := l.trust.current()
		res, err := v.Verify(cs.PeerCertificates, l.g.now())
		info.result, info.verr = res, err
		if err == nil && res.StaleCRL {
			l.g.m.staleAccepts.WithLabelValues(l.name).Inc()
			l.g.log.Warn("gateway: accepted a client certificate with a stale CRL (stale_crl_policy fail-open)",
				keyListener, l.name, keyConnID, info.id, "issuer", formatDN(res.StaleIssuer.RawSubject))
		}
		return err
	case config.MTLSPassthrough:
		if len(cs.PeerCertificates) == 0 {
			return nil
		}
		err := verify.CheckLimits(cs.PeerCertificates, l.limits)
		info.verr = err
		return err
	}
	return nil
}

// Attribute keys shared by the logs.
const (
	keyListener = "listener"
	keyConnID   = "conn_id"
	keyRoute    = "route"
	keyErrorID  = "error_id"
	keyError    = "error"
)

// connInfo is the state of one client connection. The handshake goroutine
// writes it (VerifyConnection runs there) before the connection reaches
// the HTTP server, which only reads it.
type connInfo struct {
	id        string
	remote    net.Addr
	accepted  time.Time
	presented []*x509.Certificate
	result    verify.Result
	verr      error
	ident     *identity // nil without a client certificate
}

type connInfoKey struct{}

func connContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		if t, ok := tc.NetConn().(*trackedConn); ok {
			return context.WithValue(ctx, connInfoKey{}, t.info)
		}
	}
	return ctx
}

func connInfoFrom(ctx context.Context) *connInfo {
	ci, _ := ctx.Value(connInfoKey{}).(*connInfo)
	return ci
}

// trackedConn carries a connection's state into GetConfigForClient, which
// sees only the net.Conn.
type trackedConn struct {
	net.Conn
	info *connInfo
}

// hsListener accepts TCP connections and hands the HTTP server only
// connections whose TLS handshake succeeded. Handshakes run in their own
// goroutines, bounded by the read_header timeout, so a slow client never
// holds up Accept, and each one ends in exactly one connection log line.
type hsListener struct {
	net.Listener
	l     *listener
	ready chan net.Conn
	done  chan struct{}
	once  sync.Once
	err   error // why the accept loop stopped, when not closed

	mu      sync.Mutex
	pending map[net.Conn]struct{}
	wg      sync.WaitGroup
}

func newHSListener(ln net.Listener, l *listener) *hsListener {
	return &hsListener{Listener: ln, l: l, ready: make(chan net.Conn), done: make(chan struct{}), pending: map[net.Conn]struct{}{}}
}

// Accept returns the next connection whose handshake succeeded.
func (h *hsListener) Accept() (net.Conn, error) {
	select {
	case c := <-h.ready:
		return c, nil
	case <-h.done:
		if h.err != nil {
			return nil, h.err
		}
		return nil, net.ErrClosed
	}
}

// Close stops accepting and closes the connections still in their handshake.
func (h *hsListener) Close() error {
	var err error
	h.once.Do(func() {
		close(h.done)
		err = h.Listener.Close()
		h.mu.Lock()
		for c := range h.pending {
			c.Close()
		}
		h.mu.Unlock()
	})
	return err
}

func (h *hsListener) acceptLoop() {
	var delay time.Duration
	for {
		c, err := h.Listener.Accept()
		if err != nil {
			select {
			case <-h.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: back off, as net/http does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				h.l.g.log.Warn("gateway: accept failed; retrying", keyListener, h.l.name, keyError, err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			h.err = fmt.Errorf("listener %s: accept: %w", h.l.name, err)
			h.Close()
			return
		}
		delay = 0
		h.mu.Lock()
		select {
		case <-h.done:
			h.mu.Unlock()
			c.Close()
			return
		default:
		}
		h.pending[c] = struct{}{}
		h.wg.Add(1)
		h.mu.Unlock()
		go h.handshake(c)
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (h *hsListener) handshake(raw net.Conn) {
	defer h.wg.Done()
	info := &connInfo{id: newConnID(), remote: raw.RemoteAddr(), accepted: time.Now()}
	tc := &trackedConn{Conn: raw, info: info}
	conn := tls.Server(tc, h.l.base)
	release := func() {
		h.mu.Lock()
		delete(h.pending, raw)
		h.mu.Unlock()
	}
	defer func() {
		if v := recover(); v != nil {
			// A bug in verification must cost one connection, not the process.
			h.l.g.log.Error("gateway: panic in a TLS handshake", keyListener, h.l.name, keyConnID, info.id,
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			release()
			raw.Close()
		}
	}()
	timeout := time.Duration(h.l.g.spec.Timeouts.ReadHeader)
	raw.SetDeadline(time.Now().Add(timeout))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	err := conn.HandshakeContext(ctx)
	cancel()
	latency := time.Since(info.accepted)
	raw.SetDeadline(time.Time{})
	release()
	cs := conn.ConnectionState()
	if err == nil {
		chain := cs.PeerCertificates
		if h.l.mode == config.MTLSVerify {
			chain = info.result.Chain
		}
		info.ident = h.l.identities.get(h.l.mode, chain, h.l.spec.MTLS.Headers)
	}
	h.l.logConnection(info, cs, latency, err)
	if err != nil {
		conn.Close()
		return
	}
	select {
	case h.ready <- conn:
	case <-h.done:
		conn.Close()
	}
}

// failureReason names why a handshake failed: the Reason of a rejected
// client certificate, or one of the two that crypto/tls decides before
// VerifyConnection runs (recognised by its error text, which tests pin
// down); "" for failures unrelated to the client certificate.
func (l *listener) failureReason(info *connInfo, err error) verify.Reason {
	if r := verify.ReasonOf(err); r != 0 {
		return r
	}
	if r := verify.ReasonOf(info.verr); r != 0 {
		return r
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "didn't provide a certificate"):
		return verify.ClientCertNotFound
	case strings.Contains(msg, "failed to parse client certificate"),
		strings.Contains(msg, "client certificate contains an unsupported public key"):
		return verify.ClientCertMalformed
	}
	return 0
}

// logConnection writes the connection log line of a handshake, in the
// spirit of AWS ALB's connection log, and counts it.
func (l *listener) logConnection(info *connInfo, cs tls.ConnectionState, latency time.Duration, err error) {
	status, reason, result, level := "Success", "", "success", slog.LevelInfo
	if err != nil {
		status, result, level = "Failed", "failure", slog.LevelWarn
		reason = l.failureReason(info, err).String()
		l.g.m.handshakes.WithLabelValues(l.name, result, reason).Inc()
	} else {
		l.successes.once.Do(func() { l.successes.c = l.g.m.handshakes.WithLabelValues(l.name, result, reason) })
		l.successes.c.Inc()
	}
	if !l.g.connLog.Enabled(context.Background(), level) {
		// connection_log: off. The leaf's DN strings and the attributes
		// would be built for nothing.
		return
	}
	ip, port := splitAddr(info.remote)
	var leaf *x509.Certificate
	if len(cs.PeerCertificates) > 0 {
		leaf = cs.PeerCertificates[0]
	}
	subject, issuer, serial, validity := leafFields(leaf)
	attrs := []slog.Attr{
		slog.String(keyListener, l.name),
		slog.String(keyConnID, info.id),
		slog.String("client_ip", ip),
		slog.Int("client_port", port),
		slog.Int("listener_port", l.port),
		slog.String("tls_protocol", tlsVersionName(cs.Version)),
		slog.String("tls_cipher", cipherName(cs)),
		slog.Float64("tls_handshake_latency_ms", float64(latency.Microseconds())/1000),
		slog.Bool("tls_resumed", cs.DidResume),
		slog.String("alpn", cs.NegotiatedProtocol),
		slog.String("sni", cs.ServerName),
		slog.String("mtls_mode", l.mode),
		slog.String("leaf_client_cert_subject", subject),
		slog.String("leaf_client_cert_issuer", issuer),
		slog.String("leaf_client_cert_serial_number", serial),
		slog.String("leaf_client_cert_validity", validity),
		slog.String("tls_verify_status", status),
		slog.String("failure_reason", reason),
	}
	if info.result.ExpiryIgnored {
		attrs = append(attrs, slog.Bool("expiry_ignored", true))
	}
	if info.result.StaleCRL {
		attrs = append(attrs, slog.Bool("stale_crl_accepted", true))
	}
	if err != nil {
		attrs = append(attrs, slog.String(keyError, err.Error()))
	}
	l.g.connLog.LogAttrs(context.Background(), level, "connection", attrs...)
}

func splitAddr(a net.Addr) (string, int) {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String(), t.Port
	}
	if a == nil {
		return "", 0
	}
	host, port, _ := net.SplitHostPort(a.String())
	n, _ := strconv.Atoi(port)
	return host, n
}

func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "TLSv1.3"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS10:
		return "TLSv1"
	case 0:
		return ""
	}
	return "0x" + strconv.FormatUint(uint64(v), 16)
}

func cipherName(cs tls.ConnectionState) string {
	if cs.CipherSuite == 0 {
		return ""
	}
	return tls.CipherSuiteName(cs.CipherSuite)
}
