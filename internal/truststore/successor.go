package truststore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/trustgate/trustgate/internal/store"
)

// CARotated adds the CA successor to every trust store that holds old,
// each in its own change (a new version, which gateways follow): a CA
// rotation must not leave certificates of the new generation untrusted
// where the old generation's are trusted. Stores that already hold the
// successor are left alone, so a second call changes nothing. The old CA
// stays: its certificates are valid until they expire. It returns the
// names of the stores it changed; on error, those changed before it.
func (s *Service) CARotated(ctx context.Context, old, successor *store.CA) ([]string, error) {
	all, err := s.cfg.Store.ListTrustStores(ctx)
	if err != nil {
		return nil, fmt.Errorf("trust stores holding CA %q: %w", old.Name, err)
	}
	var changed []string
	var errs []error
	for _, ts := range all {
		if !holdsCA(ts, old.ID) || holdsCA(ts, successor.ID) {
			continue
		}
		_, err := s.change(ctx, ts.Name, "add CA "+successor.Name+" (successor of "+old.Name+")",
			func(cur *store.TrustStore, now time.Time) (store.TrustStoreChange, error) {
				if !holdsCA(cur, old.ID) || holdsCA(cur, successor.ID) {
					return store.TrustStoreChange{}, errNothingToDo
				}
				// The successor may exceed MaxCAs by one: refusing it
				// would break trust in every certificate it issues.
				return store.TrustStoreChange{AddCAs: []store.TrustStoreCA{{CAID: successor.ID, AddedAt: now}}}, nil
			})
		switch {
		case errors.Is(err, errNothingToDo):
		case err != nil:
			errs = append(errs, fmt.Errorf("trust store %q: %w", ts.Name, err))
		default:
			changed = append(changed, ts.Name)
		}
	}
	return changed, errors.Join(errs...)
}

// errNothingToDo ends a change that another one made unnecessary.
var errNothingToDo = errors.New("nothing to do")

func holdsCA(ts *store.TrustStore, caID string) bool {
	return slices.ContainsFunc(ts.CAs, func(m store.TrustStoreCA) bool { return m.CAID == caID })
}
