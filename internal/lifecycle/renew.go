package lifecycle

import (
	"context"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/trustgate/trustgate/internal/ca"
	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/store"
)

// CARenewer is what Renewer needs from the CA service.
type CARenewer interface {
	VerifyPeer(ctx context.Context, chain []*x509.Certificate) (*store.Certificate, error)
	Renew(ctx context.Context, old *store.Certificate, csr []byte) (*ca.Issued, error)
}

// Renewer renews through the CA service and records the outcome as an
// event: certificate.renewed (which also stops expiry events for the
// renewed certificate) or certificate.renewal_failed. A failure to record
// the event is logged; it does not undo or fail the renewal, whose
// certificate is already recorded.
type Renewer struct {
	CA     CARenewer
	Events *Service
	// Successors, when set, records the new certificate as the renewed
	// one's successor, so that the inventory shows what replaced it and
	// managed renewal does not renew it a second time.
	Successors interface {
		SetSuccessor(ctx context.Context, caID, serial, successor string, at time.Time) error
	}
}

// VerifyPeer is the CA service's.
func (r *Renewer) VerifyPeer(ctx context.Context, chain []*x509.Certificate) (*store.Certificate, error) {
	return r.CA.VerifyPeer(ctx, chain)
}

// Renew renews old for the key of csr and records the event.
func (r *Renewer) Renew(ctx context.Context, old *store.Certificate, csr []byte) (*ca.Issued, error) {
	is, err := r.CA.Renew(ctx, old, csr)
	if err != nil {
		// A bad CSR is the caller's mistake, not a failure of the
		// certificate's lifecycle.
		if !fault.Is(err, fault.Invalid) && !fault.Is(err, fault.TooLarge) {
			key := fmt.Sprintf("renewal_failed:%s:%s:%d", old.CAID, old.Serial, r.Events.cfg.Now().UnixNano())
			if _, eerr := r.Events.Emit(ctx, TypeRenewalFailed, key, map[string]any{
				"serial": old.Serial, "ca_id": old.CAID, "subject": old.Subject, "not_after": old.NotAfter, "error": cleanText(err.Error(), 500),
			}); eerr != nil {
				r.Events.cfg.Logger.Error("could not record a renewal failure", "serial", old.Serial, "err", eerr)
			}
		}
		return nil, err
	}
	if r.Successors != nil {
		// A holder may renew one certificate twice (an answer lost on
		// the way); the first successor stays the recorded one.
		if err := r.Successors.SetSuccessor(ctx, old.CAID, old.Serial, is.Record.Serial, r.Events.cfg.Now().UTC()); err != nil {
			r.Events.cfg.Logger.Warn("could not record the successor of a renewed certificate", "serial", old.Serial, "successor", is.Record.Serial, "err", err)
		}
	}
	if _, err := r.Events.Emit(ctx, TypeRenewed, renewedKey(old.CAID, old.Serial), map[string]any{
		"serial": is.Record.Serial, "renewed_serial": old.Serial, "ca_id": old.CAID, "subject": is.Record.Subject,
		"sans": is.Record.SANs, "not_after": is.Record.NotAfter,
	}); err != nil {
		r.Events.cfg.Logger.Error("could not record a renewal", "serial", is.Record.Serial, "err", err)
	}
	return is, nil
}
