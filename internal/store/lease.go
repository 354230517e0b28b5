package store

import (
	"context"
	"errors"
)

// Leaser hands out leases: named locks that at most one holder at a time
// has among all the processes sharing a store. The control plane runs its
// singleton jobs (periodic CRL republication, OCSP refresh, later
// managed renewal and webhook delivery) only while it holds their lease, so
// that several nodes on one database do not do them twice.
type Leaser interface {
	// TryLease tries once, without waiting, to take the lease named name.
	// When another holder has it, TryLease returns (nil, ErrLeaseHeld
	// wrapped). It honours ctx while it tries; a cancelled ctx is an error
	// wrapping context.Canceled and takes nothing. A database that cannot
	// be reached is an error wrapping ErrUnavailable. The Held it returns
	// does not keep ctx.
	TryLease(ctx context.Context, name string) (Held, error)
}

// ErrLeaseHeld is returned (wrapped) by TryLease when another holder has
// the lease.
var ErrLeaseHeld = errors.New("lease held by another holder")

// Held is a lease taken by TryLease. It is safe for concurrent use.
type Held interface {
	// Lost is closed once the holder can no longer be sure it holds the
	// lease (its connection to the database broke), or after Release. A
	// holder must stop the lease's work when Lost is closed: another may
	// take the lease soon after.
	Lost() <-chan struct{}
	// Release gives the lease up at once, so that another holder may take
	// it, and closes Lost. Calls after the first do nothing.
	Release()
}
