package authz

// This file holds bootstrap tokens: one-time enrolment credentials that let
// a workload without a certificate obtain one, bound to a CA, a profile, a
// common name, a set of SANs and a maximum lifetime. Like API tokens they
// are 256-bit random secrets shown once, of which only the SHA-256 is
// stored; unlike API tokens they are counted down in the store, so a
// single-use token obtains one certificate even under concurrent enrolments.

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/store"
)

// BootstrapTokenPrefix marks bootstrap tokens, so that secret scanners can
// find leaked ones and so that one is never mistaken for an API token.
const BootstrapTokenPrefix = "tgbt_"

// Limits of a bootstrap token's spec.
const (
	// DefaultBootstrapTTL is how long a token lives when the spec names no TTL.
	DefaultBootstrapTTL = time.Hour
	// MaxBootstrapTTL caps a token's life: an enrolment token is meant to be
	// used soon after it is made, not kept as a standing credential.
	MaxBootstrapTTL = 30 * pki.Day
	// MaxBootstrapUses caps the uses of one token.
	MaxBootstrapUses = 10000
)

// BootstrapStore is what Bootstrap needs from the store.
type BootstrapStore interface {
	CreateBootstrapToken(ctx context.Context, t *store.BootstrapToken) error
	GetBootstrapTokenByHash(ctx context.Context, hash []byte) (*store.BootstrapToken, error)
	UseBootstrapToken(ctx context.Context, id string, at time.Time) (*store.BootstrapToken, error)
	ReleaseBootstrapToken(ctx context.Context, id string) error
	GetBootstrapToken(ctx context.Context, id string) (*store.BootstrapToken, error)
	RevokeBootstrapToken(ctx context.Context, id string) error
}

// Bootstrap creates, checks and spends bootstrap tokens. It is safe for
// concurrent use. It caches nothing: a use must see the store's count.
type Bootstrap struct {
	st  BootstrapStore
	now func() time.Time
}

// NewBootstrap returns a Bootstrap over a store; now may be nil.
func NewBootstrap(st BootstrapStore, now func() time.Time) *Bootstrap {
	if now == nil {
		now = time.Now
	}
	return &Bootstrap{st: st, now: now}
}

// BootstrapSpec is what a new token allows.
type BootstrapSpec struct {
	// Name is the common name the certificate must carry.
	Name string
	// CAID is the CA that issues under the token; Profile the one profile.
	CAID, Profile string
	// SANs are the names, typed as in store.Certificate.SANs and already
	// normalized (pki.SANs.Strings), that the certificate may carry.
	SANs []string
	// MaxValidity caps the certificate's lifetime; 0 leaves the profile's.
	MaxValidity time.Duration
	// TTL is how long the token can be used; 0 means DefaultBootstrapTTL.
	TTL time.Duration
	// Uses is how many certificates the token obtains; 0 means 1.
	Uses int
	// CreatedBy is the principal that made the token.
	CreatedBy string
}

// Create makes a token and returns its secret, which is not stored and
// cannot be shown again, with the stored record.
func (b *Bootstrap) Create(ctx context.Context, spec BootstrapSpec) (string, *store.BootstrapToken, error) {
	if spec.TTL == 0 {
		spec.TTL = DefaultBootstrapTTL
	}
	if spec.Uses == 0 {
		spec.Uses = 1
	}
	switch {
	case spec.Name == "":
		return "", nil, fault.New(fault.Invalid, "a bootstrap token needs the name (common name) it is for")
	case len(spec.Name) > 64:
		return "", nil, fault.New(fault.Invalid, "name is %d characters; a common name has at most 64 (RFC 5280 ub-common-name)", len(spec.Name))
	case spec.TTL < 0 || spec.TTL > MaxBootstrapTTL:
		return "", nil, fault.New(fault.Invalid, "expires_in %s is outside 1s..%s", pki.FormatDuration(spec.TTL), pki.FormatDuration(MaxBootstrapTTL))
	case spec.Uses < 0 || spec.Uses > MaxBootstrapUses:
		return "", nil, fault.New(fault.Invalid, "uses %d is outside 1..%d", spec.Uses, MaxBootstrapUses)
	case spec.MaxValidity < 0:
		return "", nil, fault.New(fault.Invalid, "max_validity must be positive")
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", nil, fmt.Errorf("bootstrap token: %w", err)
	}
	secret := BootstrapTokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return "", nil, fmt.Errorf("bootstrap token: %w", err)
	}
	now := b.now().UTC()
	rec := &store.BootstrapToken{
		ID: "bt-" + hex.EncodeToString(id), Name: spec.Name, Hash: HashToken(secret), CAID: spec.CAID,
		Profile: spec.Profile, SANs: slices.Clone(spec.SANs), MaxValidity: spec.MaxValidity,
		MaxUses: spec.Uses, CreatedBy: spec.CreatedBy, CreatedAt: now, ExpiresAt: now.Add(spec.TTL),
	}
	if err := b.st.CreateBootstrapToken(ctx, rec); err != nil {
		return "", nil, fmt.Errorf("store bootstrap token: %w", err)
	}
	return secret, rec, nil
}

// Lookup returns the live token a secret belongs to. An unknown, revoked,
// expired or used-up token is a fault.Unauthenticated error that says which.
// The lookup is by SHA-256, and the final comparison constant-time.
func (b *Bootstrap) Lookup(ctx context.Context, secret string) (*store.BootstrapToken, error) {
	if !strings.HasPrefix(secret, BootstrapTokenPrefix) || len(secret) > 128 {
		return nil, fault.New(fault.Unauthenticated, "the token is not a Trustgate bootstrap token (they start with %q)", BootstrapTokenPrefix)
	}
	h := HashToken(secret)
	rec, err := b.st.GetBootstrapTokenByHash(ctx, h)
	if store.IsNotFound(err) {
		return nil, fault.New(fault.Unauthenticated, "the bootstrap token is unknown")
	}
	if err != nil {
		return nil, fmt.Errorf("look up bootstrap token: %w", err)
	}
	if subtle.ConstantTimeCompare(rec.Hash, h) != 1 {
		return nil, fault.New(fault.Unauthenticated, "the bootstrap token is unknown")
	}
	if err := refusal(rec, b.now()); err != nil {
		return nil, err
	}
	return rec, nil
}

// Use spends one use of tok, atomically in the store: of concurrent uses
// of a single-use token exactly one succeeds. A refused use is a
// fault.Unauthenticated error that says why.
func (b *Bootstrap) Use(ctx context.Context, tok *store.BootstrapToken) error {
	now := b.now()
	// The call's audit record belongs with the certificate it issues,
	// which commits after this.
	rec, err := b.st.UseBootstrapToken(store.WithAudit(ctx, nil), tok.ID, now)
	switch {
	case err == nil:
		return nil
	case store.IsNotFound(err):
		return fault.New(fault.Unauthenticated, "the bootstrap token is unknown")
	case store.IsConflict(err) && rec != nil:
		if r := refusal(rec, now); r != nil {
			return r
		}
	}
	return fmt.Errorf("use bootstrap token %s: %w", tok.ID, err)
}

// Release gives back a use that Use spent for an issuance that then failed
// (a lint error, a store error), so that a single-use token is not lost
// to a failure that is not the holder's. While the use is held, a
// concurrent request with the same token is refused: never two
// certificates for one use.
func (b *Bootstrap) Release(ctx context.Context, tok *store.BootstrapToken) error {
	if err := b.st.ReleaseBootstrapToken(store.WithAudit(ctx, nil), tok.ID); err != nil {
		return fmt.Errorf("release a use of bootstrap token %s: %w", tok.ID, err)
	}
	return nil
}

// Get returns the token with id; a missing one is fault.NotFound.
func (b *Bootstrap) Get(ctx context.Context, id string) (*store.BootstrapToken, error) {
	t, err := b.st.GetBootstrapToken(ctx, id)
	if store.IsNotFound(err) {
		return nil, fault.New(fault.NotFound, "no bootstrap token %q", id)
	}
	if err != nil {
		return nil, fmt.Errorf("get bootstrap token %s: %w", id, err)
	}
	return t, nil
}

// Revoke makes the token with id unusable at once (Lookup reads the store
// every time). Revoking a revoked token is not an error.
func (b *Bootstrap) Revoke(ctx context.Context, id string) (*store.BootstrapToken, error) {
	if err := b.st.RevokeBootstrapToken(ctx, id); store.IsNotFound(err) {
		return nil, fault.New(fault.NotFound, "no bootstrap token %q", id)
	} else if err != nil {
		return nil, fmt.Errorf("revoke bootstrap token %s: %w", id, err)
	}
	return b.Get(ctx, id)
}

// refusal says why rec cannot be used at now, or returns nil. It is only
// asked of a token whose secret the caller proved, so a refusal names the
// token for the audit log.
func refusal(rec *store.BootstrapToken, now time.Time) error {
	var err error
	switch {
	case rec.Revoked:
		err = fault.New(fault.Unauthenticated, "the bootstrap token %s was revoked", rec.ID)
	case rec.Uses >= rec.MaxUses:
		err = fault.New(fault.Unauthenticated, "the bootstrap token %s is used up (%d of %d uses); ask for a new one", rec.ID, rec.Uses, rec.MaxUses)
	case !rec.ExpiresAt.IsZero() && !now.Before(rec.ExpiresAt):
		err = fault.New(fault.Unauthenticated, "the bootstrap token %s expired at %s", rec.ID, rec.ExpiresAt.UTC().Format(time.RFC3339))
	default:
		return nil
	}
	about := fmt.Sprintf("bootstrap token for %q", rec.Name)
	if rec.CreatedBy != "" {
		about += ", made by principal " + rec.CreatedBy
	}
	return &fault.Credential{Err: err, Actor: "bootstrap-token:" + rec.ID, About: about}
}

// CheckBinding reports whether a certificate with the facts iss stays
// within what tok allows: its profile, exactly its name as common name and
// no other subject attribute, only SANs the token lists, no email SANs
// unless listed, and a lifetime within its MaxValidity. A violation is a
// fault.Denied error naming the first value outside the binding. It is a
// pure function, so it can run inside the issuance pipeline's Authorize
// hook, on the facts as the pipeline resolved them.
func CheckBinding(tok *store.BootstrapToken, iss *Issuance) error {
	deny := func(format string, args ...any) error {
		return fault.New(fault.Denied, "the bootstrap token for %q does not allow %s", tok.Name, fmt.Sprintf(format, args...))
	}
	if iss.Profile != tok.Profile {
		return deny("profile %q (it allows %q)", iss.Profile, tok.Profile)
	}
	for attr, vals := range iss.Subject {
		if attr != "CN" {
			return deny("subject attribute %s", attr)
		}
		if len(vals) != 1 || vals[0] != tok.Name {
			return deny("common name %q", strings.Join(vals, ","))
		}
	}
	if len(iss.Subject["CN"]) == 0 {
		return deny("a certificate without its common name %q", tok.Name)
	}
	allowed := func(typed string) bool { return slices.Contains(tok.SANs, typed) }
	// A server certificate carries its common name as a SAN too, so the
	// token's name is one of its names.
	cnIsSAN := false
	if p, err := pki.LookupProfile(tok.Profile); err == nil && p.ServerAuth {
		cnIsSAN = true
	}
	for _, d := range iss.DNS {
		if !allowed("dns:"+d) && !(cnIsSAN && strings.EqualFold(d, tok.Name)) {
			return deny("DNS name %q", d)
		}
	}
	for _, u := range iss.URIs {
		if !allowed("uri:" + u) {
			return deny("URI %q", u)
		}
	}
	for _, ip := range iss.IPs {
		if !allowed("ip:"+ip.String()) && !(cnIsSAN && ip.String() == tok.Name) {
			return deny("IP address %s", ip)
		}
	}
	for _, e := range iss.Emails {
		if !allowed("email:" + e) {
			return deny("email address %q", e)
		}
	}
	if tok.MaxValidity > 0 && iss.Validity > tok.MaxValidity {
		return deny("a lifetime of %s (at most %s)", pki.FormatDuration(iss.Validity), pki.FormatDuration(tok.MaxValidity))
	}
	return nil
}
