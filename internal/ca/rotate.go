package ca

import (
	"context"
	"crypto/x509"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/store"
)

// RotationNotifier learns of a CA rotation, after it is recorded; the
// trust-store service satisfies it by adding the successor wherever the
// old CA is trusted. It returns what it changed, for the operator.
type RotationNotifier interface {
	CARotated(ctx context.Context, old, successor *store.CA) (changed []string, err error)
}

// RotatedFunc adapts a function to RotationNotifier.
type RotatedFunc func(ctx context.Context, old, successor *store.CA) ([]string, error)

// CARotated calls f.
func (f RotatedFunc) CARotated(ctx context.Context, old, successor *store.CA) ([]string, error) {
	return f(ctx, old, successor)
}

// RotateRequest asks for the successor of a CA.
type RotateRequest struct {
	// CA names the CA to rotate; when it was rotated before, its newest
	// generation is rotated.
	CA string
	// Name of the successor; default the first generation's name with
	// "-g<N>" (issuing, issuing-g2, issuing-g3, ...).
	Name string
	// Validity of the successor; default the old generation's lifetime,
	// cut to what the parent's validity allows.
	Validity string
}

// Rotation is the outcome of a rotation.
type Rotation struct {
	Old, New *store.CA
	// Generation is the successor's: 2 for the first rotation.
	Generation int
	// TrustStores are the trust stores the successor was added to.
	TrustStores []string
	// TrustStoreError says why adding the successor to some trust stores
	// failed; the rotation itself stands.
	TrustStoreError string
}

// maxGenerations bounds how far generations are followed, so that a
// damaged store (a loop of successors) cannot hold a request.
const maxGenerations = 1000

// genSuffix matches a generation suffix this service added to a name
// ("-g2") or a common name (" G2").
var (
	nameGen = regexp.MustCompile(`-g[0-9]+$`)
	cnGen   = regexp.MustCompile(` G[0-9]+$`)
)

// Rotate creates the successor of an intermediate CA: a new key, a
// certificate from the same parent with the same constraints (path
// length, name constraints, CRL partitions, key type) and a subject whose
// common name carries the generation ("Issuing CA G2"), so that relying
// parties and CRL lookups never confuse the two. From then on issuance
// through the old CA's name (and renewal of its certificates) goes to the
// successor (see issuer). The old CA keeps its name, key and state: its
// CRLs and OCSP answers go on until its certificates have expired. Trust
// stores that hold the old CA get the successor added (RotationNotifier).
//
// Roots are not rotated (a new root must be distributed out of band), nor
// CAs with an external parent (the parent must sign the successor's CSR).
func (s *Service) Rotate(ctx context.Context, r RotateRequest) (*Rotation, error) {
	first, err := s.GetCA(ctx, r.CA)
	if err != nil {
		return nil, err
	}
	head, gen, err := s.generations(ctx, first)
	if err != nil {
		return nil, err
	}
	switch {
	case head.ExternalParent:
		return nil, fault.New(fault.Invalid, "CA %q has an external parent: create a new CA with an external parent and have the parent sign its CSR", head.Name)
	case head.ParentID == "":
		return nil, fault.New(fault.Invalid, "CA %q is a root: roots are not rotated; create a new root and add it to trust stores", head.Name)
	case head.State == store.CAPending || len(head.CertDER) == 0:
		return nil, fault.New(fault.Conflict, "CA %q has no certificate yet", head.Name)
	}
	parent, err := s.cfg.Store.GetCAByID(ctx, head.ParentID)
	if err != nil {
		return nil, fmt.Errorf("rotate CA %q: parent: %w", head.Name, err)
	}
	oldCert, err := x509.ParseCertificate(head.CertDER)
	if err != nil {
		return nil, fmt.Errorf("rotate CA %q: parse certificate: %w", head.Name, err)
	}

	next := gen + 1
	origin, err := s.origin(ctx, head)
	if err != nil {
		return nil, err
	}
	name := r.Name
	if name == "" {
		name = nameGen.ReplaceAllString(origin.Name, "") + "-g" + strconv.Itoa(next)
		if ValidateName(name) != nil {
			return nil, fault.New(fault.Invalid, "the successor of CA %q would be named %q, which is too long; name it (name)", head.Name, name)
		}
	}
	subject := oldCert.Subject
	suffix := " G" + strconv.Itoa(next)
	cn := cnGen.ReplaceAllString(subject.CommonName, "")
	if len(cn)+len(suffix) > 64 {
		cn = cn[:64-len(suffix)]
	}
	subject.CommonName = cn + suffix
	subject.Names, subject.ExtraNames = nil, nil

	validity := r.Validity
	if validity == "" {
		now := s.cfg.Now()
		life := oldCert.NotAfter.Sub(oldCert.NotBefore) - s.cfg.Backdate
		if left := parent.NotAfter.Sub(now); life > left {
			life = left
		}
		if life < time.Hour {
			return nil, fault.New(fault.Conflict, "the parent CA %q expires at %s: too soon to rotate CA %q under it",
				parent.Name, parent.NotAfter.UTC().Format(time.RFC3339), head.Name)
		}
		validity = strconv.FormatInt(int64(life/time.Second), 10) + "s"
	}
	pathLen := head.PathLen
	created, err := s.CreateCA(ctx, CreateRequest{
		Name: name, Parent: parent.Name, KeyType: head.KeyType, Subject: pkixString(subject),
		Validity: validity, PathLen: &pathLen, CRLPartitions: head.CRLPartitions,
		NameConstraints: constraintsOf(oldCert),
	})
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.SetCASuccessor(ctx, head.ID, created.ID, s.cfg.Now().UTC()); err != nil {
		// Another rotation of the same CA won: this successor must not
		// issue, or the generations would fork.
		created.State = store.CADisabled
		created.UpdatedAt = s.cfg.Now().UTC()
		if uerr := s.cfg.Store.UpdateCA(ctx, created); uerr != nil {
			s.cfg.Logger.Error("could not disable the CA of a lost rotation", "ca", created.Name, "err", uerr)
		}
		if store.IsConflict(err) {
			return nil, fault.New(fault.Conflict, "CA %q was rotated concurrently; CA %q was created and disabled, delete or ignore it", head.Name, created.Name)
		}
		return nil, fmt.Errorf("rotate CA %q: record successor: %w", head.Name, err)
	}
	s.forget(head.ID)
	s.cfg.Logger.Info("CA rotated", "ca", head.Name, "successor", created.Name, "generation", next, "not_after", created.NotAfter)
	out := &Rotation{Old: head, New: created, Generation: next}
	if s.cfg.Rotations != nil {
		out.TrustStores, err = s.cfg.Rotations.CARotated(ctx, head, created)
		if err != nil {
			s.cfg.Logger.Error("the successor of a rotated CA could not be added to every trust store", "ca", head.Name, "successor", created.Name, "err", err)
			out.TrustStoreError = err.Error()
		}
	}
	return out, nil
}

// generations returns the newest generation of c (c itself when it was
// never rotated) and its generation number (1 for a CA that succeeds
// none).
func (s *Service) generations(ctx context.Context, c *store.CA) (*store.CA, int, error) {
	head, err := s.newest(ctx, c)
	if err != nil {
		return nil, 0, err
	}
	gen := 1
	for cur := head.ID; gen <= maxGenerations; gen++ {
		if cur, err = s.cfg.Store.GetCAPredecessor(ctx, cur); err != nil {
			return nil, 0, fmt.Errorf("generations of CA %q: %w", c.Name, err)
		}
		if cur == "" {
			break
		}
	}
	return head, gen, nil
}

// newest follows successors from c to the CA that issues in its stead.
func (s *Service) newest(ctx context.Context, c *store.CA) (*store.CA, error) {
	for range maxGenerations {
		next, err := s.cfg.Store.GetCASuccessor(ctx, c.ID)
		if err != nil {
			return nil, fmt.Errorf("successor of CA %q: %w", c.Name, err)
		}
		if next == "" {
			return c, nil
		}
		if c, err = s.cfg.Store.GetCAByID(ctx, next); err != nil {
			return nil, fmt.Errorf("successor of CA: %w", err)
		}
	}
	return nil, fmt.Errorf("CA %q: more than %d generations", c.Name, maxGenerations)
}

// origin returns the first generation of c.
func (s *Service) origin(ctx context.Context, c *store.CA) (*store.CA, error) {
	for range maxGenerations {
		prev, err := s.cfg.Store.GetCAPredecessor(ctx, c.ID)
		if err != nil {
			return nil, fmt.Errorf("predecessor of CA %q: %w", c.Name, err)
		}
		if prev == "" {
			return c, nil
		}
		if c, err = s.cfg.Store.GetCAByID(ctx, prev); err != nil {
			return nil, fmt.Errorf("predecessor of CA: %w", err)
		}
	}
	return nil, fmt.Errorf("CA %q: more than %d generations", c.Name, maxGenerations)
}

// Generations returns the CA that c succeeds and the one that succeeds
// it, by name ("" for none), for display.
func (s *Service) Generations(ctx context.Context, c *store.CA) (predecessor, successor string, err error) {
	for _, x := range []struct {
		get func(context.Context, string) (string, error)
		out *string
	}{{s.cfg.Store.GetCAPredecessor, &predecessor}, {s.cfg.Store.GetCASuccessor, &successor}} {
		id, err := x.get(ctx, c.ID)
		if err != nil || id == "" {
			if err != nil {
				return "", "", fmt.Errorf("generations of CA %q: %w", c.Name, err)
			}
			continue
		}
		o, err := s.cfg.Store.GetCAByID(ctx, id)
		if err != nil {
			return "", "", fmt.Errorf("generations of CA %q: %w", c.Name, err)
		}
		*x.out = o.Name
	}
	return predecessor, successor, nil
}

// constraintsOf returns the name constraints of a CA certificate as
// CreateRequest takes them, so that a successor is confined as its
// predecessor was.
func constraintsOf(c *x509.Certificate) pki.NameConstraintsInput {
	var in pki.NameConstraintsInput
	in.PermittedDNS = append(in.PermittedDNS, c.PermittedDNSDomains...)
	in.ExcludedDNS = append(in.ExcludedDNS, c.ExcludedDNSDomains...)
	for _, n := range c.PermittedIPRanges {
		in.PermittedIP = append(in.PermittedIP, n.String())
	}
	for _, n := range c.ExcludedIPRanges {
		in.ExcludedIP = append(in.ExcludedIP, n.String())
	}
	in.PermittedURI = append(in.PermittedURI, c.PermittedURIDomains...)
	in.ExcludedURI = append(in.ExcludedURI, c.ExcludedURIDomains...)
	in.PermittedEmail = append(in.PermittedEmail, c.PermittedEmailAddresses...)
	in.ExcludedEmail = append(in.ExcludedEmail, c.ExcludedEmailAddresses...)
	return in
}
