package postgres

import (
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/trustgate/trustgate/internal/fault"
)

// checkTime refuses times the store does not keep: outside the years 0000 to
// 9999, as the SQLite store does, so that both stores accept the same
// records (timestamptz itself would take more). The store keeps microseconds;
// finer digits are dropped.
func checkTime(what string, t time.Time) error {
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return fault.New(fault.Invalid, "%s %s is outside the storable years 0000-9999", what, t)
	}
	return nil
}

// fromDB returns a time read from a timestamptz column in the form the
// store promises: UTC, no monotonic reading, so the zero time.Time comes
// back == time.Time{}.
func fromDB(t time.Time) time.Time { return t.UTC() }

// nowMicro returns now in UTC, truncated to the microseconds the database
// keeps, so that a time the store sets in a caller's record is == to what a
// later read returns.
func nowMicro(now func() time.Time) time.Time {
	return now().UTC().Truncate(time.Microsecond)
}

// checkSANs refuses SANs that the SQLite store cannot hold either: one with
// a newline or a NUL (PostgreSQL text cannot hold NUL at all).
func checkSANs(sans []string) error {
	for _, s := range sans {
		if strings.ContainsAny(s, "\n\x00") {
			return fault.New(fault.Invalid, "SAN %q contains a newline or NUL", s)
		}
	}
	return nil
}

// encodeSANs returns the text[] value of sans: never NULL.
func encodeSANs(sans []string) []string {
	if sans == nil {
		return []string{}
	}
	return sans
}

// decodeSANs returns the SANs read from the database; none is nil.
func decodeSANs(sans []string) []string {
	if len(sans) == 0 {
		return nil
	}
	return sans
}

// checkInt32 refuses a number that does not fit the integer column it goes in.
func checkInt32(what string, n int) error {
	if n < math.MinInt32 || n > math.MaxInt32 {
		return fault.New(fault.Invalid, "%s %d is out of range", what, n)
	}
	return nil
}

// nullString stores "" as NULL, for columns that reference another table.
func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// fromNull returns the string of a nullable column, "" for NULL.
func fromNull(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// storable reports whether PostgreSQL text can hold s: valid UTF-8 (in a
// UTF8 database) and no NUL. A lookup by a key that is not storable cannot
// match a stored row, so it is answered without asking the server, which
// would refuse the parameter.
func storable(keys ...string) bool {
	for _, s := range keys {
		if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			return false
		}
	}
	return true
}
