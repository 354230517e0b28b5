// Package revocation publishes revocation status: an X.509 v2 CRL per CA
// (or per CRL partition) signed by the CA's own key (RFC 5280 §5), and an
// OCSP responder (RFC 6960, RFC 5019 profile) whose answers are signed
// by a delegated responder certificate at the first request and cached, so
// that serving one again costs no signature. A status change is published within a second.
package revocation

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trustgate/trustgate/internal/store"
)

// Store is what the service reads and counts. ReadCRL must keep numbers
// and lists together (see store.Store): on a control plane of several
// nodes, each builds CRLs of the same CAs, and a gateway that moves to a
// higher number must not lose a revocation the lower one listed.
type Store interface {
	GetCAByID(ctx context.Context, id string) (*store.CA, error)
	GetCA(ctx context.Context, name string) (*store.CA, error)
	ListCAs(ctx context.Context) ([]*store.CA, error)
	GetCertificateByCA(ctx context.Context, caID, serial string) (*store.Certificate, error)
	ListRevoked(ctx context.Context, caID string, partition int, expiresAfter time.Time, fn func(store.RevokedEntry) error) error
	ReadCRL(ctx context.Context, q store.CRLQuery, fn func(store.RevokedEntry) error, keep func() bool) (int64, error)
	// ListCRLNumbers returns the last CRL number of every (CA, partition):
	// one row per CRL scope, whatever the number of revocations.
	ListCRLNumbers(ctx context.Context) ([]store.CRLNumber, error)
}

// Keys hands out CA signing keys; the CA service satisfies it. Signer fails
// for a CA that cannot sign (pending, offline).
type Keys interface {
	Signer(ctx context.Context, caID string) (crypto.Signer, *x509.Certificate, error)
}

// ResponderIssuer issues a CA's delegated OCSP responder certificate for
// the key pub (RFC 6960 §4.2.2.2: EKU id-kp-OCSPSigning, id-pkix-ocsp-nocheck),
// valid from now for validity; the CA service satisfies it.
type ResponderIssuer interface {
	IssueOCSPResponder(ctx context.Context, caID string, pub crypto.PublicKey, validity time.Duration) (*x509.Certificate, error)
}

// Defaults of the Config durations.
const (
	DefaultCRLValidity       = 7 * 24 * time.Hour
	DefaultOCSPValidity      = time.Hour
	DefaultResponderValidity = 2 * 24 * time.Hour
	DefaultCoalesce          = 100 * time.Millisecond
	DefaultMaxAge            = 5 * time.Minute
	DefaultCheckInterval     = 30 * time.Second
)

// Config configures a Service.
type Config struct {
	Store      Store
	Keys       Keys
	Responders ResponderIssuer
	// BaseURL is the public base URL, the one issued certificates name
	// their CRLs under. A partition CRL names BaseURL/crl/{ca}/{n}.crl
	// in its Issuing Distribution Point (critical, RFC 5280 §5.2.5); the
	// full CRL BaseURL/crl/{ca}.crl is complete and carries none. Empty
	// means partition CRLs are not published: without URLs no
	// certificate can name them.
	BaseURL string
	// CRLValidity is nextUpdate - thisUpdate; default 7 days. A new CRL is
	// published at the latest at half of it.
	CRLValidity time.Duration
	// KeepExpired keeps expired certificates on CRLs. By default one
	// leaves once it has been expired for a CRLValidity: RFC 5280 §3.3
	// keeps it until it has been on one CRL issued after its expiry.
	KeepExpired bool
	// OCSPValidity is nextUpdate - thisUpdate of OCSP answers; default 1 hour.
	OCSPValidity time.Duration
	// ResponderValidity is the lifetime of responder certificates; default
	// 2 days, rotated at half.
	ResponderValidity time.Duration
	// Coalesce is how long the publisher waits after a change to gather a
	// burst into one CRL; default 100 ms.
	Coalesce time.Duration
	// MaxAge caps the Cache-Control max-age of CRLs and of OCSP answers to
	// GET, which is otherwise the time left to nextUpdate: an HTTP cache
	// then asks again (cheaply, with If-None-Match) at least this often
	// and sees a revocation within MaxAge. Default 5 minutes.
	MaxAge time.Duration
	// DeltaSteps and DeltaBytes bound the history of changes kept per CA
	// for delta CRLs (see CRLSince): at most this many CRL numbers back
	// and this many bytes of changed entries. A gateway whose full CRL is
	// older gets the full CRL again. Defaults DefaultDeltaSteps and
	// DefaultDeltaBytes.
	DeltaSteps int
	DeltaBytes int
	// CheckInterval is how often PublishChanges compares the CRL numbers
	// in the store with those of the CRLs this node serves, and publishes
	// afresh a CA whose number another node took past them: the safety
	// net for a change this node was not told of (see
	// PublishChanges). Default 30 seconds.
	CheckInterval time.Duration
	Now           func() time.Time
	Logger        *slog.Logger
	Registerer    prometheus.Registerer
}

// setDefaults fills in the zero fields of c.
func (c *Config) setDefaults() {
	if c.CRLValidity == 0 {
		c.CRLValidity = DefaultCRLValidity
	}
	if c.OCSPValidity == 0 {
		c.OCSPValidity = DefaultOCSPValidity
	}
	if c.ResponderValidity == 0 {
		c.ResponderValidity = DefaultResponderValidity
	}
	if c.Coalesce == 0 {
		c.Coalesce = DefaultCoalesce
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.DeltaSteps == 0 {
		c.DeltaSteps = DefaultDeltaSteps
	}
	if c.DeltaBytes == 0 {
		c.DeltaBytes = DefaultDeltaBytes
	}
	if c.CheckInterval == 0 {
		c.CheckInterval = DefaultCheckInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
}

// validate reports what is wrong with a defaulted c; it changes nothing.
func (c *Config) validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("Store is required"))
	}
	if c.Keys == nil {
		errs = append(errs, errors.New("Keys is required"))
	}
	if c.Responders == nil {
		errs = append(errs, errors.New("Responders is required"))
	}
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			errs = append(errs, fmt.Errorf("BaseURL %q must be an absolute http:// URL", c.BaseURL))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"CRLValidity", c.CRLValidity}, {"OCSPValidity", c.OCSPValidity}, {"ResponderValidity", c.ResponderValidity}, {"Coalesce", c.Coalesce}, {"MaxAge", c.MaxAge}, {"CheckInterval", c.CheckInterval}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %s is negative", d.name, d.v))
		}
	}
	if c.DeltaSteps < 0 || c.DeltaBytes < 0 {
		errs = append(errs, errors.New("DeltaSteps and DeltaBytes must not be negative"))
	}
	// Answers must not outlive the responder certificate that signs them;
	// they are capped at its notAfter, so they need room under it.
	if c.ResponderValidity < time.Second || c.CRLValidity < time.Second || c.OCSPValidity < time.Second {
		errs = append(errs, errors.New("CRLValidity, OCSPValidity and ResponderValidity must be at least one second"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("revocation: config: %w", err)
	}
	return nil
}

// Attribute keys of the log records, defined once.
const (
	logCA        = "ca"
	logPartition = "partition"
	logNumber    = "crl_number"
	logEntries   = "entries"
	logSerial    = "serial"
	logErr       = "err"
)

// maxPendingTimes bounds the change times kept per CA between two
// publications; past it, a burst still publishes once but stops adding
// propagation samples.
const maxPendingTimes = 4096

// maxPendingSerials bounds the changed serials kept per CA between two
// publications. Past it (a mass revocation), the publication checks every
// cached answer of the CA instead, which costs one pass over its revoked
// list rather than one lookup per serial.
const maxPendingSerials = 4096

// Service builds, signs and serves CRLs and OCSP answers. Build one with
// [New]; run its background work with [Service.Run] and serve
// [Service.Handler]. All methods are safe for concurrent use.
type Service struct {
	cfg Config
	log *slog.Logger
	met *metrics

	wake    chan struct{} // capacity 1: a change is pending
	running atomic.Bool

	mu      sync.Mutex
	pending map[string]*pendingChange // by CA ID

	// byID and byName map CA IDs and names to *authority. Authorities are
	// created once, on first sight, and never removed: a CA's ID, name,
	// certificate and partition count do not change once it has a
	// certificate.
	byID, byName sync.Map
	addMu        sync.Mutex // serializes creating authorities

	cacheEntries atomic.Int64
	// sweeps counts finished sweeps, so that a test can wait for the
	// publication Run makes as it starts.
	sweeps atomic.Uint64

	// lookupMax is how many cached answers of a CA a refresh checks one
	// by one in the store; beyond it, it reads the CA's revoked list once.
	lookupMax int
}

// pendingChange holds the changes of one CA that are not served yet: their
// times, per kind of publication, and which certificates changed, so that
// only their OCSP answers are re-checked.
type pendingChange struct {
	crl, ocsp []time.Time
	// serials are the lower-case hex serials whose status changed, unless
	// allSerials says that any certificate of the CA may have.
	serials    map[string]struct{}
	allSerials bool
	// recheck asks for the CA's CRLs to be rebuilt if their lists changed
	// and every cached answer re-checked, with no change time to record:
	// the periodic check found that another node published past this one
	// (see catchUp).
	recheck bool
}

// addSerial records that serial changed; "" means any certificate may have.
func (p *pendingChange) addSerial(serial string) {
	_, had := p.serials[serial]
	switch {
	case p.allSerials, had:
	case serial == "" || len(p.serials) >= maxPendingSerials:
		p.allSerials, p.serials = true, nil
	default:
		if p.serials == nil {
			p.serials = map[string]struct{}{}
		}
		p.serials[serial] = struct{}{}
	}
}

// mergeSerials adds the changed serials of q to p.
func (p *pendingChange) mergeSerials(q *pendingChange) {
	if q.allSerials {
		p.addSerial("")
		return
	}
	for serial := range q.serials {
		p.addSerial(serial)
	}
}

// New checks cfg, fills in its defaults and returns a Service. It
// registers the service's metrics with cfg.Registerer when one is set.
func New(cfg Config) (*Service, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Service{
		cfg:       cfg,
		log:       cfg.Logger,
		wake:      make(chan struct{}, 1),
		pending:   map[string]*pendingChange{},
		lookupMax: 1024,
	}
	met, err := newMetrics(cfg.Registerer, &s.cacheEntries)
	if err != nil {
		return nil, err
	}
	s.met = met
	return s, nil
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// Notify records that the certificate of the CA caID with serial (lower-case
// hex, as the store keeps it) changed status at at (the time of the
// revocation or release); serial "" means that any certificate of the CA
// may have changed. It never blocks: the new CRL and OCSP answers are
// published by [Service.Run] within about a second, a burst of changes in
// one CRL. Only the cached OCSP answers of the changed serials are
// re-checked, so a change costs the same in a CA with a million revoked
// certificates as in one with none (but for the CRL).
func (s *Service) Notify(caID, serial string, at time.Time) {
	s.enqueue(caID, func(p *pendingChange) {
		if len(p.crl) < maxPendingTimes {
			p.crl = append(p.crl, at)
		}
		if len(p.ocsp) < maxPendingTimes {
			p.ocsp = append(p.ocsp, at)
		}
		p.addSerial(serial)
	})
}

// enqueue marks the pending change of the CA caID with mark and wakes the
// publisher. The CA's generation moves first: answers being signed from a
// status read before the change must not enter the cache.
func (s *Service) enqueue(caID string, mark func(p *pendingChange)) {
	if a, ok := s.byID.Load(caID); ok {
		a.(*authority).gen.Add(1)
	}
	s.mu.Lock()
	p := s.pending[caID]
	if p == nil {
		p = &pendingChange{}
		s.pending[caID] = p
	}
	mark(p)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run publishes until ctx ends, then returns nil: it builds and publishes
// every CA's CRLs afresh at start (a node taking over publishing from
// another serves numbers above the other's), publishes changes reported by [Service.Notify],
// republishes CRLs at half their validity, re-signs cached OCSP answers at
// half theirs and rotates responder certificates at half their lifetime.
// Run may be called once at a time.
func (s *Service) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("revocation: Run is already running")
	}
	defer s.running.Store(false)
	s.publishLoop(ctx)
	return nil
}

// PublishChanges publishes the changes reported by [Service.Notify] within
// about a second (a burst in one CRL), retrying failed publications every
// second, until ctx ends; then it returns nil. It is the part of Run's work
// that a node does for the changes made through it whether or not it runs
// Run: on a control plane of several nodes Run (the periodic
// republication, OCSP refresh and responder rotation) runs on
// one node only, and a revocation made through another node must still
// reach the CRLs and OCSP answers that node serves. Running it beside Run
// is safe: each change is published once, by whichever loop takes it.
//
// Every Config.CheckInterval it also compares the CRL numbers in the store
// with those of the CRLs this node serves (one row per CRL scope, however
// many revocations), and publishes afresh each CA whose number another
// node took past them: a change this node was not told of (a notice lost
// on its way) is served within CheckInterval, not at the next
// republication, days later.
func (s *Service) PublishChanges(ctx context.Context) error {
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	check := time.NewTicker(s.cfg.CheckInterval)
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-check.C:
			if err := s.catchUp(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("revocation: cannot compare CRL numbers with the store", logErr, err)
			}
		case <-retry.C:
			s.mu.Lock()
			pending := len(s.pending) > 0
			s.mu.Unlock()
			if pending {
				s.flush(ctx)
			}
		case <-s.wake:
			t := time.NewTimer(s.cfg.Coalesce)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			s.flush(ctx)
		}
	}
}

// tickInterval is how often the sweep runs: an eighth of the shortest
// validity, between one second and one minute.
func (s *Service) tickInterval() time.Duration {
	d := min(s.cfg.CRLValidity, s.cfg.OCSPValidity, s.cfg.ResponderValidity) / 8
	return min(max(d, time.Second), time.Minute)
}

func (s *Service) publishLoop(ctx context.Context) {
	s.sweepWith(ctx, s.now(), buildAlways)
	tick := time.NewTicker(s.tickInterval())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			s.sweep(ctx, s.now())
		case <-s.wake:
			// Gather the rest of a burst into one publication.
			t := time.NewTimer(s.cfg.Coalesce)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			s.flush(ctx)
		}
	}
}

// flush publishes every pending change: OCSP answers first (cheap, and
// what most relying parties ask), then CRLs. A change whose publication
// failed for a reason that may pass (the store) stays pending for the
// next sweep.
func (s *Service) flush(ctx context.Context) {
	s.mu.Lock()
	pending := s.pending
	s.pending = map[string]*pendingChange{}
	s.mu.Unlock()
	for caID, p := range pending {
		if ctx.Err() != nil {
			s.requeue(caID, p)
			continue
		}
		a, err := s.authorityByID(ctx, caID)
		if err != nil {
			if !errors.Is(err, errNoCA) {
				s.log.Warn("revocation: cannot publish a change", logCA, caID, logErr, err)
				s.requeue(caID, p)
			}
			continue
		}
		var retry pendingChange
		if len(p.ocsp) > 0 || p.recheck {
			var err error
			if p.allSerials {
				err = s.refreshAnswers(ctx, a, s.now(), refreshAll)
			} else {
				err = s.refreshSerials(ctx, a, p.serials, s.now())
			}
			if err != nil {
				s.log.Warn("revocation: cannot refresh OCSP answers", logCA, a.name, logErr, err)
				retry.ocsp = p.ocsp
				retry.serials, retry.allSerials = p.serials, p.allSerials
				retry.recheck = p.recheck
			} else {
				s.observe(kindOCSP, p.ocsp)
			}
		}
		if len(p.crl) > 0 || p.recheck {
			if err := s.buildCRLs(ctx, a, s.now(), buildIfChanged); err != nil {
				if errors.Is(err, errCannotSign) {
					// Logged by buildScope; the last CRL stays.
				} else {
					s.log.Warn("revocation: cannot publish CRL", logCA, a.name, logErr, err)
					retry.crl = p.crl
					if p.recheck {
						retry.recheck = true
						retry.addSerial("")
					}
				}
			} else {
				s.observe(kindCRL, p.crl)
			}
		}
		if len(retry.crl)+len(retry.ocsp) > 0 || retry.recheck {
			s.requeue(caID, &retry)
		}
	}
}

// requeue puts back changes that could not be published, without waking
// the loop: the next sweep retries them.
func (s *Service) requeue(caID string, p *pendingChange) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.pending[caID]
	if q == nil {
		s.pending[caID] = p
		return
	}
	q.crl = append(p.crl, q.crl...)[:min(len(p.crl)+len(q.crl), maxPendingTimes)]
	q.ocsp = append(p.ocsp, q.ocsp...)[:min(len(p.ocsp)+len(q.ocsp), maxPendingTimes)]
	q.mergeSerials(p)
	q.recheck = q.recheck || p.recheck
}

// observe records, for each change time, how long it took to be served.
func (s *Service) observe(kind int, ats []time.Time) {
	now := s.now()
	h := s.met.propagation[kind]
	for _, at := range ats {
		h.Observe(max(now.Sub(at), 0).Seconds())
	}
}

// sweep does the periodic work at now: retry failed publications, build
// missing CRLs and republish those at half their validity, rotate
// responder certificates at half their lifetime, and re-sign cached OCSP
// answers at half theirs.
func (s *Service) sweep(ctx context.Context, now time.Time) {
	s.sweepWith(ctx, now, buildIfDue)
}

// sweepWith is sweep building CRLs per mode.
func (s *Service) sweepWith(ctx context.Context, now time.Time, mode buildMode) {
	defer s.sweeps.Add(1)
	s.mu.Lock()
	retry := len(s.pending) > 0
	s.mu.Unlock()
	if retry {
		s.flush(ctx)
	}
	cas, err := s.cfg.Store.ListCAs(ctx)
	if err != nil {
		s.log.Warn("revocation: cannot list CAs", logErr, err)
		return
	}
	for _, c := range cas {
		if ctx.Err() != nil {
			return
		}
		if len(c.CertDER) == 0 {
			continue // pending: nothing issued, nothing to publish
		}
		a, err := s.authorityFor(c)
		if err != nil {
			s.log.Warn("revocation: unusable CA certificate", logCA, c.Name, logErr, err)
			continue
		}
		if err := s.buildCRLs(ctx, a, now, mode); err != nil && !errors.Is(err, errCannotSign) {
			s.log.Warn("revocation: cannot publish CRL", logCA, a.name, logErr, err)
		}
		s.rotateResponder(ctx, a, now)
		if err := s.refreshAnswers(ctx, a, now, refreshDue); err != nil {
			s.log.Warn("revocation: cannot refresh OCSP answers", logCA, a.name, logErr, err)
		}
	}
}
