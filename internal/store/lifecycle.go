package store

import (
	"context"
	"time"
)

// BootstrapToken is a stored one-time enrolment credential: it lets a
// workload that has no certificate yet obtain one, bound to the names,
// profile, CA and lifetime the token was created for. Only the SHA-256 of
// the secret is kept.
type BootstrapToken struct {
	ID string // random, stable
	// Name is the common name the token allows, and what operators call it.
	Name string
	Hash []byte
	CAID string // the CA that issues under the token; must name a CA
	// Profile is the one issuance profile the token allows.
	Profile string
	// SANs are the names the certificate may carry, typed as in
	// Certificate.SANs ("dns:a.example", "uri:spiffe://x/y", "ip:10.0.0.1").
	SANs []string
	// MaxValidity caps the certificate's lifetime; 0 leaves the profile's cap.
	MaxValidity time.Duration
	// MaxUses is how many certificates the token may obtain (at least 1);
	// Uses is how many it has obtained.
	MaxUses   int
	Uses      int
	CreatedBy string
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never
	Revoked   bool
}

// LifecycleStore is the part of the persistence contract that certificate
// lifecycle automation needs. Its rules are those of Store.
type LifecycleStore interface {
	// CreateBootstrapToken stores t with t.Uses as given (normally 0). A
	// taken ID or hash is ErrConflict; a CAID that names no CA is
	// ErrNotFound; MaxUses < 1 is a fault.Invalid error.
	CreateBootstrapToken(ctx context.Context, t *BootstrapToken) error
	// GetBootstrapTokenByHash returns the token whose secret hashes to hash.
	GetBootstrapTokenByHash(ctx context.Context, hash []byte) (*BootstrapToken, error)
	// GetBootstrapToken returns the token with id.
	GetBootstrapToken(ctx context.Context, id string) (*BootstrapToken, error)
	// UseBootstrapToken consumes one use of the token with id at time at,
	// atomically: of concurrent calls on a token with n uses left, exactly
	// n succeed. It succeeds only when the token is not revoked, has a use
	// left and has not expired at at (ExpiresAt zero, or after at), and
	// returns the record after the change. A refused use is ErrConflict,
	// returned with the record as stored so that the caller can say why; a
	// missing token is ErrNotFound with a nil record.
	UseBootstrapToken(ctx context.Context, id string, at time.Time) (*BootstrapToken, error)
	// ReleaseBootstrapToken gives back one use that UseBootstrapToken
	// spent for an issuance that then failed, so that a single-use token
	// is not lost to an error of the server's. Uses never go below 0. A
	// missing token is ErrNotFound.
	ReleaseBootstrapToken(ctx context.Context, id string) error
	// RevokeBootstrapToken marks the token with id revoked; revoking a
	// revoked token is not an error. A missing token is ErrNotFound.
	RevokeBootstrapToken(ctx context.Context, id string) error

	EventStore
}

// Event is one lifecycle event in the outbox: a certificate crossing an
// expiry threshold, renewed, or failing to renew. It is recorded durably
// before anyone is told, and delivered at least once to each webhook
// named when it was added.
type Event struct {
	// ID is random and unique: receivers deduplicate by it.
	ID string
	// Key names what the event is about ("expiring:<ca>:<serial>:7d"),
	// so that the same crossing is recorded once however often it is seen.
	Key       string
	Type      string
	Payload   []byte // the JSON document delivered
	CreatedAt time.Time
}

// Delivery is one pending delivery of an event to one webhook.
type Delivery struct {
	Event   Event
	Webhook string
	// Attempts counts the failed attempts so far.
	Attempts    int
	NextAttempt time.Time
	LastError   string
}

// EventStore is the outbox of lifecycle events. Its rules are those of
// Store.
type EventStore interface {
	// AddEvent records e, and one pending delivery due at e.CreatedAt for
	// each of webhooks, in one transaction. When an event with e.Key
	// exists already it records nothing and returns false: a crossing is
	// an event once. A taken ID is ErrConflict.
	AddEvent(ctx context.Context, e *Event, webhooks []string) (added bool, err error)
	// HasEvent reports whether an event with key was recorded.
	HasEvent(ctx context.Context, key string) (bool, error)
	// DueDeliveries returns up to limit pending deliveries whose
	// NextAttempt is at or before now, the earliest first.
	DueDeliveries(ctx context.Context, now time.Time, limit int) ([]*Delivery, error)
	// MarkDelivered ends the delivery of event eventID to webhook. A
	// missing or already finished delivery is ErrNotFound.
	MarkDelivered(ctx context.Context, eventID, webhook string, at time.Time) error
	// MarkFailed counts a failed attempt of the delivery and sets when the
	// next one is due. A missing or finished delivery is ErrNotFound.
	MarkFailed(ctx context.Context, eventID, webhook string, next time.Time, lastErr string) error
}
