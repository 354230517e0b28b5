package store

import (
	"context"
	"time"
)

// RenewalStore is the part of the persistence contract that managed
// renewal and CA rotation need: who renewed a certificate, and which CA
// took over issuance from another. Its rules are those of Store.
type RenewalStore interface {
	// ListRenewable returns up to limit certificates with Seq > after, in
	// Seq order, that managed renewal looks at: issued by a CA of this
	// Trustgate (CAID set), Managed, active, not expired at now, and with
	// no successor recorded (a claimed but unfinished renewal still
	// lists).
	ListRenewable(ctx context.Context, now time.Time, after int64, limit int) ([]*Certificate, error)
	// ClaimRenewal claims the renewal of the certificate (caID, serial) at
	// time at and reports whether this caller won the claim. It wins when
	// the certificate has no successor and no claim made at or after
	// staleBefore: one conditional write, so of concurrent callers exactly
	// one wins, and a claim whose holder died is taken over once it is
	// older than staleBefore. A missing certificate is ErrNotFound.
	ClaimRenewal(ctx context.Context, caID, serial string, at, staleBefore time.Time) (bool, error)
	// SetSuccessor records that the certificate successor (of the same or
	// a later CA) renewed (caID, serial), at time at. Recording the
	// successor already recorded is not an error; a different one is
	// ErrConflict. A missing certificate is ErrNotFound.
	SetSuccessor(ctx context.Context, caID, serial, successor string, at time.Time) error
	// GetSuccessor returns the serial of the certificate that renewed
	// (caID, serial), or "" when none is recorded (nor any certificate).
	GetSuccessor(ctx context.Context, caID, serial string) (string, error)

	// SetCASuccessor records that the CA successorID took over issuance
	// from the CA caID at time at. A CA has at most one successor and is
	// the successor of at most one CA: either taken is ErrConflict, so
	// that of two concurrent rotations one wins. An ID naming no CA is
	// ErrNotFound.
	SetCASuccessor(ctx context.Context, caID, successorID string, at time.Time) error
	// GetCASuccessor returns the ID of the CA that took over from caID, or
	// "" when none did.
	GetCASuccessor(ctx context.Context, caID string) (string, error)
	// GetCAPredecessor returns the ID of the CA that caID took over from,
	// or "" when it took over from none.
	GetCAPredecessor(ctx context.Context, caID string) (string, error)

	// ListRenewals calls fn for every recorded renewal (claimed or done),
	// ordered by CA ID and serial, streaming; an error from fn stops it
	// and is returned. For copying a store.
	ListRenewals(ctx context.Context, fn func(Renewal) error) error
	// RestoreRenewal records r exactly as it was. A renewal already
	// recorded for (CAID, Serial) is ErrConflict; a missing certificate
	// is ErrNotFound.
	RestoreRenewal(ctx context.Context, r Renewal) error
	// ListCASuccessions returns every recorded CA rotation, ordered by
	// time and then CA ID. For copying a store (SetCASuccessor restores).
	ListCASuccessions(ctx context.Context) ([]CASuccession, error)
}

// Renewal is the renewal state of one certificate.
type Renewal struct {
	CAID, Serial string
	// ClaimedAt is when the renewal was last claimed (zero when the
	// successor was recorded without a claim).
	ClaimedAt time.Time
	// Successor is the serial that renewed it; "" while only claimed.
	Successor string
	RenewedAt time.Time // zero while only claimed
}

// CASuccession is one CA rotation: SuccessorID took over from CAID.
type CASuccession struct {
	CAID, SuccessorID string
	RotatedAt         time.Time
}
