package storetest

import (
	"bytes"
	"testing"
	"time"

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
		{"ok/bootstrap-tokens", func(t *testing.T, s store.Store) {
			ca := createCA(t, s, caFixture("ca-1", "issuing"))
			a, b := bootstrapFixture("bt-a", ca.ID, "sa"), bootstrapFixture("bt-b", ca.ID, "sb")
			b.CreatedAt = a.CreatedAt.Add(time.Second)
			must(t, s.CreateBootstrapToken(ctx(t), b), "CreateBootstrapToken")
			must(t, s.CreateBootstrapToken(ctx(t), a), "CreateBootstrapToken")
			must(t, s.RevokeBootstrapToken(ctx(t), "bt-b"), "RevokeBootstrapToken")
			ts, err := s.ListBootstrapTokens(ctx(t))
			must(t, err, "ListBootstrapTokens")
			if len(ts) != 2 || ts[0].ID != "bt-a" || ts[1].ID != "bt-b" || !ts[1].Revoked {
				t.Errorf("ListBootstrapTokens = %+v", ts)
			}
		}},
		{"ok/events-copy", func(t *testing.T, s store.Store) {
			for _, id := range []string{"ev-1", "ev-2", "ev-3"} {
				_, err := s.AddEvent(ctx(t), eventFixture(id, "key-"+id), []string{"hook-a", "hook-b"})
				must(t, err, "AddEvent")
			}
			must(t, s.MarkDelivered(ctx(t), "ev-1", "hook-a", t0.Add(time.Minute)), "MarkDelivered")
			must(t, s.MarkFailed(ctx(t), "ev-1", "hook-b", t0.Add(time.Hour), "503"), "MarkFailed")
			page, err := s.ListEvents(ctx(t), "", 2)
			must(t, err, "ListEvents")
			if len(page) != 2 || page[0].Event.ID != "ev-1" || len(page[0].Deliveries) != 2 || len(page[1].Deliveries) != 2 {
				t.Fatalf("ListEvents page 1 = %d events", len(page))
			}
			d0, d1 := page[0].Deliveries[0], page[0].Deliveries[1]
			if !d0.Delivered || !d0.DeliveredAt.Equal(t0.Add(time.Minute)) || d1.Delivered || d1.Attempts != 1 || d1.LastError != "503" ||
				!d1.NextAttempt.Equal(t0.Add(time.Hour)) {
				t.Errorf("delivery states = %+v %+v", d0, d1)
			}
			rest, err := s.ListEvents(ctx(t), page[1].Event.ID, 2)
			must(t, err, "ListEvents(page 2)")
			if len(rest) != 1 || rest[0].Event.ID != "ev-3" {
				t.Fatalf("ListEvents page 2 = %d events", len(rest))
			}
			// Restored as it was, in another store's place: here under a new ID and key.
			cp := *page[0]
			cp.Event.ID, cp.Event.Key = "ev-9", "key-ev-9"
			must(t, s.RestoreEvent(ctx(t), &cp), "RestoreEvent")
			wantErr(t, s.RestoreEvent(ctx(t), &cp), store.ErrConflict, "RestoreEvent(again)")
			got, err := s.ListEvents(ctx(t), "ev-8", 10)
			must(t, err, "ListEvents(restored)")
			if len(got) != 1 || len(got[0].Deliveries) != 2 || !got[0].Deliveries[0].Delivered || got[0].Deliveries[1].Attempts != 1 {
				t.Errorf("restored event = %+v", got)
			}
			due, err := s.DueDeliveries(ctx(t), t0.Add(2*time.Hour), 100)
			must(t, err, "DueDeliveries")
			n := 0
			for _, d := range due {
				if d.Event.ID == "ev-9" {
					n++
				}
			}
			if n != 1 {
				t.Errorf("the restored event has %d due deliveries, want 1 (the other was delivered)", n)
			}
		}},
	}
}
