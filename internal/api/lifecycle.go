package api

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/netip"
	"time"

	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/authz"
	"github.com/trustgate/trustgate/internal/ca"
	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/inventory"
	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/store"
)

// BootstrapTokens is what the handlers need to create and spend enrolment
// tokens (authz.Bootstrap satisfies it).
type BootstrapTokens interface {
	Create(ctx context.Context, spec authz.BootstrapSpec) (string, *store.BootstrapToken, error)
	Lookup(ctx context.Context, secret string) (*store.BootstrapToken, error)
	Use(ctx context.Context, tok *store.BootstrapToken) error
	Release(ctx context.Context, tok *store.BootstrapToken) error
	Get(ctx context.Context, id string) (*store.BootstrapToken, error)
	Revoke(ctx context.Context, id string) (*store.BootstrapToken, error)
}

// Renewal is what the handlers need to renew a certificate its holder
// presents (ca.Service satisfies it).
type Renewal interface {
	VerifyPeer(ctx context.Context, chain []*x509.Certificate) (*store.Certificate, error)
	Renew(ctx context.Context, old *store.Certificate, csr []byte) (*ca.Issued, error)
}

// createBootstrapToken makes an enrolment token. The caller must be allowed
// token:Create on the CA for a certificate with every name and the longest
// lifetime the token allows: a token cannot obtain more than its creator could.
func createBootstrapToken(r *request) (*result, error) {
	if r.h.cfg.Bootstrap == nil {
		return nil, fault.New(fault.Unavailable, "bootstrap tokens are not enabled on this server")
	}
	var in apiv1.CreateBootstrapTokenRequest
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	if in.CA == "" || in.Profile == "" || in.Name == "" {
		return nil, fault.New(fault.Invalid, "ca, profile and name are required")
	}
	prof, err := pki.LookupProfile(in.Profile)
	if err != nil {
		return nil, fault.New(fault.Invalid, "%v", err)
	}
	if prof.IsCA {
		return nil, fault.New(fault.Invalid, "profile %q issues CA certificates; bootstrap tokens are for leaf certificates", prof.Name)
	}
	if prof.ServerAuth {
		// The issuance pipeline makes a server certificate's common name
		// one of its SANs, so it must be a host name or an address.
		_, dnsErr := pki.NormalizeDNSName(in.Name, true)
		if _, ipErr := netip.ParseAddr(in.Name); dnsErr != nil && ipErr != nil {
			return nil, fault.New(fault.Invalid, "name %q of a %s token must be a host name or IP address: a server certificate's common name is also one of its SANs", in.Name, prof.Name)
		}
	}
	dns := in.DNS
	if len(in.DNS)+len(in.IP)+len(in.URI) == 0 {
		if n, err := pki.NormalizeDNSName(in.Name, false); err == nil {
			dns = []string{n}
		}
	}
	sans, err := pki.ParseSANs(dns, in.IP, in.URI, nil)
	if err != nil {
		return nil, fault.New(fault.Invalid, "%v", err)
	}
	spec := authz.BootstrapSpec{Name: in.Name, Profile: prof.Name, SANs: sans.Strings(), Uses: in.Uses, CreatedBy: r.principal}
	if in.Uses < 0 {
		return nil, fault.New(fault.Invalid, "uses must be positive")
	}
	if in.MaxValidity != "" {
		if spec.MaxValidity, err = apiv1.ParseDuration(in.MaxValidity); err != nil {
			return nil, fault.New(fault.Invalid, "max_validity: %v", err)
		}
		if err := prof.CheckValidity(spec.MaxValidity); err != nil {
			return nil, fault.New(fault.Invalid, "max_validity: %v", err)
		}
	}
	if in.ExpiresIn != "" {
		if spec.TTL, err = apiv1.ParseDuration(in.ExpiresIn); err != nil {
			return nil, fault.New(fault.Invalid, "expires_in: %v", err)
		}
	}
	iss := &authz.Issuance{Profile: prof.Name, DNS: sans.DNS, Subject: map[string][]string{"CN": {in.Name}},
		Validity: spec.MaxValidity}
	if iss.Validity == 0 {
		iss.Validity = prof.MaxValidity
	}
	for _, ip := range sans.IP {
		if a, ok := netip.AddrFromSlice(ip); ok {
			iss.IPs = append(iss.IPs, a.Unmap())
		}
	}
	for _, u := range sans.URI {
		iss.URIs = append(iss.URIs, u.String())
	}
	if err := r.authorize("ca/"+in.CA, iss); err != nil {
		return nil, err
	}
	c, err := r.h.cfg.CA.GetCA(r.Context(), in.CA)
	if err != nil {
		return nil, err
	}
	spec.CAID = c.ID
	secret, rec, err := r.h.cfg.Bootstrap.Create(r.Context(), spec)
	if err != nil {
		return nil, err
	}
	out := bootstrapView(rec, c.Name)
	out.Token = secret
	r.w.Header().Set("Cache-Control", "no-store")
	return created(out)
}

// revokeBootstrapToken makes a token unusable. The caller must be allowed
// token:Revoke on the token's CA.
func revokeBootstrapToken(r *request) (*result, error) {
	if r.h.cfg.Bootstrap == nil || r.h.cfg.CAByID == nil {
		return nil, fault.New(fault.Unavailable, "bootstrap tokens are not enabled on this server")
	}
	tok, err := r.h.cfg.Bootstrap.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	c, err := r.h.cfg.CAByID(r.Context(), tok.CAID)
	if err != nil {
		return nil, fmt.Errorf("revoke bootstrap token: CA of %s: %w", tok.ID, err)
	}
	if err := r.authorize("ca/"+c.Name, nil); err != nil {
		return nil, err
	}
	if tok, err = r.h.cfg.Bootstrap.Revoke(r.Context(), tok.ID); err != nil {
		return nil, err
	}
	return ok(bootstrapView(tok, c.Name))
}

func bootstrapView(t *store.BootstrapToken, caName string) apiv1.BootstrapToken {
	v := apiv1.BootstrapToken{ID: t.ID, Name: t.Name, CA: caName, Profile: t.Profile, SANs: t.SANs,
		Uses: t.Uses, MaxUses: t.MaxUses, CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, Revoked: t.Revoked}
	if v.SANs == nil {
		v.SANs = []string{}
	}
	if t.MaxValidity > 0 {
		v.MaxValidity = pki.FormatDuration(t.MaxValidity)
	}
	return v
}

// enroll issues a first certificate to the holder of a bootstrap token. The
// token's binding is checked on the certificate as the issuance pipeline
// resolved it, and a use is spent only then, just before signing; when the
// issuance fails after that (a lint error, say), the use is given back.
func enroll(r *request) (*result, error) {
	if r.h.cfg.Bootstrap == nil || r.h.cfg.CAByID == nil {
		return nil, fault.New(fault.Unavailable, "bootstrap tokens are not enabled on this server")
	}
	var in apiv1.EnrollRequest
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	if in.Token == "" {
		return nil, fault.New(fault.Unauthenticated, "token is required: enrolment is authenticated by a bootstrap token")
	}
	if in.CSR == "" {
		return nil, fault.New(fault.Invalid, "csr is required: the key is generated by the workload and never sent")
	}
	tok, err := r.h.cfg.Bootstrap.Lookup(r.Context(), in.Token)
	if err != nil {
		return nil, err
	}
	c, err := r.h.cfg.CAByID(r.Context(), tok.CAID)
	if err != nil {
		return nil, fmt.Errorf("enroll: CA of bootstrap token %s: %w", tok.ID, err)
	}
	r.setActor("bootstrap-token:"+tok.ID, "ca/"+c.Name)
	dns, ip, uri := in.DNS, in.IP, in.URI
	if len(dns)+len(ip)+len(uri) == 0 {
		sans, err := pki.ParseSANStrings(tok.SANs)
		if err != nil {
			return nil, fmt.Errorf("enroll: SANs of bootstrap token %s: %w", tok.ID, err)
		}
		dns = sans.DNS
		for _, a := range sans.IP {
			ip = append(ip, a.String())
		}
		for _, u := range sans.URI {
			uri = append(uri, u.String())
		}
	}
	cn := in.CommonName
	if cn == "" {
		cn = tok.Name
	}
	validity := in.Validity
	if validity == "" && tok.MaxValidity > 0 {
		validity = fmt.Sprintf("%ds", int64(tok.MaxValidity/time.Second))
	}
	spent := false
	is, err := r.h.cfg.CA.Issue(r.Context(), ca.IssueRequest{
		CA: c.Name, Profile: tok.Profile, CSR: []byte(in.CSR), CommonName: cn, DNS: dns, IP: ip, URI: uri,
		Validity: validity, Requester: "bootstrap:" + tok.ID,
		Authorize: func(ctx context.Context, iss *authz.Issuance) error {
			if err := authz.CheckBinding(tok, iss); err != nil {
				return err
			}
			if err := r.h.cfg.Bootstrap.Use(ctx, tok); err != nil {
				return err
			}
			spent = true
			return nil
		},
	})
	if err != nil {
		if spent {
			// Nothing was issued after the use was spent (the pipeline
			// records before it returns): give the use back.
			if rerr := r.h.cfg.Bootstrap.Release(context.WithoutCancel(r.Context()), tok); rerr != nil {
				r.h.cfg.Logger.Error("could not give back a bootstrap token use", "token", tok.ID, "err", rerr)
			}
		}
		return nil, err
	}
	return issuedView(r, is, c.Name)
}

// renew issues the successor of the certificate the caller presents as its
// TLS client certificate.
func renew(r *request) (*result, error) {
	if r.h.cfg.Renewal == nil {
		return nil, fault.New(fault.Unavailable, "renewal is not enabled on this server")
	}
	if r.TLS == nil {
		return nil, fault.New(fault.Unauthenticated, "renewal needs a TLS connection with the certificate to renew as client certificate")
	}
	old, err := r.h.cfg.Renewal.VerifyPeer(r.Context(), r.TLS.PeerCertificates)
	if err != nil {
		return nil, err
	}
	r.setActor("certificate:"+old.Serial, "ca/"+(&caNames{r: r}).name(old.CAID))
	var in apiv1.RenewRequest
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	if in.CSR == "" {
		return nil, fault.New(fault.Invalid, "csr is required, for a new key")
	}
	is, err := r.h.cfg.Renewal.Renew(r.Context(), old, []byte(in.CSR))
	if err != nil {
		return nil, err
	}
	names := &caNames{r: r}
	return issuedView(r, is, names.name(is.Record.CAID))
}

// issuedView answers with a certificate issued from a CSR: no key to return.
func issuedView(r *request, is *ca.Issued, caName string) (*result, error) {
	r.w.Header().Set("Cache-Control", "no-store")
	return created(apiv1.IssueResponse{
		Certificate:    certView(is.Record, caName, r.h.cfg.Now()),
		CertificatePEM: inventory.EncodePEM(is.Cert.Raw),
		ChainPEM:       inventory.EncodePEM(is.Chain...),
	})
}
