package authz

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/store"
)

// AccessStore is what the access-control service needs from the store.
type AccessStore interface {
	TokenStore
	store.AccessStore
}

// RateLimit is a token bucket: Rate per second, up to Burst at once.
type RateLimit struct {
	Rate  float64
	Burst int
}

// Config configures the access-control service.
type Config struct {
	Store AccessStore
	// Limits holds a per-principal token bucket for each rate-limited
	// action (e.g. "cert:Issue"); an action without one is not limited.
	Limits map[string]RateLimit
	// OperatorCA names the CA whose client certificates log in to the API
	// (with CertStore); "" turns client-certificate login off.
	OperatorCA string
	CertStore  CertLoginStore
	Now        func() time.Time
}

// Service answers who may do what: it keeps principals and policies,
// authorizes API calls (default deny, an explicit deny wins), and limits
// the rate of issuance and revocation per principal. The store's access
// generation is read on every request and what was read under an older
// one is read again, so a change applies to the next request.
type Service struct {
	cfg    Config
	Tokens *Tokens

	mu       sync.Mutex
	limiters map[limiterKey]*rate.Limiter
	// parsed caches compiled policies by name, reused while the stored
	// document is byte for byte the same.
	parsed map[string]parsedPolicy
	// granted caches each principal's policies as read under one access
	// generation; a change to principals, policies or tokens moves the
	// generation, which is read on every request, so the change applies
	// to the next request on every node.
	granted map[string]grantedPolicies
}

type grantedPolicies struct {
	gen  int64
	pols []NamedPolicy
	why  string
}

type parsedPolicy struct {
	doc []byte
	pol *Policy
}

type limiterKey struct{ principal, action string }

// AdminPolicy is the policy the bootstrap principal gets: everything.
const AdminPolicy = "admin"

// New returns the service.
func New(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg, Tokens: NewTokens(cfg.Store, cfg.Now), limiters: map[limiterKey]*rate.Limiter{},
		parsed: map[string]parsedPolicy{}, granted: map[string]grantedPolicies{}}
}

// Authenticate returns the principal an API token belongs to.
func (s *Service) Authenticate(ctx context.Context, secret string) (string, error) {
	return s.Tokens.Authenticate(ctx, secret)
}

// CreateToken makes an API token for an existing principal and returns its
// ID and its secret, shown once. ttl 0 means no expiry.
func (s *Service) CreateToken(ctx context.Context, principal string, ttl time.Duration) (string, string, error) {
	if _, err := s.cfg.Store.GetPrincipal(ctx, principal); err != nil {
		return "", "", fmt.Errorf("principal %q: %w", principal, err)
	}
	return s.Tokens.CreateWithID(ctx, principal, ttl)
}

// Authorize answers q: nil when allowed, else an error of kind
// fault.Denied that names the principal, the action and the resource and
// nothing of the policies, or one of kind fault.TooManyRequests carrying
// when to retry.
func (s *Service) Authorize(ctx context.Context, q Query) error {
	d, err := s.Decide(ctx, q)
	if err != nil {
		return err
	}
	if !d.Allowed {
		return &DeniedError{Principal: q.Principal, Action: q.Action, Resource: q.Resource, Decision: d}
	}
	if l, ok := s.cfg.Limits[q.Action]; ok && l.Rate > 0 {
		if wait := s.reserve(q.Principal, q.Action, l); wait > 0 {
			return &fault.RetryAfter{After: wait, Err: &fault.Error{Kind: fault.TooManyRequests,
				Msg: fmt.Sprintf("principal %q is over its rate limit for %s (%g per second, bursts of %d); retry in %s",
					q.Principal, q.Action, l.Rate, l.Burst, wait.Round(time.Millisecond))}}
		}
	}
	return nil
}

// DeniedError is a denial. Its message is what the caller may see; the
// Decision (which may quote conditions) is for the audit log and the
// simulator only.
type DeniedError struct {
	Principal, Action, Resource string
	Decision                    Decision
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("principal %q is not allowed to %s on %s", e.Principal, e.Action, e.Resource)
}

// Unwrap gives the error its kind.
func (e *DeniedError) Unwrap() error { return &fault.Error{Kind: fault.Denied, Msg: e.Error()} }

// reserve takes a token from the principal's bucket for action, or says
// how long until one is there (taking nothing).
func (s *Service) reserve(principal, action string, l RateLimit) time.Duration {
	k := limiterKey{principal, action}
	s.mu.Lock()
	lim, ok := s.limiters[k]
	if !ok {
		if len(s.limiters) >= 100000 {
			clear(s.limiters) // bounded memory; a reset bucket starts full
		}
		lim = rate.NewLimiter(rate.Limit(l.Rate), max(l.Burst, 1))
		s.limiters[k] = lim
	}
	s.mu.Unlock()
	now := s.cfg.Now()
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d
	}
	return 0
}

// AuthorizeAny refuses a principal that no resource or condition could
// let take action, so that a route which must first look up what a
// request is about (a certificate, a CA named in the body) refuses such a
// caller before it says whether the thing exists.
func (s *Service) AuthorizeAny(ctx context.Context, principal, action string) error {
	pols, why, err := s.policiesOf(ctx, principal, action)
	if err != nil {
		return err
	}
	if why != "" || !MayEver(pols, action) {
		return &DeniedError{Principal: principal, Action: action, Resource: "any resource",
			Decision: Decision{Reason: "no statement could allow it on any resource" + why}}
	}
	return nil
}

// Decide evaluates q against the principal's policies.
func (s *Service) Decide(ctx context.Context, q Query) (Decision, error) {
	pols, why, err := s.policiesOf(ctx, q.Principal, q.Action)
	if err != nil || why != "" {
		return Decision{Reason: why}, err
	}
	return Evaluate(pols, q), nil
}

// policiesOf loads a principal's policies; why is set when the principal
// can do nothing at all (missing, disabled).
func (s *Service) policiesOf(ctx context.Context, principal, action string) ([]NamedPolicy, string, error) {
	memo, _ := ctx.Value(memoKey{}).(*requestMemo)
	if memo != nil && memo.loaded && memo.principal == principal {
		return memo.pols, memo.why, nil
	}
	pols, why, err := s.grantedTo(ctx, principal, action)
	if memo != nil && err == nil {
		memo.loaded, memo.principal, memo.pols, memo.why = true, principal, pols, why
	}
	return pols, why, err
}

// grantedTo returns a principal's policies as the store holds them now:
// from the cache when the access generation has not moved since they were
// read, else from the store.
func (s *Service) grantedTo(ctx context.Context, principal, action string) ([]NamedPolicy, string, error) {
	// The generation is read before the policies: a change that lands
	// between the two is then cached under the older generation, and read
	// again on the next request.
	gen, err := accessGeneration(ctx, s.cfg.Store)
	if err != nil {
		return nil, "", fmt.Errorf("authorize %s: %w", action, err)
	}
	s.mu.Lock()
	g, ok := s.granted[principal]
	s.mu.Unlock()
	if ok && g.gen == gen {
		return g.pols, g.why, nil
	}
	pols, why, err := s.loadPolicies(ctx, principal, action)
	if err != nil {
		return nil, "", err
	}
	s.mu.Lock()
	if len(s.granted) >= maxCachedPrincipals {
		clear(s.granted)
	}
	s.granted[principal] = grantedPolicies{gen: gen, pols: pols, why: why}
	s.mu.Unlock()
	return pols, why, nil
}

// maxCachedPrincipals bounds the cache of granted policies; past it, it is
// emptied.
const maxCachedPrincipals = 10000

// requestMemo holds, for the rest of one request, the access generation
// and a principal's policies, so that the token check, the early check of
// a route and its handler's check read them once between them; the next
// request reads them afresh.
type requestMemo struct {
	genRead   bool
	gen       int64
	loaded    bool
	principal string
	pols      []NamedPolicy
	why       string
}

type memoKey struct{}

// WithRequestMemo returns ctx in which the access generation and the
// policies read for one request are kept for the rest of it.
func WithRequestMemo(ctx context.Context) context.Context {
	return context.WithValue(ctx, memoKey{}, &requestMemo{})
}

// generationReader reads the store's access generation.
type generationReader interface {
	AccessGeneration(ctx context.Context) (int64, error)
}

// accessGeneration returns the store's access generation, read once per
// request when ctx carries a request memo.
func accessGeneration(ctx context.Context, st generationReader) (int64, error) {
	memo, _ := ctx.Value(memoKey{}).(*requestMemo)
	if memo != nil && memo.genRead {
		return memo.gen, nil
	}
	gen, err := st.AccessGeneration(ctx)
	if err != nil {
		return 0, fmt.Errorf("read access generation: %w", err)
	}
	if memo != nil {
		memo.gen, memo.genRead = gen, true
	}
	return gen, nil
}

// loadPolicies reads a principal's policies from the store.
func (s *Service) loadPolicies(ctx context.Context, principal, action string) (_ []NamedPolicy, why string, _ error) {
	p, err := s.cfg.Store.GetPrincipal(ctx, principal)
	if store.IsNotFound(err) {
		return nil, fmt.Sprintf("principal %q does not exist", principal), nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("authorize %s: %w", action, err)
	}
	if p.Disabled {
		return nil, fmt.Sprintf("principal %q is disabled", principal), nil
	}
	pols := make([]NamedPolicy, 0, len(p.Policies))
	for _, name := range p.Policies {
		rec, err := s.cfg.Store.GetPolicy(ctx, name)
		if store.IsNotFound(err) {
			continue // deleted under it: grants nothing
		}
		if err != nil {
			return nil, "", fmt.Errorf("authorize %s: %w", action, err)
		}
		pol, err := s.compiled(name, rec.Document)
		if err != nil {
			return nil, "", fmt.Errorf("authorize %s: stored policy %q: %w", action, name, err)
		}
		pols = append(pols, NamedPolicy{Name: name, Policy: pol})
	}
	return pols, "", nil
}

// compiled returns the parsed form of a stored policy document.
func (s *Service) compiled(name string, doc []byte) (*Policy, error) {
	s.mu.Lock()
	c, ok := s.parsed[name]
	s.mu.Unlock()
	if ok && bytes.Equal(c.doc, doc) {
		return c.pol, nil
	}
	pol, err := ParsePolicy(doc)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if len(s.parsed) >= 10000 {
		clear(s.parsed)
	}
	s.parsed[name] = parsedPolicy{doc: bytes.Clone(doc), pol: pol}
	s.mu.Unlock()
	return pol, nil
}

// validName is what principal and policy names may be: safe in URLs,
// resource strings and logs.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

func checkName(what, name string) error {
	if !validName.MatchString(name) {
		return fault.New(fault.Invalid, "%s name %q: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", what, name)
	}
	return nil
}

// PutPolicy validates a policy document and stores it under name,
// replacing any policy of that name.
func (s *Service) PutPolicy(ctx context.Context, name string, doc []byte) (*store.PolicyRecord, *Policy, error) {
	if err := checkName("policy", name); err != nil {
		return nil, nil, err
	}
	pol, err := ParsePolicy(doc)
	if err != nil {
		return nil, nil, err
	}
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	rec := &store.PolicyRecord{Name: name, Document: pol.JSON(), CreatedAt: now, UpdatedAt: now}
	if old, err := s.cfg.Store.GetPolicy(ctx, name); err == nil {
		rec.CreatedAt = old.CreatedAt
	}
	if err := s.cfg.Store.PutPolicy(ctx, rec); err != nil {
		return nil, nil, fmt.Errorf("put policy %q: %w", name, err)
	}
	return rec, pol, nil
}

// PrincipalKinds are the kinds a principal may be.
var PrincipalKinds = []string{"human", "service"}

// NewPrincipal describes a principal to create.
type NewPrincipal struct {
	Name       string
	Kind       string // default "service"
	Policies   []string
	Identities []string
	// TokenTTL is the lifetime of the first API token; 0 means none.
	TokenTTL time.Duration
}

// CreatePrincipal stores a principal and makes its first API token,
// returned once.
func (s *Service) CreatePrincipal(ctx context.Context, np NewPrincipal) (*store.Principal, string, error) {
	if err := checkName("principal", np.Name); err != nil {
		return nil, "", err
	}
	if np.Kind == "" {
		np.Kind = "service"
	}
	if !slices.Contains(PrincipalKinds, np.Kind) {
		return nil, "", fault.New(fault.Invalid, "kind %q must be one of %v", np.Kind, PrincipalKinds)
	}
	if err := checkIdentities(np.Identities); err != nil {
		return nil, "", err
	}
	for _, p := range np.Policies {
		if err := checkName("policy", p); err != nil {
			return nil, "", err
		}
	}
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	p := &store.Principal{Name: np.Name, Kind: np.Kind, Policies: slices.Compact(slices.Clone(np.Policies)),
		Identities: np.Identities, CreatedAt: now, UpdatedAt: now}
	if err := s.cfg.Store.CreatePrincipal(ctx, p); err != nil {
		return nil, "", fmt.Errorf("create principal %q: %w", np.Name, err)
	}
	secret, err := s.Tokens.Create(ctx, np.Name, np.TokenTTL)
	if err != nil {
		return nil, "", err
	}
	return p, secret, nil
}

// UpdatePrincipal applies fn to the stored principal and stores it back.
func (s *Service) UpdatePrincipal(ctx context.Context, name string, fn func(p *store.Principal) error) (*store.Principal, error) {
	p, err := s.cfg.Store.GetPrincipal(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("principal %q: %w", name, err)
	}
	if err := fn(p); err != nil {
		return nil, err
	}
	if err := checkIdentities(p.Identities); err != nil {
		return nil, err
	}
	p.UpdatedAt = s.cfg.Now().UTC().Truncate(time.Microsecond)
	if err := s.cfg.Store.UpdatePrincipal(ctx, p); err != nil {
		return nil, fmt.Errorf("update principal %q: %w", name, err)
	}
	return p, nil
}

var validIdentity = regexp.MustCompile(`^(CN=.{1,64}|dns:[A-Za-z0-9.*-]{1,253}|uri:\S{1,1000}|email:[^@\s]{1,64}@[^@\s]{1,255})$`)

func checkIdentities(ids []string) error {
	for _, id := range ids {
		if !validIdentity.MatchString(id) {
			return fault.New(fault.Invalid, "identity %q must be CN=..., dns:..., uri:... or email:...", id)
		}
	}
	return nil
}

// EnsureAdmin makes the bootstrap principal name with the admin policy
// (every action on every resource) when it does not exist yet, and
// returns whether it did.
func (s *Service) EnsureAdmin(ctx context.Context, name string) (bool, error) {
	if _, err := s.cfg.Store.GetPrincipal(ctx, name); err == nil {
		return false, nil
	} else if !store.IsNotFound(err) {
		return false, err
	}
	if _, err := s.cfg.Store.GetPolicy(ctx, AdminPolicy); store.IsNotFound(err) {
		doc := []byte(`{"statements":[{"sid":"everything","effect":"allow","actions":["*"],"resources":["*"]}]}`)
		if _, _, err := s.PutPolicy(ctx, AdminPolicy, doc); err != nil {
			return false, err
		}
	} else if err != nil {
		return false, err
	}
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	err := s.cfg.Store.CreatePrincipal(ctx, &store.Principal{Name: name, Kind: "human", Policies: []string{AdminPolicy},
		CreatedAt: now, UpdatedAt: now})
	if err != nil && !store.IsConflict(err) {
		return false, fmt.Errorf("create bootstrap principal %q: %w", name, err)
	}
	return err == nil, nil
}
