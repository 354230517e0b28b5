package lifecycle

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/ca"
	"github.com/trustgate/trustgate/internal/keystore"
	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/store"
	"github.com/trustgate/trustgate/internal/store/sqlite"
)

func TestRenewalTime(t *testing.T) {
	nb := t0
	na := t0.Add(30 * pki.Day)
	for _, tc := range []struct {
		name       string
		at, jitter float64
		u          float64
		want       time.Time
	}{
		{"ok/two-thirds-no-jitter", 2.0 / 3, 0, 0.9, t0.Add(20 * pki.Day)},
		{"ok/two-thirds-middle-of-jitter", 2.0 / 3, 0.1, 0.5, t0.Add(20 * pki.Day)},
		{"ok/earliest", 2.0 / 3, 0.1, 0, t0.Add(20*pki.Day - 36*time.Hour)},
		{"ok/latest", 0.5, 0.2, 1, t0.Add(18 * pki.Day)},
		{"ok/u-out-of-range-is-clamped", 0.5, 0.2, 7, t0.Add(18 * pki.Day)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := RenewalTime(nb, na, tc.at, tc.jitter, tc.u); !got.Equal(tc.want) {
				t.Errorf("RenewalTime = %s, want %s", got, tc.want)
			}
		})
	}
	// The jitter is a function of the serial alone: every node agrees.
	if JitterOf("5f1c") != JitterOf("5f1c") || JitterOf("5f1c") == JitterOf("5f1d") {
		t.Error("JitterOf is not a stable function of the serial")
	}
	for _, s := range []string{"", "1", "ffffffffffffffffffffffffffffffff"} {
		if u := JitterOf(s); u < 0 || u >= 1 {
			t.Errorf("JitterOf(%q) = %v, outside [0, 1)", s, u)
		}
	}
}

func TestNewManagedRefusesBadPoints(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "tg.db"))
	ev := newService(t, st, &clock{now: t0})
	for _, tc := range []struct {
		name       string
		at, jitter float64
	}{{"fail/at-one", 1, 0}, {"fail/jitter-past-end", 0.9, 0.3}, {"fail/jitter-before-start", 0.05, 0.2}, {"fail/jitter-one", 0.5, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewManaged(ManagedConfig{Store: st, CA: nopRecertifier{}, Events: ev, RenewAt: tc.at, RenewJitter: tc.jitter}); err == nil {
				t.Error("NewManaged accepted it")
			}
		})
	}
}

type nopRecertifier struct{}

func (nopRecertifier) Recertify(context.Context, *store.Certificate) (*ca.Issued, error) {
	return nil, nil
}

// caEnv is a real CA service on a SQLite store, with a root and an
// intermediate, on a clock the test moves.
type caEnv struct {
	st    *sqlite.DB
	ca    *ca.Service
	clock *clock
	ev    *Service
}

var (
	linterOnce sync.Once
	linter     *pki.Linter
)

func newCAEnv(t *testing.T) *caEnv {
	t.Helper()
	linterOnce.Do(func() {
		var err error
		if linter, err = pki.NewLinter(); err != nil {
			t.Fatal(err)
		}
	})
	st := openStore(t, filepath.Join(t.TempDir(), "tg.db"))
	mk := make([]byte, 32)
	rand.Read(mk)
	sealer, err := keystore.New(mk)
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{now: t0}
	svc, err := ca.New(ca.Config{Store: st, Sealer: sealer, Linter: linter, PublicBaseURL: "http://pki.test", Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := svc.CreateCA(ctx, ca.CreateRequest{Name: "root"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateCA(ctx, ca.CreateRequest{Name: "issuing", Parent: "root", Validity: "1y"}); err != nil {
		t.Fatal(err)
	}
	return &caEnv{st: st, ca: svc, clock: c, ev: newService(t, st, c)}
}

// issue issues a server certificate for name from a CSR of a new key.
func (e *caEnv) issue(t *testing.T, name string, managed bool) *ca.Issued {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.CreateCSR(pkix.Name{CommonName: name}, key)
	if err != nil {
		t.Fatal(err)
	}
	is, err := e.ca.Issue(context.Background(), ca.IssueRequest{CA: "issuing", Profile: "server", CSR: csr,
		DNS: []string{name}, Validity: "30d", Managed: managed, Requester: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return is
}

func (e *caEnv) managed(t *testing.T) *Managed {
	t.Helper()
	m, err := NewManaged(ManagedConfig{Store: e.st, CA: e.ca, Events: e.ev, RenewAt: 2.0 / 3, RenewJitter: 0.1, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// due is when c is due for renewal with the renewer's settings.
func due(c *store.Certificate) time.Time {
	return RenewalTime(c.NotBefore, c.NotAfter, 2.0/3, 0.1, JitterOf(c.Serial))
}

func TestManagedRenewal(t *testing.T) {
	e := newCAEnv(t)
	ctx := context.Background()
	old := e.issue(t, "svc-a.internal", true)
	unmanaged := e.issue(t, "svc-b.internal", false)
	m := e.managed(t)

	e.clock.Set(due(old.Record).Add(-time.Second))
	if n, err := m.RenewDue(ctx); err != nil || n != 0 {
		t.Fatalf("before it is due: renewed %d, %v", n, err)
	}
	e.clock.Set(due(old.Record))
	if n, err := m.RenewDue(ctx); err != nil || n != 1 {
		t.Fatalf("when due: renewed %d, %v; want 1", n, err)
	}
	succ, err := e.st.GetSuccessor(ctx, old.Record.CAID, old.Record.Serial)
	if err != nil || succ == "" {
		t.Fatalf("no successor recorded: %q, %v", succ, err)
	}
	if s, _ := e.st.GetSuccessor(ctx, unmanaged.Record.CAID, unmanaged.Record.Serial); s != "" {
		t.Errorf("an unmanaged certificate was renewed by %s", s)
	}
	rec, err := e.st.GetCertificate(ctx, succ)
	if err != nil {
		t.Fatal(err)
	}
	newCert, err := x509.ParseCertificate(rec.DER)
	if err != nil {
		t.Fatal(err)
	}
	// Same identity and the same key: the key is not the server's to change.
	if !publicKeysEqual(newCert.PublicKey, old.Cert.PublicKey) {
		t.Error("the renewed certificate has another public key")
	}
	if newCert.Subject.String() != old.Cert.Subject.String() || len(newCert.DNSNames) != 1 || newCert.DNSNames[0] != "svc-a.internal" {
		t.Errorf("identity changed: %s %v", newCert.Subject, newCert.DNSNames)
	}
	if !rec.Managed || rec.Requester != "managed-renewal-of:"+old.Record.Serial {
		t.Errorf("successor record managed=%v requester=%q", rec.Managed, rec.Requester)
	}
	if life, want := newCert.NotAfter.Sub(e.clock.Now()), 30*pki.Day; life != want {
		t.Errorf("successor lifetime %s, want %s", life, want)
	}
	if ok, _ := e.st.HasEvent(ctx, renewedKey(old.Record.CAID, old.Record.Serial)); !ok {
		t.Error("no certificate.renewed event")
	}
	// Renewed once: later passes leave it alone.
	e.clock.Advance(time.Hour)
	if n, err := m.RenewDue(ctx); err != nil || n != 0 {
		t.Errorf("a second pass renewed %d, %v", n, err)
	}

	// Two nodes racing on the successor renew it once.
	e.clock.Set(due(rec))
	other := e.managed(t)
	var wg sync.WaitGroup
	counts := make([]int, 2)
	for i, r := range []*Managed{m, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := r.RenewDue(ctx)
			if err != nil {
				t.Errorf("node %d: %v", i, err)
			}
			counts[i] = n
		}()
	}
	wg.Wait()
	if counts[0]+counts[1] != 1 {
		t.Errorf("two nodes renewed %v times, want once in all", counts)
	}
}

func TestManagedRenewalFailure(t *testing.T) {
	e := newCAEnv(t)
	ctx := context.Background()
	old := e.issue(t, "svc-a.internal", true)
	m := e.managed(t)
	if _, err := e.ca.SetEnabled(ctx, "issuing", false); err != nil {
		t.Fatal(err)
	}
	failures := func() int {
		t.Helper()
		evs, err := e.st.ListEvents(ctx, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, ev := range evs {
			if ev.Event.Type == TypeRenewalFailed {
				n++
			}
		}
		return n
	}
	e.clock.Set(due(old.Record))
	for _, step := range []struct {
		name    string
		advance time.Duration
		want    int
	}{
		{"fail/first-attempt-records-event", 0, 1},
		{"fail/claim-holds-no-retry", time.Minute, 1},
		{"fail/retried-after-claim-ttl", DefaultClaimTTL, 2},
	} {
		e.clock.Advance(step.advance)
		if n, err := m.RenewDue(ctx); err != nil || n != 0 {
			t.Fatalf("%s: renewed %d, %v", step.name, n, err)
		}
		if got := failures(); got != step.want {
			t.Errorf("%s: %d renewal_failed events, want %d", step.name, got, step.want)
		}
	}
	if _, err := e.ca.SetEnabled(ctx, "issuing", true); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(DefaultClaimTTL + time.Second)
	if n, err := m.RenewDue(ctx); err != nil || n != 1 {
		t.Errorf("after the CA is enabled again: renewed %d, %v; want 1", n, err)
	}
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ka, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ka.Equal(b)
}

// After a rotation, a managed certificate of the old generation is
// renewed by the new one, and the line of successors crosses the two.
func TestManagedRenewalAfterRotation(t *testing.T) {
	e := newCAEnv(t)
	ctx := context.Background()
	old := e.issue(t, "svc-a.internal", true)
	rot, err := e.ca.Rotate(ctx, ca.RotateRequest{CA: "issuing"})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Set(due(old.Record))
	if n, err := e.managed(t).RenewDue(ctx); err != nil || n != 1 {
		t.Fatalf("RenewDue = %d, %v; want 1", n, err)
	}
	succ, err := e.st.GetSuccessor(ctx, old.Record.CAID, old.Record.Serial)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := e.st.GetCertificate(ctx, succ)
	if err != nil {
		t.Fatal(err)
	}
	if rec.CAID != rot.New.ID || old.Record.CAID != rot.Old.ID {
		t.Errorf("renewed by CA %s, want the successor %s (old %s)", rec.CAID, rot.New.ID, rot.Old.ID)
	}
}
