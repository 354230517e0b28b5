package store

import (
	"context"
	"time"
)

// CRLNumber is the last CRL number handed out for a (CA, partition).
type CRLNumber struct {
	CAID      string
	Partition int
	Number    int64
}

// MaintenanceStore holds what copying a store to another needs beyond
// the rest of the Store: the state that no other method lists or sets.
type MaintenanceStore interface {
	// ListMeta returns every small named value.
	ListMeta(ctx context.Context) (map[string][]byte, error)
	// ListCRLNumbers returns the last CRL number of every (CA, partition).
	ListCRLNumbers(ctx context.Context) ([]CRLNumber, error)
	// RaiseCRLNumber makes the last CRL number of (caID, partition) at
	// least n, so the next one is above it; it never lowers a number. A
	// CA that does not exist is ErrNotFound.
	RaiseCRLNumber(ctx context.Context, caID string, partition int, n int64) error
	// RaiseTrustStoreVersion makes the version of the trust store with id
	// at least version, keeping a copied store's version numbers; it
	// never lowers one. A missing store is ErrNotFound.
	RaiseTrustStoreVersion(ctx context.Context, id string, version int64) error
	// ListBootstrapTokens returns every bootstrap token, oldest first.
	ListBootstrapTokens(ctx context.Context) ([]*BootstrapToken, error)
	// ListEvents returns up to limit events of the outbox with an ID
	// above afterID, in ID order, each with the state of every delivery.
	ListEvents(ctx context.Context, afterID string, limit int) ([]*EventCopy, error)
	// RestoreEvent records an event with its deliveries exactly as they
	// were (attempts, due times, delivered or not). A taken ID or key is
	// ErrConflict.
	RestoreEvent(ctx context.Context, e *EventCopy) error
}

// EventCopy is an event of the outbox with all its deliveries.
type EventCopy struct {
	Event      Event
	Deliveries []DeliveryState
}

// DeliveryState is one delivery of an event, finished or not.
type DeliveryState struct {
	Webhook     string
	Attempts    int
	NextAttempt time.Time
	LastError   string
	Delivered   bool
	DeliveredAt time.Time
}
