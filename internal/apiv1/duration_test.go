package apiv1

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	ok := map[string]time.Duration{"90s": 90 * time.Second, "7d": 168 * time.Hour, "1y": 8760 * time.Hour,
		"1d12h": 36 * time.Hour, "1y30d": 395 * 24 * time.Hour, " 15m ": 15 * time.Minute}
	for in, want := range ok {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ok/%q: got %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "xd", "5q", "-1h", "0s", "0d", "1d-2d", "300y", "9999999999999d", "1dd"} {
		if d, err := ParseDuration(in); err == nil {
			t.Errorf("fail/%q accepted as %v", in, d)
		}
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"90s", "7d", "1y30d", "1d12h", "-1h", "0", "1.5h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		if d <= 0 || d > maxDuration {
			t.Fatalf("%q -> %v out of range", s, d)
		}
	})
}
