package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trustgate/trustgate/internal/ca"
	"github.com/trustgate/trustgate/internal/config"
	"github.com/trustgate/trustgate/internal/gateway"
	"github.com/trustgate/trustgate/internal/pki"
)

// gatewayIssuePolicy lets a gateway have its listeners' server
// certificates issued: profile server, names under gw.test or on
// loopback, at most a day.
const gatewayIssuePolicy = `statements:
  - sid: gateway-listeners
    effect: allow
    actions: [cert:Issue]
    resources: [ca/` + DemoIntermediate + `]
    conditions:
      profiles: [server]
      dns_names: ["*.gw.test"]
      ip_ranges: [127.0.0.0/8]
      max_validity: 1d
`

// TestGatewayIssuesListenerCertificate is certificate.issue end to end on
// loopback: a real control plane, and a gateway that enrols its own client
// certificate, logs in with it as principal gw-1 (allowed cert:Issue for
// server certificates under *.gw.test), and has its listener's
// certificate issued for a key it generates. The key file is 0600 and the
// control plane never holds the key; Go's and OpenSSL's TLS clients see
// the certificate; renewals swap in new serials (and keys) for new
// handshakes while an established connection goes on; a gateway restarted
// while the control plane is down serves the certificate from disk, and
// one with no certificate yet does not start; a policy that forbids the
// names refuses the issuance with the control plane's reason in the log.
func TestGatewayIssuesListenerCertificate(t *testing.T) {
	dir := t.TempDir()
	s, files := prepareTestDev(t, dir, func(cfg *config.Server) {
		cfg.Access.OperatorCA = "gateways"
	})
	ctx := t.Context()
	if _, err := s.CA.CreateCA(ctx, ca.CreateRequest{Name: "gateways", Parent: DemoRoot}); err != nil {
		t.Fatal(err)
	}
	api, stopCP := runDev(t, s)
	admin := newAPIClient(t, api, files)
	gwDir, _ := gatewayPrincipal(t, admin, "gateway-listeners", gatewayIssuePolicy)
	backend := okBackend(t)

	state := filepath.Join(gwDir, "state")
	listenerSpec := func(name string, is config.GatewayIssue) config.GatewayListener {
		return config.GatewayListener{
			Name: name, Address: "127.0.0.1:0",
			Certificate: config.GatewayCertificate{CertFile: filepath.Join(state, name+".crt"), KeyFile: filepath.Join(state, name+".key"), Issue: is},
			MTLS:        config.GatewayMTLS{Mode: config.MTLSOff},
			Routes:      []config.GatewayRoute{{Backend: config.GatewayBackend{URL: backend.URL}}},
		}
	}
	// One-minute certificates renewed at a tenth of their lifetime: a
	// renewal every few seconds.
	web := config.GatewayIssue{CA: DemoIntermediate, CommonName: "web.gw.test", DNS: []string{"web.gw.test"}, IP: []string{"127.0.0.1"},
		Validity: "1m", RenewAt: 0.1}
	gatewaySpec := func(ls ...config.GatewayListener) config.Gateway {
		return config.Gateway{
			ConnectionLog: "off", AccessLog: "off",
			ControlPlane: config.GatewayControlPlane{Address: "https://" + api, CAFile: files.Root,
				Enroll: config.GatewayEnroll{TokenFile: filepath.Join(gwDir, "enroll.token"), CommonName: "gw-1",
					CertFile: filepath.Join(gwDir, "gw.crt"), KeyFile: filepath.Join(gwDir, "gw.key")}},
			Listeners: ls,
		}
	}
	logs := &lockedBuffer{}
	reg := prometheus.NewRegistry()
	gw, err := gateway.New(ctx, gateway.Config{Spec: gatewaySpec(listenerSpec("web", web)), Registry: reg,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatalf("gateway: %v\n%s", err, logs)
	}
	stopGW := startGateway(t, gw)
	addr := gw.Addr("web").String()

	// The key was made on the gateway: mode 0600, and the certificate
	// served is for it, from the CA asked for, with the names asked for.
	certFile, keyFile := filepath.Join(state, "web.crt"), filepath.Join(state, "web.key")
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	first := pair.Leaf
	caPEM, err := admin.CAPEM(ctx, DemoIntermediate, false)
	if err != nil {
		t.Fatal(err)
	}
	cb, _ := pem.Decode(caPEM)
	caCert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if first.CheckSignatureFrom(caCert) != nil || first.DNSNames[0] != "web.gw.test" || !first.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("issued %v %v by %q", first.DNSNames, first.IPAddresses, first.Issuer.CommonName)
	}
	roots := x509.NewCertPool()
	rootPEM, err := os.ReadFile(files.Root)
	if err != nil {
		t.Fatal(err)
	}
	roots.AppendCertsFromPEM(rootPEM)

	// The control plane holds the certificate, and no trace of the key:
	// not its PKCS#8 encoding, not a line of its PEM, not its scalar.
	rec, err := s.Store.GetCertificate(ctx, pki.SerialHex(first.SerialNumber))
	if err != nil || !bytes.Equal(rec.DER, first.Raw) || rec.Requester == "" {
		t.Fatalf("inventory record: %+v %v", rec, err)
	}
	t.Logf("issued to %s", rec.Requester)
	assertKeyNowhere(t, keyFile, dir, logs.String())

	// A Go TLS client verifies it for the name asked for.
	served := func() *x509.Certificate {
		t.Helper()
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "web.gw.test"})
		if err != nil {
			t.Fatalf("TLS to the gateway: %v", err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0]
	}
	if got := served(); !got.Equal(first) {
		// A renewal may have come in between: then the file holds it.
		if now, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil || !got.Equal(now.Leaf) {
			t.Fatalf("served serial %x, issued %x", got.SerialNumber, first.SerialNumber)
		}
	}
	// And so does OpenSSL's.
	if _, err := exec.LookPath("openssl"); err == nil {
		cmd := exec.CommandContext(ctx, "openssl", "s_client", "-connect", addr, "-servername", "web.gw.test",
			"-CAfile", files.Root, "-verify_return_error", "-verify_hostname", "web.gw.test")
		cmd.Stdin = strings.NewReader("")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Verify return code: 0 (ok)") {
			t.Fatalf("openssl s_client: %v\n%s", err, out)
		}
		if b, _ := pem.Decode(out[bytes.Index(out, []byte("-----BEGIN CERTIFICATE-----")):]); b == nil {
			t.Fatalf("openssl s_client shows no certificate:\n%s", out)
		}
	}

	// An established connection, HTTP/1.1 kept alive across renewals.
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "web.gw.test", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	held := conn.ConnectionState().PeerCertificates[0]
	br := bufio.NewReader(conn)
	request := func() {
		t.Helper()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: web.gw.test\r\n\r\n"); err != nil {
			t.Fatalf("request on the established connection: %v", err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer on the established connection: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "ok" {
			t.Fatalf("answer %d %q", resp.StatusCode, body)
		}
	}
	request()

	// Renewals: new handshakes get a new certificate, for a new key.
	var renewed *x509.Certificate
	waitFor(t, 30*time.Second, "a renewed certificate served", func() bool {
		renewed = served()
		return renewed.SerialNumber.Cmp(held.SerialNumber) != 0
	})
	if renewed.PublicKey.(*ecdsa.PublicKey).Equal(held.PublicKey) {
		t.Fatal("the renewal kept the key")
	}
	request()
	if !conn.ConnectionState().PeerCertificates[0].Equal(held) {
		t.Fatal("the established connection changed certificates")
	}
	if n := counter(t, reg, "trustgate_gateway_certificate_issuances_total", map[string]string{"result": "issued"}); n < 2 {
		t.Fatalf("issuances counted %v, want at least 2", n)
	}
	assertKeyNowhere(t, keyFile, dir, logs.String())
	if l := logs.String(); !strings.Contains(l, "gateway: listener certificate issued by the control plane") ||
		strings.Contains(l, "reload failed") || strings.Contains(l, "level=ERROR") {
		t.Fatalf("the gateway's log:\n%s", l)
	}

	// A policy that forbids the names: the control plane refuses, the
	// gateway logs its reason, and a listener with no certificate does
	// not start. (The first gateway stops first: it holds the lock on
	// the enrolment files that this one shares.)
	stopGW()
	denyLogs := &lockedBuffer{}
	denyReg := prometheus.NewRegistry()
	_, err = gateway.New(ctx, gateway.Config{Spec: gatewaySpec(listenerSpec("other",
		config.GatewayIssue{CA: DemoIntermediate, DNS: []string{"www.example.com"}})), Registry: denyReg,
		Logger: slog.New(slog.NewTextHandler(denyLogs, nil))})
	if err == nil || !strings.Contains(err.Error(), "no certificate to serve") || !strings.Contains(err.Error(), "HTTP 403") {
		t.Fatalf("gateway with forbidden names: %v", err)
	}
	if l := denyLogs.String(); !strings.Contains(l, "the control plane did not issue the listener certificate") ||
		!strings.Contains(l, "gw-1") || !strings.Contains(l, "cert:Issue") || !strings.Contains(l, "listener=other") {
		t.Fatalf("the refusal is not logged with the control plane's reason:\n%s", l)
	}
	if n := counter(t, denyReg, "trustgate_gateway_certificate_issuances_total", map[string]string{"result": "error"}); n != 1 {
		t.Fatalf("refusals counted %v, want 1", n)
	}
	t.Logf("refusal: %v", err)

	// Restart with the control plane down: the certificate on disk is
	// served at once (renewal, due or not, waits for the control plane).
	if err := stopCP(); err != nil {
		t.Fatal(err)
	}
	onDisk, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	gw2, err := gateway.New(ctx, gateway.Config{Spec: gatewaySpec(listenerSpec("web", web)), Registry: prometheus.NewRegistry(),
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("gateway restarted without a control plane: %v", err)
	}
	stopGW2 := startGateway(t, gw2)
	addr = gw2.Addr("web").String()
	if got := served(); !got.Equal(onDisk.Leaf) {
		t.Fatalf("restarted gateway serves %x, the file holds %x", got.SerialNumber, onDisk.Leaf.SerialNumber)
	}
	// A listener with no certificate yet cannot start without the
	// control plane (once the gateway on the same files has stopped).
	stopGW2()
	_, err = gateway.New(ctx, gateway.Config{Spec: gatewaySpec(listenerSpec("web", web), listenerSpec("new", web)),
		Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "listener new: no certificate to serve") {
		t.Fatalf("a new listener without a control plane: %v", err)
	}
}

// startGateway runs gw until the test ends, and returns a function that
// stops it earlier.
func startGateway(t *testing.T, gw *gateway.Gateway) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// assertKeyNowhere fails when a trace of the private key in keyFile (its
// DER, a line of its PEM body but the first, which every key of its type
// shares, or its scalar) is in a file under dir or in logs.
func assertKeyNowhere(t *testing.T, keyFile, dir, logs string) {
	t.Helper()
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(keyPEM)
	key, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	scalar := key.(*ecdsa.PrivateKey).D.FillBytes(make([]byte, 32))
	needles := [][]byte{b.Bytes, scalar, []byte(hex.EncodeToString(scalar))}
	lines := strings.Split(strings.TrimSpace(string(keyPEM)), "\n")
	for _, l := range lines[2 : len(lines)-1] {
		needles = append(needles, []byte(l))
	}
	check := func(where string, data []byte) {
		for _, n := range needles {
			if bytes.Contains(data, n) {
				t.Fatalf("%s holds the gateway's private key", where)
			}
		}
	}
	check("the gateway's log", []byte(logs))
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		check(path, data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestGatewayIssueRenewsWhenNamesChange: a gateway restarted with a name
// added to a listener's certificate.issue serves the certificate on disk
// at once (it is still valid), and has one with the new name issued
// right away rather than at the next renewal.
func TestGatewayIssueRenewsWhenNamesChange(t *testing.T) {
	dir := t.TempDir()
	s, files := prepareTestDev(t, dir, func(cfg *config.Server) {
		cfg.Access.OperatorCA = "gateways"
	})
	if _, err := s.CA.CreateCA(t.Context(), ca.CreateRequest{Name: "gateways", Parent: DemoRoot}); err != nil {
		t.Fatal(err)
	}
	api, _ := runDev(t, s)
	admin := newAPIClient(t, api, files)
	gwDir, _ := gatewayPrincipal(t, admin, "gateway-listeners", gatewayIssuePolicy)
	backend := okBackend(t)
	state := filepath.Join(gwDir, "state")
	certFile, keyFile := filepath.Join(state, "web.crt"), filepath.Join(state, "web.key")
	spec := func(dns ...string) config.Gateway {
		return config.Gateway{
			ConnectionLog: "off", AccessLog: "off",
			ControlPlane: config.GatewayControlPlane{Address: "https://" + api, CAFile: files.Root,
				Enroll: config.GatewayEnroll{TokenFile: filepath.Join(gwDir, "enroll.token"), CommonName: "gw-1",
					CertFile: filepath.Join(gwDir, "gw.crt"), KeyFile: filepath.Join(gwDir, "gw.key")}},
			Listeners: []config.GatewayListener{{Name: "web", Address: "127.0.0.1:0",
				// An hour's certificate: not due for renewal in this test.
				Certificate: config.GatewayCertificate{CertFile: certFile, KeyFile: keyFile,
					Issue: config.GatewayIssue{CA: DemoIntermediate, DNS: dns, Validity: "1h"}},
				MTLS:   config.GatewayMTLS{Mode: config.MTLSOff},
				Routes: []config.GatewayRoute{{Backend: config.GatewayBackend{URL: backend.URL}}}}},
		}
	}
	newGW := func(sp config.Gateway) *gateway.Gateway {
		t.Helper()
		gw, err := gateway.New(t.Context(), gateway.Config{Spec: sp, Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatalf("gateway: %v", err)
		}
		return gw
	}
	gw := newGW(spec("web.gw.test"))
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	first := pair.Leaf
	stop := startGateway(t, gw)
	stop()

	gw = newGW(spec("web.gw.test", "www.gw.test"))
	startGateway(t, gw)
	served := func() *x509.Certificate {
		t.Helper()
		c, err := tls.Dial("tcp", gw.Addr("web").String(), &tls.Config{InsecureSkipVerify: true, ServerName: "web.gw.test"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0]
	}
	if got := served(); !got.Equal(first) && len(got.DNSNames) != 2 {
		t.Fatalf("the restarted gateway serves %x %v", got.SerialNumber, got.DNSNames)
	}
	var renewed *x509.Certificate
	waitFor(t, 30*time.Second, "a certificate with the added name served", func() bool {
		renewed = served()
		return len(renewed.DNSNames) == 2
	})
	if renewed.Equal(first) || renewed.DNSNames[1] != "www.gw.test" {
		t.Fatalf("served %v", renewed.DNSNames)
	}
}
