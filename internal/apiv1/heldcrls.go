package apiv1

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// MaxHeldCRLs bounds the CRLs a snapshot request may name in have.
const MaxHeldCRLs = 256

// CRLDigestSize is the length of a CRLDigest in bytes.
const CRLDigestSize = 16

// CRLDigest names a CRL by its content: the first CRLDigestSize bytes of
// the SHA-256 of its DER. Two CRLs of one issuer and one CRL number can
// differ (a control plane restored from a backup hands out numbers again,
// a CA key serves two deployments), and a delta CRL applied to the wrong
// one would leave out revocations; the digest tells them apart. Sixteen
// bytes make an accidental match as likely as guessing a 128-bit key, and
// a deliberate one would take a CRL signed by the CA. The zero value is
// no digest.
type CRLDigest [CRLDigestSize]byte

// DigestCRL returns the CRLDigest of the CRL whose DER is der.
func DigestCRL(der []byte) CRLDigest {
	sum := sha256.Sum256(der)
	return CRLDigest(sum[:CRLDigestSize])
}

// IsZero reports whether d is no digest.
func (d CRLDigest) IsZero() bool { return d == CRLDigest{} }

// String returns d in lower-case hex, as in have.
func (d CRLDigest) String() string { return hex.EncodeToString(d[:]) }

// HeldCRL is one full CRL a gateway holds: its CRL number and, from
// gateways that send it, its digest.
type HeldCRL struct {
	Number int64
	// Digest is the CRL's digest, or zero when the entry carried none (a
	// gateway from before digests, or one talking to a control plane that
	// does not read them). A control plane answers an entry without a
	// digest as if the CRL were not held: it cannot tell which CRL of
	// that number the gateway has.
	Digest CRLDigest
}

// HeldCRLs are the full CRLs a gateway holds, named in the have parameter
// of a snapshot request, by the key identifier of their issuer (the CRL's
// authority key identifier, lower-case hex). The control plane then
// answers, for those of its CAs, with a delta CRL from the held one, or
// says it is unchanged, instead of the full CRL; only when the digest
// shows that the CRL held is the one it has of that number.
//
// On the wire it is entries joined by commas, each "<key id>:<number>" or
// "<key id>:<number>:<digest>" (the digest in hex, CRLDigestSize bytes),
// such as have=9f1c…e2:41:5d0e…7a,07ab…10:7:c3b1…09.
type HeldCRLs map[string]HeldCRL

// ParseHeldCRLs parses the have parameter: at most MaxHeldCRLs entries of
// a key identifier (1 to 64 bytes in hex), a CRL number (a positive
// decimal integer) and optionally a digest (exactly CRLDigestSize bytes in
// hex; all zeros counts as none), each key once. The empty string is no
// CRLs. Hex digits may be of either case; the result holds lower case.
func ParseHeldCRLs(s string) (HeldCRLs, error) {
	out := HeldCRLs{}
	if s == "" {
		return out, nil
	}
	entries := strings.Split(s, ",")
	if len(entries) > MaxHeldCRLs {
		return nil, fmt.Errorf("have names %d CRLs; at most %d are accepted", len(entries), MaxHeldCRLs)
	}
	for _, e := range entries {
		fields := strings.Split(e, ":")
		if len(fields) < 2 || len(fields) > 3 {
			return nil, fmt.Errorf("have: %q is not <key id>:<CRL number> or <key id>:<CRL number>:<digest>", e)
		}
		kid, num := fields[0], fields[1]
		if len(kid) == 0 || len(kid) > 128 || len(kid)%2 != 0 || !isHex(kid) {
			return nil, fmt.Errorf("have: key identifier %q is not 1 to 64 bytes in hex", kid)
		}
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n < 1 || strings.HasPrefix(num, "+") {
			return nil, fmt.Errorf("have: CRL number %q is not a positive integer", num)
		}
		var d CRLDigest
		if len(fields) == 3 {
			// The length first: hex.Decode writes past d otherwise.
			if len(fields[2]) != 2*CRLDigestSize || !isHex(fields[2]) {
				return nil, fmt.Errorf("have: digest %q of key identifier %s is not %d bytes in hex (the first %d bytes of the SHA-256 of the CRL)", fields[2], kid, CRLDigestSize, CRLDigestSize)
			}
			if _, err := hex.Decode(d[:], []byte(fields[2])); err != nil { // checked above: not reached
				return nil, fmt.Errorf("have: digest %q: %w", fields[2], err)
			}
		}
		kid = strings.ToLower(kid)
		if _, dup := out[kid]; dup {
			return nil, fmt.Errorf("have: key identifier %s is named twice", kid)
		}
		out[kid] = HeldCRL{Number: n, Digest: d}
	}
	return out, nil
}

func isHex(s string) bool { return strings.Trim(s, "0123456789abcdefABCDEF") == "" }

// String returns the wire form of h, sorted by key identifier, each entry
// with its digest when it has one.
func (h HeldCRLs) String() string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		c := h[k]
		b.WriteString(k + ":" + strconv.FormatInt(c.Number, 10))
		if !c.Digest.IsZero() {
			b.WriteString(":" + c.Digest.String())
		}
	}
	return b.String()
}

// WithoutDigests returns h without its digests: the form a control plane
// from before digests accepts (it refuses a have with digests as
// malformed).
func (h HeldCRLs) WithoutDigests() HeldCRLs {
	out := make(HeldCRLs, len(h))
	for k, c := range h {
		out[k] = HeldCRL{Number: c.Number}
	}
	return out
}

// HasDigests reports whether an entry of h carries a digest.
func (h HeldCRLs) HasDigests() bool {
	for _, c := range h {
		if !c.Digest.IsZero() {
			return true
		}
	}
	return false
}
