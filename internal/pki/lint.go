package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	zx509 "github.com/zmap/zcrypto/x509"
	// The zlint package's imports register every lint in
	// lint.GlobalRegistry; without it the registry is empty.
	_ "github.com/zmap/zlint/v3"
	"github.com/zmap/zlint/v3/lint"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// excludedLints are the zlint lints that encode rules of the public Web
// PKI (CA/Browser Forum Baseline Requirements and browser root programs)
// which cannot apply to a private CA. Everything else zlint has runs on
// every certificate. The list is kept short on purpose: where a template
// can satisfy a lint, the template is fixed instead. Names are checked
// against the zlint registry in NewLinter, so a renamed lint fails loudly.
var excludedLints = map[string]string{
	// Certificate policies. BR 7.1.2.3 (7.1.2.7.9 in BR 2.0) requires a
	// CA/B Forum reserved policy OID in TLS subscriber certificates;
	// asserting one would
	// falsely claim the certificate was validated under the BRs.
	// (Subordinate CAs assert anyPolicy instead: see CATemplate.)
	"e_sub_cert_certificate_policies_missing": "BR 7.1.2.3 requires a certificatePolicies extension in subscriber certificates; a private CA must not claim BR validation with a CA/B Forum policy OID",
	"e_sub_cert_cert_policy_empty":            "BR 7.1.2.3 requires a CA/B Forum reserved policy OID in subscriber certificates; a private CA must not claim BR validation",

	// CA naming. BR 7.1.2.10.2 requires O and C so that the public can
	// tell who operates a publicly trusted CA. A private CA is known to
	// its relying parties by how its root was distributed; RFC 5280 asks
	// only for a non-empty name, and CATemplate requires a CN.
	"e_ca_organization_name_missing": "BR 7.1.2.10.2 identifies public CA operators by O; a private CA needs only a CN (RFC 5280 4.1.2.6)",
	"e_ca_country_name_missing":      "BR 7.1.2.10.2 identifies public CA operators by C; a private CA needs only a CN (RFC 5280 4.1.2.6)",

	// Internal names and addresses are what a private CA is for: BR
	// 7.1.4.2.1 and 3.2.2.4 ban them only because a public CA cannot
	// prove who controls them. Names are still checked by ParseSANs.
	"e_dnsname_not_valid_tld":                       "internal names (.internal, .local, .cluster.local, localhost; RFC 6761, RFC 6762) are the normal case for a private CA",
	"e_ext_san_contains_reserved_ip":                "private and loopback addresses (RFC 1918, RFC 4193, RFC 5735) are the normal case for a private CA",
	"e_ext_nc_intersects_reserved_ip":               "a private CA confines its intermediates to private networks (RFC 1918, RFC 4193) by name constraints; BR 7.1.2.5.2 concerns public TLS",
	"e_subject_contains_reserved_ip":                "a server certificate's CN may be its private IP SAN (BR 7.1.4.3 requires CN to be a SAN, which LeafTemplate ensures)",
	"w_sub_cert_aia_contains_internal_names":        "a private CA publishes its certificate and CRL on an internal host",
	"e_ext_san_uniform_resource_identifier_present": "URI SANs carry SPIFFE IDs (SPIFFE X509-SVID section 2) in mTLS certificates; BR 7.1.4.2.1 allows only DNS and IP SANs",

	// Fields where the BRs contradict RFC 5280 or the API contract.
	"w_ext_subject_key_identifier_not_recommended_subscriber": "RFC 5280 4.2.1.2 says end-entity certificates SHOULD carry a SKI (zlint's rfc lint warns without one); BR 7.1.2.7.6's NOT RECOMMENDED is for public certificates",
	"w_subject_common_name_included":                          "the CN is optional but allowed for clients that still read it; BR 7.1.4.3's rule that it must be a SAN is enforced by LeafTemplate and e_subject_common_name_not_exactly_from_san",

	// Ed25519 (RFC 8410) is not in the BR 6.1.5 / 7.1.3 algorithm lists,
	// which follow what browsers ship; Go, OpenSSL and BoringSSL verify
	// it. RSA and ECDSA encodings stay checked by other lints:
	// e_spki_rsa_encryption_parameter_not_null and Mozilla's
	// e_mp_ecdsa_pub_key_encoding_correct and
	// e_mp_ecdsa_signature_encoding_correct.
	"e_algorithm_identifier_improper_encoding": "BR 7.1.3.1 lists RSA and ECDSA key encodings only; Ed25519 keys (RFC 8410) are allowed in a private CA",
	"e_signature_algorithm_not_supported":      "BR 6.1.5 and 7.1.3.2 list RSA and ECDSA signatures only; Ed25519 signatures (RFC 8410) are allowed in a private CA",

	// Root program rules for publicly trusted TLS certificates.
	// Lifetimes are a policy of the profile here (Profile.MaxValidity,
	// 398 days for leaves); Apple exempts certificates from user-added
	// roots from its limit, and the SC-081 schedule (200 days from
	// 2026-03-15, 100 from 2027-03-15, 47 from 2029-03-15) binds public
	// CAs. Chrome's ban on clientAuth in server certificates (from
	// 2027-03-15) is about the public hierarchy; mTLS with a private root
	// is exactly where one certificate serves both ends.
	"e_tls_server_cert_valid_time_longer_than_398_days": "Apple root program limit; certificates from user-added roots are exempt; Profile.MaxValidity sets our limit",
	"w_tls_server_cert_valid_time_longer_than_397_days": "Apple root program recommendation; certificates from user-added roots are exempt; Profile.MaxValidity sets our limit",
	"e_server_cert_valid_time_longer_than_200_days":     "CA/B Forum SC-081 lifetime for public TLS certificates; Profile.MaxValidity sets our limit",
	"w_server_cert_valid_time_longer_than_199_days":     "CA/B Forum SC-081 lifetime for public TLS certificates; Profile.MaxValidity sets our limit",
	"e_server_cert_valid_time_longer_than_100_days":     "CA/B Forum SC-081 lifetime for public TLS certificates from 2027-03-15; Profile.MaxValidity sets our limit",
	"w_server_cert_valid_time_longer_than_99_days":      "CA/B Forum SC-081 lifetime for public TLS certificates from 2027-03-15; Profile.MaxValidity sets our limit",
	"e_server_cert_valid_time_longer_than_47_days":      "CA/B Forum SC-081 lifetime for public TLS certificates from 2029-03-15; Profile.MaxValidity sets our limit",
	"w_server_cert_valid_time_longer_than_46_days":      "CA/B Forum SC-081 lifetime for public TLS certificates from 2029-03-15; Profile.MaxValidity sets our limit",
	"e_client_auth_not_allowed":                         "Chrome Root Program 1.8 section 1.3.2 for public TLS hierarchies from 2027-03-15; the server-client profile is for mTLS under a private root",

	// A public-PKI incident check that cannot fire here and costs most of
	// the lint time: it verifies every ECDSA signature against the eight
	// compromised eMudhra intermediate keys (eight P-384 verifications,
	// about 7 ms, 85% of a lint run). Sign lints a probe signed by its
	// own throwaway key, and Trustgate CA keys are generated by Trustgate.
	"e_cert_issued_by_compromised_emudhra_ca": "detects certificates signed by eMudhra's compromised public intermediate keys; Sign's probe is signed by a throwaway key of ours, so it cannot fire, and it costs ~7 ms per ECDSA certificate",
}

// ExcludedLints returns the names of the zlint lints that [Linter] does
// not run, each with the reason it cannot apply to a private CA. The map is
// a fresh copy.
func ExcludedLints() map[string]string {
	return maps.Clone(excludedLints)
}

// Linter lints certificates with zlint before a CA key signs them, as
// cfssl's local signer does: the certificate is linted without the CA's
// signature (see [Linter.SignCertificate]), so that a certificate that
// fails a lint never carries it. A Linter is safe for concurrent use; build
// one with [NewLinter] and share it.
type Linter struct {
	// lints and config are read-only after NewLinter: shared lint
	// instances never change after they are configured (see
	// sharedInstance), and the others are built per run.
	lints  []preparedLint
	config lint.Configuration
	// spkiCache holds the verdicts of spkiLints by SPKI hash.
	spkiCache spkiCache
}

// minLints is a floor on the number of certificate lints: zlint v3.7 has
// several hundred.
const minLints = 300

// NewLinter builds the zlint registry once: every registered certificate
// lint except [ExcludedLints].
func NewLinter() (*Linter, error) {
	names := slices.Sorted(maps.Keys(excludedLints))
	reg, err := lint.GlobalRegistry().Filter(lint.FilterOptions{ExcludeNames: names})
	if err != nil {
		return nil, fmt.Errorf("pki: build zlint registry: %w", err)
	}
	lints := reg.CertificateLints().Lints()
	// A registry that lost its lint packages would pass everything.
	if len(lints) < minLints {
		return nil, fmt.Errorf("pki: zlint registry has only %d certificate lints", len(lints))
	}
	config := reg.GetConfiguration()
	l := &Linter{lints: make([]preparedLint, len(lints)), config: config, spkiCache: spkiCache{m: map[spkiKey]spkiVerdict{}}}
	for i, cl := range lints {
		shared, err := sharedInstance(cl, config)
		if err != nil {
			return nil, err
		}
		l.lints[i] = preparedLint{CertificateLint: cl, shared: shared, spki: shared != nil && spkiLints[cl.Name]}
	}
	return l, nil
}

// LintError lists the lints a certificate failed. It wraps [ErrInvalid]:
// the request produced a certificate Trustgate refuses to sign.
type LintError struct {
	// Lints are the names of the lints with status Warn, Error or Fatal,
	// sorted.
	Lints []string
	// Details maps each failed lint name to its status and an
	// explanation, for logs and for the API client.
	Details map[string]string
}

// Error lists the failed lints with their explanations.
func (e *LintError) Error() string {
	var b strings.Builder
	b.WriteString("pki: certificate fails lint")
	if len(e.Lints) > 1 {
		b.WriteString("s")
	}
	for i, name := range e.Lints {
		if i == 0 {
			b.WriteString(" ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(name)
		if d := e.Details[name]; d != "" {
			b.WriteString(" (" + d + ")")
		}
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *LintError) Unwrap() error { return ErrInvalid }

// Lint runs zlint on the DER certificate der and returns nil or a
// *[LintError] naming every lint with status Warn, Error or Fatal. Notices
// are not failures.
func (l *Linter) Lint(der []byte) error {
	c, err := zx509.ParseCertificate(der)
	if err != nil {
		return invalidWrap(err, "certificate cannot be parsed for linting")
	}
	return l.lint(c)
}

// lint runs the lints with zlint's semantics (see run) and returns nil or
// a *LintError. It does not call zlint.LintCertificateEx: that sorts
// every lint name on each run to size a result map we would throw away.
func (l *Linter) lint(c *zx509.Certificate) error {
	var e *LintError
	l.run(c, func(p *preparedLint, status lint.LintStatus, details string) {
		switch status {
		case lint.Warn, lint.Error, lint.Fatal:
			if e == nil {
				e = &LintError{Details: map[string]string{}}
			}
			e.Lints = append(e.Lints, p.Name)
			d := status.String() + ": " + p.Description
			if details != "" {
				d += ": " + details
			}
			e.Details[p.Name] = d
		}
	})
	if e == nil {
		return nil
	}
	slices.Sort(e.Lints)
	return e
}

// Sign lints the certificate described by template and, only if it passes,
// signs it with signer, returning the DER. parent is the issuer's
// certificate; parent == template (the same pointer) makes a self-signed
// root. pub is the subject's public key.
//
// The signature algorithm follows signer's key: ECDSA P-256 with SHA-256,
// P-384 with SHA-384, RSA PKCS #1 v1.5 with SHA-256, pure Ed25519. Sign
// sets the authority key identifier to the issuer's subject key identifier
// (for a root, its own; CA/B Forum BR section 7.1.2.1.3). Before linting it
// checks what would make the certificate unusable: a parent that is not a
// CA or whose path length forbids issuing a CA, a certificate that would
// outlive its issuer, a root whose key is not the signer's, and keys that
// [KeyTypeOf] rejects.
//
// The template is not modified. Sign is safe for concurrent use.
func (l *Linter) Sign(template, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) ([]byte, error) {
	cert, err := l.SignCertificate(template, parent, pub, signer)
	if err != nil {
		return nil, err
	}
	return cert.Raw, nil
}

// SignCertificate is [Linter.Sign] returning the parsed certificate (its
// Raw field is the DER), for callers that need both.
//
// The certificate linted is the one the CA key then signs, byte for byte
// up to the signature: x509.CreateCertificate encodes the to-be-signed part
// (TBS) and hands it to a signer that only keeps it, zlint runs on that TBS
// with a placeholder signature of the length the CA key makes, and only if
// every lint passes does the CA key sign the same TBS. The signature is
// then verified with the CA's public key, as CreateCertificate does, so
// that a faulty signer never yields a certificate.
func (l *Linter) SignCertificate(template, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) (*x509.Certificate, error) {
	if template == nil || parent == nil || signer == nil {
		return nil, invalidf("sign needs a template, a parent and a signer")
	}
	caPub := signer.Public()
	alg, _, err := signatureAlgorithmFor(caPub)
	if err != nil {
		return nil, invalidWrap(err, "CA key is not usable")
	}
	if _, err := KeyTypeOf(pub); err != nil {
		return nil, invalidWrap(err, "subject key is not usable")
	}
	selfSigned := parent == template
	tmpl := *template
	tmpl.SignatureAlgorithm = alg
	realParent := parent
	if selfSigned {
		if !keysEqual(pub, caPub) {
			return nil, invalidf("self-signed certificate: the subject key is not the signing key")
		}
		tmpl.AuthorityKeyId = tmpl.SubjectKeyId
		realParent = &tmpl
	} else {
		if err := checkIssuer(&tmpl, parent, signer); err != nil {
			return nil, err
		}
		tmpl.AuthorityKeyId = parent.SubjectKeyId
	}

	capture := &tbsCapture{pub: caPub}
	if _, err := x509.CreateCertificate(rand.Reader, &tmpl, realParent, pub, capture); !errors.Is(err, errTBSCaptured) {
		if err == nil {
			err = errors.New("no TBS captured")
		}
		return nil, invalidWrap(err, "certificate cannot be built")
	}
	tbs := capture.tbs
	algID, err := tbsSignatureAlgorithm(tbs)
	if err != nil {
		return nil, fmt.Errorf("pki: build certificate: %w", err)
	}
	probe, err := certificateDER(tbs, algID, placeholderSignature(caPub))
	if err != nil {
		return nil, fmt.Errorf("pki: build certificate for linting: %w", err)
	}
	zc, err := zx509.ParseCertificate(probe)
	if err != nil {
		return nil, invalidWrap(err, "certificate cannot be parsed for linting")
	}
	// zcrypto marks a certificate self-signed only if its signature
	// verifies with its own key, which the placeholder cannot; without
	// this, zlint would lint a root as a subordinate CA.
	zc.SelfSigned = selfSigned
	if err := l.lint(zc); err != nil {
		return nil, err
	}

	sig, err := crypto.SignMessage(signer, rand.Reader, tbs, hashFor(alg))
	if err != nil {
		return nil, fmt.Errorf("pki: sign certificate: %w", err)
	}
	if err := (&x509.Certificate{PublicKey: caPub}).CheckSignature(alg, tbs, sig); err != nil {
		return nil, fmt.Errorf("pki: sign certificate: signature returned by signer is invalid: %w", err)
	}
	der, err := certificateDER(tbs, algID, sig)
	if err != nil {
		return nil, fmt.Errorf("pki: sign certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse signed certificate: %w", err)
	}
	return cert, nil
}

// errTBSCaptured stops x509.CreateCertificate once tbsCapture has the TBS.
var errTBSCaptured = errors.New("pki: TBS captured")

// tbsCapture is a crypto.MessageSigner that keeps the message it is asked
// to sign, which x509.CreateCertificate makes the DER TBSCertificate, and
// signs nothing. Public is the CA's key, so that CreateCertificate picks
// the same algorithm and runs the same checks as with the real signer.
type tbsCapture struct {
	pub crypto.PublicKey
	tbs []byte
}

func (c *tbsCapture) Public() crypto.PublicKey { return c.pub }

// SignMessage keeps msg, the TBS. crypto.SignMessage, which
// CreateCertificate calls, prefers it to Sign.
func (c *tbsCapture) SignMessage(_ io.Reader, msg []byte, _ crypto.SignerOpts) ([]byte, error) {
	c.tbs = msg
	return nil, errTBSCaptured
}

// Sign is reached only if CreateCertificate hashed the TBS itself, which
// would leave nothing to lint: it fails.
func (c *tbsCapture) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("pki: the certificate was hashed before signing; its TBS cannot be linted")
}

// tbsSignatureAlgorithm returns the DER AlgorithmIdentifier inside a
// TBSCertificate (RFC 5280 section 4.1: version, serialNumber, signature),
// which the Certificate repeats after the TBS.
func tbsSignatureAlgorithm(tbs []byte) ([]byte, error) {
	in := cryptobyte.String(tbs)
	var inner, algID cryptobyte.String
	if !in.ReadASN1(&inner, cbasn1.SEQUENCE) ||
		!inner.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!inner.SkipASN1(cbasn1.INTEGER) ||
		!inner.ReadASN1Element(&algID, cbasn1.SEQUENCE) {
		return nil, errors.New("malformed TBSCertificate")
	}
	return algID, nil
}

// certificateDER encodes Certificate ::= SEQUENCE { tbsCertificate,
// signatureAlgorithm, signatureValue BIT STRING } (RFC 5280 section 4.1),
// as x509.CreateCertificate does.
func certificateDER(tbs, algID, sig []byte) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		b.AddBytes(algID)
		b.AddASN1BitString(sig)
	})
	return b.Bytes()
}

// placeholderSignature is what the certificate zlint sees carries instead
// of a signature: as long as the longest signature caPub's key makes
// (zlint's Mozilla ECDSA encoding lint tells the curve from the length),
// in the signature's encoding (a DER ECDSA-Sig-Value for ECDSA).
func placeholderSignature(caPub crypto.PublicKey) []byte {
	switch k := caPub.(type) {
	case *ecdsa.PublicKey:
		// The largest r and s: a leading zero byte, then the high bit set.
		n := make([]byte, 1+(k.Curve.Params().BitSize+7)/8)
		n[1] = 0x80
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.INTEGER, func(b *cryptobyte.Builder) { b.AddBytes(n) })
			b.AddASN1(cbasn1.INTEGER, func(b *cryptobyte.Builder) { b.AddBytes(n) })
		})
		return b.BytesOrPanic()
	case *rsa.PublicKey:
		return make([]byte, k.Size())
	}
	return make([]byte, ed25519.SignatureSize)
}

// hashFor is the digest crypto.SignMessage applies for a signature
// algorithm of signatureAlgorithmFor; pure Ed25519 signs the message.
func hashFor(alg x509.SignatureAlgorithm) crypto.Hash {
	switch alg {
	case x509.ECDSAWithSHA384:
		return crypto.SHA384
	case x509.PureEd25519:
		return 0
	}
	return crypto.SHA256
}

// checkIssuer refuses to sign what a verifier would reject because of the
// issuer (RFC 5280 section 6.1.4): an issuer that is not a CA or may not
// sign certificates, a path length that forbids another CA, a certificate
// that outlives its issuer.
func checkIssuer(tmpl, parent *x509.Certificate, signer crypto.Signer) error {
	if parent.PublicKey != nil && !keysEqual(parent.PublicKey, signer.Public()) {
		return invalidf("the signing key is not the key of issuer %q", parent.Subject.String())
	}
	if !parent.BasicConstraintsValid || !parent.IsCA {
		return invalidf("issuer %q is not a CA", parent.Subject.String())
	}
	if parent.KeyUsage != 0 && parent.KeyUsage&x509.KeyUsageCertSign == 0 {
		return invalidf("issuer %q may not sign certificates (no keyCertSign key usage)", parent.Subject.String())
	}
	if tmpl.IsCA && parent.MaxPathLen == 0 && parent.MaxPathLenZero {
		return invalidf("issuer %q has path length 0 and may issue only leaf certificates", parent.Subject.String())
	}
	if tmpl.NotAfter.After(parent.NotAfter) {
		return invalidf("certificate would expire at %s, after its issuer %q (%s)",
			tmpl.NotAfter.UTC().Format("2006-01-02T15:04:05Z"), parent.Subject.String(), parent.NotAfter.UTC().Format("2006-01-02T15:04:05Z"))
	}
	return nil
}

func keysEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
