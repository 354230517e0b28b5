package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
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
	"github.com/trustgate/trustgate/internal/pki"
)

// gatewayPolicy is the least a gateway needs: reading the snapshot of the
// trust stores its listeners name.
const gatewayPolicy = `statements:
  - sid: gateway-snapshots
    effect: allow
    actions: [truststore:Read]
    resources: [truststore/partners]
`

// TestGatewayEnrolsAndLongPolls is gateway sync end to end on loopback: a
// real control plane whose operator CA ("gateways") issues the gateway's
// own client certificate under a bootstrap token; the gateway enrols with
// a key made on its side, logs in with that certificate as a principal
// allowed only truststore:Read, and long-polls the snapshot. A revoke
// reaches it within 2 s although its poll interval is an hour; the
// principal cannot do more than read its trust store.
func TestGatewayEnrolsAndLongPolls(t *testing.T) {
	s, files := prepareTestDev(t, "", func(cfg *config.Server) {
		cfg.Access.OperatorCA = "gateways"
	})
	ctx := t.Context()
	if _, err := s.CA.CreateCA(ctx, ca.CreateRequest{Name: "gateways", Parent: DemoRoot}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TrustStores.Create(ctx, apiv1.CreateTrustStoreRequest{Name: "partners", CAs: []string{DemoIntermediate}}); err != nil {
		t.Fatal(err)
	}
	api, stopCP := runDev(t, s)

	// The operator's setup, through the API as the CLI does it.
	admin := newAPIClient(t, api, files)
	gwDir, tokenFile := gatewayPrincipal(t, admin, "gateway-snapshots", gatewayPolicy)

	is, err := s.CA.Issue(ctx, ca.IssueRequest{CA: DemoIntermediate, Profile: "client", CommonName: "doomed", Validity: "1d", Requester: "test"})
	if err != nil {
		t.Fatal(err)
	}
	doomed := tls.Certificate{Certificate: [][]byte{is.Cert.Raw, is.Chain[0]}, PrivateKey: is.Key, Leaf: is.Cert}
	good, err := tls.LoadX509KeyPair(files.ClientCert, files.ClientKey)
	if err != nil {
		t.Fatal(err)
	}

	backend := okBackend(t)
	enroll := config.GatewayEnroll{TokenFile: tokenFile, CommonName: "gw-1",
		CertFile: filepath.Join(gwDir, "gw.crt"), KeyFile: filepath.Join(gwDir, "gw.key")}
	spec := config.Gateway{
		ConnectionLog: "off", AccessLog: "off",
		ControlPlane: config.GatewayControlPlane{Address: "https://" + api, CAFile: files.Root, Enroll: enroll,
			PollInterval: config.Duration(time.Hour), LongPoll: config.Duration(20 * time.Second)},
		Listeners: []config.GatewayListener{{
			Name: "partners", Address: "127.0.0.1:0",
			Certificate: config.GatewayCertificate{CertFile: files.ServerCert, KeyFile: files.ServerKey},
			MTLS:        config.GatewayMTLS{Mode: config.MTLSVerify, TrustStore: config.GatewayTrustStore{Name: "partners"}},
			Routes:      []config.GatewayRoute{{Backend: config.GatewayBackend{URL: backend.URL}}},
		}},
	}
	gwReg := prometheus.NewRegistry()
	gw, err := gateway.New(ctx, gateway.Config{Spec: spec, Registry: gwReg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("gateway: %v", err)
	}
	startGateway(t, gw)

	// The gateway enrolled: its key was made on its side (the file is
	// there, mode 0600) and its certificate is from the operator CA.
	if fi, err := os.Stat(enroll.KeyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("gateway key file: %v %v", fi, err)
	}
	gwPair, err := tls.LoadX509KeyPair(enroll.CertFile, enroll.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if cn := gwPair.Leaf.Subject.CommonName; cn != "gw-1" || gwPair.Leaf.Issuer.CommonName != "gateways" {
		t.Fatalf("gateway certificate %q issued by %q", cn, gwPair.Leaf.Issuer.CommonName)
	}

	// Least privilege: the gateway's certificate reads its trust store's
	// snapshot and nothing else.
	asGW, err := client.New(client.Config{Addr: "https://" + api, CACertFile: files.Root, ClientCertFile: enroll.CertFile, ClientKeyFile: enroll.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := asGW.TrustStoreSnapshot(ctx, "partners", ""); err != nil {
		t.Errorf("the gateway principal cannot read its snapshot: %v", err)
	}
	for _, c := range []struct {
		what string
		call func() error
	}{
		{"issue", func() error {
			return asGW.Do(ctx, "POST", "/v1/certificates", map[string]any{"ca": DemoIntermediate, "profile": "client", "common_name": "x"}, nil)
		}},
		{"list CAs", func() error { return asGW.Do(ctx, "GET", "/v1/cas", nil, nil) }},
		{"update the trust store", func() error {
			_, err := asGW.AddTrustStoreCA(ctx, "partners", apiv1.AddTrustStoreCARequest{CA: "gateways"})
			return err
		}},
	} {
		var ae *client.Error
		if err := c.call(); !errors.As(err, &ae) || ae.Status != http.StatusForbidden {
			t.Errorf("the gateway principal may %s: %v, want 403", c.what, err)
		}
	}

	roots := x509.NewCertPool()
	rootPEM, err := os.ReadFile(files.Root)
	if err != nil {
		t.Fatal(err)
	}
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
	// Let the gateway's long poll start waiting, so the revoke below is
	// seen by a poll under way, not by a fresh one.
	time.Sleep(300 * time.Millisecond)

	if _, err := s.CA.Revoke(ctx, pki.SerialHex(is.Cert.SerialNumber), 1, "test"); err != nil {
		t.Fatal(err)
	}
	revokedAt := time.Now()
	waitFor(t, 2*time.Second, "the revoked client refused", func() bool { return !passes(doomed) })
	t.Logf("revocation enforced %s after the revoke", time.Since(revokedAt).Round(time.Millisecond))
	if !passes(good) {
		t.Fatal("the valid client is refused after another's revocation")
	}

	// The control plane stops at once although the gateway long-polls it.
	time.Sleep(300 * time.Millisecond)
	stopping := time.Now()
	if err := stopCP(); err != nil {
		t.Fatalf("control plane Run: %v", err)
	}
	if d := time.Since(stopping); d > 5*time.Second {
		t.Errorf("the control plane took %s to stop with a long poll waiting", d)
	}
	if !passes(good) || passes(doomed) {
		t.Error("with the control plane stopped, the gateway does not enforce its last snapshot")
	}
}

// prepareTestDev prepares a dev control plane (demo CAs, admin token, dev
// files) in dir, or in a new temporary directory when dir is "", with the
// public base URL http://pki.test and whatever edit changes in its
// configuration; the server is closed when the test ends.
func prepareTestDev(t *testing.T, dir string, edit func(cfg *config.Server)) (*Server, DevFiles) {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cfg := DevConfig(dir, "127.0.0.1:0", "")
	cfg.Public.BaseURL = "http://pki.test"
	if edit != nil {
		edit(&cfg)
	}
	s, files, err := PrepareDev(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, files
}

// runDev runs s's API until the test ends, and returns its address and a
// function that stops it early and returns Run's error.
func runDev(t *testing.T, s *Server) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, func(api, _ string) { addr <- api }) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("control plane Run: %v", err)
		}
	})
	select {
	case a := <-addr:
		return a, stop
	case err := <-done:
		t.Fatalf("control plane: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the control plane did not start")
	}
	return "", stop
}

// gatewayPrincipal sets up, as the operator does through the API, a
// principal gw-1 (identity CN=gw-1) with a policy named policyName, and a
// bootstrap token for it from the CA "gateways", which it writes into a
// new directory as enroll.token. It returns that directory and the token
// file.
func gatewayPrincipal(t *testing.T, admin *client.Client, policyName, policy string) (dir, tokenFile string) {
	t.Helper()
	ctx := t.Context()
	if _, err := admin.PutPolicy(ctx, policyName, policy); err != nil {
		t.Fatalf("policy put: %v", err)
	}
	if _, err := admin.CreatePrincipal(ctx, apiv1.CreatePrincipalRequest{Name: "gw-1", Policies: []string{policyName},
		Identities: []string{"CN=gw-1"}}); err != nil {
		t.Fatalf("principal create: %v", err)
	}
	bt, err := admin.CreateBootstrapToken(ctx, apiv1.CreateBootstrapTokenRequest{CA: "gateways", Profile: "client", Name: "gw-1"})
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	dir = t.TempDir()
	tokenFile = filepath.Join(dir, "enroll.token")
	writeFile(t, tokenFile, []byte(bt.Token+"\n"))
	return dir, tokenFile
}

// newAPIClient is a client of the dev server logged in as its admin.
func newAPIClient(t *testing.T, api string, files DevFiles) *client.Client {
	t.Helper()
	tok, err := os.ReadFile(files.Token)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Config{Addr: "https://" + api, Token: strings.TrimSpace(string(tok)), CACertFile: files.Root})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
