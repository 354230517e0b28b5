package authz

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/store/sqlite"
)

func TestTokens(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	tok := NewTokens(st, func() time.Time { return now })
	ctx := context.Background()

	forever, err := tok.Create(ctx, "admin", 0)
	if err != nil {
		t.Fatal(err)
	}
	hour, err := tok.Create(ctx, "ci", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(forever, TokenPrefix) || len(forever) < len(TokenPrefix)+43 {
		t.Fatalf("token %q is not a prefixed 256-bit secret", forever)
	}
	// Only the hash is stored.
	rec, err := st.GetTokenByHash(ctx, HashToken(forever))
	if err != nil || strings.Contains(string(rec.Hash), forever) || rec.Principal != "admin" {
		t.Fatalf("stored record: %+v %v", rec, err)
	}
	tests := []struct {
		name, secret, principal, want string
		at                            time.Time
	}{
		{"ok/admin", forever, "admin", "", now},
		{"ok/before expiry", hour, "ci", "", now.Add(59 * time.Minute)},
		{"fail/expired", hour, "", "expired", now.Add(time.Hour)},
		{"fail/unknown", TokenPrefix + strings.Repeat("A", 43), "", "unknown", now},
		{"fail/no prefix", "hunter2", "", "not a Trustgate API token", now},
		{"fail/overlong", TokenPrefix + strings.Repeat("A", 500), "", "not a Trustgate API token", now},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now = tt.at
			p, err := tok.Authenticate(ctx, tt.secret)
			if tt.want == "" {
				if err != nil || p != tt.principal {
					t.Fatalf("got %q %v", p, err)
				}
				return
			}
			if !fault.Is(err, fault.Unauthenticated) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want Unauthenticated %q", err, tt.want)
			}
			if strings.Contains(err.Error(), tt.secret) && len(tt.secret) > 10 {
				t.Fatal("the error repeats the secret")
			}
		})
	}
}

// TestTokenRefusalNamesTheToken: a token whose secret the caller proved
// is refused with its ID and principal for the audit log, never its
// secret; a secret that proves nothing names nothing.
func TestTokenRefusalNamesTheToken(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	tok := NewTokens(st, func() time.Time { return now })
	ctx := context.Background()
	revokedID, revoked, err := tok.CreateWithID(ctx, "ci", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeToken(ctx, revokedID); err != nil {
		t.Fatal(err)
	}
	expiredID, expired, err := tok.CreateWithID(ctx, "deploy", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, secret, actor, about string
		at                         time.Time
	}{
		{"ok/revoked", revoked, "token:" + revokedID, "API token of principal ci", now},
		{"ok/expired", expired, "token:" + expiredID, "API token of principal deploy", now.Add(time.Hour)},
		{"ok/unknown names nothing", TokenPrefix + strings.Repeat("A", 43), "", "", now},
		{"ok/not a token names nothing", "hunter2", "", "", now},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now = tt.at
			_, err := tok.Authenticate(ctx, tt.secret)
			if !fault.Is(err, fault.Unauthenticated) {
				t.Fatalf("err = %v, want Unauthenticated", err)
			}
			c := fault.CredentialOf(err)
			if tt.actor == "" {
				if c != nil {
					t.Fatalf("a secret that proves nothing names %+v", c)
				}
				return
			}
			if c == nil || c.Actor != tt.actor || c.About != tt.about {
				t.Fatalf("credential = %+v, want %s (%s)", c, tt.actor, tt.about)
			}
			if strings.Contains(c.Actor+c.About+err.Error(), tt.secret) {
				t.Fatal("the refusal carries the secret")
			}
		})
	}
}
