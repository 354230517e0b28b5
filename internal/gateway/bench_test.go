package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/config"
)

// BenchmarkKeepAlive drives the real gateway over loopback the way the
// keep-alive benchmark of bench/gateway does: mTLS connections kept open,
// GETs back to back, an HTTP/1.1 backend that answers "ok", the access
// and connection logs off. The client is lean (pre-built request bytes),
// so most of ns/op and allocs/op is the gateway's.
func BenchmarkKeepAlive(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	b.Cleanup(backend.Close)
	addr, clientCfg := benchGateway(b, backend.URL)
	req := []byte("GET /bench HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	b.ReportAllocs()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		conn, err := tls.Dial("tcp", addr, clientCfg)
		if err != nil {
			b.Error(err)
			return
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		hreq, _ := http.NewRequest(http.MethodGet, "https://localhost/bench", nil)
		for pb.Next() {
			if _, err := conn.Write(req); err != nil {
				b.Error(err)
				return
			}
			resp, err := http.ReadResponse(br, hreq)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// benchGateway runs a gateway with one verify listener and one route to
// backendURL, its logs off; it returns the listener's address and a
// client configuration with a valid client certificate.
func benchGateway(b *testing.B, backendURL string) (string, *tls.Config) {
	b.Helper()
	dir := b.TempDir()
	root := newCA(b, "Bench Root")
	server := root.issue(b, leafOpts{subject: pkix.Name{CommonName: "gateway"}, dns: []string{"localhost"},
		ips: []net.IP{net.IPv4(127, 0, 0, 1)}, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	client := root.client(b, "bench-client")
	p := func(name string) string { return filepath.Join(dir, name) }
	writeFile(b, p("server.pem"), pemCerts(server.chain...))
	writeFile(b, p("server.key"), pemKey(b, server.key))
	writeFile(b, p("ca.pem"), pemCerts(root.cert))
	spec := config.Gateway{
		AccessLog: "off", ConnectionLog: "off",
		Listeners: []config.GatewayListener{{
			Name:        "main",
			Address:     "127.0.0.1:0",
			Certificate: config.GatewayCertificate{CertFile: p("server.pem"), KeyFile: p("server.key")},
			MTLS:        config.GatewayMTLS{Mode: config.MTLSVerify, TrustStore: config.GatewayTrustStore{CAFile: p("ca.pem")}},
			Routes:      []config.GatewayRoute{{Name: "default", Backend: config.GatewayBackend{URL: backendURL}}},
		}},
	}
	ctx, cancel := context.WithCancel(context.Background())
	gw, err := New(ctx, Config{Spec: spec, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			b.Error("Run did not return")
		}
	})
	pool := x509.NewCertPool()
	pool.AddCert(root.cert)
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost", Certificates: []tls.Certificate{client.tls()}}
	return gw.Addr("main").String(), cfg
}
