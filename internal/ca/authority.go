package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"

	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/keystore"
	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/store"
)

// CreateRequest describes a new CA.
type CreateRequest struct {
	Name           string
	Parent         string // name of the parent CA in Trustgate; "" for a root
	ExternalParent bool   // the parent is outside Trustgate: produce a CSR
	KeyType        string // default ec-p256
	Subject        string // default CN=<Name>
	Validity       string // default 10y for a root, 5y for an intermediate (never past the parent)
	PathLen        *int   // nil: unconstrained for a root, 0 for an intermediate
	// CRLPartitions > 1 spreads the CA's certificates over that many CRLs.
	CRLPartitions int
	// NameConstraints go, critical, into the CA's certificate.
	NameConstraints pki.NameConstraintsInput
}

// MaxCRLPartitions bounds partitioning; beyond it relying parties would
// fetch too many CRLs to learn anything.
const MaxCRLPartitions = 1024

// CreateCA creates a root, an intermediate under a Trustgate parent, or (with
// ExternalParent) an intermediate in state pending-certificate with a CSR.
func (s *Service) CreateCA(ctx context.Context, r CreateRequest) (*store.CA, error) {
	if err := ValidateName(r.Name); err != nil {
		return nil, err
	}
	if r.ExternalParent && r.Parent != "" {
		return nil, fault.New(fault.Invalid, "a CA has either a parent in Trustgate or an external parent, not both")
	}
	kt := pki.ECP256
	if r.KeyType != "" {
		var err error
		if kt, err = pki.ParseKeyType(r.KeyType); err != nil {
			return nil, invalid(err)
		}
	}
	subjStr := r.Subject
	if subjStr == "" {
		subjStr = "CN=" + r.Name
	}
	subject, err := pki.ParseSubject(subjStr)
	if err != nil {
		return nil, invalid(err)
	}
	if subject.CommonName == "" {
		return nil, fault.New(fault.Invalid, "the subject of a CA needs a CN")
	}
	if r.PathLen != nil && (*r.PathLen < 0 || *r.PathLen > MaxDepth) {
		return nil, fault.New(fault.Invalid, "path length %d is out of range 0..%d", *r.PathLen, MaxDepth)
	}
	if r.CRLPartitions < 0 || r.CRLPartitions > MaxCRLPartitions {
		return nil, fault.New(fault.Invalid, "crl_partitions %d is out of range 0..%d", r.CRLPartitions, MaxCRLPartitions)
	}
	nc, err := pki.ParseNameConstraints(r.NameConstraints)
	if err != nil {
		return nil, invalid(err)
	}
	if nc != nil && r.ExternalParent {
		return nil, fault.New(fault.Invalid, "name constraints of a CA with an external parent are set by that parent when it signs the CSR")
	}
	var validity time.Duration
	if r.Validity != "" {
		if validity, err = apiv1.ParseDuration(r.Validity); err != nil {
			return nil, fault.New(fault.Invalid, "validity: %v", err)
		}
	}
	if _, err := s.cfg.Store.GetCA(ctx, r.Name); err == nil {
		return nil, fault.New(fault.Conflict, "CA %q already exists", r.Name)
	} else if !store.IsNotFound(err) {
		return nil, fmt.Errorf("create CA %q: %w", r.Name, err)
	}

	now := s.cfg.Now().UTC()
	rec := &store.CA{
		ID:             newID(),
		Name:           r.Name,
		ExternalParent: r.ExternalParent,
		KeyType:        string(kt),
		Subject:        pkixString(subject),
		PathLen:        -1,
		CRLPartitions:  r.CRLPartitions,
		CreatedAt:      now,
		UpdatedAt:      now,
	}
	var parent *store.CA
	if r.Parent != "" {
		if parent, err = s.GetCA(ctx, r.Parent); err != nil {
			return nil, err
		}
		if err := usable(parent, now); err != nil {
			return nil, err
		}
		if parent.Depth+1 > MaxDepth {
			return nil, fault.New(fault.Invalid, "CA %q is at depth %d; a hierarchy has at most %d levels", parent.Name, parent.Depth, MaxDepth+1)
		}
		if parent.PathLen == 0 {
			return nil, fault.New(fault.Invalid, "CA %q has path length 0: it may issue only end-entity certificates", parent.Name)
		}
		rec.ParentID = parent.ID
		rec.Depth = parent.Depth + 1
	}
	isRoot := parent == nil && !r.ExternalParent
	switch {
	case r.PathLen != nil:
		rec.PathLen = *r.PathLen
	case !isRoot:
		rec.PathLen = 0
	}
	if parent != nil && parent.PathLen > 0 && rec.PathLen >= parent.PathLen {
		if r.PathLen != nil {
			return nil, fault.New(fault.Invalid, "path length %d must be below the parent's (%d)", rec.PathLen, parent.PathLen)
		}
	}
	if parent != nil && parent.PathLen > 0 && (rec.PathLen < 0 || rec.PathLen >= parent.PathLen) {
		rec.PathLen = parent.PathLen - 1
	}

	key, err := pki.GenerateKey(kt)
	if err != nil {
		return nil, fmt.Errorf("create CA %q: %w", r.Name, err)
	}
	if rec.SealedKey, err = s.cfg.Sealer.Seal(rec.ID, key); err != nil {
		return nil, fmt.Errorf("create CA %q: %w", r.Name, err)
	}

	if r.ExternalParent {
		csr, err := pki.CreateCSR(subject, key)
		if err != nil {
			return nil, fmt.Errorf("create CA %q: csr: %w", r.Name, err)
		}
		rec.CSRDER = csr
		rec.State = store.CAPending
		rec.Depth = 1
		if err := s.cfg.Store.CreateCA(ctx, rec); err != nil {
			return nil, s.storeErr(err, "create CA %q", r.Name)
		}
		s.cfg.Logger.Info("CA created, awaiting external certificate", "ca", r.Name, "key_type", kt)
		return rec, nil
	}

	notBefore := now.Add(-s.cfg.Backdate)
	var notAfter time.Time
	if validity == 0 {
		validity = DefaultRootValidity
		if parent != nil {
			validity = DefaultIntermediateValidity
		}
		notAfter = now.Add(validity)
		if parent != nil && notAfter.After(parent.NotAfter) {
			notAfter = parent.NotAfter // a default never outlives the parent
		}
	} else {
		notAfter = now.Add(validity)
		if parent != nil && notAfter.After(parent.NotAfter) {
			return nil, fault.New(fault.Invalid, "validity %s would end at %s, after the parent CA %q expires (%s)",
				r.Validity, notAfter.Format(time.RFC3339), parent.Name, parent.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	serial, err := pki.NewSerial(s.cfg.Rand)
	if err != nil {
		return nil, fmt.Errorf("create CA %q: %w", r.Name, err)
	}
	req := pki.CARequest{
		Subject:    subject,
		PublicKey:  key.Public(),
		Serial:     serial,
		NotBefore:  notBefore,
		NotAfter:   notAfter,
		MaxPathLen: rec.PathLen,
		// The parent's constraints apply below it anyway; these narrow them.
		NameConstraints: nc,
	}
	if parent != nil {
		req.URLs = s.urls(parent.Name, parent.CRLPartitions, partition(serial, parent.CRLPartitions))
	}
	tmpl, err := pki.CATemplate(req)
	if err != nil {
		return nil, invalid(err)
	}
	var der []byte
	if parent == nil {
		der, err = s.cfg.Linter.Sign(tmpl, tmpl, key.Public(), key)
	} else {
		psigner, pcert, perr := s.signer(parent)
		if perr != nil {
			return nil, perr
		}
		der, err = s.cfg.Linter.Sign(tmpl, pcert, key.Public(), psigner)
	}
	if err != nil {
		return nil, invalid(fmt.Errorf("sign certificate of CA %q: %w", r.Name, err))
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("create CA %q: %w", r.Name, err)
	}
	rec.CertDER = der
	rec.State = store.CAActive
	rec.NotBefore, rec.NotAfter = cert.NotBefore, cert.NotAfter
	if err := s.cfg.Store.CreateCA(ctx, rec); err != nil {
		return nil, s.storeErr(err, "create CA %q", r.Name)
	}
	// An intermediate's certificate is also an issued certificate of its
	// parent: it belongs in the parent's inventory (and later on its CRL).
	if parent != nil {
		if err := s.record(ctx, parent, cert, "subordinate-ca", "trustgate", false); err != nil {
			return nil, err
		}
	}
	s.cfg.Logger.Info("CA created", "ca", r.Name, "parent", r.Parent, "key_type", kt, "not_after", cert.NotAfter)
	return rec, nil
}

func (s *Service) storeErr(err error, format string, args ...any) error {
	if store.IsConflict(err) {
		return fault.New(fault.Conflict, "%s: already exists", fmt.Sprintf(format, args...))
	}
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)
}

// ImportCACert activates a pending CA with the certificate its external
// parent signed. The PEM may carry the external chain after the CA
// certificate; the certificate must hold the CA's own public key, be a CA
// certificate, and (when a chain is given) verify against it.
func (s *Service) ImportCACert(ctx context.Context, name string, pemData []byte) (*store.CA, error) {
	c, err := s.GetCA(ctx, name)
	if err != nil {
		return nil, err
	}
	if c.State != store.CAPending {
		return nil, fault.New(fault.Conflict, "CA %q is %s, not awaiting a certificate", name, c.State)
	}
	certs, err := parseCertsPEM(pemData)
	if err != nil {
		return nil, err
	}
	leaf := certs[0]
	key, err := s.cfg.Sealer.Unseal(c.ID, c.SealedKey)
	if err != nil {
		return nil, fmt.Errorf("import certificate of CA %q: %w", name, err)
	}
	if !publicKeysEqual(key.Public(), leaf.PublicKey) {
		return nil, fault.New(fault.Invalid, "the certificate's public key is not the key of CA %q", name)
	}
	if !leaf.BasicConstraintsValid || !leaf.IsCA {
		return nil, fault.New(fault.Invalid, "the certificate is not a CA certificate (basicConstraints CA:TRUE missing)")
	}
	if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fault.New(fault.Invalid, "the certificate's key usage does not allow certificate signing")
	}
	now := s.cfg.Now()
	if now.After(leaf.NotAfter) {
		return nil, fault.New(fault.Invalid, "the certificate expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if len(certs) > 1 {
		roots, inter := x509.NewCertPool(), x509.NewCertPool()
		roots.AddCert(certs[len(certs)-1])
		for _, ic := range certs[1 : len(certs)-1] {
			inter.AddCert(ic)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return nil, fault.New(fault.Invalid, "the certificate does not verify against the chain given with it: %v", err)
		}
		var chain bytes.Buffer
		for _, ic := range certs[1:] {
			chain.Write(ic.Raw)
		}
		c.ChainDER = chain.Bytes()
	}
	c.CertDER = leaf.Raw
	c.Subject = pkixString(leaf.Subject)
	c.NotBefore, c.NotAfter = leaf.NotBefore, leaf.NotAfter
	c.State = store.CAActive
	c.PathLen = -1
	if leaf.MaxPathLen > 0 || leaf.MaxPathLenZero {
		c.PathLen = leaf.MaxPathLen
	}
	c.UpdatedAt = now.UTC()
	if err := s.cfg.Store.UpdateCA(ctx, c); err != nil {
		return nil, fmt.Errorf("import certificate of CA %q: %w", name, err)
	}
	s.forget(c.ID)
	s.cfg.Logger.Info("CA certificate imported", "ca", name, "not_after", leaf.NotAfter)
	return c, nil
}

func publicKeysEqual(a, b any) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}

// SetEnabled disables or re-enables an active CA.
func (s *Service) SetEnabled(ctx context.Context, name string, enabled bool) (*store.CA, error) {
	c, err := s.GetCA(ctx, name)
	if err != nil {
		return nil, err
	}
	if enabled && c.State == store.CADisabled {
		revoked, err := s.caRevoked(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("enable CA %q: %w", name, err)
		}
		if revoked {
			return nil, fault.New(fault.Conflict, "the certificate of CA %q is revoked; it cannot issue again", name)
		}
	}
	switch {
	case enabled && c.State == store.CADisabled:
		c.State = store.CAActive
	case !enabled && c.State == store.CAActive:
		c.State = store.CADisabled
	case enabled && c.State == store.CAActive, !enabled && c.State == store.CADisabled:
		return c, nil // idempotent
	default:
		return nil, fault.New(fault.Conflict, "CA %q is %s and cannot be %s", name, c.State, map[bool]string{true: "enabled", false: "disabled"}[enabled])
	}
	c.UpdatedAt = s.cfg.Now().UTC()
	if err := s.cfg.Store.UpdateCA(ctx, c); err != nil {
		return nil, fmt.Errorf("update CA %q: %w", name, err)
	}
	s.forget(c.ID)
	return c, nil
}

// ExportKey returns a root CA's key encrypted under passphrase, once. After
// it the CA can be taken offline.
func (s *Service) ExportKey(ctx context.Context, name string, passphrase []byte) ([]byte, error) {
	c, err := s.GetCA(ctx, name)
	if err != nil {
		return nil, err
	}
	if c.ParentID != "" || c.ExternalParent {
		return nil, fault.New(fault.Invalid, "only a root CA's key can be exported; %q is an intermediate", name)
	}
	if c.KeyExported {
		return nil, fault.New(fault.Conflict, "the key of CA %q was already exported; it is exported only once", name)
	}
	if len(c.SealedKey) == 0 {
		return nil, fault.New(fault.Conflict, "CA %q has no key on this server", name)
	}
	if len(passphrase) < 8 {
		return nil, fault.New(fault.Invalid, "the passphrase must be at least 8 bytes")
	}
	key, err := s.cfg.Sealer.Unseal(c.ID, c.SealedKey)
	if err != nil {
		return nil, fmt.Errorf("export key of CA %q: %w", name, err)
	}
	out, err := keystore.ExportEncryptedPEM(key, passphrase)
	if err != nil {
		return nil, fmt.Errorf("export key of CA %q: %w", name, err)
	}
	// Record the export before returning the key, so that a second export
	// can never happen even if the answer is lost.
	c.KeyExported = true
	c.UpdatedAt = s.cfg.Now().UTC()
	if err := s.cfg.Store.UpdateCA(ctx, c); err != nil {
		return nil, fmt.Errorf("export key of CA %q: %w", name, err)
	}
	s.cfg.Logger.Warn("CA key exported (encrypted)", "ca", name)
	return out, nil
}

// TakeOffline removes an exported root key from the server. The CA keeps
// serving its certificate but can no longer sign.
func (s *Service) TakeOffline(ctx context.Context, name string) (*store.CA, error) {
	c, err := s.GetCA(ctx, name)
	if err != nil {
		return nil, err
	}
	if c.State == store.CAOffline {
		return c, nil
	}
	if !c.KeyExported {
		return nil, fault.New(fault.Conflict, "export the key of CA %q first (ca export-key): taking it offline deletes the only copy", name)
	}
	c.SealedKey = nil
	c.State = store.CAOffline
	c.UpdatedAt = s.cfg.Now().UTC()
	if err := s.cfg.Store.UpdateCA(ctx, c); err != nil {
		return nil, fmt.Errorf("take CA %q offline: %w", name, err)
	}
	s.forget(c.ID)
	s.cfg.Logger.Warn("CA taken offline", "ca", name)
	return c, nil
}

// parseCertsPEM parses one or more PEM certificates.
func parseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := bytes.TrimSpace(data)
	for len(rest) > 0 {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fault.New(fault.Invalid, "expected PEM CERTIFICATE blocks, found %q", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fault.New(fault.Invalid, "certificate %d does not parse: %v", len(out)+1, err)
		}
		out = append(out, c)
		rest = bytes.TrimSpace(rest)
	}
	if len(out) == 0 {
		return nil, fault.New(fault.Invalid, "no PEM certificate found")
	}
	if len(rest) > 0 {
		return nil, fault.New(fault.Invalid, "unexpected data after the PEM certificates")
	}
	return out, nil
}
