package agent_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trustgate/trustgate/internal/agent"
	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/config"
	"github.com/trustgate/trustgate/internal/server"
)

// TestAgentIssue: with Config.Issue the agent has each CSR issued by the
// caller's request instead of enrolling (no token is configured), writes
// the files as usual, and tells Obtained and Failed; two agents share one
// registry.
func TestAgentIssue(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	cp := startControlPlane(t, clock)
	dir := t.TempDir()
	spec := config.AgentCertificate{Name: "listener/web", CommonName: "web.internal", DNS: []string{"web.internal"},
		CertFile: filepath.Join(dir, "web.crt"), KeyFile: filepath.Join(dir, "web.key")}
	var csrs []string
	refuse := false
	var obtained []*x509.Certificate
	var failures []error
	reg := prometheus.NewRegistry()
	newIssuing := func() *agent.Agent {
		a, err := agent.New(agent.Config{
			Spec: config.Agent{
				ControlPlane: config.AgentControlPlane{Address: "https://" + cp.addr, CAFile: cp.files.Root},
				Certificates: []config.AgentCertificate{spec},
			},
			Clock: clock, Logger: slog.New(slog.DiscardHandler), Registry: reg,
			Issue: func(ctx context.Context, name, csr string) (*apiv1.IssueResponse, error) {
				if name != spec.Name {
					t.Errorf("Issue for %q", name)
				}
				if refuse {
					return nil, errors.New("refused by the test")
				}
				csrs = append(csrs, csr)
				return cp.admin.Issue(ctx, apiv1.IssueRequest{CA: server.DemoIntermediate, Profile: "server", CSR: csr,
					CommonName: "web.internal", DNS: []string{"web.internal"}, Validity: "1h"})
			},
			Obtained: func(name string, leaf *x509.Certificate) error { obtained = append(obtained, leaf); return nil },
			Failed:   func(name string, err error) { failures = append(failures, err) },
		})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := newIssuing()
	if err := a.RunOnce(t.Context()); err != nil {
		t.Fatalf("RunOnce: %v", err)
	}
	leaf := loadPair(t, spec)
	if len(obtained) != 1 || !obtained[0].Equal(leaf) || len(csrs) != 1 {
		t.Fatalf("Obtained saw %d certificates for %d CSRs", len(obtained), len(csrs))
	}
	if fi, err := os.Stat(spec.KeyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	if strings.Contains(csrs[0], "PRIVATE KEY") {
		t.Fatal("the CSR holds a private key")
	}

	// A second agent on the same registry (the gateway runs two), due for
	// renewal: a refused attempt keeps the files and is reported.
	clock.Set(clock.Now().Add(50 * time.Minute))
	refuse = true
	a.Close() // its files are free for the next one
	b := newIssuing()
	defer b.Close()
	if err := b.RunOnce(t.Context()); err == nil || !strings.Contains(err.Error(), "refused by the test") {
		t.Fatalf("RunOnce with a refusal: %v", err)
	}
	if len(failures) != 1 || !loadPair(t, spec).Equal(leaf) {
		t.Fatalf("failures %v; the files changed: %v", failures, !loadPair(t, spec).Equal(leaf))
	}
	if n := counterValue(t, reg, "trustgate_agent_renewal_failures_total"); n != 1 {
		t.Fatalf("renewal failures counted %v, want 1", n)
	}
	refuse = false
	if err := b.RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if next := loadPair(t, spec); next.Equal(leaf) || len(obtained) != 2 {
		t.Fatal("the due certificate was not replaced")
	}
	if k1, k2 := leaf.PublicKey, obtained[1].PublicKey; k1.(interface{ Equal(crypto.PublicKey) bool }).Equal(k2) {
		t.Fatal("the renewal kept the key")
	}
}

// counterValue gathers the one series of a counter from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.Metric) == 1 {
			return mf.Metric[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no single series of %s", name)
	return 0
}
