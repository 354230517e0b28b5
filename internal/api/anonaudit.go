package api

import (
	"cmp"
	"container/list"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Calls that prove no credential at all (401) are audited at a bounded
// rate: anyone who can reach the API can make them, and each audit record
// is a durable, hash-chained write, so recording every one would let a
// flood of bad tokens turn into a flood of database writes and an audit log
// too long to read. Calls of known principals (403 and everything else),
// and refusals of a credential the caller did prove (a revoked token, an
// expired certificate), are always recorded: they are attributable.
//
// No call is left out silently: each one left out is counted in exactly
// one later record, the next recorded call of its source or the periodic
// summary, whichever comes first.
const (
	// anonAuditBurst unauthenticated calls of one source are recorded
	// before the limit applies, ...
	anonAuditBurst = 30
	// ... and then one every anonAuditEvery.
	anonAuditEvery = 2 * time.Second
	// anonAuditAllBurst unauthenticated calls of all sources together are
	// recorded before the overall limit applies, and then one every
	// anonAuditAllEvery, so that a flood spread over many sources is
	// bounded too (at most 18,000 records an hour).
	anonAuditAllBurst = 300
	anonAuditAllEvery = 200 * time.Millisecond
	// anonAuditSources bounds the sources tracked; past it, the least
	// recently seen one is forgotten and what it had left out goes into
	// the next summary.
	anonAuditSources = 10000
	// anonAuditSummaryEvery is how long after a call is left out the
	// summary record counting every call not yet counted is written.
	anonAuditSummaryEvery = time.Minute
	// anonAuditQuiet is how long a source must go without a call left out
	// for its next one to be logged at WARN again.
	anonAuditQuiet = 5 * time.Minute
	// anonSummaryAction is the action of a summary record.
	anonSummaryAction = "audit:Unrecorded"
	// anonSummaryListed bounds the sources a summary names one by one.
	anonSummaryListed = 10
)

// anonAudit decides which unauthenticated calls are recorded. The zero
// value is ready; it is safe for concurrent use.
type anonAudit struct {
	mu      sync.Mutex
	sources map[string]*list.Element // of *anonSource, by anonSourceKey
	lru     list.List                // most recently seen first
	all     bucket                   // every source together
	// last is the latest time a decision was taken at: the buckets never
	// see time go back, so a late decision cannot refill them.
	last time.Time
	// untracked counts calls left out by sources since forgotten.
	untracked int64
	// since is when the first call not yet counted by any record was left
	// out; armed is true while a summary is due.
	since time.Time
	armed bool
	// allWarned is when the overall limit last left a call out.
	allWarned time.Time
}

type anonSource struct {
	key     string
	b       bucket
	skipped int64     // calls left out since the last record that counted them
	warned  time.Time // when a call was last left out by this source's limit
}

// bucket is a token bucket that holds burst tokens and gains one every
// every. Times given to it never go back (anonAudit.last sees to that).
// It is not golang.org/x/time/rate's Limiter because a call is recorded
// only when its source's bucket and the overall one both have a token, and
// a Limiter cannot be asked that without taking one.
type bucket struct {
	tokens float64
	at     time.Time
}

func (b *bucket) fill(now time.Time, burst int, every time.Duration) {
	if b.at.IsZero() {
		b.tokens = float64(burst)
	} else {
		b.tokens = min(float64(burst), b.tokens+float64(now.Sub(b.at))/float64(every))
	}
	b.at = now
}

// anonSourceKey is the source a limit applies to: an IPv4 address, or the
// /64 of an IPv6 address (what one host or site is usually given, so that
// its 2^64 addresses are one source); anything else as it is.
func anonSourceKey(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	a = a.WithZone("").Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// anonDecision is what admit decided for one call.
type anonDecision struct {
	// record is whether the call is recorded; skipped is then how many
	// calls of its source left out before it the record counts.
	record  bool
	skipped int64
	// source is the key of the limit applied (see anonSourceKey).
	source string
	// warnSource and warnAll are set on the first call left out by the
	// source's limit, or by the overall one, since it was last quiet.
	warnSource, warnAll bool
	// arm is set when a summary becomes due: the caller schedules it.
	arm bool
}

// admit decides whether a refused call under key (anonSourceKey of its
// source, or the credential it proved), decided at now, is recorded. now must be the time of the decision, not of the call's
// start: a call that took long to arrive (a body trickled in) must not be
// judged at its start, before calls that came after it.
func (a *anonAudit) admit(key string, now time.Time) anonDecision {
	a.mu.Lock()
	defer a.mu.Unlock()
	if now.Before(a.last) {
		now = a.last
	}
	a.last = now
	s := a.source(key)
	d := anonDecision{source: s.key}
	s.b.fill(now, anonAuditBurst, anonAuditEvery)
	a.all.fill(now, anonAuditAllBurst, anonAuditAllEvery)
	if s.b.tokens >= 1 && a.all.tokens >= 1 {
		s.b.tokens--
		a.all.tokens--
		d.record, d.skipped, s.skipped = true, s.skipped, 0
		return d
	}
	if s.b.tokens < 1 {
		d.warnSource = s.warned.IsZero() || now.Sub(s.warned) >= anonAuditQuiet
		s.warned = now
	} else {
		d.warnAll = a.allWarned.IsZero() || now.Sub(a.allWarned) >= anonAuditQuiet
		a.allWarned = now
	}
	s.skipped++
	if !a.armed {
		a.armed, a.since, d.arm = true, now, true
	}
	return d
}

// source returns the tracked state of key, making it the most recently
// seen; it forgets the least recently seen source when there are too many,
// keeping its count for the summary.
func (a *anonAudit) source(key string) *anonSource {
	if a.sources == nil {
		a.sources = map[string]*list.Element{}
	}
	if e := a.sources[key]; e != nil {
		a.lru.MoveToFront(e)
		return e.Value.(*anonSource)
	}
	if a.lru.Len() >= anonAuditSources {
		old := a.lru.Remove(a.lru.Back()).(*anonSource)
		delete(a.sources, old.key)
		a.untracked += old.skipped
	}
	s := &anonSource{key: key}
	a.sources[key] = a.lru.PushFront(s)
	return s
}

// anonSummary counts the calls left out that no record has counted yet.
type anonSummary struct {
	since, until time.Time
	total        int64
	// bySource lists the sources with calls left out, most first.
	bySource []anonCount
	// untracked counts the calls left out by sources no longer tracked.
	untracked int64
}

type anonCount struct {
	source string
	n      int64
}

// summary takes every count not yet recorded, at now, leaving them at 0:
// the caller writes them in one record. Its total is 0 when there is
// nothing to write.
func (a *anonAudit) summary(now time.Time) anonSummary {
	a.mu.Lock()
	defer a.mu.Unlock()
	if now.Before(a.last) {
		now = a.last
	}
	sum := anonSummary{since: a.since, until: now, untracked: a.untracked, total: a.untracked}
	for e := a.lru.Front(); e != nil; e = e.Next() {
		if s := e.Value.(*anonSource); s.skipped > 0 {
			sum.bySource = append(sum.bySource, anonCount{s.key, s.skipped})
			sum.total += s.skipped
			s.skipped = 0
		}
	}
	slices.SortStableFunc(sum.bySource, func(x, y anonCount) int { return cmp.Compare(y.n, x.n) })
	a.untracked, a.armed = 0, false
	return sum
}

// detail is the summary's record detail: the total, then the sources with
// the most calls left out.
func (s anonSummary) detail() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d refused calls between %s and %s were not recorded one by one", s.total,
		s.since.UTC().Format(time.RFC3339), s.until.UTC().Format(time.RFC3339))
	var parts []string
	rest, restN := 0, int64(0)
	for i, c := range s.bySource {
		if i < anonSummaryListed {
			parts = append(parts, fmt.Sprintf("%s: %d", c.source, c.n))
		} else {
			rest++
			restN += c.n
		}
	}
	if rest > 0 {
		parts = append(parts, fmt.Sprintf("%d other sources: %d", rest, restN))
	}
	if s.untracked > 0 {
		parts = append(parts, fmt.Sprintf("calls from sources no longer tracked: %d", s.untracked))
	}
	fmt.Fprintf(&b, " (%s)%s", strings.Join(parts, "; "), anonLimits)
	return b.String()
}

// skippedNote is appended to the detail of a record that counts calls of
// its source left out before it.
func skippedNote(n int64, source string) string {
	return fmt.Sprintf(" (%d earlier refused calls from %s were not recorded one by one)%s", n, source, anonLimits)
}

var anonLimits = fmt.Sprintf("; limits: %d per source, then one every %s; %d from all sources, then one every %s",
	anonAuditBurst, anonAuditEvery, anonAuditAllBurst, anonAuditAllEvery)
