package storetest

import (
	"bytes"
	"testing"

	"github.com/trustgate/trustgate/internal/store"
)

// maintenanceCases checks what a copy of a store reads and sets.
func maintenanceCases() []testCase {
	return []testCase{
		{"ok/meta", func(t *testing.T, s store.Store) {
			must(t, s.PutMeta(ctx(t), "a", []byte{1, 2}), "PutMeta")
			must(t, s.PutMeta(ctx(t), "b", []byte{}), "PutMeta")
			m, err := s.ListMeta(ctx(t))
			must(t, err, "ListMeta")
			if len(m) != 2 || !bytes.Equal(m["a"], []byte{1, 2}) || m["b"] == nil || len(m["b"]) != 0 {
				t.Errorf("ListMeta = %v", m)
			}
		}},
		{"ok/crl-numbers", func(t *testing.T, s store.Store) {
			ca := createCA(t, s, caFixture("ca-1", "issuing"))
			for range 3 {
				_, err := s.NextCRLNumber(ctx(t), ca.ID, 0)
				must(t, err, "NextCRLNumber")
			}
			must(t, s.RaiseCRLNumber(ctx(t), ca.ID, 2, 40), "RaiseCRLNumber(new)")
			must(t, s.RaiseCRLNumber(ctx(t), ca.ID, 0, 1), "RaiseCRLNumber(lower)")
			ns, err := s.ListCRLNumbers(ctx(t))
			must(t, err, "ListCRLNumbers")
			if len(ns) != 2 || ns[0] != (store.CRLNumber{CAID: ca.ID, Partition: 0, Number: 3}) || ns[1].Number != 40 {
				t.Errorf("ListCRLNumbers = %+v", ns)
			}
			n, err := s.NextCRLNumber(ctx(t), ca.ID, 2)
			must(t, err, "NextCRLNumber")
			if n != 41 {
				t.Errorf("after raising to 40 the next number is %d", n)
			}
			wantErr(t, s.RaiseCRLNumber(ctx(t), "no-such-ca", 0, 5), store.ErrNotFound, "RaiseCRLNumber(unknown CA)")
		}},
		{"ok/truststore-version", func(t *testing.T, s store.Store) {
			ca := createCA(t, s, caFixture("ca-1", "issuing"))
			ts := createTS(t, s, tsFixture("ts-1", "edge", ca.ID))
			must(t, s.RaiseTrustStoreVersion(ctx(t), ts.ID, 7), "RaiseTrustStoreVersion")
			must(t, s.RaiseTrustStoreVersion(ctx(t), ts.ID, 2), "RaiseTrustStoreVersion(lower)")
			_, v, err := s.GetTrustStoreVersion(ctx(t), "edge")
			must(t, err, "GetTrustStoreVersion")
			if v != 7 {
				t.Errorf("version %d, want 7", v)
			}
			wantErr(t, s.RaiseTrustStoreVersion(ctx(t), "nope", 2), store.ErrNotFound, "RaiseTrustStoreVersion(missing)")
		}},
	}
}
