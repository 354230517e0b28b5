package main

import (
	"strings"
	"testing"
)

// TestDevConfigEnv checks that `trustgate dev` takes configuration keys
// from the environment, and that its flags win over it.
func TestDevConfigEnv(t *testing.T) {
	env := func(vars map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	}
	dir := t.TempDir()
	cfg, err := devConfig(dir, "127.0.0.1:9443", "127.0.0.1:9080", env(map[string]string{
		"TRUSTGATE_ACCESS_ISSUE_PER_MINUTE": "0",
		"TRUSTGATE_API_LISTEN":              "0.0.0.0:1",
		"TRUSTGATE_PUBLIC_LISTEN":           "0.0.0.0:2",
		"TRUSTGATE_DATA_DIR":                "/elsewhere",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Access.IssuePerMinute != 0 {
		t.Errorf("access.issue_per_minute = %d, want 0 from the environment", cfg.Access.IssuePerMinute)
	}
	if cfg.API.Listen != "127.0.0.1:9443" || cfg.Public.Listen != "127.0.0.1:9080" || cfg.DataDir != dir {
		t.Errorf("flags lost to the environment: api %q, public %q, data %q", cfg.API.Listen, cfg.Public.Listen, cfg.DataDir)
	}
	if cfg, err := devConfig(dir, "127.0.0.1:9443", "127.0.0.1:9080", env(nil)); err != nil || cfg.Access.IssuePerMinute != 60000 {
		t.Errorf("without the environment: issue_per_minute %d, %v; want the default 60000", cfg.Access.IssuePerMinute, err)
	}
	if _, err := devConfig(dir, "127.0.0.1:9443", "127.0.0.1:9080", env(map[string]string{"TRUSTGATE_ACCESS_ISSUE_BURST": "many"})); err == nil ||
		!strings.Contains(err.Error(), "TRUSTGATE_ACCESS_ISSUE_BURST") {
		t.Errorf("a bad value: %v, want an error naming the variable", err)
	}
}
