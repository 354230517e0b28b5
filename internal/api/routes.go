package api

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"strconv"
	"strings"
	"time"

	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/authz"
	"github.com/trustgate/trustgate/internal/ca"
	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/inventory"
	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/store"
)

// Route is one entry of the route table: the pattern, its documentation and
// its handler. The OpenAPI document is generated from these fields, so a
// route cannot exist undocumented.
type Route struct {
	Method  string
	Path    string // a net/http ServeMux pattern path, e.g. /v1/cas/{name}
	Summary string
	// Public routes need no credentials.
	Public bool
	// Audit is the action a public route that changes something is
	// recorded under in the audit log (its caller proves itself some other
	// way: a bootstrap token, a certificate); a test requires it of every
	// public route that is not a GET.
	Audit string
	// Action is the policy action a non-public route needs, e.g.
	// "cert:Read". Every non-public route has one; a test walks the table.
	Action string
	// Resource names what the action is on: a pattern whose {path values}
	// are filled from the request, e.g. "ca/{name}"; "*" for routes on a
	// whole collection. "" means the handler authorizes by itself, because
	// the resource or the conditions are known only from the body or the
	// store (issuance, revocation); the wrapper refuses to answer for a
	// handler that returns without having done so.
	Resource string
	// Request and Response are zero values of the wire types (nil for none).
	Request  any
	Response any
	// Status is the success status; default 200.
	Status int
	// Query documents query parameters.
	Query []Param
	// ContentType is set for routes that answer with something other than JSON.
	ContentType string
	// MaxBodyBytes raises the body limit of Config.MaxBodyBytes for this route.
	MaxBodyBytes int64
	handle       func(*request) (*result, error)
}

// Param documents a query parameter.
type Param struct {
	Name, Description string
}

// Routes returns the route table. Every route the server answers is here.
func Routes() []Route {
	return append([]Route{
		{Method: "GET", Path: "/healthz", Summary: "Readiness: 200 when the server is ready.", Public: true,
			Response: apiv1.Health{}, handle: healthz},
		{Method: "GET", Path: "/ca/{file}", Summary: "A CA certificate as PEM ({name}.pem); ?chain=1 adds its parents up to the root.",
			Public: true, ContentType: "application/x-pem-file", Query: []Param{{"chain", "1 to return the chain"}}, handle: caPEM},
		{Method: "GET", Path: "/v1/openapi.json", Summary: "This API's OpenAPI 3 document.", Public: true, handle: openapiDoc},

		{Method: "POST", Path: "/v1/cas", Action: "ca:Create", Resource: "ca/*", Summary: "Create a root CA, an intermediate under a parent, or an intermediate awaiting an external parent (its CSR is in csr_pem).",
			Request: apiv1.CreateCARequest{}, Response: apiv1.CA{}, Status: 201, handle: createCA},
		{Method: "GET", Path: "/v1/cas", Action: "ca:List", Resource: "*", Summary: "List CAs.", Response: apiv1.CAList{}, handle: listCAs},
		{Method: "GET", Path: "/v1/cas/{name}", Action: "ca:Read", Resource: "ca/{name}", Summary: "Show a CA.", Response: apiv1.CA{}, handle: getCA},
		{Method: "POST", Path: "/v1/cas/{name}/certificate", Action: "ca:ImportCertificate", Resource: "ca/{name}", Summary: "Activate a pending CA with the certificate its external parent signed.",
			Request: apiv1.ImportCACertRequest{}, Response: apiv1.CA{}, handle: importCACert},
		{Method: "POST", Path: "/v1/cas/{name}/disable", Action: "ca:Disable", Resource: "ca/{name}", Summary: "Stop a CA from issuing.", Response: apiv1.CA{}, handle: setEnabled(false)},
		{Method: "POST", Path: "/v1/cas/{name}/enable", Action: "ca:Enable", Resource: "ca/{name}", Summary: "Let a disabled CA issue again.", Response: apiv1.CA{}, handle: setEnabled(true)},
		{Method: "POST", Path: "/v1/cas/{name}/export-key", Action: "ca:ExportKey", Resource: "ca/{name}", Summary: "Export a root CA's key once, as encrypted PKCS#8 PEM.",
			Request: apiv1.ExportCAKeyRequest{}, Response: apiv1.ExportCAKeyResponse{}, handle: exportKey},
		{Method: "POST", Path: "/v1/cas/{name}/rotate", Action: "ca:Rotate", Resource: "ca/{name}", Summary: "Create the successor of an intermediate CA (new key, same parent and constraints); issuance through the CA's name moves to it, trust stores holding the old CA get it added, and the old CA keeps its CRL and OCSP.",
			Request: apiv1.RotateCARequest{}, Response: apiv1.RotateCAResponse{}, Status: 201, handle: rotateCA},
		{Method: "POST", Path: "/v1/cas/{name}/offline", Action: "ca:TakeOffline", Resource: "ca/{name}", Summary: "Remove an exported root CA's key from the server.", Response: apiv1.CA{}, handle: offline},

		{Method: "POST", Path: "/v1/certificates", Action: "cert:Issue", Resource: "", Summary: "Issue a certificate from a CSR or with a server-generated key (returned once, never stored).",
			Request: apiv1.IssueRequest{}, Response: apiv1.IssueResponse{}, Status: 201, handle: issue},
		{Method: "GET", Path: "/v1/certificates", Action: "cert:List", Resource: "*", Summary: "Search the inventory with cursor pagination.", Response: apiv1.CertificateList{},
			Query: []Param{{"ca", "CA name"}, {"status", "active, revoked or expired"}, {"expiring_within", "duration, e.g. 30d"},
				{"san_contains", "substring of any SAN"}, {"cursor", "the next value of the previous page"}, {"limit", "page size, at most 1000"}},
			handle: listCerts},
		{Method: "GET", Path: "/v1/certificates/{serial}", Action: "cert:Read", Resource: "", Summary: "Show a certificate with its PEM and chain; renewed_by names the certificate that renewed it and latest the newest of its renewals.", Response: apiv1.CertificateDetail{}, handle: getCert},
		{Method: "POST", Path: "/v1/certificates/{serial}/revoke", Action: "cert:Revoke", Resource: "", Summary: "Revoke a certificate with an RFC 5280 reason; only certificateHold can be released. Already revoked: 409 stating the original reason and time.",
			Request: apiv1.RevokeRequest{}, Response: apiv1.Certificate{}, handle: revoke},
		{Method: "POST", Path: "/v1/certificates/{serial}/unhold", Action: "cert:Unhold", Resource: "", Summary: "Release a certificate on hold (certificateHold).", Response: apiv1.Certificate{}, handle: unhold},
		{Method: "POST", Path: "/v1/certificates/import", Action: "cert:Import", Resource: "*", Summary: "Add an external certificate to the inventory for tracking.",
			Request: apiv1.ImportCertificateRequest{}, Response: apiv1.Certificate{}, Status: 201, handle: importCert},

		{Method: "POST", Path: "/v1/tokens", Action: "token:Create", Resource: "", Summary: "Create a bootstrap (enrolment) token bound to a CA, a profile, a common name, SANs and a maximum lifetime; the secret is answered once and only its SHA-256 is stored. Authorized as an issuance of everything the token allows.",
			Request: apiv1.CreateBootstrapTokenRequest{}, Response: apiv1.BootstrapToken{}, Status: 201, handle: createBootstrapToken},
		{Method: "POST", Path: "/v1/tokens/{id}/revoke", Action: "token:Revoke", Resource: "", Summary: "Revoke a bootstrap token by ID: enrolments with it are refused from then on. Authorized on the token's CA.",
			Response: apiv1.BootstrapToken{}, handle: revokeBootstrapToken},
		{Method: "POST", Path: "/v1/enroll", Public: true, Audit: "cert:Enroll", Summary: "Obtain a first certificate from a CSR with a bootstrap token (in the body); the certificate must stay within the token's binding, and each success spends one of its uses.",
			Request: apiv1.EnrollRequest{}, Response: apiv1.IssueResponse{}, Status: 201, handle: enroll},
		{Method: "POST", Path: "/v1/renew", Public: true, Audit: "cert:Renew", Summary: "Renew the certificate presented as TLS client certificate (issued here, in the inventory, neither revoked nor expired) for the new key of a CSR; the successor keeps its identity (subject, SANs, profile, CA) and lifetime.",
			Request: apiv1.RenewRequest{}, Response: apiv1.IssueResponse{}, Status: 201, handle: renew},

		{Method: "POST", Path: "/v1/truststores", Action: "truststore:Create", Resource: "truststore/*", Summary: "Create a trust store at version 1, optionally with CAs of this Trustgate (whose revocations it follows) and external CA certificates.",
			Request: apiv1.CreateTrustStoreRequest{}, Response: apiv1.TrustStore{}, Status: 201, handle: createTrustStore},
		{Method: "GET", Path: "/v1/truststores", Action: "truststore:List", Resource: "*", Summary: "List trust stores.", Response: apiv1.TrustStoreList{}, handle: listTrustStores},
		{Method: "GET", Path: "/v1/truststores/{name}", Action: "truststore:Read", Resource: "truststore/{name}", Summary: "Show a trust store: its version, CAs and CRL sources.", Response: apiv1.TrustStore{}, handle: getTrustStore},
		{Method: "POST", Path: "/v1/truststores/{name}/cas", Action: "truststore:Update", Resource: "truststore/{name}", Summary: "Add a CA of this Trustgate (ca) or external CA certificates (certificate_pem, a PEM bundle); makes a new version.",
			Request: apiv1.AddTrustStoreCARequest{}, Response: apiv1.TrustStore{}, handle: addTrustStoreCA},
		{Method: "DELETE", Path: "/v1/truststores/{name}/cas/{ref}", Action: "truststore:Update", Resource: "truststore/{name}", Summary: "Remove a CA, named by CA name or by the SHA-256 fingerprint of an external certificate; makes a new version.",
			Response: apiv1.TrustStore{}, handle: removeTrustStoreCA},
		{Method: "POST", Path: "/v1/truststores/{name}/crls", Action: "truststore:Update", Resource: "truststore/{name}", Summary: "Add a CRL (crl_pem or base64 crl_der, signed by an external CA of the store; replaces an older CRL of the same issuer and scope) or a CRL URL for gateways to fetch (url); makes a new version.",
			Request: apiv1.AddTrustStoreCRLRequest{}, Response: apiv1.TrustStore{}, MaxBodyBytes: crlUploadBodyBytes, handle: addTrustStoreCRL},
		{Method: "DELETE", Path: "/v1/truststores/{name}/crls/{id}", Action: "truststore:Update", Resource: "truststore/{name}", Summary: "Remove an external CRL source by ID; makes a new version.",
			Response: apiv1.TrustStore{}, handle: removeTrustStoreCRL},
		{Method: "GET", Path: "/v1/truststores/{name}/bundle", Action: "truststore:Read", Resource: "truststore/{name}", Summary: "The trust store's CA certificates as a PEM bundle (CAs of this Trustgate first).",
			ContentType: "application/x-pem-file", handle: trustStoreBundle},
		{Method: "GET", Path: "/v1/truststores/{name}/snapshot", Action: "truststore:Read", Resource: "truststore/{name}", Summary: "What a gateway enforces: CA certificates, CRLs (the current CRL of each CA of this Trustgate, and uploaded ones) and CRL URLs. Answers with an ETag; If-None-Match with it answers 304 while nothing changed; with ?wait=30s as well (at most 50s) the answer waits for a change, such as a revocation, and is 304 only when none came. With ?have= naming the full CRLs the gateway holds, by number and digest, the CRLs of this Trustgate's CAs come as delta CRLs from those (delta_crls) or are said unchanged (unchanged_crls); have_digests says that this control plane reads digests in have.",
			Query: []Param{
				{Name: "wait", Description: "With If-None-Match naming the current ETag: hold the answer until the snapshot changes, at most this long (a duration such as 30s, at most 50s)."},
				{Name: "have", Description: "The full CRLs the gateway holds, as <key id>:<CRL number>:<digest> entries joined by commas (the key id is the CRL's authority key identifier in hex; the digest is the first 16 bytes of the SHA-256 of the CRL's DER in hex, 32 digits; at most 256 entries, each key once). The CRL of each CA of this Trustgate named there comes as a delta CRL (RFC 5280 §5.2.4) from the one held, in delta_crls, or its key id is listed in unchanged_crls when the CRL held is current, both only when the digest is that of the CRL this control plane has under that number; otherwise the CRL comes whole in crls, as it does when the control plane cannot make a delta from it. An entry may leave out the digest (<key id>:<CRL number>, as gateways from before digests send): its CA's CRL then comes whole, unless the number held is above the current one. A malformed entry or digest is a 400."},
			},
			Response: apiv1.TrustStoreSnapshot{}, handle: trustStoreSnapshot},
	}, accessRoutes()...)
}

func healthz(r *request) (*result, error) {
	if r.h.cfg.Ready != nil && !r.h.cfg.Ready() {
		return nil, fault.New(fault.Unavailable, "not ready")
	}
	return ok(apiv1.Health{Status: "ok"})
}

func caPEM(r *request) (*result, error) {
	name, found := strings.CutSuffix(r.PathValue("file"), ".pem")
	if !found {
		return nil, fault.New(fault.NotFound, "CA certificates are served as /ca/{name}.pem")
	}
	c, err := r.h.cfg.CA.GetCA(r.Context(), name)
	if err != nil {
		return nil, err
	}
	if len(c.CertDER) == 0 {
		return nil, fault.New(fault.NotFound, "CA %q has no certificate yet", name)
	}
	ders := [][]byte{c.CertDER}
	if r.URL.Query().Get("chain") == "1" {
		if ders, err = r.h.cfg.CA.Chain(r.Context(), c); err != nil {
			return nil, err
		}
	}
	return &result{status: 200, raw: []byte(inventory.EncodePEM(ders...)), contentType: "application/x-pem-file"}, nil
}

func (h *Handler) caView(r *request, c *store.CA) apiv1.CA {
	v := apiv1.CA{
		ID: c.ID, Name: c.Name, ExternalParent: c.ExternalParent, State: string(c.State), KeyType: c.KeyType,
		Subject: c.Subject, Depth: c.Depth, KeyExported: c.KeyExported, CreatedAt: c.CreatedAt, CRLPartitions: c.CRLPartitions,
	}
	if c.PathLen >= 0 {
		pl := c.PathLen
		v.PathLen = &pl
	}
	if c.ParentID != "" && h.cfg.CAByID != nil {
		if p, err := h.cfg.CAByID(r.Context(), c.ParentID); err == nil {
			v.Parent = p.Name
		}
	}
	if len(c.CertDER) > 0 {
		nb, na := c.NotBefore, c.NotAfter
		v.NotBefore, v.NotAfter = &nb, &na
		v.CertificatePEM = inventory.EncodePEM(c.CertDER)
		if cert, err := x509.ParseCertificate(c.CertDER); err == nil {
			v.Serial = strings.ToLower(cert.SerialNumber.Text(16))
			v.NameConstraints = constraintsView(cert)
		}
	}
	if len(c.CSRDER) > 0 && c.State == store.CAPending {
		v.CSRPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: c.CSRDER}))
	}
	// Best effort, as the parent's name: a view is never refused for it.
	if pred, succ, err := h.cfg.CA.Generations(r.Context(), c); err == nil {
		v.Predecessor, v.Successor = pred, succ
	}
	return v
}

func rotateCA(r *request) (*result, error) {
	var in apiv1.RotateCARequest
	if err := r.decodeOptional(&in); err != nil {
		return nil, err
	}
	if in.Name != "" {
		if err := ca.ValidateName(in.Name); err != nil {
			return nil, err
		}
	}
	rot, err := r.h.cfg.CA.Rotate(r.Context(), ca.RotateRequest{CA: r.PathValue("name"), Name: in.Name, Validity: in.Validity})
	if err != nil {
		return nil, err
	}
	out := apiv1.RotateCAResponse{Old: r.h.caView(r, rot.Old), Successor: r.h.caView(r, rot.New), Generation: rot.Generation,
		TrustStores: rot.TrustStores, Warning: rot.TrustStoreError}
	if out.TrustStores == nil {
		out.TrustStores = []string{}
	}
	return created(out)
}

func createCA(r *request) (*result, error) {
	var in apiv1.CreateCARequest
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	c, err := r.h.cfg.CA.CreateCA(r.Context(), ca.CreateRequest{
		Name: in.Name, Parent: in.Parent, ExternalParent: in.ExternalParent, KeyType: in.KeyType,
		Subject: in.Subject, Validity: in.Validity, PathLen: in.PathLen, CRLPartitions: in.CRLPartitions,
		NameConstraints: constraintsInput(in.NameConstraints),
	})
	if err != nil {
		return nil, err
	}
	return created(r.h.caView(r, c))
}

func listCAs(r *request) (*result, error) {
	cs, err := r.h.cfg.CA.ListCAs(r.Context())
	if err != nil {
		return nil, err
	}
	out := apiv1.CAList{CAs: []apiv1.CA{}}
	for _, c := range cs {
		out.CAs = append(out.CAs, r.h.caView(r, c))
	}
	return ok(out)
}

func getCA(r *request) (*result, error) {
	c, err := r.h.cfg.CA.GetCA(r.Context(), r.PathValue("name"))
	if err != nil {
		return nil, err
	}
	return ok(r.h.caView(r, c))
}

func importCACert(r *request) (*result, error) {
	var in apiv1.ImportCACertRequest
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	c, err := r.h.cfg.CA.ImportCACert(r.Context(), r.PathValue("name"), []byte(in.CertificatePEM))
	if err != nil {
		return nil, err
	}
	return ok(r.h.caView(r, c))
}

func setEnabled(enabled bool) func(*request) (*result, error) {
	return func(r *request) (*result, error) {
		c, err := r.h.cfg.CA.SetEnabled(r.Context(), r.PathValue("name"), enabled)
		if err != nil {
			return nil, err
		}
		return ok(r.h.caView(r, c))
	}
}

func exportKey(r *request) (*result, error) {
	var in apiv1.ExportCAKeyRequest
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	out, err := r.h.cfg.CA.ExportKey(r.Context(), r.PathValue("name"), []byte(in.Passphrase))
	if err != nil {
		return nil, err
	}
	return ok(apiv1.ExportCAKeyResponse{EncryptedKeyPEM: string(out)})
}

func offline(r *request) (*result, error) {
	c, err := r.h.cfg.CA.TakeOffline(r.Context(), r.PathValue("name"))
	if err != nil {
		return nil, err
	}
	return ok(r.h.caView(r, c))
}

func issue(r *request) (*result, error) {
	var in apiv1.IssueRequest
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	if in.PKCS12Passphrase != "" && in.CSR != "" {
		return nil, fault.New(fault.Invalid, "pkcs12_passphrase applies only to a server-generated key; a CSR's key is not ours to package")
	}
	is, err := r.h.cfg.CA.Issue(r.Context(), ca.IssueRequest{
		CA: in.CA, Profile: in.Profile, CSR: []byte(in.CSR), CommonName: in.CommonName, KeyType: in.KeyType,
		DNS: in.DNS, IP: in.IP, URI: in.URI, Email: in.Email, Validity: in.Validity, Managed: in.Managed,
		Requester: r.principal,
		Authorize: func(_ context.Context, iss *authz.Issuance) error { return r.authorize("ca/"+in.CA, iss) },
	})
	if err != nil {
		return nil, err
	}
	out := apiv1.IssueResponse{
		Certificate:    certView(is.Record, in.CA, r.h.cfg.Now()),
		CertificatePEM: inventory.EncodePEM(is.Cert.Raw),
		ChainPEM:       inventory.EncodePEM(is.Chain...),
	}
	if is.Key != nil {
		if in.PKCS12Passphrase != "" {
			if out.PKCS12, err = inventory.EncodePKCS12(is.Key, is.Cert.Raw, is.Chain, in.PKCS12Passphrase); err != nil {
				return nil, err
			}
		} else if out.PrivateKeyPEM, err = inventory.EncodeKeyPEM(is.Key); err != nil {
			return nil, err
		}
	}
	r.w.Header().Set("Cache-Control", "no-store")
	return created(out)
}

func certView(c *store.Certificate, caName string, now time.Time) apiv1.Certificate {
	v := apiv1.Certificate{
		Serial: c.Serial, CA: caName, Subject: c.Subject, SANs: c.SANs, Profile: c.Profile, KeyType: c.KeyType,
		NotBefore: c.NotBefore, NotAfter: c.NotAfter, Fingerprint: c.Fingerprint, Status: inventory.Status(c, now),
		Requester: c.Requester, Imported: c.Imported, Managed: c.Managed, CreatedAt: c.CreatedAt,
	}
	if v.SANs == nil {
		v.SANs = []string{}
	}
	if c.Status == store.CertRevoked {
		t := c.RevokedAt
		v.RevokedAt = &t
		v.RevocationReason = pki.ReasonName(c.Reason)
	}
	return v
}

// caNames resolves CA IDs to names once per request.
type caNames struct {
	r     *request
	names map[string]string
}

func (n *caNames) name(id string) string {
	if id == "" || n.r.h.cfg.CAByID == nil {
		return ""
	}
	if v, ok := n.names[id]; ok {
		return v
	}
	if n.names == nil {
		n.names = map[string]string{}
	}
	c, err := n.r.h.cfg.CAByID(n.r.Context(), id)
	if err != nil {
		return ""
	}
	n.names[id] = c.Name
	return c.Name
}

func listCerts(r *request) (*result, error) {
	q := r.URL.Query()
	iq := inventory.Query{CA: q.Get("ca"), Status: q.Get("status"), SANContains: q.Get("san_contains"), Cursor: q.Get("cursor")}
	if v := q.Get("expiring_within"); v != "" {
		d, err := apiv1.ParseDuration(v)
		if err != nil {
			return nil, fault.New(fault.Invalid, "expiring_within: %v", err)
		}
		iq.ExpiringWithin = d
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return nil, fault.New(fault.Invalid, "limit %q must be a positive integer", v)
		}
		iq.Limit = n
	}
	certs, next, err := r.h.cfg.Inventory.List(r.Context(), iq)
	if err != nil {
		return nil, err
	}
	names := &caNames{r: r}
	now := r.h.cfg.Now()
	out := apiv1.CertificateList{Certificates: make([]apiv1.Certificate, 0, len(certs)), Next: next}
	for _, c := range certs {
		out.Certificates = append(out.Certificates, certView(c, names.name(c.CAID), now))
	}
	return ok(out)
}

func getCert(r *request) (*result, error) {
	c, names, err := r.certificateAuthorized()
	if err != nil {
		return nil, err
	}
	chain, err := r.h.cfg.Inventory.Chain(r.Context(), c)
	if err != nil {
		return nil, err
	}
	renewedBy, latest, err := r.h.cfg.Inventory.Successors(r.Context(), c)
	if err != nil {
		return nil, err
	}
	return ok(apiv1.CertificateDetail{
		Certificate:    certView(c, names.name(c.CAID), r.h.cfg.Now()),
		CertificatePEM: inventory.EncodePEM(c.DER),
		ChainPEM:       inventory.EncodePEM(chain...),
		RenewedBy:      renewedBy,
		Latest:         latest,
	})
}

func importCert(r *request) (*result, error) {
	var in apiv1.ImportCertificateRequest
	if err := r.decode(&in); err != nil {
		return nil, err
	}
	c, err := r.h.cfg.Inventory.Import(r.Context(), []byte(in.CertificatePEM), r.principal)
	if err != nil {
		return nil, err
	}
	names := &caNames{r: r}
	return created(certView(c, names.name(c.CAID), r.h.cfg.Now()))
}

func revoke(r *request) (*result, error) {
	var in apiv1.RevokeRequest
	if err := r.decodeOptional(&in); err != nil {
		return nil, err
	}
	reason := 0
	if in.Reason != "" {
		var err error
		if reason, err = pki.ParseReason(in.Reason); err != nil {
			return nil, fault.New(fault.Invalid, "%v", err)
		}
	}
	if _, _, err := r.certificateAuthorized(); err != nil {
		return nil, err
	}
	c, err := r.h.cfg.CA.Revoke(r.Context(), r.PathValue("serial"), reason, r.principal)
	if err != nil {
		return nil, err
	}
	names := &caNames{r: r}
	return ok(certView(c, names.name(c.CAID), r.h.cfg.Now()))
}

func unhold(r *request) (*result, error) {
	if _, _, err := r.certificateAuthorized(); err != nil {
		return nil, err
	}
	c, err := r.h.cfg.CA.Unhold(r.Context(), r.PathValue("serial"), r.principal)
	if err != nil {
		return nil, err
	}
	names := &caNames{r: r}
	return ok(certView(c, names.name(c.CAID), r.h.cfg.Now()))
}

// certificateAuthorized looks up the certificate of the {serial} path value
// and authorizes the route's action on its CA ("ca/NAME"; "ca/-" for an
// imported certificate of an issuer Trustgate does not hold).
func (r *request) certificateAuthorized() (*store.Certificate, *caNames, error) {
	c, err := r.h.cfg.Inventory.Get(r.Context(), r.PathValue("serial"))
	if err != nil {
		return nil, nil, err
	}
	names := &caNames{r: r}
	res := "ca/-"
	if n := names.name(c.CAID); n != "" {
		res = "ca/" + n
	}
	if err := r.authorize(res, nil); err != nil {
		return nil, nil, err
	}
	return c, names, nil
}

func constraintsInput(nc *apiv1.NameConstraints) pki.NameConstraintsInput {
	if nc == nil {
		return pki.NameConstraintsInput{}
	}
	return pki.NameConstraintsInput{
		PermittedDNS: nc.PermittedDNS, ExcludedDNS: nc.ExcludedDNS, PermittedIP: nc.PermittedIP, ExcludedIP: nc.ExcludedIP,
		PermittedURI: nc.PermittedURI, ExcludedURI: nc.ExcludedURI, PermittedEmail: nc.PermittedEmail, ExcludedEmail: nc.ExcludedEmail,
	}
}

// constraintsView shows the name constraints of a CA certificate, or nil.
func constraintsView(c *x509.Certificate) *apiv1.NameConstraints {
	nc := &apiv1.NameConstraints{
		PermittedDNS: c.PermittedDNSDomains, ExcludedDNS: c.ExcludedDNSDomains,
		PermittedURI: c.PermittedURIDomains, ExcludedURI: c.ExcludedURIDomains,
		PermittedEmail: c.PermittedEmailAddresses, ExcludedEmail: c.ExcludedEmailAddresses,
	}
	for _, n := range c.PermittedIPRanges {
		nc.PermittedIP = append(nc.PermittedIP, n.String())
	}
	for _, n := range c.ExcludedIPRanges {
		nc.ExcludedIP = append(nc.ExcludedIP, n.String())
	}
	if constraintsInput(nc).Empty() {
		return nil
	}
	return nc
}
