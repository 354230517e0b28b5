package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
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
	"github.com/trustgate/trustgate/internal/pki"
)

// TestGatewayRestartDuringOutage runs a real control plane and a real
// gateway that keeps its snapshots on disk. With the control plane down,
// the gateway is restarted: it starts from the snapshot on disk, accepts
// the valid client, refuses the one revoked before the outage and exports
// the snapshot's age; a damaged snapshot file is refused. A client revoked
// during the outage is refused once the control plane is back.
func TestGatewayRestartDuringOutage(t *testing.T) {
	ctx := t.Context()
	s, files := prepareTestDev(t, "", nil)
	if _, err := s.TrustStores.Create(ctx, apiv1.CreateTrustStoreRequest{Name: "partners", CAs: []string{DemoIntermediate}}); err != nil {
		t.Fatal(err)
	}

	// The control plane, reached through a proxy that plays the outage.
	api, _ := runDev(t, s)
	proxy := newTCPProxy(t, api)

	client := func(name string) (tls.Certificate, string) { return issueClient(t, s, name) }
	good, _ := client("good")
	early, earlySerial := client("revoked-before")
	late, lateSerial := client("revoked-during")
	if _, err := s.CA.Revoke(ctx, earlySerial, 1, "test"); err != nil {
		t.Fatal(err)
	}

	snapDir := t.TempDir()
	spec := partnersGateway(files, okBackend(t).URL, "https://"+proxy.addr, snapDir, 0)
	startGW := func(t *testing.T) (*gateway.Gateway, *prometheus.Registry, func()) {
		return newRunningGateway(t, ctx, spec)
	}
	passes := mtlsProbe(t, files, "partners")
	check := func(t *testing.T, gw *gateway.Gateway, when string, lateRevoked bool) {
		t.Helper()
		for _, c := range []struct {
			name string
			cert tls.Certificate
			want bool
		}{{"ok/valid client", good, true}, {"fail/revoked before the outage", early, false}, {"revoked during the outage", late, !lateRevoked}} {
			if got := passes(gw, c.cert); got != c.want {
				t.Errorf("%s: %s: passes %v, want %v", when, c.name, got, c.want)
			}
		}
	}

	gw, _, stopGW := startGW(t)
	waitFor(t, 10*time.Second, "the revocation before the outage enforced", func() bool { return !passes(gw, early) })
	check(t, gw, "control plane up", false)
	file := filepath.Join(snapDir, "partners.snapshot.json")
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("no snapshot on disk: %v", err)
	}

	// Outage: no control plane answers, a client is revoked meanwhile, and
	// the gateway restarts from its snapshot on disk.
	proxy.cut()
	if _, err := s.CA.Revoke(ctx, lateSerial, 1, "test"); err != nil {
		t.Fatal(err)
	}
	stopGW()
	gw, reg, stopGW := startGW(t)
	defer stopGW()
	check(t, gw, "restarted during the outage", false)
	if age := gauge(t, reg, "trustgate_gateway_trust_snapshot_age_seconds", map[string]string{"listener": "partners"}); age < 0 || age > 60 {
		t.Errorf("snapshot age %v s, want between 0 and 60", age)
	}

	// A damaged snapshot file is refused: the gateway does not start on it.
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	damaged := filepath.Join(t.TempDir(), "partners.snapshot.json")
	os.WriteFile(damaged, append(b[:len(b)/2:len(b)/2], b[len(b)/2+1:]...), 0o600)
	bad := spec
	bad.ControlPlane.SnapshotDir = filepath.Dir(damaged)
	if g, err := gateway.New(ctx, gateway.Config{Spec: bad, Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)}); err == nil {
		g.Close()
		t.Error("a gateway started from a damaged snapshot file")
	}

	// The control plane is back: the revocation made during the outage arrives.
	proxy.restore(t)
	waitFor(t, 10*time.Second, "the revocation made during the outage enforced", func() bool { return !passes(gw, late) })
	check(t, gw, "control plane back", true)
}

// gauge returns the value of the gauge name with the labels want.
func gauge(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := want[l.GetName()]; ok && v != l.GetValue() {
					continue next
				}
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s%v", name, want)
	return 0
}

// newRunningGateway builds a gateway of spec, with its own metrics registry, and
// runs it until the returned func (or the test's end) stops it.
func newRunningGateway(t *testing.T, ctx context.Context, spec config.Gateway) (*gateway.Gateway, *prometheus.Registry, func()) {
	t.Helper()
	reg := prometheus.NewRegistry()
	gw, err := gateway.New(ctx, gateway.Config{Spec: spec, Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("gateway: %v", err)
	}
	return gw, reg, startGateway(t, gw)
}

// mtlsProbe returns a check of whether a gateway's listener lets a request
// with a client certificate through: a new connection each time (a full
// handshake, so that a revocation shows at once), the dev root trusted,
// and 200 from the backend.
func mtlsProbe(t *testing.T, files DevFiles, listener string) func(gw *gateway.Gateway, cert tls.Certificate) bool {
	t.Helper()
	rootPEM, err := os.ReadFile(files.Root)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	return func(gw *gateway.Gateway, cert tls.Certificate) bool {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
			TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{cert}}}}
		resp, err := c.Get("https://" + gw.Addr(listener).String() + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
}

// issueClient issues a client certificate of the demo intermediate for
// name, returning it ready for a TLS client with its serial.
func issueClient(t *testing.T, s *Server, name string) (tls.Certificate, string) {
	t.Helper()
	is, err := s.CA.Issue(t.Context(), ca.IssueRequest{CA: DemoIntermediate, Profile: "client", CommonName: name, Validity: "1d", Requester: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{is.Cert.Raw, is.Chain[0]}, PrivateKey: is.Key, Leaf: is.Cert}, pki.SerialHex(is.Cert.SerialNumber)
}

// okBackend is a backend that answers every request with 200 "ok"; it
// stops when the test ends.
func okBackend(t *testing.T) *httptest.Server {
	t.Helper()
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(b.Close)
	return b
}

// partnersGateway is the spec of a gateway with one verify listener,
// "partners", on the dev server certificate, enforcing the control plane's
// trust store "partners" (polled every 250 ms, long polls of longPoll when
// not 0, snapshots kept in snapDir) in front of backend, logs off.
func partnersGateway(files DevFiles, backend, controlPlane, snapDir string, longPoll time.Duration) config.Gateway {
	return config.Gateway{
		ConnectionLog: "off", AccessLog: "off",
		ControlPlane: config.GatewayControlPlane{Address: controlPlane, TokenFile: files.Token, CAFile: files.Root,
			PollInterval: config.Duration(250 * time.Millisecond), LongPoll: config.Duration(longPoll), SnapshotDir: snapDir},
		Listeners: []config.GatewayListener{{
			Name: "partners", Address: "127.0.0.1:0",
			Certificate: config.GatewayCertificate{CertFile: files.ServerCert, KeyFile: files.ServerKey},
			MTLS:        config.GatewayMTLS{Mode: config.MTLSVerify, TrustStore: config.GatewayTrustStore{Name: "partners"}},
			Routes:      []config.GatewayRoute{{Backend: config.GatewayBackend{URL: backend}}},
		}},
	}
}
