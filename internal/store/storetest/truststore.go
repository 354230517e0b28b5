package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/store"
)

// tsFixture returns a trust store with one member of each kind: a
// reference to caID, an external certificate, an uploaded CRL and a CRL URL.
func tsFixture(id, name, caID string) *store.TrustStore {
	return &store.TrustStore{
		ID: id, Name: name,
		CreatedAt: t0, UpdatedAt: t0,
		CAs:   []store.TrustStoreCA{{CAID: caID, AddedAt: t0}},
		Certs: []store.TrustStoreCert{tsCert("ext-1")},
		CRLs:  []store.TrustStoreCRL{tsUpload(id+"-crl-1", "crl:ext-1"), tsURL(id+"-crl-2", "http://pki.example/a.crl")},
	}
}

// tsCert returns an external certificate member whose fingerprint is fp.
func tsCert(fp string) store.TrustStoreCert {
	return store.TrustStoreCert{Fingerprint: fp, DER: []byte("der\x00of " + fp), AddedAt: t0.Add(time.Second)}
}

// tsUpload returns an uploaded CRL source.
func tsUpload(id, key string) store.TrustStoreCRL {
	return store.TrustStoreCRL{
		ID: id, Key: key, DER: []byte("crl\x00" + id), IssuerRef: "ext-1", Number: "18446744073709551617",
		ThisUpdate: t0.Add(-time.Hour), NextUpdate: farFuture, AddedAt: t0.Add(2 * time.Second),
	}
}

// tsURL returns a CRL URL source: no DER, no dates.
func tsURL(id, url string) store.TrustStoreCRL {
	return store.TrustStoreCRL{ID: id, Key: "url:" + url, URL: url, AddedAt: t0.Add(3 * time.Second)}
}

// createTS stores ts, failing the test on error, and checks that the
// store set its version to 1.
func createTS(t *testing.T, s store.Store, ts *store.TrustStore) *store.TrustStore {
	t.Helper()
	must(t, s.CreateTrustStore(ctx(t), ts), "CreateTrustStore(%q)", ts.Name)
	if ts.Version != 1 {
		t.Fatalf("CreateTrustStore(%q) set Version %d, want 1", ts.Name, ts.Version)
	}
	return ts
}

// storedTS returns ts as a store returns it: times in UTC. withCRLDER false
// drops the DER of uploaded CRLs, as ListTrustStores does.
func storedTS(ts *store.TrustStore, withCRLDER bool) *store.TrustStore {
	w := clone(ts)
	w.CreatedAt, w.UpdatedAt = inUTC(w.CreatedAt), inUTC(w.UpdatedAt)
	w.CAs = slices.Clone(w.CAs)
	for i := range w.CAs {
		w.CAs[i].AddedAt = inUTC(w.CAs[i].AddedAt)
	}
	w.Certs = slices.Clone(w.Certs)
	for i := range w.Certs {
		w.Certs[i].AddedAt = inUTC(w.Certs[i].AddedAt)
	}
	w.CRLs = slices.Clone(w.CRLs)
	for i := range w.CRLs {
		c := &w.CRLs[i]
		c.ThisUpdate, c.NextUpdate, c.AddedAt = inUTC(c.ThisUpdate), inUTC(c.NextUpdate), inUTC(c.AddedAt)
		if !withCRLDER {
			c.DER = nil
		}
	}
	return w
}

// checkTS fails the test unless got equals want, members included.
func checkTS(t *testing.T, what string, want, got *store.TrustStore) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: got nil", what)
		return
	}
	head := func(ts *store.TrustStore) *store.TrustStore {
		h := clone(ts)
		h.CAs, h.Certs, h.CRLs = nil, nil, nil
		return h
	}
	checkEqual(t, what, head(want), head(got))
	checkMembers(t, what+": CAs", want.CAs, got.CAs)
	checkMembers(t, what+": Certs", want.Certs, got.Certs)
	checkMembers(t, what+": CRLs", want.CRLs, got.CRLs)
}

// checkMembers compares member lists element by element; nil and empty
// lists are equal.
func checkMembers[T any](t *testing.T, what string, want, got []T) {
	t.Helper()
	if len(want) != len(got) {
		t.Errorf("%s: %d members, want %d: got %+v", what, len(got), len(want), got)
		return
	}
	for i := range want {
		checkEqual(t, fmt.Sprintf("%s[%d]", what, i), &want[i], &got[i])
	}
}

// checkTSStored fails the test unless GetTrustStore, GetTrustStoreVersion
// and ListTrustStores all show want.
func checkTSStored(t *testing.T, s store.Store, want *store.TrustStore) {
	t.Helper()
	got, err := s.GetTrustStore(ctx(t), want.Name)
	must(t, err, "GetTrustStore(%q)", want.Name)
	checkTS(t, "GetTrustStore("+want.Name+")", storedTS(want, true), got)
	id, v, err := s.GetTrustStoreVersion(ctx(t), want.Name)
	must(t, err, "GetTrustStoreVersion(%q)", want.Name)
	if id != want.ID || v != want.Version {
		t.Errorf("GetTrustStoreVersion(%q) = %q, %d; want %q, %d", want.Name, id, v, want.ID, want.Version)
	}
	list, err := s.ListTrustStores(ctx(t))
	must(t, err, "ListTrustStores")
	for _, ts := range list {
		if ts.ID == want.ID {
			checkTS(t, "ListTrustStores("+want.Name+")", storedTS(want, false), ts)
			return
		}
	}
	t.Errorf("ListTrustStores lacks %q", want.Name)
}

// trustStoreCases checks CreateTrustStore, GetTrustStore,
// GetTrustStoreVersion, ListTrustStores and ChangeTrustStore.
func trustStoreCases() []testCase {
	t1 := t0.Add(time.Hour)
	return []testCase{
		{"ok/create-get-list", func(t *testing.T, s store.Store) {
			ca := createCA(t, s, caFixture("ca-1", "one"))
			zone := time.FixedZone("UTC-7", -7*3600)
			ts := tsFixture("ts-1", "partners", ca.ID)
			ts.CreatedAt = ts.CreatedAt.In(zone)
			ts.CRLs[0].NextUpdate = ts.CRLs[0].NextUpdate.In(zone)
			createTS(t, s, ts)
			empty := createTS(t, s, &store.TrustStore{ID: "ts-0", Name: "empty", CreatedAt: t0, UpdatedAt: t0})
			checkTSStored(t, s, ts)
			checkTSStored(t, s, empty)
			list, err := s.ListTrustStores(ctx(t))
			must(t, err, "ListTrustStores")
			var names []string
			for _, l := range list {
				names = append(names, l.Name)
			}
			if !slices.Equal(names, []string{"empty", "partners"}) {
				t.Errorf("ListTrustStores names = %q, want [empty partners] (by name)", names)
			}
			got, err := s.GetTrustStore(ctx(t), "partners")
			must(t, err, "GetTrustStore")
			if got.CRLs[1].DER != nil {
				t.Errorf("a URL source came back with DER %x, want nil", got.CRLs[1].DER)
			}
		}},
		{"ok/empty-store", func(t *testing.T, s store.Store) {
			list, err := s.ListTrustStores(ctx(t))
			must(t, err, "ListTrustStores")
			if len(list) != 0 {
				t.Errorf("ListTrustStores of an empty store = %d stores", len(list))
			}
		}},
		{"fail/missing", func(t *testing.T, s store.Store) {
			ca := createCA(t, s, caFixture("ca-1", "one"))
			createTS(t, s, tsFixture("ts-1", "partners", ca.ID))
			for _, name := range []string{"partner", "Partners", "", "ts-1", "partners "} {
				_, err := s.GetTrustStore(ctx(t), name)
				wantErr(t, err, store.ErrNotFound, "GetTrustStore(%q)", name)
				_, _, err = s.GetTrustStoreVersion(ctx(t), name)
				wantErr(t, err, store.ErrNotFound, "GetTrustStoreVersion(%q)", name)
			}
			_, err := s.ChangeTrustStore(ctx(t), "ts-2", 1, store.TrustStoreChange{At: t1})
			wantErr(t, err, store.ErrNotFound, "ChangeTrustStore of a missing store")
		}},
		{"fail/create-conflicts", func(t *testing.T, s store.Store) {
			ca := createCA(t, s, caFixture("ca-1", "one"))
			first := createTS(t, s, tsFixture("ts-1", "partners", ca.ID))
			dupCA := tsFixture("ts-3", "c", ca.ID)
			dupCA.CAs = append(dupCA.CAs, dupCA.CAs[0])
			dupCert := tsFixture("ts-4", "d", ca.ID)
			dupCert.Certs = append(dupCert.Certs, tsCert("ext-1"))
			dupKey := tsFixture("ts-5", "e", ca.ID)
			dupKey.CRLs = append(dupKey.CRLs, tsUpload("ts-5-crl-9", "crl:ext-1"))
			reusedCRLID := tsFixture("ts-6", "f", ca.ID)
			reusedCRLID.CRLs[0].ID = first.CRLs[0].ID
			for _, ts := range []*store.TrustStore{
				tsFixture("ts-2", "partners", ca.ID), // taken name
				tsFixture("ts-1", "other", ca.ID),    // taken ID
				dupCA, dupCert, dupKey, reusedCRLID,
			} {
				wantErr(t, s.CreateTrustStore(ctx(t), ts), store.ErrConflict, "CreateTrustStore(%s, %s)", ts.ID, ts.Name)
				if ts.Name != "partners" {
					if _, err := s.GetTrustStore(ctx(t), ts.Name); !store.IsNotFound(err) {
						t.Errorf("a refused CreateTrustStore(%s) left a store (err = %v)", ts.Name, err)
					}
				}
			}
			checkTSStored(t, s, first)
		}},
		{"fail/create-unknown-ca", func(t *testing.T, s store.Store) {
			ts := tsFixture("ts-1", "partners", "no-such-ca")
			wantErr(t, s.CreateTrustStore(ctx(t), ts), store.ErrNotFound, "CreateTrustStore with an unknown CA")
			if _, err := s.GetTrustStore(ctx(t), "partners"); !store.IsNotFound(err) {
				t.Errorf("a refused CreateTrustStore left a store (err = %v)", err)
			}
			// Nothing half-written blocks a second attempt.
			createCA(t, s, caFixture("no-such-ca", "late"))
			createTS(t, s, tsFixture("ts-1", "partners", "no-such-ca"))
		}},
		{"ok/change", func(t *testing.T, s store.Store) {
			a := createCA(t, s, caFixture("ca-a", "a"))
			b := createCA(t, s, caFixture("ca-b", "b"))
			ts := createTS(t, s, tsFixture("ts-1", "partners", a.ID))
			want := clone(ts)

			// Add one of each.
			ch := store.TrustStoreChange{
				AddCAs:   []store.TrustStoreCA{{CAID: b.ID, AddedAt: t1}},
				AddCerts: []store.TrustStoreCert{tsCert("ext-2")},
				AddCRLs:  []store.TrustStoreCRL{tsURL("crl-3", "https://pki.example/b.crl")},
				At:       t1.In(time.FixedZone("UTC+1", 3600)),
			}
			got, err := s.ChangeTrustStore(ctx(t), ts.ID, 1, ch)
			must(t, err, "ChangeTrustStore(add)")
			want.Version, want.UpdatedAt = 2, t1
			want.CAs = append(slices.Clone(want.CAs), ch.AddCAs...)
			want.Certs = append(slices.Clone(want.Certs), ch.AddCerts...)
			want.CRLs = append(slices.Clone(want.CRLs), ch.AddCRLs...)
			checkTS(t, "ChangeTrustStore(add)", storedTS(want, true), got)
			checkTSStored(t, s, want)

			// Remove the first of each, and replace an uploaded CRL by one
			// with the same key, in one change.
			t2 := t1.Add(time.Hour)
			repl := tsUpload("crl-4", "crl:ext-1")
			repl.Number = "2"
			ch = store.TrustStoreChange{
				RemoveCAs: []string{a.ID}, RemoveCerts: []string{"ext-1"}, RemoveCRLs: []string{ts.CRLs[0].ID},
				AddCRLs: []store.TrustStoreCRL{repl},
				At:      t2,
			}
			got, err = s.ChangeTrustStore(ctx(t), ts.ID, 2, ch)
			must(t, err, "ChangeTrustStore(remove, replace)")
			want.Version, want.UpdatedAt = 3, t2
			want.CAs = want.CAs[1:]
			want.Certs = want.Certs[1:]
			want.CRLs = append(slices.Clone(want.CRLs[1:]), repl)
			checkTS(t, "ChangeTrustStore(remove, replace)", storedTS(want, true), got)
			checkTSStored(t, s, want)

			// A removed member can be added again; it goes last.
			ch = store.TrustStoreChange{AddCAs: []store.TrustStoreCA{{CAID: a.ID, AddedAt: t2}}, At: t2}
			got, err = s.ChangeTrustStore(ctx(t), ts.ID, 3, ch)
			must(t, err, "ChangeTrustStore(re-add)")
			want.Version = 4
			want.CAs = append(slices.Clone(want.CAs), ch.AddCAs...)
			checkTS(t, "ChangeTrustStore(re-add)", storedTS(want, true), got)
			// An empty change is a change too.
			got, err = s.ChangeTrustStore(ctx(t), ts.ID, 4, store.TrustStoreChange{At: t2})
			must(t, err, "ChangeTrustStore(empty)")
			if got.Version != 5 {
				t.Errorf("an empty change made version %d, want 5", got.Version)
			}
		}},
		{"fail/change-refused", func(t *testing.T, s store.Store) {
			a := createCA(t, s, caFixture("ca-a", "a"))
			b := createCA(t, s, caFixture("ca-b", "b"))
			ts := createTS(t, s, tsFixture("ts-1", "partners", a.ID))
			other := createTS(t, s, tsFixture("ts-2", "other", a.ID))
			addB := []store.TrustStoreCA{{CAID: b.ID, AddedAt: t1}}
			for _, tc := range []struct {
				name    string
				version int64
				ch      store.TrustStoreChange
				target  error
			}{
				{"stale version", 0, store.TrustStoreChange{AddCAs: addB}, store.ErrConflict},
				{"future version", 2, store.TrustStoreChange{AddCAs: addB}, store.ErrConflict},
				{"CA already in", 1, store.TrustStoreChange{AddCAs: addB[:1:1], AddCerts: []store.TrustStoreCert{tsCert("ext-1")}}, store.ErrConflict},
				{"CA twice", 1, store.TrustStoreChange{AddCAs: append(addB, addB...)}, store.ErrConflict},
				{"CA of ours twice", 1, store.TrustStoreChange{AddCAs: []store.TrustStoreCA{{CAID: a.ID, AddedAt: t1}}}, store.ErrConflict},
				{"CRL key taken", 1, store.TrustStoreChange{AddCAs: addB, AddCRLs: []store.TrustStoreCRL{tsURL("crl-9", "http://pki.example/a.crl")}}, store.ErrConflict},
				{"CRL ID taken in another store", 1, store.TrustStoreChange{AddCRLs: []store.TrustStoreCRL{tsURL(other.CRLs[1].ID, "http://x.example/")}}, store.ErrConflict},
				{"unknown CA", 1, store.TrustStoreChange{AddCerts: []store.TrustStoreCert{tsCert("ext-9")}, AddCAs: []store.TrustStoreCA{{CAID: "nope", AddedAt: t1}}}, store.ErrNotFound},
				{"remove missing CA", 1, store.TrustStoreChange{AddCAs: addB, RemoveCAs: []string{"ca-b"}}, store.ErrNotFound},
				{"remove missing cert", 1, store.TrustStoreChange{RemoveCAs: []string{a.ID}, RemoveCerts: []string{"ext-9"}}, store.ErrNotFound},
				{"remove CRL of another store", 1, store.TrustStoreChange{RemoveCRLs: []string{other.CRLs[0].ID}}, store.ErrNotFound},
				{"remove twice", 1, store.TrustStoreChange{RemoveCerts: []string{"ext-1", "ext-1"}}, store.ErrNotFound},
			} {
				tc.ch.At = t1
				got, err := s.ChangeTrustStore(ctx(t), ts.ID, tc.version, tc.ch)
				wantErr(t, err, tc.target, "ChangeTrustStore(%s)", tc.name)
				if got != nil {
					t.Errorf("ChangeTrustStore(%s) returned a store with its error", tc.name)
				}
			}
			checkTSStored(t, s, ts)
			checkTSStored(t, s, other)
		}},
		{"ok/stores-independent", func(t *testing.T, s store.Store) {
			a := createCA(t, s, caFixture("ca-a", "a"))
			one := createTS(t, s, tsFixture("ts-1", "one", a.ID))
			// The same CA, certificate and CRL key in another store.
			two := createTS(t, s, tsFixture("ts-2", "two", a.ID))
			got, err := s.ChangeTrustStore(ctx(t), two.ID, 1, store.TrustStoreChange{
				RemoveCAs: []string{a.ID}, RemoveCerts: []string{"ext-1"}, RemoveCRLs: []string{two.CRLs[0].ID, two.CRLs[1].ID}, At: t1,
			})
			must(t, err, "ChangeTrustStore(two)")
			if len(got.CAs)+len(got.Certs)+len(got.CRLs) != 0 {
				t.Errorf("store two after removing all: %+v", got)
			}
			checkTSStored(t, s, one)
		}},
		{"ok/concurrent-changes", concurrentTSChanges},
		{"fail/cancelled", func(t *testing.T, s store.Store) {
			a := createCA(t, s, caFixture("ca-a", "a"))
			ts := createTS(t, s, tsFixture("ts-1", "partners", a.ID))
			c, cancel := context.WithCancel(context.Background())
			cancel()
			wantCanceled := func(err error, what string) {
				t.Helper()
				if !errors.Is(err, context.Canceled) {
					t.Errorf("%s with a cancelled context: err = %v, want one wrapping context.Canceled", what, err)
				}
			}
			wantCanceled(s.CreateTrustStore(c, tsFixture("ts-2", "other", a.ID)), "CreateTrustStore")
			_, err := s.ChangeTrustStore(c, ts.ID, 1, store.TrustStoreChange{RemoveCAs: []string{a.ID}, At: t1})
			wantCanceled(err, "ChangeTrustStore")
			_, err = s.GetTrustStore(c, ts.Name)
			wantCanceled(err, "GetTrustStore")
			_, _, err = s.GetTrustStoreVersion(c, ts.Name)
			wantCanceled(err, "GetTrustStoreVersion")
			_, err = s.ListTrustStores(c)
			wantCanceled(err, "ListTrustStores")
			if _, err := s.GetTrustStore(ctx(t), "other"); !store.IsNotFound(err) {
				t.Errorf("cancelled CreateTrustStore left a store (err = %v)", err)
			}
			checkTSStored(t, s, ts)
		}},
	}
}

// concurrentTSChanges has goroutines add one certificate each to one trust
// store, every one reading the version and retrying on a conflict: no
// change is lost, every version is used once, and the final version counts
// the changes.
func concurrentTSChanges(t *testing.T, s store.Store) {
	a := createCA(t, s, caFixture("ca-a", "a"))
	ts := createTS(t, s, tsFixture("ts-1", "partners", a.ID))
	const workers = 8
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		versions  = map[int64]string{}
		conflicts int
	)
	for i := range workers {
		wg.Go(func() {
			fp := fmt.Sprintf("w-%d", i)
			for attempt := 0; attempt < 100; attempt++ {
				_, v, err := s.GetTrustStoreVersion(ctx(t), ts.Name)
				if err != nil {
					t.Errorf("GetTrustStoreVersion: %v", err)
					return
				}
				got, err := s.ChangeTrustStore(ctx(t), ts.ID, v, store.TrustStoreChange{
					AddCerts: []store.TrustStoreCert{tsCert(fp)}, At: t0,
				})
				if store.IsConflict(err) {
					mu.Lock()
					conflicts++
					mu.Unlock()
					continue
				}
				if err != nil {
					t.Errorf("ChangeTrustStore(%s): %v", fp, err)
					return
				}
				mu.Lock()
				if prev, dup := versions[got.Version]; dup {
					t.Errorf("version %d made by both %s and %s", got.Version, prev, fp)
				}
				versions[got.Version] = fp
				mu.Unlock()
				if got.Version != v+1 {
					t.Errorf("change from version %d made version %d", v, got.Version)
				}
				return
			}
			t.Errorf("%s: no change succeeded in 100 attempts", fp)
		})
	}
	wg.Wait()
	got, err := s.GetTrustStore(ctx(t), ts.Name)
	must(t, err, "GetTrustStore")
	if got.Version != 1+workers || len(got.Certs) != 1+workers {
		t.Errorf("after %d changes: version %d with %d certificates, want %d and %d (%d conflicts retried)",
			workers, got.Version, len(got.Certs), 1+workers, 1+workers, conflicts)
	}
}
