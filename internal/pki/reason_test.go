package pki

import (
	"errors"
	"testing"
)

func TestParseReason(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int
	}{{"keyCompromise", 1}, {"KEYCOMPROMISE", 1}, {"certificateHold", 6}, {"0", 0}, {"aACompromise", 10}, {"9", 9}} {
		got, err := ParseReason(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ok/%s: %d %v", tt.in, got, err)
		}
		if ReasonName(got) == "" {
			t.Errorf("no name for %d", got)
		}
	}
	for _, in := range []string{"", "7", "8", "removeFromCRL", "stolen", "11", "-1"} {
		if _, err := ParseReason(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("fail/%q: %v", in, err)
		}
	}
}
