package revocation

import (
	"context"
	"fmt"
)

// catchUp has every CA published afresh whose CRL number in the store is
// above the number of the CRL this node serves for one of its scopes,
// and above the number a previous catchUp saw: another node published a
// CRL after a change that this node may not have been told of. It costs
// one read of one row per CRL scope, whatever the number of revocations;
// only a CA found behind is rebuilt (its list read, its cached answers
// re-checked), and then only once per number another node took.
//
// A CA this node has never served has nothing stale to serve: its CRLs
// are built from the store when first asked for.
//
// The comparison is sound because CRL numbers and lists move together
// (store.Store.ReadCRL): a CRL numbered n lists nothing that a list read
// after n was taken lacks, so once this node has read its lists again
// after seeing n in the store, it serves everything CRL n served.
func (s *Service) catchUp(ctx context.Context) error {
	nums, err := s.cfg.Store.ListCRLNumbers(ctx)
	if err != nil {
		return fmt.Errorf("list CRL numbers: %w", err)
	}
	behind := map[string]bool{}
	for _, n := range nums {
		v, ok := s.byID.Load(n.CAID)
		if !ok {
			continue
		}
		a := v.(*authority)
		sc := a.scopeByNumberKey(n.Partition)
		if sc == nil {
			continue
		}
		known := sc.seen.Load()
		if c := sc.cur.Load(); c != nil {
			known = max(known, c.number)
		}
		if n.Number <= known {
			continue
		}
		// Seen before the rebuild is queued: the rebuild reads the list
		// after this, and a failed one stays queued until it succeeds.
		sc.seen.Store(n.Number)
		behind[a.id] = true
	}
	if len(behind) == 0 {
		return nil
	}
	s.log.Debug("revocation: another node published CRLs past this one's; publishing afresh", "cas", len(behind))
	for id := range behind {
		// Rebuilt if its lists changed, with every cached answer
		// re-checked; no propagation time is recorded, as nobody here
		// knows when the change was made.
		s.enqueue(id, func(p *pendingChange) {
			p.recheck = true
			p.addSerial("")
		})
	}
	return nil
}

// scopeByNumberKey returns the scope of a whose CRL numbers the store keeps
// under key, or nil when a publishes no such scope (partition CRLs without
// a BaseURL).
func (a *authority) scopeByNumberKey(key int) *scope {
	if a.scopes[0].numberKey == key {
		return a.scopes[0]
	}
	if i := 1 + key; key >= 0 && i < len(a.scopes) && a.scopes[i].numberKey == key {
		return a.scopes[i]
	}
	return nil
}
