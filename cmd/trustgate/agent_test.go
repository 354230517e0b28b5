package main

import (
	"crypto/tls"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTokenAndAgentCLI: token create prints a bootstrap token; agent
// --once enrols with it and writes a matching pair (key 0600); the used
// token is refused with the auth exit code; bad calls are usage errors.
func TestTokenAndAgentCLI(t *testing.T) {
	addr, dir := startDev(t)
	work := t.TempDir()
	code, out, errs := cli(t, addr, dir, "token", "create", "--ca", "demo-intermediate", "--profile", "client", "--name", "svc-a",
		"--uri", "spiffe://demo.trustgate.local/svc-a", "--max-validity", "2h", "--expires-in", "10m")
	if code != 0 || !strings.HasPrefix(out, "tgbt_") || !strings.Contains(errs, "1 use(s)") {
		t.Fatalf("token create: %d %q %q", code, out, errs)
	}
	token := strings.TrimSpace(out)
	cert, key := filepath.Join(work, "a.pem"), filepath.Join(work, "a.key")
	agent := func(tok, cn, cert, key string) (int, string) {
		t.Helper()
		code, _, errs := cli(t, addr, dir, "agent", "--token", tok, "--cn", cn, "--uri", "spiffe://demo.trustgate.local/"+cn,
			"--cert-out", cert, "--key-out", key, "--once")
		return code, errs
	}
	if code, errs := agent(token, "svc-a", cert, key); code != 0 {
		t.Fatalf("agent --once: %d %s", code, errs)
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil || pair.Leaf.Subject.CommonName != "svc-a" || pair.Leaf.NotAfter.Sub(pair.Leaf.NotBefore).Hours() > 2.1 {
		t.Fatalf("enrolled pair: %v %+v", err, pair.Leaf)
	}
	if fi, _ := os.Stat(key); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v", fi.Mode())
	}
	if code, errs := agent(token, "svc-a", filepath.Join(work, "b.pem"), filepath.Join(work, "b.key")); code != exitAuth || !strings.Contains(errs, "used up") {
		t.Fatalf("reused token: %d %s", code, errs)
	}
	// A revoked token is refused.
	code, out, errs = cli(t, addr, dir, "token", "create", "--ca", "demo-intermediate", "--profile", "client", "--name", "svc-b", "-o", "json")
	if code != 0 {
		t.Fatalf("token create: %d %s", code, errs)
	}
	var created struct{ ID, Token string }
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.ID == "" {
		t.Fatalf("token create -o json: %v %s", err, out)
	}
	if code, out, errs := cli(t, addr, dir, "token", "revoke", created.ID); code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("token revoke: %d %s %s", code, out, errs)
	}
	if code, errs := agent(created.Token, "svc-b", filepath.Join(work, "c.pem"), filepath.Join(work, "c.key")); code != exitAuth || !strings.Contains(errs, "revoked") {
		t.Fatalf("revoked token: %d %s", code, errs)
	}
	if code, _, _ := cli(t, addr, dir, "token", "revoke", "bt-nope"); code != exitNotFound {
		t.Fatalf("revoke of a missing token: exit %d, want %d", code, exitNotFound)
	}
	for _, args := range [][]string{
		{"token", "create", "--ca", "demo-intermediate", "--profile", "client"},
		{"agent", "--once"},
		{"agent", "--config", filepath.Join(work, "none.yaml"), "--cn", "x"},
	} {
		if code, _, errs := cli(t, addr, dir, args...); code != exitUsage {
			t.Errorf("%v: exit %d (%s), want %d", args, code, errs, exitUsage)
		}
	}
}
