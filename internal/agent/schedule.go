package agent

import (
	"math"
	"time"
)

// Policy holds the agent's timing rules. Its methods are pure functions of
// their arguments (the time and a random number among them), so that the
// schedule is tested without waiting and without a random source.
type Policy struct {
	// RenewAt is the fraction of a certificate's lifetime after which it
	// is renewed, in (0, 1).
	RenewAt float64
	// Jitter is the fraction of the lifetime by which a renewal may come
	// earlier than RenewAt, spread at random, so that certificates issued
	// together are not renewed together.
	Jitter float64
	// InitialBackoff is the wait after a first failure; it doubles with
	// every further failure up to MaxBackoff.
	InitialBackoff, MaxBackoff time.Duration
	// RefusedBackoff is the wait after an answer that was refused
	// (RefusedError), half of it spread by jitter, while a valid
	// certificate has time enough left (see Retry): the control plane
	// issued a certificate each time, and trying again at the pace of
	// the backoff would have one issued and thrown away every few
	// minutes, most likely refused for the same reason.
	RefusedBackoff time.Duration
}

// DefaultJitter is Policy.Jitter unless set: 5% of the lifetime.
const DefaultJitter = 0.05

// DefaultRefusedBackoff is Policy.RefusedBackoff unless set.
const DefaultRefusedBackoff = time.Hour

// MaxClockSkew is how far a certificate's NotBefore may be ahead of the
// local clock for the certificate to count as valid. The CA back-dates
// NotBefore by a minute only; a host whose clock is further behind would
// otherwise find every new certificate not yet valid, and obtain another
// at once, again and again.
const MaxClockSkew = 5 * time.Minute

// RenewTime returns when a certificate valid from notBefore to notAfter is
// due for renewal: at RenewAt of its lifetime, brought forward by up to
// Jitter of it by u in [0, 1). It is never earlier than notBefore.
func (p Policy) RenewTime(notBefore, notAfter time.Time, u float64) time.Time {
	life := notAfter.Sub(notBefore)
	if life <= 0 {
		return notBefore
	}
	at := time.Duration(float64(life) * (p.RenewAt - p.Jitter*clamp01(u)))
	return notBefore.Add(max(at, 0))
}

// Backoff returns the wait after the failures-th consecutive failure
// (failures >= 1): InitialBackoff doubled failures-1 times, capped at
// MaxBackoff, of which the upper half is spread by u in [0, 1) ("equal
// jitter": never less than half the nominal wait, so a fleet that lost the
// control plane together does not retry together).
func (p Policy) Backoff(failures int, u float64) time.Duration {
	if failures < 1 {
		return 0
	}
	d := p.MaxBackoff
	if exp := float64(failures - 1); exp < 62 {
		if n := float64(p.InitialBackoff) * math.Pow(2, exp); n < float64(p.MaxBackoff) {
			d = time.Duration(n)
		}
	}
	return d/2 + time.Duration(float64(d/2)*clamp01(u))
}

// Current describes the certificate in the agent's files, if any.
type Current struct {
	// Valid is true when the files hold a certificate and its key that
	// match and are within their validity (NotBefore up to MaxClockSkew
	// ahead of the clock).
	Valid               bool
	NotBefore, NotAfter time.Time
	// Stale is true when the certificate no longer matches what is asked
	// for (Config.Check): it is kept while valid, and due at once.
	Stale bool
}

// Failures describes the attempts that failed since the last success.
type Failures struct {
	// Count is the number of consecutive failures, Last the time of the
	// last one.
	Count int
	Last  time.Time
	// Refused is true when the last one was an answer refused after the
	// control plane issued it (RefusedError).
	Refused bool
}

// Retry returns the wait after the failures described by f, counted
// from f.Last and drawn with u in [0, 1): the backoff; after a refused
// answer, while cur is valid, RefusedBackoff (with equal jitter) but no
// more than half the time cur has left at f.Last (a certificate of a few
// minutes must not expire while the agent waits), and never less than
// the backoff. With no valid certificate the backoff alone applies: the
// files have nothing to serve meanwhile.
func (p Policy) Retry(f Failures, cur Current, u float64) time.Duration {
	d := p.Backoff(f.Count, u)
	if f.Refused && f.Count > 0 && cur.Valid && cur.NotAfter.After(f.Last) {
		r := p.RefusedBackoff/2 + time.Duration(float64(p.RefusedBackoff/2)*clamp01(u))
		d = max(d, min(r, cur.NotAfter.Sub(f.Last)/2))
	}
	return d
}

// Next returns when the agent should next try to obtain a certificate,
// given the current one, the failures since the last success, and a
// random u in [0, 1) drawn for this decision. A due time at or before now
// means at once.
//
// Without a valid certificate, or with a stale one, the agent tries at
// once, or after the wait of its failures (Retry). With one it waits for
// its renewal time; once attempts have failed, for the wait after the
// last failure. The current files stay in place meanwhile. (The caller
// resets failures when the files change under it: a new certificate has
// its own schedule.)
func (p Policy) Next(now time.Time, cur Current, f Failures, u float64) time.Time {
	due := now
	if cur.Valid && !cur.Stale && cur.NotAfter.After(now) {
		due = p.RenewTime(cur.NotBefore, cur.NotAfter, u)
	}
	// A failure means an attempt was due, so the retry follows the backoff
	// alone (a renewal time computed with another random draw must not
	// push it out).
	if f.Count > 0 {
		return f.Last.Add(p.Retry(f, cur, u))
	}
	return due
}

func clamp01(u float64) float64 {
	switch {
	case u < 0 || math.IsNaN(u):
		return 0
	case u >= 1:
		return math.Nextafter(1, 0)
	}
	return u
}
