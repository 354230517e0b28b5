package pki_test

import (
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/pki"
)

func TestFormatDuration(t *testing.T) {
	tests := map[string]struct {
		in   time.Duration
		want string
	}{
		"ok/years":            {10 * pki.Year, "10y"},
		"ok/days":             {398 * pki.Day, "398d"},
		"ok/days and time":    {pki.Day + 12*time.Hour, "1d12h0m0s"},
		"ok/under a day":      {90 * time.Minute, "1h30m0s"},
		"ok/zero":             {0, "0s"},
		"ok/negative is Go's": {-time.Hour, "-1h0m0s"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := pki.FormatDuration(tt.in); got != tt.want {
				t.Errorf("FormatDuration(%v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
