package pki

import (
	"fmt"
	"io"
	"math/big"
	"strings"
)

// serialLen is the number of random bytes in a serial number. RFC 5280
// section 4.1.2.2 limits serials to 20 octets; with the top bit cleared a
// 20-byte value encodes in at most 20 DER octets and carries 159 random
// bits, well over the 64 bits the CA/B Forum BR section 7.1 asks for.
const serialLen = 20

// maxSerialBits is the bit length of the largest positive INTEGER whose DER
// encoding fits in 20 octets: one bit is the sign.
const maxSerialBits = serialLen*8 - 1

// NewSerial returns a positive serial number of up to 159 random bits read
// from r (crypto/rand.Reader in production). It never returns zero; it
// fails if r fails or keeps returning zeros.
func NewSerial(r io.Reader) (*big.Int, error) {
	b := make([]byte, serialLen)
	// A zero serial has probability 2^-159 with a real random source;
	// retrying a few times only guards against a broken one.
	for range 4 {
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, fmt.Errorf("pki: read random serial: %w", err)
		}
		b[0] &= 0x7f
		n := new(big.Int).SetBytes(b)
		if n.Sign() > 0 {
			return n, nil
		}
	}
	return nil, fmt.Errorf("pki: random source returned only zero serials")
}

// SerialHex formats a serial as lower-case hexadecimal without leading
// zeros or separators, the form Trustgate stores and shows.
func SerialHex(n *big.Int) string {
	return n.Text(16)
}

// ParseSerial parses a serial number in hexadecimal, case-insensitive, with
// an optional "0x" prefix and optional ':' separators between bytes (as
// openssl prints them). It rejects an empty or non-hex string, zero, and
// values longer than the 20 octets RFC 5280 section 4.1.2.2 allows.
func ParseSerial(s string) (*big.Int, error) {
	h := s
	if len(h) >= 2 && h[0] == '0' && (h[1] == 'x' || h[1] == 'X') {
		h = h[2:]
	}
	if strings.Contains(h, ":") {
		if strings.HasPrefix(h, ":") || strings.HasSuffix(h, ":") || strings.Contains(h, "::") {
			return nil, invalidf("serial %q has a misplaced ':' separator", truncate(s))
		}
		h = strings.ReplaceAll(h, ":", "")
	}
	if h == "" {
		return nil, invalidf("serial %q is empty", s)
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return nil, invalidf("serial %q is not hexadecimal (bad character %q)", truncate(s), c)
		}
	}
	// Leading zeros carry no value; strip them before the size check so
	// that a zero-padded serial of the right size is accepted.
	h = strings.TrimLeft(h, "0")
	if len(h) > 2*serialLen {
		return nil, invalidf("serial %q is longer than 20 octets", truncate(s))
	}
	n, ok := new(big.Int).SetString(h, 16)
	if h == "" || !ok || n.Sign() == 0 {
		return nil, invalidf("serial %q is zero; serials are positive", truncate(s))
	}
	if n.BitLen() > maxSerialBits {
		return nil, invalidf("serial %q does not fit in 20 DER octets (RFC 5280 section 4.1.2.2)", truncate(s))
	}
	return n, nil
}
