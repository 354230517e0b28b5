package revocation

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"time"
)

// The CRL and the OCSP responses are encoded here directly in DER rather
// than through encoding/asn1's reflection: a CRL of a million entries
// takes x509.CreateRevocationList 11 s and 1.3 GB of allocations, and an
// OCSP response of several SingleResponses is beyond x/crypto/ocsp. Tests
// check the output byte for byte against x509.CreateRevocationList and
// parse it with crypto/x509, x/crypto/ocsp and openssl.

// DER tags used below.
const (
	tagBoolean     = 0x01
	tagInteger     = 0x02
	tagBitString   = 0x03
	tagOctetString = 0x04
	tagNull        = 0x05
	tagEnumerated  = 0x0a
	tagUTCTime     = 0x17
	tagGenTime     = 0x18
	tagSequence    = 0x30
	tagContext0    = 0xa0 // [0] constructed
	tagContext1    = 0xa1
	tagContext2    = 0xa2
)

// headerLen is the length of the DER tag and length octets of a value of
// n octets.
func headerLen(n int) int {
	switch {
	case n < 0x80:
		return 2
	case n <= 0xff:
		return 3
	case n <= 0xffff:
		return 4
	case n <= 0xffffff:
		return 5
	default:
		return 6
	}
}

// appendHeader appends the tag and DER definite length of a value of n octets.
func appendHeader(b []byte, tag byte, n int) []byte {
	b = append(b, tag)
	switch {
	case n < 0x80:
		return append(b, byte(n))
	case n <= 0xff:
		return append(b, 0x81, byte(n))
	case n <= 0xffff:
		return append(b, 0x82, byte(n>>8), byte(n))
	case n <= 0xffffff:
		return append(b, 0x83, byte(n>>16), byte(n>>8), byte(n))
	default:
		return append(b, 0x84, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// appendTLV appends a value with its header.
func appendTLV(b []byte, tag byte, content []byte) []byte {
	return append(appendHeader(b, tag, len(content)), content...)
}

// appendInt64 appends a non-negative INTEGER.
func appendInt64(b []byte, v int64) []byte {
	var buf [9]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte(v)
		v >>= 8
		if v == 0 {
			break
		}
	}
	if buf[i]&0x80 != 0 {
		i--
		buf[i] = 0
	}
	return appendTLV(b, tagInteger, buf[i:])
}

// appendTime appends a CRL time (RFC 5280 §5.1.2.4): UTCTime through 2049,
// GeneralizedTime from 2050, in seconds, in UTC.
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	if y := t.Year(); y >= 1950 && y < 2050 {
		b = append(b, tagUTCTime, 13)
		return appendDigits(b, t, y%100, 2)
	}
	return appendGeneralizedTime(b, t)
}

// appendGeneralizedTime appends a GeneralizedTime in seconds, in UTC (RFC
// 5280 §4.1.2.5.2, which RFC 6960 follows). Years outside 0..9999 do not
// occur: times come from the store, which keeps them in that range.
func appendGeneralizedTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	b = append(b, tagGenTime, 15)
	return appendDigits(b, t, t.Year(), 4)
}

// appendDigits appends YY or YYYY (year, in yearDigits digits), then
// MMDDHHMMSS and Z: the body of UTCTime and GeneralizedTime. It is
// time.Format's output for these layouts, in a tenth of the time, which
// matters for a CRL of a million entries.
func appendDigits(b []byte, t time.Time, year, yearDigits int) []byte {
	if yearDigits == 4 {
		b = append(b, byte('0'+year/1000%10), byte('0'+year/100%10))
	}
	_, month, day := t.Date()
	hour, minute, sec := t.Clock()
	for _, v := range [...]int{year % 100, int(month), day, hour, minute, sec} {
		b = append(b, byte('0'+v/10), byte('0'+v%10))
	}
	return append(b, 'Z')
}

// appendExtension appends an Extension (RFC 5280 §4.1) whose extnValue
// holds value.
func appendExtension(b []byte, oid []byte, critical bool, value []byte) []byte {
	n := len(oid) + headerLen(len(value)) + len(value)
	if critical {
		n += 3
	}
	b = appendHeader(b, tagSequence, n)
	b = append(b, oid...)
	if critical {
		b = append(b, tagBoolean, 1, 0xff)
	}
	return appendTLV(b, tagOctetString, value)
}

// mustOID returns the DER encoding (tag included) of an OBJECT IDENTIFIER.
func mustOID(arcs ...int) []byte {
	der, err := asn1.Marshal(asn1.ObjectIdentifier(arcs))
	if err != nil {
		panic(err)
	}
	return der
}

// Object identifiers, DER-encoded with their tag.
var (
	oidAuthorityKeyID    = mustOID(2, 5, 29, 35)
	oidCRLNumber         = mustOID(2, 5, 29, 20)
	oidIssuingDistPt     = mustOID(2, 5, 29, 28)
	oidDeltaCRLIndicator = mustOID(2, 5, 29, 27)
	oidReasonCode        = mustOID(2, 5, 29, 21)
	oidOCSPBasic         = mustOID(1, 3, 6, 1, 5, 5, 7, 48, 1, 1)
	oidOCSPNonce         = mustOID(1, 3, 6, 1, 5, 5, 7, 48, 1, 2)
	oidSHA1              = mustOID(1, 3, 14, 3, 2, 26)
	oidSHA256            = mustOID(2, 16, 840, 1, 101, 3, 4, 2, 1)
	oidSHA384            = mustOID(2, 16, 840, 1, 101, 3, 4, 2, 2)
	oidSHA512            = mustOID(2, 16, 840, 1, 101, 3, 4, 2, 3)
	hashOIDs             = [numHashes][]byte{oidSHA1, oidSHA256, oidSHA384, oidSHA512}
	oidECDSAWithSHA256   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA512   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidSHA256WithRSA     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidEd25519           = asn1.ObjectIdentifier{1, 3, 101, 112}
)

// sigAlg is how a key signs: the AlgorithmIdentifier written next to the
// signature, the digest it signs, and the crypto/x509 name to verify with.
type sigAlg struct {
	id   []byte // DER AlgorithmIdentifier
	hash crypto.Hash
	x509 x509.SignatureAlgorithm
}

func algorithmID(oid asn1.ObjectIdentifier, nullParams bool) []byte {
	ai := pkix.AlgorithmIdentifier{Algorithm: oid}
	if nullParams {
		ai.Parameters = asn1.NullRawValue
	}
	der, err := asn1.Marshal(ai)
	if err != nil {
		panic(err)
	}
	return der
}

var (
	algECDSAP256 = &sigAlg{algorithmID(oidECDSAWithSHA256, false), crypto.SHA256, x509.ECDSAWithSHA256}
	algECDSAP384 = &sigAlg{algorithmID(oidECDSAWithSHA384, false), crypto.SHA384, x509.ECDSAWithSHA384}
	algECDSAP521 = &sigAlg{algorithmID(oidECDSAWithSHA512, false), crypto.SHA512, x509.ECDSAWithSHA512}
	// RFC 4055 §5: the parameters of sha256WithRSAEncryption are NULL.
	algRSASHA256 = &sigAlg{algorithmID(oidSHA256WithRSA, true), crypto.SHA256, x509.SHA256WithRSA}
	// RFC 8410 §3: Ed25519 has no parameters and signs the message itself.
	algEd25519 = &sigAlg{algorithmID(oidEd25519, false), 0, x509.PureEd25519}
)

// signatureAlgorithm picks the algorithm for a key the way crypto/x509
// does by default: ECDSA with the SHA-2 matching the curve, RSA PKCS #1
// v1.5 with SHA-256, pure Ed25519.
func signatureAlgorithm(pub crypto.PublicKey) (*sigAlg, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return algECDSAP256, nil
		case elliptic.P384():
			return algECDSAP384, nil
		case elliptic.P521():
			return algECDSAP521, nil
		}
		return nil, fmt.Errorf("unsupported ECDSA curve %s", k.Curve.Params().Name)
	case *rsa.PublicKey:
		return algRSASHA256, nil
	case ed25519.PublicKey:
		return algEd25519, nil
	}
	return nil, fmt.Errorf("unsupported key type %T", pub)
}

// sign signs tbs with signer under alg.
func sign(signer crypto.Signer, alg *sigAlg, tbs []byte) ([]byte, error) {
	msg := tbs
	if alg.hash != 0 {
		h := alg.hash.New()
		h.Write(tbs)
		msg = h.Sum(nil)
	}
	return signer.Sign(rand.Reader, msg, alg.hash)
}
