package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/config"
	"github.com/trustgate/trustgate/internal/truststore/verify"
)

func TestSlowClientsAreCutOff(t *testing.T) {
	e := newEnv(t, envOpt{mutate: func(e *env, g *config.Gateway) {
		g.Timeouts.ReadHeader = config.Duration(300 * time.Millisecond)
	}})
	closedWithin := func(t *testing.T, c net.Conn, d time.Duration) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(d))
		start := time.Now()
		_, err := io.Copy(io.Discard, c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open after %s", d)
		}
		t.Logf("closed by the gateway after %s", time.Since(start).Round(time.Millisecond))
	}
	t.Run("handshake-never-sent", func(t *testing.T) {
		c, err := net.Dial("tcp", e.addr("main"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		closedWithin(t, c, 3*time.Second)
		line := e.connLog.find(t, "client_port", c.LocalAddr().(*net.TCPAddr).Port)
		if line["tls_verify_status"] != "Failed" || line["failure_reason"] != "" {
			t.Errorf("connection log %v", line)
		}
	})
	t.Run("headers-too-slow", func(t *testing.T) {
		c, err := tls.Dial("tcp", e.addr("main"), e.clientTLS(e.client))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// A slowloris client: a request line, then a header byte now and then.
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\n"); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
					if _, err := io.WriteString(c, "X"); err != nil {
						return
					}
				}
			}
		}()
		closedWithin(t, c, 3*time.Second)
	})
}

// TestReloadUnderLoad replaces the server certificate and the trust store
// (CA bundle and CRL) while eight clients send requests on kept-alive and
// on new connections: no request may fail, and new handshakes must see
// the new state.
func TestReloadUnderLoad(t *testing.T) {
	e := newEnv(t, envOpt{})
	root2 := newCA(t, "Second Root")
	newcomer := root2.client(t, "newcomer")
	victim := e.inter.client(t, "victim") // valid now, revoked by the new CRL
	if res := e.get("main", e.clientTLS(newcomer), "/", nil); res.err == nil && res.status != 0 {
		t.Fatal("a client of the second root was accepted before the reload")
	}
	e.get("main", e.clientTLS(victim), "/", nil).echo(t)

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{TLSClientConfig: e.clientTLS(e.client), DisableKeepAlives: i%2 == 1, ForceAttemptHTTP2: i%4 == 0}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get("https://" + e.addr("main") + "/load")
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				ok.Add(1)
			}
		}()
	}
	time.Sleep(700 * time.Millisecond)
	// New server certificate from the same root; new bundle and CRL.
	server2 := e.root.issue(t, leafOpts{subject: pkix.Name{CommonName: "gateway-2"}, dns: []string{"localhost"},
		ips: []net.IP{net.IPv4(127, 0, 0, 1)}, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	writeFile(t, e.path("server.key"), pemKey(t, server2.key)) // key first: a mismatched pair is skipped, not used
	time.Sleep(120 * time.Millisecond)
	writeFile(t, e.path("server.pem"), pemCerts(server2.chain...))
	writeFile(t, e.path("ca.pem"), pemCerts(e.root.cert, e.inter.cert, root2.cert))
	now := time.Now()
	writeFile(t, e.path("inter.crl"), e.inter.crl(t, now.Add(-time.Minute), now.Add(24*time.Hour), e.revoked.cert.SerialNumber, victim.cert.SerialNumber))
	time.Sleep(1300 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("%d requests during the reloads, %d failed", ok.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Errorf("%d requests failed; first: %v", failed.Load(), firstErr.Load())
	}
	if ok.Load() < 50 {
		t.Errorf("only %d requests", ok.Load())
	}
	// New handshakes see the new certificate and trust store (picked up by polling).
	res := e.get("main", e.clientTLS(newcomer), "/", nil)
	res.echo(t)
	if got := res.cs.PeerCertificates[0].SerialNumber; got.Cmp(server2.cert.SerialNumber) != 0 {
		t.Errorf("server certificate serial %s, want the new %s", got, server2.cert.SerialNumber)
	}
	res = e.get("main", e.clientTLS(victim), "/", nil)
	if line := e.connLog.find(t, "client_port", res.port); line["failure_reason"] != "ClientCertCrlHit" {
		t.Errorf("victim after the reload: %v", line)
	}
	if !strings.Contains(e.logs.b.String(), "trust store loaded") {
		t.Error("no trust store reload logged")
	}
}

func TestStaleCRLPolicies(t *testing.T) {
	e := newEnv(t, envOpt{mutate: func(e *env, g *config.Gateway) {
		now := time.Now()
		writeFile(t, e.path("stale.crl"), e.inter.crl(t, now.Add(-48*time.Hour), now.Add(-time.Hour)))
		g.Listeners[0].MTLS.TrustStore.CRLFiles = []string{e.path("stale.crl")}
		open := g.Listeners[0]
		open.Name = "open"
		open.MTLS.TrustStore.StaleCRLPolicy = config.StaleCRLFailOpen
		g.Listeners = append(g.Listeners, open)
		g.MetricsListen = "127.0.0.1:0"
	}})
	res := e.get("main", e.clientTLS(e.client), "/", nil)
	if line := e.connLog.find(t, "client_port", res.port); line["failure_reason"] != "ClientCertCrlExpired" {
		t.Errorf("fail-closed: %v", line)
	}
	res = e.get("open", e.clientTLS(e.client), "/", nil)
	res.echo(t)
	if line := e.connLog.find(t, "client_port", res.port); line["stale_crl_accepted"] != true {
		t.Errorf("fail-open: %v", line)
	}
	if !strings.Contains(e.logs.b.String(), "stale CRL") {
		t.Error("fail-open acceptance not logged")
	}
	resp, err := http.Get("http://" + e.gw.MetricsAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `trustgate_gateway_stale_crl_accepts_total{listener="open"} 1`) {
		t.Error("fail-open acceptance not counted")
	}
}

// TestResumedSessionIsReverified: a client revoked after its first
// connection cannot come back on a resumed TLS 1.3 session.
func TestResumedSessionIsReverified(t *testing.T) {
	e := newEnv(t, envOpt{})
	cfg := e.clientTLS(e.client)
	cfg.MinVersion = tls.VersionTLS13
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(8)
	if res := e.get("main", cfg, "/", nil); res.cs.DidResume {
		t.Fatal("first connection resumed")
	} else {
		res.echo(t)
	}
	// Positive control: the second connection does resume.
	res := e.get("main", cfg, "/", nil)
	res.echo(t)
	if !res.cs.DidResume {
		t.Fatal("second connection did not resume; the test would prove nothing")
	}
	now := time.Now()
	writeFile(t, e.path("inter.crl"), e.inter.crl(t, now.Add(-time.Minute), now.Add(24*time.Hour), e.revoked.cert.SerialNumber, e.client.cert.SerialNumber))
	if err := e.gw.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	res = e.get("main", cfg, "/", nil)
	if res.err == nil && res.status != 0 {
		t.Fatalf("revoked client resumed and got %d", res.status)
	}
	line := e.connLog.find(t, "client_port", res.port)
	if line["tls_resumed"] != true || line["failure_reason"] != "ClientCertCrlHit" {
		t.Errorf("resumed handshake: %v", line)
	}
}

func TestGracefulShutdown(t *testing.T) {
	e := newEnv(t, envOpt{})
	cfg := e.clientTLS(e.client)
	done := make(chan result, 1)
	go func() { done <- e.get("main", cfg, "/sleep", nil) }()
	time.Sleep(100 * time.Millisecond) // the request is at the backend
	addr := e.addr("main")
	e.cancel()
	e.cancel = nil
	res := <-done
	res.echo(t) // the request in flight finished
	select {
	case err := <-e.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("the listener still accepts after shutdown")
	}
}

func TestCRLFromURL(t *testing.T) {
	var crl atomic.Value
	now := time.Now()
	var e *env
	var fetches atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Write(crl.Load().([]byte))
	}))
	defer srv.Close()
	e = newEnv(t, envOpt{mutate: func(e *env, g *config.Gateway) {
		crl.Store(e.inter.crl(t, now.Add(-time.Hour), now.Add(time.Hour)))
		g.Listeners[0].MTLS.TrustStore.CRLFiles = nil
		g.Listeners[0].MTLS.TrustStore.CRLURLs = []string{srv.URL + "/inter.crl"}
	}})
	e.get("main", e.clientTLS(e.revoked), "/", nil).echo(t) // not on the fetched CRL
	crl.Store(e.inter.crl(t, now.Add(-time.Minute), now.Add(time.Hour), e.revoked.cert.SerialNumber))
	if err := e.gw.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	res := e.get("main", e.clientTLS(e.revoked), "/", nil)
	if line := e.connLog.find(t, "client_port", res.port); line["failure_reason"] != "ClientCertCrlHit" {
		t.Errorf("after refetch: %v", line)
	}
	// A failing refresh keeps the last good CRL.
	srv.Config.Handler = http.NotFoundHandler()
	if err := e.gw.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "keeping the copy") {
		t.Errorf("Reload with a failing CRL URL: %v", err)
	}
	res = e.get("main", e.clientTLS(e.revoked), "/", nil)
	if line := e.connLog.find(t, "client_port", res.port); line["failure_reason"] != "ClientCertCrlHit" {
		t.Errorf("after a failed refetch: %v", line)
	}
	e.get("main", e.clientTLS(e.client), "/", nil).echo(t)
}

func TestStartFailures(t *testing.T) {
	e := newEnv(t, envOpt{})
	base := e.cfg
	for _, tc := range []struct {
		name   string
		mutate func(g *config.Gateway)
		want   string
	}{
		{"fail/invalid-config", func(g *config.Gateway) { g.Listeners[0].MTLS.Mode = "maybe" }, "mtls.mode"},
		{"fail/missing-key", func(g *config.Gateway) { g.Listeners[0].Certificate.KeyFile = e.path("nope.key") }, "nope.key"},
		{"fail/crl-url-unreachable", func(g *config.Gateway) {
			g.Listeners[0].MTLS.TrustStore.CRLURLs = []string{e.downURL + "/x.crl"}
		}, "x.crl"},
		{"fail/crl-of-unknown-issuer", func(g *config.Gateway) {
			writeFile(t, e.path("other.crl"), newCA(t, "Other").crl(t, time.Now(), time.Now().Add(time.Hour)))
			g.Listeners[0].MTLS.TrustStore.CRLFiles = []string{e.path("other.crl")}
		}, "not issued by a CA of the trust store"},
		{"fail/address-in-use", func(g *config.Gateway) { g.Listeners[0].Address = e.addr("main") }, "address already in use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := base
			g.Listeners = append([]config.GatewayListener(nil), base.Listeners...)
			tc.mutate(&g)
			gw, err := New(context.Background(), Config{Spec: g, ConnectionLog: io.Discard, AccessLog: io.Discard})
			if err == nil {
				gw.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// TestCurl drives the gateway with curl (OpenSSL), a peer that is not Go.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	e := newEnv(t, envOpt{})
	writeFile(t, e.path("root.pem"), pemCerts(e.root.cert))
	writeFile(t, e.path("client.pem"), pemCerts(e.client.chain...))
	writeFile(t, e.path("client.key"), pemKey(t, e.client.key))
	url := "https://localhost:" + strings.Split(e.addr("main"), ":")[1] + "/curl"
	base := []string{"-sS", "--max-time", "10", "--cacert", e.path("root.pem"), "--resolve", "localhost:" + strings.Split(e.addr("main"), ":")[1] + ":127.0.0.1"}
	for _, proto := range []string{"--http1.1", "--http2"} {
		t.Run("ok/"+strings.TrimPrefix(proto, "--"), func(t *testing.T) {
			args := append(append([]string{}, base...), proto, "--cert", e.path("client.pem"), "--key", e.path("client.key"),
				"-H", "X-Amzn-Mtls-Clientcert-Subject: CN=admin", "-H", "X-Forwarded-Client-Cert: spoof", url)
			out, err := exec.Command(curl, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("curl: %v\n%s", err, out)
			}
			r := result{status: 200, body: out}
			h := r.echo(t).Header
			if h.Get(HeaderSubject) != "CN=svc-a,O=Example" || h.Get(HeaderXFCC) != "" {
				t.Errorf("subject %q xfcc %q", h.Get(HeaderSubject), h.Get(HeaderXFCC))
			}
		})
	}
	t.Run("fail/no-certificate", func(t *testing.T) {
		out, err := exec.Command(curl, append(append([]string{}, base...), url)...).CombinedOutput()
		if err == nil {
			t.Fatalf("curl without a certificate succeeded: %s", out)
		}
		e.connLog.find(t, "failure_reason", verify.ClientCertNotFound.String())
	})
}

// swapSource is a TrustSource whose state a test sets, as a control-plane
// source would receive it.
type swapSource struct {
	mu      sync.Mutex
	v       *verify.Verifier
	version string
}

func (s *swapSource) Load(context.Context) (*verify.Verifier, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.v, s.version, nil
}

func (s *swapSource) set(v *verify.Verifier, version string) {
	s.mu.Lock()
	s.v, s.version = v, version
	s.mu.Unlock()
}

func TestCustomTrustSource(t *testing.T) {
	src := &swapSource{}
	other := newCA(t, "Control Plane Root")
	e := newEnv(t, envOpt{sources: func(e *env) map[string]TrustSource {
		v, err := verify.Compile([]*x509.Certificate{e.root.cert}, nil, VerifyOptions(e.cfg.Listeners[0]))
		if err != nil {
			t.Fatal(err)
		}
		src.set(v, "1")
		return map[string]TrustSource{"main": src}
	}})
	e.get("main", e.clientTLS(e.client), "/", nil).echo(t)
	stranger := other.client(t, "stranger")
	if res := e.get("main", e.clientTLS(stranger), "/", nil); res.err == nil && res.status != 0 {
		t.Fatal("stranger accepted before the swap")
	}
	v, err := verify.Compile([]*x509.Certificate{other.cert}, nil, VerifyOptions(e.cfg.Listeners[0]))
	if err != nil {
		t.Fatal(err)
	}
	src.set(v, "2")
	deadline := time.Now().Add(5 * time.Second)
	for {
		res := e.get("main", e.clientTLS(stranger), "/", nil)
		if res.err == nil && res.status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the new trust state was not picked up by polling")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if res := e.get("main", e.clientTLS(e.client), "/", nil); res.err == nil && res.status != 0 {
		t.Error("the old root is still trusted after the swap")
	}
}
