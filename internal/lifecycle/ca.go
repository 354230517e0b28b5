package lifecycle

import (
	"context"
	"fmt"
	"time"

	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/store"
)

// scanCAs records a ca.expiring event for each CA whose own certificate
// crossed an expiry threshold (the thresholds of certificates), once per
// CA and threshold. A CA that was rotated is skipped: its successor
// issues, and the old one's expiry is the planned end of its generation.
// Pending CAs have no certificate yet; offline roots are included, since
// their expiry ends the whole hierarchy.
func (s *Service) scanCAs(ctx context.Context, now time.Time) error {
	cas, err := s.cfg.Store.ListCAs(ctx)
	if err != nil {
		return fmt.Errorf("CA expiry scan: %w", err)
	}
	for _, c := range cas {
		if len(c.CertDER) == 0 || c.State == store.CAPending {
			continue
		}
		t, ok := Crossed(s.cfg.Thresholds, c.NotBefore, c.NotAfter, now)
		if !ok {
			continue
		}
		if succ, err := s.cfg.Store.GetCASuccessor(ctx, c.ID); err != nil {
			return fmt.Errorf("CA expiry scan: %w", err)
		} else if succ != "" {
			continue
		}
		key := "ca-expiring:" + c.ID + ":" + pki.FormatDuration(t)
		if _, err := s.Emit(ctx, TypeCAExpiring, key, map[string]any{
			"ca_id": c.ID, "ca": c.Name, "subject": c.Subject, "state": string(c.State), "root": c.ParentID == "" && !c.ExternalParent,
			"not_after": c.NotAfter, "threshold": pki.FormatDuration(t),
		}); err != nil {
			return err
		}
	}
	return nil
}
