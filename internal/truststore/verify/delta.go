package verify

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
)

// reasonRemoveFromCRL marks, in a delta CRL, a certificate that is no
// longer on the CRL: released from hold, or expired (RFC 5280 §5.3.1).
const reasonRemoveFromCRL = 8

// ApplyDeltas returns a Verifier that is v with delta CRLs (RFC 5280
// §5.2.4, DER) applied, each to the full CRL of its issuer: the delta must
// be signed by a trust anchor whose revocations v holds as one full CRL
// (no issuing distribution point), carry a critical Delta CRL Indicator
// naming that CRL's number, and a CRL number above it. Its entries then
// override the full CRL's: one with the reason removeFromCRL takes its
// serial off, any other puts it on. The issuer's freshness (thisUpdate,
// nextUpdate, number, and so the stale-CRL policy) becomes the delta's.
//
// v is not changed, and the result shares v's revoked-serial sets: it
// costs the deltas' entries, not the full CRLs'. Lookups stay one hash
// probe per set. A delta lists every change since its base, so deltas do
// not stack: apply each issuer's latest delta to the Verifier compiled
// from the full CRLs; applying one to an issuer that has one is an error.
// On error no Verifier is returned.
func (v *Verifier) ApplyDeltas(deltas [][]byte) (*Verifier, error) {
	if len(deltas) == 0 {
		return v, nil
	}
	nv := *v
	nv.issuers = make(map[string][]*issuer, len(v.issuers))
	for k, list := range v.issuers {
		nv.issuers[k] = list
	}
	nv.crls = append([]CRLInfo(nil), v.crls...)
	for i, der := range deltas {
		if err := nv.applyDelta(der); err != nil {
			return nil, fmt.Errorf("verify: delta CRL %d: %w", i, err)
		}
	}
	return &nv, nil
}

// applyDelta applies one delta CRL to v, whose issuers map and crls slice
// are its own.
func (v *Verifier) applyDelta(der []byte) error {
	in, err := parseCRLDER(der)
	if err != nil {
		return err
	}
	crl := in.hdr
	base, err := deltaBase(crl)
	if err != nil {
		return err
	}
	ca, err := crlIssuer(v.anchors, crl)
	if err != nil {
		return fmt.Errorf("issuer %s: %w", crl.Issuer, err)
	}
	_, idp, err := crlScope(crl, true)
	if err != nil {
		return fmt.Errorf("issuer %s: %w", crl.Issuer, err)
	}
	if idp != nil {
		return fmt.Errorf("issuer %s: delta CRLs of a partitioned CRL are not supported", crl.Issuer)
	}
	if crl.Number == nil || crl.Number.Cmp(base) <= 0 {
		return fmt.Errorf("issuer %s: the delta's CRL number %v is not above its base %s", crl.Issuer, crl.Number, base)
	}
	subj := string(ca.RawSubject)
	list := v.issuers[subj]
	at := -1
	for j, is := range list {
		if bytes.Equal(is.spki, ca.RawSubjectPublicKeyInfo) {
			at = j
		}
	}
	if at < 0 {
		return fmt.Errorf("issuer %s: no full CRL of this issuer to apply the delta to", crl.Issuer)
	}
	is := list[at]
	if len(is.scopes) != 1 || is.scopes[0].partial {
		return fmt.Errorf("issuer %s: a delta applies to a single full CRL, and the issuer has %d CRLs", crl.Issuer, len(is.scopes))
	}
	full := is.scopes[0]
	if is.delta != nil || full.base != "" {
		return fmt.Errorf("issuer %s: a delta CRL is already applied", crl.Issuer)
	}
	if full.number != base.String() {
		return fmt.Errorf("issuer %s: the delta applies to CRL number %s, and the one held is %s", crl.Issuer, base, orNone(full.number))
	}
	overlay := make(map[string]bool, in.entries)
	err = in.each(func(mag []byte, negative bool, reason int) {
		overlay[deltaKey(mag, negative)] = reason != reasonRemoveFromCRL
	})
	if err != nil {
		return fmt.Errorf("issuer %s: %w", crl.Issuer, err)
	}
	nsc := full
	nsc.thisUpdate, nsc.nextUpdate, nsc.number, nsc.base = crl.ThisUpdate, crl.NextUpdate, crl.Number.String(), full.number
	nis := &issuer{spki: is.spki, revoked: is.revoked, scopes: []scope{nsc}, delta: overlay}
	nlist := append([]*issuer(nil), list...)
	nlist[at] = nis
	v.issuers[subj] = nlist
	for j := range v.crls {
		c := &v.crls[j]
		if c.Issuer == ca && !c.Partial && c.Number == full.number && c.BaseNumber == "" {
			c.ThisUpdate, c.NextUpdate, c.Number = nsc.thisUpdate, nsc.nextUpdate, nsc.number
			c.BaseNumber, c.DeltaEntries = full.number, in.entries
			break
		}
	}
	return nil
}

// deltaBase returns the BaseCRLNumber of a delta CRL, whose Delta CRL
// Indicator must be critical (RFC 5280 §5.2.4).
func deltaBase(crl *x509.RevocationList) (*big.Int, error) {
	for _, ext := range crl.Extensions {
		if !ext.Id.Equal(oidDeltaCRLIndicator) {
			continue
		}
		if !ext.Critical {
			return nil, errors.New("the Delta CRL Indicator is not critical")
		}
		var base *big.Int
		rest, err := asn1.Unmarshal(ext.Value, &base)
		if err != nil || len(rest) > 0 || base.Sign() < 0 {
			return nil, errors.New("malformed Delta CRL Indicator")
		}
		return base, nil
	}
	return nil, errors.New("not a delta CRL: no Delta CRL Indicator")
}

// deltaKey is the key of a serial in an issuer's delta map: its magnitude,
// with a '-' before it when negative.
func deltaKey(mag []byte, negative bool) string {
	if negative {
		return "-" + string(mag)
	}
	return string(mag)
}

// isRevoked reports whether serial is revoked by the issuer's CRLs, the
// delta CRL applied to them first.
func (is *issuer) isRevoked(serial *big.Int) bool {
	if is.delta != nil {
		if serial.Sign() < 0 {
			if r, ok := is.delta[deltaKey(serial.Bytes(), true)]; ok {
				return r
			}
		} else {
			var buf [32]byte
			b := magnitude(serial, &buf)
			if r, ok := is.delta[string(b)]; ok {
				return r
			}
			return is.revoked.containsBytes(b)
		}
	}
	return is.revoked.contains(serial)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
