package apiv1

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// MaxHeldCRLs bounds the CRLs a snapshot request may name in have.
const MaxHeldCRLs = 256

// HeldCRLs are the full CRLs a gateway holds, named in the have parameter
// of a snapshot request: by the key identifier of their issuer (the CRL's
// authority key identifier, lower-case hex), the CRL number. The control
// plane then answers, for those of its CAs, with a delta CRL from the held
// one, or says it is unchanged, instead of the full CRL.
//
// On the wire it is "<key id>:<number>" pairs joined by commas, such as
// have=9f1c…e2:41,07ab…10:7.
type HeldCRLs map[string]int64

// ParseHeldCRLs parses the have parameter: at most MaxHeldCRLs pairs of a
// key identifier (1 to 64 bytes in hex) and a CRL number (a positive
// decimal integer), each key once. The empty string is no CRLs.
func ParseHeldCRLs(s string) (HeldCRLs, error) {
	out := HeldCRLs{}
	if s == "" {
		return out, nil
	}
	pairs := strings.Split(s, ",")
	if len(pairs) > MaxHeldCRLs {
		return nil, fmt.Errorf("have names %d CRLs; at most %d are accepted", len(pairs), MaxHeldCRLs)
	}
	for _, p := range pairs {
		kid, num, ok := strings.Cut(p, ":")
		if !ok {
			return nil, fmt.Errorf("have: %q is not <key id>:<CRL number>", p)
		}
		if len(kid) == 0 || len(kid) > 128 || len(kid)%2 != 0 || strings.Trim(kid, "0123456789abcdefABCDEF") != "" {
			return nil, fmt.Errorf("have: key identifier %q is not 1 to 64 bytes in hex", kid)
		}
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n < 1 || strings.HasPrefix(num, "+") {
			return nil, fmt.Errorf("have: CRL number %q is not a positive integer", num)
		}
		kid = strings.ToLower(kid)
		if _, dup := out[kid]; dup {
			return nil, fmt.Errorf("have: key identifier %s is named twice", kid)
		}
		out[kid] = n
	}
	return out, nil
}

// String returns the wire form of h, sorted by key identifier.
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
		b.WriteString(k + ":" + strconv.FormatInt(h[k], 10))
	}
	return b.String()
}
