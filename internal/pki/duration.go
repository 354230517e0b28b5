package pki

import (
	"fmt"
	"time"
)

// FormatDuration formats d in the units of the API's duration format
// (apiv1.ParseDuration parses the result back to d): whole years as "5y", whole days as "90d", and
// otherwise days followed by Go's own format ("1d12h0m0s", "1m0s").
func FormatDuration(d time.Duration) string {
	if d <= 0 || d < Day {
		return d.String()
	}
	days, rest := d/Day, d%Day
	if rest != 0 {
		return fmt.Sprintf("%dd%s", days, rest)
	}
	if days%365 == 0 {
		return fmt.Sprintf("%dy", days/365)
	}
	return fmt.Sprintf("%dd", days)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
