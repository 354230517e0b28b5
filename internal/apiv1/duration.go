package apiv1

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// maxDuration bounds parsed durations far below time.Duration's ~292-year
// limit, so sums never overflow.
const maxDuration = 200 * 365 * 24 * time.Hour

// ParseDuration reads the durations the API, the CLI and the configuration
// accept: Go durations ("90s", "36h") plus the units d (24h) and y (365d),
// in combination ("1y30d", "1d12h"). The result is positive.
func ParseDuration(s string) (time.Duration, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, errors.New("empty duration")
	}
	var total time.Duration
	rest := in
	for rest != "" {
		i := strings.IndexAny(rest, "dy")
		if i < 0 {
			d, err := time.ParseDuration(rest)
			if err != nil {
				return 0, fmt.Errorf("duration %q is not valid (use e.g. 90s, 15m, 36h, 7d, 1y)", s)
			}
			total += d
			break
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil || n < 0 || n > 100000 {
			return 0, fmt.Errorf("duration %q is not valid (use e.g. 90s, 15m, 36h, 7d, 1y)", s)
		}
		unit := 24 * time.Hour
		if rest[i] == 'y' {
			unit *= 365
		}
		total += time.Duration(n) * unit
		rest = rest[i+1:]
	}
	if total <= 0 {
		return 0, fmt.Errorf("duration %q must be positive", s)
	}
	if total > maxDuration {
		return 0, fmt.Errorf("duration %q is too long", s)
	}
	return total, nil
}
