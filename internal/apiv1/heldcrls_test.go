package apiv1

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"strings"
	"testing"
)

func TestParseHeldCRLs(t *testing.T) {
	const dig = "00112233445566778899aabbccddeeff"
	for _, tc := range []struct {
		name, in string
		want     string // String of the result, or a part of the error
		ok       bool
	}{
		{"ok/empty", "", "", true},
		{"ok/one", "AB01:7", "ab01:7", true},
		{"ok/sorted", "ff:1,0a:9223372036854775807", "0a:9223372036854775807,ff:1", true},
		{"ok/digest", "ab01:7:" + dig, "ab01:7:" + dig, true},
		{"ok/digest upper case", "AB01:7:" + strings.ToUpper(dig), "ab01:7:" + dig, true},
		{"ok/mixed", "ff:2,ab01:7:" + dig, "ab01:7:" + dig + ",ff:2", true},
		{"ok/zero digest is none", "ab:1:" + strings.Repeat("0", 32), "ab:1", true},
		{"fail/no number", "ab01", "is not <key id>:<CRL number>", false},
		{"fail/odd hex", "abc:1", "not 1 to 64 bytes in hex", false},
		{"fail/not hex", "zz:1", "not 1 to 64 bytes in hex", false},
		{"fail/zero", "ab:0", "not a positive integer", false},
		{"fail/negative", "ab:-1", "not a positive integer", false},
		{"fail/plus", "ab:+1", "not a positive integer", false},
		{"fail/overflow", "ab:9223372036854775808", "not a positive integer", false},
		{"fail/duplicate", "ab:1,AB:2", "named twice", false},
		{"fail/duplicate with a digest", "ab:1," + "AB:2:" + dig, "named twice", false},
		{"fail/empty pair", "ab:1,", "is not <key id>:<CRL number>", false},
		{"fail/long key", string(make([]byte, 130)) + ":1", "not 1 to 64 bytes in hex", false},
		{"fail/empty digest", "ab:1:", `digest "" of key identifier ab is not 16 bytes in hex`, false},
		{"fail/short digest", "ab:1:" + dig[:30], "is not 16 bytes in hex", false},
		{"fail/long digest", "ab:1:" + dig + "00", "is not 16 bytes in hex", false},
		{"fail/whole SHA-256", "ab:1:" + dig + dig, "is not 16 bytes in hex", false},
		{"fail/digest not hex", "ab:1:" + dig[:31] + "g", "is not 16 bytes in hex", false},
		{"fail/four fields", "ab:1:" + dig + ":1", "is not <key id>:<CRL number>", false},
		{"fail/digest before a bad entry", "ab:1:" + dig + ",cd:1:x", `digest "x" of key identifier cd`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseHeldCRLs(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok %v", err, tc.ok)
			}
			if err != nil {
				if h != nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("error %q (result %v), want one containing %q and no result", err, h, tc.want)
				}
				return
			}
			if h.String() != tc.want {
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

// TestCRLDigest: a digest is the first 16 bytes of the SHA-256 of the
// DER, written in hex; WithoutDigests and HasDigests see them.
func TestCRLDigest(t *testing.T) {
	der := []byte("not really a CRL")
	sum := sha256.Sum256(der)
	d := DigestCRL(der)
	if d.String() != hex.EncodeToString(sum[:16]) || d.IsZero() {
		t.Fatalf("digest %s, want %x", d, sum[:16])
	}
	h := HeldCRLs{"ab": {Number: 3, Digest: d}, "cd": {Number: 4}}
	if want := "ab:3:" + d.String() + ",cd:4"; h.String() != want || !h.HasDigests() {
		t.Errorf("%q (digests %v), want %q", h, h.HasDigests(), want)
	}
	if w := h.WithoutDigests(); w.String() != "ab:3,cd:4" || w.HasDigests() || h["ab"].Digest != d {
		t.Errorf("without digests: %q (digests %v); the original changed: %v", w, w.HasDigests(), h["ab"].Digest != d)
	}
}

// FuzzParseHeldCRLs checks that any have= value is either refused, with
// no result, or parsed into at most MaxHeldCRLs well-formed entries whose
// wire form parses back to the same entries. An entry with a malformed
// digest (d: anything but 32 hex digits) added to an accepted value is
// refused with a message that names the digest.
func FuzzParseHeldCRLs(f *testing.F) {
	const dig = "00112233445566778899aabbccddeeff"
	for _, s := range []string{"", "ab01:7", "ff:1,0a:9223372036854775807", "ab:1,AB:2", "ab:0", "zz:1", "ab:+1", "ab:1,",
		"ab01:7:" + dig, "ab:1:" + strings.ToUpper(dig), "ab:1:", "ab:1:" + dig[:31], "ab:1:" + dig + ":2", "ab:1:" + strings.Repeat("0", 32)} {
		f.Add(s, dig)
		f.Add(s, "0g"+dig[2:])
	}
	f.Add("ab:1", "")
	f.Add("ab:1", dig+"0")
	f.Fuzz(func(t *testing.T, s, d string) {
		h, err := ParseHeldCRLs(s)
		if err != nil {
			if h != nil {
				t.Fatalf("%q: error %v with a result", s, err)
			}
			return
		}
		if len(h) > MaxHeldCRLs {
			t.Fatalf("%q: %d entries accepted", s, len(h))
		}
		for k, c := range h {
			if c.Number < 1 || len(k) == 0 || len(k) > 128 || len(k)%2 != 0 || strings.Trim(k, "0123456789abcdef") != "" {
				t.Fatalf("%q: accepted the entry %q:%d", s, k, c.Number)
			}
		}
		back, err := ParseHeldCRLs(h.String())
		if err != nil || !maps.Equal(back, h) {
			t.Fatalf("%q: wire form %q parses to %v, %v", s, h.String(), back, err)
		}

		// One more entry, of a key not in h, with d as its digest.
		if len(h) >= MaxHeldCRLs || strings.ContainsAny(d, ",:") {
			return
		}
		key := strings.Repeat("fe", 64)
		if _, taken := h[key]; taken {
			return
		}
		with := key + ":1:" + d
		if s != "" {
			with = s + "," + with
		}
		h2, err := ParseHeldCRLs(with)
		_, hexErr := hex.DecodeString(d)
		wellFormed := len(d) == 32 && hexErr == nil
		switch {
		case wellFormed && err != nil:
			t.Fatalf("%q: a well-formed digest %q refused: %v", with, d, err)
		case wellFormed && (len(h2) != len(h)+1 || h2[key].Digest.String() != strings.ToLower(d) && !h2[key].Digest.IsZero()):
			t.Fatalf("%q: digest %q parsed as %v", with, d, h2[key])
		case !wellFormed && err == nil:
			t.Fatalf("%q: the malformed digest %q accepted", with, d)
		case !wellFormed && !strings.Contains(err.Error(), "digest"):
			t.Fatalf("%q: the malformed digest %q refused with %q, which does not name it", with, d, err)
		}
	})
}
