package verify

import (
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
)

// crlInput is one CRL as Compile needs it: the header fields (issuer,
// dates, extensions, signature) as an *x509.RevocationList whose
// RawTBSRevocationList and Signature are the real ones, and the revoked
// serials streamed to a callback, so that a large CRL never exists as a
// million parsed entries.
type crlInput struct {
	hdr     *x509.RevocationList
	entries int
	// serialBytes bounds the bytes of the serials' magnitudes (0: unknown).
	serialBytes int
	// each calls add with every revoked serial: its magnitude without
	// leading zeros, whether it is negative, and its reason code (0 when
	// it has none). It fails on an entry carrying an unsupported critical
	// extension.
	each func(add func(mag []byte, negative bool, reason int)) error
}

func fromParsed(crl *x509.RevocationList) crlInput {
	return crlInput{
		hdr:     crl,
		entries: len(crl.RevokedCertificateEntries),
		each: func(add func([]byte, bool, int)) error {
			for j := range crl.RevokedCertificateEntries {
				e := &crl.RevokedCertificateEntries[j]
				if e.SerialNumber == nil {
					return fmt.Errorf("entry %d has no serial", j)
				}
				for _, ext := range e.Extensions {
					if ext.Critical && !ext.Id.Equal(oidReasonCode) && !ext.Id.Equal(oidInvalidityDate) {
						// certificateIssuer (§5.3.3) would make this an indirect CRL.
						return fmt.Errorf("entry %d has the unsupported critical extension %s", j, ext.Id)
					}
				}
				add(e.SerialNumber.Bytes(), e.SerialNumber.Sign() < 0, e.ReasonCode)
			}
			return nil
		},
	}
}

// DER tags (X.690) used by CRLs.
const (
	tagBoolean     = 0x01
	tagInteger     = 0x02
	tagOctetString = 0x04
	tagEnumerated  = 0x0a
	tagOID         = 0x06
	tagUTCTime     = 0x17
	tagGenTime     = 0x18
	tagSequence    = 0x30
)

// readTLV splits one DER element off b: its tag, its content and the rest.
// Only single-byte tags and definite lengths of up to 4 bytes occur in CRLs.
func readTLV(b []byte) (tag byte, content, full, rest []byte, err error) {
	if len(b) < 2 {
		return 0, nil, nil, nil, errors.New("truncated DER")
	}
	tag = b[0]
	if tag&0x1f == 0x1f {
		return 0, nil, nil, nil, errors.New("multi-byte DER tags are not supported")
	}
	n, hdr := int(b[1]), 2
	if n&0x80 != 0 {
		k := n & 0x7f
		if k == 0 || k > 4 || len(b) < 2+k {
			return 0, nil, nil, nil, errors.New("bad DER length")
		}
		n = 0
		for _, c := range b[2 : 2+k] {
			n = n<<8 | int(c)
		}
		hdr += k
		if n < 0x80 || (k > 1 && b[2] == 0) {
			return 0, nil, nil, nil, errors.New("non-minimal DER length")
		}
	}
	if n < 0 || len(b)-hdr < n {
		return 0, nil, nil, nil, errors.New("truncated DER")
	}
	return tag, b[hdr : hdr+n], b[:hdr+n], b[hdr+n:], nil
}

func expect(b []byte, want byte, what string) (content, full, rest []byte, err error) {
	tag, content, full, rest, err := readTLV(b)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	if tag != want {
		return nil, nil, nil, fmt.Errorf("%s: tag %#x, want %#x", what, tag, want)
	}
	return content, full, rest, nil
}

// parseCRLDER reads a DER CertificateList (RFC 5280 §5.1). The header is
// parsed by crypto/x509 from a copy without the revoked certificates; the
// entries are walked here, without allocating per entry.
func parseCRLDER(der []byte) (crlInput, error) {
	outer, _, rest, err := expect(der, tagSequence, "CertificateList")
	if err != nil {
		return crlInput{}, err
	}
	if len(rest) != 0 {
		return crlInput{}, errors.New("trailing data after the CRL")
	}
	tbs, tbsFull, afterTBS, err := expect(outer, tagSequence, "tbsCertList")
	if err != nil {
		return crlInput{}, err
	}
	// tbsCertList: version?, signature, issuer, thisUpdate, nextUpdate?,
	// revokedCertificates?, [0] crlExtensions?
	p := tbs
	peek := func() byte {
		if len(p) == 0 {
			return 0
		}
		return p[0]
	}
	skip := func(what string) error {
		_, _, _, r, err := readTLV(p)
		if err != nil {
			return fmt.Errorf("tbsCertList %s: %w", what, err)
		}
		p = r
		return nil
	}
	if peek() == tagInteger {
		if err := skip("version"); err != nil {
			return crlInput{}, err
		}
	}
	for _, what := range []string{"signature", "issuer"} {
		if peek() != tagSequence {
			return crlInput{}, fmt.Errorf("tbsCertList: no %s", what)
		}
		if err := skip(what); err != nil {
			return crlInput{}, err
		}
	}
	for i, what := range []string{"thisUpdate", "nextUpdate"} {
		if t := peek(); t != tagUTCTime && t != tagGenTime {
			if i == 0 {
				return crlInput{}, errors.New("tbsCertList: no thisUpdate")
			}
			break
		}
		if err := skip(what); err != nil {
			return crlInput{}, err
		}
	}
	head := tbs[:len(tbs)-len(p)]
	var entries []byte
	if peek() == tagSequence {
		_, _, full, r, err := readTLV(p)
		if err != nil {
			return crlInput{}, fmt.Errorf("tbsCertList revokedCertificates: %w", err)
		}
		entries, p = full, r
	}
	tail := p
	if entries == nil {
		// No revoked certificates: x509 parses it all.
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			return crlInput{}, err
		}
		return fromParsed(crl), nil
	}
	// A CRL without entries but with the same header and signature, for
	// x509 to parse the issuer, dates, extensions and algorithm.
	strippedTBS := appendTLV(nil, tagSequence, append(append([]byte(nil), head...), tail...))
	stripped := appendTLV(nil, tagSequence, append(strippedTBS, afterTBS...))
	hdr, err := x509.ParseRevocationList(stripped)
	if err != nil {
		return crlInput{}, err
	}
	if len(hdr.RevokedCertificateEntries) != 0 {
		return crlInput{}, errors.New("tbsCertList: unexpected structure")
	}
	// The signature covers the real tbsCertList.
	hdr.Raw, hdr.RawTBSRevocationList = der, tbsFull
	list, _, _, err := expect(entries, tagSequence, "revokedCertificates")
	if err != nil {
		return crlInput{}, err
	}
	count, size := 0, 0
	for q := list; len(q) > 0; count++ {
		entry, _, r, err := expect(q, tagSequence, "revokedCertificate")
		if err != nil {
			return crlInput{}, err
		}
		q = r
		// The serial's content length: at most one byte over its magnitude.
		if len(entry) >= 2 && entry[1] < 0x80 {
			size += int(entry[1])
		} else {
			size += len(entry)
		}
	}
	in := crlInput{hdr: hdr, entries: count, serialBytes: size}
	in.each = func(add func([]byte, bool, int)) error {
		for q, j := list, 0; len(q) > 0; j++ {
			entry, _, r, err := expect(q, tagSequence, "revokedCertificate")
			if err != nil {
				return err
			}
			q = r
			serial, _, e, err := expect(entry, tagInteger, "userCertificate")
			if err != nil {
				return fmt.Errorf("entry %d: %w", j, err)
			}
			if len(serial) == 0 {
				return fmt.Errorf("entry %d: empty serial", j)
			}
			tag, _, _, e, err := readTLV(e) // revocationDate
			if err != nil || (tag != tagUTCTime && tag != tagGenTime) {
				return fmt.Errorf("entry %d: bad revocation date", j)
			}
			reason := 0
			if len(e) > 0 {
				if reason, err = checkEntryExtensions(e); err != nil {
					return fmt.Errorf("entry %d: %w", j, err)
				}
			}
			if serial[0]&0x80 != 0 {
				// Negative (two's complement): rare and non-conforming.
				n := new(big.Int).SetBytes(serial)
				n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(serial))))
				add(n.Bytes(), true, reason)
				continue
			}
			for len(serial) > 1 && serial[0] == 0 {
				serial = serial[1:]
			}
			if len(serial) == 1 && serial[0] == 0 {
				serial = serial[:0]
			}
			add(serial, false, reason)
		}
		return nil
	}
	return in, nil
}

// checkEntryExtensions rejects critical crlEntryExtensions other than
// reasonCode and invalidityDate (certificateIssuer would make the CRL
// indirect, RFC 5280 §5.3.3), and returns the reason code, 0 without one.
func checkEntryExtensions(b []byte) (int, error) {
	exts, _, rest, err := expect(b, tagSequence, "crlEntryExtensions")
	if err != nil {
		return 0, err
	}
	if len(rest) > 0 {
		return 0, errors.New("trailing data in a CRL entry")
	}
	reason := 0
	for len(exts) > 0 {
		ext, _, r, err := expect(exts, tagSequence, "Extension")
		if err != nil {
			return 0, err
		}
		exts = r
		oid, _, er, err := expect(ext, tagOID, "extnID")
		if err != nil {
			return 0, err
		}
		critical := false
		if len(er) > 0 && er[0] == tagBoolean {
			v, _, r2, err := expect(er, tagBoolean, "critical")
			if err != nil || len(v) != 1 {
				return 0, errors.New("bad critical flag")
			}
			critical, er = v[0] != 0, r2
		}
		value, _, _, err := expect(er, tagOctetString, "extnValue")
		if err != nil {
			return 0, err
		}
		if oidIs(oid, oidReasonCodeDER) {
			// CRLReason ::= ENUMERATED, one octet for every defined value.
			code, _, _, err := expect(value, tagEnumerated, "reasonCode")
			if err != nil || len(code) != 1 {
				return 0, errors.New("bad reason code")
			}
			reason = int(code[0])
		}
		if critical && !oidIs(oid, oidReasonCodeDER) && !oidIs(oid, oidInvalidityDateDER) {
			return 0, fmt.Errorf("unsupported critical extension (OID bytes %x)", oid)
		}
	}
	return reason, nil
}

var (
	oidReasonCodeDER     = []byte{0x55, 0x1d, 0x15} // 2.5.29.21
	oidInvalidityDateDER = []byte{0x55, 0x1d, 0x18} // 2.5.29.24
)

func oidIs(a, b []byte) bool { return string(a) == string(b) }

func appendTLV(dst []byte, tag byte, body []byte) []byte {
	dst = append(dst, tag)
	switch n := len(body); {
	case n < 0x80:
		dst = append(dst, byte(n))
	case n < 1<<8:
		dst = append(dst, 0x81, byte(n))
	case n < 1<<16:
		dst = append(dst, 0x82, byte(n>>8), byte(n))
	case n < 1<<24:
		dst = append(dst, 0x83, byte(n>>16), byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x84, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, body...)
}

// ParseCRLHeader parses a DER CRL's issuer, dates, number and extensions,
// without its entries (RevokedCertificateEntries is left empty) and without
// checking its signature: what a fetcher needs to schedule the next fetch.
func ParseCRLHeader(der []byte) (*x509.RevocationList, error) {
	in, err := parseCRLDER(der)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	hdr := *in.hdr
	hdr.RevokedCertificateEntries = nil
	return &hdr, nil
}
