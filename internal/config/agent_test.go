package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadAgent(t *testing.T) {
	p := filepath.Join(t.TempDir(), "agent.yaml")
	os.WriteFile(p, []byte(`
health_listen: 127.0.0.1:9901
certificates:
  - common_name: svc-a
    dns: [svc-a.internal]
    token_file: /etc/t
    cert_file: a.pem
    key_file: a.key
`), 0o600)
	env := map[string]string{"TRUSTGATE_ADDR": "https://cp:9443", "TRUSTGATE_CACERT": "/etc/ca.pem"}
	cfg, err := LoadAgent(p, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Certificates[0]
	if cfg.ControlPlane.Address != "https://cp:9443" || cfg.ControlPlane.CAFile != "/etc/ca.pem" || c.Name != "svc-a" ||
		c.RenewAt != DefaultAgentRenewAt || c.KeyType != "ec-p256" || cfg.Retry.Initial == 0 || cfg.Retry.Max == 0 {
		t.Fatalf("loaded: %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p, []byte("certificates:\n  - cn: x\n"), 0o600)
	if _, err := LoadAgent(p, nil); err == nil || !strings.Contains(err.Error(), "cn") {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestAgentValidate(t *testing.T) {
	ok := func() Agent {
		a := Agent{ControlPlane: AgentControlPlane{Address: "https://cp"}, Certificates: []AgentCertificate{
			{CommonName: "a", CertFile: "a.pem", KeyFile: "a.key"},
		}}
		a.ApplyDefaults()
		return a
	}
	tests := []struct {
		name string
		mod  func(*Agent)
		want string
	}{
		{"ok/defaults", func(*Agent) {}, ""},
		{"fail/no address", func(a *Agent) { a.ControlPlane.Address = "" }, "control_plane.address"},
		{"fail/no certificates", func(a *Agent) { a.Certificates = nil }, "at least one"},
		{"fail/no key file", func(a *Agent) { a.Certificates[0].KeyFile = "" }, "key_file"},
		{"fail/renew_at 1", func(a *Agent) { a.Certificates[0].RenewAt = 1 }, "renew_at"},
		{"fail/token twice", func(a *Agent) { a.Certificates[0].Token, a.Certificates[0].TokenFile = "t", "f" }, "not both"},
		{"fail/bad validity", func(a *Agent) { a.Certificates[0].Validity = "soon" }, "validity"},
		{"fail/signal without pid file", func(a *Agent) { a.Certificates[0].ReloadSignal = "HUP" }, "pid_file"},
		{"fail/unknown signal", func(a *Agent) { a.Certificates[0].PIDFile, a.Certificates[0].ReloadSignal = "p", "KILL" }, "KILL"},
		{"fail/same file twice", func(a *Agent) {
			a.Certificates = append(a.Certificates, AgentCertificate{Name: "b", CertFile: "b.pem", KeyFile: "a.key", RenewAt: 0.5})
		}, "also written"},
		{"fail/same name twice", func(a *Agent) {
			a.Certificates = append(a.Certificates, AgentCertificate{Name: "a", CertFile: "b.pem", KeyFile: "b.key", RenewAt: 0.5})
		}, "used twice"},
		{"fail/backoff", func(a *Agent) { a.Retry.Max = a.Retry.Initial / 2 }, "retry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := ok()
			tt.mod(&a)
			err := a.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want an error with %q", err, tt.want)
			}
		})
	}
}
