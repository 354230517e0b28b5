// Package truststore manages named, versioned trust stores, in the manner of
// AWS ALB trust stores (CreateTrustStore, AddTrustStoreRevocations,
// GetTrustStoreCaCertificatesBundle): the CA certificates a gateway trusts
// and the revocation sources it checks. A trust store holds CAs of this
// Trustgate by reference, whose revocations it follows by itself (their
// current CRLs, published by the revocation service), external CA
// certificates, and external CRLs, uploaded or named by URL. Every change
// makes a new version. Snapshot compiles what a gateway needs, with an ETag
// that changes exactly when that does.
//
// The service speaks in fault kinds, never HTTP, and is safe for concurrent
// use. Changes use the store's optimistic concurrency: each one is planned
// against the version it read and applied only if that version is still
// current, so two changes made at once never lose one another.
package truststore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/store"
)

// Store is what the service reads and writes.
type Store interface {
	GetCA(ctx context.Context, name string) (*store.CA, error)
	GetCAByID(ctx context.Context, id string) (*store.CA, error)
	ListCAs(ctx context.Context) ([]*store.CA, error)
	CreateTrustStore(ctx context.Context, ts *store.TrustStore) error
	GetTrustStore(ctx context.Context, name string) (*store.TrustStore, error)
	GetTrustStoreVersion(ctx context.Context, name string) (string, int64, error)
	ListTrustStores(ctx context.Context) ([]*store.TrustStore, error)
	ChangeTrustStore(ctx context.Context, id string, version int64, ch store.TrustStoreChange) (*store.TrustStore, error)
}

// CRLSource hands out the current CRL of a CA of this Trustgate; the
// revocation service satisfies it.
type CRLSource interface {
	// CurrentCRL returns the DER of the CA's current full CRL. The same
	// CRL must be returned as the same slice (which the caller does not
	// modify), so that an unchanged CRL costs no hashing. It fails for a
	// CA that has no CRL to give.
	CurrentCRL(ctx context.Context, caID string) ([]byte, error)
}

// DeltaCRLSource is an optional CRLSource capability: delta CRLs for a
// gateway that holds an earlier full CRL. The revocation service has it.
type DeltaCRLSource interface {
	// CRLSince returns what CurrentCRL returns and its CRL number, and a
	// delta CRL (RFC 5280 §5.2.4) from the full CRL numbered base whose
	// DER's SHA-256 starts with baseDigest (apiv1.CRLDigest) to it; the
	// delta is nil when base is current or newer, or when the source
	// cannot make one from that base: no history back to it, or another
	// CRL under that number, or no digest (the caller then sends the full
	// CRL). The slices must not be modified.
	CRLSince(ctx context.Context, caID string, base int64, baseDigest []byte) (full []byte, number int64, delta []byte, err error)
}

// Limits of one trust store.
const (
	// MaxCAs caps the trust anchors of a store, ours and external.
	MaxCAs = 200
	// MaxCRLSources caps the uploaded CRLs and CRL URLs of a store.
	MaxCRLSources = 50
	// MaxCRLBytes caps an uploaded CRL's DER.
	MaxCRLBytes = 16 << 20
	// MaxURLLength caps a CRL URL.
	MaxURLLength = 2048
	// maxRetries bounds the attempts of a change that lost a race.
	maxRetries = 5
)

// Config configures a Service. Store is required; without CRLs, Snapshot
// fails for a store that holds CAs of this Trustgate.
type Config struct {
	Store Store
	CRLs  CRLSource
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Rand is the randomness of IDs; default crypto/rand.
	Rand   io.Reader
	Logger *slog.Logger
	// Registerer, when set, receives the service's metrics.
	Registerer prometheus.Registerer
}

// Service manages trust stores. Build one with New.
type Service struct {
	cfg Config

	mu sync.Mutex
	// snaps caches, by trust store name, the parts of the last snapshot
	// that depend on the store's version only.
	snaps map[string]*snapBase
	// crlSums caches, by CA ID, the hash of the CA's CRL last seen.
	crlSums map[string]crlSum
	// served counts the CRLs of our CAs in snapshots answered, by form.
	served [numCRLForms]prometheus.Counter
	// reusedWarned holds, by CA ID, the CRL number last found held by a
	// gateway with other contents, so that it is logged once, not on
	// every snapshot a caller asks for.
	reusedWarned map[string]int64
}

// Forms in which a CA's CRL is answered in a snapshot, the values of the
// kind label of trustgate_truststore_snapshot_crls_total.
const (
	formFull = iota
	formDelta
	formUnchanged
	numCRLForms
)

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("truststore: Store is required")
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
	s := &Service{cfg: cfg, snaps: map[string]*snapBase{}, crlSums: map[string]crlSum{}}
	served := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "trustgate_truststore_snapshot_crls_total",
		Help: "CRLs of this Trustgate's CAs in trust-store snapshots answered to gateways, by kind: full (the whole CRL), delta (a delta CRL from the full CRL the gateway holds) or unchanged (the gateway keeps what it holds).",
	}, []string{"kind"})
	for form, kind := range [numCRLForms]string{formFull: "full", formDelta: "delta", formUnchanged: "unchanged"} {
		s.served[form] = served.WithLabelValues(kind)
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(served); err != nil {
			return nil, fmt.Errorf("truststore: register metrics: %w", err)
		}
	}
	return s, nil
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ValidateName checks a trust-store name with the rules of CA names:
// lower-case letters, digits, '.', '_' and '-', starting with a letter or
// digit, at most 63 characters. Names appear in URLs and configuration.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fault.New(fault.Invalid, "trust store name %q is invalid: use 1-63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

func (s *Service) newID() (string, error) {
	b := make([]byte, 12)
	if _, err := io.ReadFull(s.cfg.Rand, b); err != nil {
		return "", fmt.Errorf("truststore: random ID: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// fingerprint is the lower-case hex SHA-256 of der.
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// get returns the trust store named name.
func (s *Service) get(ctx context.Context, name string) (*store.TrustStore, error) {
	if err := ValidateName(name); err != nil {
		return nil, fault.New(fault.NotFound, "trust store %q does not exist", name)
	}
	ts, err := s.cfg.Store.GetTrustStore(ctx, name)
	if store.IsNotFound(err) {
		return nil, fault.New(fault.NotFound, "trust store %q does not exist", name)
	}
	if err != nil {
		return nil, fmt.Errorf("get trust store %q: %w", name, err)
	}
	return ts, nil
}

// ourCA returns the CA of this Trustgate named name, which must have a
// certificate to be trusted.
func (s *Service) ourCA(ctx context.Context, name string) (*store.CA, error) {
	c, err := s.cfg.Store.GetCA(ctx, name)
	if store.IsNotFound(err) {
		return nil, fault.New(fault.NotFound, "CA %q does not exist", name)
	}
	if err != nil {
		return nil, fmt.Errorf("get CA %q: %w", name, err)
	}
	if len(c.CertDER) == 0 {
		return nil, fault.New(fault.Conflict, "CA %q has no certificate yet (state %s)", name, c.State)
	}
	return c, nil
}

// ourCAsByFingerprint maps the certificate fingerprints of this Trustgate's
// CAs to their names, to turn away a CA certificate added as if external.
func (s *Service) ourCAsByFingerprint(ctx context.Context) (map[string]string, error) {
	cas, err := s.cfg.Store.ListCAs(ctx)
	if err != nil {
		return nil, fmt.Errorf("list CAs: %w", err)
	}
	out := make(map[string]string, len(cas))
	for _, c := range cas {
		if len(c.CertDER) > 0 {
			out[fingerprint(c.CertDER)] = c.Name
		}
	}
	return out, nil
}

// Create creates a trust store at version 1 with the CAs and external
// certificates of r.
func (s *Service) Create(ctx context.Context, r apiv1.CreateTrustStoreRequest) (*apiv1.TrustStore, error) {
	if err := ValidateName(r.Name); err != nil {
		return nil, err
	}
	now := s.now()
	id, err := s.newID()
	if err != nil {
		return nil, err
	}
	ts := &store.TrustStore{ID: id, Name: r.Name, CreatedAt: now, UpdatedAt: now}
	seen := map[string]bool{}
	for _, name := range r.CAs {
		if seen[name] {
			return nil, fault.New(fault.Invalid, "CA %q is listed twice", name)
		}
		seen[name] = true
		c, err := s.ourCA(ctx, name)
		if err != nil {
			return nil, err
		}
		ts.CAs = append(ts.CAs, store.TrustStoreCA{CAID: c.ID, AddedAt: now})
	}
	if r.CertificatesPEM != "" {
		certs, err := s.externalCerts(ctx, ts, []byte(r.CertificatesPEM), now)
		if err != nil {
			return nil, err
		}
		ts.Certs = certs
	}
	if n := len(ts.CAs) + len(ts.Certs); n > MaxCAs {
		return nil, fault.New(fault.Invalid, "a trust store holds at most %d CAs; this one would hold %d", MaxCAs, n)
	}
	err = s.cfg.Store.CreateTrustStore(ctx, ts)
	if store.IsConflict(err) {
		if _, _, gerr := s.cfg.Store.GetTrustStoreVersion(ctx, r.Name); gerr == nil {
			return nil, fault.New(fault.Conflict, "trust store %q already exists", r.Name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("create trust store %q: %w", r.Name, err)
	}
	s.cfg.Logger.Info("trust store created", "truststore", ts.Name, "cas", len(ts.CAs), "certificates", len(ts.Certs))
	return s.view(ctx, ts)
}

// List returns every trust store, by name.
func (s *Service) List(ctx context.Context) ([]apiv1.TrustStore, error) {
	tss, err := s.cfg.Store.ListTrustStores(ctx)
	if err != nil {
		return nil, fmt.Errorf("list trust stores: %w", err)
	}
	out := make([]apiv1.TrustStore, 0, len(tss))
	names := &caCache{s: s}
	for _, ts := range tss {
		v, err := s.viewWith(ctx, ts, names)
		if err != nil {
			return nil, err
		}
		out = append(out, *v)
	}
	return out, nil
}

// Get returns the trust store named name.
func (s *Service) Get(ctx context.Context, name string) (*apiv1.TrustStore, error) {
	ts, err := s.get(ctx, name)
	if err != nil {
		return nil, err
	}
	return s.view(ctx, ts)
}

// change applies the change that plan makes of the trust store named name
// as it stands, retrying with a fresh read when another change won the
// race, and returns the store after it.
func (s *Service) change(ctx context.Context, name, what string, plan func(ts *store.TrustStore, now time.Time) (store.TrustStoreChange, error)) (*apiv1.TrustStore, error) {
	for attempt := 1; ; attempt++ {
		ts, err := s.get(ctx, name)
		if err != nil {
			return nil, err
		}
		now := s.now()
		ch, err := plan(ts, now)
		if err != nil {
			return nil, err
		}
		ch.At = now
		out, err := s.cfg.Store.ChangeTrustStore(ctx, ts.ID, ts.Version, ch)
		if store.IsConflict(err) || store.IsNotFound(err) {
			// Planned against ts.Version, the change can only fail if
			// another one came first: plan again against the new state.
			if _, v, verr := s.cfg.Store.GetTrustStoreVersion(ctx, name); verr == nil && v != ts.Version {
				if attempt < maxRetries {
					continue
				}
				return nil, fault.New(fault.Conflict, "trust store %q is being changed by others; retry", name)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s: trust store %q: %w", what, name, err)
		}
		s.cfg.Logger.Info("trust store changed", "truststore", name, "change", what, "version", out.Version)
		return s.view(ctx, out)
	}
}

// AddCA adds trust anchors: one CA of this Trustgate by name, or the
// external CA certificates of a PEM bundle, in one change.
func (s *Service) AddCA(ctx context.Context, name string, r apiv1.AddTrustStoreCARequest) (*apiv1.TrustStore, error) {
	switch {
	case (r.CA == "") == (r.CertificatePEM == ""):
		return nil, fault.New(fault.Invalid, "give exactly one of ca (a CA of this Trustgate, by name) and certificate_pem (external CA certificates)")
	case r.CA != "":
		return s.change(ctx, name, "add CA "+r.CA, func(ts *store.TrustStore, now time.Time) (store.TrustStoreChange, error) {
			c, err := s.ourCA(ctx, r.CA)
			if err != nil {
				return store.TrustStoreChange{}, err
			}
			for _, m := range ts.CAs {
				if m.CAID == c.ID {
					return store.TrustStoreChange{}, fault.New(fault.Conflict, "CA %q is already in trust store %q", r.CA, name)
				}
			}
			fp := fingerprint(c.CertDER)
			for _, m := range ts.Certs {
				if m.Fingerprint == fp {
					return store.TrustStoreChange{}, fault.New(fault.Conflict, "the certificate of CA %q is in trust store %q as an external certificate; remove it first (ref %s)", r.CA, name, fp)
				}
			}
			if len(ts.CAs)+len(ts.Certs) >= MaxCAs {
				return store.TrustStoreChange{}, fault.New(fault.Invalid, "trust store %q already holds the most CAs a store may hold (%d)", name, MaxCAs)
			}
			return store.TrustStoreChange{AddCAs: []store.TrustStoreCA{{CAID: c.ID, AddedAt: now}}}, nil
		})
	default:
		return s.change(ctx, name, "add certificates", func(ts *store.TrustStore, now time.Time) (store.TrustStoreChange, error) {
			certs, err := s.externalCerts(ctx, ts, []byte(r.CertificatePEM), now)
			if err != nil {
				return store.TrustStoreChange{}, err
			}
			if n := len(ts.CAs) + len(ts.Certs) + len(certs); n > MaxCAs {
				return store.TrustStoreChange{}, fault.New(fault.Invalid, "a trust store holds at most %d CAs; trust store %q would hold %d", MaxCAs, name, n)
			}
			return store.TrustStoreChange{AddCerts: certs}, nil
		})
	}
}

// externalCerts parses a PEM bundle of external CA certificates to add to ts.
func (s *Service) externalCerts(ctx context.Context, ts *store.TrustStore, pemData []byte, now time.Time) ([]store.TrustStoreCert, error) {
	certs, err := parseCertsPEM(pemData)
	if err != nil {
		return nil, err
	}
	ours, err := s.ourCAsByFingerprint(ctx)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, m := range ts.Certs {
		have[m.Fingerprint] = true
	}
	var out []store.TrustStoreCert
	for i, c := range certs {
		fp := fingerprint(c.Raw)
		if name, ok := ours[fp]; ok {
			return nil, fault.New(fault.Invalid, "certificate %d (%s) is CA %q of this Trustgate: add it by name (ca: %q) so that the store follows its revocations", i+1, c.Subject, name, name)
		}
		if have[fp] {
			return nil, fault.New(fault.Conflict, "certificate %d (%s, SHA-256 %s) is already in trust store %q", i+1, c.Subject, fp, ts.Name)
		}
		have[fp] = true
		out = append(out, store.TrustStoreCert{Fingerprint: fp, DER: c.Raw, AddedAt: now})
	}
	return out, nil
}

// RemoveCA removes a trust anchor: ref is the name of a CA of this
// Trustgate in the store, or an external certificate's SHA-256
// fingerprint (hex, any case, colons allowed). An uploaded CRL that the
// anchor signed must be removed first.
func (s *Service) RemoveCA(ctx context.Context, name, ref string) (*apiv1.TrustStore, error) {
	return s.change(ctx, name, "remove CA "+ref, func(ts *store.TrustStore, now time.Time) (store.TrustStoreChange, error) {
		var ch store.TrustStoreChange
		memberRef := ""
		if c, err := s.cfg.Store.GetCA(ctx, ref); err == nil {
			for _, m := range ts.CAs {
				if m.CAID == c.ID {
					ch.RemoveCAs, memberRef = []string{c.ID}, c.ID
				}
			}
		} else if !store.IsNotFound(err) {
			return ch, fmt.Errorf("get CA %q: %w", ref, err)
		}
		if memberRef == "" {
			fp := normalizeFingerprint(ref)
			for _, m := range ts.Certs {
				if m.Fingerprint == fp {
					ch.RemoveCerts, memberRef = []string{fp}, fp
				}
			}
		}
		if memberRef == "" {
			return ch, fault.New(fault.NotFound, "trust store %q has no CA %q: give the name of a CA of this Trustgate or the SHA-256 fingerprint of an external certificate, as listed by show", name, ref)
		}
		for _, c := range ts.CRLs {
			if c.IssuerRef == memberRef {
				return ch, fault.New(fault.Conflict, "CRL %s of trust store %q was signed by CA %q; remove the CRL first", c.ID, name, ref)
			}
		}
		return ch, nil
	})
}

// Bundle returns the PEM of every trust anchor of the store: the current
// certificates of its CAs of this Trustgate, then the external ones.
func (s *Service) Bundle(ctx context.Context, name string) ([]byte, error) {
	ts, err := s.get(ctx, name)
	if err != nil {
		return nil, err
	}
	ders, err := s.anchors(ctx, ts)
	if err != nil {
		return nil, err
	}
	return encodeCertsPEM(ders), nil
}

// anchors returns the DER of every trust anchor of ts, ours first.
func (s *Service) anchors(ctx context.Context, ts *store.TrustStore) ([][]byte, error) {
	var out [][]byte
	for _, m := range ts.CAs {
		c, err := s.cfg.Store.GetCAByID(ctx, m.CAID)
		if err != nil {
			return nil, fmt.Errorf("trust store %q: CA %s: %w", ts.Name, m.CAID, err)
		}
		out = append(out, c.CertDER)
	}
	for _, m := range ts.Certs {
		out = append(out, m.DER)
	}
	return out, nil
}
