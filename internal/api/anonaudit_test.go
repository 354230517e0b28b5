package api

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/trustgate/trustgate/internal/audit"
	"github.com/trustgate/trustgate/internal/authz"
	"github.com/trustgate/trustgate/internal/store"
	"github.com/trustgate/trustgate/internal/store/sqlite"
)

var anonT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// anonCounter drives an anonAudit and checks that every call left out is
// counted exactly once, by a later record or by a summary.
type anonCounter struct {
	t        *testing.T
	a        anonAudit
	leftOut  int64
	counted  int64
	recorded int
}

func (c *anonCounter) call(addr string, at time.Time) anonDecision {
	c.t.Helper()
	d := c.a.admit(anonSourceKey(addr), at)
	if d.record {
		c.recorded++
		c.counted += d.skipped
	} else {
		c.leftOut++
	}
	return d
}

// settle takes the summary and checks the books balance.
func (c *anonCounter) settle(at time.Time) anonSummary {
	c.t.Helper()
	sum := c.a.summary(at)
	c.counted += sum.total
	if c.counted != c.leftOut {
		c.t.Fatalf("%d calls left out, %d counted by records and summaries", c.leftOut, c.counted)
	}
	return sum
}

func TestAnonAuditAdmit(t *testing.T) {
	c := &anonCounter{t: t}
	for i := range anonAuditBurst {
		if d := c.call("192.0.2.1", anonT0); !d.record || d.skipped != 0 {
			t.Fatalf("call %d of the burst: %+v", i, d)
		}
	}
	for i := 1; i <= 5; i++ {
		d := c.call("192.0.2.1", anonT0)
		if d.record || d.warnSource != (i == 1) || d.arm != (i == 1) || d.warnAll {
			t.Fatalf("call %d past the burst: %+v", i, d)
		}
	}
	// Another address has its own bucket.
	if d := c.call("192.0.2.2", anonT0); !d.record {
		t.Error("a second address is limited by the first one's calls")
	}
	// Once the bucket refills, the next call is recorded and says how
	// many were left out; the count then starts over.
	d := c.call("192.0.2.1", anonT0.Add(anonAuditEvery))
	if !d.record || d.skipped != 5 || d.source != "192.0.2.1" {
		t.Fatalf("after %s: %+v; want a record counting 5", anonAuditEvery, d)
	}
	if note := skippedNote(d.skipped, d.source); !strings.Contains(note, "5 earlier refused calls from 192.0.2.1") {
		t.Errorf("note = %q", note)
	}
	// Left out again, it is not announced again: the flood goes on.
	if d := c.call("192.0.2.1", anonT0.Add(anonAuditEvery)); d.record || d.warnSource {
		t.Errorf("right after: %+v, want left out without a second warning", d)
	}
	c.settle(anonT0.Add(anonAuditEvery))
}

// TestAnonAuditTimeNeverGoesBack is the slow caller's trick: a call whose
// decision comes with an earlier time than calls already decided must not
// refill the bucket for the calls after it.
func TestAnonAuditTimeNeverGoesBack(t *testing.T) {
	c := &anonCounter{t: t}
	now, old := anonT0.Add(100*time.Second), anonT0
	for range 10 {
		for range anonAuditBurst - 1 {
			c.call("192.0.2.1", now)
		}
		c.call("192.0.2.1", old)
	}
	if c.recorded != anonAuditBurst {
		t.Errorf("%d of %d calls recorded at one instant, want %d", c.recorded, 10*anonAuditBurst, anonAuditBurst)
	}
	c.settle(now)
}

// TestAnonAuditWarnsOncePerFlood keeps the WARN to one per source for a
// flood however long, and has it again once the source was quiet.
func TestAnonAuditWarnsOncePerFlood(t *testing.T) {
	c := &anonCounter{t: t}
	warned := 0
	at := anonT0
	for range 6000 { // ten minutes, ten calls a second
		if c.call("192.0.2.1", at).warnSource {
			warned++
		}
		at = at.Add(100 * time.Millisecond)
	}
	if warned != 1 {
		t.Errorf("warned %d times in a ten-minute flood, want once", warned)
	}
	at = at.Add(anonAuditQuiet)
	warned = 0
	for range anonAuditBurst + 1 {
		if c.call("192.0.2.1", at).warnSource {
			warned++
		}
	}
	if warned != 1 {
		t.Errorf("warned %d times in a flood after a quiet spell, want once", warned)
	}
	c.settle(at)
}

func TestAnonSourceKey(t *testing.T) {
	tests := []struct{ name, addr, want string }{
		{"ok/ipv4 is itself", "192.0.2.7", "192.0.2.7"},
		{"ok/mapped ipv4 is the ipv4", "::ffff:192.0.2.7", "192.0.2.7"},
		{"ok/ipv6 is its /64", "2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"},
		{"ok/ipv6 zone dropped", "fe80::1%eth0", "fe80::/64"},
		{"ok/not an address", "@", "@"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := anonSourceKey(tt.addr); got != tt.want {
				t.Errorf("anonSourceKey(%q) = %q, want %q", tt.addr, got, tt.want)
			}
		})
	}
}

// TestAnonAuditIPv6Prefix gives a caller a fresh address of its /64 for
// every call: they share one bucket.
func TestAnonAuditIPv6Prefix(t *testing.T) {
	c := &anonCounter{t: t}
	for i := range 100 {
		c.call(fmt.Sprintf("2001:db8:1:2::%x", i+1), anonT0)
	}
	if c.recorded != anonAuditBurst {
		t.Errorf("%d of 100 calls from one /64 recorded, want %d", c.recorded, anonAuditBurst)
	}
	if d := c.call("2001:db8:1:3::1", anonT0); !d.record {
		t.Error("the next /64 is limited by its neighbour's calls")
	}
	c.settle(anonT0)
}

// TestAnonAuditOverallLimit spreads a flood over many sources, one call
// each: the overall limit bounds it, and refills at its own rate.
func TestAnonAuditOverallLimit(t *testing.T) {
	c := &anonCounter{t: t}
	addr := func(i int) string { return fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255) }
	warned := 0
	for i := range 2000 {
		if c.call(addr(i), anonT0).warnAll {
			warned++
		}
	}
	if c.recorded != anonAuditAllBurst || warned != 1 {
		t.Errorf("%d of 2000 calls from 2000 sources recorded, warned %d times; want %d, once", c.recorded, warned, anonAuditAllBurst)
	}
	if d := c.call(addr(5000), anonT0.Add(anonAuditAllEvery)); !d.record {
		t.Errorf("after %s: %+v, want recorded", anonAuditAllEvery, d)
	}
	sum := c.settle(anonT0.Add(anonAuditAllEvery))
	if sum.total != 2000-anonAuditAllBurst || len(sum.bySource) != 2000-anonAuditAllBurst {
		t.Errorf("summary counts %d calls of %d sources", sum.total, len(sum.bySource))
	}
	if d := sum.detail(); !strings.Contains(d, "1700 refused calls") || !strings.Contains(d, "1690 other sources: 1690") {
		t.Errorf("summary detail = %q", d)
	}
}

// TestAnonAuditForgetsLeastRecent fills the table past its bound while one
// source floods on: the flooding source keeps its empty bucket (the old
// table, cleared when full, gave it a full one), the quiet ones are
// forgotten, and their counts go into the summary.
func TestAnonAuditForgetsLeastRecent(t *testing.T) {
	c := &anonCounter{t: t}
	const flood = "192.0.2.1"
	for range anonAuditBurst + 3 {
		c.call(flood, anonT0)
	}
	for i := range anonAuditSources + 500 {
		c.call(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), anonT0)
		if i%100 == 0 {
			c.call(flood, anonT0)
		}
	}
	if n := c.a.lru.Len(); n != anonAuditSources || len(c.a.sources) != anonAuditSources {
		t.Fatalf("%d sources tracked (map %d), want %d", n, len(c.a.sources), anonAuditSources)
	}
	if _, ok := c.a.sources["10.0.0.1"]; ok {
		t.Error("the least recently seen source is still tracked")
	}
	if d := c.call(flood, anonT0); d.record {
		t.Error("the flooding source got its bucket back when the table filled")
	}
	sum := c.settle(anonT0)
	if sum.untracked == 0 {
		t.Error("the counts of forgotten sources are not in the summary")
	}
	if sum.bySource[0].source != flood {
		t.Errorf("summary lists %q first, want the flooding source", sum.bySource[0].source)
	}
}

// TestAnonAuditSummary takes the counts no record has counted: once, and
// a summary is due again only when a call is left out again.
func TestAnonAuditSummary(t *testing.T) {
	c := &anonCounter{t: t}
	for range anonAuditBurst + 4 {
		c.call("192.0.2.1", anonT0)
	}
	sum := c.settle(anonT0.Add(time.Minute))
	if sum.total != 4 || !sum.since.Equal(anonT0) || !sum.until.Equal(anonT0.Add(time.Minute)) {
		t.Fatalf("summary = %+v", sum)
	}
	if d := sum.detail(); !strings.Contains(d, "4 refused calls between 2026-01-01T00:00:00Z and 2026-01-01T00:01:00Z") ||
		!strings.Contains(d, "192.0.2.1: 4") {
		t.Errorf("detail = %q", d)
	}
	if again := c.a.summary(anonT0.Add(time.Minute)); again.total != 0 {
		t.Errorf("a second summary counts %d calls again", again.total)
	}
	// The next record of the source counts nothing the summary counted.
	if d := c.call("192.0.2.1", anonT0.Add(time.Minute)); !d.record || d.skipped != 0 {
		t.Errorf("after the summary: %+v", d)
	}
	armed := 0
	for range anonAuditBurst + 5 {
		if c.call("192.0.2.1", anonT0.Add(time.Minute)).arm {
			armed++
		}
	}
	if armed != 1 {
		t.Errorf("a summary was made due %d times by one flood, want once", armed)
	}
	c.settle(anonT0.Add(2 * time.Minute))
}

// TestAnonSummaryRecordWritten has a source flood and stop: the calls left
// out are counted by a summary record written after the flood, in a chain
// that still verifies.
func TestAnonSummaryRecordWritten(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "tg.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	access := authz.New(authz.Config{Store: st})
	h := New(Config{Auth: access, Audit: st})
	h.anonSummaryEvery = 100 * time.Millisecond
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	for i := range anonAuditBurst + 5 {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/cas", nil)
		req.Header.Set("Authorization", "Bearer tg_not-a-token")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("call %d: %d, want 401", i, resp.StatusCode)
		}
	}
	var m dto.Metric
	if err := h.anonSkipped.Write(&m); err != nil || m.GetCounter().GetValue() != 5 {
		t.Errorf("skipped counter = %v (%v), want 5", m.GetCounter().GetValue(), err)
	}
	ctx := context.Background()
	var sum *store.AuditRecord
	for deadline := time.Now().Add(10 * time.Second); sum == nil && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		recs, err := st.ListAudit(ctx, store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Action == anonSummaryAction {
				sum = r
			}
		}
		if sum != nil && len(recs) != anonAuditBurst+1 {
			t.Fatalf("%d records, want the %d admitted calls and one summary", len(recs), anonAuditBurst)
		}
	}
	if sum == nil {
		t.Fatal("no summary record of the calls left out")
	}
	if sum.Decision != "deny" || sum.Outcome != "unauthenticated" || sum.Actor != "" ||
		!strings.Contains(sum.Detail, "5 refused calls") || !strings.Contains(sum.Detail, "127.0.0.1: 5") {
		t.Errorf("summary record %+v", sum)
	}
	if res, err := audit.Verify(ctx, st); err != nil || !res.OK {
		t.Errorf("chain after the summary: %+v %v", res, err)
	}
}

// TestAnonSummaryWrittenOnClose: counts waiting for their summary are
// written when the handler is closed, not lost with the process.
func TestAnonSummaryWrittenOnClose(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "tg.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := New(Config{Auth: authz.New(authz.Config{Store: st}), Audit: st})
	h.anonSummaryEvery = time.Hour // only Close can write it within the test
	srv := httptest.NewServer(h)
	for range anonAuditBurst + 3 {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/cas", nil)
		req.Header.Set("Authorization", "Bearer tg_not-a-token")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	srv.Close()
	h.Close()
	recs, err := st.ListAudit(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, r := range recs {
		found = found || (r.Action == anonSummaryAction && strings.Contains(r.Detail, "3 refused calls"))
	}
	if !found {
		t.Errorf("no summary of the 3 calls left out after Close (%d records)", len(recs))
	}
	h.Close() // a second Close writes nothing more
	if again, _ := st.ListAudit(context.Background(), store.AuditFilter{}); len(again) != len(recs) {
		t.Errorf("a second Close wrote %d more records", len(again)-len(recs))
	}
}
