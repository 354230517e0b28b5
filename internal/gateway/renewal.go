package gateway

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/trustgate/trustgate/internal/api/client"
	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/atomicfile"
)

// CertificateClient reads certificates of the control plane's inventory;
// *client.Client satisfies it.
type CertificateClient interface {
	GetCertificate(ctx context.Context, serial string) (*apiv1.CertificateDetail, error)
}

var _ CertificateClient = (*client.Client)(nil)

// Results of a renewal check, the result label of
// trustgate_gateway_certificate_renewal_checks_total.
const (
	RenewalRenewed = "renewed"
	RenewalCurrent = "current"
	RenewalError   = "error"
)

// followRenewals checks, at once and then every follow_interval, whether
// the control plane renewed the certificate l serves, until ctx ends.
func (g *Gateway) followRenewals(ctx context.Context, l *listener) {
	t := time.NewTicker(time.Duration(l.spec.Certificate.FollowInterval))
	defer t.Stop()
	for {
		g.checkRenewal(ctx, l)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// checkRenewal makes one check of l's certificate with the control plane,
// logs and counts its outcome, and returns its result.
func (g *Gateway) checkRenewal(ctx context.Context, l *listener) string {
	rctx, cancel := context.WithTimeout(ctx, controlPlaneTimeout)
	defer cancel()
	oldSerial, next, err := g.renewCertificate(rctx, l)
	switch {
	case err != nil && ctx.Err() != nil:
		// The gateway stops: a request cut short is no failure.
		return RenewalError
	case err != nil:
		g.m.renewalChecks.WithLabelValues(l.name, RenewalError).Inc()
		g.log.Error("gateway: cannot follow the renewal of the listener certificate; keeping the current one",
			keyListener, l.name, "serial", oldSerial, keyError, err)
		return RenewalError
	case next == nil:
		g.m.renewalChecks.WithLabelValues(l.name, RenewalCurrent).Inc()
		return RenewalCurrent
	}
	g.m.renewalChecks.WithLabelValues(l.name, RenewalRenewed).Inc()
	g.log.Info("gateway: listener certificate renewed by the control plane", keyListener, l.name,
		"serial", oldSerial, "successor", next.SerialNumber.Text(16), "not_after", next.NotAfter, "file", l.cert.certFile)
	return RenewalRenewed
}

// renewCertificate asks the control plane about the certificate l serves
// and, when a newer one of its line of renewals exists, checks it (the
// key l holds, a chain to an issuer of the current certificate, valid for
// server authentication now), writes it with its chain to the certificate
// file and swaps it in. It returns the serial asked about, and the new
// leaf when it was swapped in (nil when the current one is the latest).
func (g *Gateway) renewCertificate(ctx context.Context, l *listener) (string, *x509.Certificate, error) {
	cur := l.cert.get()
	if cur == nil || cur.Leaf == nil {
		return "", nil, errors.New("no certificate loaded")
	}
	serial := cur.Leaf.SerialNumber.Text(16)
	d, err := g.certificates.GetCertificate(ctx, serial)
	if err != nil {
		return serial, nil, fmt.Errorf("control plane: certificate %s: %w", serial, err)
	}
	if d.Latest == "" || d.Latest == serial {
		return serial, nil, nil
	}
	nd, err := g.certificates.GetCertificate(ctx, d.Latest)
	if err != nil {
		return serial, nil, fmt.Errorf("control plane: successor %s: %w", d.Latest, err)
	}
	certs, err := parseCertsPEM([]byte(nd.CertificatePEM + "\n" + nd.ChainPEM))
	if err != nil {
		return serial, nil, fmt.Errorf("successor %s: %w", d.Latest, err)
	}
	leaf := certs[0]
	if !strings.EqualFold(leaf.SerialNumber.Text(16), d.Latest) {
		return serial, nil, fmt.Errorf("successor %s: the control plane sent certificate %s", d.Latest, leaf.SerialNumber.Text(16))
	}
	if k, ok := cur.Leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(leaf.PublicKey) {
		return serial, nil, fmt.Errorf("successor %s: its public key is not the key of %s", d.Latest, l.cert.keyFile)
	}
	if leaf.NotAfter.Before(cur.Leaf.NotAfter) {
		return serial, nil, fmt.Errorf("successor %s: expires %s, before the current certificate (%s)", d.Latest, leaf.NotAfter, cur.Leaf.NotAfter)
	}
	if err := verifySuccessor(cur.Certificate[1:], certs, g.now()); err != nil {
		return serial, nil, fmt.Errorf("successor %s: %w", d.Latest, err)
	}
	var out bytes.Buffer
	for _, c := range certs {
		pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	perm := os.FileMode(0o644)
	if fi, err := os.Stat(l.cert.certFile); err == nil {
		perm = fi.Mode().Perm()
	}
	if err := atomicfile.WriteFile(l.cert.certFile, out.Bytes(), perm); err != nil {
		return serial, nil, fmt.Errorf("successor %s: %w", d.Latest, err)
	}
	// The file poll would see the new file too; this swaps it in now. Its
	// errors, logged there, may be other files'; what matters here is
	// whether the successor is served.
	_ = g.reloadCerts(false)
	if now := l.cert.get(); now == nil || now.Leaf == nil || !now.Leaf.Equal(leaf) {
		return serial, nil, fmt.Errorf("successor %s: written to %s but not loaded", d.Latest, l.cert.certFile)
	}
	return serial, leaf, nil
}

// verifySuccessor checks that certs (a leaf and its chain from the control
// plane) chain to one of issuers (the DER chain of the certificate served
// now, without its leaf) and are valid for server authentication at now.
// Trusting only the issuers already served keeps a control plane from
// swapping in a certificate of another CA.
func verifySuccessor(issuers [][]byte, certs []*x509.Certificate, now time.Time) error {
	if len(issuers) == 0 {
		return errors.New("the certificate file holds no issuer certificate to verify a successor with")
	}
	roots := x509.NewCertPool()
	for _, der := range issuers {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("current chain: %w", err)
		}
		roots.AddCert(c)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		return fmt.Errorf("does not verify: %w", err)
	}
	return nil
}
