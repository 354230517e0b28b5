package client

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// clientCert is the client certificate a Client presents, read from its
// files and read again when they change.
type clientCert struct {
	certFile, keyFile string

	mu      sync.Mutex
	cur     *tls.Certificate
	certMod time.Time // modification times of the files cur was read from
	keyMod  time.Time
	certPEM []byte
}

// get is the tls.Config's GetClientCertificate: the certificate last read.
// The server decides whether it is good enough; sending it always lets the
// server say why it is not.
func (c *clientCert) get(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil {
		return &tls.Certificate{}, nil
	}
	return c.cur, nil
}

// reload reads the files again when their modification times changed,
// and reports whether the certificate is a new one. A pair that does not
// load keeps the previous certificate, with the error; an agent writes
// each file atomically, but may be between the key and the certificate.
func (c *clientCert) reload() (changed bool, err error) {
	ci, err1 := os.Stat(c.certFile)
	ki, err2 := os.Stat(c.keyFile)
	if err := errors.Join(err1, err2); err != nil {
		return false, fmt.Errorf("client certificate: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != nil && ci.ModTime().Equal(c.certMod) && ki.ModTime().Equal(c.keyMod) {
		return false, nil
	}
	certPEM, err1 := os.ReadFile(c.certFile)
	keyPEM, err2 := os.ReadFile(c.keyFile)
	if err := errors.Join(err1, err2); err != nil {
		return false, fmt.Errorf("client certificate: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return false, fmt.Errorf("client certificate %s with key %s: %w", c.certFile, c.keyFile, err)
	}
	changed = c.cur == nil || !bytes.Equal(certPEM, c.certPEM)
	c.cur, c.certMod, c.keyMod, c.certPEM = &pair, ci.ModTime(), ki.ModTime(), certPEM
	return changed, nil
}

// refreshClientCert picks up a renewed client certificate before a
// request. Kept-alive connections go on presenting the certificate they
// were opened with, so they are closed (once idle) when it changes. A
// certificate that cannot be read again is an error only when there is
// none to present.
func (c *Client) refreshClientCert() error {
	if c.cert == nil {
		return nil
	}
	changed, err := c.cert.reload()
	if err != nil {
		c.cert.mu.Lock()
		have := c.cert.cur != nil
		c.cert.mu.Unlock()
		if !have {
			return err
		}
		return nil
	}
	if changed {
		c.hc.CloseIdleConnections()
	}
	return nil
}
