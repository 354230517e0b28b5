package ca

import (
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"time"

	"github.com/trustgate/trustgate/internal/authz"
	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/store"
)

// Renew issues the successor of a certificate this Trustgate issued, for
// the key in csr: same CA, profile, subject, SANs and managed flag, and the
// same lifetime (cut to what the CA's own validity still allows). The CSR
// must hold a new key; the names it asks for are ignored. The caller has
// authenticated the holder of old (see VerifyPeer): Renew checks only that
// the new certificate keeps the old one's identity, through the pipeline's
// Authorize hook, so that nothing the CSR says can widen it.
func (s *Service) Renew(ctx context.Context, old *store.Certificate, csr []byte) (*Issued, error) {
	if old.CAID == "" {
		return nil, fault.New(fault.Conflict, "certificate %s was imported for tracking; only its issuer can renew it", old.Serial)
	}
	oldCert, err := x509.ParseCertificate(old.DER)
	if err != nil {
		return nil, fmt.Errorf("renew %s: parse recorded certificate: %w", old.Serial, err)
	}
	prof, err := pki.LookupProfile(old.Profile)
	if err != nil {
		return nil, fault.New(fault.Conflict, "certificate %s has profile %q, which cannot be renewed", old.Serial, old.Profile)
	}
	if prof.IsCA {
		return nil, fault.New(fault.Conflict, "certificate %s is a CA certificate; CAs are not renewed through this route", old.Serial)
	}
	req, err := pki.ParseCSR(csr)
	if err != nil {
		return nil, invalid(fmt.Errorf("csr: %w", err))
	}
	if publicKeysEqual(req.PublicKey, oldCert.PublicKey) {
		return nil, fault.New(fault.Invalid, "the CSR holds the key of certificate %s; a renewal needs a new key", old.Serial)
	}
	r, err := s.renewal(ctx, old, oldCert, prof)
	if err != nil {
		return nil, err
	}
	r.CSR = csr
	return s.Issue(ctx, r)
}

// Recertify issues the successor of a managed certificate for the same
// public key: the renewal the control plane makes by itself. The private
// key is never on the server (a CSR's key stays with its owner, and a key
// the server generated was handed out once and not kept), so the only new
// certificate its holder can use is one for the key it holds. Identity and
// lifetime are kept as in Renew; the issuing CA is the newest generation
// of the old one's (see Rotate).
func (s *Service) Recertify(ctx context.Context, old *store.Certificate) (*Issued, error) {
	if old.CAID == "" {
		return nil, fault.New(fault.Conflict, "certificate %s was imported for tracking; only its issuer can renew it", old.Serial)
	}
	oldCert, err := x509.ParseCertificate(old.DER)
	if err != nil {
		return nil, fmt.Errorf("recertify %s: parse recorded certificate: %w", old.Serial, err)
	}
	prof, err := pki.LookupProfile(old.Profile)
	if err != nil || prof.IsCA {
		return nil, fault.New(fault.Conflict, "certificate %s has profile %q, which is not renewed", old.Serial, old.Profile)
	}
	r, err := s.renewal(ctx, old, oldCert, prof)
	if err != nil {
		return nil, err
	}
	r.PublicKey = oldCert.PublicKey
	r.Requester = "managed-renewal-of:" + old.Serial
	return s.Issue(ctx, r)
}

// renewal returns the issuance request that reproduces old's identity
// (CA, profile, subject, SANs, managed flag) and lifetime, without a key.
func (s *Service) renewal(ctx context.Context, old *store.Certificate, oldCert *x509.Certificate, prof *pki.Profile) (IssueRequest, error) {
	issuerRec, err := s.cfg.Store.GetCAByID(ctx, old.CAID)
	if err != nil {
		return IssueRequest{}, fmt.Errorf("renew %s: issuing CA: %w", old.Serial, err)
	}

	// The lifetime the old certificate was asked for: NotBefore was moved
	// back by the backdate at issuance.
	lifetime := oldCert.NotAfter.Sub(oldCert.NotBefore)
	if l := lifetime - s.cfg.Backdate; l >= prof.MinValidity {
		lifetime = l
	}
	// Issuance goes to the newest generation of the CA, whose own
	// validity is what bounds the new certificate.
	ie, err := s.issuer(ctx, issuerRec.Name)
	if err != nil {
		return IssueRequest{}, err
	}
	if left := ie.ca.NotAfter.Sub(s.cfg.Now()); lifetime > left {
		lifetime = left
	}
	lifetime = lifetime.Truncate(time.Second)

	want := issuanceFacts(prof.Name, oldCert, "", 0)
	sans := pki.SANsOf(oldCert)
	var ips, uris []string
	for _, ip := range sans.IP {
		ips = append(ips, ip.String())
	}
	for _, u := range sans.URI {
		uris = append(uris, u.String())
	}
	return IssueRequest{
		CA: issuerRec.Name, Profile: prof.Name, CommonName: oldCert.Subject.CommonName,
		DNS: sans.DNS, IP: ips, URI: uris, Email: sans.Email,
		Validity: fmt.Sprintf("%ds", int64(lifetime/time.Second)), Managed: old.Managed,
		Requester: "renewal-of:" + old.Serial,
		Authorize: func(_ context.Context, got *authz.Issuance) error {
			if err := sameIdentity(want, got); err != nil {
				return fault.New(fault.Conflict, "certificate %s cannot be renewed: %v", old.Serial, err)
			}
			return nil
		},
	}, nil
}

// sameIdentity reports how the resolved facts of a renewal differ from the
// identity of the certificate it renews, or returns nil.
func sameIdentity(want, got *authz.Issuance) error {
	if got.Profile != want.Profile {
		return fmt.Errorf("profile %q would become %q", want.Profile, got.Profile)
	}
	if len(got.Subject) != len(want.Subject) {
		return fmt.Errorf("its subject cannot be reproduced")
	}
	for k, v := range want.Subject {
		if !slices.Equal(got.Subject[k], v) {
			return fmt.Errorf("subject attribute %s would change", k)
		}
	}
	set := func(v []string) []string { v = slices.Clone(v); slices.Sort(v); return slices.Compact(v) }
	ipStrings := func(iss *authz.Issuance) []string {
		var out []string
		for _, a := range iss.IPs {
			out = append(out, a.String())
		}
		return out
	}
	for _, c := range []struct {
		what      string
		want, got []string
	}{
		{"DNS names", want.DNS, got.DNS}, {"URIs", want.URIs, got.URIs},
		{"IP addresses", ipStrings(want), ipStrings(got)}, {"email addresses", want.Emails, got.Emails},
	} {
		if !slices.Equal(set(c.want), set(c.got)) {
			return fmt.Errorf("its %s %v would become %v", c.what, c.want, c.got)
		}
	}
	return nil
}
