package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoadFileAndEnv(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	os.WriteFile(p, []byte("data_dir: /srv/tg\napi:\n  listen: 127.0.0.1:7443\nissuance:\n  backdate: 2m\n"), 0o600)
	cfg, err := Load(p, envMap(map[string]string{
		"TRUSTGATE_API_LISTEN":         "127.0.0.1:8443",
		"TRUSTGATE_API_MAX_BODY_BYTES": "4096",
		"TRUSTGATE_LOG_FORMAT":         "text",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/srv/tg" || cfg.API.Listen != "127.0.0.1:8443" || cfg.API.MaxBodyBytes != 4096 || cfg.Log.Format != "text" {
		t.Fatalf("cfg = %+v", cfg)
	}
	if time.Duration(cfg.Issuance.Backdate) != 2*time.Minute {
		t.Fatalf("backdate %v", cfg.Issuance.Backdate)
	}
	if cfg.MasterKeyFile != "/srv/tg/master.key" || cfg.Public.BaseURL != "http://127.0.0.1:9080" {
		t.Fatalf("derived defaults: %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		env        map[string]string
		want       string
	}{
		{"fail/unknown key", "nope: 1\n", nil, "field nope not found"},
		{"fail/bad duration", "issuance:\n  backdate: soon\n", nil, "soon"},
		{"fail/bad env int", "", map[string]string{"TRUSTGATE_API_MAX_BODY_BYTES": "lots"}, "TRUSTGATE_API_MAX_BODY_BYTES"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			os.WriteFile(p, []byte(tt.yaml), 0o600)
			_, err := Load(p, envMap(tt.env))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Server)
		want string
	}{
		{"ok/defaults", func(*Server) {}, ""},
		{"fail/listen", func(c *Server) { c.API.Listen = "nowhere" }, "api.listen"},
		{"fail/store", func(c *Server) { c.Store = "mysql://x" }, "not supported"},
		{"fail/store hides password", func(c *Server) { c.Store = "mysql://u:hunter2@x/db" }, "u:xxxxx@x"},
		{"ok/postgres", func(c *Server) { c.Store = "postgres://127.0.0.1:5432/test" }, ""},
		{"fail/level", func(c *Server) { c.Log.Level = "loud" }, "log.level"},
		{"fail/base url", func(c *Server) { c.Public.BaseURL = "ftp://x" }, "base_url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default("/d")
			c.Fill()
			tt.mod(&c)
			err := c.Validate()
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// The documented mapping must list every variable, so it cannot drift.
func TestEnvVarsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range EnvVars() {
		if !strings.Contains(string(doc), v.Name) || !strings.Contains(string(doc), v.Key) {
			t.Errorf("docs/configuration.md does not document %s (%s)", v.Name, v.Key)
		}
	}
}
