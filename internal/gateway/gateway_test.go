package gateway

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/config"
	"github.com/trustgate/trustgate/internal/truststore/verify"
)

// spoofed are identity headers a client tries to slip to the backend.
var spoofed = http.Header{
	"X-Amzn-Mtls-Clientcert-Subject":       {"CN=admin"},
	"x-amzn-mtls-clientcert-serial-number": {"01"},
	"X-Amzn-Mtls-Clientcert":               {"spoof"},
	"X-Amzn-Mtls-Clientcert-Leaf":          {"spoof"},
	"X-Forwarded-Client-Cert":              {"Hash=00;Subject=\"CN=admin\""},
	"X_Amzn_Mtls_Clientcert_Subject":       {"CN=admin"},
	"X_Forwarded_Proto":                    {"http"},
	"X-Forwarded-For":                      {"203.0.113.7"},
	"X-Forwarded-Proto":                    {"http"},
}

// checkNoSpoof fails if anything a client sent in spoofed reached the backend.
func checkNoSpoof(t *testing.T, h http.Header) {
	t.Helper()
	for k, v := range h {
		lk := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
		if strings.Contains(k, "_") && (strings.HasPrefix(lk, "x-amzn-mtls") || strings.HasPrefix(lk, "x-forwarded")) {
			t.Errorf("underscore header %s reached the backend", k)
		}
		for _, s := range v {
			if s == "spoof" || s == "CN=admin" || s == "01" || strings.Contains(s, `Subject="CN=admin"`) {
				t.Errorf("spoofed %s: %q reached the backend", k, s)
			}
		}
		if len(v) != 1 && strings.HasPrefix(lk, "x-amzn-mtls") {
			t.Errorf("%s has %d values", k, len(v))
		}
	}
	if got := h.Get("X-Forwarded-Proto"); got != "https" {
		t.Errorf("X-Forwarded-Proto = %q", got)
	}
	if got := h.Get("X-Forwarded-For"); got != "203.0.113.7, 127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q, want the client's value with the peer appended", got)
	}
}

// decodePEMHeader percent-decodes a PEM header (as a path, so '+' stays)
// and returns its certificates' DER.
func decodePEMHeader(t *testing.T, v string) [][]byte {
	t.Helper()
	s, err := url.PathUnescape(v)
	if err != nil {
		t.Fatalf("unescape %q: %v", v, err)
	}
	var out [][]byte
	rest := []byte(s)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		out = append(out, b.Bytes)
	}
	if len(bytes.TrimSpace(rest)) != 0 || len(out) == 0 {
		t.Fatalf("header %q is not PEM", v)
	}
	return out
}

func TestVerifyModeALBHeaders(t *testing.T) {
	e := newEnv(t, envOpt{})
	res := e.get("main", e.clientTLS(e.client), "/hello", spoofed)
	ec := res.echo(t)
	h := ec.Header
	leaf := e.client.cert
	if got, want := h.Get(HeaderSerialNumber), strings.ToUpper(hex.EncodeToString(leaf.SerialNumber.Bytes())); got != want {
		t.Errorf("serial %q, want %q", got, want)
	}
	if got := h.Get(HeaderIssuer); got != "CN=Test Intermediate,O=Trustgate Test" {
		t.Errorf("issuer %q", got)
	}
	if got := h.Get(HeaderSubject); got != "CN=svc-a,O=Example" {
		t.Errorf("subject %q", got)
	}
	wantValidity := "NotBefore=" + leaf.NotBefore.UTC().Format("2006-01-02T15:04:05Z") + ";NotAfter=" + leaf.NotAfter.UTC().Format("2006-01-02T15:04:05Z")
	if got := h.Get(HeaderValidity); got != wantValidity {
		t.Errorf("validity %q, want %q", got, wantValidity)
	}
	ders := decodePEMHeader(t, h.Get(HeaderLeaf))
	if len(ders) != 1 || !bytes.Equal(ders[0], leaf.Raw) {
		t.Errorf("leaf header does not round-trip to the leaf's DER")
	}
	if !strings.Contains(h.Get(HeaderLeaf), "-----BEGIN%20CERTIFICATE-----%0A") {
		t.Errorf("leaf header is not ALB's encoding: %.60q", h.Get(HeaderLeaf))
	}
	if h.Get(HeaderClientCert) != "" || h.Get(HeaderXFCC) != "" {
		t.Error("verify mode with headers alb sent X-Amzn-Mtls-Clientcert or XFCC")
	}
	checkNoSpoof(t, h)
	if ec.Host != "localhost" {
		t.Errorf("backend saw Host %q, want the client's", ec.Host)
	}

	line := e.connLog.find(t, "client_port", res.port)
	for k, want := range map[string]any{
		"msg": "connection", "listener": "main", "tls_verify_status": "Success", "failure_reason": "",
		"tls_protocol": "TLSv1.3", "leaf_client_cert_subject": "CN=svc-a,O=Example",
		"leaf_client_cert_serial_number": h.Get(HeaderSerialNumber), "leaf_client_cert_validity": wantValidity,
		"leaf_client_cert_issuer": "CN=Test Intermediate,O=Trustgate Test", "mtls_mode": "verify",
	} {
		if line[k] != want {
			t.Errorf("connection log %s = %v, want %v", k, line[k], want)
		}
	}
	if _, ok := line["tls_handshake_latency_ms"].(float64); !ok {
		t.Errorf("no handshake latency: %v", line)
	}
	acc := e.accessLog.find(t, "client_port", res.port)
	for k, want := range map[string]any{"method": "GET", "path": "/hello", "status": float64(200), "route": "default", "client_subject": "CN=svc-a,O=Example", "conn_id": line["conn_id"]} {
		if acc[k] != want {
			t.Errorf("access log %s = %v, want %v", k, acc[k], want)
		}
	}
}

func TestVerifyModeXFCC(t *testing.T) {
	e := newEnv(t, envOpt{mutate: func(e *env, g *config.Gateway) {
		g.Listeners[0].MTLS.Headers = config.HeadersBoth
	}})
	// A subject full of the characters that break naive parsers.
	odd := e.inter.issue(t, leafOpts{
		subject: pkix.Name{CommonName: `svc "a", b; c+d=e`, Organization: []string{"Exämple"}},
		dns:     []string{"svc.prod.internal", "alt.prod.internal"},
		uris:    []string{"spiffe://prod.internal/ns/a/sa/b"},
	})
	h := e.get("main", e.clientTLS(odd), "/", spoofed).echo(t).Header
	checkNoSpoof(t, h)
	wantSubject := `CN=svc \"a\"\, b\; c\+d=e,O=Exämple`
	if got := h.Get(HeaderSubject); got != wantSubject {
		t.Errorf("ALB subject %q, want %q", got, wantSubject)
	}
	x := h.Values(HeaderXFCC)
	if len(x) != 1 {
		t.Fatalf("XFCC values %q", x)
	}
	elems, err := parseXFCC(x[0])
	if err != nil || len(elems) != 1 {
		t.Fatalf("parse XFCC %q: %v", x[0], err)
	}
	got := map[string][]string{}
	for _, p := range elems[0] {
		got[p[0]] = append(got[p[0]], p[1])
	}
	sum := sha256.Sum256(odd.cert.Raw)
	if got["Hash"][0] != hex.EncodeToString(sum[:]) {
		t.Errorf("Hash %q", got["Hash"])
	}
	if ders := decodePEMHeader(t, got["Cert"][0]); len(ders) != 1 || !bytes.Equal(ders[0], odd.cert.Raw) {
		t.Error("XFCC Cert does not round-trip")
	}
	if strings.ContainsAny(got["Cert"][0], "+/=") {
		t.Error("XFCC Cert leaves + / = unescaped")
	}
	if subj, _ := url.PathUnescape(got["Subject"][0]); subj != wantSubject {
		t.Errorf("XFCC Subject %q, want %q", subj, wantSubject)
	}
	if strings.Join(got["URI"], " ") != "spiffe://prod.internal/ns/a/sa/b" || strings.Join(got["DNS"], " ") != "svc.prod.internal alt.prod.internal" {
		t.Errorf("XFCC URI %q DNS %q", got["URI"], got["DNS"])
	}
}

func TestVerifyModeRejections(t *testing.T) {
	e := newEnv(t, envOpt{mutate: func(e *env, g *config.Gateway) {
		lax := g.Listeners[0]
		lax.Name, lax.Address = "lax", "127.0.0.1:0"
		lax.MTLS.IgnoreClientCertificateExpiry = true
		lax.MTLS.AdvertiseCANames = true
		g.Listeners = append(g.Listeners, lax)
	}})
	now := time.Now()
	other := newCA(t, "Other Root")
	d1 := e.inter.sub(t, "Deep 1")
	d2 := d1.sub(t, "Deep 2")
	d3 := d2.sub(t, "Deep 3")
	expired := e.inter.issue(t, leafOpts{subject: pkix.Name{CommonName: "expired"}, notBefore: now.Add(-48 * time.Hour), notAfter: now.Add(-time.Hour)})
	cases := []struct {
		name   string
		cert   *leafCert
		raw    *tls.Certificate
		reason verify.Reason
	}{
		{name: "fail/no-certificate", reason: verify.ClientCertNotFound},
		{name: "fail/untrusted-ca", cert: other.client(t, "stranger"), reason: verify.ClientCertUntrusted},
		{name: "fail/expired", cert: expired, reason: verify.ClientCertExpired},
		{name: "fail/not-yet-valid", cert: e.inter.issue(t, leafOpts{subject: pkix.Name{CommonName: "future"}, notBefore: now.Add(time.Hour), notAfter: now.Add(48 * time.Hour)}), reason: verify.ClientCertNotYetValid},
		{name: "fail/revoked", cert: e.revoked, reason: verify.ClientCertCrlHit},
		{name: "fail/server-certificate-as-client", cert: e.inter.issue(t, leafOpts{subject: pkix.Name{CommonName: "server-only"}, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}), reason: verify.ClientCertWrongUsage},
		{name: "fail/chain-too-deep", cert: d3.client(t, "deep"), reason: verify.ClientCertMaxChainDepthExceeded},
		{name: "fail/oversized", cert: e.inter.issue(t, leafOpts{subject: pkix.Name{CommonName: "big"}, pad: 6000}), reason: verify.ClientCertMaxSizeExceeded},
		{name: "fail/malformed", raw: &tls.Certificate{Certificate: [][]byte{[]byte("not a certificate")}, PrivateKey: e.client.key}, reason: verify.ClientCertMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := e.clientTLS(tc.cert)
			if tc.raw != nil {
				cfg.Certificates = []tls.Certificate{*tc.raw}
			}
			res := e.get("main", cfg, "/", nil)
			if res.err == nil && res.status != 0 {
				t.Fatalf("request succeeded with %d", res.status)
			}
			line := e.connLog.find(t, "client_port", res.port)
			if line["tls_verify_status"] != "Failed" || line["failure_reason"] != tc.reason.String() {
				t.Errorf("connection log: status %v reason %v (error %v), want Failed %s", line["tls_verify_status"], line["failure_reason"], line["error"], tc.reason)
			}
			if tc.cert != nil && line["leaf_client_cert_subject"] == "" {
				t.Errorf("connection log lacks the rejected leaf: %v", line)
			}
		})
	}
	t.Run("ok/expired-with-ignore-expiry", func(t *testing.T) {
		res := e.get("lax", e.clientTLS(expired), "/", nil)
		h := res.echo(t).Header
		if !strings.Contains(h.Get(HeaderValidity), expired.cert.NotAfter.UTC().Format("2006-01-02T15:04:05Z")) {
			t.Errorf("validity %q", h.Get(HeaderValidity))
		}
		line := e.connLog.find(t, "client_port", res.port)
		if line["expiry_ignored"] != true {
			t.Errorf("connection log does not say the expiry was ignored: %v", line)
		}
	})
	t.Run("ok/advertise-ca-names", func(t *testing.T) {
		var names [][]byte
		cfg := e.clientTLS(nil)
		cfg.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			names = cri.AcceptableCAs
			c := e.client.tls()
			return &c, nil
		}
		e.get("lax", cfg, "/", nil).echo(t)
		if len(names) != 2 || !bytes.Equal(names[0], e.root.cert.RawSubject) && !bytes.Equal(names[1], e.root.cert.RawSubject) {
			t.Errorf("lax listener advertised %d CA names", len(names))
		}
		names = nil
		e.get("main", cfg, "/", nil).echo(t)
		if len(names) != 0 {
			t.Errorf("main listener advertised %d CA names, want none", len(names))
		}
	})
}

func TestPassthroughForwardsChain(t *testing.T) {
	e := newEnv(t, envOpt{mutate: func(e *env, g *config.Gateway) {
		g.Listeners[0].MTLS = config.GatewayMTLS{Mode: config.MTLSPassthrough}
		g.Listeners[0].Routes = g.Listeners[0].Routes[:1]
	}})
	// An untrusted chain: passthrough does not verify.
	other := newCA(t, "Other Root").sub(t, "Other Intermediate")
	lc := other.client(t, "anyone")
	h := e.get("main", e.clientTLS(lc), "/", spoofed).echo(t).Header
	checkNoSpoof(t, h)
	ders := decodePEMHeader(t, h.Get(HeaderClientCert))
	if len(ders) != 2 || !bytes.Equal(ders[0], lc.cert.Raw) || !bytes.Equal(ders[1], other.cert.Raw) {
		t.Errorf("passthrough header holds %d certificates, want leaf then intermediate", len(ders))
	}
	if h.Get(HeaderSubject) != "" || h.Get(HeaderLeaf) != "" {
		t.Error("passthrough sent verify-mode headers")
	}
	// Without a certificate: no header, and the request still goes through.
	h = e.get("main", e.clientTLS(nil), "/", spoofed).echo(t).Header
	checkNoSpoof(t, h)
	if h.Get(HeaderClientCert) != "" {
		t.Error("header without a client certificate")
	}
	// The size and depth limits still hold.
	deep := other.sub(t, "D1").sub(t, "D2").sub(t, "D3").client(t, "deep")
	res := e.get("main", e.clientTLS(deep), "/", nil)
	if line := e.connLog.find(t, "client_port", res.port); line["failure_reason"] != "ClientCertMaxChainDepthExceeded" {
		t.Errorf("deep chain in passthrough: %v", line)
	}
}

func TestRouteIdentityRules(t *testing.T) {
	e := newEnv(t, envOpt{})
	res := e.get("main", e.clientTLS(e.client), "/admin/users", nil)
	if res.err != nil || res.status != http.StatusForbidden {
		t.Fatalf("status %d err %v, want 403", res.status, res.err)
	}
	var body struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(res.body, &body); err != nil || body.Error.Code != "denied" {
		t.Errorf("403 body %s", res.body)
	}
	acc := e.accessLog.find(t, "client_port", res.port)
	if acc["reason"] != "ClientCertRejectedByRoute" || acc["route"] != "admin" || acc["status"] != float64(403) {
		t.Errorf("access log %v", acc)
	}
	admin := e.inter.issue(t, leafOpts{subject: pkix.Name{CommonName: "admin"}, uris: []string{"spiffe://prod.internal/ns/admin/sa/ops"}})
	if ec := e.get("main", e.clientTLS(admin), "/admin/users", nil).echo(t); ec.Path != "/admin/users" {
		t.Errorf("path %q", ec.Path)
	}
	// The prefix is matched on whole segments, and unclean paths are refused.
	if ec := e.get("main", e.clientTLS(e.client), "/administrator", nil).echo(t); ec.Path != "/administrator" {
		t.Errorf("/administrator went to %q", ec.Path)
	}
	for _, p := range []string{"/x/../admin/users", "/x/%2e%2e/admin", "//admin"} {
		if res := e.get("main", e.clientTLS(e.client), p, nil); res.status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", p, res.status)
		}
	}
}

func TestRouteMatchAndRules(t *testing.T) {
	rt := &router{routes: []*route{
		{name: "any", prefix: ""}, {name: "api", prefix: "/api"}, {name: "wild", host: "*.example.com", prefix: ""},
		{name: "exact", host: "a.example.com", prefix: "/v1"}, {name: "deep", host: "*.b.example.com"},
	}}
	sortRoutes(rt)
	for _, tc := range []struct{ host, path, want string }{
		{"x.org", "/", "any"}, {"x.org", "/api", "api"}, {"x.org", "/api/x", "api"}, {"x.org", "/apix", "any"},
		{"c.example.com", "/api", "wild"}, {"a.example.com:443", "/v1/x", "exact"}, {"A.EXAMPLE.COM.", "/v2", "wild"},
		{"example.com", "/", "any"}, {"x.b.example.com", "/", "deep"},
	} {
		if got := rt.match(tc.host, tc.path); got == nil || got.name != tc.want {
			t.Errorf("match(%s, %s) = %v, want %s", tc.host, tc.path, got, tc.want)
		}
	}
	ca := newCA(t, "Rules Root")
	lc := ca.issue(t, leafOpts{subject: pkix.Name{CommonName: "svc"}, dns: []string{"svc.prod.internal"}, uris: []string{"spiffe://prod.internal/ns/a"}})
	id := newIdentity("verify", lc.chain, "alb")
	for _, tc := range []struct {
		name  string
		allow config.GatewayAllow
		want  bool
	}{
		{"ok/empty", config.GatewayAllow{}, true},
		{"ok/subject", config.GatewayAllow{Subjects: []string{"CN=other", "CN=svc"}}, true},
		{"fail/subject", config.GatewayAllow{Subjects: []string{"CN=sv"}}, false},
		{"ok/issuer", config.GatewayAllow{Issuers: []string{"CN=Rules Root,O=Trustgate Test"}}, true},
		{"ok/dns-wildcard", config.GatewayAllow{DNS: []string{"*.prod.internal"}}, true},
		{"fail/dns-wildcard-apex", config.GatewayAllow{DNS: []string{"*.svc.prod.internal"}}, false},
		{"ok/uri-prefix", config.GatewayAllow{URIPrefixes: []string{"spiffe://prod.internal/"}}, true},
		{"fail/uri-prefix", config.GatewayAllow{URIPrefixes: []string{"spiffe://prod.internal/ns/b"}}, false},
		{"fail/all-must-hold", config.GatewayAllow{Subjects: []string{"CN=svc"}, URIPrefixes: []string{"spiffe://staging/"}}, false},
	} {
		if got := (&route{allow: tc.allow}).permits(id); got != tc.want {
			t.Errorf("%s: permits = %v", tc.name, got)
		}
	}
	if (&route{allow: config.GatewayAllow{Subjects: []string{"CN=svc"}}}).permits(nil) {
		t.Error("rules allowed a connection without identity")
	}
}

func TestBackendErrors(t *testing.T) {
	e := newEnv(t, envOpt{})
	cfg := e.clientTLS(e.client)
	for _, tc := range []struct {
		path   string
		status int
	}{{"/down", http.StatusBadGateway}, {"/slow", http.StatusGatewayTimeout}} {
		start := time.Now()
		res := e.get("main", cfg, tc.path, nil)
		if res.err != nil || res.status != tc.status {
			t.Fatalf("%s: status %d err %v, want %d", tc.path, res.status, res.err, tc.status)
		}
		if tc.status == http.StatusGatewayTimeout && time.Since(start) > 2*time.Second {
			t.Errorf("504 after %s, the route timeout is 300ms", time.Since(start))
		}
		var body struct {
			Error struct{ Code, Message, ID string }
		}
		if err := json.Unmarshal(res.body, &body); err != nil || body.Error.Code != "unavailable" || body.Error.ID == "" {
			t.Errorf("%s body %s", tc.path, res.body)
		}
		for _, leak := range []string{"127.0.0.1", "refused", "dial", "context", "deadline", strings.TrimPrefix(e.downURL, "http://")} {
			if bytes.Contains(res.body, []byte(leak)) {
				t.Errorf("%s body leaks %q: %s", tc.path, leak, res.body)
			}
		}
		// The detail is in the gateway's log under the same ID.
		if !strings.Contains(e.logs.b.String(), body.Error.ID) {
			t.Errorf("error ID %s not in the log", body.Error.ID)
		}
	}
}

func TestPanicInHandlerIsContained(t *testing.T) {
	e := newEnv(t, envOpt{beforeRun: func(e *env) {
		for _, r := range e.gw.listeners[0].router.routes {
			if r.name == "down" {
				r.fwd = nil // through the ReverseProxy, whose Rewrite panics
				r.proxy.Rewrite = func(*httputil.ProxyRequest) { panic("boom") }
			}
		}
	}})
	cfg := e.clientTLS(e.client)
	res := e.get("main", cfg, "/down", nil)
	if res.status != http.StatusInternalServerError || !bytes.Contains(res.body, []byte(`"internal"`)) || bytes.Contains(res.body, []byte("boom")) {
		t.Errorf("status %d body %s", res.status, res.body)
	}
	e.get("main", cfg, "/", nil).echo(t) // still serving
}

func TestHTTP2(t *testing.T) {
	e := newEnv(t, envOpt{})
	cfg := e.clientTLS(e.client)
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for i := 0; i < 3; i++ {
		resp, err := c.Get("https://" + e.addr("main") + "/h2")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
			t.Fatalf("proto %s status %d", resp.Proto, resp.StatusCode)
		}
	}
}

func TestSecurityPolicies(t *testing.T) {
	e := newEnv(t, envOpt{mutate: func(e *env, g *config.Gateway) {
		g.Listeners[0].SecurityPolicy = config.PolicyModern
		c := g.Listeners[0]
		c.Name, c.SecurityPolicy = "compat", config.PolicyCompatible
		g.Listeners = append(g.Listeners, c)
	}})
	tls12 := e.clientTLS(e.client)
	tls12.MaxVersion = tls.VersionTLS12
	if res := e.get("main", tls12, "/", nil); res.err == nil {
		t.Error("modern listener accepted TLS 1.2")
	}
	res := e.get("compat", tls12, "/", nil)
	res.echo(t)
	if res.cs.Version != tls.VersionTLS12 || !isAEADECDHE(res.cs.CipherSuite) {
		t.Errorf("compatible negotiated %x / %s", res.cs.Version, tls.CipherSuiteName(res.cs.CipherSuite))
	}
	cbc := e.clientTLS(e.client)
	cbc.MaxVersion = tls.VersionTLS12
	cbc.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_128_GCM_SHA256}
	if res := e.get("compat", cbc, "/", nil); res.err == nil {
		t.Error("compatible listener accepted a CBC or non-ECDHE suite")
	}
}

func isAEADECDHE(s uint16) bool {
	for _, c := range compatibleSuites {
		if c == s {
			return true
		}
	}
	return false
}

func TestMetricsEndpoint(t *testing.T) {
	e := newEnv(t, envOpt{mutate: func(e *env, g *config.Gateway) { g.MetricsListen = "127.0.0.1:0" }})
	e.get("main", e.clientTLS(e.client), "/", nil).echo(t)
	e.get("main", e.clientTLS(e.revoked), "/", nil)
	e.connLog.find(t, "failure_reason", "ClientCertCrlHit")
	resp, err := http.Get("http://" + e.gw.MetricsAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`trustgate_gateway_handshakes_total{listener="main",reason="",result="success"} 1`,
		`trustgate_gateway_handshakes_total{listener="main",reason="ClientCertCrlHit",result="failure"} 1`,
		`trustgate_gateway_requests_total{code="200",listener="main",route="default"} 1`,
		`trustgate_gateway_request_duration_seconds_count{listener="main",route="default"} 1`,
		`trustgate_gateway_crl_age_seconds{issuer="CN=Test Intermediate,O=Trustgate Test",listener="main"}`,
		`trustgate_gateway_certificate_not_after_timestamp_seconds{listener="main"}`,
	} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestHTTPSBackendWithGatewayCertificate(t *testing.T) {
	bca := newCA(t, "Backend CA")
	bsrv := bca.issue(t, leafOpts{subject: pkix.Name{CommonName: "backend"}, ips: []net.IP{net.IPv4(127, 0, 0, 1)}, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	gwID := bca.client(t, "gateway")
	pool := x509.NewCertPool()
	pool.AddCert(bca.cert)
	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("X-Test-Peer", r.TLS.PeerCertificates[0].Subject.CommonName)
		json.NewEncoder(w).Encode(echo{Path: r.URL.Path, Header: r.Header})
	}))
	backend.TLS = &tls.Config{Certificates: []tls.Certificate{bsrv.tls()}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	backend.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	backend.StartTLS()
	defer backend.Close()
	dir := t.TempDir()
	writeFile(t, dir+"/backend-ca.pem", pemCerts(bca.cert))
	writeFile(t, dir+"/gw-client.pem", pemCerts(gwID.chain...))
	writeFile(t, dir+"/gw-client.key", pemKey(t, gwID.key))
	e := newEnv(t, envOpt{mutate: func(e *env, g *config.Gateway) {
		g.Listeners[0].Routes = append(g.Listeners[0].Routes,
			config.GatewayRoute{Name: "secure", PathPrefix: "/secure", Backend: config.GatewayBackend{
				URL: backend.URL + "/base", CAFile: dir + "/backend-ca.pem",
				ClientCertFile: dir + "/gw-client.pem", ClientKeyFile: dir + "/gw-client.key"}},
			config.GatewayRoute{Name: "anonymous", PathPrefix: "/anonymous", Backend: config.GatewayBackend{
				URL: backend.URL, CAFile: dir + "/backend-ca.pem"}},
			config.GatewayRoute{Name: "untrusted", PathPrefix: "/untrusted", Backend: config.GatewayBackend{URL: backend.URL}},
		)
	}})
	ec := e.get("main", e.clientTLS(e.client), "/secure/x", nil).echo(t)
	if ec.Path != "/base/secure/x" || ec.Header.Get("X-Test-Peer") != "gateway" || ec.Header.Get(HeaderSubject) != "CN=svc-a,O=Example" {
		t.Errorf("backend saw path %q, peer %q, subject %q", ec.Path, ec.Header.Get("X-Test-Peer"), ec.Header.Get(HeaderSubject))
	}
	for _, p := range []string{"/anonymous", "/untrusted"} {
		if res := e.get("main", e.clientTLS(e.client), p, nil); res.status != http.StatusBadGateway {
			t.Errorf("%s: status %d, want 502", p, res.status)
		}
	}
}
