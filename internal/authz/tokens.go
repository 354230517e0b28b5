// Package authz decides who the caller is and what it may do. This file
// holds API tokens: 256-bit random secrets shown once, of which only the
// SHA-256 is stored.
package authz

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/store"
)

// TokenPrefix marks Trustgate API tokens so that secret scanners can find
// leaked ones.
const TokenPrefix = "tgat_"

// TokenStore is what Tokens needs from the store.
type TokenStore interface {
	CreateToken(ctx context.Context, t *store.Token) error
	GetTokenByHash(ctx context.Context, hash []byte) (*store.Token, error)
	AccessGeneration(ctx context.Context) (int64, error)
}

// Tokens creates and checks API tokens. It is safe for concurrent use.
type Tokens struct {
	st  TokenStore
	now func() time.Time

	mu    sync.Mutex
	cache map[[sha256.Size]byte]cachedToken
}

// cachedToken is a successful lookup, reused while the store's access
// generation stays gen, so that a busy client does not cost a store read
// per request and a revoked token is refused on the next request.
type cachedToken struct {
	rec *store.Token
	gen int64
}

// maxCachedTokens bounds the cache; past it, it is emptied.
const maxCachedTokens = 10000

// NewTokens returns a Tokens over a store; now may be nil.
func NewTokens(st TokenStore, now func() time.Time) *Tokens {
	if now == nil {
		now = time.Now
	}
	return &Tokens{st: st, now: now, cache: map[[sha256.Size]byte]cachedToken{}}
}

// HashToken returns the stored form of a token secret.
func HashToken(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// Create makes a token for principal and returns its secret, which is not
// stored and cannot be shown again. ttl 0 means no expiry.
func (t *Tokens) Create(ctx context.Context, principal string, ttl time.Duration) (string, error) {
	_, secret, err := t.CreateWithID(ctx, principal, ttl)
	return secret, err
}

// CreateWithID is Create that also returns the token's ID, by which it is
// listed and revoked.
func (t *Tokens) CreateWithID(ctx context.Context, principal string, ttl time.Duration) (id, secret string, err error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", "", fmt.Errorf("token: %w", err)
	}
	secret = TokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	now := t.now().UTC()
	idb := make([]byte, 8)
	rand.Read(idb)
	rec := &store.Token{ID: hex.EncodeToString(idb), Principal: principal, Hash: HashToken(secret), CreatedAt: now}
	if ttl > 0 {
		rec.ExpiresAt = now.Add(ttl)
	}
	if err := t.st.CreateToken(ctx, rec); err != nil {
		return "", "", fmt.Errorf("store token: %w", err)
	}
	return rec.ID, secret, nil
}

// Valid reports whether secret is a live token.
func (t *Tokens) Valid(ctx context.Context, secret string) bool {
	_, err := t.Authenticate(ctx, secret)
	return err == nil
}

// Authenticate returns the principal a token secret belongs to. The lookup
// is by SHA-256, so its timing says nothing about the secret; the final
// comparison is constant-time as well.
func (t *Tokens) Authenticate(ctx context.Context, secret string) (string, error) {
	if !strings.HasPrefix(secret, TokenPrefix) || len(secret) > 128 {
		return "", fault.New(fault.Unauthenticated, "the bearer token is not a Trustgate API token")
	}
	h := HashToken(secret)
	rec, err := t.lookup(ctx, h)
	if store.IsNotFound(err) {
		return "", fault.New(fault.Unauthenticated, "the bearer token is unknown")
	}
	if err != nil {
		return "", fmt.Errorf("authenticate: %w", err)
	}
	if subtle.ConstantTimeCompare(rec.Hash, h) != 1 {
		return "", fault.New(fault.Unauthenticated, "the bearer token is unknown")
	}
	// From here on the caller has proved the token: a refusal names it
	// (never its secret) for the audit log.
	if rec.Revoked {
		return "", tokenRefusal(rec, fault.New(fault.Unauthenticated, "the bearer token was revoked"))
	}
	if !rec.ExpiresAt.IsZero() && !t.now().Before(rec.ExpiresAt) {
		return "", tokenRefusal(rec, fault.New(fault.Unauthenticated, "the bearer token expired at %s", rec.ExpiresAt.Format(time.RFC3339)))
	}
	return rec.Principal, nil
}

// tokenRefusal attaches the identity of a proved API token to its refusal.
func tokenRefusal(rec *store.Token, err error) error {
	return &fault.Credential{Err: err, Actor: "token:" + rec.ID, About: "API token of principal " + rec.Principal}
}

// lookup reads a token record by hash, through a cache of successful
// lookups kept while the access generation stays the same (failures are
// never cached, so a new token works at once).
func (t *Tokens) lookup(ctx context.Context, h []byte) (*store.Token, error) {
	gen, err := accessGeneration(ctx, t.st)
	if err != nil {
		return nil, err
	}
	key := [sha256.Size]byte(h)
	t.mu.Lock()
	c, ok := t.cache[key]
	t.mu.Unlock()
	if ok && c.gen == gen {
		return c.rec, nil
	}
	rec, err := t.st.GetTokenByHash(ctx, h)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	if len(t.cache) >= maxCachedTokens {
		clear(t.cache)
	}
	t.cache[key] = cachedToken{rec: rec, gen: gen}
	t.mu.Unlock()
	return rec, nil
}
