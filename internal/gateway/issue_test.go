package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/atomicfile"
	"github.com/trustgate/trustgate/internal/config"
	"github.com/trustgate/trustgate/internal/pki/pkitest"
)

// checkIssued accepts only a server certificate of the CA asked for, valid
// now, with a chain holding that CA and every name asked for.
func TestCheckIssued(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	root := pkitest.New(t, pkitest.WithNow(now))
	issuing := root.Child(t, "issuing")
	other := root.Child(t, "other")
	ask := config.GatewayIssue{CA: "issuing", Profile: "server", CommonName: "web.gw.test", DNS: []string{"web.gw.test"}, IP: []string{"127.0.0.1"}}
	answer := func(ca *pkitest.CA, o pkitest.LeafOptions) *apiv1.IssueResponse {
		leaf, _ := ca.Leaf(t, o)
		return &apiv1.IssueResponse{CertificatePEM: string(pkitest.CertPEM(leaf)), ChainPEM: string(pkitest.CertPEM(ca.Chain()...))}
	}
	good := pkitest.LeafOptions{CN: "web.gw.test", DNS: []string{"web.gw.test"}, IP: []string{"127.0.0.1"}, ServerAuth: true}
	tests := []struct {
		name string
		res  *apiv1.IssueResponse
		at   time.Time
		want string // "" means accepted
	}{
		{"ok/as-asked", answer(issuing, good), now, ""},
		{"ok/more-names", answer(issuing, pkitest.LeafOptions{CN: "web.gw.test", DNS: []string{"web.gw.test", "www.gw.test"},
			IP: []string{"127.0.0.1"}, ServerAuth: true}), now, ""},
		{"fail/other-ca", answer(other, good), now, "not a server certificate of CA issuing valid now"},
		{"fail/client-only", answer(issuing, pkitest.LeafOptions{CN: "web.gw.test", DNS: []string{"web.gw.test"}, IP: []string{"127.0.0.1"},
			ClientAuth: true}), now, "not a server certificate"},
		{"fail/expired", answer(issuing, good), now.Add(400 * 24 * time.Hour), "valid now"},
		{"fail/names", answer(issuing, pkitest.LeafOptions{CN: "web2.gw.test", DNS: []string{"web2.gw.test"}, ServerAuth: true}), now,
			"it lacks the names asked for: CN=web.gw.test, dns:web.gw.test, ip:127.0.0.1"},
		{"fail/chain-without-ca", func() *apiv1.IssueResponse {
			r := answer(issuing, good)
			r.ChainPEM = string(pkitest.CertPEM(root.Cert))
			return r
		}(), now, "the chain sent does not hold CA issuing's certificate"},
		{"fail/no-certificate", &apiv1.IssueResponse{CertificatePEM: "junk"}, now, "certificate: no PEM CERTIFICATE block"},
		// The CA back-dates NotBefore by a minute; a gateway whose clock
		// is a few minutes behind takes the certificate all the same.
		{"ok/clock-3m-behind", answer(issuing, good), now.Add(-3 * time.Minute), ""},
		{"ok/clock-5m-behind", answer(issuing, good), now.Add(-5 * time.Minute), ""},
		{"fail/clock-10m-behind", answer(issuing, good), now.Add(-10 * time.Minute),
			"it is valid from 2026-06-01T12:00:00Z, 10m0s after the gateway's clock (2026-06-01T11:50:00Z): check the clocks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := checkIssued(tt.res, issuing.CertPEM(), ask, tt.at)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}

// A certificate found on disk is checked against the configuration as it
// is now: every name asked for, and issued by the CA named.
func TestCheckOnDisk(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	root := pkitest.New(t, pkitest.WithNow(now))
	issuing := root.Child(t, "issuing")
	other := root.Child(t, "other")
	leaf, _ := issuing.Leaf(t, pkitest.LeafOptions{CN: "web.gw.test", DNS: []string{"web.gw.test"}, ServerAuth: true})
	tests := []struct {
		name string
		ask  config.GatewayIssue
		ca   *pkitest.CA
		want string // "" means it still matches
	}{
		{"ok/unchanged", config.GatewayIssue{CA: "issuing", DNS: []string{"web.gw.test"}}, issuing, ""},
		{"ok/common-name-only", config.GatewayIssue{CA: "issuing", CommonName: "web.gw.test"}, issuing, ""},
		{"fail/name-added", config.GatewayIssue{CA: "issuing", DNS: []string{"web.gw.test", "www.gw.test"}}, issuing,
			"it lacks the names asked for: dns:www.gw.test"},
		{"fail/ip-added", config.GatewayIssue{CA: "issuing", DNS: []string{"web.gw.test"}, IP: []string{"127.0.0.1"}}, issuing,
			"it lacks the names asked for: ip:127.0.0.1"},
		{"fail/other-ca", config.GatewayIssue{CA: "other", DNS: []string{"web.gw.test"}}, other, "CA other did not issue it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkNames(leaf, tt.ask)
			if err == nil {
				err = checkIssuedBy(leaf, tt.ca.CertPEM(), tt.ask.CA)
			}
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}

// servable takes a certificate on disk whose NotBefore is a little ahead
// of the gateway's clock, as the agent does, but not one far ahead.
func TestServableClockBehind(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	issuing := pkitest.New(t, pkitest.WithNow(now)).Child(t, "issuing")
	leaf, key := issuing.Leaf(t, pkitest.LeafOptions{DNS: []string{"web.gw.test"}, ServerAuth: true})
	kp := &keyPair{}
	kp.cur.Store(&tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf})
	ls := config.GatewayListener{Name: "web", Certificate: config.GatewayCertificate{CertFile: "web.crt"}}
	tests := []struct {
		name string
		at   time.Time
		ok   bool
	}{
		{"ok/in-validity", now.Add(time.Hour), true},
		{"ok/clock-4m-behind", now.Add(-4 * time.Minute), true},
		{"fail/clock-10m-behind", now.Add(-10 * time.Minute), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &Gateway{cfg: Config{Now: func() time.Time { return tt.at }}}
			if err := g.servable(ls, kp, nil); (err == nil) != tt.ok {
				t.Fatalf("servable at %s: %v", tt.at, err)
			}
		})
	}
}

// issueModeGateway is a gateway whose listener "web" is in issue mode,
// with a valid certificate already in its files and no control plane
// (nothing listens at its address): it starts from the files.
// prepare, when set, changes the files before the gateway starts.
func issueModeGateway(t *testing.T, prepare func(certFile, keyFile string)) (g *Gateway, ca *pkitest.CA, certFile, keyFile string) {
	t.Helper()
	return issueModeGatewayAt(t, prepare, nil)
}

// issueModeGatewayAt is issueModeGateway with the gateway's clock now
// (nil: time.Now).
func issueModeGatewayAt(t *testing.T, prepare func(certFile, keyFile string), now func() time.Time) (g *Gateway, ca *pkitest.CA, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	ca = pkitest.New(t, pkitest.WithNow(time.Now().Add(-time.Minute))).Child(t, "issuing")
	certFile, keyFile = filepath.Join(dir, "web.crt"), filepath.Join(dir, "web.key")
	writeIssued(t, ca, certFile, keyFile)
	if prepare != nil {
		prepare(certFile, keyFile)
	}
	tokenFile := filepath.Join(dir, "token")
	writeFile(t, tokenFile, []byte("tok\n"))
	spec := config.Gateway{
		ConnectionLog: "off", AccessLog: "off",
		ControlPlane: config.GatewayControlPlane{Address: "https://127.0.0.1:1", TokenFile: tokenFile},
		Listeners: []config.GatewayListener{{Name: "web", Address: "127.0.0.1:0",
			Certificate: config.GatewayCertificate{CertFile: certFile, KeyFile: keyFile,
				Issue: config.GatewayIssue{CA: "issuing", DNS: []string{"web.gw.test"}, Validity: "1h"}},
			MTLS:   config.GatewayMTLS{Mode: config.MTLSOff},
			Routes: []config.GatewayRoute{{Backend: config.GatewayBackend{URL: "http://127.0.0.1:1"}}}}},
	}
	g, err := New(t.Context(), Config{Spec: spec, PollInterval: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler), Now: now})
	if err != nil {
		t.Fatalf("gateway: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return g, ca, certFile, keyFile
}

// writeIssued writes a server certificate of ca for web.gw.test and its
// key as the issuing agent does: key first, then certificate.
func writeIssued(t *testing.T, ca *pkitest.CA, certFile, keyFile string) *x509.Certificate {
	t.Helper()
	return writeIssuedFrom(t, ca, certFile, keyFile, time.Now().Add(-time.Minute))
}

// writeIssuedFrom is writeIssued with a certificate valid from notBefore.
func writeIssuedFrom(t *testing.T, ca *pkitest.CA, certFile, keyFile string, notBefore time.Time) *x509.Certificate {
	t.Helper()
	leaf, key := ca.Leaf(t, pkitest.LeafOptions{DNS: []string{"web.gw.test"}, ServerAuth: true,
		NotBefore: notBefore, NotAfter: time.Now().Add(time.Hour)})
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.WriteFile(certFile, pkitest.CertPEM(leaf), 0o644); err != nil {
		t.Fatal(err)
	}
	return leaf
}

// TestIssuedSwapRetried: when the swap of a newly issued certificate
// fails (the files cannot be read at that moment), the file poll swaps
// it in as soon as it can, instead of leaving the old one served until
// the next renewal.
func TestIssuedSwapRetried(t *testing.T) {
	g, ca, certFile, keyFile := issueModeGateway(t, nil)
	l := g.listener("web")
	first := l.cert.get().Leaf
	served := func() *x509.Certificate {
		t.Helper()
		c, err := tls.Dial("tcp", g.Addr("web").String(), &tls.Config{InsecureSkipVerify: true, ServerName: "web.gw.test"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0]
	}
	if !served().Equal(first) {
		t.Fatal("the gateway does not serve the certificate in its files")
	}
	// The next read of the certificate file fails (EMFILE, EIO).
	var failed atomic.Bool
	l.cert.mu.Lock()
	l.cert.readFile = func(name string) ([]byte, error) {
		if name == certFile && failed.CompareAndSwap(false, true) {
			return nil, fmt.Errorf("open %s: too many open files", name)
		}
		return os.ReadFile(name)
	}
	l.cert.mu.Unlock()
	next := writeIssued(t, ca, certFile, keyFile)
	if err := g.issued(issuedCertName("web"), next); err == nil || !strings.Contains(err.Error(), "but not loaded") {
		t.Fatalf("issued with a failing read: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !served().Equal(next) {
		if time.Now().After(deadline) {
			t.Fatal("the new certificate is not served 10 s after its swap failed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestIssueModeStartsAfterInterruptedRenewal: a gateway stopped between
// writing a new key and its certificate starts, without the control
// plane, on the last valid pair (the key kept aside goes back in place).
func TestIssueModeStartsAfterInterruptedRenewal(t *testing.T) {
	var want *x509.Certificate
	g, _, _, keyFile := issueModeGateway(t, func(certFile, keyFile string) {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		want = pair.Leaf
		if err := os.Rename(keyFile, keptKeyFile(keyFile)); err != nil {
			t.Fatal(err)
		}
		// The new key, written 0600, that no certificate certifies yet.
		writeFile(t, keyFile, pemKey(t, genKey(t)))
	})
	if got := g.listener("web").cert.get().Leaf; !got.Equal(want) {
		t.Fatalf("serves %x, want the last valid certificate %x", got.SerialNumber, want.SerialNumber)
	}
	if _, err := os.Stat(keptKeyFile(keyFile)); !os.IsNotExist(err) {
		t.Fatalf("the kept key is still there: %v", err)
	}
}

// keptKeyFile is where the issuing agent keeps the previous key during a
// renewal.
func keptKeyFile(keyFile string) string {
	return filepath.Join(filepath.Dir(keyFile), "."+filepath.Base(keyFile)+".trustgate-prev")
}

// TestIssueModeSecondGatewayFails: a second gateway with the same
// listener files as a running one fails to start, naming the lock, and
// the first goes on serving.
func TestIssueModeSecondGatewayFails(t *testing.T) {
	g, _, _, keyFile := issueModeGateway(t, nil)
	spec := g.spec
	spec.Listeners = slices.Clone(spec.Listeners)
	spec.Listeners[0].Address = "127.0.0.1:0"
	_, err := New(t.Context(), Config{Spec: spec, Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "another agent or gateway manages its files") ||
		!strings.Contains(err.Error(), filepath.Join(filepath.Dir(keyFile), ".web.key.trustgate-lock")+" is held") {
		t.Fatalf("second gateway: %v", err)
	}
	c, err := tls.Dial("tcp", g.Addr("web").String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("the first gateway no longer serves: %v", err)
	}
	c.Close()
}

// TestIssuedNotYetValidWaits: a certificate issued with a NotBefore
// ahead of the gateway's clock (a CA clock ahead) is not served while
// the current one is valid, which clients with a right clock would
// refuse; the file poll swaps it in once its NotBefore has passed.
func TestIssuedNotYetValidWaits(t *testing.T) {
	var offset atomic.Int64 // added to the real time
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	g, ca, certFile, keyFile := issueModeGatewayAt(t, nil, now)
	first := g.listener("web").cert.get().Leaf
	served := func() *x509.Certificate {
		t.Helper()
		c, err := tls.Dial("tcp", g.Addr("web").String(), &tls.Config{InsecureSkipVerify: true, ServerName: "web.gw.test"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0]
	}
	next := writeIssuedFrom(t, ca, certFile, keyFile, time.Now().Add(3*time.Minute))
	if err := g.issued(issuedCertName("web"), next); err != nil {
		t.Fatalf("issued: %v", err)
	}
	time.Sleep(200 * time.Millisecond) // ten polls
	if !served().Equal(first) {
		t.Fatal("a certificate not valid yet is served while the current one is valid")
	}
	offset.Store(int64(3*time.Minute + time.Second))
	deadline := time.Now().Add(10 * time.Second)
	for !served().Equal(next) {
		if time.Now().After(deadline) {
			t.Fatal("the new certificate is not served 10 s after its NotBefore")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// swapDue swaps an early certificate in only when nothing valid is served.
func TestSwapDue(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	leaf := func(from, to time.Duration) *x509.Certificate {
		return &x509.Certificate{NotBefore: now.Add(from), NotAfter: now.Add(to)}
	}
	serving := func(c *x509.Certificate) *tls.Certificate { return &tls.Certificate{Leaf: c} }
	tests := []struct {
		name string
		cur  *tls.Certificate
		next *x509.Certificate
		want bool
	}{
		{"ok/next valid", serving(leaf(-time.Hour, time.Hour)), leaf(-time.Minute, time.Hour), true},
		{"ok/next early, current valid: wait", serving(leaf(-time.Hour, time.Hour)), leaf(2*time.Minute, time.Hour), false},
		{"ok/next early, current expired", serving(leaf(-time.Hour, -time.Second)), leaf(2*time.Minute, time.Hour), true},
		{"ok/next early, current early too", serving(leaf(time.Minute, time.Hour)), leaf(2*time.Minute, time.Hour), true},
		{"ok/next early, nothing served", nil, leaf(2*time.Minute, time.Hour), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := swapDue(tt.cur, tt.next, now); got != tt.want {
				t.Fatalf("swapDue = %v, want %v", got, tt.want)
			}
		})
	}
}
