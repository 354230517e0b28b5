package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/internal/audit"
	"github.com/trustgate/trustgate/internal/ca"
	"github.com/trustgate/trustgate/internal/config"
	"github.com/trustgate/trustgate/internal/server"
	"github.com/trustgate/trustgate/internal/store/postgres/pgtest"
)

// testPostgres returns the URL of a new schema on the test PostgreSQL
// server, dropped at the end of the test.
func testPostgres(t *testing.T) string {
	t.Helper()
	return pgtest.NewSchema(t).URL
}

func TestStoreMigrateToPostgres(t *testing.T) {
	addr, dir := startDev(t)
	// Give the source a bit of everything: a revocation, a trust store, a
	// principal with a policy, and the audit records these leave.
	code, out, errs := cli(t, addr, dir, "cert", "list", "--ca", "demo-intermediate", "-o", "json")
	if code != 0 {
		t.Fatalf("cert list: %s", errs)
	}
	serial := out[strings.Index(out, `"serial": "`)+11:]
	serial = serial[:strings.Index(serial, `"`)]
	for _, args := range [][]string{
		{"cert", "revoke", serial, "--reason", "keyCompromise"},
		{"truststore", "create", "partners", "--ca", "demo-intermediate"},
		{"policy", "put", "readers", "--file", writeTemp(t, `{"statements":[{"effect":"allow","actions":["ca:Read"],"resources":["*"]}]}`)},
		{"principal", "create", "viewer", "--policy", "readers"},
		{"token", "create", "--ca", "demo-intermediate", "--profile", "client", "--name", "svc-a", "--expires-in", "1h"},
	} {
		if code, _, errs := cli(t, addr, dir, args...); code != 0 {
			t.Fatalf("%v: %s", args, errs)
		}
	}
	target := testPostgres(t)

	var o, e strings.Builder
	code = run(context.Background(), []string{"store", "migrate", "--from", "sqlite:" + dir, "--to", target}, &o, &e)
	if code != 0 || !strings.Contains(o.String(), "copied and checked") {
		t.Fatalf("store migrate: %d\n%s\n%s", code, o.String(), e.String())
	}
	// A second run refuses: the target is no longer empty.
	o.Reset()
	e.Reset()
	if code := run(context.Background(), []string{"store", "migrate", "--from", "sqlite:" + dir, "--to", target}, &o, &e); code == 0 ||
		!strings.Contains(e.String(), "not empty") {
		t.Fatalf("migrate into a non-empty store: %d %s", code, e.String())
	}

	// A server on the target, with the same master key, works: the audit
	// chain verifies, the revocation is there, and the CA keys unseal.
	cfg := config.Default(dir)
	cfg.Store = target
	cfg.MasterKeyFile = filepath.Join(dir, "master.key")
	cfg.Public.BaseURL = "http://127.0.0.1:9080"
	s, err := server.Open(context.Background(), cfg, server.Options{})
	if err != nil {
		t.Fatalf("open the migrated store: %v", err)
	}
	defer s.Close()
	res, err := audit.Verify(context.Background(), s.Store)
	if err != nil || !res.OK || res.Records < 4 {
		t.Fatalf("audit chain on the target: %+v %v", res, err)
	}
	c, err := s.Inventory.Get(context.Background(), serial)
	if err != nil || c.Status != "revoked" {
		t.Fatalf("revoked certificate on the target: %+v %v", c, err)
	}
	if _, err := s.CA.Issue(context.Background(), ca.IssueRequest{CA: "demo-intermediate", Profile: "client", CommonName: "after-move",
		DNS: []string{"after.move.internal"}}); err != nil {
		t.Fatalf("issue on the target: %v", err)
	}
	if _, err := s.Store.GetPrincipal(context.Background(), "viewer"); err != nil {
		t.Fatalf("principal on the target: %v", err)
	}
	if bts, err := s.Store.ListBootstrapTokens(context.Background()); err != nil || len(bts) != 1 {
		t.Fatalf("bootstrap tokens on the target: %d %v", len(bts), err)
	}
}

func writeTemp(t *testing.T, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
