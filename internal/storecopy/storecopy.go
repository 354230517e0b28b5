// Package storecopy copies one Trustgate store into another, empty one:
// moving up from SQLite to PostgreSQL. Everything is copied through the
// store contract, sealed CA keys as they are (they stay sealed to the same
// master key), and the result is checked: the counts on both sides and the
// audit chain, re-linked on the target, must match the source record for
// record.
package storecopy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/trustgate/trustgate/internal/audit"
	"github.com/trustgate/trustgate/internal/store"
)

// Progress is told what is being copied and how many of it are done.
type Progress func(what string, done int64)

// Report counts what was copied.
type Report struct {
	Meta, CAs, Policies, Principals, Tokens, BootstrapTokens, Certificates, CRLNumbers, TrustStores, Events, AuditRecords int64
	// CASuccessions and Renewals are CA rotations and certificate
	// renewals (claims and successors).
	CASuccessions, Renewals int64
	// AuditHead is the hash of the last audit record, hex, equal on both sides.
	AuditHead string
}

// ErrTargetNotEmpty is returned when the target store already holds data.
var ErrTargetNotEmpty = errors.New("the target store is not empty; copy only into a new database")

// Copy copies everything in src into dst. It refuses a dst that holds
// anything and a src whose audit chain is broken (a copy would hide the
// break), and ends by checking counts and the audit chain on dst.
func Copy(ctx context.Context, src, dst store.Store, progress Progress) (*Report, error) {
	if progress == nil {
		progress = func(string, int64) {}
	}
	if err := checkEmpty(ctx, dst); err != nil {
		return nil, err
	}
	srcAudit, err := audit.Verify(ctx, src)
	if err != nil {
		return nil, err
	}
	if !srcAudit.OK {
		return nil, fmt.Errorf("the source audit log is broken at record %d (%s); refusing to copy it", srcAudit.Seq, srcAudit.Problem)
	}
	rep := &Report{}
	steps := []struct {
		name string
		fn   func(context.Context, store.Store, store.Store, *Report, Progress) error
	}{
		{"meta", copyMeta}, {"CAs", copyCAs}, {"policies", copyPolicies}, {"principals", copyPrincipals},
		{"tokens", copyTokens}, {"certificates", copyCertificates}, {"CRL numbers", copyCRLNumbers},
		{"trust stores", copyTrustStores}, {"bootstrap tokens", copyBootstrapTokens}, {"events", copyEvents},
		{"CA rotations", copyCASuccessions}, {"renewals", copyRenewals},
		{"audit records", copyAudit},
	}
	for _, s := range steps {
		if err := s.fn(ctx, src, dst, rep, progress); err != nil {
			return rep, fmt.Errorf("copy %s: %w", s.name, err)
		}
	}
	if err := check(ctx, src, dst, rep, srcAudit); err != nil {
		return rep, err
	}
	return rep, nil
}

func checkEmpty(ctx context.Context, st store.Store) error {
	var held []string
	add := func(n int, what string, err error) error {
		if err != nil {
			return fmt.Errorf("inspect target: %w", err)
		}
		if n > 0 {
			held = append(held, fmt.Sprintf("%d %s", n, what))
		}
		return nil
	}
	cas, err := st.ListCAs(ctx)
	if err := add(len(cas), "CAs", err); err != nil {
		return err
	}
	ps, err := st.ListPrincipals(ctx)
	if err := add(len(ps), "principals", err); err != nil {
		return err
	}
	pols, err := st.ListPolicies(ctx)
	if err := add(len(pols), "policies", err); err != nil {
		return err
	}
	toks, err := st.ListTokens(ctx, "")
	if err := add(len(toks), "tokens", err); err != nil {
		return err
	}
	tss, err := st.ListTrustStores(ctx)
	if err := add(len(tss), "trust stores", err); err != nil {
		return err
	}
	recs, err := st.ListAudit(ctx, store.AuditFilter{Limit: 1})
	if err := add(len(recs), "audit records", err); err != nil {
		return err
	}
	meta, err := st.ListMeta(ctx)
	if err := add(len(meta), "meta values", err); err != nil {
		return err
	}
	certs, err := st.ListCertificates(ctx, store.CertFilter{Limit: 1})
	if err := add(len(certs), "certificates", err); err != nil {
		return err
	}
	if len(held) > 0 {
		return fmt.Errorf("%w (it holds %v)", ErrTargetNotEmpty, held)
	}
	return nil
}

func copyMeta(ctx context.Context, src, dst store.Store, rep *Report, _ Progress) error {
	m, err := src.ListMeta(ctx)
	if err != nil {
		return err
	}
	for k, v := range m {
		if err := dst.PutMeta(ctx, k, v); err != nil {
			return err
		}
		rep.Meta++
	}
	return nil
}

func copyCAs(ctx context.Context, src, dst store.Store, rep *Report, _ Progress) error {
	cas, err := src.ListCAs(ctx)
	if err != nil {
		return err
	}
	// In creation order, so a parent is always there before its children.
	for _, c := range cas {
		if err := dst.CreateCA(ctx, c); err != nil {
			return fmt.Errorf("CA %q: %w", c.Name, err)
		}
		rep.CAs++
	}
	return nil
}

func copyPolicies(ctx context.Context, src, dst store.Store, rep *Report, _ Progress) error {
	ps, err := src.ListPolicies(ctx)
	if err != nil {
		return err
	}
	for _, p := range ps {
		if err := dst.PutPolicy(ctx, p); err != nil {
			return fmt.Errorf("policy %q: %w", p.Name, err)
		}
		rep.Policies++
	}
	return nil
}

func copyPrincipals(ctx context.Context, src, dst store.Store, rep *Report, _ Progress) error {
	ps, err := src.ListPrincipals(ctx)
	if err != nil {
		return err
	}
	for _, p := range ps {
		if err := dst.CreatePrincipal(ctx, p); err != nil {
			return fmt.Errorf("principal %q: %w", p.Name, err)
		}
		rep.Principals++
	}
	return nil
}

func copyTokens(ctx context.Context, src, dst store.Store, rep *Report, _ Progress) error {
	ts, err := src.ListTokens(ctx, "")
	if err != nil {
		return err
	}
	for _, t := range ts {
		if err := dst.CreateToken(ctx, t); err != nil {
			return fmt.Errorf("token %q: %w", t.ID, err)
		}
		rep.Tokens++
	}
	return nil
}

// copyWorkers is how many certificate inserts are in flight at once: the
// target commits them in groups, so a sequential copy would pay one
// commit per certificate.
const copyWorkers = 32

func copyCertificates(ctx context.Context, src, dst store.Store, rep *Report, progress Progress) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan *store.Certificate, copyWorkers*4)
	var wg sync.WaitGroup
	var done atomic.Int64
	for range copyWorkers {
		wg.Go(func() {
			for c := range work {
				if err := dst.InsertCertificate(ctx, c); err != nil {
					cancel(fmt.Errorf("certificate %s of issuer %s: %w", c.Serial, c.IssuerKey, err))
					return
				}
				if n := done.Add(1); n%10000 == 0 {
					progress("certificates", n)
				}
			}
		})
	}
	var after int64
	var readErr error
read:
	for {
		page, err := src.ListCertificates(ctx, store.CertFilter{After: after, Limit: 1000})
		if err != nil {
			readErr = err
			break
		}
		if len(page) == 0 {
			break
		}
		// Read before the records go to the workers: the target's
		// InsertCertificate sets each one's Seq to its own.
		after = page[len(page)-1].Seq
		for _, c := range page {
			select {
			case work <- c:
			case <-ctx.Done():
				break read
			}
		}
	}
	close(work)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	if readErr != nil {
		return readErr
	}
	rep.Certificates = done.Load()
	progress("certificates", rep.Certificates)
	return nil
}

func copyCRLNumbers(ctx context.Context, src, dst store.Store, rep *Report, _ Progress) error {
	ns, err := src.ListCRLNumbers(ctx)
	if err != nil {
		return err
	}
	for _, n := range ns {
		if err := dst.RaiseCRLNumber(ctx, n.CAID, n.Partition, n.Number); err != nil {
			return err
		}
		rep.CRLNumbers++
	}
	return nil
}

func copyTrustStores(ctx context.Context, src, dst store.Store, rep *Report, _ Progress) error {
	list, err := src.ListTrustStores(ctx)
	if err != nil {
		return err
	}
	for _, head := range list {
		ts, err := src.GetTrustStore(ctx, head.Name) // with uploaded CRLs' DER
		if err != nil {
			return err
		}
		version := ts.Version
		if err := dst.CreateTrustStore(ctx, ts); err != nil {
			return fmt.Errorf("trust store %q: %w", ts.Name, err)
		}
		if err := dst.RaiseTrustStoreVersion(ctx, ts.ID, version); err != nil {
			return fmt.Errorf("trust store %q: %w", ts.Name, err)
		}
		rep.TrustStores++
	}
	return nil
}

func copyBootstrapTokens(ctx context.Context, src, dst store.Store, rep *Report, _ Progress) error {
	ts, err := src.ListBootstrapTokens(ctx)
	if err != nil {
		return err
	}
	for _, t := range ts {
		if err := dst.CreateBootstrapToken(ctx, t); err != nil {
			return fmt.Errorf("bootstrap token %q: %w", t.ID, err)
		}
		rep.BootstrapTokens++
	}
	return nil
}

// copyEvents copies the outbox with each delivery's state, so nothing
// pending is lost and nothing delivered is sent again.
func copyEvents(ctx context.Context, src, dst store.Store, rep *Report, progress Progress) error {
	after := ""
	for {
		page, err := src.ListEvents(ctx, after, 1000)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		for _, e := range page {
			if err := dst.RestoreEvent(ctx, e); err != nil {
				return fmt.Errorf("event %q: %w", e.Event.ID, err)
			}
			rep.Events++
		}
		after = page[len(page)-1].Event.ID
		progress("events", rep.Events)
	}
}

// copyCASuccessions copies which CA took over from which, so that
// issuance through a rotated CA's name keeps going to its newest generation.
func copyCASuccessions(ctx context.Context, src, dst store.Store, rep *Report, _ Progress) error {
	ss, err := src.ListCASuccessions(ctx)
	if err != nil {
		return err
	}
	for _, c := range ss {
		if err := dst.SetCASuccessor(ctx, c.CAID, c.SuccessorID, c.RotatedAt); err != nil {
			return fmt.Errorf("rotation of CA %q: %w", c.CAID, err)
		}
		rep.CASuccessions++
	}
	return nil
}

// copyRenewals copies renewal claims and successors, so that managed
// renewal does not renew again what it renewed.
func copyRenewals(ctx context.Context, src, dst store.Store, rep *Report, progress Progress) error {
	return src.ListRenewals(ctx, func(r store.Renewal) error {
		if err := dst.RestoreRenewal(ctx, r); err != nil {
			return fmt.Errorf("renewal of certificate %s: %w", r.Serial, err)
		}
		rep.Renewals++
		if rep.Renewals%1000 == 0 {
			progress("renewals", rep.Renewals)
		}
		return nil
	})
}

// copyAudit appends the source's records in order. The target chains each
// one afresh; as the target starts empty and the fields are the same, each
// hash must come out equal to the source's, which is checked record by
// record.
func copyAudit(ctx context.Context, src, dst store.Store, rep *Report, progress Progress) error {
	var after int64
	for {
		page, err := src.ListAudit(ctx, store.AuditFilter{After: after, Limit: 5000})
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		for _, r := range page {
			want := bytes.Clone(r.Hash)
			if err := dst.AppendAudit(ctx, r); err != nil {
				return fmt.Errorf("record %d: %w", r.Seq, err)
			}
			if !bytes.Equal(r.Hash, want) {
				return fmt.Errorf("record %d chains to a different hash on the target", r.Seq)
			}
			rep.AuditRecords++
		}
		after = page[len(page)-1].Seq
		progress("audit records", rep.AuditRecords)
	}
}

// check compares the two stores after the copy.
func check(ctx context.Context, src, dst store.Store, rep *Report, srcAudit audit.Result) error {
	cas, err := src.ListCAs(ctx)
	if err != nil {
		return err
	}
	ids := []string{""} // imported certificates of outside issuers
	for _, c := range cas {
		ids = append(ids, c.ID)
	}
	for _, id := range ids {
		a, err1 := src.CountCertificates(ctx, id)
		b, err2 := dst.CountCertificates(ctx, id)
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("count certificates: %w", err)
		}
		if a != b {
			return fmt.Errorf("check: CA %q has %d certificates in the source and %d in the target", id, a, b)
		}
	}
	for _, c := range []struct {
		what string
		n    func(store.Store) (int, error)
	}{
		{"CAs", func(s store.Store) (int, error) { l, err := s.ListCAs(ctx); return len(l), err }},
		{"policies", func(s store.Store) (int, error) { l, err := s.ListPolicies(ctx); return len(l), err }},
		{"principals", func(s store.Store) (int, error) { l, err := s.ListPrincipals(ctx); return len(l), err }},
		{"tokens", func(s store.Store) (int, error) { l, err := s.ListTokens(ctx, ""); return len(l), err }},
		{"trust stores", func(s store.Store) (int, error) { l, err := s.ListTrustStores(ctx); return len(l), err }},
		{"CRL numbers", func(s store.Store) (int, error) { l, err := s.ListCRLNumbers(ctx); return len(l), err }},
		{"meta values", func(s store.Store) (int, error) { m, err := s.ListMeta(ctx); return len(m), err }},
		{"bootstrap tokens", func(s store.Store) (int, error) { l, err := s.ListBootstrapTokens(ctx); return len(l), err }},
		{"CA rotations", func(s store.Store) (int, error) { l, err := s.ListCASuccessions(ctx); return len(l), err }},
		{"renewals", func(s store.Store) (int, error) {
			n := 0
			err := s.ListRenewals(ctx, func(store.Renewal) error { n++; return nil })
			return n, err
		}},
	} {
		a, err1 := c.n(src)
		b, err2 := c.n(dst)
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("count %s: %w", c.what, err)
		}
		if a != b {
			return fmt.Errorf("check: %d %s in the source, %d in the target", a, c.what, b)
		}
	}
	dstAudit, err := audit.Verify(ctx, dst)
	if err != nil {
		return err
	}
	if !dstAudit.OK || dstAudit.Records != srcAudit.Records || dstAudit.HeadHash != srcAudit.HeadHash {
		return fmt.Errorf("check: the target's audit chain (%d records, head %s, %s) differs from the source's (%d records, head %s)",
			dstAudit.Records, dstAudit.HeadHash, dstAudit.Problem, srcAudit.Records, srcAudit.HeadHash)
	}
	rep.AuditHead = dstAudit.HeadHash
	return nil
}
