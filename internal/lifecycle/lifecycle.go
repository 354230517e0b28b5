// Package lifecycle emits certificate lifecycle events and delivers them.
// Events (a certificate crossing an expiry threshold, renewed, failing to
// renew) are recorded in an outbox in the store before anyone is told,
// once per key, and delivered at least once to each configured webhook as
// JSON signed with HMAC-SHA256, with retries and capped exponential
// backoff, so that a restart loses none. Decisions (which threshold a
// certificate has crossed, when to retry) are pure functions of `now`.
package lifecycle

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/store"
)

// The event types.
const (
	TypeExpiring      = "certificate.expiring"
	TypeRenewed       = "certificate.renewed"
	TypeRenewalFailed = "certificate.renewal_failed"
	// TypeCAExpiring warns that a CA's own certificate crossed an expiry
	// threshold: rotate it (ca rotate) or renew the hierarchy.
	TypeCAExpiring = "ca.expiring"
)

// DefaultThresholds are the expiry thresholds: 30, 14, 7 and 1 days
// before notAfter.
var DefaultThresholds = []time.Duration{30 * pki.Day, 14 * pki.Day, 7 * pki.Day, pki.Day}

// Store is what the service needs from the store.
type Store interface {
	store.EventStore
	ListCertificates(ctx context.Context, f store.CertFilter) ([]*store.Certificate, error)
	ListCAs(ctx context.Context) ([]*store.CA, error)
	GetCASuccessor(ctx context.Context, caID string) (string, error)
}

// Webhook is a receiver of events.
type Webhook struct {
	// Name identifies the webhook in the outbox; renaming one leaves its
	// pending deliveries behind.
	Name string
	URL  string
	// Secret keys the HMAC-SHA256 signature.
	Secret []byte
}

// Config configures a Service. Store is required; the rest has defaults.
type Config struct {
	Store    Store
	Webhooks []Webhook
	// Thresholds are the expiry thresholds; nil means DefaultThresholds.
	Thresholds []time.Duration
	// ScanInterval is how often certificates are checked against the
	// thresholds; default 1 minute.
	ScanInterval time.Duration
	// DeliverInterval is how often due deliveries are looked for when no
	// new event wakes the sender; default 1 second.
	DeliverInterval time.Duration
	// RetryInitial and RetryMax bound the backoff between attempts of one
	// delivery; default 5 seconds and 1 hour.
	RetryInitial, RetryMax time.Duration
	// HTTPClient sends deliveries; default a client with a 10 s timeout.
	HTTPClient *http.Client
	Now        func() time.Time
	Rand       func() float64
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Service records and delivers events. It is safe for concurrent use.
type Service struct {
	cfg      Config
	webhooks map[string]Webhook
	wake     chan struct{}

	events     *prometheus.CounterVec
	deliveries *prometheus.CounterVec
	notAfter   *prometheus.GaugeVec

	deliverMu sync.Mutex // one delivery pass at a time
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("lifecycle: Store is required")
	}
	if cfg.Thresholds == nil {
		cfg.Thresholds = DefaultThresholds
	}
	cfg.Thresholds = slices.Clone(cfg.Thresholds)
	slices.SortFunc(cfg.Thresholds, func(a, b time.Duration) int { return cmp.Compare(b, a) })
	for _, t := range cfg.Thresholds {
		if t <= 0 {
			return nil, fmt.Errorf("lifecycle: threshold %s is not positive", t)
		}
	}
	if cfg.ScanInterval <= 0 {
		cfg.ScanInterval = time.Minute
	}
	if cfg.DeliverInterval <= 0 {
		cfg.DeliverInterval = time.Second
	}
	if cfg.RetryInitial <= 0 {
		cfg.RetryInitial = 5 * time.Second
	}
	if cfg.RetryMax < cfg.RetryInitial {
		cfg.RetryMax = max(time.Hour, cfg.RetryInitial)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = mrand.Float64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, webhooks: map[string]Webhook{}, wake: make(chan struct{}, 1)}
	for _, w := range cfg.Webhooks {
		if w.Name == "" || w.URL == "" || len(w.Secret) == 0 {
			return nil, fmt.Errorf("lifecycle: webhook %q needs a name, a URL and a secret", w.Name)
		}
		if _, dup := s.webhooks[w.Name]; dup {
			return nil, fmt.Errorf("lifecycle: webhook %q is configured twice", w.Name)
		}
		s.webhooks[w.Name] = w
	}
	s.events = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trustgate_lifecycle_events_total", Help: "Lifecycle events recorded, by type."}, []string{"type"})
	s.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trustgate_lifecycle_deliveries_total", Help: "Webhook delivery attempts, by webhook and result (ok or failed)."}, []string{"webhook", "result"})
	s.notAfter = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "trustgate_certificate_not_after_seconds",
		Help: "NotAfter, as a Unix time, of every active certificate that expires within the largest expiry threshold, as of the last scan."},
		[]string{"serial", "ca", "subject"})
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(s.events, s.deliveries, s.notAfter)
	}
	return s, nil
}

// envelope is the JSON document delivered for an event.
type envelope struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	CreatedAt time.Time `json:"created_at"`
	Data      any       `json:"data"`
}

// Emit records an event of type typ about key, with data as its "data",
// for delivery to every webhook. An event with the same key is recorded
// only once; Emit then returns false.
func (s *Service) Emit(ctx context.Context, typ, key string, data any) (bool, error) {
	idb := make([]byte, 16)
	if _, err := rand.Read(idb); err != nil {
		return false, fmt.Errorf("event id: %w", err)
	}
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	env := envelope{ID: "ev-" + hex.EncodeToString(idb), Type: typ, CreatedAt: now, Data: data}
	payload, err := json.Marshal(env)
	if err != nil {
		return false, fmt.Errorf("encode event: %w", err)
	}
	names := make([]string, 0, len(s.webhooks))
	for n := range s.webhooks {
		names = append(names, n)
	}
	slices.Sort(names)
	added, err := s.cfg.Store.AddEvent(ctx, &store.Event{ID: env.ID, Key: key, Type: typ, Payload: payload, CreatedAt: now}, names)
	if err != nil {
		return false, fmt.Errorf("record event %s: %w", key, err)
	}
	if added {
		s.events.WithLabelValues(typ).Inc()
		s.cfg.Logger.Info("lifecycle event", "type", typ, "key", key, "id", env.ID)
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return added, nil
}

// Crossed returns the smallest threshold that a certificate valid from
// notBefore to notAfter has crossed at now, and false when it has crossed
// none. A threshold counts only for certificates whose lifetime is longer
// than it: a one-hour certificate is not "expiring within a day" the
// moment it is issued. thresholds are in decreasing order.
func Crossed(thresholds []time.Duration, notBefore, notAfter, now time.Time) (time.Duration, bool) {
	left, life := notAfter.Sub(now), notAfter.Sub(notBefore)
	if left <= 0 {
		return 0, false
	}
	var got time.Duration
	found := false
	for _, t := range thresholds {
		if left <= t && life > t {
			got, found = t, true
		}
	}
	return got, found
}

// renewedKey is the key of a certificate's renewal event: it also marks
// the certificate superseded, so that it raises no expiry events.
func renewedKey(caID, serial string) string { return "renewed:" + caID + ":" + serial }

// Scan records an expiry event for each active certificate that crossed
// a threshold since it was last seen, and refreshes the notAfter metric.
// Certificates that were renewed are skipped: their successor is what
// matters.
func (s *Service) Scan(ctx context.Context) error {
	now := s.cfg.Now().UTC()
	if err := s.scanCAs(ctx, now); err != nil {
		return err
	}
	f := store.CertFilter{Status: store.CertActive, NotExpired: true, ExpiresBy: now.Add(s.cfg.Thresholds[0]), Now: now, Limit: 1000}
	s.notAfter.Reset()
	for {
		page, err := s.cfg.Store.ListCertificates(ctx, f)
		if err != nil {
			return fmt.Errorf("expiry scan: %w", err)
		}
		for _, c := range page {
			s.notAfter.WithLabelValues(c.Serial, c.CAID, c.Subject).Set(float64(c.NotAfter.Unix()))
			t, ok := Crossed(s.cfg.Thresholds, c.NotBefore, c.NotAfter, now)
			if !ok {
				continue
			}
			if renewed, err := s.cfg.Store.HasEvent(ctx, renewedKey(c.CAID, c.Serial)); err != nil {
				return fmt.Errorf("expiry scan: %w", err)
			} else if renewed {
				continue
			}
			key := "expiring:" + c.IssuerKey + ":" + c.Serial + ":" + pki.FormatDuration(t)
			if _, err := s.Emit(ctx, TypeExpiring, key, map[string]any{
				"serial": c.Serial, "ca_id": c.CAID, "subject": c.Subject, "sans": c.SANs, "profile": c.Profile,
				"not_after": c.NotAfter, "threshold": pki.FormatDuration(t), "managed": c.Managed,
			}); err != nil {
				return err
			}
		}
		if len(page) < f.Limit {
			return nil
		}
		f.After = page[len(page)-1].Seq
	}
}

// Backoff returns the wait after the attempts-th failed attempt of a
// delivery: RetryInitial doubled, capped at RetryMax, the upper half
// spread by u in [0, 1).
func (s *Service) Backoff(attempts int, u float64) time.Duration {
	d := s.cfg.RetryMax
	if attempts < 1 {
		attempts = 1
	}
	if attempts < 40 {
		if n := s.cfg.RetryInitial << (attempts - 1); n > 0 && n < d {
			d = n
		}
	}
	return d/2 + time.Duration(float64(d/2)*min(max(u, 0), 1))
}

// Deliver makes one pass over the deliveries due now and returns how many
// succeeded. A failed delivery is rescheduled with backoff; the outbox
// keeps it across restarts.
func (s *Service) Deliver(ctx context.Context) (int, error) {
	s.deliverMu.Lock()
	defer s.deliverMu.Unlock()
	ok := 0
	for {
		due, err := s.cfg.Store.DueDeliveries(ctx, s.cfg.Now(), 100)
		if err != nil {
			return ok, fmt.Errorf("deliveries: %w", err)
		}
		if len(due) == 0 {
			return ok, nil
		}
		progress := false
		for _, d := range due {
			err := s.send(ctx, d)
			now := s.cfg.Now()
			if err == nil {
				s.deliveries.WithLabelValues(d.Webhook, "ok").Inc()
				if err := s.cfg.Store.MarkDelivered(ctx, d.Event.ID, d.Webhook, now); err != nil {
					return ok, fmt.Errorf("deliveries: %w", err)
				}
				ok++
				progress = true
				continue
			}
			if ctx.Err() != nil {
				return ok, ctx.Err()
			}
			s.deliveries.WithLabelValues(d.Webhook, "failed").Inc()
			next := now.Add(s.Backoff(d.Attempts+1, s.cfg.Rand()))
			s.cfg.Logger.Warn("webhook delivery failed", "webhook", d.Webhook, "event", d.Event.ID, "attempt", d.Attempts+1, "retry_at", next, "err", err)
			if err := s.cfg.Store.MarkFailed(ctx, d.Event.ID, d.Webhook, next, cleanText(err.Error(), 500)); err != nil {
				return ok, fmt.Errorf("deliveries: %w", err)
			}
			progress = true
		}
		if !progress || len(due) < 100 {
			return ok, nil
		}
	}
}

// send posts one event to one webhook; a 2xx answer is a delivery.
func (s *Service) send(ctx context.Context, d *store.Delivery) error {
	w, ok := s.webhooks[d.Webhook]
	if !ok {
		return fmt.Errorf("webhook %q is no longer configured", d.Webhook)
	}
	ts := s.cfg.Now().Unix()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(d.Event.Payload))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "trustgate-webhook/1")
	req.Header.Set(HeaderEventID, d.Event.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(w.Secret, ts, d.Event.Payload))
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

// Run scans and delivers until ctx ends. Several control-plane nodes may
// run it on one store: an event is recorded once per key whoever sees it
// first; a delivery may then be sent by two nodes at once, which receivers
// absorb by the event ID, as they must for at-least-once delivery anyway.
func (s *Service) Run(ctx context.Context) error {
	scan := time.NewTicker(s.cfg.ScanInterval)
	defer scan.Stop()
	deliver := time.NewTicker(s.cfg.DeliverInterval)
	defer deliver.Stop()
	if err := s.Scan(ctx); err != nil && ctx.Err() == nil {
		s.cfg.Logger.Error("expiry scan failed", "err", err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-scan.C:
			if err := s.Scan(ctx); err != nil && ctx.Err() == nil {
				s.cfg.Logger.Error("expiry scan failed", "err", err)
			}
		case <-deliver.C:
		case <-s.wake:
		}
		if len(s.webhooks) == 0 {
			continue
		}
		if _, err := s.Deliver(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Error("webhook deliveries failed", "err", err)
		}
	}
}

// cleanText makes s storable as text: valid UTF-8, no NUL, at most n bytes.
func cleanText(s string, n int) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "?"), "\x00", "")
	for len(s) > n {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}
