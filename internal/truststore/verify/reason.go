package verify

import (
	"errors"
	"fmt"
)

// Reason says why a client certificate was rejected. The names are those of
// the failure reasons of an AWS Application Load Balancer's connection log,
// so that log queries and dashboards carry over. The list is append-only:
// a Reason's number and name never change.
type Reason int

// The reasons, append-only. The zero value is no reason (success).
const (
	// ClientCertNotFound: the client sent no certificate where one is required.
	ClientCertNotFound Reason = iota + 1
	// ClientCertUntrusted: no chain leads from the certificate to the trust store.
	ClientCertUntrusted
	// ClientCertExpired: a certificate of the chain is past its notAfter.
	ClientCertExpired
	// ClientCertNotYetValid: a certificate of the chain is before its notBefore.
	ClientCertNotYetValid
	// ClientCertCrlHit: a certificate of the chain is on its issuer's CRL.
	ClientCertCrlHit
	// ClientCertCrlExpired: the issuer's CRL is past its nextUpdate and the
	// stale-CRL policy is fail-closed.
	ClientCertCrlExpired
	// ClientCertMaxChainDepthExceeded: the chain has more certificates than allowed.
	ClientCertMaxChainDepthExceeded
	// ClientCertMaxSizeExceeded: a certificate is larger than allowed.
	ClientCertMaxSizeExceeded
	// ClientCertWrongUsage: the certificate's extended key usage does not
	// allow client authentication (for example a serverAuth-only certificate).
	ClientCertWrongUsage
	// ClientCertRejectedByRoute: the chain is valid but a route's identity
	// rules do not allow it. Set by the gateway, never by Verify.
	ClientCertRejectedByRoute
	// ClientCertMalformed: a certificate cannot be parsed.
	ClientCertMalformed
)

var reasonNames = [...]string{
	ClientCertNotFound:              "ClientCertNotFound",
	ClientCertUntrusted:             "ClientCertUntrusted",
	ClientCertExpired:               "ClientCertExpired",
	ClientCertNotYetValid:           "ClientCertNotYetValid",
	ClientCertCrlHit:                "ClientCertCrlHit",
	ClientCertCrlExpired:            "ClientCertCrlExpired",
	ClientCertMaxChainDepthExceeded: "ClientCertMaxChainDepthExceeded",
	ClientCertMaxSizeExceeded:       "ClientCertMaxSizeExceeded",
	ClientCertWrongUsage:            "ClientCertWrongUsage",
	ClientCertRejectedByRoute:       "ClientCertRejectedByRoute",
	ClientCertMalformed:             "ClientCertMalformed",
}

// Reasons lists every reason in order.
func Reasons() []Reason {
	out := make([]Reason, 0, len(reasonNames)-1)
	for r := ClientCertNotFound; int(r) < len(reasonNames); r++ {
		out = append(out, r)
	}
	return out
}

// String returns the reason's name, such as "ClientCertExpired", or "" for
// the zero value.
func (r Reason) String() string {
	if r > 0 && int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	if r == 0 {
		return ""
	}
	return fmt.Sprintf("Reason(%d)", int(r))
}

// Error is a rejected client certificate: the Reason callers branch on and
// the underlying cause, whose text is for logs.
type Error struct {
	Reason Reason
	Err    error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return "verify: " + e.Reason.String() + ": " + e.Err.Error()
	}
	return "verify: " + e.Reason.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// ReasonOf returns the Reason of the first *Error in err's tree, or 0.
func ReasonOf(err error) Reason {
	var ve *Error
	if errors.As(err, &ve) {
		return ve.Reason
	}
	return 0
}

func fail(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Err: fmt.Errorf(format, args...)}
}
