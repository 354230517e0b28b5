package api

import (
	"strings"
	"testing"
	"time"
)

func TestAnonAuditAdmit(t *testing.T) {
	var a anonAudit
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range anonAuditBurst {
		if rec, skipped, _ := a.admit("192.0.2.1", t0); !rec || skipped != 0 {
			t.Fatalf("call %d of the burst: record %v, skipped %d", i, rec, skipped)
		}
	}
	for i := 1; i <= 5; i++ {
		rec, skipped, first := a.admit("192.0.2.1", t0)
		if rec || skipped != int64(i) || first != (i == 1) {
			t.Fatalf("call %d past the burst: record %v, skipped %d, first %v", i, rec, skipped, first)
		}
	}
	// Another address has its own bucket.
	if rec, _, _ := a.admit("192.0.2.2", t0); !rec {
		t.Error("a second address is limited by the first one's calls")
	}
	// Once the bucket refills, the next call is recorded and says how
	// many were left out; the count then starts over.
	rec, skipped, _ := a.admit("192.0.2.1", t0.Add(anonAuditEvery))
	if !rec || skipped != 5 {
		t.Fatalf("after %s: record %v, skipped %d; want a record counting 5", anonAuditEvery, rec, skipped)
	}
	if note := skippedNote(skipped); !strings.Contains(note, "5 earlier unauthenticated calls") {
		t.Errorf("note = %q", note)
	}
	if rec, skipped, first := a.admit("192.0.2.1", t0.Add(anonAuditEvery)); rec || skipped != 1 || !first {
		t.Errorf("right after: record %v, skipped %d, first %v", rec, skipped, first)
	}
}

func TestAnonAuditBoundedSources(t *testing.T) {
	var a anonAudit
	t0 := time.Now()
	for i := range anonAuditSources + 10 {
		a.admit(string(rune(i)), t0)
	}
	if n := len(a.sources); n > anonAuditSources {
		t.Errorf("%d sources tracked, want at most %d", n, anonAuditSources)
	}
}
