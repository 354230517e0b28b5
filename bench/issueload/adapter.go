package main

import (
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
)

// Adapter is what differs between CA APIs: the URL, the request body for one
// CSR, the headers, and where the certificate is in the answer.
type Adapter interface {
	// URL is where each request is POSTed.
	URL() string
	// Body is the request body for c. It is built once per CSR, before the
	// load starts.
	Body(c *csr) ([]byte, error)
	// Header adds the adapter's headers to a request.
	Header(h http.Header)
	// Leaf checks the status and returns the issued certificate's DER and,
	// when the API states it separately, its serial (else nil).
	Leaf(status int, body []byte) (der []byte, serial *big.Int, err error)
}

// trustgateAdapter speaks Trustgate's POST /v1/certificates.
type trustgateAdapter struct {
	url, token, ca, profile, validity string
}

func (a *trustgateAdapter) URL() string { return a.url }

func (a *trustgateAdapter) Body(c *csr) ([]byte, error) {
	return json.Marshal(map[string]any{
		"ca": a.ca, "profile": a.profile, "csr": string(c.pem),
		"dns": []string{c.name}, "validity": a.validity,
	})
}

func (a *trustgateAdapter) Header(h http.Header) {
	h.Set("Content-Type", "application/json")
	h.Set("Authorization", "Bearer "+a.token)
}

func (a *trustgateAdapter) Leaf(status int, body []byte) ([]byte, *big.Int, error) {
	if status != http.StatusCreated {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		return nil, nil, fmt.Errorf("trustgate: status %d (want 201): %s %s", status, e.Error.Code, trunc(e.Error.Message, 200))
	}
	var r struct {
		Certificate struct {
			Serial string `json:"serial"`
		} `json:"certificate"`
		CertificatePEM string `json:"certificate_pem"`
		ChainPEM       string `json:"chain_pem"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, nil, fmt.Errorf("trustgate: bad JSON: %v", err)
	}
	if r.ChainPEM == "" {
		return nil, nil, errors.New("trustgate: answer has no chain_pem")
	}
	serial, ok := new(big.Int).SetString(r.Certificate.Serial, 16)
	if !ok {
		return nil, nil, fmt.Errorf("trustgate: certificate.serial %q is not hexadecimal", trunc(r.Certificate.Serial, 80))
	}
	der, err := onePEMCert(r.CertificatePEM)
	return der, serial, err
}

// cfsslAdapter speaks cfssl's POST /api/v1/cfssl/sign.
type cfsslAdapter struct {
	url, profile string
}

func (a *cfsslAdapter) URL() string { return a.url }

func (a *cfsslAdapter) Body(c *csr) ([]byte, error) {
	m := map[string]any{"certificate_request": string(c.pem), "hosts": []string{c.name}}
	if a.profile != "" {
		m["profile"] = a.profile
	}
	return json.Marshal(m)
}

func (a *cfsslAdapter) Header(h http.Header) { h.Set("Content-Type", "application/json") }

func (a *cfsslAdapter) Leaf(status int, body []byte) ([]byte, *big.Int, error) {
	var r struct {
		Success bool `json:"success"`
		Result  struct {
			Certificate string `json:"certificate"`
		} `json:"result"`
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	err := json.Unmarshal(body, &r)
	if status != http.StatusOK || err != nil || !r.Success {
		var msgs []string
		for _, e := range r.Errors {
			msgs = append(msgs, e.Message)
		}
		return nil, nil, fmt.Errorf("cfssl: status %d, success %v: %s", status, r.Success, trunc(strings.Join(msgs, "; "), 200))
	}
	der, err := onePEMCert(r.Result.Certificate)
	return der, nil, err
}

func onePEMCert(s string) ([]byte, error) {
	blk, _ := pem.Decode([]byte(s))
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM CERTIFICATE in the answer")
	}
	return blk.Bytes, nil
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
