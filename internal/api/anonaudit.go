package api

import (
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Unauthenticated calls are audited at a bounded rate per source address:
// anyone who can reach the API can make them, and each audit record is a
// durable, hash-chained write, so recording every one would let a flood of
// bad tokens turn into a flood of database writes and an audit log too long
// to read. Calls of known principals (403 and everything else) are always
// recorded; they are attributable and limited by policy.
const (
	// anonAuditBurst unauthenticated calls of one address are recorded
	// before the limit applies, ...
	anonAuditBurst = 30
	// ... and then one every anonAuditEvery.
	anonAuditEvery = 2 * time.Second
	// anonAuditSources bounds the addresses tracked; when full, the
	// tracking starts over (every bucket full again).
	anonAuditSources = 10000
)

// anonAudit decides which unauthenticated calls are recorded. The first
// record after some were left out says how many. It is safe for
// concurrent use.
type anonAudit struct {
	mu      sync.Mutex
	sources map[string]*anonSource
}

type anonSource struct {
	lim     *rate.Limiter
	skipped int64 // calls not recorded since the last record
}

// admit reports whether an unauthenticated call from source at now is
// recorded, with how many calls from that source were left out since its
// last record; first is true for the first call left out since then, for
// the caller to log once.
func (a *anonAudit) admit(source string, now time.Time) (record bool, skipped int64, first bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sources == nil || len(a.sources) >= anonAuditSources {
		a.sources = map[string]*anonSource{}
	}
	s := a.sources[source]
	if s == nil {
		s = &anonSource{lim: rate.NewLimiter(rate.Every(anonAuditEvery), anonAuditBurst)}
		a.sources[source] = s
	}
	if !s.lim.AllowN(now, 1) {
		s.skipped++
		return false, s.skipped, s.skipped == 1
	}
	skipped, s.skipped = s.skipped, 0
	return true, skipped, false
}

// skippedNote is appended to the detail of the first record after calls
// were left out.
func skippedNote(n int64) string {
	return fmt.Sprintf(" (%d earlier unauthenticated calls from this address were not recorded: at most %d, then one every %s)",
		n, anonAuditBurst, anonAuditEvery)
}
