package config

import (
	"strings"
	"testing"
)

func TestRenewPoint(t *testing.T) {
	for _, tc := range []struct {
		name, at, jitter string
		wantAt, wantJ    float64
		err              string
	}{
		{"ok/defaults", "", "", 0, -1, ""},
		{"ok/fraction", "0.75", "0.05", 0.75, 0.05, ""},
		{"ok/percent", "50%", "20 %", 0.5, 0.2, ""},
		{"ok/no-jitter", "", "0", 0, 0, ""},
		{"fail/at-one", "1", "", 0, 0, "above 0 and below 1"},
		{"fail/at-zero", "0", "", 0, 0, "above 0 and below 1"},
		{"fail/not-a-number", "two thirds", "", 0, 0, "not a fraction"},
		{"fail/negative-jitter", "", "-0.1", 0, 0, "at least 0"},
		{"fail/outside-lifetime", "0.95", "0.2", 0, 0, "outside the lifetime"},
		{"fail/default-at-outside", "", "0.8", 0, 0, "outside the lifetime"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at, j, err := Lifecycle{RenewAt: tc.at, RenewJitter: tc.jitter}.RenewPoint()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("RenewPoint = %v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil || at != tc.wantAt || j != tc.wantJ {
				t.Errorf("RenewPoint = %v, %v, %v; want %v, %v", at, j, err, tc.wantAt, tc.wantJ)
			}
		})
	}
}
