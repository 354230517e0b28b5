package client

import (
	"context"

	"github.com/trustgate/trustgate/internal/apiv1"
)

// CreateBootstrapToken creates an enrolment token; the answer holds its
// secret, which cannot be read again.
func (c *Client) CreateBootstrapToken(ctx context.Context, r apiv1.CreateBootstrapTokenRequest) (*apiv1.BootstrapToken, error) {
	var out apiv1.BootstrapToken
	return &out, c.Do(ctx, "POST", "/v1/tokens", r, &out)
}

// RevokeBootstrapToken revokes an enrolment token by ID.
func (c *Client) RevokeBootstrapToken(ctx context.Context, id string) (*apiv1.BootstrapToken, error) {
	var out apiv1.BootstrapToken
	return &out, c.Do(ctx, "POST", "/v1/tokens/"+esc(id)+"/revoke", nil, &out)
}

// Enroll obtains a first certificate with a bootstrap token. It needs no
// API token.
func (c *Client) Enroll(ctx context.Context, r apiv1.EnrollRequest) (*apiv1.IssueResponse, error) {
	var out apiv1.IssueResponse
	return &out, c.Do(ctx, "POST", "/v1/enroll", r, &out)
}

// Renew renews, for the key of csrPEM, the certificate the client presents
// as TLS client certificate (set in the transport of Config.HTTPClient).
func (c *Client) Renew(ctx context.Context, csrPEM string) (*apiv1.IssueResponse, error) {
	var out apiv1.IssueResponse
	return &out, c.Do(ctx, "POST", "/v1/renew", apiv1.RenewRequest{CSR: csrPEM}, &out)
}
