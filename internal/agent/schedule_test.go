package agent

import (
	"testing"
	"time"
)

var (
	t0     = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	policy = Policy{RenewAt: 0.66, Jitter: 0.05, InitialBackoff: time.Second, MaxBackoff: 5 * time.Minute, RefusedBackoff: time.Hour}
)

func TestRenewTime(t *testing.T) {
	tests := []struct {
		name      string
		nb, na    time.Time
		u         float64
		want      time.Time
		wantEqual bool
	}{
		{"ok/no jitter", t0, t0.Add(100 * time.Hour), 0, t0.Add(66 * time.Hour), true},
		{"ok/full jitter is 5% earlier", t0, t0.Add(100 * time.Hour), 0.999999, t0.Add(61*time.Hour + 360*time.Millisecond), false},
		{"ok/half jitter", t0, t0.Add(100 * time.Hour), 0.5, t0.Add(63*time.Hour + 30*time.Minute), true},
		{"ok/u out of range is clamped", t0, t0.Add(100 * time.Hour), -3, t0.Add(66 * time.Hour), true},
		{"ok/one-minute certificate", t0, t0.Add(time.Minute), 0, t0.Add(39*time.Second + 600*time.Millisecond), true},
		{"ok/empty lifetime", t0, t0, 0.5, t0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := policy.RenewTime(tt.nb, tt.na, tt.u)
			if tt.wantEqual && !got.Equal(tt.want) {
				t.Fatalf("RenewTime = %s, want %s", got, tt.want)
			}
			// Jitter only ever brings renewal forward, by at most Jitter.
			life := tt.na.Sub(tt.nb)
			latest := tt.nb.Add(time.Duration(float64(life) * policy.RenewAt))
			earliest := tt.nb.Add(time.Duration(float64(life) * (policy.RenewAt - policy.Jitter)))
			if got.After(latest) || got.Before(earliest.Add(-time.Millisecond)) {
				t.Fatalf("RenewTime = %s, outside [%s, %s]", got, earliest, latest)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		name     string
		failures int
		u        float64
		want     time.Duration
	}{
		{"ok/no failure", 0, 0.5, 0},
		{"ok/first, least", 1, 0, 500 * time.Millisecond},
		{"ok/first, most", 1, 0.999999999, time.Second - time.Nanosecond},
		{"ok/doubles", 3, 0, 2 * time.Second},
		{"ok/doubles again", 4, 0.5, 6 * time.Second},
		{"ok/capped", 20, 0, 150 * time.Second},
		{"ok/capped, most", 20, 0.999999999, 5*time.Minute - time.Nanosecond},
		{"ok/huge count does not overflow", 1 << 20, 0, 150 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := policy.Backoff(tt.failures, tt.u)
			if d := got - tt.want; d > time.Microsecond || d < -time.Microsecond {
				t.Fatalf("Backoff(%d, %v) = %s, want %s", tt.failures, tt.u, got, tt.want)
			}
		})
	}
}

func TestNext(t *testing.T) {
	valid := Current{Valid: true, NotBefore: t0, NotAfter: t0.Add(100 * time.Hour)}
	tests := []struct {
		name        string
		now         time.Time
		cur         Current
		failures    int
		lastFailure time.Time
		want        time.Time
		refused     bool
	}{
		{"ok/no certificate: at once", t0, Current{}, 0, time.Time{}, t0, false},
		{"ok/fresh certificate: at its renewal time", t0.Add(time.Hour), valid, 0, time.Time{}, t0.Add(66 * time.Hour), false},
		{"ok/due: renewal time in the past", t0.Add(70 * time.Hour), valid, 0, time.Time{}, t0.Add(66 * time.Hour), false},
		{"ok/expired certificate: at once", t0.Add(101 * time.Hour), Current{Valid: false, NotBefore: t0, NotAfter: t0.Add(100 * time.Hour)}, 0, time.Time{}, t0.Add(101 * time.Hour), false},
		{"ok/after failures: backoff from the last failure", t0.Add(67 * time.Hour), valid, 3, t0.Add(67 * time.Hour), t0.Add(67*time.Hour + 2*time.Second), false},
		{"ok/no certificate after a failure: backoff", t0, Current{}, 1, t0, t0.Add(500 * time.Millisecond), false},
		{"ok/after a failure, backoff even if the jitter moved", t0.Add(66 * time.Hour), valid, 1, t0.Add(66 * time.Hour), t0.Add(66*time.Hour + 500*time.Millisecond), false},
		{"ok/stale certificate: at once", t0.Add(time.Hour), Current{Valid: true, Stale: true, NotBefore: t0, NotAfter: t0.Add(100 * time.Hour)}, 0, time.Time{}, t0.Add(time.Hour), false},
		{"ok/stale certificate after a failure: backoff", t0.Add(time.Hour), Current{Valid: true, Stale: true, NotBefore: t0, NotAfter: t0.Add(100 * time.Hour)}, 2, t0.Add(time.Hour), t0.Add(time.Hour + time.Second), false},
		{"ok/after a refused answer: half an hour at least", t0.Add(67 * time.Hour), valid, 1, t0.Add(67 * time.Hour), t0.Add(67*time.Hour + 30*time.Minute), true},
		// Nothing valid to serve meanwhile: the backoff alone.
		{"ok/no certificate after a refused answer: backoff", t0, Current{}, 1, t0, t0.Add(500 * time.Millisecond), true},
		{"ok/expired certificate after a refused answer: backoff", t0.Add(101 * time.Hour), Current{NotBefore: t0, NotAfter: t0.Add(100 * time.Hour)},
			1, t0.Add(101 * time.Hour), t0.Add(101*time.Hour + 500*time.Millisecond), true},
		// A certificate about to expire: half the time it has left.
		{"ok/10 minutes left after a refused answer: 5 minutes", t0.Add(time.Hour), Current{Valid: true, NotBefore: t0, NotAfter: t0.Add(70 * time.Minute)},
			1, t0.Add(time.Hour), t0.Add(65 * time.Minute), true},
		{"ok/1 minute left after a refused answer: 30 seconds", t0, Current{Valid: true, NotBefore: t0.Add(-time.Minute), NotAfter: t0.Add(time.Minute)},
			1, t0, t0.Add(30 * time.Second), true},
		{"ok/2 seconds left after refused answers: never less than the backoff", t0, Current{Valid: true, NotBefore: t0.Add(-time.Minute), NotAfter: t0.Add(2 * time.Second)},
			4, t0, t0.Add(4 * time.Second), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := Failures{Count: tt.failures, Last: tt.lastFailure, Refused: tt.refused}
			if got := policy.Next(tt.now, tt.cur, f, 0); !got.Equal(tt.want) {
				t.Fatalf("Next = %s, want %s", got, tt.want)
			}
		})
	}
}
