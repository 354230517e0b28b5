package truststore

import "testing"

// TestFirstReuse: a CRL number held with other contents is warned about
// once per CA and number, however often gateways ask.
func TestFirstReuse(t *testing.T) {
	var s Service
	for i, tc := range []struct {
		ca     string
		number int64
		want   bool
	}{
		{"a", 7, true}, {"a", 7, false}, {"a", 7, false},
		{"b", 7, true}, {"a", 8, true}, {"a", 8, false}, {"b", 7, false},
	} {
		if got := s.firstReuse(tc.ca, tc.number); got != tc.want {
			t.Errorf("%d: firstReuse(%s, %d) = %v, want %v", i, tc.ca, tc.number, got, tc.want)
		}
	}
}
