package authz_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/authz"
	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/store"
	"github.com/trustgate/trustgate/internal/store/sqlite"
)

func newService(t *testing.T, limits map[string]authz.RateLimit, now func() time.Time) *authz.Service {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "tg.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return authz.New(authz.Config{Store: st, Limits: limits, Now: now})
}

func TestRateLimit(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s := newService(t, map[string]authz.RateLimit{"cert:Issue": {Rate: 2, Burst: 3}}, clock)
	ctx := context.Background()
	if _, err := s.EnsureAdmin(ctx, "admin"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreatePrincipal(ctx, authz.NewPrincipal{Name: "other", Policies: []string{authz.AdminPolicy}}); err != nil {
		t.Fatal(err)
	}
	issue := func(who string) error {
		return s.Authorize(ctx, authz.Query{Principal: who, Action: "cert:Issue", Resource: "ca/x",
			Issuance: &authz.Issuance{Profile: "client", Validity: time.Hour}})
	}
	for i := range 3 {
		if err := issue("admin"); err != nil {
			t.Fatalf("call %d within the burst: %v", i, err)
		}
	}
	err := issue("admin")
	if fault.KindOf(err) != fault.TooManyRequests {
		t.Fatalf("over the burst: %v, want too many requests", err)
	}
	if d := fault.RetryAfterOf(err); d <= 0 || d > time.Second {
		t.Errorf("retry after %s, want (0, 500ms]", d)
	}
	// Buckets are per principal, and per action.
	if err := issue("other"); err != nil {
		t.Errorf("another principal is limited by admin's bucket: %v", err)
	}
	if err := s.Authorize(ctx, authz.Query{Principal: "admin", Action: "cert:Revoke", Resource: "ca/x"}); err != nil {
		t.Errorf("an unlimited action is limited: %v", err)
	}
	// A refused call takes no token: after half a second one is back.
	now = now.Add(500 * time.Millisecond)
	if err := issue("admin"); err != nil {
		t.Errorf("after the refill: %v", err)
	}
	if err := issue("admin"); fault.KindOf(err) != fault.TooManyRequests {
		t.Errorf("bucket did not empty again: %v", err)
	}
}

func TestDeniedErrorHidesPolicy(t *testing.T) {
	s := newService(t, nil, nil)
	ctx := context.Background()
	if _, _, err := s.PutPolicy(ctx, "secret-policy", []byte(`{"statements":[{"sid":"only-secret-names","effect":"allow","actions":["cert:Issue"],"resources":["ca/x"],"conditions":{"dns_names":["*.hidden.example"]}}]}`)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreatePrincipal(ctx, authz.NewPrincipal{Name: "p", Policies: []string{"secret-policy"}}); err != nil {
		t.Fatal(err)
	}
	err := s.Authorize(ctx, authz.Query{Principal: "p", Action: "cert:Issue", Resource: "ca/x",
		Issuance: &authz.Issuance{Profile: "client", DNS: []string{"a.example"}}})
	var de *authz.DeniedError
	if !errors.As(err, &de) || fault.KindOf(err) != fault.Denied {
		t.Fatalf("err = %v", err)
	}
	if msg := err.Error(); msg != `principal "p" is not allowed to cert:Issue on ca/x` {
		t.Errorf("message %q", msg)
	}
	if de.Decision.Reason == "" {
		t.Error("the decision for the audit log is empty")
	}
	// Disabled principals can do nothing.
	if _, err := s.UpdatePrincipal(ctx, "p", func(p *store.Principal) error { p.Disabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.AuthorizeAny(ctx, "p", "cert:Issue"); fault.KindOf(err) != fault.Denied {
		t.Errorf("disabled principal: %v", err)
	}
}

// countingStore counts principal, token and access-generation reads of a
// real store.
type countingStore struct {
	authz.AccessStore
	reads, tokenReads, gens int
}

func (c *countingStore) GetPrincipal(ctx context.Context, name string) (*store.Principal, error) {
	c.reads++
	return c.AccessStore.GetPrincipal(ctx, name)
}

func (c *countingStore) GetTokenByHash(ctx context.Context, hash []byte) (*store.Token, error) {
	c.tokenReads++
	return c.AccessStore.GetTokenByHash(ctx, hash)
}

func (c *countingStore) AccessGeneration(ctx context.Context) (int64, error) {
	c.gens++
	return c.AccessStore.AccessGeneration(ctx)
}

// TestPoliciesFollowTheGeneration: a request reads the access generation
// once, and the principal's policies only when the generation moved since
// they were last read; a change, whether made through the service or
// straight in the database, applies to the next request.
func TestPoliciesFollowTheGeneration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tg.db")
	st, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cs := &countingStore{AccessStore: st}
	s := authz.New(authz.Config{Store: cs})
	ctx := context.Background()
	if _, err := s.EnsureAdmin(ctx, "admin"); err != nil {
		t.Fatal(err)
	}
	secret, err := s.Tokens.Create(ctx, "admin", 0)
	if err != nil {
		t.Fatal(err)
	}
	request := func() error {
		t.Helper()
		req := authz.WithRequestMemo(ctx)
		p, err := s.Authenticate(req, secret)
		if err != nil {
			return err
		}
		if err := s.AuthorizeAny(req, p, "cert:Issue"); err != nil {
			return err
		}
		return s.Authorize(req, authz.Query{Principal: p, Action: "cert:Issue", Resource: "ca/x"})
	}
	check := func(what string, wantErr fault.Kind, reads, tokenReads, gens int) {
		t.Helper()
		*cs = countingStore{AccessStore: st}
		err := request()
		if (wantErr == 0) != (err == nil) || (err != nil && fault.KindOf(err) != wantErr) {
			t.Errorf("%s: %v, want kind %v", what, err, wantErr)
		}
		if cs.reads != reads || cs.tokenReads != tokenReads || cs.gens != gens {
			t.Errorf("%s: %d principal, %d token and %d generation reads, want %d, %d, %d",
				what, cs.reads, cs.tokenReads, cs.gens, reads, tokenReads, gens)
		}
	}
	check("first request", 0, 1, 1, 1)
	check("same generation", 0, 0, 0, 1)
	if _, err := s.UpdatePrincipal(ctx, "admin", func(p *store.Principal) error { p.Disabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	check("after disabling", fault.Denied, 1, 1, 1)

	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	if _, err := raw.Exec("UPDATE principals SET disabled = 0 WHERE name = 'admin'"); err != nil {
		t.Fatal(err)
	}
	check("after enabling in the database", 0, 1, 1, 1)
	if _, err := raw.Exec("UPDATE tokens SET revoked = 1"); err != nil {
		t.Fatal(err)
	}
	check("after revoking the token in the database", fault.Unauthenticated, 0, 1, 1)
}
