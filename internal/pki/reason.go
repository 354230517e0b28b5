package pki

import (
	"fmt"
	"strings"
)

// Revocation reasons, the CRLReason codes of RFC 5280 §5.3.1. Code 7 is
// unused and removeFromCRL (8) is a delta-CRL mechanism, not a reason a
// caller may give.
var reasonNames = map[int]string{
	0:  "unspecified",
	1:  "keyCompromise",
	2:  "cACompromise",
	3:  "affiliationChanged",
	4:  "superseded",
	5:  "cessationOfOperation",
	6:  "certificateHold",
	9:  "privilegeWithdrawn",
	10: "aACompromise",
}

// ReasonCertificateHold is the only reason that can be released.
const ReasonCertificateHold = 6

// ReasonName returns the RFC 5280 name of a reason code.
func ReasonName(code int) string {
	if n, ok := reasonNames[code]; ok {
		return n
	}
	return fmt.Sprintf("reason(%d)", code)
}

// ParseReason accepts a reason's RFC 5280 name (case-insensitive) or its code.
func ParseReason(s string) (int, error) {
	for code, name := range reasonNames {
		if strings.EqualFold(s, name) || s == fmt.Sprint(code) {
			return code, nil
		}
	}
	return 0, invalidf("revocation reason %q is not one of unspecified, keyCompromise, cACompromise, affiliationChanged, superseded, cessationOfOperation, certificateHold, privilegeWithdrawn, aACompromise", s)
}
