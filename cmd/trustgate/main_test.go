package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// lockedBuffer is written by the dev command's goroutine and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// startDev runs `trustgate dev` in-process on free loopback ports and returns
// the API address and the data directory.
func startDev(t *testing.T) (addr, dir string) {
	t.Helper()
	addr, _, dir = startDevGateway(t)
	return addr, dir
}

// startDevGateway is startDev that also returns the gateway's address.
func startDevGateway(t *testing.T) (addr, gw, dir string) {
	t.Helper()
	dir = t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	out := &lockedBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"dev", "--data", dir, "--api-listen", "127.0.0.1:0", "--public-listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0"}, out, &lockedBuffer{})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("dev exited with %d after cancel", code)
			}
		case <-time.After(15 * time.Second):
			t.Error("dev did not stop within 15 s")
		}
	})
	re := regexp.MustCompile(`API:\s+https://(\S+)`)
	reGW := regexp.MustCompile(`Gateway:\s+https://(\S+)`)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m, g := re.FindStringSubmatch(out.String()), reGW.FindStringSubmatch(out.String()); m != nil && g != nil {
			return "https://" + m[1], g[1], dir
		}
		select {
		case code := <-done:
			t.Fatalf("dev exited early with %d: %s", code, out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("dev did not start: %s", out.String())
	return "", "", ""
}

// cli runs one CLI command in-process and returns its exit code and output.
func cli(t *testing.T, addr, dir string, args ...string) (int, string, string) {
	t.Helper()
	tok, _ := os.ReadFile(filepath.Join(dir, "dev", "admin.token"))
	t.Setenv("TRUSTGATE_TOKEN", strings.TrimSpace(string(tok)))
	var out, errb bytes.Buffer
	full := append([]string{"--addr", addr, "--cacert", filepath.Join(dir, "dev", "root.pem")}, args...)
	code := run(context.Background(), full, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCLIAgainstDev(t *testing.T) {
	addr, dir := startDev(t)
	work := t.TempDir()

	code, out, errs := cli(t, addr, dir, "ca", "create", "--name", "team", "--parent", "demo-root", "--key-type", "rsa-2048", "--validity", "1y", "-o", "json")
	if code != 0 {
		t.Fatalf("ca create: %d %s", code, errs)
	}
	var ca struct{ Name, State string }
	json.Unmarshal([]byte(out), &ca)
	if ca.Name != "team" || ca.State != "active" {
		t.Fatalf("ca create output: %s", out)
	}

	// A CSR from openssl, in DER, is accepted.
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	key, csr := filepath.Join(work, "k.pem"), filepath.Join(work, "r.der")
	if b, err := exec.Command("openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-outform", "DER", "-out", csr, "-subj", "/CN=db.internal").CombinedOutput(); err != nil {
		t.Fatalf("openssl req: %v %s", err, b)
	}
	leaf, chain := filepath.Join(work, "leaf.pem"), filepath.Join(work, "chain.pem")
	code, _, errs = cli(t, addr, dir, "cert", "issue", "--ca", "team", "--profile", "server", "--csr", csr, "--dns", "db.internal", "--validity", "48h", "--out", leaf, "--chain-out", chain)
	if code != 0 {
		t.Fatalf("cert issue: %d %s", code, errs)
	}
	if b, err := exec.Command("openssl", "verify", "-CAfile", filepath.Join(dir, "dev", "root.pem"), "-untrusted", chain, leaf).CombinedOutput(); err != nil {
		t.Fatalf("openssl verify: %v %s", err, b)
	}
	serial := regexp.MustCompile(`serial ([0-9a-f]+)`).FindStringSubmatch(errs)
	if serial == nil {
		t.Fatalf("no serial in %q", errs)
	}
	code, out, _ = cli(t, addr, dir, "cert", "show", serial[1], "-o", "json")
	if code != 0 || !strings.Contains(out, `"db.internal"`) && !strings.Contains(out, "dns:db.internal") {
		t.Fatalf("cert show: %d %s", code, out)
	}

	// PKCS#12 with a server-generated key.
	pass := filepath.Join(work, "pass")
	os.WriteFile(pass, []byte("a long passphrase\n"), 0o600)
	p12 := filepath.Join(work, "c.p12")
	if code, _, errs := cli(t, addr, dir, "cert", "issue", "--ca", "team", "--profile", "client", "--cn", "svc", "--p12-out", p12, "--passphrase-file", pass); code != 0 {
		t.Fatalf("p12 issue: %s", errs)
	}
	if st, _ := os.Stat(p12); st == nil || st.Mode().Perm() != 0o600 {
		t.Fatal("p12 file missing or not 0600")
	}
	if b, err := exec.Command("openssl", "pkcs12", "-in", p12, "-passin", "pass:a long passphrase", "-nokeys", "-noout").CombinedOutput(); err != nil {
		t.Fatalf("openssl pkcs12: %v %s", err, b)
	}

	// Exit codes.
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"fail/not found", []string{"ca", "show", "ghost"}, exitNotFound},
		{"fail/conflict", []string{"ca", "create", "--name", "team", "--parent", "demo-root"}, exitConflict},
		{"fail/invalid", []string{"cert", "issue", "--ca", "team", "--profile", "server", "--cn", "x", "--dns", "bad name", "--key-out", filepath.Join(work, "x")}, exitInvalid},
		{"fail/usage flag", []string{"ca", "list", "--bogus"}, exitUsage},
		{"fail/usage args", []string{"ca", "show"}, exitUsage},
		{"fail/usage output", []string{"ca", "list", "-o", "yaml"}, exitUsage},
		{"fail/key without destination", []string{"cert", "issue", "--ca", "team", "--profile", "client", "--cn", "x"}, exitUsage},
		{"ok/list", []string{"cert", "list", "--ca", "team", "--status", "active"}, exitOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, _, errs := cli(t, addr, dir, tt.args...); code != tt.want {
				t.Fatalf("exit %d, want %d (%s)", code, tt.want, errs)
			}
		})
	}
	t.Setenv("TRUSTGATE_TOKEN", "tgat_bogus")
	var o, e bytes.Buffer
	if code := run(context.Background(), []string{"--addr", addr, "--cacert", filepath.Join(dir, "dev", "root.pem"), "ca", "list"}, &o, &e); code != exitAuth {
		t.Fatalf("bad token: exit %d", code)
	}
	if code := run(context.Background(), []string{"--addr", "https://127.0.0.1:1", "--cacert", filepath.Join(dir, "dev", "root.pem"), "ca", "list"}, &o, &e); code != exitUnavailable {
		t.Fatalf("unreachable: exit %d", code)
	}
}

// Every command answers --help.
func TestHelpEverywhere(t *testing.T) {
	var walk func(c *cobra.Command)
	n := 0
	walk = func(c *cobra.Command) {
		var out bytes.Buffer
		args := strings.Fields(strings.TrimPrefix(c.CommandPath(), "trustgate"))
		if code := run(context.Background(), append(args, "--help"), &out, &out); code != 0 || !strings.Contains(out.String(), "Usage:") {
			t.Errorf("%s --help: exit %d\n%s", c.CommandPath(), code, out.String())
		}
		n++
		for _, sub := range c.Commands() {
			if sub.Name() != "help" && sub.Name() != "completion" {
				walk(sub)
			}
		}
	}
	walk(newRootCmd(&bytes.Buffer{}, &bytes.Buffer{}))
	if n < 15 {
		t.Fatalf("only %d commands", n)
	}
}

// The dev gateway forwards a verified client's identity, refuses a client
// without a certificate, and refuses a revoked one within a few seconds.
func TestDevGateway(t *testing.T) {
	addr, gw, dir := startDevGateway(t)
	dev := filepath.Join(dir, "dev")
	rootPEM, _ := os.ReadFile(filepath.Join(dev, "root.pem"))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(rootPEM)
	get := func(cert *tls.Certificate) (*http.Response, error) {
		tc := &tls.Config{RootCAs: pool, ServerName: "localhost"}
		if cert != nil {
			tc.Certificates = []tls.Certificate{*cert}
		}
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}}
		return c.Get("https://" + gw + "/hello")
	}
	client, err := tls.LoadX509KeyPair(filepath.Join(dev, "client.pem"), filepath.Join(dev, "client.key"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := get(&client)
	if err != nil {
		t.Fatal(err)
	}
	var echo struct {
		Path    string
		Headers map[string]string
	}
	json.NewDecoder(resp.Body).Decode(&echo)
	resp.Body.Close()
	if resp.StatusCode != 200 || echo.Path != "/hello" || echo.Headers["X-Amzn-Mtls-Clientcert-Subject"] != "CN=demo-client" {
		t.Fatalf("identity: %d %+v", resp.StatusCode, echo)
	}
	if _, err := get(nil); err == nil {
		t.Fatal("a client without a certificate got through")
	}

	// A freshly issued client, revoked: refused within a few seconds.
	work := t.TempDir()
	cert, key := filepath.Join(work, "c.pem"), filepath.Join(work, "c.key")
	code, _, errs := cli(t, addr, dir, "cert", "issue", "--ca", "demo-intermediate", "--profile", "client", "--cn", "doomed", "--out", cert, "--key-out", key, "--chain-out", filepath.Join(work, "chain.pem"))
	if code != 0 {
		t.Fatalf("issue: %s", errs)
	}
	leafPEM, _ := os.ReadFile(cert)
	interPEM, _ := os.ReadFile(filepath.Join(work, "chain.pem"))
	os.WriteFile(cert, append(leafPEM, interPEM...), 0o644)
	doomed, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := get(&doomed); err != nil || resp.StatusCode != 200 {
		t.Fatalf("before revoke: %v", err)
	}
	serial := regexp.MustCompile(`serial ([0-9a-f]+)`).FindStringSubmatch(errs)[1]
	if code, _, errs := cli(t, addr, dir, "cert", "revoke", serial, "--reason", "keyCompromise"); code != 0 {
		t.Fatalf("revoke: %s", errs)
	}
	revokedAt := time.Now()
	for {
		resp, err := get(&doomed)
		if err != nil {
			break
		}
		resp.Body.Close()
		if time.Since(revokedAt) > 10*time.Second {
			t.Fatal("the gateway still accepts a revoked certificate after 10 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The demo client is unaffected.
	if resp, err := get(&client); err != nil || resp.StatusCode != 200 {
		t.Fatalf("demo client after another's revoke: %v", err)
	}
}
