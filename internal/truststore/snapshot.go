package truststore

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/store"
)

// snapBase is the part of a snapshot that depends only on the trust
// store's version: kept between calls, so that a gateway polling an
// unchanged store costs one small read and no parsing.
type snapBase struct {
	id      string
	version int64
	ours    []ourMember // CAs of this Trustgate, in store order
	anchors [][]byte    // every trust anchor, ours first
	uploads [][]byte
	urls    []string
}

// ourMember is a CA of this Trustgate in the store; keyID is its subject
// key identifier in lower-case hex, the key of HeldCRLs.
type ourMember struct{ id, name, keyID string }

// crlSum is the hash of the CRL a CA had last time, known by the identity
// of its slice (see CRLSource).
type crlSum struct {
	first *byte
	n     int
	sum   [sha256.Size]byte
}

// Snapshot returns what a gateway enforces for the trust store named name:
// its trust anchors, the current CRL of each of its CAs of this Trustgate,
// its uploaded CRLs and its CRL URLs, with an ETag that changes exactly
// when one of those does. A store without a CA is a Conflict: a gateway
// cannot enforce it. A CRL of ours that cannot be had is Unavailable,
// except for an offline CA with none published, which is left out with a
// warning (nothing it could sign has been revoked since it went offline).
// The slices of the result may be shared with later calls and must not be
// modified.
//
// Snapshot is for comparing ETags; what is answered to a gateway is
// SnapshotSince's.
func (s *Service) Snapshot(ctx context.Context, name string) (*apiv1.TrustStoreSnapshot, error) {
	return s.snapshot(ctx, name, nil, false)
}

// SnapshotSince is Snapshot for a gateway that holds the full CRLs held
// of some CAs: for each CA of this Trustgate named there, the snapshot
// carries, instead of the full CRL, a delta CRL from the one held (in
// DeltaCRLs) when the CRL source can make one, or the CA's key identifier
// in UnchangedCRLs when the CRL held is current. Both need the held CRL's
// digest to match, not only its number: an entry without a digest, or
// with another one, gets the full CRL (unless it names a higher number
// than the current one, which the gateway keeps). The ETag is the same as
// Snapshot's: it names the state the answer brings the gateway to, which
// does not depend on held. It counts the CRLs answered, by form.
func (s *Service) SnapshotSince(ctx context.Context, name string, held apiv1.HeldCRLs) (*apiv1.TrustStoreSnapshot, error) {
	return s.snapshot(ctx, name, held, true)
}

func (s *Service) snapshot(ctx context.Context, name string, held apiv1.HeldCRLs, count bool) (*apiv1.TrustStoreSnapshot, error) {
	if err := ValidateName(name); err != nil {
		return nil, fault.New(fault.NotFound, "trust store %q does not exist", name)
	}
	id, version, err := s.cfg.Store.GetTrustStoreVersion(ctx, name)
	if store.IsNotFound(err) {
		return nil, fault.New(fault.NotFound, "trust store %q does not exist", name)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot of trust store %q: %w", name, err)
	}
	base, err := s.snapBase(ctx, name, id, version)
	if err != nil {
		return nil, err
	}
	if len(base.anchors) == 0 {
		return nil, fault.New(fault.Conflict, "trust store %q has no CA yet: add one before a gateway uses it", name)
	}
	h := sha256.New()
	h.Write([]byte("trustgate-snapshot-v1\x00" + base.id + "\x00"))
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(base.version)))
	snap := &apiv1.TrustStoreSnapshot{
		Name: name, Version: base.version, CACertificates: base.anchors,
		CRLs: make([][]byte, 0, len(base.ours)+len(base.uploads)), CRLURLs: base.urls,
		HaveDigests: true,
	}
	deltas, _ := s.cfg.CRLs.(DeltaCRLSource)
	var forms [numCRLForms]int
	for _, o := range base.ours {
		h.Write([]byte("\x00" + o.id + "\x00"))
		var der, delta []byte
		var number int64
		hc, isHeld := held[o.keyID]
		if isHeld && deltas != nil && o.keyID != "" {
			var digest []byte
			if !hc.Digest.IsZero() {
				digest = hc.Digest[:]
			}
			der, number, delta, err = deltas.CRLSince(ctx, o.id, hc.Number, digest)
			if err == nil && len(der) == 0 {
				err = fmt.Errorf("empty CRL")
			}
		} else {
			der, err = s.currentCRL(ctx, o.id)
		}
		if err != nil {
			c, gerr := s.cfg.Store.GetCAByID(ctx, o.id)
			if gerr == nil && c.State == store.CAOffline {
				snap.Warnings = append(snap.Warnings, fmt.Sprintf("CA %q is offline and has no CRL published: the certificates it signed are not checked for revocation", o.name))
				h.Write([]byte("none"))
				continue
			}
			return nil, fault.Wrap(fault.Unavailable, err, "snapshot of trust store %q: the CRL of CA %q is not available", name, o.name)
		}
		sum := s.crlSum(o.id, der)
		h.Write(sum[:])
		switch {
		case isHeld && number > 0 && (number < hc.Number ||
			number == hc.Number && !hc.Digest.IsZero() && apiv1.CRLDigest(sum[:apiv1.CRLDigestSize]) == hc.Digest):
			// Current (the same number and the same bytes), or older than
			// what the gateway holds (another node of the control plane
			// published a newer one, which it never trades for an older
			// one): it keeps that. The same number with another digest,
			// or without one, is another CRL, or may be: the full CRL.
			snap.UnchangedCRLs = append(snap.UnchangedCRLs, o.keyID)
			forms[formUnchanged]++
		case isHeld && number == hc.Number && !hc.Digest.IsZero() && delta == nil:
			// Two CRLs under one number: RFC 5280 §5.2.3 wants numbers
			// that only increase, which a store restored from a backup
			// breaks until its counters are moved forward.
			if s.firstReuse(o.id, number) {
				s.cfg.Logger.Warn("truststore: a gateway holds another CRL under the current CRL number of a CA; the full CRL is sent",
					"truststore", name, "ca", o.name, "crl_number", number)
			}
			snap.CRLs = append(snap.CRLs, der)
			forms[formFull]++
		case delta != nil:
			snap.DeltaCRLs = append(snap.DeltaCRLs, delta)
			forms[formDelta]++
		default:
			snap.CRLs = append(snap.CRLs, der)
			forms[formFull]++
		}
	}
	if count {
		for form, n := range forms {
			s.served[form].Add(float64(n))
		}
	}
	snap.CRLs = append(snap.CRLs, base.uploads...)
	snap.ETag = `"` + hex.EncodeToString(h.Sum(nil)[:16]) + `"`
	return snap, nil
}

func (s *Service) currentCRL(ctx context.Context, caID string) ([]byte, error) {
	if s.cfg.CRLs == nil {
		return nil, fmt.Errorf("truststore: no CRL source configured")
	}
	der, err := s.cfg.CRLs.CurrentCRL(ctx, caID)
	if err == nil && len(der) == 0 {
		err = fmt.Errorf("empty CRL")
	}
	return der, err
}

// crlSum returns the SHA-256 of der, the current CRL of caID, hashing it
// only when it is not the CRL seen last time.
func (s *Service) crlSum(caID string, der []byte) [sha256.Size]byte {
	s.mu.Lock()
	c, ok := s.crlSums[caID]
	s.mu.Unlock()
	if ok && c.first == &der[0] && c.n == len(der) {
		return c.sum
	}
	c = crlSum{first: &der[0], n: len(der), sum: sha256.Sum256(der)}
	s.mu.Lock()
	s.crlSums[caID] = c
	s.mu.Unlock()
	return c.sum
}

// snapBase returns the version-dependent part of the snapshot of the trust
// store (id, version), from the cache or read now.
func (s *Service) snapBase(ctx context.Context, name, id string, version int64) (*snapBase, error) {
	s.mu.Lock()
	b := s.snaps[name]
	s.mu.Unlock()
	if b != nil && b.id == id && b.version == version {
		return b, nil
	}
	ts, err := s.get(ctx, name)
	if err != nil {
		return nil, err
	}
	b = &snapBase{id: ts.ID, version: ts.Version, urls: []string{}}
	for _, m := range ts.CAs {
		c, err := s.cfg.Store.GetCAByID(ctx, m.CAID)
		if err != nil {
			return nil, fmt.Errorf("snapshot of trust store %q: CA %s: %w", name, m.CAID, err)
		}
		m := ourMember{id: c.ID, name: c.Name}
		if cert, err := x509.ParseCertificate(c.CertDER); err == nil {
			m.keyID = hex.EncodeToString(cert.SubjectKeyId)
		}
		b.ours = append(b.ours, m)
		b.anchors = append(b.anchors, c.CertDER)
	}
	for _, m := range ts.Certs {
		b.anchors = append(b.anchors, m.DER)
	}
	for _, c := range ts.CRLs {
		if c.URL != "" {
			b.urls = append(b.urls, c.URL)
		} else {
			b.uploads = append(b.uploads, c.DER)
		}
	}
	s.mu.Lock()
	s.snaps[name] = b
	s.mu.Unlock()
	return b, nil
}

// firstReuse reports whether number is the first CRL number of the CA
// caID found held with other contents since the last one: the warning
// says so once per number, whoever asks and however often.
func (s *Service) firstReuse(caID string, number int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reusedWarned == nil {
		s.reusedWarned = map[string]int64{}
	}
	if s.reusedWarned[caID] == number {
		return false
	}
	s.reusedWarned[caID] = number
	return true
}
