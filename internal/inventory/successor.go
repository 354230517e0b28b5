package inventory

import (
	"context"
	"fmt"

	"github.com/trustgate/trustgate/internal/store"
)

// maxSuccessors bounds how far Successors follows renewals, so that a
// damaged inventory (a loop of successors) cannot hold a request.
const maxSuccessors = 1000

// Successors returns the serial of the certificate that renewed c
// (renewedBy, "" when none did) and the newest certificate of its line of
// renewals (latest, "" when c is the newest): what a consumer of a
// managed certificate fetches to pick up its renewal. The chain of
// successors may cross CA generations (see ca rotation).
func (s *Service) Successors(ctx context.Context, c *store.Certificate) (renewedBy, latest string, err error) {
	if c.CAID == "" {
		return "", "", nil
	}
	cur := c
	for i := 0; i < maxSuccessors; i++ {
		next, err := s.st.GetSuccessor(ctx, cur.CAID, cur.Serial)
		if err != nil {
			return "", "", fmt.Errorf("successor of %s: %w", cur.Serial, err)
		}
		if next == "" {
			break
		}
		if renewedBy == "" {
			renewedBy = next
		}
		latest = next
		nc, err := s.st.GetCertificate(ctx, next)
		if store.IsNotFound(err) {
			break
		}
		if err != nil {
			return "", "", fmt.Errorf("successor %s: %w", next, err)
		}
		cur = nc
	}
	return renewedBy, latest, nil
}
