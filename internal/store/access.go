package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"
)

// Principal is a human or a service that calls the API. Its rights are the
// union of its policies' statements.
type Principal struct {
	Name string // unique
	Kind string // "human" or "service"
	// Policies names the policies attached, in the order attached.
	Policies []string
	// Identities are the client-certificate names that log in as this
	// principal: "CN=alice", "dns:alice.ops.example", "uri:spiffe://…",
	// "email:alice@example.com".
	Identities []string
	Disabled   bool
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// PolicyRecord is a stored policy document.
type PolicyRecord struct {
	Name      string // unique
	Document  []byte // canonical JSON
	CreatedAt time.Time
	UpdatedAt time.Time
}

// AuditRecord is one entry of the hash-chained audit log.
type AuditRecord struct {
	// Seq numbers the records from 1 without gaps; the store assigns it.
	Seq       int64
	At        time.Time
	Actor     string // the principal, or "" for an anonymous caller
	Action    string // e.g. "cert:Issue"
	Resource  string // e.g. "ca/issuing"
	Decision  string // "allow" or "deny"
	Outcome   string // "ok", or the error code of a failed call
	RequestID string
	Source    string // the caller's address
	// Detail describes the change (what the store wrote) or the error.
	Detail string
	// PrevHash is the Hash of the record before (nil for the first);
	// Hash is AuditHash of this record. The store assigns both.
	PrevHash []byte
	Hash     []byte
}

// AuditHash returns the SHA-256 that chains r: over a fixed encoding of
// every field but Hash, PrevHash included, so that a changed, removed,
// inserted or reordered record breaks the chain at that point. At counts
// to the microsecond, the precision every store keeps.
func AuditHash(r *AuditRecord) []byte {
	h := sha256.New()
	var n [8]byte
	field := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field([]byte("trustgate-audit-v1"))
	binary.BigEndian.PutUint64(n[:], uint64(r.Seq))
	h.Write(n[:])
	field([]byte(r.At.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano)))
	for _, s := range []string{r.Actor, r.Action, r.Resource, r.Decision, r.Outcome, r.RequestID, r.Source, r.Detail} {
		field([]byte(s))
	}
	field(r.PrevHash)
	return h.Sum(nil)
}

// Chain sets r's Seq, PrevHash and Hash to follow the record with prevSeq
// and prevHash (0 and nil when the log is empty).
func (r *AuditRecord) Chain(prevSeq int64, prevHash []byte) {
	r.Seq = prevSeq + 1
	r.PrevHash = prevHash
	r.At = r.At.UTC().Truncate(time.Microsecond)
	r.Hash = AuditHash(r)
}

// PendingAudit is the audit record of an API call that is in progress. It
// travels in the call's context (WithAudit), and the first store write
// made with that context appends it in the write's own transaction, so
// that a change and its record commit together or not at all.
type PendingAudit struct {
	Record AuditRecord

	mu      sync.Mutex
	claimed bool
	written bool
}

type auditKey struct{}

// WithAudit returns ctx carrying p.
func WithAudit(ctx context.Context, p *PendingAudit) context.Context {
	return context.WithValue(ctx, auditKey{}, p)
}

// AuditFrom returns the pending record ctx carries, or nil.
func AuditFrom(ctx context.Context) *PendingAudit {
	p, _ := ctx.Value(auditKey{}).(*PendingAudit)
	return p
}

// Claim gives a store write the record to append, once: it returns nil
// when p is nil or another write has it. The write must call Settle.
func (p *PendingAudit) Claim(detail string) *AuditRecord {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.claimed || p.written {
		return nil
	}
	p.claimed = true
	if p.Record.Detail == "" {
		p.Record.Detail = detail
	}
	return &p.Record
}

// Settle ends a claim: committed, the record is written; otherwise it is
// free again for a later write or for the caller to append on its own.
func (p *PendingAudit) Settle(committed bool) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.claimed {
		return
	}
	p.claimed = false
	if committed {
		p.written = true
	}
}

// Written reports whether a store write committed the record.
func (p *PendingAudit) Written() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.written
}

// AuditFilter selects audit records in Seq order.
type AuditFilter struct {
	After int64     // only Seq > After
	Since time.Time // only At >= Since, when set
	Limit int       // the store applies its own maximum
}

// AccessStore holds principals, policies, API tokens and the audit log.
//
// Every write of the Store, these included, appends the PendingAudit that
// its context carries (if not yet written) in its own transaction.
type AccessStore interface {
	// PutPolicy creates or replaces the policy named p.Name.
	PutPolicy(ctx context.Context, p *PolicyRecord) error
	// GetPolicy returns the policy named name.
	GetPolicy(ctx context.Context, name string) (*PolicyRecord, error)
	// ListPolicies returns every policy ordered by name.
	ListPolicies(ctx context.Context) ([]*PolicyRecord, error)
	// DeletePolicy removes a policy; one still attached to a principal is ErrConflict.
	DeletePolicy(ctx context.Context, name string) error

	// CreatePrincipal inserts p; a taken name is ErrConflict, a policy
	// that does not exist is ErrNotFound.
	CreatePrincipal(ctx context.Context, p *Principal) error
	// UpdatePrincipal replaces the policies, identities and disabled flag
	// of the principal named p.Name.
	UpdatePrincipal(ctx context.Context, p *Principal) error
	// GetPrincipal returns the principal named name.
	GetPrincipal(ctx context.Context, name string) (*Principal, error)
	// ListPrincipals returns every principal ordered by name.
	ListPrincipals(ctx context.Context) ([]*Principal, error)

	// AccessGeneration returns a number that changes with every change to
	// principals, policies and API tokens, made by anyone, in the change's
	// own transaction: what was read while it stayed the same is still
	// what the store holds.
	AccessGeneration(ctx context.Context) (int64, error)

	// ListTokens returns the tokens of a principal ("" for all), newest first.
	ListTokens(ctx context.Context, principal string) ([]*Token, error)
	// RevokeToken marks the token with id revoked; missing is ErrNotFound.
	RevokeToken(ctx context.Context, id string) error

	// AppendAudit chains r after the last record and stores it, setting
	// its Seq, PrevHash and Hash: for calls that changed nothing (a denial,
	// a failure).
	AppendAudit(ctx context.Context, r *AuditRecord) error
	// ListAudit returns records in Seq order.
	ListAudit(ctx context.Context, f AuditFilter) ([]*AuditRecord, error)
}
