package server

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trustgate/trustgate/internal/api/client"
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

// followEnv is a control plane on loopback and a gateway whose listener
// "web" serves a managed server certificate of it with follow_renewals.
type followEnv struct {
	logs     *lockedBuffer
	s        *Server
	admin    *client.Client
	stopCP   func() error
	reg      *prometheus.Registry
	is       *ca.Issued
	certFile string
	keyFile  string
	tlsCfg   *tls.Config
	addr     string
}

// newFollowEnv starts the control plane and the gateway, which logs in
// with an API token of a principal allowed only cert:Read on the CA.
func newFollowEnv(t *testing.T) *followEnv {
	t.Helper()
	s, files := prepareTestDev(t, "", nil)
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

	backend := okBackend(t)
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
	logs := &lockedBuffer{}
	gw, err := gateway.New(ctx, gateway.Config{Spec: spec, Registry: gwReg, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatalf("gateway: %v", err)
	}
	startGateway(t, gw)

	roots := x509.NewCertPool()
	rootPEM, err := os.ReadFile(files.Root)
	if err != nil {
		t.Fatal(err)
	}
	roots.AppendCertsFromPEM(rootPEM)
	tlsCfg := &tls.Config{RootCAs: roots, ServerName: "localhost", NextProtos: []string{"http/1.1"}}
	addr := gw.Addr("web").String()
	return &followEnv{logs: logs, s: s, admin: admin, stopCP: stopCP, reg: gwReg, is: is, certFile: certFile, keyFile: keyFile, tlsCfg: tlsCfg, addr: addr}
}

// waitFirstCheck waits for the gateway's first check with the control
// plane, and checks that it serves the certificate it was given.
func (e *followEnv) waitFirstCheck(t *testing.T) {
	t.Helper()
	waitFor(t, 5*time.Second, "a first check with the control plane", func() bool {
		return checks(t, e.reg, gateway.RenewalCurrent) > 0
	})
	if got := e.served(t); got.Cmp(e.is.Cert.SerialNumber) != 0 {
		t.Fatalf("serving %x, want %x", got, e.is.Cert.SerialNumber)
	}
}

// served is the serial of the certificate a new handshake sees.
func (e *followEnv) served(t *testing.T) *big.Int {
	t.Helper()
	c, err := tls.Dial("tcp", e.addr, e.tlsCfg)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber
}

// TestGatewayFollowsManagedRenewal is certificate.follow_renewals end to
// end on loopback: a gateway serves a managed certificate of a real
// control plane and logs in with an API token of a principal allowed only
// cert:Read. The control plane's managed renewer, with its clock moved to
// the renewal point, re-certifies the key; the gateway fetches the
// successor, writes it to its certificate file and serves it to new
// handshakes, while a connection opened before goes on. With the control
// plane stopped, checks fail, are counted, and the certificate stays.
func TestGatewayFollowsManagedRenewal(t *testing.T) {
	e := newFollowEnv(t)
	s, admin, stopCP, gwReg, is, certFile, keyFile, tlsCfg, addr := e.s, e.admin, e.stopCP, e.reg, e.is, e.certFile, e.keyFile, e.tlsCfg, e.addr
	ctx := t.Context()
	served := func() *big.Int { return e.served(t) }
	e.waitFirstCheck(t)

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

// lockedBuffer is a log destination safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
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

// TestGatewayRefusesSuccessorWithAnotherKey: a renewal of the served
// certificate for a new key (POST /v1/renew's path, a CSR made elsewhere)
// is not for the key the gateway holds; the gateway counts the error, leaves
// its certificate file alone and keeps serving its certificate.
func TestGatewayRefusesSuccessorWithAnotherKey(t *testing.T) {
	e := newFollowEnv(t)
	e.waitFirstCheck(t)
	before, err := os.ReadFile(e.certFile)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"}}, other)
	if err != nil {
		t.Fatal(err)
	}
	r := &lifecycle.Renewer{CA: e.s.CA, Events: e.s.Lifecycle, Successors: e.s.Store}
	next, err := r.Renew(t.Context(), e.is.Record, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))
	if err != nil {
		t.Fatalf("renew for another key: %v", err)
	}
	if d, err := e.admin.GetCertificate(t.Context(), e.is.Record.Serial); err != nil || d.Latest != next.Record.Serial {
		t.Fatalf("latest %+v %v, want %s", d, err, next.Record.Serial)
	}
	errs := checks(t, e.reg, gateway.RenewalError)
	waitFor(t, 5*time.Second, "the successor refused", func() bool { return checks(t, e.reg, gateway.RenewalError) > errs+1 })
	if got := e.served(t); got.Cmp(e.is.Cert.SerialNumber) != 0 {
		t.Errorf("serving %x after a successor for another key, want %x", got, e.is.Cert.SerialNumber)
	}
	after, err := os.ReadFile(e.certFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(before) {
		t.Error("the certificate file changed")
	}
	if !strings.Contains(e.logs.String(), "its public key is not the key of") {
		t.Errorf("no key mismatch in the gateway log:\n%s", e.logs.String())
	}
	if n := checks(t, e.reg, gateway.RenewalRenewed); n != 0 {
		t.Errorf("renewed checks = %v, want 0", n)
	}
}
