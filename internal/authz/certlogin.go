package authz

import (
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"

	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/store"
)

// CertLoginStore is what client-certificate login needs from the store.
type CertLoginStore interface {
	GetCA(ctx context.Context, name string) (*store.CA, error)
	GetCertificateByCA(ctx context.Context, caID, serial string) (*store.Certificate, error)
	ListPrincipals(ctx context.Context) ([]*store.Principal, error)
}

// AuthenticateCert logs in a caller by the client certificate it presented
// on the API's TLS connection (leaf first, then any intermediates): the
// leaf must chain to the operator CA (Config.OperatorCA), allow client
// authentication, be valid now, be recorded in the inventory and not be
// revoked, and one of its names (CN=…, dns:…, uri:…, email:…) must be an
// identity of exactly one enabled principal.
func (s *Service) AuthenticateCert(ctx context.Context, chain []*x509.Certificate) (string, error) {
	if s.cfg.OperatorCA == "" {
		return "", fault.New(fault.Unauthenticated, "client-certificate login is not enabled (access.operator_ca); send an API token")
	}
	if len(chain) == 0 {
		return "", fault.New(fault.Unauthenticated, "no client certificate")
	}
	st := s.cfg.CertStore
	ca, err := st.GetCA(ctx, s.cfg.OperatorCA)
	if err != nil {
		return "", fmt.Errorf("operator CA %q: %w", s.cfg.OperatorCA, err)
	}
	anchor, err := x509.ParseCertificate(ca.CertDER)
	if err != nil {
		return "", fmt.Errorf("operator CA %q: %w", s.cfg.OperatorCA, err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(anchor)
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	leaf := chain[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: s.cfg.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return "", fault.New(fault.Unauthenticated, "the client certificate is not a valid operator certificate: %v", err)
	}
	// Only a certificate the operator CA issued directly is in its
	// inventory; one below a sub-CA is refused, as its revocation could
	// not be checked here.
	serial := strings.ToLower(leaf.SerialNumber.Text(16))
	rec, err := st.GetCertificateByCA(ctx, ca.ID, serial)
	if store.IsNotFound(err) {
		return "", fault.New(fault.Unauthenticated, "the client certificate %s was not issued by the operator CA %q", serial, s.cfg.OperatorCA)
	}
	if err != nil {
		return "", fmt.Errorf("client certificate %s: %w", serial, err)
	}
	// The certificate is the operator CA's and the handshake proved its
	// key: a refusal from here on names it for the audit log.
	proved := func(err error) error {
		return &fault.Credential{Err: err, Actor: "certificate:" + serial, About: fmt.Sprintf("certificate issued by CA %q", s.cfg.OperatorCA)}
	}
	if rec.Status == store.CertRevoked {
		return "", proved(fault.New(fault.Unauthenticated, "the client certificate %s is revoked", serial))
	}
	names := certIdentities(leaf)
	ps, err := st.ListPrincipals(ctx)
	if err != nil {
		return "", err
	}
	var match []string
	for _, p := range ps {
		if slices.ContainsFunc(p.Identities, func(id string) bool { return slices.Contains(names, id) }) {
			match = append(match, p.Name)
		}
	}
	switch len(match) {
	case 0:
		return "", proved(fault.New(fault.Unauthenticated, "no principal has an identity of the client certificate (%s)", strings.Join(names, ", ")))
	case 1:
		return match[0], nil
	default:
		return "", proved(fault.New(fault.Unauthenticated, "the client certificate's names match several principals (%s); give each its own identity", strings.Join(match, ", ")))
	}
}

// certIdentities lists a certificate's names in the form principals name
// their identities.
func certIdentities(c *x509.Certificate) []string {
	var out []string
	if c.Subject.CommonName != "" {
		out = append(out, "CN="+c.Subject.CommonName)
	}
	for _, d := range c.DNSNames {
		out = append(out, "dns:"+strings.ToLower(d))
	}
	for _, u := range c.URIs {
		out = append(out, "uri:"+u.String())
	}
	for _, e := range c.EmailAddresses {
		out = append(out, "email:"+e)
	}
	return out
}
