package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/store"
)

// readCRLCases check store.Store.ReadCRL: it lists what ListRevoked lists,
// takes a number only when keep says so, and a higher number of a sequence
// always lists what a lower one did.
func readCRLCases() []testCase {
	return []testCase{
		{"ok/lists and numbers", func(t *testing.T, s store.Store) {
			inv := seedRevoked(t, s)
			// ca-a has 4 partitions, numbered 0-3; its full CRL takes
			// the numbers of key 4.
			for i, tc := range []struct {
				q    store.CRLQuery
				want int64
			}{
				{store.CRLQuery{CAID: "ca-a", Partition: -1, NumberPartition: 4}, 1},
				{store.CRLQuery{CAID: "ca-a", Partition: 1, NumberPartition: 1}, 1},
				{store.CRLQuery{CAID: "ca-a", Partition: -1, NumberPartition: 4, ExpiresAfter: t0}, 2},
				{store.CRLQuery{CAID: "ca-a", Partition: 1, NumberPartition: 1, ExpiresAfter: t0}, 2},
				{store.CRLQuery{CAID: "ca-a", Partition: 4, NumberPartition: 5}, 1}, // no such partition: empty
				{store.CRLQuery{CAID: "ca-b", Partition: -1, NumberPartition: 0}, 1},
				{store.CRLQuery{CAID: "ca-b", Partition: 0, NumberPartition: 0}, 2},
			} {
				name := fmt.Sprintf("case %d: ReadCRL(%+v)", i, tc.q)
				want := entrySerials(expectRevoked(inv, tc.q.CAID, tc.q.Partition, tc.q.ExpiresAfter))
				// keep false first: it sees the whole list, and no
				// number is used up.
				var kept []listed
				n, err := s.ReadCRL(ctx(t), tc.q, collect(&kept), func() bool {
					sortEntries(kept)
					if got := entrySerials(kept); !slices.Equal(got, want) {
						t.Errorf("%s: keep called after listing %v, want %v", name, got, want)
					}
					return false
				})
				if err != nil || n != 0 {
					t.Errorf("%s with keep false = %d, %v; want 0, nil", name, n, err)
				}
				r, err := readCRL(t, s, tc.q)
				must(t, err, "%s", name)
				if r.number != tc.want {
					t.Errorf("%s = number %d, want %d", name, r.number, tc.want)
				}
				if got := entrySerials(r.list); !slices.Equal(got, want) {
					t.Errorf("%s listed\n got %v\nwant %v", name, got, want)
					continue
				}
				for j, e := range expectRevoked(inv, tc.q.CAID, tc.q.Partition, tc.q.ExpiresAfter) {
					checkEqual(t, name+"["+e.Serial+"]", &e, &r.list[j])
				}
			}
			// One sequence with NextCRLNumber.
			n, err := s.NextCRLNumber(ctx(t), "ca-a", 4)
			must(t, err, "NextCRLNumber")
			if n != 3 {
				t.Errorf("NextCRLNumber after two ReadCRL = %d, want 3", n)
			}
		}},
		{"fail/fn error", func(t *testing.T, s store.Store) {
			seedRevoked(t, s)
			q := store.CRLQuery{CAID: "ca-a", Partition: -1, NumberPartition: 4}
			stop := errors.New("enough")
			calls := 0
			n, err := s.ReadCRL(ctx(t), q, func(store.RevokedEntry) error {
				if calls++; calls == 2 {
					return stop
				}
				return nil
			}, func() bool {
				t.Error("keep called after fn failed")
				return true
			})
			if !errors.Is(err, stop) || n != 0 {
				t.Fatalf("ReadCRL with fn failing = %d, %v; want 0 and fn's error", n, err)
			}
			// A context that ends during the walk fails the call too.
			c, cancel := context.WithCancel(ctx(t))
			defer cancel()
			n, err = s.ReadCRL(c, q, func(store.RevokedEntry) error {
				cancel()
				return nil
			}, func() bool {
				t.Error("keep called after the context ended")
				return true
			})
			if !errors.Is(err, context.Canceled) || n != 0 {
				t.Fatalf("ReadCRL cancelled during the walk = %d, %v; want 0 and context.Canceled", n, err)
			}
			r, err := readCRL(t, s, q)
			must(t, err, "ReadCRL after a failed one")
			if r.number != 1 {
				t.Errorf("ReadCRL after a failed one = number %d, want 1", r.number)
			}
		}},
		{"fail/unknown ca or bad sequence", func(t *testing.T, s store.Store) {
			createCA(t, s, caFixture("ca-a", "a"))
			for _, id := range []string{"no-such-ca", "a", ""} {
				_, err := readCRL(t, s, store.CRLQuery{CAID: id, Partition: -1})
				wantErr(t, err, store.ErrNotFound, "ReadCRL(%q)", id)
			}
			_, err := readCRL(t, s, store.CRLQuery{CAID: "ca-a", Partition: -1, NumberPartition: -1})
			if !fault.Is(err, fault.Invalid) {
				t.Errorf("ReadCRL of number partition -1: %v, want fault.Invalid", err)
			}
			r, err := readCRL(t, s, store.CRLQuery{CAID: "ca-a", Partition: -1})
			must(t, err, "ReadCRL")
			if r.number != 1 {
				t.Errorf("ReadCRL after refused calls = number %d, want 1", r.number)
			}
		}},
		{"ok/a revocation between two builders", revocationBetweenBuilders},
		{"ok/concurrent builders and revocations", concurrentBuilders},
	}
}

// crlRead is what one ReadCRL returned: its number and its list, sorted.
type crlRead struct {
	number int64
	list   []listed
}

// collect returns an fn for ReadCRL that appends each entry to out.
func collect(out *[]listed) func(store.RevokedEntry) error {
	return func(e store.RevokedEntry) error {
		*out = append(*out, listed{Serial: string(e.Serial), RevokedAt: e.RevokedAt, Reason: e.Reason})
		return nil
	}
}

// readCRL takes a number with ReadCRL and the list that goes with it,
// reading again, as its contract allows, while the store reports that
// another caller took the number first. It may run outside the test's
// goroutine: it reports errors instead of failing the test.
func readCRL(t *testing.T, s store.Store, q store.CRLQuery) (crlRead, error) {
	t.Helper()
	// Every conflict means another caller took a number, so callers as a
	// whole progress; the bound is far above what the cases need.
	const attempts = 100
	for range attempts {
		var r crlRead
		n, err := s.ReadCRL(ctx(t), q, collect(&r.list), func() bool { return true })
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return crlRead{}, err
		}
		if n <= 0 {
			return crlRead{}, fmt.Errorf("ReadCRL(%+v) kept the CRL but returned number %d", q, n)
		}
		r.number = n
		sortEntries(r.list)
		return r, nil
	}
	return crlRead{}, fmt.Errorf("ReadCRL(%+v): a conflict %d times in a row", q, attempts)
}

// checkCRLOrder fails the test unless, in number order, each list holds
// every serial of the one before: what must hold when nothing leaves the
// lists (no release, no expiry). Numbers must be distinct.
func checkCRLOrder(t *testing.T, reads []crlRead) {
	t.Helper()
	reads = slices.Clone(reads)
	slices.SortFunc(reads, func(a, b crlRead) int { return int(a.number - b.number) })
	for i := 1; i < len(reads); i++ {
		lo, hi := reads[i-1], reads[i]
		if lo.number == hi.number {
			t.Errorf("two reads took CRL number %d", lo.number)
			continue
		}
		have := map[string]bool{}
		for _, e := range hi.list {
			have[e.Serial] = true
		}
		for _, e := range lo.list {
			if !have[e.Serial] {
				t.Errorf("CRL %d lists %s but the newer CRL %d does not: %v against %v",
					lo.number, e.Serial, hi.number, entrySerials(lo.list), entrySerials(hi.list))
			}
		}
	}
}

// revocationBetweenBuilders interleaves two builders of one CRL, A and B,
// as two control-plane nodes would: A reads its list; then a certificate
// is revoked and B reads its list (with it) and takes a number; then A
// wants its number. Taking the number after reading the list, A's older
// list would get the higher number. A store must either make B wait for A
// (B then reads after A's number, and lists what A did) or refuse A's
// number (A reads again, and lists the revocation).
func revocationBetweenBuilders(t *testing.T, s store.Store) {
	ca := createCA(t, s, caFixture("ca-a", "a"))
	old := insertCert(t, s, certFixture(ca.ID, "0a"))
	_, err := s.RevokeCertificate(ctx(t), ca.ID, old.Serial, 1, t0)
	must(t, err, "RevokeCertificate(%s)", old.Serial)
	late := insertCert(t, s, certFixture(ca.ID, "0b"))
	q := store.CRLQuery{CAID: ca.ID, Partition: -1}

	var (
		b     crlRead
		bErr  error
		bDone = make(chan struct{})
		a     crlRead
		first = true
	)
	for attempt := 0; ; attempt++ {
		a = crlRead{}
		n, err := s.ReadCRL(ctx(t), q, collect(&a.list), func() bool {
			if first {
				first = false
				go func() {
					defer close(bDone)
					if _, bErr = s.RevokeCertificate(ctx(t), ca.ID, late.Serial, 1, t0.Add(time.Minute)); bErr != nil {
						return
					}
					b, bErr = readCRL(t, s, q)
				}()
				// A store that makes B wait for A's number keeps B from
				// finishing: A goes on after a while. Whether B finished
				// first or not, the order checked below must hold; the
				// wait only decides which of the two ways is exercised.
				select {
				case <-bDone:
				case <-time.After(200 * time.Millisecond):
				}
			}
			return true
		})
		if errors.Is(err, store.ErrConflict) && attempt < 10 {
			continue // B took a number since A read: A reads again
		}
		must(t, err, "ReadCRL of A")
		a.number = n
		sortEntries(a.list)
		break
	}
	<-bDone
	must(t, bErr, "revocation and ReadCRL of B")
	if !slices.ContainsFunc(b.list, func(e listed) bool { return e.Serial == late.Serial }) {
		t.Errorf("B's CRL %d, read after the revocation, lacks it: %v", b.number, entrySerials(b.list))
	}
	checkCRLOrder(t, []crlRead{a, b})
}

// concurrentBuilders runs builders that each revoke a certificate and then
// read a CRL, at the same time: in number order, no CRL lists less than
// the one before it, and each lists the revocation its builder made.
func concurrentBuilders(t *testing.T, s store.Store) {
	const workers, rounds = 4, 5
	ca := createCA(t, s, caFixture("ca-a", "a"))
	q := store.CRLQuery{CAID: ca.ID, Partition: -1}
	var (
		mu    sync.Mutex
		reads []crlRead
		wg    sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				c := certFixture(ca.ID, fmt.Sprintf("%x%02x", w+1, r))
				if err := s.InsertCertificate(ctx(t), c); err != nil {
					t.Errorf("InsertCertificate: %v", err)
					return
				}
				if _, err := s.RevokeCertificate(ctx(t), ca.ID, c.Serial, 1, t0); err != nil {
					t.Errorf("RevokeCertificate: %v", err)
					return
				}
				got, err := readCRL(t, s, q)
				if err != nil {
					t.Errorf("ReadCRL: %v", err)
					return
				}
				if !slices.ContainsFunc(got.list, func(e listed) bool { return e.Serial == c.Serial }) {
					t.Errorf("CRL %d, read after revoking %s, lacks it", got.number, c.Serial)
				}
				mu.Lock()
				reads = append(reads, got)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(reads) != workers*rounds {
		t.Fatalf("%d reads, want %d", len(reads), workers*rounds)
	}
	checkCRLOrder(t, reads)
}
