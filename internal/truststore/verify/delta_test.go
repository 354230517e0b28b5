package verify

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"strings"
	"testing"
	"time"
)

// deltaOpt makes the CRL a delta CRL from base, its Delta CRL Indicator
// critical unless told otherwise.
func deltaOpt(t *testing.T, number, base int64, critical bool) crlOpt {
	return func(l *x509.RevocationList) {
		v, err := asn1.Marshal(big.NewInt(base))
		if err != nil {
			t.Fatal(err)
		}
		l.Number = big.NewInt(number)
		l.ExtraExtensions = append(l.ExtraExtensions, pkix.Extension{Id: oidDeltaCRLIndicator, Critical: critical, Value: v})
	}
}

// withReasons sets the reason codes of the CRL's entries, in order.
func withReasons(reasons ...int) crlOpt {
	return func(l *x509.RevocationList) {
		for i, r := range reasons {
			l.RevokedCertificateEntries[i].ReasonCode = r
		}
	}
}

// TestApplyDeltas: a delta CRL revokes, releases from hold and freshens
// its issuer's full CRL in a new Verifier, leaving the one it came from as
// it was; a delta that does not fit the CRL held is refused.
func TestApplyDeltas(t *testing.T) {
	f := newFixture(t)
	revoked := f.inter.leaf(t, "revoked")
	held := f.inter.leaf(t, "held")
	later := f.inter.leaf(t, "revoked-later")
	fine := f.inter.leaf(t, "fine")
	roots := []*x509.Certificate{f.root.cert, f.inter.cert}
	// The full CRL (number 1) went stale an hour ago.
	full := f.inter.crl(t, []*big.Int{revoked.SerialNumber, held.SerialNumber}, withReasons(1, 6), func(l *x509.RevocationList) {
		l.ThisUpdate, l.NextUpdate = now.Add(-48*time.Hour), now.Add(-time.Hour)
	})
	base, err := CompileDER(roots, [][]byte{full.Raw}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	delta := f.inter.crl(t, []*big.Int{held.SerialNumber, later.SerialNumber}, withReasons(reasonRemoveFromCRL, 1), deltaOpt(t, 5, 1, true))
	v, err := base.ApplyDeltas([][]byte{delta.Raw})
	if err != nil {
		t.Fatal(err)
	}
	check := func(v *Verifier, what string, want map[*x509.Certificate]Reason) {
		t.Helper()
		for c, r := range want {
			_, err := v.Verify([]*x509.Certificate{c, f.inter.cert}, now)
			if got := ReasonOf(err); got != r {
				t.Errorf("%s: %s: reason %v, want %v (%v)", what, c.Subject.CommonName, got, r, err)
			}
		}
	}
	check(v, "with the delta", map[*x509.Certificate]Reason{revoked: ClientCertCrlHit, held: 0, later: ClientCertCrlHit, fine: 0})
	check(base, "without it", map[*x509.Certificate]Reason{revoked: ClientCertCrlExpired, held: ClientCertCrlExpired, fine: ClientCertCrlExpired})
	var info CRLInfo
	for _, c := range v.CRLs() {
		if c.Issuer == f.inter.cert {
			info = c
		}
	}
	if info.Number != "5" || info.BaseNumber != "1" || info.DeltaEntries != 2 || !info.NextUpdate.Equal(delta.NextUpdate) {
		t.Errorf("CRL info after the delta: %+v", info)
	}

	other := newRoot(t, "Stranger")
	for _, tc := range []struct {
		name string
		v    *Verifier
		der  []byte
		want string
	}{
		{"fail/other base", base, f.inter.crl(t, nil, deltaOpt(t, 5, 2, true)).Raw, "applies to CRL number 2, and the one held is 1"},
		{"fail/not critical", base, f.inter.crl(t, nil, deltaOpt(t, 5, 1, false)).Raw, "not critical"},
		{"fail/full CRL", base, f.inter.crl(t, nil, func(l *x509.RevocationList) { l.Number = big.NewInt(9) }).Raw, "not a delta CRL"},
		{"fail/number not above base", base, f.inter.crl(t, nil, deltaOpt(t, 1, 1, true)).Raw, "not above its base"},
		{"fail/untrusted issuer", base, other.crl(t, nil, deltaOpt(t, 5, 1, true)).Raw, "not issued by a CA of the trust store"},
		{"fail/no full CRL of the issuer", base, f.root.crl(t, nil, deltaOpt(t, 5, 1, true)).Raw, "no full CRL"},
		{"fail/delta on a delta", v, f.inter.crl(t, nil, deltaOpt(t, 6, 1, true)).Raw, "already applied"},
		{"fail/garbage", base, []byte{0x30, 0x01}, "verify: delta CRL 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.v.ApplyDeltas([][]byte{tc.der})
			if err == nil || got != nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ApplyDeltas: %v, %v; want an error with %q", got != nil, err, tc.want)
			}
		})
	}
	// A full CRL given to Compile as if it were one is still refused.
	if _, err := CompileDER(roots, [][]byte{delta.Raw}, Options{}); err == nil {
		t.Error("Compile took a delta CRL")
	}
}
