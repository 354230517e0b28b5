package storetest

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/store"
)

// RFC 5280 section 5.3.1 CRLReason values the suite uses.
const (
	reasonKeyCompromise = 1
	reasonSuperseded    = 4
	reasonCessation     = 5
	reasonHold          = store.ReasonCertificateHold
)

// revokeCases checks GetCertificateByCA, RevokeCertificate and ReleaseHold.
func revokeCases() []testCase {
	// setup creates CA "ca-a" and records certificate "c1" under it.
	setup := func(t *testing.T, s store.Store) (*store.CA, *store.Certificate) {
		t.Helper()
		ca := createCA(t, s, caFixture("ca-a", "a"))
		return ca, insertCert(t, s, certFixture(ca.ID, "c1"))
	}
	// revoked returns the record c becomes when revoked with reason at at.
	revoked := func(c *store.Certificate, reason int, at time.Time) *store.Certificate {
		want := stored(c)
		want.Status, want.Reason, want.RevokedAt = store.CertRevoked, reason, inUTC(at)
		return want
	}
	t1 := t0.Add(time.Hour)
	t2 := t0.Add(2 * time.Hour)

	return []testCase{
		{"ok/get-by-ca", func(t *testing.T, s store.Store) {
			a := createCA(t, s, caFixture("ca-a", "a"))
			b := createCA(t, s, caFixture("ca-b", "b"))
			ca := insertCert(t, s, certFixture(a.ID, "abc"))
			cb := certFixture(b.ID, "abc")
			cb.Subject, cb.Partition = "CN=under-b", 3
			insertCert(t, s, cb)
			imp := certFixture("", "abc")
			imp.IssuerKey, imp.Imported = "ext:00", true
			insertCert(t, s, imp)
			for _, want := range []*store.Certificate{ca, cb} {
				got, err := s.GetCertificateByCA(ctx(t), want.CAID, "abc")
				must(t, err, "GetCertificateByCA(%q, abc)", want.CAID)
				checkEqual(t, "GetCertificateByCA("+want.CAID+")", stored(want), got)
			}
			for _, k := range [][2]string{{a.ID, "abd"}, {a.ID, "ABC"}, {"no-such-ca", "abc"}, {"", "abc"}, {"ext:00", "abc"}, {a.ID, ""}} {
				_, err := s.GetCertificateByCA(ctx(t), k[0], k[1])
				wantErr(t, err, store.ErrNotFound, "GetCertificateByCA(%q, %q)", k[0], k[1])
			}
		}},
		{"ok/revoke", func(t *testing.T, s store.Store) {
			ca, c := setup(t, s)
			other := insertCert(t, s, certFixture(ca.ID, "c2"))
			at := t1.In(time.FixedZone("UTC+2", 2*3600))
			want := revoked(c, reasonKeyCompromise, at)
			got, err := s.RevokeCertificate(ctx(t), ca.ID, c.Serial, reasonKeyCompromise, at)
			must(t, err, "RevokeCertificate")
			checkEqual(t, "RevokeCertificate's record", want, got)
			checkStored(t, s, want)
			checkStored(t, s, stored(other)) // untouched
			all, err := s.GetCertificate(ctx(t), c.Serial)
			must(t, err, "GetCertificate")
			checkEqual(t, "GetCertificate after revocation", want, all)
			list, err := s.ListCertificates(ctx(t), store.CertFilter{Status: store.CertRevoked, Now: t0})
			must(t, err, "ListCertificates(revoked)")
			if len(list) != 1 || list[0].Serial != c.Serial {
				t.Errorf("ListCertificates(revoked) = %v, want [%s]", serials(list), c.Serial)
			}
		}},
		{"ok/revoke-partitioned-expired", func(t *testing.T, s store.Store) {
			// An expired certificate can still be revoked (the CRL keeps
			// entries a while after expiry), and revocation keeps Partition.
			ca := caFixture("ca-a", "a")
			ca.CRLPartitions = 8
			createCA(t, s, ca)
			c := certFixture(ca.ID, "c1")
			c.Partition, c.NotAfter = 5, t0.Add(-time.Hour)
			insertCert(t, s, c)
			got, err := s.RevokeCertificate(ctx(t), ca.ID, c.Serial, reasonSuperseded, t1)
			must(t, err, "RevokeCertificate")
			checkEqual(t, "RevokeCertificate's record", revoked(c, reasonSuperseded, t1), got)
		}},
		{"fail/revoke-twice", func(t *testing.T, s store.Store) {
			ca, c := setup(t, s)
			want := revoked(c, reasonSuperseded, t1)
			_, err := s.RevokeCertificate(ctx(t), ca.ID, c.Serial, reasonSuperseded, t1)
			must(t, err, "RevokeCertificate")
			for _, reason := range []int{reasonSuperseded, reasonKeyCompromise, reasonHold} {
				got, err := s.RevokeCertificate(ctx(t), ca.ID, c.Serial, reason, t2)
				wantErr(t, err, store.ErrConflict, "second RevokeCertificate (reason %d)", reason)
				checkEqual(t, fmt.Sprintf("record returned with the conflict (reason %d)", reason), want, got)
			}
			checkStored(t, s, want)
		}},
		{"ok/hold-then-revoke", func(t *testing.T, s store.Store) {
			ca, c := setup(t, s)
			got, err := s.RevokeCertificate(ctx(t), ca.ID, c.Serial, reasonHold, t1)
			must(t, err, "RevokeCertificate(hold)")
			checkEqual(t, "on hold", revoked(c, reasonHold, t1), got)
			// RFC 5280 section 5.3.1: a hold may become a revocation; the
			// certificate has been unusable since the hold began.
			want := revoked(c, reasonKeyCompromise, t1)
			got, err = s.RevokeCertificate(ctx(t), ca.ID, c.Serial, reasonKeyCompromise, t2)
			must(t, err, "RevokeCertificate of a held certificate")
			checkEqual(t, "revoked after hold", want, got)
			checkStored(t, s, want)
			got, err = s.RevokeCertificate(ctx(t), ca.ID, c.Serial, reasonCessation, t2.Add(time.Hour))
			wantErr(t, err, store.ErrConflict, "third RevokeCertificate")
			checkEqual(t, "record returned with the conflict", want, got)
			got, err = s.ReleaseHold(ctx(t), ca.ID, c.Serial)
			wantErr(t, err, store.ErrConflict, "ReleaseHold after final revocation")
			checkEqual(t, "record returned by ReleaseHold", want, got)
		}},
		{"fail/hold-twice", func(t *testing.T, s store.Store) {
			ca, c := setup(t, s)
			want := revoked(c, reasonHold, t1)
			_, err := s.RevokeCertificate(ctx(t), ca.ID, c.Serial, reasonHold, t1)
			must(t, err, "RevokeCertificate(hold)")
			got, err := s.RevokeCertificate(ctx(t), ca.ID, c.Serial, reasonHold, t2)
			wantErr(t, err, store.ErrConflict, "second hold")
			checkEqual(t, "record returned with the conflict", want, got)
			checkStored(t, s, want)
		}},
		{"ok/release-hold", func(t *testing.T, s store.Store) {
			ca, c := setup(t, s)
			_, err := s.RevokeCertificate(ctx(t), ca.ID, c.Serial, reasonHold, t1)
			must(t, err, "RevokeCertificate(hold)")
			got, err := s.ReleaseHold(ctx(t), ca.ID, c.Serial)
			must(t, err, "ReleaseHold")
			checkEqual(t, "released", stored(c), got)
			checkStored(t, s, stored(c))
			// Released, it is active again: it can be held or revoked anew.
			want := revoked(c, reasonSuperseded, t2)
			got, err = s.RevokeCertificate(ctx(t), ca.ID, c.Serial, reasonSuperseded, t2)
			must(t, err, "RevokeCertificate after release")
			checkEqual(t, "revoked after release", want, got)
		}},
		{"fail/release-not-held", func(t *testing.T, s store.Store) {
			ca, c := setup(t, s)
			got, err := s.ReleaseHold(ctx(t), ca.ID, c.Serial)
			wantErr(t, err, store.ErrConflict, "ReleaseHold of an active certificate")
			checkEqual(t, "record returned with the conflict", stored(c), got)

			// Revoked with another reason, or inserted already revoked on hold
			// and then released: neither is on hold.
			want := revoked(c, reasonKeyCompromise, t1)
			_, err = s.RevokeCertificate(ctx(t), ca.ID, c.Serial, reasonKeyCompromise, t1)
			must(t, err, "RevokeCertificate")
			got, err = s.ReleaseHold(ctx(t), ca.ID, c.Serial)
			wantErr(t, err, store.ErrConflict, "ReleaseHold of a revoked certificate")
			checkEqual(t, "record returned with the conflict", want, got)
			checkStored(t, s, want)

			held := certFixture(ca.ID, "c2")
			held.Status, held.Reason, held.RevokedAt = store.CertRevoked, reasonHold, t1
			insertCert(t, s, held)
			_, err = s.ReleaseHold(ctx(t), ca.ID, held.Serial)
			must(t, err, "ReleaseHold of a certificate inserted on hold")
			_, err = s.ReleaseHold(ctx(t), ca.ID, held.Serial)
			wantErr(t, err, store.ErrConflict, "second ReleaseHold")
		}},
		{"fail/unknown", func(t *testing.T, s store.Store) {
			ca, c := setup(t, s)
			b := createCA(t, s, caFixture("ca-b", "b"))
			imp := certFixture("", "e1")
			imp.IssuerKey, imp.Imported = "ext:00", true
			insertCert(t, s, imp)
			for _, k := range [][2]string{{ca.ID, "c9"}, {b.ID, c.Serial}, {"no-such-ca", c.Serial}, {"", imp.Serial}, {imp.IssuerKey, imp.Serial}} {
				got, err := s.RevokeCertificate(ctx(t), k[0], k[1], reasonKeyCompromise, t1)
				wantErr(t, err, store.ErrNotFound, "RevokeCertificate(%q, %q)", k[0], k[1])
				if got != nil {
					t.Errorf("RevokeCertificate(%q, %q) returned a record with ErrNotFound", k[0], k[1])
				}
				_, err = s.ReleaseHold(ctx(t), k[0], k[1])
				wantErr(t, err, store.ErrNotFound, "ReleaseHold(%q, %q)", k[0], k[1])
			}
			checkStored(t, s, stored(c))
			got, err := s.GetCertificate(ctx(t), imp.Serial)
			must(t, err, "GetCertificate(import)")
			checkEqual(t, "import", stored(imp), got)
		}},
		{"ok/concurrent-revoke", concurrentRevoke},
		{"ok/revoke-during-inserts", revokeDuringInserts},
	}
}

// concurrentRevoke has 16 goroutines revoke one certificate at once, with
// different reasons and times: exactly one must win, and every other must get
// ErrConflict with the winner's record.
func concurrentRevoke(t *testing.T, s store.Store) {
	const workers = 16
	ca := createCA(t, s, caFixture("ca-a", "a"))
	c := insertCert(t, s, certFixture(ca.ID, "c1"))
	reasons := []int{0, reasonKeyCompromise, 2, 3, reasonSuperseded, reasonCessation, 9, 10} // never a hold
	type result struct {
		rec *store.Certificate
		err error
	}
	results := make([]result, workers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			<-start
			rec, err := s.RevokeCertificate(ctx(t), ca.ID, c.Serial, reasons[w%len(reasons)], t0.Add(time.Duration(w+1)*time.Second))
			results[w] = result{rec, err}
		})
	}
	close(start)
	wg.Wait()

	var winner *store.Certificate
	for w, r := range results {
		if r.err == nil {
			if winner != nil {
				t.Fatalf("worker %d revoked too: two revocations of one certificate succeeded", w)
			}
			winner = r.rec
		} else if !store.IsConflict(r.err) {
			t.Fatalf("worker %d: %v, want nil or ErrConflict", w, r.err)
		}
	}
	if winner == nil {
		t.Fatal("no revocation succeeded")
	}
	for w, r := range results {
		if r.err != nil {
			checkEqual(t, fmt.Sprintf("worker %d's conflict record", w), winner, r.rec)
		}
	}
	checkStored(t, s, winner)
}

// revokeDuringInserts revokes certificates while others are being inserted,
// so that revocations interleave with whatever batching InsertCertificate
// does: every revocation that returned nil must be stored, and nothing else.
func revokeDuringInserts(t *testing.T, s store.Store) {
	const workers, perWorker = 8, 20
	ca := createCA(t, s, caFixture("ca-a", "a"))
	var (
		mu      sync.Mutex
		revoked = map[string]*store.Certificate{}
		wg      sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				c := certFixture(ca.ID, fmt.Sprintf("%02x%04x", w, i))
				if err := s.InsertCertificate(ctx(t), c); err != nil {
					t.Errorf("InsertCertificate(%s): %v", c.Serial, err)
					return
				}
				if i%2 == 1 {
					continue
				}
				rec, err := s.RevokeCertificate(ctx(t), ca.ID, c.Serial, reasonSuperseded, t0.Add(time.Duration(i)*time.Second))
				if err != nil {
					t.Errorf("RevokeCertificate(%s) right after its insert: %v", c.Serial, err)
					return
				}
				mu.Lock()
				revoked[c.Serial] = rec
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	got := collectRevoked(t, s, ca.ID, -1, time.Time{})
	if len(got) != len(revoked) {
		t.Fatalf("ListRevoked: %d entries, %d revocations returned nil", len(got), len(revoked))
	}
	for _, e := range got {
		rec := revoked[e.Serial]
		if rec == nil {
			t.Errorf("ListRevoked lists %s, which no revocation returned", e.Serial)
			continue
		}
		checkEqual(t, "ListRevoked["+e.Serial+"]", entryOf(rec), &e)
	}
	n, err := s.CountCertificates(ctx(t), ca.ID)
	must(t, err, "CountCertificates")
	if n != workers*perWorker {
		t.Errorf("CountCertificates = %d, want %d", n, workers*perWorker)
	}
}

// crlCases checks ListRevoked and NextCRLNumber.
func crlCases() []testCase {
	return []testCase{
		{"ok/list-revoked", func(t *testing.T, s store.Store) {
			inv := seedRevoked(t, s)
			// ca-a has 4 partitions; ca-b is unpartitioned.
			for _, tc := range []struct {
				ca        string
				partition int
				after     time.Time
			}{
				{"ca-a", -1, time.Time{}},
				{"ca-a", -7, time.Time{}},
				{"ca-a", 0, time.Time{}},
				{"ca-a", 1, time.Time{}},
				{"ca-a", 2, time.Time{}},
				{"ca-a", 3, time.Time{}},
				{"ca-a", 4, time.Time{}}, // beyond the CA's partitions: empty
				{"ca-a", -1, t0},
				{"ca-a", -1, t0.In(time.FixedZone("UTC-3", -3*3600))},
				{"ca-a", 1, t0},
				{"ca-a", -1, t0.Add(-time.Microsecond)},
				{"ca-a", -1, farFuture},
				{"ca-b", -1, time.Time{}},
				{"ca-b", 0, t0},
				{"no-such-ca", -1, time.Time{}},
				{"", -1, time.Time{}}, // imports have no CRL here
			} {
				name := fmt.Sprintf("ListRevoked(%q, %d, %s)", tc.ca, tc.partition, tc.after.Format(time.RFC3339Nano))
				want := expectRevoked(inv, tc.ca, tc.partition, tc.after)
				got := collectRevoked(t, s, tc.ca, tc.partition, tc.after)
				if !slices.Equal(entrySerials(got), entrySerials(want)) {
					t.Errorf("%s:\n got %v\nwant %v", name, entrySerials(got), entrySerials(want))
					continue
				}
				for i := range want {
					checkEqual(t, name+"["+want[i].Serial+"]", &want[i], &got[i])
				}
			}
		}},
		{"ok/list-revoked-empty", func(t *testing.T, s store.Store) {
			ca := createCA(t, s, caFixture("ca-a", "a"))
			insertCert(t, s, certFixture(ca.ID, "c1"))
			if got := collectRevoked(t, s, ca.ID, -1, time.Time{}); len(got) != 0 {
				t.Errorf("ListRevoked with no revocations: %v", entrySerials(got))
			}
		}},
		{"fail/list-revoked-fn-error", func(t *testing.T, s store.Store) {
			seedRevoked(t, s)
			stop := errors.New("enough")
			calls := 0
			err := s.ListRevoked(ctx(t), "ca-a", -1, time.Time{}, func(store.RevokedEntry) error {
				calls++
				if calls == 2 {
					return stop
				}
				return nil
			})
			if !errors.Is(err, stop) {
				t.Fatalf("ListRevoked with fn failing: err = %v, want fn's error", err)
			}
			if calls != 2 {
				t.Errorf("fn called %d times after it failed on call 2", calls)
			}
			// The store is still usable: the walk released what it held.
			if got := collectRevoked(t, s, "ca-a", -1, time.Time{}); len(got) == 0 {
				t.Error("ListRevoked after a stopped walk lists nothing")
			}
		}},
		{"ok/crl-number", func(t *testing.T, s store.Store) {
			createCA(t, s, caFixture("ca-a", "a"))
			createCA(t, s, caFixture("ca-b", "b"))
			type counter struct {
				ca        string
				partition int
			}
			last := map[counter]int64{}
			// Interleaved calls on several counters: each starts at 1 and
			// counts up by itself.
			for _, k := range []counter{{"ca-a", 0}, {"ca-a", 0}, {"ca-a", 1}, {"ca-b", 0}, {"ca-a", 0}, {"ca-a", 1}, {"ca-a", 15}, {"ca-b", 0}, {"ca-a", 0}} {
				n, err := s.NextCRLNumber(ctx(t), k.ca, k.partition)
				must(t, err, "NextCRLNumber(%q, %d)", k.ca, k.partition)
				if want := last[k] + 1; n != want {
					t.Errorf("NextCRLNumber(%q, %d) = %d, want %d", k.ca, k.partition, n, want)
				}
				last[k] = n
			}
		}},
		{"ok/crl-number-concurrent", func(t *testing.T, s store.Store) {
			const workers, perWorker = 16, 4
			createCA(t, s, caFixture("ca-a", "a"))
			var (
				mu   sync.Mutex
				seen = map[int64]bool{}
				wg   sync.WaitGroup
			)
			for range workers {
				wg.Go(func() {
					var prev int64
					for range perWorker {
						n, err := s.NextCRLNumber(ctx(t), "ca-a", 2)
						if err != nil {
							t.Errorf("NextCRLNumber: %v", err)
							return
						}
						if n <= prev {
							t.Errorf("NextCRLNumber = %d after %d from the same caller", n, prev)
						}
						prev = n
						mu.Lock()
						if seen[n] {
							t.Errorf("NextCRLNumber returned %d twice", n)
						}
						seen[n] = true
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			for n := int64(1); n <= workers*perWorker; n++ {
				if !seen[n] {
					t.Errorf("%d concurrent calls never returned %d", workers*perWorker, n)
				}
			}
		}},
		{"fail/crl-number-unknown-ca", func(t *testing.T, s store.Store) {
			createCA(t, s, caFixture("ca-a", "a"))
			for _, id := range []string{"no-such-ca", "a", ""} {
				_, err := s.NextCRLNumber(ctx(t), id, 0)
				wantErr(t, err, store.ErrNotFound, "NextCRLNumber(%q)", id)
			}
			n, err := s.NextCRLNumber(ctx(t), "ca-a", 0)
			must(t, err, "NextCRLNumber")
			if n != 1 {
				t.Errorf("NextCRLNumber after refused calls = %d, want 1", n)
			}
		}},
	}
}

// seedRevoked records certificates of a partitioned CA "ca-a" (4 partitions),
// an unpartitioned CA "ca-b" and imports, revokes, holds and releases some of
// them, and returns every certificate as now stored.
func seedRevoked(t *testing.T, s store.Store) []*store.Certificate {
	t.Helper()
	a := caFixture("ca-a", "a")
	a.CRLPartitions = 4
	createCA(t, s, a)
	b := createCA(t, s, caFixture("ca-b", "b"))
	type spec struct {
		ca, serial string
		partition  int
		notAfter   time.Duration // from t0
		action     string        // "", "revoke", "hold", "released", "final", "inserted"
	}
	specs := []spec{
		{a.ID, "a0", 0, 24 * time.Hour, "revoke"},
		{a.ID, "a1", 1, 24 * time.Hour, "revoke"},
		{a.ID, "a2", 1, -time.Hour, "revoke"},       // expired before t0
		{a.ID, "a3", 1, 0, "revoke"},                // expires exactly at t0: not after it
		{a.ID, "a4", 1, time.Microsecond, "hold"},   // just after t0; holds are listed
		{a.ID, "a5", 2, 48 * time.Hour, "final"},    // hold, then keyCompromise
		{a.ID, "a6", 2, 48 * time.Hour, "released"}, // hold, then released: not listed
		{a.ID, "a7", 3, 48 * time.Hour, ""},         // active
		{a.ID, "a8", 3, 72 * time.Hour, "inserted"}, // recorded already revoked
		{a.ID, "a9", 0, -48 * time.Hour, ""},
		{a.ID, "5a", 0, 24 * time.Hour, "revoke"}, // same serial under ca-b
		{b.ID, "5a", 0, 24 * time.Hour, "revoke"},
		{b.ID, "b1", 0, 24 * time.Hour, ""},
		{b.ID, "b2", 0, -time.Hour, "hold"},
		{"", "e1", 0, 24 * time.Hour, "inserted"}, // an import, revoked
	}
	for i := range 12 { // more entries per partition than one page of anything
		specs = append(specs, spec{a.ID, fmt.Sprintf("1%02x", i), i % 4, time.Duration(i-6) * time.Hour, []string{"revoke", ""}[i%2]})
	}
	var inv []*store.Certificate
	for i, sp := range specs {
		c := certFixture(sp.ca, sp.serial)
		if sp.ca == "" {
			c.IssuerKey, c.Imported = "ext:00", true
		}
		c.Partition, c.NotAfter = sp.partition, t0.Add(sp.notAfter)
		at := t0.Add(-time.Duration(i+1) * time.Minute)
		if sp.action == "inserted" {
			c.Status, c.Reason, c.RevokedAt = store.CertRevoked, reasonCessation, at
		}
		insertCert(t, s, c)
		var err error
		switch sp.action {
		case "revoke":
			c, err = s.RevokeCertificate(ctx(t), sp.ca, sp.serial, i%3, at)
		case "hold":
			c, err = s.RevokeCertificate(ctx(t), sp.ca, sp.serial, reasonHold, at)
		case "final", "released":
			_, err = s.RevokeCertificate(ctx(t), sp.ca, sp.serial, reasonHold, at)
			if err == nil && sp.action == "final" {
				c, err = s.RevokeCertificate(ctx(t), sp.ca, sp.serial, reasonKeyCompromise, at.Add(time.Hour))
			} else if err == nil {
				c, err = s.ReleaseHold(ctx(t), sp.ca, sp.serial)
			}
		}
		must(t, err, "%s (%q, %q)", sp.action, sp.ca, sp.serial)
		inv = append(inv, c)
	}
	return inv
}

// listed is a store.RevokedEntry kept after its call of fn: the store
// owns the memory of the entry's Serial, so it is copied into a string.
type listed struct {
	Serial    string
	RevokedAt time.Time
	Reason    int
}

// expectRevoked returns the entries ListRevoked must report for inv, sorted
// by serial.
func expectRevoked(inv []*store.Certificate, caID string, partition int, after time.Time) []listed {
	var out []listed
	for _, c := range inv {
		if c.CAID == "" || c.CAID != caID || c.Status != store.CertRevoked ||
			partition >= 0 && c.Partition != partition ||
			!after.IsZero() && !c.NotAfter.After(after) {
			continue
		}
		out = append(out, *entryOf(c))
	}
	sortEntries(out)
	return out
}

// collectRevoked returns what ListRevoked reports, sorted by serial: the
// order of the walk is not part of the contract.
func collectRevoked(t *testing.T, s store.Store, caID string, partition int, after time.Time) []listed {
	t.Helper()
	var out []listed
	err := s.ListRevoked(ctx(t), caID, partition, after, func(e store.RevokedEntry) error {
		out = append(out, listed{Serial: string(e.Serial), RevokedAt: e.RevokedAt, Reason: e.Reason})
		return nil
	})
	must(t, err, "ListRevoked(%q, %d, %v)", caID, partition, after)
	sortEntries(out)
	for i := 1; i < len(out); i++ {
		if out[i].Serial == out[i-1].Serial {
			t.Fatalf("ListRevoked(%q, %d, %v) reported %s twice", caID, partition, after, out[i].Serial)
		}
	}
	return out
}

// entryOf returns the CRL entry of a revoked certificate.
func entryOf(c *store.Certificate) *listed {
	return &listed{Serial: c.Serial, RevokedAt: inUTC(c.RevokedAt), Reason: c.Reason}
}

func sortEntries(es []listed) {
	slices.SortFunc(es, func(a, b listed) int { return cmp.Compare(a.Serial, b.Serial) })
}

// entrySerials returns the Serial of each entry.
func entrySerials(es []listed) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Serial
	}
	return out
}

// stored returns c as a store returns it: times in UTC.
func stored(c *store.Certificate) *store.Certificate {
	want := clone(c)
	want.NotBefore, want.NotAfter = inUTC(want.NotBefore), inUTC(want.NotAfter)
	want.CreatedAt, want.RevokedAt = inUTC(want.CreatedAt), inUTC(want.RevokedAt)
	return want
}

// checkStored fails the test unless GetCertificateByCA returns want.
func checkStored(t *testing.T, s store.Store, want *store.Certificate) {
	t.Helper()
	got, err := s.GetCertificateByCA(ctx(t), want.CAID, want.Serial)
	must(t, err, "GetCertificateByCA(%q, %q)", want.CAID, want.Serial)
	checkEqual(t, "stored "+want.Serial, want, got)
}
