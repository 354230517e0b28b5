package main

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"
)

// Certificate statuses of a SingleResponse.
const (
	stGood = iota
	stRevoked
	stUnknown
)

var statusNames = [...]string{"good", "revoked", "unknown"}

// oidBasic is id-pkix-ocsp-basic (1.3.6.1.5.5.7.48.1.1), DER content octets.
var oidBasic = []byte{0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01}

// serialContent is the DER content octets of a positive INTEGER n.
func serialContent(n *big.Int) []byte {
	b := n.Bytes()
	if len(b) == 0 || b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	return b
}

// quickCheck walks an OCSPResponse (RFC 6960 §4.2.1) without checking its
// signature: it must be successful, a BasicOCSPResponse with a signature
// and exactly one SingleResponse, for serial (DER INTEGER content octets),
// with a thisUpdate. It returns that response's certificate status. It
// allocates nothing, so the load generator can afford it on every answer;
// signatures are checked by fullCheck on a sample.
func quickCheck(der, serial []byte) (int, error) {
	s := cryptobyte.String(der)
	var resp, rb, rbs, oid, octets, basic, tbs, responses, single, certID, ser, any cryptobyte.String
	var st int
	var tag cbasn1.Tag
	if !s.ReadASN1(&resp, cbasn1.SEQUENCE) || !s.Empty() {
		return 0, errors.New("not an OCSPResponse")
	}
	if !resp.ReadASN1Enum(&st) {
		return 0, errors.New("no responseStatus")
	}
	if st != 0 {
		return 0, fmt.Errorf("responseStatus %d, not successful", st)
	}
	if !resp.ReadASN1(&rb, cbasn1.Tag(0).ContextSpecific().Constructed()) ||
		!rb.ReadASN1(&rbs, cbasn1.SEQUENCE) ||
		!rbs.ReadASN1(&oid, cbasn1.OBJECT_IDENTIFIER) || !bytes.Equal(oid, oidBasic) ||
		!rbs.ReadASN1(&octets, cbasn1.OCTET_STRING) {
		return 0, errors.New("no basic responseBytes")
	}
	if !octets.ReadASN1(&basic, cbasn1.SEQUENCE) || !octets.Empty() ||
		!basic.ReadASN1(&tbs, cbasn1.SEQUENCE) ||
		!basic.ReadASN1(&any, cbasn1.SEQUENCE) || // signatureAlgorithm
		!basic.ReadASN1(&any, cbasn1.BIT_STRING) || len(any) < 2 {
		return 0, errors.New("malformed BasicOCSPResponse")
	}
	if !tbs.SkipOptionalASN1(cbasn1.Tag(0).ContextSpecific().Constructed()) || // version
		!tbs.ReadAnyASN1(&any, &tag) || (tag != cbasn1.Tag(1).ContextSpecific().Constructed() && tag != cbasn1.Tag(2).ContextSpecific().Constructed()) ||
		!tbs.ReadASN1(&any, cbasn1.GeneralizedTime) || // producedAt
		!tbs.ReadASN1(&responses, cbasn1.SEQUENCE) {
		return 0, errors.New("malformed ResponseData")
	}
	if !responses.ReadASN1(&single, cbasn1.SEQUENCE) || !responses.Empty() {
		return 0, errors.New("not exactly one SingleResponse")
	}
	if !single.ReadASN1(&certID, cbasn1.SEQUENCE) ||
		!certID.ReadASN1(&any, cbasn1.SEQUENCE) || // hashAlgorithm
		!certID.ReadASN1(&any, cbasn1.OCTET_STRING) || // issuerNameHash
		!certID.ReadASN1(&any, cbasn1.OCTET_STRING) || // issuerKeyHash
		!certID.ReadASN1(&ser, cbasn1.INTEGER) {
		return 0, errors.New("malformed CertID")
	}
	if !bytes.Equal(ser, serial) {
		return 0, errors.New("answer for another serial")
	}
	if !single.ReadAnyASN1(&any, &tag) {
		return 0, errors.New("no certStatus")
	}
	var cs int
	switch tag {
	case cbasn1.Tag(0).ContextSpecific():
		cs = stGood
	case cbasn1.Tag(1).ContextSpecific().Constructed():
		cs = stRevoked
	case cbasn1.Tag(2).ContextSpecific():
		cs = stUnknown
	default:
		return 0, fmt.Errorf("certStatus with tag %#x", tag)
	}
	if !single.ReadASN1(&any, cbasn1.GeneralizedTime) {
		return 0, errors.New("no thisUpdate")
	}
	return cs, nil
}

// fullCheck parses der with x/crypto/ocsp as a relying party would for
// cert issued by issuer: the response's signature, its signer's
// certificate (issued by issuer for OCSP signing, or issuer itself), the
// serial and the validity interval. It returns the parsed response.
func fullCheck(der []byte, cert, issuer *x509.Certificate, now time.Time) (*ocsp.Response, error) {
	r, err := ocsp.ParseResponseForCert(der, cert, issuer)
	if err != nil {
		return nil, err
	}
	if r.SerialNumber.Cmp(cert.SerialNumber) != 0 {
		return nil, errors.New("answer for another serial")
	}
	if r.Certificate != nil {
		if !slices.Contains(r.Certificate.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
			return nil, errors.New("responder certificate lacks the OCSPSigning EKU")
		}
		if now.After(r.Certificate.NotAfter) || now.Add(2*time.Minute).Before(r.Certificate.NotBefore) {
			return nil, errors.New("responder certificate not valid now")
		}
	}
	if r.ThisUpdate.After(now.Add(time.Minute)) {
		return nil, fmt.Errorf("thisUpdate %s is in the future", r.ThisUpdate)
	}
	if !r.NextUpdate.IsZero() && !r.NextUpdate.After(now) {
		return nil, fmt.Errorf("nextUpdate %s has passed", r.NextUpdate)
	}
	return r, nil
}
