package store

import "context"

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
}
