package authz_test

import (
	"context"
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

// countingStore counts principal reads of a real store.
type countingStore struct {
	authz.AccessStore
	reads int
}

func (c *countingStore) GetPrincipal(ctx context.Context, name string) (*store.Principal, error) {
	c.reads++
	return c.AccessStore.GetPrincipal(ctx, name)
}

func TestPoliciesReadOncePerRequest(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "tg.db"))
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
	req := authz.WithRequestMemo(ctx)
	cs.reads = 0
	if err := s.AuthorizeAny(req, "admin", "cert:Issue"); err != nil {
		t.Fatal(err)
	}
	if err := s.Authorize(req, authz.Query{Principal: "admin", Action: "cert:Issue", Resource: "ca/x"}); err != nil {
		t.Fatal(err)
	}
	if cs.reads != 1 {
		t.Errorf("%d principal reads in one request, want 1", cs.reads)
	}
	// The next request reads afresh, so a change applies to it.
	if _, err := s.UpdatePrincipal(ctx, "admin", func(p *store.Principal) error { p.Disabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.AuthorizeAny(authz.WithRequestMemo(ctx), "admin", "cert:Issue"); fault.KindOf(err) != fault.Denied {
		t.Errorf("after disabling, the next request: %v, want denied", err)
	}
}
