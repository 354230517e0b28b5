package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/trustgate/trustgate/internal/ca"
	"github.com/trustgate/trustgate/internal/store"
)

// The defaults of managed renewal.
const (
	// DefaultRenewAt is the point of the lifetime at which a managed
	// certificate is renewed.
	DefaultRenewAt = 2.0 / 3
	// DefaultRenewJitter is the spread around DefaultRenewAt, as a share
	// of the lifetime, so that certificates issued together do not all
	// renew in the same scan.
	DefaultRenewJitter = 0.1
	// DefaultClaimTTL bounds how long a claimed renewal is left to its
	// node before another takes it over; it is also how long a failed
	// renewal waits before it is tried again.
	DefaultClaimTTL = 10 * time.Minute
)

// RenewalTime is when a certificate valid from notBefore to notAfter is
// due for managed renewal: at the fraction at of its lifetime, moved by
// (u-0.5)*jitter of the lifetime. u in [0, 1) comes from the certificate
// (see JitterOf), so every node and every scan computes the same time.
func RenewalTime(notBefore, notAfter time.Time, at, jitter, u float64) time.Time {
	life := notAfter.Sub(notBefore)
	f := at + (min(max(u, 0), 1)-0.5)*jitter
	f = min(max(f, 0), 1)
	// Whole seconds: float products of a lifetime land a nanosecond off,
	// and a renewal decision needs no finer grain.
	return notBefore.Add(time.Duration(float64(life) * f).Round(time.Second))
}

// JitterOf maps a serial to a number in [0, 1), the same on every node.
func JitterOf(serial string) float64 {
	h := fnv.New64a()
	h.Write([]byte(serial))
	return float64(h.Sum64()>>11) / (1 << 53)
}

// ManagedStore is what managed renewal needs from the store.
type ManagedStore interface {
	ListRenewable(ctx context.Context, now time.Time, after int64, limit int) ([]*store.Certificate, error)
	ClaimRenewal(ctx context.Context, caID, serial string, at, staleBefore time.Time) (bool, error)
	SetSuccessor(ctx context.Context, caID, serial, successor string, at time.Time) error
}

// Recertifier issues the successor of a managed certificate for the same
// public key (ca.Service.Recertify).
type Recertifier interface {
	Recertify(ctx context.Context, old *store.Certificate) (*ca.Issued, error)
}

// ManagedConfig configures a Managed renewer. Store, CA and Events are
// required.
type ManagedConfig struct {
	Store  ManagedStore
	CA     Recertifier
	Events *Service
	// RenewAt is the point of the lifetime to renew at, in (0, 1); zero
	// means DefaultRenewAt.
	RenewAt float64
	// RenewJitter is the whole spread around RenewAt as a share of the
	// lifetime; negative means DefaultRenewJitter, zero none.
	RenewJitter float64
	// ClaimTTL caps how long a claim holds (see DefaultClaimTTL).
	ClaimTTL time.Duration
	// Interval is how often Run looks for certificates due; default 1 minute.
	Interval time.Duration
	Now      func() time.Time
	Logger   *slog.Logger
}

// Managed renews managed certificates when they are due, once across
// every node that shares the store: a renewal is claimed in the store
// before the CA signs anything, and the new certificate is recorded as
// the old one's successor. It is safe for concurrent use.
type Managed struct {
	cfg ManagedConfig
}

// NewManaged returns a Managed renewer.
func NewManaged(cfg ManagedConfig) (*Managed, error) {
	if cfg.Store == nil || cfg.CA == nil || cfg.Events == nil {
		return nil, errors.New("lifecycle: managed renewal needs Store, CA and Events")
	}
	if cfg.RenewAt == 0 {
		cfg.RenewAt = DefaultRenewAt
	}
	if cfg.RenewJitter < 0 {
		cfg.RenewJitter = DefaultRenewJitter
	}
	if cfg.RenewAt <= 0 || cfg.RenewAt >= 1 || cfg.RenewJitter >= 1 ||
		cfg.RenewAt-cfg.RenewJitter/2 <= 0 || cfg.RenewAt+cfg.RenewJitter/2 >= 1 {
		return nil, fmt.Errorf("lifecycle: renewal at %.2f with jitter %.2f falls outside the lifetime", cfg.RenewAt, cfg.RenewJitter)
	}
	if cfg.ClaimTTL <= 0 {
		cfg.ClaimTTL = DefaultClaimTTL
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Managed{cfg: cfg}, nil
}

// Due reports whether c is due for managed renewal at now.
func (m *Managed) Due(c *store.Certificate, now time.Time) bool {
	return !now.Before(RenewalTime(c.NotBefore, c.NotAfter, m.cfg.RenewAt, m.cfg.RenewJitter, JitterOf(c.Serial)))
}

// RenewDue makes one pass: every managed certificate due at now is
// claimed, renewed for its public key and recorded with its successor;
// it returns how many were renewed. A failed renewal is recorded as a
// certificate.renewal_failed event and tried again once its claim is
// stale. Only an error of the store stops the pass.
func (m *Managed) RenewDue(ctx context.Context) (int, error) {
	now := m.cfg.Now().UTC()
	renewed := 0
	var after int64
	for {
		page, err := m.cfg.Store.ListRenewable(ctx, now, after, 500)
		if err != nil {
			return renewed, fmt.Errorf("managed renewal: %w", err)
		}
		for _, c := range page {
			if !m.Due(c, now) {
				continue
			}
			ok, err := m.renew(ctx, c, now)
			if err != nil {
				return renewed, err
			}
			if ok {
				renewed++
			}
		}
		if len(page) < 500 {
			return renewed, nil
		}
		after = page[len(page)-1].Seq
	}
}

// renew claims and renews one certificate; it reports whether it did.
func (m *Managed) renew(ctx context.Context, old *store.Certificate, now time.Time) (bool, error) {
	// A claim holds for ClaimTTL, but at most a twentieth of the lifetime
	// (and at least ten seconds), so that a failed renewal of a
	// short-lived certificate is tried again while it still can be.
	ttl := min(m.cfg.ClaimTTL, max(old.NotAfter.Sub(old.NotBefore)/20, 10*time.Second))
	won, err := m.cfg.Store.ClaimRenewal(ctx, old.CAID, old.Serial, now, now.Add(-ttl))
	if err != nil {
		return false, fmt.Errorf("managed renewal of %s: %w", old.Serial, err)
	}
	if !won {
		return false, nil // another node has it, or it failed recently
	}
	is, err := m.cfg.CA.Recertify(ctx, old)
	if err != nil {
		m.cfg.Logger.Warn("managed renewal failed", "serial", old.Serial, "ca", old.CAID, "retry_after", ttl, "err", err)
		key := fmt.Sprintf("renewal_failed:%s:%s:%d", old.CAID, old.Serial, now.UnixNano())
		if _, eerr := m.cfg.Events.Emit(ctx, TypeRenewalFailed, key, map[string]any{
			"serial": old.Serial, "ca_id": old.CAID, "subject": old.Subject, "not_after": old.NotAfter,
			"managed": true, "error": cleanText(err.Error(), 500),
		}); eerr != nil {
			return false, eerr
		}
		return false, nil
	}
	// The new certificate is recorded; from here on a failure to record
	// the link would let a later pass renew the old one again, so it is
	// an error of the pass (the claim still holds until it is stale).
	if err := m.cfg.Store.SetSuccessor(ctx, old.CAID, old.Serial, is.Record.Serial, now); err != nil {
		return false, fmt.Errorf("managed renewal of %s: record successor %s: %w", old.Serial, is.Record.Serial, err)
	}
	if _, err := m.cfg.Events.Emit(ctx, TypeRenewed, renewedKey(old.CAID, old.Serial), map[string]any{
		"serial": is.Record.Serial, "renewed_serial": old.Serial, "ca_id": is.Record.CAID, "subject": is.Record.Subject,
		"sans": is.Record.SANs, "not_after": is.Record.NotAfter, "managed": true,
	}); err != nil {
		return true, err
	}
	m.cfg.Logger.Info("managed certificate renewed", "serial", old.Serial, "successor", is.Record.Serial, "not_after", is.Record.NotAfter)
	return true, nil
}

// Run renews what is due every Interval until ctx ends. Several nodes may
// run it on one store: the claim makes each renewal happen once.
func (m *Managed) Run(ctx context.Context) error {
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		if _, err := m.RenewDue(ctx); err != nil && ctx.Err() == nil {
			m.cfg.Logger.Error("managed renewal pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
