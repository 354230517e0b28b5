// Package store defines Trustgate's persistence contract: the record types and
// the Store interface that every backend (SQLite, PostgreSQL) implements and
// that internal/store/storetest checks. It holds no SQL.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/trustgate/trustgate/internal/fault"
)

// ErrNotFound is returned (wrapped) when a looked-up record does not exist.
var ErrNotFound = &fault.Error{Kind: fault.NotFound, Msg: "not found"}

// ErrConflict is returned (wrapped) when a write would break a uniqueness rule
// or an optimistic-concurrency check.
var ErrConflict = &fault.Error{Kind: fault.Conflict, Msg: "conflict"}

// ErrUnavailable is returned (wrapped) when the database cannot be reached.
var ErrUnavailable = &fault.Error{Kind: fault.Unavailable, Msg: "store unavailable"}

// IsNotFound reports whether err is, or wraps, ErrNotFound.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsConflict reports whether err is, or wraps, ErrConflict.
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }

// CAState is the life-cycle state of a certificate authority.
type CAState string

// The CA states.
const (
	// CAPending: the key exists, the CA certificate is awaited from an external parent.
	CAPending CAState = "pending-certificate"
	// CAActive: the CA issues.
	CAActive CAState = "active"
	// CADisabled: the CA is kept but refuses to issue until enabled.
	CADisabled CAState = "disabled"
	// CAOffline: the CA's key has been exported and removed from the server.
	CAOffline CAState = "offline"
)

// CA is a certificate authority record. SealedKey is the private key sealed
// by the keystore; it is nil once the CA is offline. CertDER is nil while the
// CA is pending.
type CA struct {
	ID       string // random, stable; the associated data the key is sealed to
	Name     string // unique, user-chosen
	ParentID string // "" for a root or for a CA whose parent is external
	// ExternalParent is set for an intermediate signed outside Trustgate.
	ExternalParent bool
	State          CAState
	KeyType        string
	SealedKey      []byte
	CSRDER         []byte // the CSR of a CA with an external parent
	CertDER        []byte
	// ChainDER is the concatenated DER of the certificates above CertDER
	// that Trustgate does not hold itself (an external parent's chain).
	ChainDER    []byte
	Subject     string
	Depth       int // 0 for a root; a child's is its parent's + 1
	PathLen     int // -1 when unconstrained
	KeyExported bool
	// CRLPartitions is how many partition CRLs the CA publishes: 0 or 1
	// means one CRL for all its certificates; N > 1 spreads certificates
	// over N CRLs at issuance (Certificate.Partition), so no CRL grows
	// without bound. Fixed at creation.
	CRLPartitions int
	NotBefore     time.Time
	NotAfter      time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// CertStatus is the stored status of a certificate. Expiry is not stored: it
// follows from NotAfter and the time of the question.
type CertStatus string

// The stored certificate statuses.
const (
	CertActive  CertStatus = "active"
	CertRevoked CertStatus = "revoked"
)

// Certificate is one entry of the inventory.
type Certificate struct {
	// Seq orders the inventory and is the pagination cursor; the store assigns it.
	Seq       int64
	Serial    string // lower-case hex, no leading zeros
	CAID      string // "" for an imported certificate of an issuer Trustgate does not hold
	IssuerKey string // CAID, or "ext:"+hex(SHA-256(issuer DN)) for imports; (IssuerKey, Serial) is unique
	Subject   string
	// SANs are typed strings: "dns:a.example", "ip:10.0.0.1", "uri:spiffe://x/y", "email:a@b".
	SANs        []string
	Profile     string
	KeyType     string
	NotBefore   time.Time
	NotAfter    time.Time
	Fingerprint string // lower-case hex SHA-256 of DER
	Status      CertStatus
	DER         []byte
	Requester   string
	Imported    bool
	Managed     bool
	CreatedAt   time.Time
	RevokedAt   time.Time // zero unless revoked
	Reason      int       // RFC 5280 CRLReason, meaningful when revoked
	// Partition is the CRL partition the certificate belongs to (0 for a
	// CA without partitions).
	Partition int
}

// ReasonCertificateHold is the RFC 5280 CRLReason that alone can be released.
const ReasonCertificateHold = 6

// RevokedEntry is one entry of a CRL, as ListRevoked hands it over: what a
// CRL entry holds and nothing else, so that a walk over a million of them
// costs the store no conversion a CRL does not need.
type RevokedEntry struct {
	// Serial is the serial in lower-case hex, without leading zeros. Its
	// memory belongs to the store and is valid only during the call that
	// receives it: the store reuses it for the next entry, so a caller
	// that keeps it must copy it (string(e.Serial)).
	Serial    []byte
	RevokedAt time.Time // in UTC
	Reason    int       // RFC 5280 CRLReason
}

// CRLQuery is what ReadCRL reads: the revoked certificates one CRL lists,
// and the sequence its number comes from.
type CRLQuery struct {
	CAID string
	// Partition selects the certificates of one CRL partition; < 0 selects
	// them all (the full CRL), as in ListRevoked.
	Partition int
	// ExpiresAfter, when not zero, leaves out certificates whose NotAfter
	// is not after it, as in ListRevoked.
	ExpiresAfter time.Time
	// NumberPartition is the key of the CRL number sequence, as the
	// partition argument of NextCRLNumber: >= 0.
	NumberPartition int
}

// CertFilter selects inventory entries. The zero value selects everything.
type CertFilter struct {
	CAID       string
	Serial     string
	Status     CertStatus // "" for any; see Expired
	Expired    bool       // only certificates with NotAfter <= Now
	NotExpired bool       // only certificates with NotAfter > Now
	ExpiresBy  time.Time  // when non-zero, only NotAfter <= ExpiresBy
	// SANContains is a literal, case-sensitive substring of one SAN (typed
	// string); it is never a pattern, so % _ and quotes are plain characters.
	SANContains string
	// Now is the time Expired, NotExpired are judged at; zero means the store's clock.
	Now time.Time
	// After is the cursor: only entries with Seq > After.
	After int64
	// Limit caps the result; the store applies its own maximum.
	Limit int
}

// Token is a stored API credential. Only the SHA-256 of the secret is kept.
type Token struct {
	ID        string
	Principal string
	Hash      []byte
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never
	Revoked   bool
}

// TrustStore is a named, versioned set of trust anchors and revocation
// sources that gateways enforce: references to CAs of this Trustgate
// (whose revocations are followed by themselves), external CA
// certificates, and external CRL sources. Every change makes a new
// version.
type TrustStore struct {
	ID   string // random, stable
	Name string // unique, user-chosen
	// Version is 1 when the store is created and grows by one with every
	// change, durably: a version number names one content for good.
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
	// CAs, Certs and CRLs are the members, each list in the order its
	// members were added.
	CAs   []TrustStoreCA
	Certs []TrustStoreCert
	CRLs  []TrustStoreCRL
}

// TrustStoreCA is a reference to a CA of this Trustgate.
type TrustStoreCA struct {
	CAID    string // must name a CA; unique in a store
	AddedAt time.Time
}

// TrustStoreCert is an external CA certificate.
type TrustStoreCert struct {
	Fingerprint string // lower-case hex SHA-256 of DER; unique in a store
	DER         []byte
	AddedAt     time.Time
}

// TrustStoreCRL is an external revocation source: a CRL uploaded (DER set)
// or a URL the gateways fetch (URL set, DER nil).
type TrustStoreCRL struct {
	ID string // random; unique across stores
	// Key names what the source covers and is unique in a store, so that a
	// newer CRL of the same issuer and scope replaces the older one rather
	// than piling up beside it.
	Key string
	URL string
	DER []byte
	// IssuerRef is the member that signed an uploaded CRL: a CA ID or an
	// external certificate's Fingerprint. "" for a URL.
	IssuerRef string
	// Number is the CRL number in decimal ("" when the CRL has none).
	Number     string
	ThisUpdate time.Time
	NextUpdate time.Time
	AddedAt    time.Time
}

// TrustStoreChange is one change of a trust store, applied at once:
// removals first, then additions, so that removing a member and adding its
// replacement is one change.
type TrustStoreChange struct {
	RemoveCAs   []string // CA IDs
	RemoveCerts []string // fingerprints
	RemoveCRLs  []string // CRL source IDs
	AddCAs      []TrustStoreCA
	AddCerts    []TrustStoreCert
	AddCRLs     []TrustStoreCRL
	// At becomes the store's UpdatedAt.
	At time.Time
}

// Store is the persistence contract. Implementations are safe for concurrent
// use, honour ctx (a cancelled context fails with an error wrapping
// context.Canceled and writes nothing), return errors wrapping ErrNotFound,
// ErrConflict or ErrUnavailable where those apply, and are durable when a
// write returns nil. A ParentID or CAID that names no CA is ErrNotFound.
// Times come back in UTC, exact to at least the microsecond, valid through
// year 9999; nil and empty blobs come back distinct.
type Store interface {
	AccessStore
	MaintenanceStore
	LifecycleStore
	Leaser
	Changes
	RenewalStore

	// CreateCA inserts a CA; a taken name or ID is ErrConflict.
	CreateCA(ctx context.Context, ca *CA) error
	// UpdateCA replaces the mutable fields of the CA with ca.ID (state,
	// sealed key, CSR, certificate, chain, subject, validity, key-exported flag)
	// and sets UpdatedAt. A missing CA is ErrNotFound.
	UpdateCA(ctx context.Context, ca *CA) error
	// GetCA returns the CA named name.
	GetCA(ctx context.Context, name string) (*CA, error)
	// GetCAByID returns the CA with the given ID.
	GetCAByID(ctx context.Context, id string) (*CA, error)
	// ListCAs returns every CA ordered by creation.
	ListCAs(ctx context.Context) ([]*CA, error)

	// InsertCertificate records c and sets c.Seq. A duplicate (IssuerKey,
	// Serial) is ErrConflict. When it returns nil the record is durable.
	InsertCertificate(ctx context.Context, c *Certificate) error
	// GetCertificate returns the certificate with the serial (lower-case hex);
	// when several issuers used the same serial, the newest record wins.
	GetCertificate(ctx context.Context, serial string) (*Certificate, error)
	// ListCertificates returns up to f.Limit entries with Seq > f.After in Seq order.
	ListCertificates(ctx context.Context, f CertFilter) ([]*Certificate, error)
	// GetCertificateByCA returns the certificate a CA issued with serial.
	GetCertificateByCA(ctx context.Context, caID, serial string) (*Certificate, error)

	// RevokeCertificate marks the certificate (caID, serial) revoked with
	// reason at time at, durably, and returns the record after the change.
	// A missing certificate is ErrNotFound. A certificate already revoked is
	// ErrConflict and the existing record is returned with the error, except
	// that a certificate on hold (ReasonCertificateHold) may be revoked
	// finally with another reason (RFC 5280 §5.3.1), keeping its revocation time.
	RevokeCertificate(ctx context.Context, caID, serial string, reason int, at time.Time) (*Certificate, error)
	// ReleaseHold returns a certificate on hold to active and returns it. A
	// certificate not on hold is ErrConflict (with the record); missing is ErrNotFound.
	ReleaseHold(ctx context.Context, caID, serial string) (*Certificate, error)
	// ListRevoked calls fn for each revoked certificate of a CA whose
	// NotAfter is after expiresAfter (zero: all), in one partition when
	// partition >= 0 or in all when partition < 0. It streams: it does not
	// hold the whole list in memory, and the entry's Serial is only valid
	// during the call of fn. An error from fn stops it and is returned.
	ListRevoked(ctx context.Context, caID string, partition int, expiresAfter time.Time, fn func(RevokedEntry) error) error
	// NextCRLNumber increments and returns the CRL number of (caID,
	// partition), durably: numbers only ever increase, across restarts.
	NextCRLNumber(ctx context.Context, caID string, partition int) (int64, error)
	// ReadCRL reads what one CRL lists and takes its number together. It
	// streams the revoked certificates q selects to fn, as ListRevoked
	// does; then it calls keep, and when keep reports true it takes the
	// next CRL number of (q.CAID, q.NumberPartition), as NextCRLNumber
	// does, and returns it. When keep reports false no number is used up
	// and it returns 0 and nil. An error from fn stops it, uses up no
	// number, and is returned as it is.
	//
	// Numbers and lists move together, between any callers of one
	// database (the nodes of a control plane included): of two calls
	// that returned numbers n < m of one sequence, m's list was read
	// after n's number was taken, so it holds every certificate n's list
	// held unless that certificate was released from hold or expired
	// since. A newer CRL therefore never drops a revocation an older one
	// published.
	//
	// A store may meet this optimistically: a call that finds the number
	// taken by another caller since it read its list fails with an error
	// wrapping ErrConflict, having used up nothing, and the caller reads
	// again. A call whose commit failed may have used up its number (a
	// gap, never a repeat).
	ReadCRL(ctx context.Context, q CRLQuery, fn func(RevokedEntry) error, keep func() bool) (int64, error)

	// CountCertificates returns how many certificates a CA has recorded;
	// caID "" counts imported certificates of issuers Trustgate does not hold.
	CountCertificates(ctx context.Context, caID string) (int64, error)

	// CreateToken stores an API credential.
	CreateToken(ctx context.Context, t *Token) error
	// GetTokenByHash returns the credential whose secret hashes to hash.
	GetTokenByHash(ctx context.Context, hash []byte) (*Token, error)

	// CreateTrustStore inserts ts with its members, at Version 1 (which it
	// sets in ts), in one transaction. A taken name or ID, or a member
	// listed twice (a CA, a fingerprint, a CRL key or ID), is ErrConflict;
	// a CAID that names no CA is ErrNotFound. On error nothing is written.
	CreateTrustStore(ctx context.Context, ts *TrustStore) error
	// GetTrustStore returns the trust store named name with all its members.
	GetTrustStore(ctx context.Context, name string) (*TrustStore, error)
	// GetTrustStoreVersion returns the ID and version of the trust store
	// named name without its members: what a poller needs to learn that
	// nothing changed.
	GetTrustStoreVersion(ctx context.Context, name string) (id string, version int64, err error)
	// ListTrustStores returns every trust store ordered by name, with its
	// members, except that the DER of uploaded CRLs is left nil.
	ListTrustStores(ctx context.Context) ([]*TrustStore, error)
	// ChangeTrustStore applies ch to the trust store with ID id if its
	// version is still version (optimistic concurrency), sets Version to
	// version+1 and UpdatedAt to ch.At, and returns the store after the
	// change; all of it in one transaction, durable on return. A missing
	// store, or a member to remove that is not there, is ErrNotFound; a
	// version that is no longer current, or a member to add that is
	// already there (after the removals), is ErrConflict; a CA ID naming
	// no CA is ErrNotFound. On error nothing is changed.
	ChangeTrustStore(ctx context.Context, id string, version int64, ch TrustStoreChange) (*TrustStore, error)

	// GetMeta returns a small named value; a missing key is ErrNotFound.
	GetMeta(ctx context.Context, key string) ([]byte, error)
	// PutMeta stores a small named value, replacing any previous one.
	PutMeta(ctx context.Context, key string, value []byte) error

	// Close releases the store.
	Close() error
}
