package ca

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net/netip"
	"time"

	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/authz"
	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/inventory"
	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/store"
)

// IssueRequest asks for one certificate. Either CSR is set (the key stays
// with its owner) or the service generates a key of KeyType and returns it
// once, without storing it.
type IssueRequest struct {
	CA         string
	Profile    string
	CSR        []byte // PEM or DER
	CommonName string
	KeyType    string
	DNS        []string
	IP         []string
	URI        []string
	Email      []string
	Validity   string // empty: the profile's default
	Managed    bool
	Requester  string
	// PublicKey, when set instead of CSR, is a key already certified to
	// be certified again (managed renewal); only the service sets it,
	// never a request from outside.
	PublicKey crypto.PublicKey
	// Authorize, when set, is asked whether the requester may have the
	// certificate as resolved (profile, names, subject, key type, validity)
	// before anything is signed or recorded; its error is returned as is.
	Authorize func(ctx context.Context, iss *authz.Issuance) error
}

// Issued is the result of a successful issuance. The record is durable.
type Issued struct {
	Record *store.Certificate
	Cert   *x509.Certificate
	// Chain is the issuing CA's certificate followed by its parents', as DER.
	Chain [][]byte
	// Key is the generated private key when the request had no CSR.
	Key crypto.Signer
}

// Issue runs the issuance pipeline: resolve the CA, apply the profile,
// validate names and validity, build the template, lint the certificate
// before the CA key signs it, sign, record durably, and only then return.
func (s *Service) Issue(ctx context.Context, r IssueRequest) (*Issued, error) {
	if r.CA == "" {
		return nil, fault.New(fault.Invalid, "ca is required")
	}
	if r.Profile == "" {
		return nil, fault.New(fault.Invalid, "profile is required (one of %v)", pki.ProfileNames())
	}
	prof, err := pki.LookupProfile(r.Profile)
	if err != nil {
		return nil, invalid(err)
	}
	ie, err := s.issuer(ctx, r.CA)
	if err != nil {
		return nil, err
	}
	issuer, chain := ie.ca, ie.chain
	now := s.cfg.Now().UTC()
	if err := usable(issuer, now); err != nil {
		return nil, err
	}

	// The public key: from the CSR, or generated here.
	var (
		pub     crypto.PublicKey
		key     crypto.Signer
		csrCN   string
		csrSANs csrNames
	)
	switch {
	case r.PublicKey != nil:
		if len(r.CSR) > 0 || r.KeyType != "" {
			return nil, fault.New(fault.Invalid, "a public key to re-certify excludes a CSR and a key type")
		}
		pub = r.PublicKey
	case len(r.CSR) > 0:
		if r.KeyType != "" {
			return nil, fault.New(fault.Invalid, "key_type applies only when the server generates the key; the CSR already names its key")
		}
		csr, err := pki.ParseCSR(r.CSR)
		if err != nil {
			return nil, invalid(fmt.Errorf("csr: %w", err))
		}
		pub = csr.PublicKey
		csrCN = csr.Subject.CommonName
		csrSANs = csrNames{dns: csr.DNSNames, email: csr.EmailAddresses}
		for _, ip := range csr.IPAddresses {
			csrSANs.ip = append(csrSANs.ip, ip.String())
		}
		for _, u := range csr.URIs {
			csrSANs.uri = append(csrSANs.uri, u.String())
		}
	case prof.IsCA:
		return nil, fault.New(fault.Invalid, "profile %q needs a CSR: a CA's key is never generated for someone else", prof.Name)
	default:
		kt := pki.ECP256
		if r.KeyType != "" {
			if kt, err = pki.ParseKeyType(r.KeyType); err != nil {
				return nil, invalid(err)
			}
		}
		if key, err = pki.GenerateKey(kt); err != nil {
			return nil, fmt.Errorf("generate key: %w", err)
		}
		pub = key.Public()
	}
	kt, err := pki.KeyTypeOf(pub)
	if err != nil {
		return nil, invalid(err)
	}

	// Names: what the request says, else what the CSR asked for. Both go
	// through the same validation.
	sans, err := pki.ParseSANs(r.DNS, r.IP, r.URI, r.Email)
	if err != nil {
		return nil, invalid(err)
	}
	if sans.Empty() && !csrSANs.empty() {
		if sans, err = pki.ParseSANs(csrSANs.dns, csrSANs.ip, csrSANs.uri, csrSANs.email); err != nil {
			return nil, invalid(fmt.Errorf("csr: %w", err))
		}
	}
	cn := r.CommonName
	if cn == "" {
		cn = csrCN
	}
	if len(cn) > 64 {
		return nil, fault.New(fault.Invalid, "common name is %d characters; X.509 allows at most 64 (RFC 5280 ub-common-name)", len(cn))
	}
	subject := pkix.Name{CommonName: cn}

	// Validity: explicit requests outside the limits are errors, never cut.
	var notAfter time.Time
	if r.Validity != "" {
		d, err := apiv1.ParseDuration(r.Validity)
		if err != nil {
			return nil, fault.New(fault.Invalid, "validity: %v", err)
		}
		if err := prof.CheckValidity(d); err != nil {
			return nil, invalid(err)
		}
		notAfter = now.Add(d)
		if notAfter.After(issuer.NotAfter) {
			return nil, fault.New(fault.Invalid, "validity %s would end at %s, after CA %q expires (%s)",
				r.Validity, notAfter.Format(time.RFC3339), issuer.Name, issuer.NotAfter.UTC().Format(time.RFC3339))
		}
	} else {
		notAfter = now.Add(prof.DefaultValidity)
		if notAfter.After(issuer.NotAfter) {
			notAfter = issuer.NotAfter
		}
		if err := prof.CheckValidity(notAfter.Sub(now)); err != nil {
			return nil, fault.New(fault.Conflict, "CA %q expires too soon to issue a %s certificate: %v", issuer.Name, prof.Name, err)
		}
	}

	serial, err := pki.NewSerial(s.cfg.Rand)
	if err != nil {
		return nil, fmt.Errorf("serial: %w", err)
	}
	part := partition(serial, issuer.CRLPartitions)
	var tmpl *x509.Certificate
	if prof.IsCA {
		if issuer.PathLen == 0 {
			return nil, fault.New(fault.Invalid, "CA %q has path length 0 and cannot sign a subordinate CA", issuer.Name)
		}
		if subject.CommonName == "" {
			return nil, fault.New(fault.Invalid, "a subordinate CA needs a common name")
		}
		tmpl, err = pki.CATemplate(pki.CARequest{
			Subject: subject, PublicKey: pub, Serial: serial,
			NotBefore: now.Add(-s.cfg.Backdate), NotAfter: notAfter,
			MaxPathLen: 0, URLs: s.urls(issuer.Name, issuer.CRLPartitions, part),
		})
	} else {
		tmpl, err = pki.LeafTemplate(pki.LeafRequest{
			Profile: prof, Subject: subject, SANs: sans, PublicKey: pub, Serial: serial,
			NotBefore: now.Add(-s.cfg.Backdate), NotAfter: notAfter,
			URLs: s.urls(issuer.Name, issuer.CRLPartitions, part),
		})
	}
	if err != nil {
		return nil, invalid(err)
	}
	// Authorized on the template, so the facts are the names the
	// certificate will carry (a server certificate's CN among its DNS
	// names), not what the request spelled.
	if r.Authorize != nil {
		if err := r.Authorize(ctx, issuanceFacts(prof.Name, tmpl, kt, notAfter.Sub(now))); err != nil {
			return nil, err
		}
	}
	signer, issuerCert, err := s.signer(issuer)
	if err != nil {
		return nil, err
	}
	if err := checkConstraints(issuerCert, ie.parents, pki.SANsOf(tmpl), tmpl.Subject.CommonName); err != nil {
		return nil, err
	}
	cert, err := s.cfg.Linter.SignCertificate(tmpl, issuerCert, pub, signer)
	if err != nil {
		return nil, invalid(fmt.Errorf("issue %s certificate for %q: %w", prof.Name, cn, err))
	}
	rec := inventory.NewRecord(cert, issuer.ID, prof.Name, r.Requester, now)
	rec.KeyType = string(kt)
	rec.Managed = r.Managed
	rec.Partition = part
	if err := s.cfg.Store.InsertCertificate(ctx, rec); err != nil {
		// Nothing is returned that is not recorded: a certificate that
		// exists can always be found and revoked.
		return nil, fmt.Errorf("record certificate %s: %w", rec.Serial, err)
	}
	s.cfg.Logger.Info("certificate issued", "ca", issuer.Name, "serial", rec.Serial, "profile", prof.Name,
		"subject", rec.Subject, "not_after", cert.NotAfter, "requester", r.Requester)
	return &Issued{Record: rec, Cert: cert, Chain: chain, Key: key}, nil
}

// record adds a certificate that a CA signed outside Issue (a subordinate
// CA's certificate) to the inventory.
func (s *Service) record(ctx context.Context, issuer *store.CA, cert *x509.Certificate, profile, requester string, managed bool) error {
	rec := inventory.NewRecord(cert, issuer.ID, profile, requester, s.cfg.Now().UTC())
	rec.Managed = managed
	rec.Partition = partition(cert.SerialNumber, issuer.CRLPartitions)
	if err := s.cfg.Store.InsertCertificate(ctx, rec); err != nil {
		return fmt.Errorf("record certificate %s: %w", rec.Serial, err)
	}
	return nil
}

// csrNames are the SANs a CSR asked for, as strings, so that they pass the
// same validation as names given in the request.
type csrNames struct{ dns, ip, uri, email []string }

func (n csrNames) empty() bool {
	return len(n.dns)+len(n.ip)+len(n.uri)+len(n.email) == 0
}

// issuanceFacts describes a certificate about to be signed for authorization.
func issuanceFacts(profile string, tmpl *x509.Certificate, kt pki.KeyType, validity time.Duration) *authz.Issuance {
	iss := &authz.Issuance{Profile: profile, DNS: tmpl.DNSNames, Emails: tmpl.EmailAddresses, KeyType: string(kt),
		Validity: validity, Subject: map[string][]string{}}
	for _, ip := range tmpl.IPAddresses {
		if a, ok := netip.AddrFromSlice(ip); ok {
			iss.IPs = append(iss.IPs, a.Unmap())
		}
	}
	for _, u := range tmpl.URIs {
		iss.URIs = append(iss.URIs, u.String())
	}
	subject := tmpl.Subject
	if subject.CommonName != "" {
		iss.Subject["CN"] = []string{subject.CommonName}
	}
	for k, v := range map[string][]string{"O": subject.Organization, "OU": subject.OrganizationalUnit, "C": subject.Country,
		"L": subject.Locality, "ST": subject.Province} {
		if len(v) > 0 {
			iss.Subject[k] = v
		}
	}
	return iss
}

// checkConstraints refuses names that the issuer's certificate or a
// parent's excludes or does not permit, for every requester alike: the
// chain would make such a certificate invalid anyway, and a CA confined by
// name constraints must stay confined even to its operator. parents are
// the issuer's parents, nearest first.
func checkConstraints(issuer *x509.Certificate, parents []*x509.Certificate, sans pki.SANs, cn string) error {
	certs := append([]*x509.Certificate{issuer}, parents...)
	if err := pki.CheckNameConstraints(certs, sans, cn); err != nil {
		return fault.New(fault.Denied, "%v", err)
	}
	return nil
}
