package storetest

import (
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/store"
)

// caCases checks CreateCA, UpdateCA, GetCA, GetCAByID and ListCAs.
func caCases() []testCase {
	// roundTrip stores the CAs in order and reads each back by name and by ID.
	roundTrip := func(cas ...*store.CA) func(t *testing.T, s store.Store) {
		return func(t *testing.T, s store.Store) {
			for _, ca := range cas {
				ca := clone(ca) // cases share fixtures and run in parallel
				want := clone(ca)
				createCA(t, s, ca)
				want.NotBefore, want.NotAfter = inUTC(want.NotBefore), inUTC(want.NotAfter)
				want.CreatedAt, want.UpdatedAt = inUTC(want.CreatedAt), inUTC(want.UpdatedAt)
				got, err := s.GetCA(ctx(t), ca.Name)
				must(t, err, "GetCA(%q)", ca.Name)
				checkEqual(t, "GetCA", want, got)
				got, err = s.GetCAByID(ctx(t), ca.ID)
				must(t, err, "GetCAByID(%q)", ca.ID)
				checkEqual(t, "GetCAByID", want, got)
			}
		}
	}

	root := caFixture("ca-root", "root")
	inter := caFixture("ca-inter", "inter")
	inter.ParentID, inter.Depth, inter.PathLen = root.ID, 1, 0
	inter.KeyExported = true
	inter.NotAfter = farFuture

	pending := caFixture("ca-pending", "pending")
	pending.State = store.CAPending
	pending.ExternalParent = true
	pending.CSRDER = []byte("csr")
	pending.CertDER = nil
	pending.ChainDER = nil
	pending.NotBefore, pending.NotAfter = time.Time{}, time.Time{}

	offline := caFixture("ca-offline", "offline")
	offline.State = store.CAOffline
	offline.SealedKey = nil
	offline.CSRDER = []byte{}
	offline.CertDER = []byte{}
	offline.ChainDER = []byte("chain\x00with\x00nuls")
	offline.KeyExported = true

	partitioned := caFixture("ca-partitioned", "partitioned")
	partitioned.CRLPartitions = 64

	zone := time.FixedZone("UTC+05:30", 5*3600+1800)
	local := caFixture("ca-local", "local")
	local.NotBefore = local.NotBefore.In(zone)
	local.CreatedAt = t0.In(zone)
	local.UpdatedAt = t0.Add(time.Second).In(zone)

	return []testCase{
		{"ok/root", roundTrip(root)},
		{"ok/intermediate", roundTrip(clone(root), inter)},
		{"ok/pending-external-parent", roundTrip(pending)},
		{"ok/nil-and-empty-blobs", roundTrip(offline)},
		{"ok/non-utc-times", roundTrip(local)},
		{"ok/crl-partitions", roundTrip(partitioned, caFixture("ca-one-crl", "one-crl"))},
		{"ok/list-empty", func(t *testing.T, s store.Store) {
			cas, err := s.ListCAs(ctx(t))
			must(t, err, "ListCAs")
			if len(cas) != 0 {
				t.Fatalf("ListCAs on an empty store: got %d CAs", len(cas))
			}
		}},
		{"ok/list-by-creation", func(t *testing.T, s store.Store) {
			var want []*store.CA
			for i, name := range []string{"c", "a", "b"} {
				ca := caFixture("id-"+name, name)
				ca.CreatedAt = t0.Add(time.Duration(i) * time.Second)
				want = append(want, clone(createCA(t, s, ca)))
			}
			got, err := s.ListCAs(ctx(t))
			must(t, err, "ListCAs")
			if len(got) != len(want) {
				t.Fatalf("ListCAs: got %d CAs, want %d", len(got), len(want))
			}
			for i := range want {
				checkEqual(t, "ListCAs["+want[i].Name+"]", want[i], got[i])
			}
		}},
		{"ok/update", func(t *testing.T, s store.Store) {
			createCA(t, s, clone(root))
			ca := createCA(t, s, clone(pending))
			before := clone(ca)

			upd := clone(ca)
			// The mutable fields.
			upd.State = store.CAActive
			upd.SealedKey = nil
			upd.CSRDER = []byte{}
			upd.CertDER = []byte("issued")
			upd.ChainDER = []byte("external chain")
			upd.Subject = "CN=renamed"
			upd.NotBefore = t0.Add(time.Hour)
			upd.NotAfter = farFuture
			upd.KeyExported = true
			// Fields UpdateCA must leave as stored.
			upd.Name = "other-name"
			upd.ParentID = root.ID
			upd.ExternalParent = false
			upd.KeyType = "rsa-4096"
			upd.Depth = 7
			upd.PathLen = 3
			upd.CRLPartitions = 16
			upd.CreatedAt = t0.Add(-time.Hour)
			upd.UpdatedAt = time.Time{}

			must(t, s.UpdateCA(ctx(t), upd), "UpdateCA")
			if upd.UpdatedAt.IsZero() || upd.UpdatedAt.Location() != time.UTC {
				t.Fatalf("UpdateCA: UpdatedAt = %v, want the update's time in UTC", upd.UpdatedAt)
			}

			want := clone(before)
			want.State, want.SealedKey, want.CSRDER = upd.State, upd.SealedKey, upd.CSRDER
			want.CertDER, want.ChainDER, want.Subject = upd.CertDER, upd.ChainDER, upd.Subject
			want.NotBefore, want.NotAfter, want.KeyExported = upd.NotBefore, upd.NotAfter, upd.KeyExported
			want.UpdatedAt = upd.UpdatedAt
			got, err := s.GetCAByID(ctx(t), ca.ID)
			must(t, err, "GetCAByID")
			checkEqual(t, "after UpdateCA", want, got)
			if _, err := s.GetCA(ctx(t), upd.Name); !store.IsNotFound(err) {
				t.Errorf("GetCA(%q) after UpdateCA with a new name: err = %v, want not found: names are immutable", upd.Name, err)
			}
		}},
		{"fail/duplicate-name", func(t *testing.T, s store.Store) {
			first := createCA(t, s, clone(root))
			dup := caFixture("other-id", root.Name)
			wantErr(t, s.CreateCA(ctx(t), dup), store.ErrConflict, "CreateCA with a taken name")
			got, err := s.GetCA(ctx(t), root.Name)
			must(t, err, "GetCA")
			checkEqual(t, "first CA after conflict", first, got)
			if _, err := s.GetCAByID(ctx(t), dup.ID); !store.IsNotFound(err) {
				t.Errorf("GetCAByID(%q) of the refused CA: err = %v, want not found", dup.ID, err)
			}
		}},
		{"fail/duplicate-id", func(t *testing.T, s store.Store) {
			createCA(t, s, clone(root))
			dup := caFixture(root.ID, "other-name")
			wantErr(t, s.CreateCA(ctx(t), dup), store.ErrConflict, "CreateCA with a taken ID")
			if _, err := s.GetCA(ctx(t), dup.Name); !store.IsNotFound(err) {
				t.Errorf("GetCA(%q) of the refused CA: err = %v, want not found", dup.Name, err)
			}
		}},
		{"fail/unknown-parent", func(t *testing.T, s store.Store) {
			orphan := caFixture("ca-orphan", "orphan")
			orphan.ParentID = "no-such-ca"
			wantErr(t, s.CreateCA(ctx(t), orphan), store.ErrNotFound, "CreateCA with an unknown parent")
			if _, err := s.GetCA(ctx(t), orphan.Name); !store.IsNotFound(err) {
				t.Errorf("GetCA of the refused CA: err = %v, want not found", err)
			}
		}},
		{"fail/get-missing", func(t *testing.T, s store.Store) {
			createCA(t, s, clone(root))
			_, err := s.GetCA(ctx(t), "missing")
			wantErr(t, err, store.ErrNotFound, "GetCA(missing)")
			_, err = s.GetCA(ctx(t), root.ID) // an ID is not a name
			wantErr(t, err, store.ErrNotFound, "GetCA(id)")
			_, err = s.GetCAByID(ctx(t), "missing")
			wantErr(t, err, store.ErrNotFound, "GetCAByID(missing)")
			_, err = s.GetCAByID(ctx(t), root.Name) // a name is not an ID
			wantErr(t, err, store.ErrNotFound, "GetCAByID(name)")
		}},
		{"fail/update-missing", func(t *testing.T, s store.Store) {
			wantErr(t, s.UpdateCA(ctx(t), caFixture("missing", "missing")), store.ErrNotFound, "UpdateCA(missing)")
			cas, err := s.ListCAs(ctx(t))
			must(t, err, "ListCAs")
			if len(cas) != 0 {
				t.Errorf("UpdateCA of a missing CA created %d CAs", len(cas))
			}
		}},
	}
}
