// Package apiv1 holds the wire types of Trustgate's HTTP API under /v1: the
// requests, the responses and the error envelope. It has no behaviour beyond
// shape checks, so the server, the Go client and the OpenAPI document share
// one definition.
package apiv1

import "time"

// ErrorBody is the body of every error answer: {"error": {...}}.
type ErrorBody struct {
	Error Error `json:"error"`
}

// Error describes what went wrong. Code is a stable machine-readable word;
// Message says, for a 4xx, what the caller must change. A 5xx carries only
// an ID that is also in the server's log.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	ID      string `json:"id,omitempty"`
}

// CreateCARequest creates a root (no parent), an intermediate signed by a
// parent in Trustgate, or an intermediate awaiting an external parent.
type CreateCARequest struct {
	Name           string `json:"name"`
	Parent         string `json:"parent,omitempty"`
	ExternalParent bool   `json:"external_parent,omitempty"`
	// KeyType is one of ec-p256 (default), ec-p384, rsa-2048, rsa-3072, rsa-4096, ed25519.
	KeyType string `json:"key_type,omitempty"`
	// Subject is a distinguished name such as "CN=Payments CA,O=Example"; default CN=<name>.
	Subject string `json:"subject,omitempty"`
	// Validity accepts Go durations plus d and y: "10y", "90d".
	Validity string `json:"validity,omitempty"`
	// PathLen limits the CA levels below this one; nil is the default
	// (unconstrained for a root, 0 for an intermediate).
	PathLen *int `json:"path_len,omitempty"`
	// CRLPartitions > 1 spreads the CA's certificates over that many CRLs
	// (/crl/{name}/{n}.crl), so that no CRL grows without bound.
	CRLPartitions int `json:"crl_partitions,omitempty"`
	// NameConstraints are written, critical, into the CA's certificate and
	// enforced at issuance: no certificate below the CA can name outside them.
	NameConstraints *NameConstraints `json:"name_constraints,omitempty"`
}

// CA is a certificate authority as the API shows it. It never includes key material.
type CA struct {
	ID             string     `json:"id"`
	Name           string     `json:"name"`
	Parent         string     `json:"parent,omitempty"`
	ExternalParent bool       `json:"external_parent,omitempty"`
	State          string     `json:"state"`
	KeyType        string     `json:"key_type"`
	Subject        string     `json:"subject"`
	Depth          int        `json:"depth"`
	PathLen        *int       `json:"path_len,omitempty"`
	Serial         string     `json:"serial,omitempty"`
	NotBefore      *time.Time `json:"not_before,omitempty"`
	NotAfter       *time.Time `json:"not_after,omitempty"`
	KeyExported    bool       `json:"key_exported,omitempty"`
	CRLPartitions  int        `json:"crl_partitions,omitempty"`
	// NameConstraints are those of the CA's certificate, if any.
	NameConstraints *NameConstraints `json:"name_constraints,omitempty"`
	CertificatePEM  string           `json:"certificate_pem,omitempty"`
	CSRPEM          string           `json:"csr_pem,omitempty"`
	CreatedAt       time.Time        `json:"created_at"`
	// Successor is the CA that took over this one's issuance (ca rotate):
	// issuance through this CA's name goes to the newest generation,
	// while this one keeps publishing its CRL and answering OCSP.
	Successor string `json:"successor,omitempty"`
	// Predecessor is the CA this one took over from.
	Predecessor string `json:"predecessor,omitempty"`
}

// RotateCARequest asks for the successor of an intermediate CA. Both
// fields are optional.
type RotateCARequest struct {
	// Name of the successor; default the first generation's name plus
	// "-g<N>".
	Name string `json:"name,omitempty"`
	// Validity of the successor; default the old generation's lifetime,
	// cut to the parent's.
	Validity string `json:"validity,omitempty"`
}

// RotateCAResponse is the outcome of a CA rotation.
type RotateCAResponse struct {
	Old        CA  `json:"old"`
	Successor  CA  `json:"successor"`
	Generation int `json:"generation"`
	// TrustStores are the trust stores the successor was added to
	// because they hold the old CA.
	TrustStores []string `json:"truststores"`
	// Warning says what could not be done (adding the successor to some
	// trust store); the rotation itself stands.
	Warning string `json:"warning,omitempty"`
}

// CAList is the answer of GET /v1/cas.
type CAList struct {
	CAs []CA `json:"cas"`
}

// ImportCACertRequest activates a CA that awaits its certificate from an
// external parent. CertificatePEM holds the CA certificate, optionally
// followed by the external chain up to its root.
type ImportCACertRequest struct {
	CertificatePEM string `json:"certificate_pem"`
}

// ExportCAKeyRequest asks for the one-time export of a root CA's key,
// encrypted under Passphrase (at least 8 bytes).
type ExportCAKeyRequest struct {
	Passphrase string `json:"passphrase"`
}

// ExportCAKeyResponse holds the encrypted PKCS#8 PEM of the key.
type ExportCAKeyResponse struct {
	EncryptedKeyPEM string `json:"encrypted_key_pem"`
}

// IssueRequest asks a CA for a certificate, either from a CSR (the key stays
// with its owner) or with a key the server generates and returns once.
type IssueRequest struct {
	CA      string `json:"ca"`
	Profile string `json:"profile"`
	// CSR is a PEM certificate request; when empty the server generates the key.
	CSR        string `json:"csr,omitempty"`
	CommonName string `json:"common_name,omitempty"`
	// KeyType of a server-generated key (default ec-p256).
	KeyType  string   `json:"key_type,omitempty"`
	DNS      []string `json:"dns,omitempty"`
	IP       []string `json:"ip,omitempty"`
	URI      []string `json:"uri,omitempty"`
	Email    []string `json:"email,omitempty"`
	Validity string   `json:"validity,omitempty"`
	Managed  bool     `json:"managed,omitempty"`
	// PKCS12Passphrase, with a server-generated key, returns the key and
	// chain as a PKCS#12 file protected by it instead of a PEM key.
	PKCS12Passphrase string `json:"pkcs12_passphrase,omitempty"`
}

// IssueResponse is the issued certificate. PrivateKeyPEM or PKCS12 is set
// only when the server generated the key; it is not kept anywhere.
type IssueResponse struct {
	Certificate    Certificate `json:"certificate"`
	CertificatePEM string      `json:"certificate_pem"`
	// ChainPEM is the issuing CA then its parents up to the root.
	ChainPEM      string `json:"chain_pem"`
	PrivateKeyPEM string `json:"private_key_pem,omitempty"`
	PKCS12        []byte `json:"pkcs12,omitempty"`
}

// Certificate is an inventory entry.
type Certificate struct {
	Serial      string     `json:"serial"`
	CA          string     `json:"ca,omitempty"`
	Subject     string     `json:"subject"`
	SANs        []string   `json:"sans"`
	Profile     string     `json:"profile,omitempty"`
	KeyType     string     `json:"key_type"`
	NotBefore   time.Time  `json:"not_before"`
	NotAfter    time.Time  `json:"not_after"`
	Fingerprint string     `json:"sha256_fingerprint"`
	Status      string     `json:"status"`
	Requester   string     `json:"requester,omitempty"`
	Imported    bool       `json:"imported,omitempty"`
	Managed     bool       `json:"managed,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
	// RevocationReason is the RFC 5280 reason name, when revoked.
	RevocationReason string `json:"revocation_reason,omitempty"`
}

// RevokeRequest revokes a certificate. Reason is an RFC 5280 reason name
// (unspecified, keyCompromise, cACompromise, affiliationChanged, superseded,
// cessationOfOperation, certificateHold, privilegeWithdrawn, aACompromise);
// default unspecified. Only certificateHold can be released.
type RevokeRequest struct {
	Reason string `json:"reason,omitempty"`
}

// CertificateList is one page of the inventory. Next, when set, is the
// cursor for the following page.
type CertificateList struct {
	Certificates []Certificate `json:"certificates"`
	Next         string        `json:"next,omitempty"`
}

// CertificateDetail is one certificate with its PEM and chain.
type CertificateDetail struct {
	Certificate
	CertificatePEM string `json:"certificate_pem"`
	ChainPEM       string `json:"chain_pem,omitempty"`
	// RenewedBy is the serial of the certificate that renewed this one
	// (managed renewal or POST /v1/renew), when one did.
	RenewedBy string `json:"renewed_by,omitempty"`
	// Latest is the newest certificate of this one's line of renewals,
	// when this one is not it: what a consumer should use now.
	Latest string `json:"latest,omitempty"`
}

// ImportCertificateRequest adds an external certificate to the inventory for tracking.
type ImportCertificateRequest struct {
	CertificatePEM string `json:"certificate_pem"`
}

// Health is the answer of /healthz.
type Health struct {
	Status string `json:"status"`
}

// CreateTrustStoreRequest creates a trust store, optionally with its first
// members; the store starts at version 1.
type CreateTrustStoreRequest struct {
	// Name follows the rules of CA names: 1-63 lower-case letters, digits,
	// '.', '_' or '-', starting with a letter or digit.
	Name string `json:"name"`
	// CAs names CAs of this Trustgate; their revocations are followed
	// automatically.
	CAs []string `json:"cas,omitempty"`
	// CertificatesPEM is a PEM bundle of external CA certificates.
	CertificatesPEM string `json:"certificates_pem,omitempty"`
}

// AddTrustStoreCARequest adds trust anchors to a trust store: one CA of
// this Trustgate by name, or one or more external CA certificates as PEM.
// Exactly one of the fields is set.
type AddTrustStoreCARequest struct {
	CA             string `json:"ca,omitempty"`
	CertificatePEM string `json:"certificate_pem,omitempty"`
}

// AddTrustStoreCRLRequest adds an external revocation source to a trust
// store: a CRL as PEM or as DER (base64 in JSON), which must be signed by a
// CA of the store and replaces an older CRL of the same issuer and scope;
// or an http(s) URL that gateways fetch. Exactly one of the fields is set.
type AddTrustStoreCRLRequest struct {
	CRLPEM string `json:"crl_pem,omitempty"`
	CRLDER []byte `json:"crl_der,omitempty"`
	URL    string `json:"url,omitempty"`
}

// TrustStore is a named, versioned trust store as the API shows it.
type TrustStore struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Version is 1 at creation and grows by one with every change.
	Version   int64           `json:"version"`
	CAs       []TrustStoreCA  `json:"cas"`
	CRLs      []TrustStoreCRL `json:"crls"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// TrustStoreCA is a trust anchor of a trust store.
type TrustStoreCA struct {
	// Ref is what removes it (DELETE .../cas/{ref}): the name of a CA of
	// this Trustgate, or an external certificate's SHA-256 fingerprint.
	Ref string `json:"ref"`
	// Source is "ca" for a CA of this Trustgate, whose revocations the
	// store follows, or "external".
	Source string `json:"source"`
	// State is the state of a CA of this Trustgate.
	State       string    `json:"state,omitempty"`
	Subject     string    `json:"subject"`
	Fingerprint string    `json:"sha256_fingerprint"`
	NotAfter    time.Time `json:"not_after"`
	AddedAt     time.Time `json:"added_at"`
}

// TrustStoreCRL is an external revocation source of a trust store.
type TrustStoreCRL struct {
	// ID is what removes it (DELETE .../crls/{id}).
	ID string `json:"id"`
	// Source is "upload" or "url".
	Source string `json:"source"`
	URL    string `json:"url,omitempty"`
	// Issuer, Number and the dates describe an uploaded CRL.
	Issuer     string     `json:"issuer,omitempty"`
	Number     string     `json:"number,omitempty"`
	ThisUpdate *time.Time `json:"this_update,omitempty"`
	NextUpdate *time.Time `json:"next_update,omitempty"`
	AddedAt    time.Time  `json:"added_at"`
}

// TrustStoreList is the answer of GET /v1/truststores.
type TrustStoreList struct {
	TrustStores []TrustStore `json:"truststores"`
}

// TrustStoreSnapshot is what a gateway enforces for a trust store: the
// trust anchors and every revocation source, as of one moment.
type TrustStoreSnapshot struct {
	Name    string `json:"name"`
	Version int64  `json:"version"`
	// ETag changes exactly when the snapshot does: with the trust store's
	// version, or with the CRL of one of its CAs of this Trustgate. It is
	// also the ETag header; send it back as If-None-Match to get 304 when
	// nothing changed.
	ETag string `json:"etag"`
	// CACertificates are the trust anchors in DER (base64 in JSON): the
	// CAs of this Trustgate, then the external ones.
	CACertificates [][]byte `json:"ca_certificates"`
	// CRLs are CRLs in DER: the current full CRL of each CA of this
	// Trustgate (but those in DeltaCRLs and UnchangedCRLs), then the
	// uploaded ones.
	CRLs [][]byte `json:"crls"`
	// DeltaCRLs are delta CRLs (RFC 5280 §5.2.4) in DER, only for a
	// gateway that named the full CRLs it holds (the have parameter, see
	// HeldCRLs): one per CA of this Trustgate whose CRL changed since the
	// one held, signed by the CA, listing the changes from the held CRL
	// (its BaseCRLNumber) to the CA's current CRL. Together, the held CRL
	// and the delta are the CA's current CRL.
	DeltaCRLs [][]byte `json:"delta_crls,omitempty"`
	// UnchangedCRLs names, by their key identifiers in have, the CAs whose
	// full CRL held is still current: the gateway keeps what it holds of
	// them (the full CRL and any delta it applied).
	UnchangedCRLs []string `json:"unchanged_crls,omitempty"`
	// HaveDigests says that the control plane reads digests in have (see
	// HeldCRLs). A control plane from before digests refuses them as
	// malformed, and leaves this false: a gateway sends digests only to
	// one that set it in its last answer.
	HaveDigests bool `json:"have_digests,omitempty"`
	// CRLURLs are CRLs the gateway fetches itself.
	CRLURLs []string `json:"crl_urls"`
	// Warnings say what the snapshot lacks, such as the CRL of an offline
	// CA that has none published.
	Warnings []string `json:"warnings,omitempty"`
}

// NameConstraints are X.509 name constraints (RFC 5280 section 4.2.1.10).
// DNS: "example.com" covers it and every name below it. IP: CIDR ranges.
// URI: a host, or ".example.com" for any host below it. Email: a mailbox,
// a host, or ".example.com".
type NameConstraints struct {
	PermittedDNS   []string `json:"permitted_dns,omitempty"`
	ExcludedDNS    []string `json:"excluded_dns,omitempty"`
	PermittedIP    []string `json:"permitted_ip,omitempty"`
	ExcludedIP     []string `json:"excluded_ip,omitempty"`
	PermittedURI   []string `json:"permitted_uri,omitempty"`
	ExcludedURI    []string `json:"excluded_uri,omitempty"`
	PermittedEmail []string `json:"permitted_email,omitempty"`
	ExcludedEmail  []string `json:"excluded_email,omitempty"`
}
