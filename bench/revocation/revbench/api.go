package main

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
	"os"
	"strings"
	"time"

	"github.com/trustgate/trustgate/internal/apiv1"
)

// apiClient speaks Trustgate's HTTPS API with a bearer token.
type apiClient struct {
	base  string
	token string
	hc    *http.Client
}

// newAPIClient connects to addr (https://host:port), trusting the roots in
// the PEM file cacert. Empty arguments come from the environment that
// `trustgate dev` writes into DIR/dev/env.sh.
func newAPIClient(addr, token, cacert string) (*apiClient, error) {
	if addr == "" {
		addr = os.Getenv("TRUSTGATE_ADDR")
	}
	if token == "" {
		token = os.Getenv("TRUSTGATE_TOKEN")
	}
	if cacert == "" {
		cacert = os.Getenv("TRUSTGATE_CACERT")
	}
	if addr == "" || token == "" || cacert == "" {
		return nil, errors.New("API address, token and CA certificate are required (source DIR/dev/env.sh or use -addr, -token, -cacert)")
	}
	pemBytes, err := os.ReadFile(cacert)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("%s: no PEM certificate", cacert)
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     time.Minute,
	}
	return &apiClient{base: strings.TrimRight(addr, "/"), token: token, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}, nil
}

// do sends in (JSON, or no body when nil) and decodes a 2xx answer into out.
func (c *apiClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e apiv1.ErrorBody
		if json.Unmarshal(b, &e) == nil && e.Error.Code != "" {
			return fmt.Errorf("%s %s: HTTP %d %s: %s", method, path, resp.StatusCode, e.Error.Code, e.Error.Message)
		}
		return fmt.Errorf("%s %s: HTTP %d: %.200s", method, path, resp.StatusCode, b)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}
