package apiv1

import "testing"

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
