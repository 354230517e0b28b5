// Package client is the Go client of Trustgate's /v1 API, used by the CLI
// and the gateway (and, later, the agent). It depends only on the wire
// types.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/trustgate/trustgate/internal/apiv1"
)

// Error is an error answer of the API.
type Error struct {
	Status  int
	Code    string
	Message string
	ID      string
}

func (e *Error) Error() string {
	if e.ID != "" {
		return fmt.Sprintf("%s (HTTP %d, error id %s)", e.Message, e.Status, e.ID)
	}
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
}

// Config configures a Client.
type Config struct {
	// Addr is the API's base URL, e.g. https://127.0.0.1:9443.
	Addr string
	// Token is the API token sent as a bearer credential.
	Token string
	// CACertFile is a PEM bundle that verifies the API's certificate; empty
	// means the system roots.
	CACertFile string
	// HTTPClient overrides the transport entirely (tests).
	HTTPClient *http.Client
	// Timeout per request; default 30 s.
	Timeout time.Duration
	// ClientCertFile and ClientKeyFile, when set, hold the client
	// certificate (with its intermediates) and key presented on the TLS
	// connection, to log in as the principal the certificate names instead
	// of, or besides, Token. The files are read again when they change (an
	// agent renews them), and connections opened with the previous
	// certificate are then closed once idle. Ignored with HTTPClient.
	ClientCertFile, ClientKeyFile string
}

// Client calls the API. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	token string
	hc    *http.Client
	cert  *clientCert // nil without a client certificate
}

// New returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.Addr == "" {
		return nil, errors.New("no API address: set TRUSTGATE_ADDR or --addr")
	}
	u, err := url.Parse(strings.TrimRight(cfg.Addr, "/"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("API address %q must be an https:// URL", cfg.Addr)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.CACertFile != "" {
			b, err := os.ReadFile(cfg.CACertFile)
			if err != nil {
				return nil, fmt.Errorf("read CA certificate for the API: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(b) {
				return nil, fmt.Errorf("%s holds no PEM certificate", cfg.CACertFile)
			}
			tc.RootCAs = pool
		}
		timeout := cfg.Timeout
		if timeout == 0 {
			timeout = 30 * time.Second
		}
		var cc *clientCert
		if cfg.ClientCertFile != "" || cfg.ClientKeyFile != "" {
			cc = &clientCert{certFile: cfg.ClientCertFile, keyFile: cfg.ClientKeyFile}
			tc.GetClientCertificate = cc.get
		}
		hc = &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 16}}
		// The files are read at the first request: they may not exist
		// yet, while an agent enrols.
		return &Client{base: u, token: cfg.Token, hc: hc, cert: cc}, nil
	}
	return &Client{base: u, token: cfg.Token, hc: hc}, nil
}

// Do sends a JSON request and decodes a JSON answer into out (may be nil).
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if err := c.refreshClientCert(); err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return errorOf(resp.StatusCode, data)
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = data
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// errorOf turns an error answer into an *Error.
func errorOf(status int, data []byte) *Error {
	var eb apiv1.ErrorBody
	if json.Unmarshal(data, &eb) == nil && eb.Error.Message != "" {
		return &Error{Status: status, Code: eb.Error.Code, Message: eb.Error.Message, ID: eb.Error.ID}
	}
	return &Error{Status: status, Code: "http", Message: strings.TrimSpace(string(data))}
}

func esc(s string) string { return url.PathEscape(s) }

// CreateCA creates a CA.
func (c *Client) CreateCA(ctx context.Context, r apiv1.CreateCARequest) (*apiv1.CA, error) {
	var out apiv1.CA
	return &out, c.Do(ctx, "POST", "/v1/cas", r, &out)
}

// ListCAs lists CAs.
func (c *Client) ListCAs(ctx context.Context) ([]apiv1.CA, error) {
	var out apiv1.CAList
	return out.CAs, c.Do(ctx, "GET", "/v1/cas", nil, &out)
}

// GetCA shows a CA.
func (c *Client) GetCA(ctx context.Context, name string) (*apiv1.CA, error) {
	var out apiv1.CA
	return &out, c.Do(ctx, "GET", "/v1/cas/"+esc(name), nil, &out)
}

// RotateCA creates the successor of an intermediate CA.
func (c *Client) RotateCA(ctx context.Context, name string, r apiv1.RotateCARequest) (*apiv1.RotateCAResponse, error) {
	var out apiv1.RotateCAResponse
	return &out, c.Do(ctx, "POST", "/v1/cas/"+esc(name)+"/rotate", r, &out)
}

// ImportCACert activates a pending CA.
func (c *Client) ImportCACert(ctx context.Context, name, certPEM string) (*apiv1.CA, error) {
	var out apiv1.CA
	return &out, c.Do(ctx, "POST", "/v1/cas/"+esc(name)+"/certificate", apiv1.ImportCACertRequest{CertificatePEM: certPEM}, &out)
}

// CAAction runs disable, enable or offline on a CA.
func (c *Client) CAAction(ctx context.Context, name, action string) (*apiv1.CA, error) {
	var out apiv1.CA
	return &out, c.Do(ctx, "POST", "/v1/cas/"+esc(name)+"/"+action, nil, &out)
}

// ExportCAKey exports a root CA's key once.
func (c *Client) ExportCAKey(ctx context.Context, name, passphrase string) (string, error) {
	var out apiv1.ExportCAKeyResponse
	err := c.Do(ctx, "POST", "/v1/cas/"+esc(name)+"/export-key", apiv1.ExportCAKeyRequest{Passphrase: passphrase}, &out)
	return out.EncryptedKeyPEM, err
}

// CAPEM fetches a CA certificate (and with chain, its parents) as PEM.
func (c *Client) CAPEM(ctx context.Context, name string, chain bool) ([]byte, error) {
	var out []byte
	p := "/ca/" + esc(name) + ".pem"
	if chain {
		p += "?chain=1"
	}
	return out, c.Do(ctx, "GET", p, nil, &out)
}

// Issue issues a certificate.
func (c *Client) Issue(ctx context.Context, r apiv1.IssueRequest) (*apiv1.IssueResponse, error) {
	var out apiv1.IssueResponse
	return &out, c.Do(ctx, "POST", "/v1/certificates", r, &out)
}

// ListCertificates returns one page of the inventory.
func (c *Client) ListCertificates(ctx context.Context, q url.Values) (*apiv1.CertificateList, error) {
	var out apiv1.CertificateList
	p := "/v1/certificates"
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	return &out, c.Do(ctx, "GET", p, nil, &out)
}

// GetCertificate shows one certificate.
func (c *Client) GetCertificate(ctx context.Context, serial string) (*apiv1.CertificateDetail, error) {
	var out apiv1.CertificateDetail
	return &out, c.Do(ctx, "GET", "/v1/certificates/"+esc(serial), nil, &out)
}

// ImportCertificate adds an external certificate to the inventory.
func (c *Client) ImportCertificate(ctx context.Context, certPEM string) (*apiv1.Certificate, error) {
	var out apiv1.Certificate
	return &out, c.Do(ctx, "POST", "/v1/certificates/import", apiv1.ImportCertificateRequest{CertificatePEM: certPEM}, &out)
}

// Revoke revokes a certificate with an RFC 5280 reason name.
func (c *Client) Revoke(ctx context.Context, serial, reason string) (*apiv1.Certificate, error) {
	var out apiv1.Certificate
	return &out, c.Do(ctx, "POST", "/v1/certificates/"+esc(serial)+"/revoke", apiv1.RevokeRequest{Reason: reason}, &out)
}

// Unhold releases a certificate on hold.
func (c *Client) Unhold(ctx context.Context, serial string) (*apiv1.Certificate, error) {
	var out apiv1.Certificate
	return &out, c.Do(ctx, "POST", "/v1/certificates/"+esc(serial)+"/unhold", nil, &out)
}

// CreateTrustStore creates a trust store.
func (c *Client) CreateTrustStore(ctx context.Context, r apiv1.CreateTrustStoreRequest) (*apiv1.TrustStore, error) {
	var out apiv1.TrustStore
	return &out, c.Do(ctx, "POST", "/v1/truststores", r, &out)
}

// ListTrustStores lists trust stores.
func (c *Client) ListTrustStores(ctx context.Context) ([]apiv1.TrustStore, error) {
	var out apiv1.TrustStoreList
	return out.TrustStores, c.Do(ctx, "GET", "/v1/truststores", nil, &out)
}

// GetTrustStore shows a trust store.
func (c *Client) GetTrustStore(ctx context.Context, name string) (*apiv1.TrustStore, error) {
	var out apiv1.TrustStore
	return &out, c.Do(ctx, "GET", "/v1/truststores/"+esc(name), nil, &out)
}

// AddTrustStoreCA adds a CA of this Trustgate or external CA certificates.
func (c *Client) AddTrustStoreCA(ctx context.Context, name string, r apiv1.AddTrustStoreCARequest) (*apiv1.TrustStore, error) {
	var out apiv1.TrustStore
	return &out, c.Do(ctx, "POST", "/v1/truststores/"+esc(name)+"/cas", r, &out)
}

// RemoveTrustStoreCA removes a CA by name or external fingerprint.
func (c *Client) RemoveTrustStoreCA(ctx context.Context, name, ref string) (*apiv1.TrustStore, error) {
	var out apiv1.TrustStore
	return &out, c.Do(ctx, "DELETE", "/v1/truststores/"+esc(name)+"/cas/"+esc(ref), nil, &out)
}

// AddTrustStoreCRL adds an uploaded CRL or a CRL URL.
func (c *Client) AddTrustStoreCRL(ctx context.Context, name string, r apiv1.AddTrustStoreCRLRequest) (*apiv1.TrustStore, error) {
	var out apiv1.TrustStore
	return &out, c.Do(ctx, "POST", "/v1/truststores/"+esc(name)+"/crls", r, &out)
}

// RemoveTrustStoreCRL removes an external CRL source by ID.
func (c *Client) RemoveTrustStoreCRL(ctx context.Context, name, id string) (*apiv1.TrustStore, error) {
	var out apiv1.TrustStore
	return &out, c.Do(ctx, "DELETE", "/v1/truststores/"+esc(name)+"/crls/"+esc(id), nil, &out)
}

// TrustStoreBundle fetches a trust store's CA certificates as PEM.
func (c *Client) TrustStoreBundle(ctx context.Context, name string) ([]byte, error) {
	var out []byte
	return out, c.Do(ctx, "GET", "/v1/truststores/"+esc(name)+"/bundle", nil, &out)
}

// MaxSnapshotBytes bounds the JSON of a trust-store snapshot the client
// reads: its CRLs, in base64, make it large.
const MaxSnapshotBytes = 1 << 30

// TrustStoreSnapshot fetches what a gateway enforces for a trust store.
// With etag set (the ETag of the snapshot held), a snapshot that has not
// changed since returns notModified true, a nil snapshot and the same ETag,
// and costs no transfer.
func (c *Client) TrustStoreSnapshot(ctx context.Context, name, etag string) (snap *apiv1.TrustStoreSnapshot, newETag string, notModified bool, err error) {
	return c.WatchTrustStoreSnapshot(ctx, name, etag, 0)
}

// WatchTrustStoreSnapshot is TrustStoreSnapshot as a long poll: with etag
// set and wait positive, the control plane holds the answer until the
// snapshot changes, or answers notModified after wait. The client's
// timeout (Config.Timeout) must exceed wait.
func (c *Client) WatchTrustStoreSnapshot(ctx context.Context, name, etag string, wait time.Duration) (snap *apiv1.TrustStoreSnapshot, newETag string, notModified bool, err error) {
	return c.WatchTrustStoreSnapshotSince(ctx, name, etag, nil, wait)
}

// WatchTrustStoreSnapshotSince is WatchTrustStoreSnapshot for a gateway
// that holds the full CRLs held: the snapshot then carries delta CRLs from
// them, or says them unchanged (see apiv1.HeldCRLs).
func (c *Client) WatchTrustStoreSnapshotSince(ctx context.Context, name, etag string, held apiv1.HeldCRLs, wait time.Duration) (snap *apiv1.TrustStoreSnapshot, newETag string, notModified bool, err error) {
	path := "/v1/truststores/" + esc(name) + "/snapshot"
	q := url.Values{}
	if wait > 0 && etag != "" {
		q.Set("wait", wait.String())
	}
	if len(held) > 0 {
		q.Set("have", held.String())
	}
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	if err := c.refreshClientCert(); err != nil {
		return nil, "", false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+path, nil)
	if err != nil {
		return nil, "", false, err
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, "", false, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && etag != "":
		return nil, etag, true, nil
	case resp.StatusCode != http.StatusOK:
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, "", false, errorOf(resp.StatusCode, data)
	}
	body := io.LimitReader(resp.Body, MaxSnapshotBytes+1)
	var out apiv1.TrustStoreSnapshot
	if err := json.NewDecoder(body).Decode(&out); err != nil {
		return nil, "", false, fmt.Errorf("GET %s: decode answer (at most %d bytes): %w", path, MaxSnapshotBytes, err)
	}
	newETag = resp.Header.Get("ETag")
	if newETag == "" {
		newETag = out.ETag
	}
	return &out, newETag, false, nil
}
