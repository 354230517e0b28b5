package sqlite

import (
	"testing"
	"time"
)

// FuzzDecodeTime checks the hand-written parser against time.Parse: what
// it accepts, time.Parse accepts as the same instant, and it accepts every
// value encodeTime writes. (time.Parse also takes a few odd forms that
// encodeTime never writes, such as a signed fraction.)
func FuzzDecodeTime(f *testing.F) {
	for _, s := range []string{
		"2026-03-14T15:09:26.535897123Z", "0001-01-01T00:00:00.000000000Z",
		"9999-12-31T23:59:59.999999999Z", "2024-02-29T00:00:00.000000000Z",
		"2025-02-29T00:00:00.000000000Z", "2026-04-31T00:00:00.000000000Z",
		"2026-13-01T00:00:00.000000000Z", "2026-00-01T00:00:00.000000000Z",
		"2026-01-01T24:00:00.000000000Z", "2026-01-01T00:60:00.000000000Z",
		"2026-01-01T00:00:60.000000000Z", "2026-01-01 00:00:00.000000000Z",
		"2026-01-01T00:00:00.00000000Z", "2026-01-01T00:00:00.0000000000",
		"+026-01-01T00:00:00.000000000Z", "2026-01-01T00:00:00.-00000000Z", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, werr := time.Parse(timeLayout, s)
		got, gerr := decodeTime(s)
		if gerr == nil && werr != nil {
			t.Fatalf("decodeTime(%q) = %v; time.Parse: %v", s, got, werr)
		}
		if werr == nil && gerr != nil {
			if enc, err := encodeTime(want); err == nil && enc == s {
				t.Fatalf("decodeTime(%q), written by encodeTime: %v", s, gerr)
			}
			return
		}
		if gerr == nil && (!got.Equal(want) || got.Location() != time.UTC) {
			t.Fatalf("decodeTime(%q) = %v; time.Parse: %v", s, got, want)
		}
		if gb, err := decodeTime([]byte(s)); gb != got || (err == nil) != (gerr == nil) {
			t.Fatalf("decodeTime([]byte(%q)) = %v, %v; from the string: %v, %v", s, gb, err, got, gerr)
		}
	})
}

// BenchmarkDecodeTime decodes a stored time from bytes, as ListRevoked does
// for every entry of a CRL.
func BenchmarkDecodeTime(b *testing.B) {
	s := []byte("2026-03-14T15:09:26.535897123Z")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeTime(s); err != nil {
			b.Fatal(err)
		}
	}
}
