package truststore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"math/big"
	"net/url"
	"time"

	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/store"
	"github.com/trustgate/trustgate/internal/truststore/verify"
)

// oidIssuingDistributionPoint is the CRL extension that limits a CRL's
// scope (RFC 5280 §5.2.5).
var oidIssuingDistributionPoint = asn1.ObjectIdentifier{2, 5, 29, 28}

// AddCRL adds an external revocation source: an uploaded CRL (PEM or DER),
// which must be signed by an external CA of the store and replaces an
// older CRL of the same issuer and scope, or an http(s) URL that gateways
// fetch.
func (s *Service) AddCRL(ctx context.Context, name string, r apiv1.AddTrustStoreCRLRequest) (*apiv1.TrustStore, error) {
	given := 0
	for _, set := range []bool{r.CRLPEM != "", r.CRLDER != nil, r.URL != ""} {
		if set {
			given++
		}
	}
	if given != 1 {
		return nil, fault.New(fault.Invalid, "give exactly one of crl_pem, crl_der (base64 DER) and url")
	}
	if r.URL != "" {
		return s.addCRLURL(ctx, name, r.URL)
	}
	der := r.CRLDER
	if r.CRLPEM != "" {
		var err error
		if der, err = crlFromPEM([]byte(r.CRLPEM)); err != nil {
			return nil, err
		}
	}
	if len(der) > MaxCRLBytes {
		return nil, fault.New(fault.TooLarge, "the CRL is %d bytes; at most %d are accepted", len(der), MaxCRLBytes)
	}
	if len(der) == 0 {
		return nil, fault.New(fault.Invalid, "the CRL is empty")
	}
	// The header alone: x509.ParseRevocationList would allocate about a
	// kilobyte per entry. The signature is checked over the whole CRL.
	hdr, err := verify.ParseCRLHeader(der)
	if err != nil {
		return nil, fault.New(fault.Invalid, "the CRL cannot be parsed: %v", err)
	}
	return s.change(ctx, name, "add CRL", func(ts *store.TrustStore, now time.Time) (store.TrustStoreChange, error) {
		issuer, ref, err := s.crlIssuer(ctx, ts, hdr)
		if err != nil {
			return store.TrustStoreChange{}, err
		}
		// What the gateways will do with it: delta, indirect and
		// reason-limited CRLs, and unknown critical extensions, are refused
		// here rather than there.
		if _, err := verify.CompileDER([]*x509.Certificate{issuer}, [][]byte{der}, verify.Options{}); err != nil {
			return store.TrustStoreChange{}, fault.New(fault.Invalid, "gateways would refuse this CRL: %v", err)
		}
		id, err := s.newID()
		if err != nil {
			return store.TrustStoreChange{}, err
		}
		src := store.TrustStoreCRL{
			ID: id, Key: "crl:" + ref + ":" + scopeKey(hdr), DER: der, IssuerRef: ref,
			ThisUpdate: hdr.ThisUpdate.UTC(), NextUpdate: hdr.NextUpdate.UTC(), AddedAt: now,
		}
		if hdr.Number != nil {
			src.Number = hdr.Number.String()
		}
		ch := store.TrustStoreChange{AddCRLs: []store.TrustStoreCRL{src}}
		for _, c := range ts.CRLs {
			if c.Key != src.Key {
				continue
			}
			if !newerCRL(src, c) {
				return ch, fault.New(fault.Conflict, "trust store %q already has CRL %s of this issuer and scope (number %s, thisUpdate %s); this one is not newer",
					ts.Name, c.ID, orNone(c.Number), c.ThisUpdate.Format(time.RFC3339))
			}
			ch.RemoveCRLs = []string{c.ID}
		}
		if len(ch.RemoveCRLs) == 0 && len(ts.CRLs) >= MaxCRLSources {
			return ch, fault.New(fault.Invalid, "trust store %q already holds the most CRL sources a store may hold (%d)", ts.Name, MaxCRLSources)
		}
		return ch, nil
	})
}

// crlIssuer finds the external CA of ts that signed a CRL, and its
// fingerprint. A CRL of a CA of this Trustgate is refused: the store
// follows those by itself.
func (s *Service) crlIssuer(ctx context.Context, ts *store.TrustStore, hdr *x509.RevocationList) (*x509.Certificate, string, error) {
	issuerName := hdr.Issuer.String()
	nameMatched := false
	for _, m := range ts.CAs {
		c, err := s.cfg.Store.GetCAByID(ctx, m.CAID)
		if err != nil {
			return nil, "", fmt.Errorf("CA %s: %w", m.CAID, err)
		}
		cert, err := x509.ParseCertificate(c.CertDER)
		if err != nil {
			return nil, "", fmt.Errorf("certificate of CA %q: %w", c.Name, err)
		}
		if bytes.Equal(cert.RawSubject, hdr.RawIssuer) && hdr.CheckSignatureFrom(cert) == nil {
			return nil, "", fault.New(fault.Invalid, "this CRL is CA %q's, a CA of this Trustgate: trust store %q follows its revocations by itself", c.Name, ts.Name)
		}
	}
	for _, m := range ts.Certs {
		cert, err := x509.ParseCertificate(m.DER)
		if err != nil {
			return nil, "", fmt.Errorf("external certificate %s: %w", m.Fingerprint, err)
		}
		if !bytes.Equal(cert.RawSubject, hdr.RawIssuer) {
			continue
		}
		nameMatched = true
		if hdr.CheckSignatureFrom(cert) == nil {
			return cert, m.Fingerprint, nil
		}
	}
	if nameMatched {
		return nil, "", fault.New(fault.Invalid, "the CRL names issuer %q, but its signature does not verify with the certificate of that name in trust store %q", issuerName, ts.Name)
	}
	return nil, "", fault.New(fault.Invalid, "the CRL's issuer %q is not a CA of trust store %q: add the issuer's certificate first", issuerName, ts.Name)
}

// scopeKey names the scope of a CRL: the hash of its issuing distribution
// point, or "full" for a CRL without one.
func scopeKey(hdr *x509.RevocationList) string {
	for _, e := range hdr.Extensions {
		if e.Id.Equal(oidIssuingDistributionPoint) {
			sum := sha256.Sum256(e.Value)
			return hex.EncodeToString(sum[:8])
		}
	}
	return "full"
}

// newerCRL reports whether a is newer than b: a greater CRL number when
// both have one (RFC 5280 §5.2.3), else a later thisUpdate.
func newerCRL(a, b store.TrustStoreCRL) bool {
	an, aok := new(big.Int).SetString(a.Number, 10)
	bn, bok := new(big.Int).SetString(b.Number, 10)
	if aok && bok {
		return an.Cmp(bn) > 0
	}
	return a.ThisUpdate.After(b.ThisUpdate)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// addCRLURL adds a CRL URL that gateways fetch.
func (s *Service) addCRLURL(ctx context.Context, name, raw string) (*apiv1.TrustStore, error) {
	if len(raw) > MaxURLLength {
		return nil, fault.New(fault.Invalid, "the URL is %d characters; at most %d are accepted", len(raw), MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Fragment != "" {
		return nil, fault.New(fault.Invalid, "url %q must be an http:// or https:// URL with a host and without user or fragment", raw)
	}
	return s.change(ctx, name, "add CRL URL", func(ts *store.TrustStore, now time.Time) (store.TrustStoreChange, error) {
		key := "url:" + raw
		for _, c := range ts.CRLs {
			if c.Key == key {
				return store.TrustStoreChange{}, fault.New(fault.Conflict, "URL %s is already in trust store %q (CRL %s)", raw, ts.Name, c.ID)
			}
		}
		if len(ts.CRLs) >= MaxCRLSources {
			return store.TrustStoreChange{}, fault.New(fault.Invalid, "trust store %q already holds the most CRL sources a store may hold (%d)", ts.Name, MaxCRLSources)
		}
		id, err := s.newID()
		if err != nil {
			return store.TrustStoreChange{}, err
		}
		return store.TrustStoreChange{AddCRLs: []store.TrustStoreCRL{{ID: id, Key: key, URL: raw, AddedAt: now}}}, nil
	})
}

// RemoveCRL removes the external revocation source with the given ID.
func (s *Service) RemoveCRL(ctx context.Context, name, id string) (*apiv1.TrustStore, error) {
	return s.change(ctx, name, "remove CRL "+id, func(ts *store.TrustStore, now time.Time) (store.TrustStoreChange, error) {
		for _, c := range ts.CRLs {
			if c.ID == id {
				return store.TrustStoreChange{RemoveCRLs: []string{id}}, nil
			}
		}
		return store.TrustStoreChange{}, fault.New(fault.NotFound, "trust store %q has no CRL %q (show lists the IDs)", ts.Name, id)
	})
}
