package main

import (
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/pki/pkitest"
)

func TestTrustStoreCLI(t *testing.T) {
	addr, dir := startDev(t)
	work := t.TempDir()
	partner := pkitest.New(t, pkitest.WithName("Partner Root"))
	partnerFile := pkitest.WriteFile(t, work, "partner.pem", partner.CertPEM())

	code, out, errs := cli(t, addr, dir, "truststore", "create", "partners", "--ca", "demo-intermediate", "-o", "json")
	if code != 0 {
		t.Fatalf("create: %d %s", code, errs)
	}
	var ts apiv1.TrustStore
	if err := json.Unmarshal([]byte(out), &ts); err != nil || ts.Version != 1 || len(ts.CAs) != 1 || ts.CAs[0].Ref != "demo-intermediate" {
		t.Fatalf("create output: %v %s", err, out)
	}
	if code, _, errs := cli(t, addr, dir, "truststore", "add-ca", "partners", "--ca-file", partnerFile); code != 0 {
		t.Fatalf("add-ca: %s", errs)
	}
	if code, _, errs := cli(t, addr, dir, "truststore", "add-crl", "partners", "--url", "http://pki.partner.example/root.crl"); code != 0 {
		t.Fatalf("add-crl --url: %s", errs)
	}
	code, out, _ = cli(t, addr, dir, "truststore", "show", "partners")
	for _, want := range []string{"Version:  3", "demo-intermediate", "external", "CN=Partner Root", "http://pki.partner.example/root.crl",
		"Revocations of demo-intermediate are followed automatically"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("show (exit %d) lacks %q:\n%s", code, want, out)
		}
	}
	bundle := filepath.Join(work, "bundle.pem")
	if code, _, errs := cli(t, addr, dir, "truststore", "bundle", "partners", "--out", bundle); code != 0 {
		t.Fatalf("bundle: %s", errs)
	}
	b, _ := os.ReadFile(bundle)
	n := 0
	for rest := b; ; n++ {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
	}
	if n != 2 {
		t.Fatalf("bundle holds %d certificates, want 2:\n%s", n, b)
	}
	code, out, _ = cli(t, addr, dir, "truststore", "list")
	if code != 0 || !strings.Contains(out, "partners") {
		t.Fatalf("list: %d %s", code, out)
	}
	code, out, _ = cli(t, addr, dir, "truststore", "show", "partners", "-o", "json")
	json.Unmarshal([]byte(out), &ts)
	if code, _, errs := cli(t, addr, dir, "truststore", "remove-crl", "partners", ts.CRLs[0].ID); code != 0 {
		t.Fatalf("remove-crl: %s", errs)
	}
	if code, _, errs := cli(t, addr, dir, "truststore", "remove-ca", "partners", ts.CAs[1].Ref); code != 0 {
		t.Fatalf("remove-ca: %s", errs)
	}

	tests := []struct {
		name string
		args []string
		want int
	}{
		{"fail/not found", []string{"truststore", "show", "ghost"}, exitNotFound},
		{"fail/conflict", []string{"truststore", "create", "partners"}, exitConflict},
		{"fail/invalid name", []string{"truststore", "create", "Bad Name"}, exitInvalid},
		{"fail/invalid url", []string{"truststore", "add-crl", "partners", "--url", "ftp://x.example/a.crl"}, exitInvalid},
		{"fail/not a crl", []string{"truststore", "add-crl", "partners", partnerFile}, exitInvalid},
		{"fail/usage both", []string{"truststore", "add-ca", "partners", "demo-root", "--ca-file", partnerFile}, exitUsage},
		{"fail/usage neither", []string{"truststore", "add-crl", "partners"}, exitUsage},
		{"fail/usage args", []string{"truststore", "remove-ca", "partners"}, exitUsage},
		{"fail/usage missing file", []string{"truststore", "create", "x", "--ca-file", filepath.Join(work, "nope.pem")}, exitUsage},
		{"ok/add by name", []string{"truststore", "add-ca", "partners", "demo-root"}, exitOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, _, errs := cli(t, addr, dir, tt.args...); code != tt.want {
				t.Fatalf("exit %d, want %d (%s)", code, tt.want, errs)
			}
		})
	}
}
