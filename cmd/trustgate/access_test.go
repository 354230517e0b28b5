package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAccessCLI(t *testing.T) {
	addr, dir := startDev(t)
	work := t.TempDir()
	policy := filepath.Join(work, "team.yaml")
	os.WriteFile(policy, []byte(`statements:
  - sid: read-cas
    effect: allow
    actions: [ca:Read, ca:List]
    resources: ["*"]
`), 0o644)
	if code, _, errs := cli(t, addr, dir, "policy", "put", "readers", "--file", policy); code != 0 {
		t.Fatalf("policy put: %d %s", code, errs)
	}
	code, out, errs := cli(t, addr, dir, "principal", "create", "viewer", "--policy", "readers", "-o", "json")
	var created struct{ Token string }
	if code != 0 || json.Unmarshal([]byte(out), &created) != nil || !strings.HasPrefix(created.Token, "tgat_") {
		t.Fatalf("principal create -o json: %d %s %s", code, out, errs)
	}
	code, out, _ = cli(t, addr, dir, "policy", "simulate", "--principal", "viewer", "--action", "ca:Read", "--resource", "ca/demo-root")
	if code != 0 || !strings.Contains(out, "decision: ALLOW") || !strings.Contains(out, "statement: read-cas (policy readers)") {
		t.Fatalf("simulate allow: %d %s", code, out)
	}
	code, out, _ = cli(t, addr, dir, "policy", "simulate", "--principal", "viewer", "--action", "cert:Issue", "--resource", "ca/demo-intermediate",
		"--profile", "server", "--dns", "a.example", "--validity", "48h")
	if code != 0 || !strings.Contains(out, "decision: DENY") || !strings.Contains(out, "default deny") {
		t.Fatalf("simulate deny: %d %s", code, out)
	}

	// The viewer may read CAs but not create one: exit code 5.
	t.Setenv("TRUSTGATE_TOKEN", created.Token)
	var o, e strings.Builder
	full := []string{"--addr", addr, "--cacert", filepath.Join(dir, "dev", "root.pem"), "ca", "create", "--name", "x", "--parent", "demo-root"}
	if code := run(t.Context(), full, &o, &e); code != exitAuth || !strings.Contains(e.String(), "ca:Create") {
		t.Fatalf("ca create as viewer: %d %s", code, e.String())
	}

	code, out, errs = cli(t, addr, dir, "audit", "export", "-o", "jsonl")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) < 3 {
		t.Fatalf("audit export: %d %s %s", code, out, errs)
	}
	var last struct{ Action, Decision, Actor string }
	json.Unmarshal([]byte(lines[len(lines)-1]), &last)
	if last.Action != "ca:Create" || last.Decision != "deny" || last.Actor != "viewer" {
		t.Errorf("last audit record = %+v", last)
	}
	code, out, _ = cli(t, addr, dir, "audit", "verify")
	if code != 0 || !strings.Contains(out, "audit log intact") {
		t.Fatalf("audit verify: %d %s", code, out)
	}
	code, out, _ = cli(t, addr, dir, "audit", "report", "--ca", "demo-intermediate")
	if code != 0 || !strings.HasPrefix(out, "serial,subject,") || strings.Count(out, "\n") < 3 {
		t.Fatalf("audit report: %d %s", code, out)
	}
}
