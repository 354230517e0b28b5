package pki

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// URLs are the revocation and issuer locations written into certificates
// issued by a CA: they point at the issuing CA's own CRL, certificate and
// OCSP responder. Every URL must be plain "http": relying parties fetch
// them without TLS to avoid a circular dependency on the very chain being
// checked (RFC 5280 sections 4.2.1.13 and 4.2.2.1; CA/B Forum BR sections
// 7.1.2.7.7 and 7.1.2.11.2). The zero value adds no extension.
type URLs struct {
	// CRL are the CRL distribution points (RFC 5280 section 4.2.1.13).
	CRL []string
	// IssuingCA are the AIA caIssuers locations of the issuer's
	// certificate (RFC 5280 section 4.2.2.1), DER or PKCS #7.
	IssuingCA []string
	// OCSP are the AIA OCSP responder locations (RFC 6960).
	OCSP []string
}

func (u URLs) check() error {
	for _, set := range []struct {
		what string
		urls []string
	}{{"CRL distribution point", u.CRL}, {"issuing CA URL", u.IssuingCA}, {"OCSP URL", u.OCSP}} {
		for i, s := range set.urls {
			// parseURI's URL is url.Parse's; parse again only to report
			// a URL that is not http:// before parseURI's finding.
			p, uerr := parseURI(s)
			if uerr != nil {
				p, _ = url.Parse(s)
			}
			if p == nil || p.Scheme != "http" || p.Host == "" || p.Opaque != "" || p.User != nil || strings.ContainsAny(s, " \t\r\n") {
				return invalidf("%s %q must be an absolute http:// URL", set.what, truncate(s))
			}
			if uerr != nil {
				return invalidWrap(uerr, "%s %q is not a valid URL", set.what, truncate(s))
			}
			if slices.Contains(set.urls[:i], s) {
				return invalidf("%s %q is listed twice", set.what, truncate(s))
			}
		}
	}
	return nil
}

// LeafRequest is everything [LeafTemplate] needs to build an end-entity
// certificate. The CA service fills it from an authorized request.
type LeafRequest struct {
	// Profile is the profile to issue under; it must not be a CA profile.
	Profile *Profile
	// Subject is the subject name, possibly empty when SANs are given.
	Subject pkix.Name
	// SANs are the subject alternative names, normally from [ParseSANs];
	// they are validated again.
	SANs SANs
	// PublicKey is the subject's key, normally from a CSR.
	PublicKey crypto.PublicKey
	// Serial is the serial number, from [NewSerial].
	Serial *big.Int
	// NotBefore and NotAfter bound the validity; their difference must
	// satisfy [Profile.CheckValidity]. They are truncated to whole
	// seconds, the resolution of X.509 time (RFC 5280 section 4.1.2.5).
	NotBefore, NotAfter time.Time
	// URLs are the issuing CA's CRL, certificate and OCSP locations.
	URLs URLs
}

// LeafTemplate builds the template of an end-entity certificate for
// [Linter.Sign] from r, or says what is wrong with r.
//
// Key usage follows the key (RFC 5280 section 4.2.1.3 and CA/B Forum BR
// section 7.1.2.7.11): digitalSignature for every key, plus
// keyEncipherment for RSA keys of server certificates, which TLS 1.2 RSA
// key exchange needs. Extended key usage comes from the profile. Basic
// constraints are present with cA false; the subject key identifier is
// computed (RFC 7093 section 2 method 1); CRL distribution points and
// authority information access come from r.URLs. The authority key
// identifier is set when signing, from the issuer.
//
// Server profiles need at least one DNS or IP SAN. A subject common name
// on a server certificate must be one of its SANs (CA/B Forum BR section
// 7.1.4.3): a valid host name or IP address not yet listed is added as a
// SAN, a host name is lower-cased in the subject to match, and anything
// else is an error. Every leaf needs a subject or a SAN. CA profiles are
// refused; use [CATemplate].
func LeafTemplate(r LeafRequest) (*x509.Certificate, error) {
	p := r.Profile
	if p == nil {
		return nil, invalidf("leaf request has no profile")
	}
	if p.IsCA {
		return nil, invalidf("profile %q is a CA profile; build CA certificates with CATemplate", p.Name)
	}
	kt, err := KeyTypeOf(r.PublicKey)
	if err != nil {
		return nil, err
	}
	if err := checkSerial(r.Serial); err != nil {
		return nil, err
	}
	notBefore, notAfter, err := checkTimes(r.NotBefore, r.NotAfter)
	if err != nil {
		return nil, err
	}
	if err := p.CheckValidity(notAfter.Sub(notBefore)); err != nil {
		return nil, err
	}
	if err := r.URLs.check(); err != nil {
		return nil, err
	}
	// Validate again: SANs may have been built by hand rather than by
	// ParseSANs, and a bad name must never reach a signature.
	sans, err := ParseSANStrings(r.SANs.Strings())
	if err != nil {
		return nil, err
	}
	subject := r.Subject
	if p.ServerAuth && subject.CommonName != "" {
		sans, subject.CommonName, err = commonNameAsSAN(sans, subject.CommonName)
		if err != nil {
			return nil, err
		}
	}
	if p.ServerAuth && len(sans.DNS) == 0 && len(sans.IP) == 0 {
		return nil, invalidf("profile %q needs at least one DNS or IP SAN", p.Name)
	}
	if sans.Empty() && len(subject.ToRDNSequence()) == 0 {
		return nil, invalidf("certificate needs a subject or at least one SAN")
	}

	ku := x509.KeyUsageDigitalSignature
	if strings.HasPrefix(string(kt), "rsa-") && p.ServerAuth {
		ku |= x509.KeyUsageKeyEncipherment
	}
	ski, err := subjectKeyID(r.PublicKey)
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		SerialNumber:          new(big.Int).Set(r.Serial),
		Subject:               subject,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              ku,
		ExtKeyUsage:           p.ExtKeyUsage(),
		BasicConstraintsValid: true,
		IsCA:                  false,
		SubjectKeyId:          ski,
		DNSNames:              sans.DNS,
		IPAddresses:           sans.IP,
		URIs:                  sans.URI,
		EmailAddresses:        sans.Email,
		CRLDistributionPoints: slices.Clone(r.URLs.CRL),
		IssuingCertificateURL: slices.Clone(r.URLs.IssuingCA),
		OCSPServer:            slices.Clone(r.URLs.OCSP),
	}, nil
}

// commonNameAsSAN makes sure the common name cn of a server certificate is
// one of its SANs, adding it if it is a valid host name or IP address, and
// returns the SANs and the common name in the form the SAN has.
func commonNameAsSAN(sans SANs, cn string) (SANs, string, error) {
	if ip, err := parseIP(cn); err == nil {
		if !slices.ContainsFunc(sans.IP, func(x net.IP) bool { return x.Equal(ip) }) {
			sans.IP = append(sans.IP, ip)
		}
		return sans, ip.String(), nil
	}
	name, err := normalizeDNSName(cn, true)
	if err != nil {
		return sans, "", invalidWrap(err, "common name %q of a server certificate must be a host name or IP address, since it must also be a SAN", truncate(cn))
	}
	if !slices.Contains(sans.DNS, name) {
		sans.DNS = append(sans.DNS, name)
	}
	return sans, name, nil
}

// CARequest is everything [CATemplate] needs to build a CA certificate.
type CARequest struct {
	// Subject is the CA's name; it must have a common name.
	Subject pkix.Name
	// PublicKey is the CA's key.
	PublicKey crypto.PublicKey
	// Serial is the serial number, from [NewSerial].
	Serial *big.Int
	// NotBefore and NotAfter bound the validity, truncated to seconds.
	NotBefore, NotAfter time.Time
	// MaxPathLen is the pathLenConstraint (RFC 5280 section 4.2.1.9):
	// -1 leaves the path length unconstrained, 0 lets the CA issue only
	// leaves, n lets n intermediate CAs follow it. Roots should use -1
	// (CA/B Forum BR section 7.1.2.1.4 forbids the field in roots).
	MaxPathLen int
	// URLs are the parent CA's CRL, certificate and OCSP locations;
	// empty for a root, which nobody revokes.
	URLs URLs
	// NameConstraints, when set, confine every certificate below the CA.
	NameConstraints *NameConstraints
}

// anyPolicy is the special policy of RFC 5280 section 4.2.1.4: the CA does
// not limit the policies of the paths it is in. Go writes the Policies
// field (GODEBUG x509usepolicies=1, the default since Go 1.24) and older
// settings write PolicyIdentifiers, so templates carry both.
var (
	anyPolicy    = asn1.ObjectIdentifier{2, 5, 29, 32, 0}
	anyPolicyOID = mustOID(x509.OIDFromInts([]uint64{2, 5, 29, 32, 0}))
)

func mustOID(oid x509.OID, err error) x509.OID {
	if err != nil {
		panic(err)
	}
	return oid
}

// CATemplate builds the template of a CA certificate for [Linter.Sign]:
// basic constraints cA true (critical) with r.MaxPathLen, key usage
// keyCertSign, cRLSign and digitalSignature (critical; digitalSignature
// lets the CA key sign OCSP responses, RFC 6960 section 4.2.2.2), the
// subject key identifier, CRL distribution points and authority
// information access from r.URLs. A CA with URLs is taken to be a
// subordinate CA (a root has nobody to point at) and asserts anyPolicy
// alone (RFC 5280 section 4.2.1.4): the CA/B Forum BRs (section 7.1.2.10.5,
// zlint e_sub_ca_certificate_policies_missing) require a policies
// extension in subordinate CAs, and anyPolicy is the one that claims
// nothing and restricts nothing below it; a root asserts none (BR
// 7.1.2.1.2 advises against it). The subject must have a common name.
func CATemplate(r CARequest) (*x509.Certificate, error) {
	if strings.TrimSpace(r.Subject.CommonName) == "" {
		return nil, invalidf("CA subject %q has no common name (CN)", r.Subject.String())
	}
	if _, err := KeyTypeOf(r.PublicKey); err != nil {
		return nil, err
	}
	if err := checkSerial(r.Serial); err != nil {
		return nil, err
	}
	notBefore, notAfter, err := checkTimes(r.NotBefore, r.NotAfter)
	if err != nil {
		return nil, err
	}
	if r.MaxPathLen < -1 {
		return nil, invalidf("CA path length %d is invalid (use -1 for unconstrained, or 0 or more)", r.MaxPathLen)
	}
	if err := r.URLs.check(); err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(r.PublicKey)
	if err != nil {
		return nil, err
	}
	t := &x509.Certificate{
		SerialNumber:          new(big.Int).Set(r.Serial),
		Subject:               r.Subject,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            r.MaxPathLen,
		MaxPathLenZero:        r.MaxPathLen == 0,
		SubjectKeyId:          ski,
		CRLDistributionPoints: slices.Clone(r.URLs.CRL),
		IssuingCertificateURL: slices.Clone(r.URLs.IssuingCA),
		OCSPServer:            slices.Clone(r.URLs.OCSP),
	}
	r.NameConstraints.apply(t)
	if len(r.URLs.CRL)+len(r.URLs.IssuingCA)+len(r.URLs.OCSP) > 0 {
		t.PolicyIdentifiers = []asn1.ObjectIdentifier{anyPolicy}
		t.Policies = []x509.OID{anyPolicyOID}
	}
	return t, nil
}

func checkSerial(n *big.Int) error {
	switch {
	case n == nil:
		return invalidf("serial number is missing")
	case n.Sign() <= 0:
		return invalidf("serial number %s is not positive", n)
	case n.BitLen() > maxSerialBits:
		return invalidf("serial number %s does not fit in 20 DER octets (RFC 5280 section 4.1.2.2)", SerialHex(n))
	}
	return nil
}

func checkTimes(nb, na time.Time) (time.Time, time.Time, error) {
	if nb.IsZero() || na.IsZero() {
		return nb, na, invalidf("validity needs both notBefore and notAfter")
	}
	nb, na = nb.UTC().Truncate(time.Second), na.UTC().Truncate(time.Second)
	if !na.After(nb) {
		return nb, na, invalidf("notAfter %s is not after notBefore %s", na.Format(time.RFC3339), nb.Format(time.RFC3339))
	}
	return nb, na, nil
}

// subjectKeyID computes a key identifier by RFC 7093 section 2 method 1:
// the leftmost 160 bits of the SHA-256 hash of the subjectPublicKey BIT
// STRING value. It is the same for a key whatever certificate holds it, so
// a renewed CA keeps its identifier.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, invalidWrap(err, "public key cannot be encoded")
	}
	// SubjectPublicKeyInfo ::= SEQUENCE { algorithm, subjectPublicKey BIT STRING }
	in := cryptobyte.String(spki)
	var info cryptobyte.String
	var key asn1.BitString
	if !in.ReadASN1(&info, cbasn1.SEQUENCE) || !info.SkipASN1(cbasn1.SEQUENCE) || !info.ReadASN1BitString(&key) {
		return nil, invalidf("public key cannot be encoded")
	}
	sum := sha256.Sum256(key.Bytes)
	return sum[:20], nil
}
