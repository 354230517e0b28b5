package storetest

import (
	"crypto/sha256"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/store"
)

// bootstrapFixture returns a bootstrap token of the CA caID whose hash is
// the SHA-256 of secret.
func bootstrapFixture(id, caID, secret string) *store.BootstrapToken {
	h := sha256.Sum256([]byte(secret))
	return &store.BootstrapToken{
		ID: id, Name: "svc-a", Hash: h[:], CAID: caID, Profile: "server",
		SANs:        []string{"dns:svc-a.internal", "uri:spiffe://example/svc-a", "ip:10.0.0.7"},
		MaxValidity: 24 * time.Hour, MaxUses: 1, CreatedBy: "admin",
		CreatedAt: t0, ExpiresAt: t0.Add(time.Hour),
	}
}

// lifecycleCases checks the LifecycleStore methods.
func lifecycleCases() []testCase {
	withCA := func(t *testing.T, s store.Store) string {
		t.Helper()
		return createCA(t, s, caFixture("ca-1", "issuing")).ID
	}
	roundTrip := func(mod func(tok *store.BootstrapToken)) func(t *testing.T, s store.Store) {
		return func(t *testing.T, s store.Store) {
			caID := withCA(t, s)
			tok := bootstrapFixture("bt-1", caID, "secret")
			mod(tok)
			want := clone(tok)
			want.CreatedAt, want.ExpiresAt = inUTC(want.CreatedAt), inUTC(want.ExpiresAt)
			must(t, s.CreateBootstrapToken(ctx(t), tok), "CreateBootstrapToken")
			must(t, s.CreateBootstrapToken(ctx(t), bootstrapFixture("bt-2", caID, "other")), "CreateBootstrapToken(other)")
			got, err := s.GetBootstrapTokenByHash(ctx(t), tok.Hash)
			must(t, err, "GetBootstrapTokenByHash")
			checkEqual(t, "GetBootstrapTokenByHash", want, got)
			got, err = s.GetBootstrapToken(ctx(t), tok.ID)
			must(t, err, "GetBootstrapToken")
			checkEqual(t, "GetBootstrapToken", want, got)
			_, err = s.GetBootstrapToken(ctx(t), "bt-missing")
			wantErr(t, err, store.ErrNotFound, "GetBootstrapToken of a missing token")
		}
	}
	return []testCase{
		{"ok/bootstrap-round-trip", roundTrip(func(tok *store.BootstrapToken) {})},
		{"ok/bootstrap-never-expires-no-sans", roundTrip(func(tok *store.BootstrapToken) {
			tok.ExpiresAt, tok.SANs, tok.MaxValidity, tok.MaxUses, tok.Uses = time.Time{}, nil, 0, 5, 2
		})},
		{"ok/bootstrap-revoked", roundTrip(func(tok *store.BootstrapToken) { tok.Revoked = true })},
		{"fail/bootstrap-create", func(t *testing.T, s store.Store) {
			caID := withCA(t, s)
			must(t, s.CreateBootstrapToken(ctx(t), bootstrapFixture("bt-1", caID, "secret")), "CreateBootstrapToken")
			wantErr(t, s.CreateBootstrapToken(ctx(t), bootstrapFixture("bt-2", caID, "secret")), store.ErrConflict, "a taken hash")
			wantErr(t, s.CreateBootstrapToken(ctx(t), bootstrapFixture("bt-1", caID, "other")), store.ErrConflict, "a taken ID")
			wantErr(t, s.CreateBootstrapToken(ctx(t), bootstrapFixture("bt-3", "no-such-ca", "third")), store.ErrNotFound, "a missing CA")
			bad := bootstrapFixture("bt-4", caID, "fourth")
			bad.MaxUses = 0
			if err := s.CreateBootstrapToken(ctx(t), bad); err == nil {
				t.Error("CreateBootstrapToken with MaxUses 0 succeeded")
			}
			_, err := s.GetBootstrapTokenByHash(ctx(t), bootstrapFixture("", "", "fourth").Hash)
			wantErr(t, err, store.ErrNotFound, "GetBootstrapTokenByHash of a refused token")
		}},
		{"ok/bootstrap-use-counts-up-to-max", func(t *testing.T, s store.Store) {
			tok := bootstrapFixture("bt-1", withCA(t, s), "secret")
			tok.MaxUses = 2
			must(t, s.CreateBootstrapToken(ctx(t), tok), "CreateBootstrapToken")
			for i := 1; i <= 2; i++ {
				got, err := s.UseBootstrapToken(ctx(t), "bt-1", t0.Add(time.Minute))
				must(t, err, "use %d", i)
				if got.Uses != i {
					t.Fatalf("after use %d, Uses = %d", i, got.Uses)
				}
			}
			got, err := s.UseBootstrapToken(ctx(t), "bt-1", t0.Add(time.Minute))
			wantErr(t, err, store.ErrConflict, "a third use of a two-use token")
			if got == nil || got.Uses != 2 || got.MaxUses != 2 {
				t.Fatalf("a refused use returned %+v, want the record with Uses 2", got)
			}
		}},
		{"ok/bootstrap-release", func(t *testing.T, s store.Store) {
			tok := bootstrapFixture("bt-1", withCA(t, s), "secret")
			must(t, s.CreateBootstrapToken(ctx(t), tok), "CreateBootstrapToken")
			// Releasing an unused token leaves it at 0.
			must(t, s.ReleaseBootstrapToken(ctx(t), "bt-1"), "ReleaseBootstrapToken at 0")
			_, err := s.UseBootstrapToken(ctx(t), "bt-1", t0)
			must(t, err, "use")
			_, err = s.UseBootstrapToken(ctx(t), "bt-1", t0)
			wantErr(t, err, store.ErrConflict, "second use of a single-use token")
			must(t, s.ReleaseBootstrapToken(ctx(t), "bt-1"), "ReleaseBootstrapToken")
			got, err := s.UseBootstrapToken(ctx(t), "bt-1", t0)
			must(t, err, "use after a release")
			if got.Uses != 1 {
				t.Fatalf("after use, release, use: Uses = %d, want 1", got.Uses)
			}
			wantErr(t, s.ReleaseBootstrapToken(ctx(t), "bt-missing"), store.ErrNotFound, "release of a missing token")
		}},
		{"fail/bootstrap-use-refused", func(t *testing.T, s store.Store) {
			caID := withCA(t, s)
			expired := bootstrapFixture("bt-exp", caID, "exp")
			must(t, s.CreateBootstrapToken(ctx(t), expired), "create")
			revoked := bootstrapFixture("bt-rev", caID, "rev")
			must(t, s.CreateBootstrapToken(ctx(t), revoked), "create")
			must(t, s.RevokeBootstrapToken(ctx(t), "bt-rev"), "RevokeBootstrapToken")
			must(t, s.RevokeBootstrapToken(ctx(t), "bt-rev"), "RevokeBootstrapToken again")
			// Expiry is strict: a token is dead at its ExpiresAt.
			got, err := s.UseBootstrapToken(ctx(t), "bt-exp", expired.ExpiresAt)
			wantErr(t, err, store.ErrConflict, "use at expiry")
			if got == nil || got.Uses != 0 {
				t.Errorf("refused use of an expired token: record %+v, want Uses 0", got)
			}
			got, err = s.UseBootstrapToken(ctx(t), "bt-rev", t0)
			wantErr(t, err, store.ErrConflict, "use of a revoked token")
			if got == nil || !got.Revoked {
				t.Errorf("refused use of a revoked token: record %+v, want Revoked", got)
			}
			got, err = s.UseBootstrapToken(ctx(t), "bt-missing", t0)
			wantErr(t, err, store.ErrNotFound, "use of a missing token")
			if got != nil {
				t.Errorf("a missing token returned a record: %+v", got)
			}
			wantErr(t, s.RevokeBootstrapToken(ctx(t), "bt-missing"), store.ErrNotFound, "revoke a missing token")
		}},
		{"ok/bootstrap-use-concurrent", func(t *testing.T, s store.Store) {
			// Exactly MaxUses of many concurrent uses succeed.
			tok := bootstrapFixture("bt-1", withCA(t, s), "secret")
			tok.MaxUses = 3
			must(t, s.CreateBootstrapToken(ctx(t), tok), "CreateBootstrapToken")
			var ok, refused atomic.Int64
			var wg sync.WaitGroup
			for range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := s.UseBootstrapToken(ctx(t), "bt-1", t0)
					switch {
					case err == nil:
						ok.Add(1)
					case store.IsConflict(err):
						refused.Add(1)
					default:
						t.Errorf("UseBootstrapToken: %v", err)
					}
				}()
			}
			wg.Wait()
			if ok.Load() != 3 || refused.Load() != 13 {
				t.Fatalf("16 concurrent uses of a 3-use token: %d succeeded, %d refused; want 3 and 13", ok.Load(), refused.Load())
			}
		}},
		{"ok/event-once-with-deliveries", func(t *testing.T, s store.Store) {
			e := eventFixture("ev-1", "expiring:ca-1:1f:7d")
			added, err := s.AddEvent(ctx(t), e, []string{"ops", "siem"})
			must(t, err, "AddEvent")
			if !added {
				t.Fatal("AddEvent of a new key returned false")
			}
			// The same key again, with another ID: recorded once.
			added, err = s.AddEvent(ctx(t), eventFixture("ev-2", e.Key), []string{"ops"})
			must(t, err, "AddEvent again")
			if added {
				t.Fatal("AddEvent of a recorded key returned true")
			}
			for key, want := range map[string]bool{e.Key: true, "expiring:ca-1:1f:1d": false} {
				got, err := s.HasEvent(ctx(t), key)
				must(t, err, "HasEvent")
				if got != want {
					t.Errorf("HasEvent(%q) = %v, want %v", key, got, want)
				}
			}
			// Not due before CreatedAt; due at it, both webhooks.
			ds, err := s.DueDeliveries(ctx(t), t0.Add(-time.Second), 10)
			must(t, err, "DueDeliveries before")
			if len(ds) != 0 {
				t.Fatalf("%d deliveries due before the event", len(ds))
			}
			ds, err = s.DueDeliveries(ctx(t), t0, 10)
			must(t, err, "DueDeliveries")
			if len(ds) != 2 {
				t.Fatalf("%d deliveries due, want 2", len(ds))
			}
			want := clone(e)
			want.CreatedAt = inUTC(want.CreatedAt)
			checkEqual(t, "delivered event", want, &ds[0].Event)
			if ds[0].Attempts != 0 || !ds[0].NextAttempt.Equal(t0) {
				t.Errorf("delivery: %+v", ds[0])
			}
			// A failure moves the next attempt; a success ends it.
			must(t, s.MarkFailed(ctx(t), "ev-1", "ops", t0.Add(time.Minute), "HTTP 500"), "MarkFailed")
			must(t, s.MarkDelivered(ctx(t), "ev-1", "siem", t0), "MarkDelivered")
			wantErr(t, s.MarkDelivered(ctx(t), "ev-1", "siem", t0), store.ErrNotFound, "MarkDelivered twice")
			wantErr(t, s.MarkFailed(ctx(t), "ev-1", "nope", t0, "x"), store.ErrNotFound, "MarkFailed of a missing delivery")
			ds, err = s.DueDeliveries(ctx(t), t0.Add(30*time.Second), 10)
			must(t, err, "DueDeliveries after")
			if len(ds) != 0 {
				t.Fatalf("%d deliveries due before the retry time", len(ds))
			}
			ds, err = s.DueDeliveries(ctx(t), t0.Add(time.Minute), 10)
			must(t, err, "DueDeliveries at retry")
			if len(ds) != 1 || ds[0].Webhook != "ops" || ds[0].Attempts != 1 || ds[0].LastError != "HTTP 500" || !ds[0].NextAttempt.Equal(t0.Add(time.Minute)) {
				t.Fatalf("retry: %d deliveries, first %+v", len(ds), ds)
			}
		}},
		{"ok/event-due-order-and-limit", func(t *testing.T, s store.Store) {
			for i, at := range []time.Duration{3 * time.Second, time.Second, 2 * time.Second} {
				e := eventFixture(fmt.Sprintf("ev-%d", i), fmt.Sprintf("k-%d", i))
				e.CreatedAt = t0.Add(at)
				_, err := s.AddEvent(ctx(t), e, []string{"ops"})
				must(t, err, "AddEvent")
			}
			ds, err := s.DueDeliveries(ctx(t), t0.Add(time.Hour), 2)
			must(t, err, "DueDeliveries")
			if len(ds) != 2 || ds[0].Event.ID != "ev-1" || ds[1].Event.ID != "ev-2" {
				t.Fatalf("due order: %d, %+v", len(ds), ds)
			}
		}},
		{"fail/event-invalid", func(t *testing.T, s store.Store) {
			if _, err := s.AddEvent(ctx(t), &store.Event{ID: "x", Key: "k"}, nil); err == nil {
				t.Fatal("AddEvent without a payload succeeded")
			}
			_, err := s.AddEvent(ctx(t), eventFixture("ev-1", "k-1"), nil)
			must(t, err, "AddEvent")
			_, err = s.AddEvent(ctx(t), eventFixture("ev-1", "k-2"), nil)
			wantErr(t, err, store.ErrConflict, "AddEvent with a taken ID")
		}},
	}
}

// eventFixture returns an event with a JSON payload.
func eventFixture(id, key string) *store.Event {
	return &store.Event{ID: id, Key: key, Type: "certificate.expiring", Payload: []byte(`{"id":"` + id + `"}`), CreatedAt: t0}
}
