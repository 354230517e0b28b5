// Package fault is Trustgate's error vocabulary: a small, append-only set of
// kinds that domain packages attach to errors and that only the API edge turns
// into HTTP statuses.
package fault

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies an error by what the caller can do about it.
type Kind int

// The kinds, append-only.
const (
	// Internal is the zero value: a fault of the server, never of the caller.
	Internal Kind = iota
	// Invalid means the request is malformed or breaks a rule; retrying it unchanged fails again.
	Invalid
	// NotFound means the named object does not exist.
	NotFound
	// Conflict means the request clashes with the current state (a duplicate name, a wrong state).
	Conflict
	// Denied means the caller is known but not allowed.
	Denied
	// Unauthenticated means the caller did not prove who it is.
	Unauthenticated
	// Unavailable means a dependency is down; the same request may succeed later.
	Unavailable
	// TooLarge means the request body or a field is over a size limit.
	TooLarge
	// TooManyRequests means the caller is over a rate limit; see RetryAfter.
	TooManyRequests
)

var kindNames = [...]string{
	Internal:        "internal",
	Invalid:         "invalid",
	NotFound:        "not_found",
	Conflict:        "conflict",
	Denied:          "denied",
	Unauthenticated: "unauthenticated",
	Unavailable:     "unavailable",
	TooLarge:        "too_large",
	TooManyRequests: "too_many_requests",
}

// String returns the kind's wire name, used as the API error code.
func (k Kind) String() string {
	if int(k) >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "internal"
}

// Error is an error with a Kind and a message meant for the caller. Err, when
// set, is the underlying cause; its text is for logs and is not shown to
// callers of Internal errors.
type Error struct {
	Kind Kind
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	switch {
	case e.Msg == "" && e.Err != nil:
		return e.Err.Error()
	case e.Err != nil:
		return e.Msg + ": " + e.Err.Error()
	default:
		return e.Msg
	}
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// New returns an error of kind k with a formatted message.
func New(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}

// Wrap returns err with kind k and a message prefix; nil stays nil.
func Wrap(k Kind, err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...), Err: err}
}

// KindOf returns the kind of the outermost *Error in err's chain, or Internal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// Is reports whether err carries kind k.
func Is(err error, k Kind) bool { return err != nil && KindOf(err) == k }

// RetryAfter is an error that says when a refused request may be retried.
type RetryAfter struct {
	Err   *Error
	After time.Duration
}

func (e *RetryAfter) Error() string { return e.Err.Error() }

// Unwrap returns the kinded error, so KindOf sees through it.
func (e *RetryAfter) Unwrap() error { return e.Err }

// RetryAfterOf returns how long err asks the caller to wait, 0 if it does not.
func RetryAfterOf(err error) time.Duration {
	var ra *RetryAfter
	if errors.As(err, &ra) {
		return ra.After
	}
	return 0
}

// Credential is a refusal of a credential the caller did prove (the secret
// of a known token, a certificate signed by a CA of this Trustgate whose
// key the TLS handshake proved) but that is not accepted now: revoked,
// expired, used up, or bound to no principal. It names the credential so
// that the refusal can be attributed in the audit log; it never holds the
// secret. Its text is Err's, so what the caller is told does not change.
type Credential struct {
	Err error
	// Actor names the credential as audit records name callers
	// ("token:ID", "bootstrap-token:ID", "certificate:SERIAL").
	Actor string
	// About says what else is known of it, for the auditor: the principal
	// it belongs to, the CA that issued it ("" when nothing is).
	About string
}

func (e *Credential) Error() string { return e.Err.Error() }

// Unwrap returns the refusal, so KindOf sees through it.
func (e *Credential) Unwrap() error { return e.Err }

// CredentialOf returns the proved credential that err refuses, or nil when
// err names none.
func CredentialOf(err error) *Credential {
	if c, ok := errors.AsType[*Credential](err); ok {
		return c
	}
	return nil
}
