package revocation

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"
)

func TestMaxAge(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		next  time.Time
		limit time.Duration
		want  int
	}{
		{"ok/capped", now.Add(7 * 24 * time.Hour), 5 * time.Minute, 300},
		{"ok/time-left", now.Add(90 * time.Second), 5 * time.Minute, 90},
		{"ok/rounds-down", now.Add(1500 * time.Millisecond), time.Hour, 1},
		{"ok/expired", now.Add(-time.Second), time.Hour, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := maxAge(now, tc.next, tc.limit); got != tc.want {
				t.Errorf("maxAge = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestRotationAndRefreshDecisions(t *testing.T) {
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	r := &responder{cert: &x509.Certificate{NotBefore: t0, NotAfter: t0.Add(2 * time.Hour)}, rotateAt: t0.Add(time.Hour)}
	caEnd := t0.Add(24 * time.Hour)
	for _, tc := range []struct {
		name string
		now  time.Time
		ca   time.Time
		want bool
	}{
		{"ok/young", t0.Add(59 * time.Minute), caEnd, false},
		{"ok/half", t0.Add(time.Hour), caEnd, true},
		{"ok/expired", t0.Add(3 * time.Hour), caEnd, true},
		{"ok/ca-ends-first", t0.Add(time.Hour), t0.Add(2 * time.Hour), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.due(tc.now, tc.ca); got != tc.want {
				t.Errorf("due = %v, want %v", got, tc.want)
			}
		})
	}
	if !r.usable(t0) || r.usable(t0.Add(2*time.Hour)) || r.usable(t0.Add(-2*time.Minute)) {
		t.Error("usable: wrong bounds")
	}
	c := &crl{refreshAt: t0}
	if c.due(t0.Add(-time.Nanosecond)) || !c.due(t0) {
		t.Error("crl.due: wrong bound")
	}
	a := &answer{refreshAt: t0, serveUntil: t0.Add(time.Minute)}
	if a.due(t0.Add(-time.Second)) || !a.due(t0) || !a.servable(t0) || a.servable(t0.Add(time.Minute)) {
		t.Error("answer decisions: wrong bounds")
	}
}

func TestParsePartitionAndETag(t *testing.T) {
	for in, want := range map[string]int{"0": 0, "7": 7, "1023": 1023} {
		if got, ok := parsePartition(in); !ok || got != want {
			t.Errorf("parsePartition(%q) = %d, %v", in, got, ok)
		}
	}
	for _, bad := range []string{"", "01", "-1", "+1", "1a", "9999999", " 1"} {
		if _, ok := parsePartition(bad); ok {
			t.Errorf("parsePartition(%q) accepted", bad)
		}
	}
	for _, tc := range []struct {
		header string
		want   bool
	}{{`"a"`, true}, {`W/"a"`, true}, {`"b", "a"`, true}, {`*`, true}, {`"b"`, false}, {`a`, false}} {
		if got := etagMatches(tc.header, `"a"`); got != tc.want {
			t.Errorf("etagMatches(%q) = %v", tc.header, got)
		}
	}
}

func TestNewConfig(t *testing.T) {
	e := newEnv(t, envOptions{})
	base := Config{Store: e.st, Keys: e.keys, Responders: e.resp}
	svc, err := New(base)
	if err != nil {
		t.Fatal(err)
	}
	c := svc.cfg
	if c.CRLValidity != 7*24*time.Hour || c.OCSPValidity != time.Hour || c.ResponderValidity != 48*time.Hour ||
		c.Coalesce != 100*time.Millisecond || c.MaxAge != 5*time.Minute || c.Now == nil || c.Logger == nil {
		t.Errorf("defaults: %+v", c)
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"fail/no-store", func(c *Config) { c.Store = nil }, "Store"},
		{"fail/no-keys", func(c *Config) { c.Keys = nil }, "Keys"},
		{"fail/no-responders", func(c *Config) { c.Responders = nil }, "Responders"},
		{"fail/base-url", func(c *Config) { c.BaseURL = "ftp://x" }, "BaseURL"},
		{"fail/negative", func(c *Config) { c.Coalesce = -1 }, "Coalesce"},
		{"fail/tiny", func(c *Config) { c.OCSPValidity = time.Millisecond }, "at least one second"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.edit(&cfg)
			if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want an error about %s", err, tc.want)
			}
		})
	}
	// Two services cannot share a registry: the metrics collide.
	if _, err := New(Config{Store: e.st, Keys: e.keys, Responders: e.resp, Registerer: e.reg}); err == nil {
		t.Error("second service on one registry: no error")
	}
}
