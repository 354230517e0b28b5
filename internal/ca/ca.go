// Package ca is the certificate-authority service: it creates CA hierarchies
// (roots, intermediates, intermediates signed by an external parent), keeps
// their keys sealed, and issues certificates through one pipeline:
// resolve CA -> apply profile -> validate names and validity -> lint -> sign
// -> record durably -> return. It speaks in fault kinds, never HTTP.
package ca

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/keystore"
	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/store"
)

// MaxDepth is the deepest level below a root: a root and four levels of
// intermediates make five levels in all.
const MaxDepth = 4

// Default validities when the caller names none.
const (
	DefaultRootValidity         = 10 * 365 * 24 * time.Hour
	DefaultIntermediateValidity = 5 * 365 * 24 * time.Hour
)

// Config configures a Service. Store, Sealer and Linter are required.
type Config struct {
	Store  store.Store
	Sealer *keystore.Sealer
	Linter *pki.Linter
	// PublicBaseURL is the unauthenticated base URL relying parties reach
	// (e.g. http://pki.example:9080); issued certificates point at
	// PublicBaseURL/ca/{name}.pem (AIA caIssuers) and /crl/{name}.crl (CRL DP).
	// Empty means no such extensions.
	PublicBaseURL string
	// Backdate moves NotBefore into the past to absorb clock skew; default 1 minute.
	Backdate time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Rand is the randomness for serials; default crypto/rand.
	Rand   io.Reader
	Logger *slog.Logger
	// Revocations, when set, learns of every status change.
	Revocations RevocationNotifier
	// Rotations, when set, learns of every CA rotation.
	Rotations RotationNotifier
}

// Service creates CAs and issues certificates. It is safe for concurrent use.
type Service struct {
	cfg Config

	mu      sync.Mutex
	signers map[string]crypto.Signer // CA ID -> unsealed key, so issuance costs no unseal
	certs   map[string]*x509.Certificate
	issuers map[string]issuerEntry // CA name -> record and chain, for issuance
}

// issuerEntry is a CA record and its chain as issuance last read them.
type issuerEntry struct {
	ca    *store.CA
	chain [][]byte
	// parents are chain[1:] parsed, for the name constraints check.
	parents []*x509.Certificate
	read    time.Time
}

// issuerTTL bounds how long issuance trusts a cached CA record. Changes made
// through this service drop the cache at once; the TTL bounds how long
// another node's change (a disable, say) takes to be seen here.
const issuerTTL = time.Second

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Sealer == nil || cfg.Linter == nil {
		return nil, errors.New("ca: Store, Sealer and Linter are required")
	}
	if cfg.Backdate == 0 {
		cfg.Backdate = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.PublicBaseURL = strings.TrimRight(cfg.PublicBaseURL, "/")
	return &Service{cfg: cfg, signers: map[string]crypto.Signer{}, certs: map[string]*x509.Certificate{}, issuers: map[string]issuerEntry{}}, nil
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ValidateName checks a CA name: lower-case letters, digits, '.', '_' and
// '-', starting with a letter or digit, at most 63 characters. Names appear
// in URLs and file names, so nothing else is allowed.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fault.New(fault.Invalid, "CA name %q is invalid: use 1-63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

func newID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b)
}

func invalid(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pki.ErrTooLarge) {
		return &fault.Error{Kind: fault.TooLarge, Msg: err.Error()}
	}
	if errors.Is(err, pki.ErrInvalid) {
		return &fault.Error{Kind: fault.Invalid, Msg: err.Error()}
	}
	return err
}

// urls are the public URLs a certificate issued by the named CA carries:
// AIA caIssuers and OCSP, and the CRL of its partition (partitions > 1) or
// the CA's single CRL.
func (s *Service) urls(caName string, partitions, part int) pki.URLs {
	if s.cfg.PublicBaseURL == "" {
		return pki.URLs{}
	}
	crl := s.cfg.PublicBaseURL + "/crl/" + caName + ".crl"
	if partitions > 1 {
		crl = fmt.Sprintf("%s/crl/%s/%d.crl", s.cfg.PublicBaseURL, caName, part)
	}
	return pki.URLs{
		IssuingCA: []string{s.cfg.PublicBaseURL + "/ca/" + caName + ".pem"},
		CRL:       []string{crl},
		OCSP:      []string{s.cfg.PublicBaseURL + "/ocsp/" + caName},
	}
}

// signer returns the unsealed key and parsed certificate of an active CA.
func (s *Service) signer(c *store.CA) (crypto.Signer, *x509.Certificate, error) {
	s.mu.Lock()
	sg, ok := s.signers[c.ID]
	cert := s.certs[c.ID]
	s.mu.Unlock()
	if ok && cert != nil {
		return sg, cert, nil
	}
	if len(c.SealedKey) == 0 {
		return nil, nil, fault.New(fault.Conflict, "CA %q has no key on this server (state %s)", c.Name, c.State)
	}
	sg, err := s.cfg.Sealer.Unseal(c.ID, c.SealedKey)
	if err != nil {
		return nil, nil, fmt.Errorf("unseal key of CA %q: %w", c.Name, err)
	}
	cert, err = x509.ParseCertificate(c.CertDER)
	if err != nil {
		return nil, nil, fmt.Errorf("parse certificate of CA %q: %w", c.Name, err)
	}
	s.mu.Lock()
	s.signers[c.ID] = sg
	s.certs[c.ID] = cert
	s.mu.Unlock()
	return sg, cert, nil
}

// forget drops a CA's cached key, and every cached issuer record, after a
// state change.
func (s *Service) forget(id string) {
	s.mu.Lock()
	delete(s.signers, id)
	delete(s.certs, id)
	clear(s.issuers)
	s.mu.Unlock()
}

// issuer returns the named CA and its chain, from a cache of at most
// issuerTTL, so that issuance does not read the CA and each of its parents
// from the store, nor parse the parents, for every certificate.
func (s *Service) issuer(ctx context.Context, name string) (issuerEntry, error) {
	now := time.Now()
	s.mu.Lock()
	e, ok := s.issuers[name]
	s.mu.Unlock()
	if ok && now.Sub(e.read) < issuerTTL {
		return e, nil
	}
	c, err := s.GetCA(ctx, name)
	if err != nil {
		return issuerEntry{}, err
	}
	// Issuance through a rotated CA's name goes to its newest generation.
	if c, err = s.newest(ctx, c); err != nil {
		return issuerEntry{}, err
	}
	e = issuerEntry{ca: c, read: now}
	if len(c.CertDER) > 0 {
		if e.chain, err = s.Chain(ctx, c); err != nil {
			return issuerEntry{}, err
		}
		for _, der := range e.chain[1:] {
			p, err := x509.ParseCertificate(der)
			if err != nil {
				return issuerEntry{}, fmt.Errorf("parse CA chain of %q: %w", c.Name, err)
			}
			e.parents = append(e.parents, p)
		}
	}
	s.mu.Lock()
	s.issuers[name] = e
	s.mu.Unlock()
	return e, nil
}

// usable checks that a CA may sign at time now.
func usable(c *store.CA, now time.Time) error {
	switch c.State {
	case store.CAActive:
	case store.CADisabled:
		return fault.New(fault.Conflict, "CA %q is disabled; enable it to issue", c.Name)
	case store.CAPending:
		return fault.New(fault.Conflict, "CA %q awaits its certificate from the external parent (ca import-cert)", c.Name)
	case store.CAOffline:
		return fault.New(fault.Conflict, "CA %q is offline: its key is not on this server", c.Name)
	default:
		return fault.New(fault.Conflict, "CA %q is in state %q", c.Name, c.State)
	}
	if !now.Before(c.NotAfter) {
		return fault.New(fault.Conflict, "CA %q expired at %s", c.Name, c.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// GetCA returns a CA by name.
func (s *Service) GetCA(ctx context.Context, name string) (*store.CA, error) {
	c, err := s.cfg.Store.GetCA(ctx, name)
	if store.IsNotFound(err) {
		return nil, fault.New(fault.NotFound, "CA %q does not exist", name)
	}
	if err != nil {
		return nil, fmt.Errorf("get CA %q: %w", name, err)
	}
	return c, nil
}

// ListCAs returns every CA.
func (s *Service) ListCAs(ctx context.Context) ([]*store.CA, error) {
	cs, err := s.cfg.Store.ListCAs(ctx)
	if err != nil {
		return nil, fmt.Errorf("list CAs: %w", err)
	}
	return cs, nil
}

// Chain returns the CA's certificate followed by its parents' up to the
// root (or the external chain imported with it), as DER.
func (s *Service) Chain(ctx context.Context, c *store.CA) ([][]byte, error) {
	var out [][]byte
	cur := c
	for i := 0; ; i++ {
		if i > MaxDepth+1 {
			return nil, fmt.Errorf("chain of CA %q: hierarchy loop", c.Name)
		}
		if len(cur.CertDER) == 0 {
			return nil, fault.New(fault.Conflict, "CA %q has no certificate yet", cur.Name)
		}
		out = append(out, cur.CertDER)
		if cur.ParentID == "" {
			if len(cur.ChainDER) > 0 {
				ext, err := x509.ParseCertificates(cur.ChainDER)
				if err != nil {
					return nil, fmt.Errorf("parse external chain of CA %q: %w", cur.Name, err)
				}
				for _, e := range ext {
					out = append(out, e.Raw)
				}
			}
			return out, nil
		}
		p, err := s.cfg.Store.GetCAByID(ctx, cur.ParentID)
		if err != nil {
			return nil, fmt.Errorf("chain of CA %q: parent: %w", c.Name, err)
		}
		cur = p
	}
}

// pkixString renders a name the way the API shows it (RFC 4514 order).
func pkixString(n pkix.Name) string { return n.String() }
