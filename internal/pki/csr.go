package pki

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
)

// MaxCSRSize is the largest CSR, PEM or DER, that [ParseCSR] reads. Real
// CSRs are a few KiB even with RSA-8192 keys and many SANs.
const MaxCSRSize = 32 << 10

// acceptedCSRSignatures are the signature algorithms a CSR may use (its
// proof of possession, RFC 2986 section 3). MD2, MD5 and SHA-1 based ones
// are refused: collisions in them are practical (RFC 6151, RFC 9155).
var acceptedCSRSignatures = map[x509.SignatureAlgorithm]bool{
	x509.SHA256WithRSA:    true,
	x509.SHA384WithRSA:    true,
	x509.SHA512WithRSA:    true,
	x509.SHA256WithRSAPSS: true,
	x509.SHA384WithRSAPSS: true,
	x509.SHA512WithRSAPSS: true,
	x509.ECDSAWithSHA256:  true,
	x509.ECDSAWithSHA384:  true,
	x509.ECDSAWithSHA512:  true,
	x509.PureEd25519:      true,
}

// ParseCSR parses and checks a PKCS #10 certificate signing request
// (RFC 2986), given as PEM (type "CERTIFICATE REQUEST" or the older "NEW
// CERTIFICATE REQUEST") or as DER. It refuses input over [MaxCSRSize]
// (wrapping [ErrTooLarge]), anything but exactly one CSR (no text around
// the PEM block, no PEM headers, no trailing data), a signature that does
// not verify, weak signature algorithms, and public keys that [KeyTypeOf]
// rejects. The requested extensions in the CSR are parsed but not trusted:
// the CA builds the certificate from its own profile.
func ParseCSR(data []byte) (*x509.CertificateRequest, error) {
	if len(data) > MaxCSRSize {
		return nil, tooLargef("CSR of %d bytes exceeds the limit of %d bytes", len(data), MaxCSRSize)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, invalidf("CSR is empty")
	}
	der := data
	if trimmed := bytes.TrimLeft(data, " \t\r\n"); bytes.HasPrefix(trimmed, []byte("-----BEGIN")) {
		block, rest := pem.Decode(trimmed)
		if block == nil {
			return nil, invalidf("CSR PEM block is malformed")
		}
		if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
			return nil, invalidf("PEM block is of type %q, not \"CERTIFICATE REQUEST\"", block.Type)
		}
		if len(block.Headers) != 0 {
			return nil, invalidf("CSR PEM block has headers, which are not allowed")
		}
		if len(bytes.TrimSpace(rest)) != 0 {
			return nil, invalidf("CSR has data after the PEM block")
		}
		der = block.Bytes
	} else if data[0] != 0x30 {
		// A DER CSR is a SEQUENCE. Anything else is garbage, or PEM
		// with text in front of it, which we refuse rather than skip.
		if bytes.Contains(data, []byte("-----BEGIN")) {
			return nil, invalidf("CSR has data before the PEM block")
		}
		return nil, invalidf("CSR is neither PEM nor DER")
	}
	var outer asn1.RawValue
	if rest, err := asn1.Unmarshal(der, &outer); err == nil && len(rest) > 0 {
		return nil, invalidf("CSR has trailing data after its DER encoding")
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, invalidWrap(err, "CSR cannot be parsed")
	}
	if !acceptedCSRSignatures[csr.SignatureAlgorithm] {
		return nil, invalidf("CSR is signed with %s, which is not accepted (use SHA-256 or stronger with RSA or ECDSA, or Ed25519)", csr.SignatureAlgorithm)
	}
	if _, err := KeyTypeOf(csr.PublicKey); err != nil {
		return nil, invalidWrap(err, "CSR public key is not accepted")
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, invalidWrap(err, "CSR signature does not verify")
	}
	return csr, nil
}

// CreateCSR returns the DER of a CSR for subject signed by key, for a
// Trustgate CA whose parent CA is external. key must be of a type
// [KeyTypeOf] accepts; the signature algorithm follows the key as in
// [Linter.Sign].
func CreateCSR(subject pkix.Name, key crypto.Signer) ([]byte, error) {
	if key == nil {
		return nil, invalidf("CSR signing key is missing")
	}
	alg, _, err := signatureAlgorithmFor(key.Public())
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:            subject,
		SignatureAlgorithm: alg,
	}, key)
	if err != nil {
		return nil, fmt.Errorf("pki: create CSR: %w", err)
	}
	return der, nil
}
