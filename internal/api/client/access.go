package client

import (
	"context"
	"net/url"

	"github.com/trustgate/trustgate/internal/apiv1"
)

// PutPolicy creates or replaces a policy from a YAML or JSON document.
func (c *Client) PutPolicy(ctx context.Context, name, document string) (*apiv1.Policy, error) {
	var out apiv1.Policy
	return &out, c.Do(ctx, "PUT", "/v1/policies/"+esc(name), apiv1.PutPolicyRequest{Document: document}, &out)
}

// ListPolicies lists policies.
func (c *Client) ListPolicies(ctx context.Context) ([]apiv1.Policy, error) {
	var out apiv1.PolicyList
	return out.Policies, c.Do(ctx, "GET", "/v1/policies", nil, &out)
}

// GetPolicy shows a policy.
func (c *Client) GetPolicy(ctx context.Context, name string) (*apiv1.Policy, error) {
	var out apiv1.Policy
	return &out, c.Do(ctx, "GET", "/v1/policies/"+esc(name), nil, &out)
}

// DeletePolicy deletes a policy no principal uses.
func (c *Client) DeletePolicy(ctx context.Context, name string) (*apiv1.Policy, error) {
	var out apiv1.Policy
	return &out, c.Do(ctx, "DELETE", "/v1/policies/"+esc(name), nil, &out)
}

// Simulate asks what the policies answer to one question.
func (c *Client) Simulate(ctx context.Context, r apiv1.SimulateRequest) (*apiv1.Decision, error) {
	var out apiv1.Decision
	return &out, c.Do(ctx, "POST", "/v1/policies/simulate", r, &out)
}

// CreatePrincipal creates a principal and returns its first token.
func (c *Client) CreatePrincipal(ctx context.Context, r apiv1.CreatePrincipalRequest) (*apiv1.CreatedPrincipal, error) {
	var out apiv1.CreatedPrincipal
	return &out, c.Do(ctx, "POST", "/v1/principals", r, &out)
}

// ListPrincipals lists principals.
func (c *Client) ListPrincipals(ctx context.Context) ([]apiv1.Principal, error) {
	var out apiv1.PrincipalList
	return out.Principals, c.Do(ctx, "GET", "/v1/principals", nil, &out)
}

// GetPrincipal shows a principal.
func (c *Client) GetPrincipal(ctx context.Context, name string) (*apiv1.Principal, error) {
	var out apiv1.Principal
	return &out, c.Do(ctx, "GET", "/v1/principals/"+esc(name), nil, &out)
}

// UpdatePrincipal changes a principal.
func (c *Client) UpdatePrincipal(ctx context.Context, name string, r apiv1.UpdatePrincipalRequest) (*apiv1.Principal, error) {
	var out apiv1.Principal
	return &out, c.Do(ctx, "PATCH", "/v1/principals/"+esc(name), r, &out)
}

// CreateAPIToken makes another API token for a principal.
func (c *Client) CreateAPIToken(ctx context.Context, principal, ttl string) (*apiv1.CreatedToken, error) {
	var out apiv1.CreatedToken
	return &out, c.Do(ctx, "POST", "/v1/principals/"+esc(principal)+"/tokens", apiv1.CreateTokenRequest{TTL: ttl}, &out)
}

// ListAPITokens lists a principal's API tokens.
func (c *Client) ListAPITokens(ctx context.Context, principal string) ([]apiv1.APIToken, error) {
	var out apiv1.APITokenList
	return out.Tokens, c.Do(ctx, "GET", "/v1/principals/"+esc(principal)+"/tokens", nil, &out)
}

// RevokeAPIToken revokes one of a principal's API tokens.
func (c *Client) RevokeAPIToken(ctx context.Context, principal, id string) (*apiv1.APIToken, error) {
	var out apiv1.APIToken
	return &out, c.Do(ctx, "POST", "/v1/principals/"+esc(principal)+"/tokens/"+esc(id)+"/revoke", nil, &out)
}

// ListAudit reads one page of the audit log.
func (c *Client) ListAudit(ctx context.Context, q url.Values) (*apiv1.AuditList, error) {
	var out apiv1.AuditList
	return &out, c.Do(ctx, "GET", "/v1/audit?"+q.Encode(), nil, &out)
}

// VerifyAudit checks the audit log's chain.
func (c *Client) VerifyAudit(ctx context.Context) (*apiv1.AuditVerification, error) {
	var out apiv1.AuditVerification
	return &out, c.Do(ctx, "GET", "/v1/audit/verify", nil, &out)
}

// AuditReport returns a CA's issued and revoked certificates as CSV or JSON bytes.
func (c *Client) AuditReport(ctx context.Context, ca, format string) ([]byte, error) {
	var out []byte
	q := url.Values{"ca": {ca}, "format": {format}}
	return out, c.Do(ctx, "GET", "/v1/audit/report?"+q.Encode(), nil, &out)
}
