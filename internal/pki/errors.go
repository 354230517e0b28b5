package pki

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is wrapped by every validation failure of this package: a
// malformed or weak input that fails again if retried unchanged. Test with
// errors.Is; the error's message says what is wrong.
var ErrInvalid = errors.New("invalid")

// ErrTooLarge is wrapped by failures of a size limit, such as a CSR larger
// than [MaxCSRSize].
var ErrTooLarge = errors.New("too large")

// checkError is a validation failure. Its message is complete on its own
// (it does not end in ": invalid"), and it unwraps to its kind (ErrInvalid or
// ErrTooLarge) and to the underlying cause, if any.
type checkError struct {
	kind  error
	msg   string
	cause error
}

func (e *checkError) Error() string {
	if e.cause != nil {
		// A nested failure of this package already says "pki: ".
		return e.msg + ": " + strings.TrimPrefix(e.cause.Error(), "pki: ")
	}
	return e.msg
}

func (e *checkError) Unwrap() []error {
	if e.cause != nil {
		return []error{e.kind, e.cause}
	}
	return []error{e.kind}
}

// invalidf returns an error wrapping ErrInvalid with a "pki: " prefixed message.
func invalidf(format string, args ...any) error {
	return &checkError{kind: ErrInvalid, msg: "pki: " + fmt.Sprintf(format, args...)}
}

// invalidWrap is invalidf with an underlying cause kept for errors.Is/As.
func invalidWrap(cause error, format string, args ...any) error {
	return &checkError{kind: ErrInvalid, msg: "pki: " + fmt.Sprintf(format, args...), cause: cause}
}

// tooLargef returns an error wrapping ErrTooLarge.
func tooLargef(format string, args ...any) error {
	return &checkError{kind: ErrTooLarge, msg: "pki: " + fmt.Sprintf(format, args...)}
}
