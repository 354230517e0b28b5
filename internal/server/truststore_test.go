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
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/ca"
	"github.com/trustgate/trustgate/internal/config"
	"github.com/trustgate/trustgate/internal/gateway"
	"github.com/trustgate/trustgate/internal/pki"
)

// counter reads a counter (or the sum of a vector's counters whose labels
// include want) from a registry.
func counter(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// waitFor polls cond every 50 ms for at most d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestGatewayFollowsControlPlaneTrustStore is the path end to end: a real
// control plane with a trust store holding its intermediate, and a real
// gateway whose listener names that store. A valid client passes; a client
// revoked through the CA service is refused within seconds, by polling; an
// unchanged store costs 304s; and with the control plane stopped the
// gateway goes on enforcing its last snapshot.
func TestGatewayFollowsControlPlaneTrustStore(t *testing.T) {
	s, files := prepareTestDev(t, "", nil)
	ctx := context.Background()
	if _, err := s.TrustStores.Create(ctx, apiv1.CreateTrustStoreRequest{Name: "partners", CAs: []string{DemoIntermediate}}); err != nil {
		t.Fatal(err)
	}

	// The control plane.
	cpCtx, stopCP := context.WithCancel(ctx)
	defer stopCP()
	apiAddr := make(chan string, 1)
	cpDone := make(chan error, 1)
	go func() { cpDone <- s.Run(cpCtx, func(api, _ string) { apiAddr <- api }) }()
	var api string
	select {
	case api = <-apiAddr:
	case err := <-cpDone:
		t.Fatalf("control plane: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the control plane did not start")
	}

	// A client to revoke.
	is, err := s.CA.Issue(ctx, ca.IssueRequest{CA: DemoIntermediate, Profile: "client", CommonName: "doomed", Validity: "1d", Requester: "test"})
	if err != nil {
		t.Fatal(err)
	}
	doomed := tls.Certificate{Certificate: [][]byte{is.Cert.Raw, is.Chain[0]}, PrivateKey: is.Key, Leaf: is.Cert}
	good, err := tls.LoadX509KeyPair(files.ClientCert, files.ClientKey)
	if err != nil {
		t.Fatal(err)
	}

	// The gateway, in front of a backend that says ok.
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	defer backend.Close()
	gwReg := prometheus.NewRegistry()
	spec := config.Gateway{
		ConnectionLog: "off", AccessLog: "off",
		ControlPlane: config.GatewayControlPlane{Address: "https://" + api, TokenFile: files.Token, CAFile: files.Root,
			PollInterval: config.Duration(250 * time.Millisecond)},
		Listeners: []config.GatewayListener{{
			Name: "partners", Address: "127.0.0.1:0",
			Certificate: config.GatewayCertificate{CertFile: files.ServerCert, KeyFile: files.ServerKey},
			MTLS:        config.GatewayMTLS{Mode: config.MTLSVerify, TrustStore: config.GatewayTrustStore{Name: "partners"}},
			Routes:      []config.GatewayRoute{{Backend: config.GatewayBackend{URL: backend.URL}}},
		}},
	}
	gw, err := gateway.New(ctx, gateway.Config{Spec: spec, Registry: gwReg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("gateway: %v", err)
	}
	gwCtx, stopGW := context.WithCancel(ctx)
	gwDone := make(chan error, 1)
	go func() { gwDone <- gw.Run(gwCtx) }()
	defer func() {
		stopGW()
		if err := <-gwDone; err != nil {
			t.Errorf("gateway Run: %v", err)
		}
	}()

	rootPEM, err := os.ReadFile(files.Root)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	gwURL := "https://" + gw.Addr("partners").String() + "/"
	passes := func(cert tls.Certificate) bool {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
			TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{cert}}}}
		resp, err := c.Get(gwURL)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	if !passes(good) || !passes(doomed) {
		t.Fatal("valid clients are refused")
	}

	// An unchanged store costs 304s.
	snapshot304 := map[string]string{"route": "GET /v1/truststores/{name}/snapshot", "code": "304"}
	waitFor(t, 5*time.Second, "304s from the control plane", func() bool { return counter(t, s.Registry, "trustgate_api_requests_total", snapshot304) >= 3 })
	if n := counter(t, gwReg, "trustgate_gateway_control_plane_polls_total", map[string]string{"result": "not_modified"}); n < 3 {
		t.Errorf("the gateway counted %v not_modified polls", n)
	}

	// A revocation through the CA service reaches the gateway by polling.
	if _, err := s.CA.Revoke(ctx, pki.SerialHex(is.Cert.SerialNumber), 1, "test"); err != nil {
		t.Fatal(err)
	}
	revokedAt := time.Now()
	waitFor(t, 10*time.Second, "the revoked client refused", func() bool { return !passes(doomed) })
	t.Logf("revocation enforced %s after the revoke", time.Since(revokedAt).Round(time.Millisecond))
	if !passes(good) {
		t.Fatal("the valid client is refused after another's revocation")
	}

	// The control plane stops: the last snapshot stays in force.
	stopCP()
	if err := <-cpDone; err != nil {
		t.Fatalf("control plane Run: %v", err)
	}
	errorsBefore := counter(t, gwReg, "trustgate_gateway_control_plane_polls_total", map[string]string{"result": "error"})
	waitFor(t, 5*time.Second, "failed polls counted", func() bool {
		return counter(t, gwReg, "trustgate_gateway_control_plane_polls_total", map[string]string{"result": "error"}) >= errorsBefore+2
	})
	if !passes(good) {
		t.Error("with the control plane down, the valid client is refused")
	}
	if passes(doomed) {
		t.Error("with the control plane down, the revoked client passes")
	}
}
