package truststore

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"strings"

	"github.com/trustgate/trustgate/internal/fault"
)

// parseCertsPEM reads a PEM bundle of CA certificates: every block must be
// a CERTIFICATE of a CA (basic constraints cA true, allowed to sign
// certificates), and none may appear twice.
func parseCertsPEM(b []byte) ([]*x509.Certificate, error) {
	rest := bytes.TrimSpace(b)
	if len(rest) == 0 {
		return nil, fault.New(fault.Invalid, "no certificate: the PEM bundle is empty")
	}
	var out []*x509.Certificate
	seen := map[string]int{}
	for len(rest) > 0 {
		block, r := pem.Decode(rest)
		if block == nil {
			if len(out) == 0 {
				return nil, fault.New(fault.Invalid, "the certificates are not PEM (want -----BEGIN CERTIFICATE----- blocks)")
			}
			return nil, fault.New(fault.Invalid, "data after certificate %d is not a PEM block", len(out))
		}
		rest = bytes.TrimSpace(r)
		n := len(out) + 1
		if block.Type != "CERTIFICATE" {
			return nil, fault.New(fault.Invalid, "PEM block %d is %q, want CERTIFICATE", n, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fault.New(fault.Invalid, "certificate %d cannot be parsed: %v", n, err)
		}
		if !c.BasicConstraintsValid || !c.IsCA {
			return nil, fault.New(fault.Invalid, "certificate %d (%s) is not a CA certificate: a trust store holds CAs (roots or intermediates), not leaves", n, c.Subject)
		}
		if c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0 {
			return nil, fault.New(fault.Invalid, "certificate %d (%s) may not sign certificates (no keyCertSign key usage)", n, c.Subject)
		}
		if prev, dup := seen[string(c.Raw)]; dup {
			return nil, fault.New(fault.Invalid, "certificate %d (%s) is the same as certificate %d", n, c.Subject, prev)
		}
		seen[string(c.Raw)] = n
		out = append(out, c)
		if len(out) > MaxCAs {
			return nil, fault.New(fault.Invalid, "the bundle holds more than %d certificates, the most a trust store may hold", MaxCAs)
		}
	}
	return out, nil
}

// encodeCertsPEM encodes certificates as a PEM bundle.
func encodeCertsPEM(ders [][]byte) []byte {
	var b bytes.Buffer
	for _, d := range ders {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: d})
	}
	return b.Bytes()
}

// crlFromPEM returns the DER of the one X509 CRL block of b.
func crlFromPEM(b []byte) ([]byte, error) {
	block, rest := pem.Decode(bytes.TrimSpace(b))
	switch {
	case block == nil:
		return nil, fault.New(fault.Invalid, "crl_pem is not PEM (want one -----BEGIN X509 CRL----- block)")
	case block.Type != "X509 CRL":
		return nil, fault.New(fault.Invalid, "crl_pem holds a %q PEM block, want X509 CRL", block.Type)
	case len(bytes.TrimSpace(rest)) > 0:
		return nil, fault.New(fault.Invalid, "crl_pem holds more than one PEM block: upload one CRL at a time")
	}
	return block.Bytes, nil
}

// normalizeFingerprint turns a SHA-256 fingerprint as people write it (any
// case, with colons or spaces) into the stored form.
func normalizeFingerprint(s string) string {
	return strings.ToLower(strings.NewReplacer(":", "", " ", "").Replace(s))
}
