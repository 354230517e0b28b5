package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"strconv"
	"strings"
)

// KeyType names a key algorithm and size that Trustgate issues and accepts,
// such as "ec-p256" or "rsa-3072". The zero value is not a valid key type.
type KeyType string

// The key types that [GenerateKey] can create. [KeyTypeOf] also returns
// "rsa-<bits>" for RSA keys of other sizes between [minRSABits] and
// [maxRSABits], which are accepted in CSRs but never generated.
const (
	ECP256  KeyType = "ec-p256"
	ECP384  KeyType = "ec-p384"
	RSA2048 KeyType = "rsa-2048"
	RSA3072 KeyType = "rsa-3072"
	RSA4096 KeyType = "rsa-4096"
	Ed25519 KeyType = "ed25519"
)

// RSA modulus bounds. 2048 bits is the floor of NIST SP 800-57 and of the
// CA/Browser Forum Baseline Requirements section 6.1.5; 8192 bits caps the
// CPU a hostile CSR can make us spend on signature checks.
const (
	minRSABits = 2048
	maxRSABits = 8192
)

var keyTypes = []KeyType{ECP256, ECP384, RSA2048, RSA3072, RSA4096, Ed25519}

// KeyTypes returns the key types that [GenerateKey] supports, the
// recommended default (ec-p256) first. The slice is a fresh copy.
func KeyTypes() []KeyType {
	return append([]KeyType(nil), keyTypes...)
}

// String returns the key type's name.
func (kt KeyType) String() string { return string(kt) }

// ParseKeyType returns the key type named s (case-insensitive, so "EC-P256"
// works). Unknown names fail with an error listing the known ones.
func ParseKeyType(s string) (KeyType, error) {
	kt := KeyType(strings.ToLower(s))
	for _, k := range keyTypes {
		if k == kt {
			return k, nil
		}
	}
	return "", invalidf("unknown key type %q (known: %s)", s, joinKeyTypes(keyTypes))
}

func joinKeyTypes(kts []KeyType) string {
	names := make([]string, len(kts))
	for i, k := range kts {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// GenerateKey creates a new private key of type kt from crypto/rand. RSA
// generation takes from tens of milliseconds (2048) to seconds (4096).
func GenerateKey(kt KeyType) (crypto.Signer, error) {
	var (
		key crypto.Signer
		err error
	)
	switch kt {
	case ECP256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECP384:
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case RSA2048:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case RSA3072:
		key, err = rsa.GenerateKey(rand.Reader, 3072)
	case RSA4096:
		key, err = rsa.GenerateKey(rand.Reader, 4096)
	case Ed25519:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, invalidf("cannot generate a key of type %q (known: %s)", kt, joinKeyTypes(keyTypes))
	}
	if err != nil {
		return nil, fmt.Errorf("pki: generate %s key: %w", kt, err)
	}
	return key, nil
}

// KeyTypeOf classifies a public key, rejecting the keys Trustgate does not
// accept in a certificate: RSA moduli under 2048 or over 8192 bits, RSA
// public exponents that are even or below 3 (RFC 8017 section 3.1 requires
// 3 <= e <= n-1, and e is odd for any working key), elliptic curves other
// than P-256 and P-384 (the curves of CA/B Forum BR section 6.1.5; P-521 is
// not supported by all TLS stacks) and any other algorithm. RSA keys of a
// size without a constant map to "rsa-<bits>".
func KeyTypeOf(pub crypto.PublicKey) (KeyType, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return "", invalidf("RSA public key is empty")
		}
		bits := k.N.BitLen()
		if bits < minRSABits {
			return "", invalidf("RSA key of %d bits is too small (minimum %d)", bits, minRSABits)
		}
		if bits > maxRSABits {
			return "", invalidf("RSA key of %d bits is too large (maximum %d)", bits, maxRSABits)
		}
		if k.N.Bit(0) == 0 {
			return "", invalidf("RSA modulus is even")
		}
		if k.E < 3 || k.E%2 == 0 {
			return "", invalidf("RSA public exponent %d is not an odd number of at least 3", k.E)
		}
		return KeyType("rsa-" + strconv.Itoa(bits)), nil
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil || k.X == nil || k.Y == nil {
			return "", invalidf("ECDSA public key is empty")
		}
		var kt KeyType
		switch k.Curve {
		case elliptic.P256():
			kt = ECP256
		case elliptic.P384():
			kt = ECP384
		default:
			return "", invalidf("ECDSA curve %s is not accepted (use P-256 or P-384)", k.Curve.Params().Name)
		}
		// ECDH validates that the point is on the curve and not the
		// identity (SEC 1 section 3.2.2.1); x509 parsing already does so,
		// but keys built in memory reach us too.
		if _, err := k.ECDH(); err != nil {
			return "", invalidWrap(err, "ECDSA public key is not a valid %s point", k.Curve.Params().Name)
		}
		return kt, nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return "", invalidf("Ed25519 public key has %d bytes (want %d)", len(k), ed25519.PublicKeySize)
		}
		return Ed25519, nil
	case nil:
		return "", invalidf("public key is missing")
	default:
		return "", invalidf("public key type %T is not accepted (use ECDSA P-256/P-384, RSA 2048-8192 or Ed25519)", pub)
	}
}

// signatureAlgorithmFor picks the signature algorithm a CA key signs with:
// the hash strength matches the key (RFC 5480 section 4: P-256 with SHA-256,
// P-384 with SHA-384), RSA uses PKCS #1 v1.5 with SHA-256, which every TLS
// stack verifies, and Ed25519 is pure (RFC 8410 section 6).
func signatureAlgorithmFor(pub crypto.PublicKey) (x509.SignatureAlgorithm, KeyType, error) {
	kt, err := KeyTypeOf(pub)
	if err != nil {
		return x509.UnknownSignatureAlgorithm, "", err
	}
	switch {
	case kt == ECP256:
		return x509.ECDSAWithSHA256, kt, nil
	case kt == ECP384:
		return x509.ECDSAWithSHA384, kt, nil
	case kt == Ed25519:
		return x509.PureEd25519, kt, nil
	case strings.HasPrefix(string(kt), "rsa-"):
		return x509.SHA256WithRSA, kt, nil
	}
	return x509.UnknownSignatureAlgorithm, "", invalidf("no signature algorithm for key type %s", kt)
}
