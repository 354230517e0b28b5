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
	CertificatePEM string     `json:"certificate_pem,omitempty"`
	CSRPEM         string     `json:"csr_pem,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
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
}

// ImportCertificateRequest adds an external certificate to the inventory for tracking.
type ImportCertificateRequest struct {
	CertificatePEM string `json:"certificate_pem"`
}

// Health is the answer of /healthz.
type Health struct {
	Status string `json:"status"`
}
