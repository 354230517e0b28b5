package pki_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"math/big"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/internal/pki"
)

func TestNewSerial(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		n, err := pki.NewSerial(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if n.Sign() <= 0 || n.BitLen() > 159 {
			t.Fatalf("serial %x: sign %d, %d bits; want positive, at most 159 bits", n, n.Sign(), n.BitLen())
		}
		if seen[n.String()] {
			t.Fatalf("serial %x repeated", n)
		}
		seen[n.String()] = true
	}
	t.Run("ok/top bit cleared", func(t *testing.T) {
		n, err := pki.NewSerial(bytes.NewReader(bytes.Repeat([]byte{0xff}, 20)))
		if err != nil {
			t.Fatal(err)
		}
		if n.BitLen() != 159 {
			t.Fatalf("serial of all-ones input has %d bits, want 159", n.BitLen())
		}
		if der := n.Bytes(); len(der) > 20 {
			t.Fatalf("serial needs %d bytes", len(der))
		}
	})
	t.Run("ok/zero retried", func(t *testing.T) {
		in := append(make([]byte, 20), bytes.Repeat([]byte{1}, 20)...)
		n, err := pki.NewSerial(bytes.NewReader(in))
		if err != nil || n.Sign() <= 0 {
			t.Fatalf("NewSerial after a zero draw = %v, %v", n, err)
		}
	})
	t.Run("fail/only zeros", func(t *testing.T) {
		_, err := pki.NewSerial(bytes.NewReader(make([]byte, 1000)))
		if err == nil || !strings.Contains(err.Error(), "only zero serials") {
			t.Fatalf("NewSerial(zeros) = %v", err)
		}
	})
	t.Run("fail/short read", func(t *testing.T) {
		_, err := pki.NewSerial(bytes.NewReader(make([]byte, 5)))
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("NewSerial(short) = %v, want io.ErrUnexpectedEOF", err)
		}
	})
}

func TestSerialHex(t *testing.T) {
	for in, want := range map[int64]string{1: "1", 255: "ff", 0x10a: "10a", 0x7fffffff: "7fffffff"} {
		if got := pki.SerialHex(big.NewInt(in)); got != want {
			t.Errorf("SerialHex(%d) = %q, want %q", in, got, want)
		}
	}
}

func TestParseSerial(t *testing.T) {
	max := "7f" + strings.Repeat("ff", 19)
	tests := map[string]struct {
		in   string
		want string // SerialHex of the result
		err  string
	}{
		"ok/hex":              {in: "ff", want: "ff"},
		"ok/0x prefix":        {in: "0xFF", want: "ff"},
		"ok/0X prefix":        {in: "0XaB", want: "ab"},
		"ok/openssl colons":   {in: "01:AB:cd", want: "1abcd"},
		"ok/leading zeros":    {in: "000001", want: "1"},
		"ok/20 octets":        {in: max, want: max},
		"ok/padded 20 octets": {in: "0000" + max, want: max},
		"fail/empty":          {in: "", err: `pki: serial "" is empty`},
		"fail/prefix only":    {in: "0x", err: "is empty"},
		"fail/zero":           {in: "0", err: `serial "0" is zero; serials are positive`},
		"fail/zero colons":    {in: "00:00", err: "is zero"},
		"fail/negative":       {in: "-1", err: `serial "-1" is not hexadecimal (bad character '-')`},
		"fail/not hex":        {in: "xyz", err: "is not hexadecimal (bad character 'x')"},
		"fail/space":          {in: " ff", err: "bad character ' '"},
		"fail/decimal":        {in: "12g", err: "bad character 'g'"},
		"fail/trailing colon": {in: "ab:", err: `serial "ab:" has a misplaced ':' separator`},
		"fail/leading colon":  {in: ":ab", err: "misplaced ':'"},
		"fail/double colon":   {in: "ab::cd", err: "misplaced ':'"},
		"fail/21 DER octets":  {in: "80" + strings.Repeat("00", 19), err: "does not fit in 20 DER octets"},
		"fail/21 octets":      {in: "01" + strings.Repeat("00", 20), err: "is longer than 20 octets"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			n, err := pki.ParseSerial(tt.in)
			wantErr(t, err, pki.ErrInvalid, tt.err)
			if tt.err == "" && pki.SerialHex(n) != tt.want {
				t.Errorf("ParseSerial(%q) = %s, want %s", tt.in, pki.SerialHex(n), tt.want)
			}
		})
	}
}

// FuzzParseSerial checks that an accepted serial is positive, fits in 20
// DER octets, and survives a SerialHex round trip.
func FuzzParseSerial(f *testing.F) {
	for _, s := range []string{"ff", "0xFF", "01:ab:cd", "0", "-1", "7f" + strings.Repeat("ff", 19), "80" + strings.Repeat("00", 19), "::", "0x0x1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := pki.ParseSerial(s)
		if err != nil {
			if !errors.Is(err, pki.ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		if n.Sign() <= 0 || n.BitLen() > 159 {
			t.Fatalf("ParseSerial(%q) = %x: not positive or over 20 DER octets", s, n)
		}
		h := pki.SerialHex(n)
		again, err := pki.ParseSerial(h)
		if err != nil || again.Cmp(n) != 0 {
			t.Fatalf("SerialHex round trip: %q -> %q -> %v, %v", s, h, again, err)
		}
	})
}
