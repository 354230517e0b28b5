package authz

import (
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

func loadPolicy(t *testing.T, path string) *Policy {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePolicy(b)
	if err != nil {
		t.Fatalf("ParsePolicy(%s): %v", path, err)
	}
	return p
}

func TestEvaluate(t *testing.T) {
	team := NamedPolicy{Name: "team", Policy: loadPolicy(t, "testdata/team.yaml")}
	denyAll, err := ParsePolicy([]byte(`{"statements":[{"effect":"deny","actions":["cert:Revoke"],"resources":["*"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := ParsePolicy([]byte("statements:\n- {effect: allow, actions: ['*'], resources: ['*']}\n"))
	if err != nil {
		t.Fatal(err)
	}
	ok := func() *Issuance {
		return &Issuance{Profile: "client", DNS: []string{"api.svc.internal"}, KeyType: "ec-p256", Validity: 24 * time.Hour,
			URIs: []string{"spiffe://prod.example/payments/api"}, IPs: []netip.Addr{netip.MustParseAddr("10.20.1.2")},
			Subject: map[string][]string{"CN": {"api"}, "O": {"Payments"}}}
	}
	with := func(f func(*Issuance)) *Issuance { i := ok(); f(i); return i }
	tests := []struct {
		name     string
		policies []NamedPolicy
		q        Query
		allowed  bool
		stmt     string
		reason   string // a substring of Decision.Reason
	}{
		{"allow/issue within all conditions", []NamedPolicy{team}, Query{Action: "cert:Issue", Resource: "ca/issuing", Issuance: ok()}, true, "issue-clients", ""},
		{"allow/deep subdomain", []NamedPolicy{team}, Query{Action: "cert:Issue", Resource: "ca/issuing",
			Issuance: with(func(i *Issuance) { i.DNS = []string{"a.b.svc.internal"} })}, true, "issue-clients", ""},
		{"allow/wildcard resource", []NamedPolicy{team}, Query{Action: "cert:List", Resource: "*"}, true, "read-own", ""},
		{"allow/admin wildcard action", []NamedPolicy{{Name: "admin", Policy: admin}}, Query{Action: "truststore:Update", Resource: "truststore/edge"}, true, "#1", ""},
		{"deny/default: unlisted action", []NamedPolicy{team}, Query{Action: "ca:Create", Resource: "ca/*"}, false, "", "default deny"},
		{"deny/other CA", []NamedPolicy{team}, Query{Action: "cert:Issue", Resource: "ca/other", Issuance: ok()}, false, "", "default deny"},
		{"deny/profile", []NamedPolicy{team}, Query{Action: "cert:Issue", Resource: "ca/issuing",
			Issuance: with(func(i *Issuance) { i.Profile = "server" })}, false, "", `profile "server"`},
		{"deny/dns outside", []NamedPolicy{team}, Query{Action: "cert:Issue", Resource: "ca/issuing",
			Issuance: with(func(i *Issuance) { i.DNS = []string{"evil.example"} })}, false, "", `"evil.example"`},
		{"deny/apex is not a subdomain", []NamedPolicy{team}, Query{Action: "cert:Issue", Resource: "ca/issuing",
			Issuance: with(func(i *Issuance) { i.DNS = []string{"svc.internal"} })}, false, "", `"svc.internal"`},
		{"deny/suffix trick", []NamedPolicy{team}, Query{Action: "cert:Issue", Resource: "ca/issuing",
			Issuance: with(func(i *Issuance) { i.DNS = []string{"evilsvc.internal"} })}, false, "", "evilsvc"},
		{"deny/uri outside", []NamedPolicy{team}, Query{Action: "cert:Issue", Resource: "ca/issuing",
			Issuance: with(func(i *Issuance) { i.URIs = []string{"spiffe://prod.example/billing/x"} })}, false, "", "URI"},
		{"deny/ip outside", []NamedPolicy{team}, Query{Action: "cert:Issue", Resource: "ca/issuing",
			Issuance: with(func(i *Issuance) { i.IPs = []netip.Addr{netip.MustParseAddr("10.21.0.1")} })}, false, "", "IP address"},
		{"deny/email kind not listed", []NamedPolicy{team}, Query{Action: "cert:Issue", Resource: "ca/issuing",
			Issuance: with(func(i *Issuance) { i.Emails = []string{"a@b.example"} })}, false, "", "email"},
		{"deny/subject", []NamedPolicy{team}, Query{Action: "cert:Issue", Resource: "ca/issuing",
			Issuance: with(func(i *Issuance) { i.Subject["O"] = []string{"Evil"} })}, false, "", "subject O"},
		{"deny/key type", []NamedPolicy{team}, Query{Action: "cert:Issue", Resource: "ca/issuing",
			Issuance: with(func(i *Issuance) { i.KeyType = "rsa-2048" })}, false, "", "key type"},
		{"deny/validity over", []NamedPolicy{team}, Query{Action: "cert:Issue", Resource: "ca/issuing",
			Issuance: with(func(i *Issuance) { i.Validity = 48 * time.Hour })}, false, "", "over the limit"},
		{"deny/validity missing", []NamedPolicy{team}, Query{Action: "cert:Issue", Resource: "ca/issuing",
			Issuance: with(func(i *Issuance) { i.Validity = 0 })}, false, "", "not stated"},
		{"deny/conditions without facts", []NamedPolicy{team}, Query{Action: "cert:Issue", Resource: "ca/issuing"}, false, "", "not an issuance"},
		{"deny/explicit deny wins over allow", []NamedPolicy{team}, Query{Action: "cert:Issue", Resource: "ca/issuing",
			Issuance: with(func(i *Issuance) { i.DNS = []string{"api.svc.internal", "lb.ingress.svc.internal"} })}, false, "never-ingress", "explicitly denied"},
		{"deny/explicit deny in another policy wins", []NamedPolicy{{Name: "admin", Policy: admin}, {Name: "no-revoke", Policy: denyAll}},
			Query{Action: "cert:Revoke", Resource: "ca/issuing"}, false, "#1", `policy "no-revoke"`},
		{"deny/no policies", nil, Query{Action: "cert:Read", Resource: "ca/issuing"}, false, "", "default deny"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Evaluate(tt.policies, tt.q)
			if d.Allowed != tt.allowed {
				t.Fatalf("Allowed = %v, want %v (%s)", d.Allowed, tt.allowed, d.Reason)
			}
			if tt.stmt != "" && d.Statement != tt.stmt {
				t.Errorf("Statement = %q, want %q", d.Statement, tt.stmt)
			}
			if !strings.Contains(d.Reason, tt.reason) {
				t.Errorf("Reason = %q, want it to mention %q", d.Reason, tt.reason)
			}
		})
	}
}

func TestParsePolicyRefuses(t *testing.T) {
	tests := map[string]string{
		"empty":             `{}`,
		"no statements":     `{"statements": []}`,
		"bad effect":        `{"statements":[{"effect":"maybe","actions":["*"],"resources":["*"]}]}`,
		"unknown action":    `{"statements":[{"effect":"allow","actions":["cert:Isue"],"resources":["*"]}]}`,
		"no resources":      `{"statements":[{"effect":"allow","actions":["*"]}]}`,
		"bad resource":      `{"statements":[{"effect":"allow","actions":["*"],"resources":["../etc"]}]}`,
		"unknown field":     `{"statements":[{"effect":"allow","actions":["*"],"resources":["*"],"conditons":{}}]}`,
		"unknown condition": `{"statements":[{"effect":"allow","actions":["*"],"resources":["*"],"conditions":{"dns":["a"]}}]}`,
		"bad cidr":          `{"statements":[{"effect":"allow","actions":["*"],"resources":["*"],"conditions":{"ip_ranges":["10.0.0.0/33"]}}]}`,
		"bad dns pattern":   `{"statements":[{"effect":"allow","actions":["*"],"resources":["*"],"conditions":{"dns_names":["a.*.example"]}}]}`,
		"bad validity":      `{"statements":[{"effect":"allow","actions":["*"],"resources":["*"],"conditions":{"max_validity":"soon"}}]}`,
		"bad subject attr":  `{"statements":[{"effect":"allow","actions":["*"],"resources":["*"],"conditions":{"subject":{"SERIAL":["1"]}}}]}`,
		"not yaml":          "statements: [",
		"huge":              strings.Repeat(" ", maxPolicyBytes+1),
	}
	for name, doc := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := ParsePolicy([]byte(doc)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		p, s string
		want bool
	}{
		{"*", "ca/x", true}, {"ca/*", "ca/x", true}, {"ca/*", "truststore/x", false}, {"cert:*", "cert:Issue", true},
		{"ca/team-*-prod", "ca/team-a-prod", true}, {"ca/team-*-prod", "ca/team-a-dev", false}, {"ca/x", "ca/xy", false},
		{"*:Read", "ca:Read", true}, {"*:Read", "ca:ReadX", false},
	}
	for _, tt := range tests {
		if got := globMatch(tt.p, tt.s); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v", tt.p, tt.s, got)
		}
	}
}

func FuzzParsePolicy(f *testing.F) {
	b, _ := os.ReadFile("testdata/team.yaml")
	f.Add(b)
	f.Add([]byte(`{"statements":[{"effect":"allow","actions":["*"],"resources":["*"]}]}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		p, err := ParsePolicy(doc)
		if err != nil {
			return
		}
		// A policy that parses evaluates without panicking and survives
		// its own canonical form.
		Evaluate([]NamedPolicy{{Name: "f", Policy: p}}, Query{Action: "cert:Issue", Resource: "ca/x",
			Issuance: &Issuance{Profile: "client", DNS: []string{"a.b"}, Validity: time.Hour}})
		if _, err := ParsePolicy(p.JSON()); err != nil {
			t.Fatalf("canonical form does not parse: %v", err)
		}
	})
}
