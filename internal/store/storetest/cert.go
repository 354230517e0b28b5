package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/store"
)

// certCases checks InsertCertificate, GetCertificate and CountCertificates.
func certCases() []testCase {
	// roundTrip stores c under a CA (unless it is an import) and reads it back.
	roundTrip := func(mod func(c *store.Certificate)) func(t *testing.T, s store.Store) {
		return func(t *testing.T, s store.Store) {
			ca := caFixture("ca-1", "one")
			ca.CRLPartitions = 64
			createCA(t, s, ca)
			c := certFixture(ca.ID, "1f")
			mod(c)
			want := clone(c)
			insertCert(t, s, c)
			want.Seq = c.Seq
			want.NotBefore, want.NotAfter = inUTC(want.NotBefore), inUTC(want.NotAfter)
			want.CreatedAt, want.RevokedAt = inUTC(want.CreatedAt), inUTC(want.RevokedAt)
			got, err := s.GetCertificate(ctx(t), c.Serial)
			must(t, err, "GetCertificate(%q)", c.Serial)
			checkEqual(t, "GetCertificate", want, got)
			list, err := s.ListCertificates(ctx(t), store.CertFilter{Serial: c.Serial, Now: t0})
			must(t, err, "ListCertificates")
			if len(list) != 1 {
				t.Fatalf("ListCertificates(Serial %q): got %d, want 1", c.Serial, len(list))
			}
			checkEqual(t, "ListCertificates", want, list[0])
			if c.CAID != "" {
				got, err := s.GetCertificateByCA(ctx(t), c.CAID, c.Serial)
				must(t, err, "GetCertificateByCA(%q, %q)", c.CAID, c.Serial)
				checkEqual(t, "GetCertificateByCA", want, got)
			}
		}
	}

	return []testCase{
		{"ok/active", roundTrip(func(c *store.Certificate) {})},
		{"ok/revoked", roundTrip(func(c *store.Certificate) {
			c.Status = store.CertRevoked
			c.RevokedAt = t0.Add(time.Hour)
			c.Reason = 4 // superseded
			c.Managed = false
		})},
		{"ok/imported", roundTrip(func(c *store.Certificate) {
			c.CAID = ""
			c.IssuerKey = "ext:" + fmt.Sprintf("%064x", 42)
			c.Imported, c.Managed = true, false
			c.Requester, c.Profile = "", ""
			c.NotAfter = farFuture
		})},
		{"ok/empty-der-no-sans", roundTrip(func(c *store.Certificate) {
			c.DER = []byte{}
			c.SANs = nil
			c.Subject = ""
		})},
		{"ok/nil-der", roundTrip(func(c *store.Certificate) { c.DER = nil })},
		{"ok/partition", roundTrip(func(c *store.Certificate) { c.Partition = 63 })},
		{"ok/on-hold-partition", roundTrip(func(c *store.Certificate) {
			c.Status, c.Reason, c.RevokedAt = store.CertRevoked, store.ReasonCertificateHold, t0
			c.Partition = 2
		})},
		{"ok/odd-sans", roundTrip(func(c *store.Certificate) {
			c.SANs = []string{"dns:*.example", "uri:https://x/%41?a=1&b='2'", `email:"q\"uote"@example`, "dns:ünïcode.example", ""}
		})},
		{"ok/non-utc-times", roundTrip(func(c *store.Certificate) {
			zone := time.FixedZone("UTC-08", -8*3600)
			c.NotBefore = c.NotBefore.In(zone)
			c.NotAfter = c.NotAfter.In(zone)
			c.CreatedAt = c.CreatedAt.In(zone)
		})},
		{"ok/seq-increases", func(t *testing.T, s store.Store) {
			ca := createCA(t, s, caFixture("ca-1", "one"))
			var last int64
			for i := range 5 {
				c := insertCert(t, s, certFixture(ca.ID, fmt.Sprintf("%x", i+1)))
				if c.Seq <= last {
					t.Fatalf("insert %d: Seq %d after %d, want increasing", i, c.Seq, last)
				}
				last = c.Seq
			}
		}},
		{"ok/same-serial-other-issuer", func(t *testing.T, s store.Store) {
			a := createCA(t, s, caFixture("ca-a", "a"))
			b := createCA(t, s, caFixture("ca-b", "b"))
			first := insertCert(t, s, certFixture(a.ID, "abc"))
			second := certFixture(b.ID, "abc")
			second.Subject = "CN=second"
			insertCert(t, s, second)
			imp := certFixture("", "abc")
			imp.IssuerKey, imp.Imported = "ext:00", true
			insertCert(t, s, imp)
			if first.Seq == second.Seq || second.Seq == imp.Seq {
				t.Fatalf("Seq reused: %d, %d, %d", first.Seq, second.Seq, imp.Seq)
			}
			got, err := s.GetCertificate(ctx(t), "abc")
			must(t, err, "GetCertificate")
			checkEqual(t, "GetCertificate returns the newest", imp, got)
			list, err := s.ListCertificates(ctx(t), store.CertFilter{Serial: "abc", Now: t0})
			must(t, err, "ListCertificates")
			if len(list) != 3 || list[0].Seq != first.Seq || list[1].Seq != second.Seq || list[2].Seq != imp.Seq {
				t.Fatalf("ListCertificates(Serial abc): got %v, want seqs %d, %d, %d", seqs(list), first.Seq, second.Seq, imp.Seq)
			}
		}},
		{"fail/duplicate", func(t *testing.T, s store.Store) {
			ca := createCA(t, s, caFixture("ca-1", "one"))
			first := insertCert(t, s, certFixture(ca.ID, "abc"))
			dup := certFixture(ca.ID, "abc")
			dup.Subject, dup.DER, dup.Status = "CN=impostor", []byte("other"), store.CertRevoked
			wantErr(t, s.InsertCertificate(ctx(t), dup), store.ErrConflict, "InsertCertificate of a duplicate")
			if dup.Seq != 0 {
				t.Errorf("refused InsertCertificate set Seq to %d", dup.Seq)
			}
			got, err := s.GetCertificate(ctx(t), "abc")
			must(t, err, "GetCertificate")
			checkEqual(t, "first record after conflict", first, got)
			n, err := s.CountCertificates(ctx(t), ca.ID)
			must(t, err, "CountCertificates")
			if n != 1 {
				t.Errorf("CountCertificates = %d after a refused duplicate, want 1", n)
			}
			// The store still takes new rows after a conflict.
			insertCert(t, s, certFixture(ca.ID, "abd"))
		}},
		{"fail/unknown-ca", func(t *testing.T, s store.Store) {
			c := certFixture("no-such-ca", "abc")
			wantErr(t, s.InsertCertificate(ctx(t), c), store.ErrNotFound, "InsertCertificate under an unknown CA")
			if _, err := s.GetCertificate(ctx(t), "abc"); !store.IsNotFound(err) {
				t.Errorf("GetCertificate of the refused certificate: err = %v, want not found", err)
			}
		}},
		{"fail/get-unknown", func(t *testing.T, s store.Store) {
			ca := createCA(t, s, caFixture("ca-1", "one"))
			insertCert(t, s, certFixture(ca.ID, "abc"))
			for _, serial := range []string{"abd", "ab", "ABC", "", "%", "abc'--"} {
				_, err := s.GetCertificate(ctx(t), serial)
				wantErr(t, err, store.ErrNotFound, "GetCertificate(%q)", serial)
			}
		}},
		{"ok/count", func(t *testing.T, s store.Store) {
			a := createCA(t, s, caFixture("ca-a", "a"))
			b := createCA(t, s, caFixture("ca-b", "b"))
			for i := range 3 {
				insertCert(t, s, certFixture(a.ID, fmt.Sprintf("a%d", i)))
			}
			insertCert(t, s, certFixture(b.ID, "b0"))
			imp := certFixture("", "e0")
			imp.IssuerKey = "ext:00"
			insertCert(t, s, imp)
			for _, tc := range []struct {
				caID string
				want int64
			}{{a.ID, 3}, {b.ID, 1}, {"no-such-ca", 0}} {
				n, err := s.CountCertificates(ctx(t), tc.caID)
				must(t, err, "CountCertificates(%q)", tc.caID)
				if n != tc.want {
					t.Errorf("CountCertificates(%q) = %d, want %d", tc.caID, n, tc.want)
				}
			}
		}},
		{"ok/concurrent-inserts", concurrentInserts},
	}
}

// concurrentInserts has 32 goroutines insert 50 certificates each, and all of
// them race for one shared serial. Every insert that returned nil must then
// be listed exactly once, under the Seq it was given, and exactly one
// contender for the shared serial must have won.
func concurrentInserts(t *testing.T, s store.Store) {
	const workers, perWorker = 32, 50
	cas := []*store.CA{
		createCA(t, s, caFixture("ca-a", "a")),
		createCA(t, s, caFixture("ca-b", "b")),
	}
	var (
		mu        sync.Mutex
		inserted  = map[string]*store.Certificate{} // by serial
		conflicts int
		wg        sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			ca := cas[w%len(cas)]
			for i := range perWorker + 1 {
				serial := fmt.Sprintf("%02x%04x", w, i)
				c := certFixture(ca.ID, serial)
				if i == perWorker/2 {
					c = certFixture(cas[0].ID, "5ea1") // the shared serial
				}
				err := s.InsertCertificate(ctx(t), c)
				mu.Lock()
				switch {
				case err == nil:
					if prev := inserted[c.Serial]; prev != nil {
						t.Errorf("serial %s inserted twice (Seq %d and %d)", c.Serial, prev.Seq, c.Seq)
					}
					inserted[c.Serial] = c
				case store.IsConflict(err) && c.Serial == "5ea1":
					conflicts++
				default:
					t.Errorf("InsertCertificate(%s): %v", c.Serial, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if inserted["5ea1"] == nil || conflicts != workers-1 {
		t.Errorf("shared serial: won %v, %d conflicts; want one winner and %d conflicts", inserted["5ea1"] != nil, conflicts, workers-1)
	}
	if want := workers*perWorker + 1; len(inserted) != want {
		t.Errorf("%d inserts returned nil, want %d", len(inserted), want)
	}

	seen := map[int64]bool{}
	for _, c := range listAll(t, s, store.CertFilter{Limit: 1000, Now: t0}) {
		if seen[c.Seq] {
			t.Fatalf("Seq %d listed twice", c.Seq)
		}
		seen[c.Seq] = true
		want := inserted[c.Serial]
		if want == nil {
			t.Errorf("listed serial %s (Seq %d) that no insert returned", c.Serial, c.Seq)
			continue
		}
		if c.Seq != want.Seq || c.CAID != want.CAID {
			t.Errorf("serial %s: listed with Seq %d, CA %q; insert returned Seq %d, CA %q", c.Serial, c.Seq, c.CAID, want.Seq, want.CAID)
		}
		delete(inserted, c.Serial)
	}
	for serial, c := range inserted {
		t.Errorf("serial %s: insert returned nil with Seq %d, but it is not listed", serial, c.Seq)
	}
	var total int64
	for _, ca := range cas {
		n, err := s.CountCertificates(ctx(t), ca.ID)
		must(t, err, "CountCertificates")
		total += n
	}
	if total != int64(len(seen)) {
		t.Errorf("CountCertificates sums to %d, listed %d", total, len(seen))
	}
}

// listAll walks every page of f and checks that Seq strictly increases.
func listAll(t *testing.T, s store.Store, f store.CertFilter) []*store.Certificate {
	t.Helper()
	var all []*store.Certificate
	for {
		page, err := s.ListCertificates(ctx(t), f)
		must(t, err, "ListCertificates(After %d)", f.After)
		if len(page) == 0 {
			return all
		}
		if f.Limit > 0 && len(page) > f.Limit {
			t.Fatalf("ListCertificates(Limit %d) returned %d", f.Limit, len(page))
		}
		for _, c := range page {
			if c.Seq <= f.After {
				t.Fatalf("ListCertificates(After %d) returned Seq %d", f.After, c.Seq)
			}
			f.After = c.Seq
		}
		all = append(all, page...)
	}
}

// seqs returns the Seq of each certificate.
func seqs(cs []*store.Certificate) []int64 {
	out := make([]int64, len(cs))
	for i, c := range cs {
		out[i] = c.Seq
	}
	return out
}
