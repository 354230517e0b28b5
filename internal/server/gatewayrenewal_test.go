package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/ca"
	"github.com/trustgate/trustgate/internal/config"
	"github.com/trustgate/trustgate/internal/gateway"
	"github.com/trustgate/trustgate/internal/lifecycle"
)

// gatewayCertPolicy lets a gateway follow the renewals of the certificates
// it serves: reading certificates of the CA that issues them.
const gatewayCertPolicy = `statements:
  - sid: gateway-certificates
    effect: allow
    actions: [cert:Read]
    resources: [ca/` + DemoIntermediate + `]
`

// TestGatewayFollowsManagedRenewal is certificate.follow_renewals end to
// end on loopback: a gateway serves a managed certificate of a real
// control plane and logs in with an API token of a principal allowed only
// cert:Read. The control plane's managed renewer, with its clock moved to
// the renewal point, re-certifies the key; the gateway fetches the
// successor, writes it to its certificate file and serves it to new
// handshakes, while a connection opened before goes on. With the control
// plane stopped, checks fail, are counted, and the certificate stays.
func TestGatewayFollowsManagedRenewal(t *testing.T) {
	dir := t.TempDir()
	cfg := DevConfig(dir, "127.0.0.1:0", "")
	cfg.Public.BaseURL = "http://pki.test"
	s, files, err := PrepareDev(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	api, stopCP := runDev(t, s)

	admin := newAPIClient(t, api, files)
	if _, err := admin.PutPolicy(ctx, "gateway-certificates", gatewayCertPolicy); err != nil {
		t.Fatalf("policy put: %v", err)
	}
	p, err := admin.CreatePrincipal(ctx, apiv1.CreatePrincipalRequest{Name: "gw-1", Policies: []string{"gateway-certificates"}})
	if err != nil {
		t.Fatalf("principal create: %v", err)
	}
	gwDir := t.TempDir()
	tokenFile := filepath.Join(gwDir, "api.token")
	writeFile(t, tokenFile, []byte(p.Token+"\n"))

	is, err := s.CA.Issue(ctx, ca.IssueRequest{CA: DemoIntermediate, Profile: "server", CommonName: "localhost",
		DNS: []string{"localhost"}, Validity: "1h", Managed: true, Requester: "test"})
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(is.Key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(gwDir, "server.crt"), filepath.Join(gwDir, "server.key")
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	writeFile(t, certFile, append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: is.Cert.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: is.Chain[0]})...))

	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(backend.Close)
	spec := config.Gateway{
		ConnectionLog: "off", AccessLog: "off",
		ControlPlane: config.GatewayControlPlane{Address: "https://" + api, CAFile: files.Root, TokenFile: tokenFile},
		Listeners: []config.GatewayListener{{
			Name: "web", Address: "127.0.0.1:0",
			Certificate: config.GatewayCertificate{CertFile: certFile, KeyFile: keyFile,
				FollowRenewals: true, FollowInterval: config.Duration(200 * time.Millisecond)},
			MTLS:   config.GatewayMTLS{Mode: config.MTLSOff},
			Routes: []config.GatewayRoute{{Backend: config.GatewayBackend{URL: backend.URL}}},
		}},
	}
	gwReg := prometheus.NewRegistry()
	gw, err := gateway.New(ctx, gateway.Config{Spec: spec, Registry: gwReg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("gateway: %v", err)
	}
	runGateway(t, gw)

	roots := x509.NewCertPool()
	rootPEM, err := os.ReadFile(files.Root)
	if err != nil {
		t.Fatal(err)
	}
	roots.AppendCertsFromPEM(rootPEM)
	tlsCfg := &tls.Config{RootCAs: roots, ServerName: "localhost", NextProtos: []string{"http/1.1"}}
	addr := gw.Addr("web").String()
	served := func() *big.Int {
		c, err := tls.Dial("tcp", addr, tlsCfg)
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber
	}
	waitFor(t, 5*time.Second, "a first check with the control plane", func() bool {
		return checks(t, gwReg, gateway.RenewalCurrent) > 0
	})
	if got := served(); got.Cmp(is.Cert.SerialNumber) != 0 {
		t.Fatalf("serving %x, want %x", got, is.Cert.SerialNumber)
	}

	// A connection opened before the renewal, kept alive across it.
	old, err := tls.Dial("tcp", addr, tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	oldR := bufio.NewReader(old)
	get := func() {
		t.Helper()
		if _, err := io.WriteString(old, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
			t.Fatalf("request on the old connection: %v", err)
		}
		resp, err := http.ReadResponse(oldR, nil)
		if err != nil {
			t.Fatalf("response on the old connection: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "ok" {
			t.Fatalf("old connection: %d %q", resp.StatusCode, body)
		}
	}
	get()

	// The control plane's managed renewal, at the renewal point of the
	// certificate's lifetime.
	m, err := lifecycle.NewManaged(lifecycle.ManagedConfig{Store: s.Store, CA: s.CA, Events: s.Lifecycle,
		Now: func() time.Time { return time.Now().Add(55 * time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := m.RenewDue(ctx); err != nil || n != 1 {
		t.Fatalf("RenewDue = %d, %v; want 1", n, err)
	}
	d, err := admin.GetCertificate(ctx, is.Record.Serial)
	if err != nil || d.Latest == "" {
		t.Fatalf("no successor recorded: %+v %v", d, err)
	}
	renewedAt := time.Now()
	waitFor(t, 5*time.Second, "the successor served", func() bool { return served().Text(16) == d.Latest })
	t.Logf("successor %s served %s after the renewal", d.Latest, time.Since(renewedAt).Round(time.Millisecond))
	if checks(t, gwReg, gateway.RenewalRenewed) != 1 {
		t.Errorf("renewed checks = %v, want 1", checks(t, gwReg, gateway.RenewalRenewed))
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("certificate file after the renewal: %v", err)
	}
	if pair.Leaf.SerialNumber.Text(16) != d.Latest || len(pair.Certificate) < 2 {
		t.Errorf("certificate file holds %x with %d certificates", pair.Leaf.SerialNumber, len(pair.Certificate))
	}
	get()
	if got := old.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(is.Cert.SerialNumber) != 0 {
		t.Errorf("the old connection's certificate changed to %x", got)
	}

	// Control plane down: the checks fail and the certificate stays.
	if err := stopCP(); err != nil {
		t.Fatalf("control plane Run: %v", err)
	}
	errs := checks(t, gwReg, gateway.RenewalError)
	waitFor(t, 5*time.Second, "failed checks counted", func() bool { return checks(t, gwReg, gateway.RenewalError) > errs })
	if got := served().Text(16); got != d.Latest {
		t.Errorf("with the control plane down, serving %s, want %s", got, d.Latest)
	}
	get()
}

// checks returns trustgate_gateway_certificate_renewal_checks_total for result.
func checks(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "trustgate_gateway_certificate_renewal_checks_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
