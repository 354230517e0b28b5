package ca

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/store"
)

// VerifyPeer authenticates a TLS peer by the certificate chain it
// presented (tls.ConnectionState.PeerCertificates, leaf first) and returns
// the leaf's inventory record. The leaf must be signed by a CA of this
// Trustgate, be recorded in the inventory under that CA with the same DER,
// be within its validity at the service's clock, and not be revoked (a
// certificate on hold counts as revoked). Every refusal is a
// fault.Unauthenticated error that says which check failed.
//
// The TLS handshake has already proved that the peer holds the leaf's
// private key (CertificateVerify, RFC 8446 section 4.4.3), which is why the
// server only requests client certificates and verifies them here rather
// than in crypto/tls: one listener then serves token-authenticated callers,
// public routes and certificate-authenticated callers alike, and the
// inventory, not a static pool, decides who is trusted.
//
// Extended key usage is not checked: renewal accepts a server certificate
// as proof of identity. A caller that authenticates people or operators
// must also require the clientAuth EKU.
func (s *Service) VerifyPeer(ctx context.Context, chain []*x509.Certificate) (*store.Certificate, error) {
	if len(chain) == 0 {
		return nil, fault.New(fault.Unauthenticated, "no client certificate was presented: connect with the certificate to renew as TLS client certificate")
	}
	leaf := chain[0]
	now := s.cfg.Now().UTC()
	cas, err := s.cfg.Store.ListCAs(ctx)
	if err != nil {
		return nil, fmt.Errorf("verify client certificate: %w", err)
	}
	var issuer *store.CA
	for _, c := range cas {
		if len(c.CertDER) == 0 {
			continue
		}
		cc, err := x509.ParseCertificate(c.CertDER)
		if err != nil || !bytes.Equal(cc.RawSubject, leaf.RawIssuer) {
			continue
		}
		if leaf.CheckSignatureFrom(cc) == nil {
			issuer = c
			break
		}
	}
	serial := pki.SerialHex(leaf.SerialNumber)
	if issuer == nil {
		return nil, fault.New(fault.Unauthenticated, "client certificate %s was not issued by a CA of this Trustgate", serial)
	}
	// The leaf is signed by a CA of ours and the handshake proved its key:
	// a refusal from here on names it for the audit log.
	proved := func(err error) error {
		return &fault.Credential{Err: err, Actor: "certificate:" + serial, About: fmt.Sprintf("certificate issued by CA %q", issuer.Name)}
	}
	if now.Before(leaf.NotBefore) {
		return nil, proved(fault.New(fault.Unauthenticated, "client certificate %s is not valid before %s", serial, leaf.NotBefore.UTC().Format(time.RFC3339)))
	}
	if !now.Before(leaf.NotAfter) {
		return nil, proved(fault.New(fault.Unauthenticated, "client certificate %s expired at %s; a new bootstrap token is needed", serial, leaf.NotAfter.UTC().Format(time.RFC3339)))
	}
	rec, err := s.cfg.Store.GetCertificateByCA(ctx, issuer.ID, serial)
	if store.IsNotFound(err) {
		return nil, proved(fault.New(fault.Unauthenticated, "client certificate %s is not in the inventory of CA %q", serial, issuer.Name))
	}
	if err != nil {
		return nil, fmt.Errorf("verify client certificate %s: %w", serial, err)
	}
	if !bytes.Equal(rec.DER, leaf.Raw) {
		return nil, proved(fault.New(fault.Unauthenticated, "client certificate %s differs from the one CA %q recorded", serial, issuer.Name))
	}
	if rec.Status == store.CertRevoked {
		return nil, proved(fault.New(fault.Unauthenticated, "client certificate %s was revoked at %s (%s); a new bootstrap token is needed",
			serial, rec.RevokedAt.UTC().Format(time.RFC3339), pki.ReasonName(rec.Reason)))
	}
	return rec, nil
}
