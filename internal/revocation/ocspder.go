package revocation

import (
	"bytes"
	"errors"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// maxCertIDs bounds the CertIDs of one request; RFC 5019 §2.1.1 has
// clients send one, and each costs a lookup.
const maxCertIDs = 32

// errMalformed is the cause of every malformedRequest answer.
var errMalformed = errors.New("malformed OCSP request")

// certID is one CertID of a request (RFC 6960 §4.1.1).
type certID struct {
	// raw is the CertID as the client encoded it: answers echo it, so a
	// client comparing the bytes finds its certificate.
	raw []byte
	// hash is the index of the hash algorithm, or -1 for one we do not
	// know (no issuer can match it).
	hash int
	// nullParams tells whether the AlgorithmIdentifier has NULL
	// parameters (openssl, Go) or none: the two encode differently.
	nullParams        bool
	nameHash, keyHash []byte
	// serial is the magnitude of a positive serial, without leading
	// zeros; nil for zero or a negative serial, which no CA issues.
	serial []byte
}

// variant is the cache partition of answers to CertIDs encoded like id.
func (id *certID) variant() int {
	v := id.hash * 2
	if !id.nullParams {
		v++
	}
	return v
}

// numVariants is the number of cache partitions: hash algorithm times
// parameter encoding.
const numVariants = numHashes * 2

// ocspRequest is a parsed OCSPRequest. ids points into one for a single
// CertID, so that parsing the usual request allocates nothing.
type ocspRequest struct {
	ids []certID
	one [1]certID
	// nonce is the extnValue of the nonce extension (RFC 8954), echoed
	// in the answer; hasNonce tells it was present.
	nonce    []byte
	hasNonce bool
}

var (
	tagExplicit0 = cbasn1.Tag(0).Constructed().ContextSpecific()
	tagExplicit1 = cbasn1.Tag(1).Constructed().ContextSpecific()
	tagExplicit2 = cbasn1.Tag(2).Constructed().ContextSpecific()
)

// parseRequest parses a DER OCSPRequest (RFC 6960 §4.1.1) into req. It
// accepts any number of CertIDs up to maxCertIDs and ignores a request
// signature (requests need not be signed, §4.1.2). A critical extension
// other than the nonce is refused, as is a nonce outside 1..32 octets
// (RFC 8954 §2.1).
func parseRequest(der []byte, req *ocspRequest) error {
	in := cryptobyte.String(der)
	var ocspReq, tbs cryptobyte.String
	if !in.ReadASN1(&ocspReq, cbasn1.SEQUENCE) || !in.Empty() ||
		!ocspReq.ReadASN1(&tbs, cbasn1.SEQUENCE) ||
		!ocspReq.SkipOptionalASN1(tagExplicit0) || !ocspReq.Empty() {
		return errMalformed
	}
	// version [0] EXPLICIT Version DEFAULT v1
	var version cryptobyte.String
	var hasVersion bool
	if !tbs.ReadOptionalASN1(&version, &hasVersion, tagExplicit0) {
		return errMalformed
	}
	if hasVersion {
		var v int64
		if !version.ReadASN1Integer(&v) || v != 0 || !version.Empty() {
			return errMalformed
		}
	}
	// requestorName [1] EXPLICIT GeneralName OPTIONAL
	var list cryptobyte.String
	if !tbs.SkipOptionalASN1(tagExplicit1) || !tbs.ReadASN1(&list, cbasn1.SEQUENCE) {
		return errMalformed
	}
	req.ids = req.one[:0]
	for !list.Empty() {
		if len(req.ids) == maxCertIDs {
			return errMalformed
		}
		var one, raw cryptobyte.String
		// Request ::= SEQUENCE { reqCert CertID, singleRequestExtensions [0] EXPLICIT Extensions OPTIONAL }
		if !list.ReadASN1(&one, cbasn1.SEQUENCE) || !one.ReadASN1Element(&raw, cbasn1.SEQUENCE) ||
			!one.SkipOptionalASN1(tagExplicit0) || !one.Empty() {
			return errMalformed
		}
		var id certID
		if err := parseCertID(raw, &id); err != nil {
			return err
		}
		req.ids = append(req.ids, id)
	}
	if len(req.ids) == 0 {
		return errMalformed
	}
	// requestExtensions [2] EXPLICIT Extensions OPTIONAL
	var exts cryptobyte.String
	var hasExts bool
	if !tbs.ReadOptionalASN1(&exts, &hasExts, tagExplicit2) || !tbs.Empty() {
		return errMalformed
	}
	if hasExts {
		var seq cryptobyte.String
		if !exts.ReadASN1(&seq, cbasn1.SEQUENCE) || !exts.Empty() {
			return errMalformed
		}
		for !seq.Empty() {
			var ext, oid cryptobyte.String
			var value []byte
			critical := false
			if !seq.ReadASN1(&ext, cbasn1.SEQUENCE) || !ext.ReadASN1Element(&oid, cbasn1.OBJECT_IDENTIFIER) ||
				(ext.PeekASN1Tag(cbasn1.BOOLEAN) && !ext.ReadASN1Boolean(&critical)) ||
				!ext.ReadASN1Bytes(&value, cbasn1.OCTET_STRING) || !ext.Empty() {
				return errMalformed
			}
			switch {
			case bytes.Equal(oid, oidOCSPNonce):
				if req.hasNonce || !validNonce(value) {
					return errMalformed
				}
				req.nonce, req.hasNonce = value, true
			case critical:
				// RFC 6960 §4.4: an unrecognized critical extension
				// cannot be ignored.
				return errMalformed
			}
		}
	}
	return nil
}

// validNonce reports whether the extnValue of a nonce extension is an
// OCTET STRING of 1 to 32 octets (RFC 8954 §2.1: Nonce ::= OCTET STRING
// (SIZE(1..32))).
func validNonce(value []byte) bool {
	in := cryptobyte.String(value)
	var nonce cryptobyte.String
	return in.ReadASN1(&nonce, cbasn1.OCTET_STRING) && in.Empty() && len(nonce) >= 1 && len(nonce) <= 32
}

// parseCertID parses a DER CertID into id.
func parseCertID(raw []byte, id *certID) error {
	in := cryptobyte.String(raw)
	var seq, alg, oid, nameHash, keyHash, serial cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1(&alg, cbasn1.SEQUENCE) ||
		!alg.ReadASN1Element(&oid, cbasn1.OBJECT_IDENTIFIER) {
		return errMalformed
	}
	switch {
	case alg.Empty():
	case alg.PeekASN1Tag(cbasn1.NULL):
		var null cryptobyte.String
		if !alg.ReadASN1(&null, cbasn1.NULL) || !null.Empty() || !alg.Empty() {
			return errMalformed
		}
		id.nullParams = true
	default:
		return errMalformed // hash algorithms take NULL or no parameters
	}
	if !seq.ReadASN1(&nameHash, cbasn1.OCTET_STRING) || !seq.ReadASN1(&keyHash, cbasn1.OCTET_STRING) ||
		!seq.ReadASN1(&serial, cbasn1.INTEGER) || !seq.Empty() {
		return errMalformed
	}
	// DER INTEGER: at least one octet and minimal; a serial of more than
	// 32 octets is no serial (RFC 5280 §4.1.2.2 allows 20).
	if len(serial) == 0 || len(serial) > 33 ||
		len(serial) > 1 && (serial[0] == 0 && serial[1]&0x80 == 0 || serial[0] == 0xff && serial[1]&0x80 != 0) {
		return errMalformed
	}
	id.raw = raw
	id.hash = -1
	for h, o := range hashOIDs {
		if bytes.Equal(oid, o) {
			id.hash = h
			break
		}
	}
	id.nameHash, id.keyHash = nameHash, keyHash
	id.serial = nil
	if serial[0]&0x80 == 0 {
		if serial[0] == 0 {
			serial = serial[1:]
		}
		if len(serial) > 0 {
			id.serial = serial
		}
	}
	return nil
}

// encodeCertID returns the CertID of serial (a magnitude) for an issuer
// with hashes under hash h, with NULL parameters as openssl and Go send.
func encodeCertID(h int, ih issuerHashes, serial []byte) []byte {
	alg := appendTLV(append([]byte(nil), hashOIDs[h]...), tagNull, nil)
	var b []byte
	b = appendTLV(b, tagSequence, alg)
	b = appendTLV(b, tagOctetString, ih.name)
	b = appendTLV(b, tagOctetString, ih.key)
	if serial[0]&0x80 != 0 {
		b = appendHeader(b, tagInteger, len(serial)+1)
		b = append(b, 0)
		b = append(b, serial...)
	} else {
		b = appendTLV(b, tagInteger, serial)
	}
	return appendTLV(nil, tagSequence, b)
}

// OCSP response statuses (RFC 6960 §4.2.1).
const (
	respSuccessful       = 0
	respMalformedRequest = 1
	respInternalError    = 2
	respTryLater         = 3
	respUnauthorized     = 6
)

// errorResponse returns the OCSPResponse of an unsuccessful status: it
// has no responseBytes and no signature.
func errorResponse(status byte) []byte {
	return []byte{tagSequence, 3, tagEnumerated, 1, status}
}

// Certificate statuses of a SingleResponse (RFC 6960 §4.2.1 CertStatus).
const (
	statusGood = iota
	statusRevoked
	statusUnknown
)

// status is what a SingleResponse says about one certificate.
type status struct {
	kind      int
	revokedAt time.Time // in whole seconds, UTC
	reason    int       // RFC 5280 CRLReason
}

// single is one SingleResponse to sign.
type single struct {
	certID []byte
	st     status
}

// appendSingle appends a SingleResponse (RFC 6960 §4.2.1).
func appendSingle(b []byte, sr single, thisUpdate, nextUpdate time.Time) []byte {
	var certStatus []byte
	switch sr.st.kind {
	case statusGood:
		certStatus = []byte{0x80, 0} // good [0] IMPLICIT NULL
	case statusRevoked:
		// revoked [1] IMPLICIT RevokedInfo ::= SEQUENCE { revocationTime
		// GeneralizedTime, revocationReason [0] EXPLICIT CRLReason OPTIONAL }.
		// An unspecified reason is left out, as on CRLs (RFC 5280 §5.3.1).
		info := appendGeneralizedTime(nil, sr.st.revokedAt)
		if sr.st.reason != 0 {
			info = append(info, tagContext0, 3, tagEnumerated, 1, byte(sr.st.reason))
		}
		certStatus = appendTLV(nil, tagContext1, info)
	default:
		certStatus = []byte{0x82, 0} // unknown [2] IMPLICIT UnknownInfo (NULL)
	}
	n := len(sr.certID) + len(certStatus) + 17 + 19
	b = appendHeader(b, tagSequence, n)
	b = append(b, sr.certID...)
	b = append(b, certStatus...)
	b = appendGeneralizedTime(b, thisUpdate)
	b = append(b, tagContext0, 17) // nextUpdate [0] EXPLICIT GeneralizedTime
	return appendGeneralizedTime(b, nextUpdate)
}

// signResponse builds and signs a successful OCSPResponse (RFC 6960
// §4.2.1) with the responder r: a BasicOCSPResponse identifying r by key
// hash, with one SingleResponse per entry of singles, the nonce extension
// when nonce is not nil, and r's certificate. It returns the response
// split in two: head is particular to this response, and the rest is
// r.tail (the certs field, the same for every response of r), so that
// cached responses share it.
func (r *responder) signResponse(producedAt time.Time, singles []single, nonce []byte, thisUpdate, nextUpdate time.Time) ([]byte, error) {
	// ResponseData ::= SEQUENCE { version [0] EXPLICIT DEFAULT v1 (left out),
	// responderID, producedAt, responses, responseExtensions [1] EXPLICIT OPTIONAL }
	rd := make([]byte, 0, 256)
	rd = append(rd, tagContext2, 22, tagOctetString, 20) // byKey [2] EXPLICIT KeyHash
	rd = append(rd, r.keyHash[:]...)
	rd = appendGeneralizedTime(rd, producedAt)
	var list []byte
	for _, sr := range singles {
		list = appendSingle(list, sr, thisUpdate, nextUpdate)
	}
	rd = appendTLV(rd, tagSequence, list)
	if nonce != nil {
		ext := appendExtension(nil, oidOCSPNonce, false, nonce)
		rd = appendTLV(rd, tagContext1, appendTLV(nil, tagSequence, ext))
	}
	tbs := appendTLV(make([]byte, 0, len(rd)+4), tagSequence, rd)
	sig, err := sign(r.key, algECDSAP256, tbs)
	if err != nil {
		return nil, err
	}

	// BasicOCSPResponse ::= SEQUENCE { tbsResponseData, signatureAlgorithm,
	// signature BIT STRING, certs [0] EXPLICIT SEQUENCE OF Certificate }
	basicLen := len(tbs) + len(algECDSAP256.id) + headerLen(len(sig)+1) + len(sig) + 1 + len(r.tail)
	octetLen := headerLen(basicLen) + basicLen
	// ResponseBytes ::= SEQUENCE { responseType id-pkix-ocsp-basic, response OCTET STRING }
	bytesLen := len(oidOCSPBasic) + headerLen(octetLen) + octetLen
	explicitLen := headerLen(bytesLen) + bytesLen
	// OCSPResponse ::= SEQUENCE { responseStatus, responseBytes [0] EXPLICIT }
	outerLen := 3 + headerLen(explicitLen) + explicitLen

	head := make([]byte, 0, headerLen(outerLen)+outerLen-len(r.tail))
	head = appendHeader(head, tagSequence, outerLen)
	head = append(head, tagEnumerated, 1, respSuccessful)
	head = appendHeader(head, tagContext0, explicitLen)
	head = appendHeader(head, tagSequence, bytesLen)
	head = append(head, oidOCSPBasic...)
	head = appendHeader(head, tagOctetString, octetLen)
	head = appendHeader(head, tagSequence, basicLen)
	head = append(head, tbs...)
	head = append(head, algECDSAP256.id...)
	head = appendHeader(head, tagBitString, len(sig)+1)
	head = append(head, 0)
	head = append(head, sig...)
	return head, nil
}
