package authz

import (
	"context"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/store"
	"github.com/trustgate/trustgate/internal/store/sqlite"
)

// bootstrapEnv is a Bootstrap on a real SQLite store holding one CA, with a
// clock the test moves.
func bootstrapEnv(t *testing.T) (*Bootstrap, *sqlite.DB, *time.Time) {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	if err := st.CreateCA(context.Background(), &store.CA{ID: "ca-1", Name: "issuing", State: store.CAActive,
		KeyType: "ec-p256", Subject: "CN=issuing", PathLen: -1, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	return NewBootstrap(st, func() time.Time { return now }), st, &now
}

func TestBootstrapLifecycle(t *testing.T) {
	b, st, now := bootstrapEnv(t)
	ctx := context.Background()
	spec := BootstrapSpec{Name: "svc-a", CAID: "ca-1", Profile: "server", SANs: []string{"dns:svc-a.internal"}, CreatedBy: "admin"}
	secret, rec, err := b.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, BootstrapTokenPrefix) || len(secret) < len(BootstrapTokenPrefix)+43 {
		t.Fatalf("secret %q is not a prefixed 256-bit secret", secret)
	}
	if rec.MaxUses != 1 || !rec.ExpiresAt.Equal(now.Add(DefaultBootstrapTTL)) {
		t.Fatalf("defaults: uses %d, expires %s", rec.MaxUses, rec.ExpiresAt)
	}
	stored, err := st.GetBootstrapTokenByHash(ctx, HashToken(secret))
	if err != nil || strings.Contains(string(stored.Hash), secret) {
		t.Fatalf("stored: %+v %v", stored, err)
	}
	got, err := b.Lookup(ctx, secret)
	if err != nil || got.ID != rec.ID {
		t.Fatalf("Lookup: %+v %v", got, err)
	}
	if err := b.Use(ctx, got); err != nil {
		t.Fatalf("first use: %v", err)
	}
	// Single use: the second use and any later lookup are refused.
	if err := b.Use(ctx, got); !fault.Is(err, fault.Unauthenticated) || !strings.Contains(err.Error(), "used up") {
		t.Fatalf("second use: %v, want used up", err)
	}
	if _, err := b.Lookup(ctx, secret); !fault.Is(err, fault.Unauthenticated) || !strings.Contains(err.Error(), "used up") {
		t.Fatalf("lookup after use: %v, want used up", err)
	}

	// Expiry, with the clock moved.
	short, _, err := b.Create(ctx, BootstrapSpec{Name: "svc-b", CAID: "ca-1", Profile: "server", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := b.Lookup(ctx, short)
	if err != nil {
		t.Fatal(err)
	}
	*now = now.Add(time.Minute)
	if _, err := b.Lookup(ctx, short); !fault.Is(err, fault.Unauthenticated) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("lookup at expiry: %v", err)
	}
	// A token looked up just before it expired cannot be spent after.
	if err := b.Use(ctx, tok); !fault.Is(err, fault.Unauthenticated) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("use at expiry: %v", err)
	}

	// Revocation.
	rev, revRec, err := b.Create(ctx, BootstrapSpec{Name: "svc-c", CAID: "ca-1", Profile: "server"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeBootstrapToken(ctx, revRec.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Lookup(ctx, rev); !fault.Is(err, fault.Unauthenticated) || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("lookup of a revoked token: %v", err)
	}

	for name, s := range map[string]string{
		"unknown": BootstrapTokenPrefix + strings.Repeat("A", 43), "api token": TokenPrefix + "abc",
		"overlong": BootstrapTokenPrefix + strings.Repeat("A", 200),
	} {
		if _, err := b.Lookup(ctx, s); !fault.Is(err, fault.Unauthenticated) {
			t.Errorf("%s: %v, want unauthenticated", name, err)
		}
	}
}

func TestBootstrapConcurrentUse(t *testing.T) {
	b, _, _ := bootstrapEnv(t)
	ctx := context.Background()
	secret, _, err := b.Create(ctx, BootstrapSpec{Name: "svc-a", CAID: "ca-1", Profile: "server", Uses: 2})
	if err != nil {
		t.Fatal(err)
	}
	var ok atomic.Int64
	var wg sync.WaitGroup
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := b.Lookup(ctx, secret)
			if err != nil {
				return // already used up when looked up
			}
			if b.Use(ctx, tok) == nil {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 2 {
		t.Fatalf("%d uses of a two-use token succeeded", ok.Load())
	}
}

func TestBootstrapCreateBadSpec(t *testing.T) {
	b, _, _ := bootstrapEnv(t)
	base := BootstrapSpec{Name: "svc-a", CAID: "ca-1", Profile: "server"}
	tests := []struct {
		name string
		mod  func(*BootstrapSpec)
		kind fault.Kind
	}{
		{"fail/no name", func(s *BootstrapSpec) { s.Name = "" }, fault.Invalid},
		{"fail/long name", func(s *BootstrapSpec) { s.Name = strings.Repeat("a", 65) }, fault.Invalid},
		{"fail/ttl too long", func(s *BootstrapSpec) { s.TTL = MaxBootstrapTTL + time.Second }, fault.Invalid},
		{"fail/negative ttl", func(s *BootstrapSpec) { s.TTL = -time.Second }, fault.Invalid},
		{"fail/too many uses", func(s *BootstrapSpec) { s.Uses = MaxBootstrapUses + 1 }, fault.Invalid},
		{"fail/missing CA", func(s *BootstrapSpec) { s.CAID = "nope" }, fault.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base
			tt.mod(&s)
			if _, _, err := b.Create(context.Background(), s); !fault.Is(err, tt.kind) {
				t.Fatalf("Create: %v, want kind %v", err, tt.kind)
			}
		})
	}
}

func TestCheckBinding(t *testing.T) {
	tok := &store.BootstrapToken{Name: "svc-a", Profile: "server", MaxValidity: 24 * time.Hour,
		SANs: []string{"dns:svc-a.internal", "uri:spiffe://example/svc-a", "ip:10.0.0.7"}}
	ok := func() *Issuance {
		return &Issuance{Profile: "server", Subject: map[string][]string{"CN": {"svc-a"}}, DNS: []string{"svc-a.internal"},
			URIs: []string{"spiffe://example/svc-a"}, IPs: []netip.Addr{netip.MustParseAddr("10.0.0.7")}, Validity: time.Hour}
	}
	tests := []struct {
		name string
		mod  func(*Issuance)
		want string // "" for allowed
	}{
		{"ok/all names", func(*Issuance) {}, ""},
		{"ok/subset", func(i *Issuance) { i.URIs, i.IPs = nil, nil }, ""},
		{"ok/max validity", func(i *Issuance) { i.Validity = 24 * time.Hour }, ""},
		{"fail/other common name", func(i *Issuance) { i.Subject["CN"] = []string{"svc-b"} }, `common name "svc-b"`},
		{"fail/no common name", func(i *Issuance) { delete(i.Subject, "CN") }, "without its common name"},
		{"fail/extra subject attribute", func(i *Issuance) { i.Subject["O"] = []string{"Evil"} }, "subject attribute O"},
		{"fail/other DNS", func(i *Issuance) { i.DNS = append(i.DNS, "svc-b.internal") }, `DNS name "svc-b.internal"`},
		{"fail/other URI", func(i *Issuance) { i.URIs = []string{"spiffe://example/svc-b"} }, "URI"},
		{"fail/other IP", func(i *Issuance) { i.IPs = []netip.Addr{netip.MustParseAddr("10.0.0.8")} }, "IP address 10.0.0.8"},
		{"fail/email", func(i *Issuance) { i.Emails = []string{"a@example.com"} }, "email"},
		{"fail/other profile", func(i *Issuance) { i.Profile = "client" }, `profile "client"`},
		{"fail/too long", func(i *Issuance) { i.Validity = 25 * time.Hour }, "lifetime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss := ok()
			tt.mod(iss)
			err := CheckBinding(tok, iss)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !fault.Is(err, fault.Denied) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want a denial naming %s", err, tt.want)
			}
		})
	}
}

// TestBootstrapRefusalNamesTheToken: revoked, used-up and expired tokens
// are refused with their ID and maker for the audit log.
func TestBootstrapRefusalNamesTheToken(t *testing.T) {
	b, st, now := bootstrapEnv(t)
	ctx := context.Background()
	mk := func(name string, ttl time.Duration) (string, *store.BootstrapToken) {
		t.Helper()
		secret, rec, err := b.Create(ctx, BootstrapSpec{Name: name, CAID: "ca-1", Profile: "server", TTL: ttl, CreatedBy: "admin"})
		if err != nil {
			t.Fatal(err)
		}
		return secret, rec
	}
	revoked, revokedRec := mk("svc-r", 0)
	if err := st.RevokeBootstrapToken(ctx, revokedRec.ID); err != nil {
		t.Fatal(err)
	}
	used, usedRec := mk("svc-u", 0)
	if err := b.Use(ctx, usedRec); err != nil {
		t.Fatal(err)
	}
	expired, expiredRec := mk("svc-e", time.Minute)
	*now = now.Add(time.Hour)
	tests := []struct {
		name, secret, id, cn, want string
	}{
		{"ok/revoked", revoked, revokedRec.ID, "svc-r", "revoked"},
		{"ok/used up", used, usedRec.ID, "svc-u", "used up"},
		{"ok/expired", expired, expiredRec.ID, "svc-e", "expired"},
		{"ok/unknown names nothing", BootstrapTokenPrefix + strings.Repeat("A", 43), "", "", "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := b.Lookup(ctx, tt.secret)
			if !fault.Is(err, fault.Unauthenticated) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want Unauthenticated %q", err, tt.want)
			}
			c := fault.CredentialOf(err)
			if tt.id == "" {
				if c != nil {
					t.Fatalf("an unknown token names %+v", c)
				}
				return
			}
			wantAbout := `bootstrap token for "` + tt.cn + `", made by principal admin`
			if c == nil || c.Actor != "bootstrap-token:"+tt.id || c.About != wantAbout {
				t.Fatalf("credential = %+v", c)
			}
		})
	}
}
