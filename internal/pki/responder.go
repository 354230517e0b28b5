package pki

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"time"
)

// oidOCSPNoCheck is id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1): a relying
// party need not check the revocation of the responder certificate itself,
// which is why its lifetime is kept short.
var oidOCSPNoCheck = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}

// asn1Null is the DER encoding of NULL, the nocheck extension's value.
var asn1Null = []byte{0x05, 0x00}

// OCSPResponderRequest describes a delegated OCSP responder certificate.
type OCSPResponderRequest struct {
	Subject             pkix.Name
	PublicKey           crypto.PublicKey
	Serial              *big.Int
	NotBefore, NotAfter time.Time
}

// OCSPResponderTemplate builds the template of a delegated OCSP responder
// certificate (RFC 6960 §4.2.2.2): EKU id-kp-OCSPSigning only, key usage
// digitalSignature, not a CA, and id-pkix-ocsp-nocheck.
func OCSPResponderTemplate(r OCSPResponderRequest) (*x509.Certificate, error) {
	if _, err := KeyTypeOf(r.PublicKey); err != nil {
		return nil, err
	}
	if err := checkSerial(r.Serial); err != nil {
		return nil, err
	}
	nb, na, err := checkTimes(r.NotBefore, r.NotAfter)
	if err != nil {
		return nil, err
	}
	if r.Subject.CommonName == "" {
		return nil, invalidf("an OCSP responder certificate needs a CN")
	}
	ski, err := subjectKeyID(r.PublicKey)
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		SerialNumber:          r.Serial,
		Subject:               r.Subject,
		NotBefore:             nb,
		NotAfter:              na,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning},
		BasicConstraintsValid: true,
		SubjectKeyId:          ski,
		ExtraExtensions:       []pkix.Extension{{Id: oidOCSPNoCheck, Value: asn1Null}},
	}, nil
}
