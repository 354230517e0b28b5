package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const gatewayDoc = "../../docs/gateway.md"

// docExample returns the first yaml block of docs/gateway.md.
func docExample(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(gatewayDoc)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindSubmatch(b)
	if m == nil {
		t.Fatal("no yaml block in docs/gateway.md")
	}
	return string(m[1])
}

func writeYAML(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The documented example loads (unknown keys are errors) and validates.
func TestGatewayDocExample(t *testing.T) {
	cfg, err := LoadGateway(writeYAML(t, docExample(t)), envMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the documented example does not validate: %v", err)
	}
	if len(cfg.Listeners) < 2 || cfg.Listeners[0].MTLS.Mode != MTLSVerify {
		t.Fatalf("listeners %+v", cfg.Listeners)
	}
	if !cfg.IssuesCertificates() {
		t.Fatal("the documented example has no listener with certificate.issue")
	}
}

const minimal = `
listeners:
  - name: public
    address: 127.0.0.1:8443
    certificate: {cert_file: s.pem, key_file: s.key}
    mtls:
      mode: verify
      trust_store: {ca_file: ca.pem}
    routes:
      - backend: {url: "http://127.0.0.1:8080"}
`

func TestLoadGatewayDefaultsAndEnv(t *testing.T) {
	cfg, err := LoadGateway(writeYAML(t, minimal), envMap(map[string]string{
		"TRUSTGATE_GATEWAY_METRICS_LISTEN":       "127.0.0.1:9100",
		"TRUSTGATE_GATEWAY_TIMEOUTS_READ_HEADER": "3s",
		"TRUSTGATE_GATEWAY_MAX_HEADER_BYTES":     "8192",
		"TRUSTGATE_GATEWAY_LOG_LEVEL":            "debug",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.MetricsListen != "127.0.0.1:9100" || time.Duration(cfg.Timeouts.ReadHeader) != 3*time.Second || cfg.MaxHeaderBytes != 8192 || cfg.Log.Level != "debug" {
		t.Errorf("env not applied: %+v", cfg)
	}
	l := cfg.Listeners[0]
	m := l.MTLS
	if l.SecurityPolicy != PolicyCompatible || m.MaxChainDepth != 4 || m.MaxCertSize != 16384 || m.Headers != HeadersALB ||
		m.TrustStore.StaleCRLPolicy != StaleCRLFailClosed || time.Duration(m.TrustStore.CRLRefresh) != 5*time.Minute {
		t.Errorf("listener defaults: %+v", l)
	}
	r := l.Routes[0]
	if r.PathPrefix != "/" || r.Name != "*/" || time.Duration(r.Backend.Timeout) != 30*time.Second {
		t.Errorf("route defaults: %+v", r)
	}
	if cfg.ConnectionLog != "stderr" || cfg.AccessLog != "stderr" || time.Duration(cfg.Timeouts.Idle) != 2*time.Minute || time.Duration(cfg.Timeouts.Shutdown) != 30*time.Second ||
		time.Duration(cfg.ControlPlane.PollInterval) != time.Second {
		t.Errorf("top-level defaults: %+v", cfg)
	}
	// Defaults are idempotent and do not write through to the caller's slices.
	before := cfg.Listeners[0].Routes[0]
	copyCfg := cfg
	copyCfg.Listeners[0].Routes[0].Name = ""
	copyCfg.ApplyDefaults()
	if cfg.Listeners[0].Routes[0].Name != "" || copyCfg.Listeners[0].Routes[0].Name != before.Name {
		t.Errorf("ApplyDefaults changed shared state")
	}
}

func TestLoadGatewayErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		env        map[string]string
		want       string
	}{
		{"fail/unknown-key", minimal + "extra: 1\n", nil, "field extra not found"},
		{"fail/unknown-nested-key", strings.Replace(minimal, "mode: verify", "mode: verify\n      verfiy: true", 1), nil, "field verfiy not found"},
		{"fail/bad-duration", minimal + "timeouts: {read: soon}\n", nil, "soon"},
		{"fail/bad-env", minimal, map[string]string{"TRUSTGATE_GATEWAY_MAX_HEADER_BYTES": "lots"}, "TRUSTGATE_GATEWAY_MAX_HEADER_BYTES"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadGateway(writeYAML(t, tc.yaml), envMap(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := LoadGateway("", nil); err == nil {
		t.Error("no file accepted")
	}
	if _, err := LoadGateway(filepath.Join(t.TempDir(), "missing.yaml"), nil); err == nil {
		t.Error("missing file accepted")
	}
}

func validGateway() Gateway {
	g := Gateway{
		Listeners: []GatewayListener{{
			Name: "public", Address: "127.0.0.1:8443",
			Certificate: GatewayCertificate{CertFile: "s.pem", KeyFile: "s.key"},
			MTLS:        GatewayMTLS{Mode: MTLSVerify, TrustStore: GatewayTrustStore{CAFile: "ca.pem"}},
			Routes: []GatewayRoute{
				{Backend: GatewayBackend{URL: "http://127.0.0.1:8080"}},
				{Host: "api.example.com", PathPrefix: "/v1/", Backend: GatewayBackend{URL: "https://10.0.0.1:8443/base", CAFile: "b.pem"},
					Allow: GatewayAllow{URIPrefixes: []string{"spiffe://prod.internal/ns/a/"}, DNS: []string{"*.prod.internal"}}},
			},
		}},
	}
	g.ApplyDefaults()
	return g
}

func TestGatewayValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Gateway)
		want []string // each must appear; empty means valid
	}{
		{"ok/valid", func(*Gateway) {}, nil},
		{"ok/passthrough", func(g *Gateway) {
			g.Listeners[0].MTLS = GatewayMTLS{Mode: MTLSPassthrough, Headers: HeadersALB, MaxChainDepth: 4, MaxCertSize: 16384}
			g.Listeners[0].Routes[1].Allow = GatewayAllow{}
		}, nil},
		{"fail/no-listeners", func(g *Gateway) { g.Listeners = nil }, []string{"listeners: at least one"}},
		{"fail/listener-fields", func(g *Gateway) {
			l := &g.Listeners[0]
			l.Name, l.Address, l.Certificate, l.SecurityPolicy = "Bad Name", "nowhere", GatewayCertificate{}, "legacy"
		}, []string{"listeners[0].name", "listeners[0].address", "listeners[0].certificate.cert_file", "listeners[0].certificate.key_file", "listeners[0].security_policy"}},
		{"fail/duplicates", func(g *Gateway) {
			g.Listeners = append(g.Listeners, g.Listeners[0])
			g.MetricsListen = "127.0.0.1:8443"
		}, []string{"listeners[1].name", "listeners[1].address", "also the address of metrics_listen"}},
		{"fail/mode-missing", func(g *Gateway) { g.Listeners[0].MTLS.Mode = "" }, []string{"listeners[0].mtls.mode: is required"}},
		{"fail/verify-without-ca", func(g *Gateway) { g.Listeners[0].MTLS.TrustStore.CAFile = "" }, []string{"listeners[0].mtls.trust_store.ca_file"}},
		{"fail/trust-store-fields", func(g *Gateway) {
			ts := &g.Listeners[0].MTLS.TrustStore
			ts.CRLURLs, ts.CRLRefresh, ts.StaleCRLPolicy = []string{"ftp://x/y.crl"}, Duration(500*time.Millisecond), "maybe"
		}, []string{"trust_store.crl_urls[0]", "trust_store.crl_refresh", "trust_store.stale_crl_policy"}},
		{"fail/limits", func(g *Gateway) {
			g.Listeners[0].MTLS.MaxChainDepth, g.Listeners[0].MTLS.MaxCertSize, g.Listeners[0].MTLS.Headers = 11, 100, "json"
		}, []string{"mtls.max_chain_depth", "mtls.max_cert_size", "mtls.headers"}},
		{"fail/verify-options-in-passthrough", func(g *Gateway) {
			m := &g.Listeners[0].MTLS
			m.Mode, m.IgnoreClientCertificateExpiry, m.AdvertiseCANames, m.Headers = MTLSPassthrough, true, true, HeadersXFCC
		}, []string{"mtls.trust_store: is only used in verify mode", "ignore_client_certificate_expiry", "advertise_ca_names", "mtls.headers", "routes[1].allow: identity rules need mtls.mode verify"}},
		{"fail/routes", func(g *Gateway) {
			r := &g.Listeners[0].Routes[1]
			r.Host, r.PathPrefix = "API.example.com:443", "/v1/../x"
			r.Backend = GatewayBackend{URL: "http://u:p@h/x?q", ClientCertFile: "c.pem", Timeout: Duration(2 * time.Minute)}
			r.Allow = GatewayAllow{Subjects: []string{" "}, DNS: []string{"*.*.x"}, URIPrefixes: []string{"spiffe://prod"}}
		}, []string{"routes[1].host", "routes[1].path_prefix", "routes[1].backend.url", "routes[1].backend: ca_file and client certificates need an https",
			"client_cert_file and client_key_file go together", "routes[1].backend.timeout", "allow.subjects[0]", "allow.dns[0]", "allow.uri_prefixes[0]"}},
		{"fail/no-routes-and-duplicate", func(g *Gateway) {
			g.Listeners = append(g.Listeners, g.Listeners[0])
			g.Listeners[1].Name, g.Listeners[1].Address = "b", "127.0.0.1:8444"
			g.Listeners[0].Routes = nil
			g.Listeners[1].Routes = append(g.Listeners[1].Routes, g.Listeners[1].Routes[0])
		}, []string{"listeners[0].routes: at least one", "listeners[1].routes[2]: same host and path_prefix as routes[0]"}},
		{"ok/named-trust-store", func(g *Gateway) {
			g.Listeners[0].MTLS.TrustStore.CAFile = ""
			g.Listeners[0].MTLS.TrustStore.Name = "partners"
			g.ControlPlane = GatewayControlPlane{Address: "https://cp.internal:9443", TokenFile: "token", PollInterval: Duration(time.Second),
				SnapshotDir: "/var/lib/trustgate-gateway", MaxStaleness: Duration(time.Hour)}
		}, nil},
		{"fail/max-staleness-below-three-polls", func(g *Gateway) {
			g.Listeners[0].MTLS.TrustStore.CAFile = ""
			g.Listeners[0].MTLS.TrustStore.Name = "partners"
			g.ControlPlane = GatewayControlPlane{Address: "https://cp.internal:9443", TokenFile: "token", PollInterval: Duration(time.Second),
				MaxStaleness: Duration(2 * time.Second)}
		}, []string{"control_plane.max_staleness: 2s is outside 3 poll intervals..366d"}},
		{"ok/enroll-and-long-poll", func(g *Gateway) {
			g.Listeners[0].MTLS.TrustStore.CAFile = ""
			g.Listeners[0].MTLS.TrustStore.Name = "partners"
			g.ControlPlane = GatewayControlPlane{Address: "https://cp.internal:9443", PollInterval: Duration(time.Second),
				MaxStaleness: Duration(time.Hour), LongPoll: Duration(30 * time.Second),
				Enroll: GatewayEnroll{TokenFile: "bt", CertFile: "gw.crt", KeyFile: "gw.key", CommonName: "gw-1"}}
		}, nil},
		{"fail/enroll-incomplete-long-poll-too-long", func(g *Gateway) {
			g.Listeners[0].MTLS.TrustStore.CAFile = ""
			g.Listeners[0].MTLS.TrustStore.Name = "partners"
			g.ControlPlane = GatewayControlPlane{Address: "https://cp.internal:9443", PollInterval: Duration(time.Second),
				MaxStaleness: Duration(time.Hour), LongPoll: Duration(time.Minute),
				Enroll: GatewayEnroll{TokenFile: "bt", KeyType: "dsa", Validity: "forever"}}
		}, []string{"control_plane.enroll: cert_file and key_file are required", "control_plane.enroll.common_name: is required",
			"control_plane.long_poll: 1m0s is outside 0..50s", "validity"}},
		{"ok/control-plane-unused", func(g *Gateway) {
			g.ControlPlane.Address = "https://cp.internal:9443"
		}, nil},
		{"fail/named-trust-store-without-control-plane", func(g *Gateway) {
			g.Listeners[0].MTLS.TrustStore = GatewayTrustStore{Name: "partners", CRLRefresh: Duration(time.Minute), StaleCRLPolicy: StaleCRLFailOpen}
		}, []string{"control_plane.address: is required: listeners[0].mtls.trust_store.name names a trust store", "control_plane.token_file: or enroll is required"}},
		{"fail/named-trust-store-and-files", func(g *Gateway) {
			ts := &g.Listeners[0].MTLS.TrustStore
			ts.Name, ts.CRLURLs = "Partners", []string{"http://x/y.crl"}
			g.ControlPlane = GatewayControlPlane{Address: "http://cp.internal", TokenFile: "t", PollInterval: Duration(10 * time.Millisecond)}
		}, []string{"trust_store.name: \"Partners\" is not a trust store name", "trust_store.name: excludes ca_file, crl_files and crl_urls",
			"control_plane.address: \"http://cp.internal\" must be https://", "control_plane.poll_interval: 10ms is outside"}},
		{"fail/named-trust-store-in-passthrough", func(g *Gateway) {
			m := &g.Listeners[0].MTLS
			m.Mode, m.TrustStore = MTLSPassthrough, GatewayTrustStore{Name: "partners"}
			g.Listeners[0].Routes[1].Allow = GatewayAllow{}
		}, []string{"mtls.trust_store: is only used in verify mode"}},
		{"ok/issue", func(g *Gateway) {
			g.Listeners[0].Certificate.Issue = GatewayIssue{CA: "issuing", CommonName: "api.example.internal",
				DNS: []string{"api.example.internal", "*.api.example.internal"}, IP: []string{"10.0.0.1", "::1"}, Validity: "30d", RenewAt: 0.5}
			g.ControlPlane = GatewayControlPlane{Address: "https://cp.internal:9443", PollInterval: Duration(time.Second), MaxStaleness: Duration(time.Hour),
				Enroll: GatewayEnroll{TokenFile: "bt", CertFile: "gw.crt", KeyFile: "gw.key", CommonName: "gw-1"}}
			g.ApplyDefaults()
		}, nil},
		{"ok/issue-ip-only", func(g *Gateway) {
			g.Listeners[0].Certificate.Issue = GatewayIssue{CA: "issuing", IP: []string{"192.0.2.1"}, KeyType: "ed25519"}
			g.ControlPlane = GatewayControlPlane{Address: "https://cp.internal:9443", TokenFile: "t", PollInterval: Duration(time.Second), MaxStaleness: Duration(time.Hour)}
			g.ApplyDefaults()
		}, nil},
		{"fail/issue-without-control-plane", func(g *Gateway) {
			g.Listeners[0].Certificate.Issue = GatewayIssue{CA: "issuing", DNS: []string{"api"}}
			g.ApplyDefaults()
		}, []string{"control_plane.address: is required: listeners[0].certificate.issue has its certificate issued by the control plane",
			"control_plane.token_file: or enroll is required"}},
		{"fail/issue-without-ca", func(g *Gateway) {
			g.Listeners[0].Certificate.Issue = GatewayIssue{DNS: []string{"api.example.internal"}}
		}, []string{"listeners[0].certificate.issue.ca: is required"}},
		{"fail/issue-fields", func(g *Gateway) {
			c := &g.Listeners[0].Certificate
			c.FollowRenewals, c.FollowInterval = true, Duration(time.Minute)
			c.Issue = GatewayIssue{CA: "Issuing CA", Profile: "Server!", CommonName: strings.Repeat("x", 65),
				DNS: []string{"API.example.internal", "a..b"}, IP: []string{"10.0.0.300", "fe80::1%eth0"}, KeyType: "dsa", Validity: "forever", RenewAt: 1.5}
			g.ControlPlane = GatewayControlPlane{Address: "https://cp.internal:9443", TokenFile: "t", PollInterval: Duration(time.Second), MaxStaleness: Duration(time.Hour)}
		}, []string{"certificate.issue.ca: \"Issuing CA\" is not a CA name", "certificate.issue.profile: \"Server!\" is not a profile name",
			"certificate.follow_renewals: excludes issue", "certificate.issue.common_name: is 65 characters",
			"issue.dns[0]: \"API.example.internal\" is not a lower-case DNS name", "issue.dns[1]", "issue.ip[0]: \"10.0.0.300\" is not an IP address", "issue.ip[1]",
			"issue.key_type: \"dsa\" is not one of ec-p256", "issue.validity", "issue.renew_at: 1.5 must be between 0 and 1"}},
		{"fail/issue-no-name-short-validity", func(g *Gateway) {
			g.Listeners[0].Certificate.Issue = GatewayIssue{CA: "issuing", Validity: "30s"}
			g.ControlPlane = GatewayControlPlane{Address: "https://cp.internal:9443", TokenFile: "t", PollInterval: Duration(time.Second), MaxStaleness: Duration(time.Hour)}
			g.ApplyDefaults()
		}, []string{"certificate.issue: dns or ip is required", "issue.validity: 30s is under a minute"}},
		{"fail/issue-shared-files", func(g *Gateway) {
			g.Listeners[0].Certificate.Issue = GatewayIssue{CA: "issuing", DNS: []string{"a"}}
			g.Listeners = append(g.Listeners, g.Listeners[0])
			g.Listeners[1].Name, g.Listeners[1].Address = "b", "127.0.0.1:8444"
			g.Listeners[1].Certificate.KeyFile = g.Listeners[1].Certificate.CertFile
			g.ControlPlane = GatewayControlPlane{Address: "https://cp.internal:9443", TokenFile: "t", PollInterval: Duration(time.Second), MaxStaleness: Duration(time.Hour)}
			g.ApplyDefaults()
		}, []string{"listeners[1].certificate: s.pem is also written for listeners[0]", "listeners[1].certificate.key_file: is cert_file"}},
		{"fail/issue-files-are-enroll-files", func(g *Gateway) {
			c := &g.Listeners[0].Certificate
			c.Issue = GatewayIssue{CA: "issuing", DNS: []string{"a"}}
			g.ControlPlane = GatewayControlPlane{Address: "https://cp.internal:9443", PollInterval: Duration(time.Second), MaxStaleness: Duration(time.Hour),
				Enroll: GatewayEnroll{TokenFile: "bt", CertFile: "./" + c.CertFile, KeyFile: c.KeyFile, CommonName: "gw-1"}}
			g.ApplyDefaults()
		}, []string{"control_plane.enroll.cert_file: ./s.pem is also written for listeners[0].certificate.issue: each needs files of its own",
			"control_plane.enroll.key_file: s.key is also written for listeners[0].certificate.issue"}},
		{"fail/top-level", func(g *Gateway) {
			g.Timeouts.Read, g.MaxHeaderBytes, g.Log.Level, g.ConnectionLog = 0, 10, "loud", ""
		}, []string{"timeouts.read: must be positive", "max_header_bytes", "log.level", "connection_log"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := validGateway()
			tt.mod(&g)
			err := g.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// Every environment override is documented in docs/gateway.md.
func TestGatewayEnvVarsDocumented(t *testing.T) {
	b, err := os.ReadFile(gatewayDoc)
	if err != nil {
		t.Fatal(err)
	}
	vars := GatewayEnvVars()
	if len(vars) < 10 {
		t.Fatalf("only %d variables", len(vars))
	}
	for _, v := range vars {
		if !strings.Contains(string(b), "`"+v.Name+"`") {
			t.Errorf("%s (%s) is not in docs/gateway.md", v.Name, v.Key)
		}
		if strings.HasPrefix(v.Key, "listeners") {
			t.Errorf("listeners have no environment override, got %s", v.Name)
		}
	}
}
