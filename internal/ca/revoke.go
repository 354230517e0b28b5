package ca

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"fmt"
	"math/big"
	"time"

	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/store"
)

// RevocationNotifier learns that a certificate of a CA changed status, so
// that CRLs and OCSP answers follow; the revocation service satisfies it.
// serial is the certificate's, in lower-case hex as the store keeps it, so
// that only what depends on that certificate is redone.
type RevocationNotifier interface {
	Notify(caID, serial string, at time.Time)
}

// NotifyFunc adapts a function to RevocationNotifier.
type NotifyFunc func(caID, serial string, at time.Time)

// Notify calls f.
func (f NotifyFunc) Notify(caID, serial string, at time.Time) { f(caID, serial, at) }

// RevokedError is returned when a certificate is already revoked; it
// carries the original reason and time.
type RevokedError struct {
	Serial    string
	Reason    int
	RevokedAt time.Time
}

func (e *RevokedError) Error() string {
	return fmt.Sprintf("certificate %s is already revoked (reason %s, at %s)", e.Serial, pki.ReasonName(e.Reason), e.RevokedAt.UTC().Format(time.RFC3339))
}

// lookup finds a certificate Trustgate issued, by serial in any accepted form.
func (s *Service) lookup(ctx context.Context, serial string) (*store.Certificate, error) {
	n, err := pki.ParseSerial(serial)
	if err != nil {
		return nil, invalid(err)
	}
	hex := pki.SerialHex(n)
	c, err := s.cfg.Store.GetCertificate(ctx, hex)
	if store.IsNotFound(err) {
		return nil, fault.New(fault.NotFound, "no certificate with serial %s", hex)
	}
	if err != nil {
		return nil, fmt.Errorf("look up certificate %s: %w", hex, err)
	}
	if c.CAID == "" {
		return nil, fault.New(fault.Conflict, "certificate %s was imported for tracking; only its issuer can revoke it", hex)
	}
	return c, nil
}

// Revoke revokes a certificate with an RFC 5280 reason. Every reason but
// certificateHold is final. Revoking a subordinate CA's certificate also
// stops that CA from issuing.
func (s *Service) Revoke(ctx context.Context, serial string, reason int, requester string) (*store.Certificate, error) {
	if _, err := pki.ParseReason(fmt.Sprint(reason)); err != nil {
		return nil, invalid(err)
	}
	c, err := s.lookup(ctx, serial)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now().UTC()
	rec, err := s.cfg.Store.RevokeCertificate(ctx, c.CAID, c.Serial, reason, now)
	if store.IsConflict(err) && rec != nil {
		return nil, &fault.Error{Kind: fault.Conflict, Err: &RevokedError{Serial: rec.Serial, Reason: rec.Reason, RevokedAt: rec.RevokedAt}}
	}
	if err != nil {
		return nil, fmt.Errorf("revoke %s: %w", c.Serial, err)
	}
	if s.cfg.Revocations != nil {
		s.cfg.Revocations.Notify(c.CAID, rec.Serial, now)
	}
	s.cfg.Logger.Warn("certificate revoked", "serial", rec.Serial, "ca_id", rec.CAID, "reason", pki.ReasonName(reason), "requester", requester)
	if err := s.disableRevokedCA(ctx, rec); err != nil {
		return nil, err
	}
	return rec, nil
}

// Unhold releases a certificate on hold.
func (s *Service) Unhold(ctx context.Context, serial, requester string) (*store.Certificate, error) {
	c, err := s.lookup(ctx, serial)
	if err != nil {
		return nil, err
	}
	rec, err := s.cfg.Store.ReleaseHold(ctx, c.CAID, c.Serial)
	if store.IsConflict(err) {
		if rec != nil && rec.Status == store.CertRevoked {
			return nil, fault.New(fault.Conflict, "certificate %s is revoked with reason %s, which is final; only certificateHold can be released", c.Serial, pki.ReasonName(rec.Reason))
		}
		return nil, fault.New(fault.Conflict, "certificate %s is not on hold", c.Serial)
	}
	if err != nil {
		return nil, fmt.Errorf("release hold of %s: %w", c.Serial, err)
	}
	if s.cfg.Revocations != nil {
		s.cfg.Revocations.Notify(c.CAID, rec.Serial, s.cfg.Now())
	}
	s.cfg.Logger.Info("certificate hold released", "serial", rec.Serial, "requester", requester)
	return rec, nil
}

// disableRevokedCA disables the subordinate CA whose certificate rec is, if any.
func (s *Service) disableRevokedCA(ctx context.Context, rec *store.Certificate) error {
	if rec.Profile != "subordinate-ca" {
		return nil
	}
	cas, err := s.cfg.Store.ListCAs(ctx)
	if err != nil {
		return fmt.Errorf("find revoked CA: %w", err)
	}
	for _, c := range cas {
		if c.ParentID != rec.CAID || len(c.CertDER) == 0 {
			continue
		}
		cert, err := x509.ParseCertificate(c.CertDER)
		if err != nil || pki.SerialHex(cert.SerialNumber) != rec.Serial {
			continue
		}
		if c.State == store.CAActive {
			c.State = store.CADisabled
			c.UpdatedAt = s.cfg.Now().UTC()
			if err := s.cfg.Store.UpdateCA(ctx, c); err != nil {
				return fmt.Errorf("disable revoked CA %q: %w", c.Name, err)
			}
		}
		s.forget(c.ID)
		s.cfg.Logger.Warn("CA certificate revoked: CA disabled", "ca", c.Name)
	}
	return nil
}

// caRevoked reports whether the CA's own certificate is revoked by its parent.
func (s *Service) caRevoked(ctx context.Context, c *store.CA) (bool, error) {
	if c.ParentID == "" || len(c.CertDER) == 0 {
		return false, nil
	}
	cert, err := x509.ParseCertificate(c.CertDER)
	if err != nil {
		return false, err
	}
	rec, err := s.cfg.Store.GetCertificateByCA(ctx, c.ParentID, pki.SerialHex(cert.SerialNumber))
	if store.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return rec.Status == store.CertRevoked, nil
}

// Signer returns the key and certificate of a CA that can sign (for CRLs).
func (s *Service) Signer(ctx context.Context, caID string) (crypto.Signer, *x509.Certificate, error) {
	c, err := s.cfg.Store.GetCAByID(ctx, caID)
	if err != nil {
		return nil, nil, fmt.Errorf("CA %s: %w", caID, err)
	}
	if c.State == store.CAPending || c.State == store.CAOffline {
		return nil, nil, fault.New(fault.Conflict, "CA %q is %s and cannot sign", c.Name, c.State)
	}
	return s.signer(c)
}

// IssueOCSPResponder issues the delegated OCSP responder certificate of a
// CA for key pub, valid from now for validity (never past the CA). A
// disabled CA still signs it: revocation status must stay available.
func (s *Service) IssueOCSPResponder(ctx context.Context, caID string, pub crypto.PublicKey, validity time.Duration) (*x509.Certificate, error) {
	c, err := s.cfg.Store.GetCAByID(ctx, caID)
	if err != nil {
		return nil, fmt.Errorf("CA %s: %w", caID, err)
	}
	signer, caCert, err := s.Signer(ctx, caID)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now().UTC()
	na := now.Add(validity)
	if na.After(caCert.NotAfter) {
		na = caCert.NotAfter
	}
	serial, err := pki.NewSerial(s.cfg.Rand)
	if err != nil {
		return nil, err
	}
	tmpl, err := pki.OCSPResponderTemplate(pki.OCSPResponderRequest{
		Subject:   pkix.Name{CommonName: c.Name + " OCSP responder"},
		PublicKey: pub, Serial: serial, NotBefore: now.Add(-s.cfg.Backdate), NotAfter: na,
	})
	if err != nil {
		return nil, invalid(err)
	}
	der, err := s.cfg.Linter.Sign(tmpl, caCert, pub, signer)
	if err != nil {
		return nil, fmt.Errorf("sign OCSP responder certificate of %q: %w", c.Name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	if err := s.record(ctx, c, cert, "ocsp-responder", "trustgate", false); err != nil {
		return nil, err
	}
	return cert, nil
}

// partition assigns a certificate to one of a CA's CRL partitions. The
// serial is random, so its leading bytes spread certificates evenly.
func partition(serial *big.Int, partitions int) int {
	if partitions <= 1 {
		return 0
	}
	b := serial.Bytes()
	var buf [8]byte
	copy(buf[8-min(8, len(b)):], b[:min(8, len(b))])
	return int(binary.BigEndian.Uint64(buf[:]) % uint64(partitions))
}
