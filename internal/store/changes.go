package store

import "context"

// Changes lets the processes that share a store tell each other that
// something changed, so that what each keeps in memory follows the changes
// made through the others: the control-plane nodes on one database tell
// each other of revocations, and each rebuilds the CRLs and OCSP answers it
// serves. A change carries only a key (a CA ID); the data is in the store,
// written durably before the change is published.
//
// Delivery is best effort: a subscriber that is not listening yet, or
// cannot reach the database, misses the changes published meanwhile, and
// learns that it may have missed some (see SubscribeChanges).
type Changes interface {
	// PublishChange tells every subscriber of the store, in every process
	// that shares it (this one included), that key changed. key is at most
	// 1000 bytes; a longer one is a fault.Invalid error. A database that
	// cannot be reached is an error wrapping ErrUnavailable.
	PublishChange(ctx context.Context, key string) error
	// SubscribeChanges calls fn with the key of each change published, by
	// any process, until ctx ends or the store is closed; then it returns
	// nil. Each time it starts listening, the first time as after a gap in
	// which it could not (the database could not be reached), it calls
	// fn("") before any key: changes published before that moment may have
	// been missed, and the subscriber should refresh everything, reading
	// the store after fn("") is called. Listening takes a round trip or
	// more, so without the first fn("") a change published while a process
	// starts would be lost with no sign. fn is called from one goroutine
	// and must return soon.
	SubscribeChanges(ctx context.Context, fn func(key string)) error
}

// MaxChangeKey is the longest key PublishChange takes, in bytes.
const MaxChangeKey = 1000
