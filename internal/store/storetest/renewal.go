package storetest

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/store"
)

// renewalCases checks the RenewalStore methods.
func renewalCases() []testCase {
	renewable := func(t *testing.T, s store.Store, now time.Time) []string {
		t.Helper()
		cs, err := s.ListRenewable(ctx(t), now, 0, 100)
		must(t, err, "ListRenewable")
		return serials(cs)
	}
	return []testCase{
		{"ok/claim-then-successor", func(t *testing.T, s store.Store) {
			caID := createCA(t, s, caFixture("ca-1", "issuing")).ID
			insertCert(t, s, certFixture(caID, "a1"))
			insertCert(t, s, certFixture(caID, "a2"))
			if got := renewable(t, s, t0); len(got) != 2 {
				t.Fatalf("ListRenewable = %v, want [a1 a2]", got)
			}
			won, err := s.ClaimRenewal(ctx(t), caID, "a1", t0, t0.Add(-time.Hour))
			must(t, err, "ClaimRenewal")
			if !won {
				t.Fatal("the first claim lost")
			}
			won, err = s.ClaimRenewal(ctx(t), caID, "a1", t0.Add(time.Minute), t0.Add(-59*time.Minute))
			must(t, err, "ClaimRenewal(again)")
			if won {
				t.Error("a fresh claim was taken twice")
			}
			// A claimed renewal that is not finished still lists.
			if got := renewable(t, s, t0); len(got) != 2 {
				t.Errorf("ListRenewable after a claim = %v, want both", got)
			}
			// A stale claim is taken over.
			won, err = s.ClaimRenewal(ctx(t), caID, "a1", t0.Add(2*time.Hour), t0.Add(time.Hour))
			must(t, err, "ClaimRenewal(stale)")
			if !won {
				t.Error("a stale claim was not taken over")
			}
			if got, err := s.GetSuccessor(ctx(t), caID, "a1"); err != nil || got != "" {
				t.Errorf("GetSuccessor before = %q, %v; want \"\"", got, err)
			}
			must(t, s.SetSuccessor(ctx(t), caID, "a1", "b1", t0.Add(2*time.Hour)), "SetSuccessor")
			must(t, s.SetSuccessor(ctx(t), caID, "a1", "b1", t0.Add(3*time.Hour)), "SetSuccessor(same)")
			wantErr(t, s.SetSuccessor(ctx(t), caID, "a1", "c1", t0.Add(3*time.Hour)), store.ErrConflict, "SetSuccessor(other)")
			if got, err := s.GetSuccessor(ctx(t), caID, "a1"); err != nil || got != "b1" {
				t.Errorf("GetSuccessor = %q, %v; want b1", got, err)
			}
			if got := renewable(t, s, t0); len(got) != 1 || got[0] != "a2" {
				t.Errorf("ListRenewable after renewal = %v, want [a2]", got)
			}
			won, err = s.ClaimRenewal(ctx(t), caID, "a1", t0.Add(10*time.Hour), t0.Add(9*time.Hour))
			must(t, err, "ClaimRenewal(renewed)")
			if won {
				t.Error("a renewed certificate was claimed again")
			}
			// A successor may be recorded without a claim (a renewal by
			// the certificate's holder).
			must(t, s.SetSuccessor(ctx(t), caID, "a2", "b2", t0), "SetSuccessor(unclaimed)")
			if got := renewable(t, s, t0); len(got) != 0 {
				t.Errorf("ListRenewable = %v, want none", got)
			}
		}},
		{"ok/list-renewable-selects", func(t *testing.T, s store.Store) {
			caID := createCA(t, s, caFixture("ca-1", "issuing")).ID
			insertCert(t, s, certFixture(caID, "keep"))
			unmanaged := certFixture(caID, "unmanaged")
			unmanaged.Managed = false
			insertCert(t, s, unmanaged)
			expired := certFixture(caID, "expired")
			expired.NotAfter = t0.Add(-time.Second)
			insertCert(t, s, expired)
			revoked := insertCert(t, s, certFixture(caID, "revoked"))
			_, err := s.RevokeCertificate(ctx(t), caID, revoked.Serial, 1, t0)
			must(t, err, "RevokeCertificate")
			imported := certFixture("", "imported")
			imported.IssuerKey, imported.Imported = "ext:00", true
			insertCert(t, s, imported)
			for i := range 3 {
				insertCert(t, s, certFixture(caID, "more"+string(rune('a'+i))))
			}
			if got := renewable(t, s, t0); len(got) != 4 || got[0] != "keep" {
				t.Errorf("ListRenewable = %v, want keep, morea..morec", got)
			}
			page, err := s.ListRenewable(ctx(t), t0, 0, 2)
			must(t, err, "ListRenewable(limit 2)")
			rest, err := s.ListRenewable(ctx(t), t0, page[len(page)-1].Seq, 100)
			must(t, err, "ListRenewable(after)")
			if len(page) != 2 || len(rest) != 2 {
				t.Errorf("pages of %d and %d, want 2 and 2", len(page), len(rest))
			}
			checkEqual(t, "ListRenewable record", stored(certFixture(caID, "keep")), withSeq(page[0], 0))
		}},
		{"ok/concurrent-claims-one-wins", func(t *testing.T, s store.Store) {
			caID := createCA(t, s, caFixture("ca-1", "issuing")).ID
			insertCert(t, s, certFixture(caID, "a1"))
			var wins atomic.Int32
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					won, err := s.ClaimRenewal(ctx(t), caID, "a1", t0.Add(time.Duration(i)*time.Millisecond), t0.Add(-time.Hour))
					if err != nil {
						t.Errorf("ClaimRenewal: %v", err)
					}
					if won {
						wins.Add(1)
					}
				}()
			}
			wg.Wait()
			if n := wins.Load(); n != 1 {
				t.Errorf("%d concurrent claims won, want 1", n)
			}
		}},
		{"fail/renewal-missing-certificate", func(t *testing.T, s store.Store) {
			caID := createCA(t, s, caFixture("ca-1", "issuing")).ID
			_, err := s.ClaimRenewal(ctx(t), caID, "nope", t0, t0)
			wantErr(t, err, store.ErrNotFound, "ClaimRenewal of a missing certificate")
			wantErr(t, s.SetSuccessor(ctx(t), caID, "nope", "b", t0), store.ErrNotFound, "SetSuccessor of a missing certificate")
			if got, err := s.GetSuccessor(ctx(t), caID, "nope"); err != nil || got != "" {
				t.Errorf("GetSuccessor of a missing certificate = %q, %v", got, err)
			}
		}},
		{"ok/list-and-restore", func(t *testing.T, s store.Store) {
			caID := createCA(t, s, caFixture("ca-1", "issuing")).ID
			for _, serial := range []string{"a1", "a2", "a3"} {
				insertCert(t, s, certFixture(caID, serial))
			}
			_, err := s.ClaimRenewal(ctx(t), caID, "a2", t0, t0.Add(-time.Hour))
			must(t, err, "ClaimRenewal")
			_, err = s.ClaimRenewal(ctx(t), caID, "a1", t0.Add(time.Minute), t0.Add(-time.Hour))
			must(t, err, "ClaimRenewal")
			must(t, s.SetSuccessor(ctx(t), caID, "a1", "b1", t0.Add(2*time.Minute)), "SetSuccessor")
			var got []store.Renewal
			must(t, s.ListRenewals(ctx(t), func(r store.Renewal) error { got = append(got, r); return nil }), "ListRenewals")
			want := []store.Renewal{
				{CAID: caID, Serial: "a1", ClaimedAt: t0.Add(time.Minute), Successor: "b1", RenewedAt: t0.Add(2 * time.Minute)},
				{CAID: caID, Serial: "a2", ClaimedAt: t0},
			}
			if len(got) != len(want) {
				t.Fatalf("ListRenewals = %+v, want %+v", got, want)
			}
			for i := range want {
				checkEqual(t, "renewal "+want[i].Serial, &want[i], &got[i])
			}
			// Restoring into another store of the same certificates.
			other := want[0]
			other.Serial = "a3"
			must(t, s.RestoreRenewal(ctx(t), other), "RestoreRenewal")
			if succ, err := s.GetSuccessor(ctx(t), caID, "a3"); err != nil || succ != "b1" {
				t.Errorf("GetSuccessor after RestoreRenewal = %q, %v", succ, err)
			}
			wantErr(t, s.RestoreRenewal(ctx(t), other), store.ErrConflict, "RestoreRenewal twice")
			other.Serial = "missing"
			wantErr(t, s.RestoreRenewal(ctx(t), other), store.ErrNotFound, "RestoreRenewal of a missing certificate")
		}},
		{"ok/ca-successor", func(t *testing.T, s store.Store) {
			a := createCA(t, s, caFixture("ca-1", "issuing")).ID
			b := createCA(t, s, caFixture("ca-2", "issuing-2")).ID
			c := createCA(t, s, caFixture("ca-3", "issuing-3")).ID
			for _, id := range []string{a, b} {
				if got, err := s.GetCASuccessor(ctx(t), id); err != nil || got != "" {
					t.Errorf("GetCASuccessor(%s) before = %q, %v", id, got, err)
				}
			}
			must(t, s.SetCASuccessor(ctx(t), a, b, t0), "SetCASuccessor(a, b)")
			wantErr(t, s.SetCASuccessor(ctx(t), a, c, t0), store.ErrConflict, "a second successor")
			wantErr(t, s.SetCASuccessor(ctx(t), c, b, t0), store.ErrConflict, "a successor of two CAs")
			wantErr(t, s.SetCASuccessor(ctx(t), b, "ca-missing", t0), store.ErrNotFound, "a missing successor")
			must(t, s.SetCASuccessor(ctx(t), b, c, t0.Add(time.Second)), "SetCASuccessor(b, c)")
			succs, err := s.ListCASuccessions(ctx(t))
			must(t, err, "ListCASuccessions")
			if len(succs) != 2 || succs[0] != (store.CASuccession{CAID: a, SuccessorID: b, RotatedAt: t0}) || succs[1].CAID != b || succs[1].SuccessorID != c {
				t.Errorf("ListCASuccessions = %+v", succs)
			}
			for _, tc := range []struct{ id, next, prev string }{{a, b, ""}, {b, c, a}, {c, "", b}} {
				if got, err := s.GetCASuccessor(ctx(t), tc.id); err != nil || got != tc.next {
					t.Errorf("GetCASuccessor(%s) = %q, %v; want %q", tc.id, got, err, tc.next)
				}
				if got, err := s.GetCAPredecessor(ctx(t), tc.id); err != nil || got != tc.prev {
					t.Errorf("GetCAPredecessor(%s) = %q, %v; want %q", tc.id, got, err, tc.prev)
				}
			}
		}},
	}
}

// withSeq returns c with Seq set to seq, to compare records whose Seq the
// store assigned.
func withSeq(c *store.Certificate, seq int64) *store.Certificate {
	c = clone(c)
	c.Seq = seq
	return c
}
