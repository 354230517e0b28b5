package apiv1

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// ParseDuration reads the durations of the API, the CLI and the
// configuration: a lifetime such as "90d", "1y30d", "36h" or
// "1h30m": a sequence of numbers each followed by a unit. The units are
// those of time.ParseDuration ("ns", "us", "µs", "ms", "s", "m", "h") plus
// "d" (24 hours) and "y" (365 days, so "1y" is never a leap year longer);
// "d" and "y" take whole numbers only. There is no sign, no space and no
// bare number; the result must be positive and fit in a time.Duration
// (about 292 years).
func ParseDuration(s string) (time.Duration, error) {
	const day, year = 24 * time.Hour, 365 * 24 * time.Hour
	if s == "" {
		return 0, fmt.Errorf("duration is empty")
	}
	if s[0] == '-' {
		return 0, fmt.Errorf("duration %q is negative; durations are positive", s)
	}
	var total time.Duration
	for rest := s; rest != ""; {
		i := 0
		for i < len(rest) && (isDigit(rest[i]) || rest[i] == '.') {
			i++
		}
		num := rest[:i]
		rest = rest[i:]
		j := 0
		for j < len(rest) && !isDigit(rest[j]) && rest[j] != '.' {
			j++
		}
		unit := rest[:j]
		rest = rest[j:]
		if num == "" {
			return 0, fmt.Errorf("duration %q: expected a number before %q (durations look like 90d, 1y30d or 36h)", s, unit)
		}
		if unit == "" {
			return 0, fmt.Errorf("duration %q: number %q has no unit (use y, d, h, m, s, ms, us or ns)", s, num)
		}
		var d time.Duration
		switch unit {
		case "y", "d":
			n, err := strconv.ParseInt(num, 10, 64)
			if err != nil {
				if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
					return 0, fmt.Errorf("duration %q is too long", s)
				}
				return 0, fmt.Errorf("duration %q: %q must be a whole number of %s", s, num+unit, map[string]string{"y": "years", "d": "days"}[unit])
			}
			per := day
			if unit == "y" {
				per = year
			}
			if n > math.MaxInt64/int64(per) {
				return 0, fmt.Errorf("duration %q is too long", s)
			}
			d = time.Duration(n) * per
		case "ns", "us", "µs", "μs", "ms", "s", "m", "h":
			var err error
			d, err = time.ParseDuration(num + unit)
			if err != nil {
				return 0, fmt.Errorf("duration %q: %q is malformed or too long", s, num+unit)
			}
		default:
			return 0, fmt.Errorf("duration %q has unknown unit %q (use y, d, h, m, s, ms, us or ns)", s, unit)
		}
		if total > math.MaxInt64-d {
			return 0, fmt.Errorf("duration %q is too long", s)
		}
		total += d
	}
	if total <= 0 {
		return 0, fmt.Errorf("duration %q is not positive", s)
	}
	return total, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
