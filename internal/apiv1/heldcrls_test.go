package apiv1

import (
	"maps"
	"strings"
	"testing"
)

func TestParseHeldCRLs(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     string // String of the result; "" with ok false for an error
		ok       bool
	}{
		{"ok/empty", "", "", true},
		{"ok/one", "AB01:7", "ab01:7", true},
		{"ok/sorted", "ff:1,0a:9223372036854775807", "0a:9223372036854775807,ff:1", true},
		{"fail/no number", "ab01", "", false},
		{"fail/odd hex", "abc:1", "", false},
		{"fail/not hex", "zz:1", "", false},
		{"fail/zero", "ab:0", "", false},
		{"fail/negative", "ab:-1", "", false},
		{"fail/plus", "ab:+1", "", false},
		{"fail/overflow", "ab:9223372036854775808", "", false},
		{"fail/duplicate", "ab:1,AB:2", "", false},
		{"fail/empty pair", "ab:1,", "", false},
		{"fail/long key", string(make([]byte, 130)) + ":1", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseHeldCRLs(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok %v", err, tc.ok)
			}
			if err == nil && h.String() != tc.want {
				t.Errorf("got %q, want %q", h.String(), tc.want)
			}
		})
	}
	many := "01:1"
	for range MaxHeldCRLs {
		many += ",01:1"
	}
	if _, err := ParseHeldCRLs(many); err == nil {
		t.Error("more than MaxHeldCRLs pairs accepted")
	}
}

// FuzzParseHeldCRLs checks that any have= value is either refused or
// parsed into at most MaxHeldCRLs well-formed pairs whose wire form
// parses back to the same pairs.
func FuzzParseHeldCRLs(f *testing.F) {
	for _, s := range []string{"", "ab01:7", "ff:1,0a:9223372036854775807", "ab:1,AB:2", "ab:0", "zz:1", "ab:+1", "ab:1,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHeldCRLs(s)
		if err != nil {
			if h != nil {
				t.Fatalf("%q: error %v with a result", s, err)
			}
			return
		}
		if len(h) > MaxHeldCRLs {
			t.Fatalf("%q: %d pairs accepted", s, len(h))
		}
		for k, n := range h {
			if n < 1 || len(k) == 0 || len(k) > 128 || len(k)%2 != 0 || strings.Trim(k, "0123456789abcdef") != "" {
				t.Fatalf("%q: accepted the pair %q:%d", s, k, n)
			}
		}
		back, err := ParseHeldCRLs(h.String())
		if err != nil || !maps.Equal(back, h) {
			t.Fatalf("%q: wire form %q parses to %v, %v", s, h.String(), back, err)
		}
	})
}
