package apiv1

import "time"

// PutPolicyRequest stores a policy document (YAML or JSON text).
type PutPolicyRequest struct {
	Document string `json:"document"`
}

// Policy is a stored policy; Document is its canonical JSON.
type Policy struct {
	Name      string    `json:"name"`
	Document  string    `json:"document"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// PolicyList is the answer of GET /v1/policies.
type PolicyList struct {
	Policies []Policy `json:"policies"`
}

// SimulateRequest asks what the policies answer to one question, as the
// API would for Principal's request.
type SimulateRequest struct {
	Principal string `json:"principal"`
	Action    string `json:"action"`
	Resource  string `json:"resource"`
	// The facts of an issuance, for actions such as cert:Issue.
	Profile  string              `json:"profile,omitempty"`
	DNS      []string            `json:"dns,omitempty"`
	URI      []string            `json:"uri,omitempty"`
	IP       []string            `json:"ip,omitempty"`
	Email    []string            `json:"email,omitempty"`
	Subject  map[string][]string `json:"subject,omitempty"`
	KeyType  string              `json:"key_type,omitempty"`
	Validity string              `json:"validity,omitempty"`
}

// Decision is the simulator's answer: allowed or denied, and the policy
// statement that decided (none for the default deny).
type Decision struct {
	Decision  string `json:"decision"` // "allow" or "deny"
	Policy    string `json:"policy,omitempty"`
	Statement string `json:"statement,omitempty"`
	Reason    string `json:"reason"`
}

// CreatePrincipalRequest makes a principal and its first API token.
type CreatePrincipalRequest struct {
	Name string `json:"name"`
	// Kind is human or service (default).
	Kind     string   `json:"kind,omitempty"`
	Policies []string `json:"policies"`
	// Identities are the client-certificate names that log in as the
	// principal: "CN=...", "dns:...", "uri:...", "email:...".
	Identities []string `json:"identities,omitempty"`
	// TokenTTL is the first token's lifetime, e.g. "90d"; empty: no expiry.
	TokenTTL string `json:"token_ttl,omitempty"`
}

// UpdatePrincipalRequest changes a principal; absent fields stay as they are.
type UpdatePrincipalRequest struct {
	Policies   *[]string `json:"policies,omitempty"`
	Identities *[]string `json:"identities,omitempty"`
	Disabled   *bool     `json:"disabled,omitempty"`
}

// Principal is a caller of the API.
type Principal struct {
	Name       string    `json:"name"`
	Kind       string    `json:"kind"`
	Policies   []string  `json:"policies"`
	Identities []string  `json:"identities"`
	Disabled   bool      `json:"disabled"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// PrincipalList is the answer of GET /v1/principals.
type PrincipalList struct {
	Principals []Principal `json:"principals"`
}

// CreatedPrincipal answers the creation of a principal with its first
// token, shown this once.
type CreatedPrincipal struct {
	Principal Principal `json:"principal"`
	Token     string    `json:"token"`
}

// CreateTokenRequest makes another API token for a principal.
type CreateTokenRequest struct {
	// TTL is the token's lifetime, e.g. "24h"; empty: no expiry.
	TTL string `json:"ttl,omitempty"`
}

// CreatedToken is a new API token, shown this once.
type CreatedToken struct {
	ID    string `json:"id"`
	Token string `json:"token"`
}

// APIToken describes an API token; its secret is never shown again.
type APIToken struct {
	ID        string     `json:"id"`
	Principal string     `json:"principal"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Revoked   bool       `json:"revoked"`
}

// APITokenList is the answer of GET /v1/principals/{name}/tokens.
type APITokenList struct {
	Tokens []APIToken `json:"tokens"`
}

// AuditRecord is one entry of the audit log.
type AuditRecord struct {
	Seq       int64     `json:"seq"`
	At        time.Time `json:"at"`
	Actor     string    `json:"actor"`
	Action    string    `json:"action"`
	Resource  string    `json:"resource"`
	Decision  string    `json:"decision"`
	Outcome   string    `json:"outcome"`
	RequestID string    `json:"request_id"`
	Source    string    `json:"source"`
	Detail    string    `json:"detail"`
	PrevHash  string    `json:"prev_hash"` // hex
	Hash      string    `json:"hash"`      // hex
}

// AuditList is a page of the audit log; Next is the after= of the next page.
type AuditList struct {
	Records []AuditRecord `json:"records"`
	Next    int64         `json:"next,omitempty"`
}

// AuditVerification is the result of checking the audit chain.
type AuditVerification struct {
	OK      bool  `json:"ok"`
	Records int64 `json:"records"`
	// HeadHash is the hash of the last record: keep it elsewhere to detect
	// a cut at the end of the log later.
	HeadHash string `json:"head_hash,omitempty"`
	// Seq and Problem say where the chain first breaks and how.
	Seq     int64  `json:"seq,omitempty"`
	Problem string `json:"problem,omitempty"`
}
