package lifecycle

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/store"
)

func TestCAExpiringEvents(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, filepath.Join(t.TempDir(), "tg.db"))
	c := &clock{now: t0}
	ev := newService(t, st, c)
	year := 365 * pki.Day
	for _, tc := range []struct {
		id    string
		state store.CAState
		left  time.Duration
		noDER bool
	}{
		{"ca-expiring", store.CAActive, 5 * pki.Day, false},
		{"ca-rotated", store.CAActive, 5 * pki.Day, false},
		{"ca-successor", store.CAActive, year, false},
		{"ca-pending", store.CAPending, 5 * pki.Day, true},
		{"ca-offline-root", store.CAOffline, 20 * pki.Day, false},
	} {
		rec := &store.CA{ID: tc.id, Name: tc.id, State: tc.state, KeyType: "ec-p256", Subject: "CN=" + tc.id, PathLen: -1,
			NotBefore: t0.Add(tc.left - year), NotAfter: t0.Add(tc.left), CreatedAt: t0, UpdatedAt: t0}
		if !tc.noDER {
			rec.CertDER = []byte("cert:" + tc.id)
		}
		if err := st.CreateCA(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.SetCASuccessor(ctx, "ca-rotated", "ca-successor", t0); err != nil {
		t.Fatal(err)
	}
	caEvents := func() map[string]string {
		t.Helper()
		evs, err := st.ListEvents(ctx, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, e := range evs {
			if e.Event.Type != TypeCAExpiring {
				continue
			}
			var env struct {
				Data struct {
					CAID      string `json:"ca_id"`
					Threshold string `json:"threshold"`
				} `json:"data"`
			}
			if err := json.Unmarshal(e.Event.Payload, &env); err != nil {
				t.Fatal(err)
			}
			out[env.Data.CAID+"@"+env.Data.Threshold] = e.Event.Key
		}
		return out
	}
	for _, step := range []struct {
		name    string
		advance time.Duration
		want    []string
	}{
		{"ok/first-scan", 0, []string{"ca-expiring@7d", "ca-offline-root@30d"}},
		{"ok/rescan-records-nothing-new", time.Hour, []string{"ca-expiring@7d", "ca-offline-root@30d"}},
		{"ok/next-threshold", 4*pki.Day + time.Hour, []string{"ca-expiring@7d", "ca-expiring@1d", "ca-offline-root@30d"}},
	} {
		c.Advance(step.advance)
		if err := ev.Scan(ctx); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		got := caEvents()
		if len(got) != len(step.want) {
			t.Errorf("%s: events %v, want %v", step.name, got, step.want)
		}
		for _, w := range step.want {
			if _, ok := got[w]; !ok {
				t.Errorf("%s: no event %s in %v", step.name, w, got)
			}
		}
	}
}
