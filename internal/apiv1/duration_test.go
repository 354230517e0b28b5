package apiv1_test

import (
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/pki"
)

func TestParseDuration(t *testing.T) {
	tests := map[string]struct {
		in   string
		want time.Duration
		err  string
	}{
		"ok/days":              {in: "90d", want: 90 * 24 * time.Hour},
		"ok/year and days":     {in: "1y30d", want: 395 * 24 * time.Hour},
		"ok/hours":             {in: "36h", want: 36 * time.Hour},
		"ok/go units":          {in: "1h30m15s", want: time.Hour + 30*time.Minute + 15*time.Second},
		"ok/fraction":          {in: "1.5h", want: 90 * time.Minute},
		"ok/day and hours":     {in: "1d12h", want: 36 * time.Hour},
		"ok/year is 365 days":  {in: "1y", want: 365 * 24 * time.Hour},
		"ok/ten years":         {in: "10y", want: 3650 * 24 * time.Hour},
		"ok/small units":       {in: "1ms500us", want: 1500 * time.Microsecond},
		"ok/micro sign":        {in: "3µs", want: 3 * time.Microsecond},
		"ok/leading zeros":     {in: "007d", want: 7 * 24 * time.Hour},
		"ok/largest":           {in: "292y", want: 292 * 365 * 24 * time.Hour},
		"fail/empty":           {in: "", err: "duration is empty"},
		"fail/zero":            {in: "0d", err: `duration "0d" is not positive`},
		"fail/zero seconds":    {in: "0s", err: "is not positive"},
		"fail/bare number":     {in: "90", err: `duration "90": number "90" has no unit`},
		"fail/bare zero":       {in: "0", err: "has no unit"},
		"fail/negative":        {in: "-1d", err: `duration "-1d" is negative; durations are positive`},
		"fail/plus":            {in: "+1d", err: "expected a number"},
		"fail/unit only":       {in: "d", err: `expected a number before "d"`},
		"fail/weeks":           {in: "2w", err: `duration "2w" has unknown unit "w" (use y, d, h, m, s, ms, us or ns)`},
		"fail/months":          {in: "1mo", err: `unknown unit "mo"`},
		"fail/fractional days": {in: "1.5d", err: `duration "1.5d": "1.5d" must be a whole number of days`},
		"fail/fractional year": {in: "0.5y", err: "must be a whole number of years"},
		"fail/space":           {in: "1d 12h", err: `unknown unit "d "`},
		"fail/leading space":   {in: " 1d", err: "expected a number"},
		"fail/too many years":  {in: "300y", err: `duration "300y" is too long`},
		"fail/too many days":   {in: "99999999999999999999d", err: "is too long"},
		"fail/sum overflows":   {in: "292y292y", err: "is too long"},
		"fail/go overflow":     {in: "9999999999h", err: `"9999999999h" is malformed or too long`},
		"fail/double dot":      {in: "1..5h", err: "is malformed or too long"},
		"fail/exponent":        {in: "1e3h", err: `unknown unit "e"`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := apiv1.ParseDuration(tt.in)
			if (err != nil) != (tt.err != "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("err = %v, want %q", err, tt.err)
			}
			if got != tt.want {
				t.Errorf("ParseDuration(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzParseDuration checks that accepted durations are positive and that
// FormatDuration's output parses back to the same value.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"90d", "1y30d", "36h", "1.5h", "0d", "-1d", "1d 1h", "292y", "300y", "1µs", "9223372036854775807ns", ".5s", "1.d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := apiv1.ParseDuration(s)
		if err != nil {
			return
		}
		if d <= 0 {
			t.Fatalf("ParseDuration(%q) = %v, not positive", s, d)
		}
		f := pki.FormatDuration(d)
		again, err := apiv1.ParseDuration(f)
		if err != nil || again != d {
			t.Fatalf("FormatDuration(%v) = %q parses to %v, %v", d, f, again, err)
		}
	})
}
