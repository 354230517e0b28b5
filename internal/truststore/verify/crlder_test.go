package verify

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
)

// The DER walk and x509.ParseRevocationList must agree: same issuer and
// dates, same revoked serials, same rejections.
func TestCompileDERMatchesCompile(t *testing.T) {
	f := newFixture(t)
	revoked := f.inter.leaf(t, "revoked")
	fine := f.inter.leaf(t, "fine")
	roots := []*x509.Certificate{f.root.cert, f.inter.cert}
	serials := []*big.Int{revoked.SerialNumber, big.NewInt(0), big.NewInt(-129), new(big.Int).Lsh(big.NewInt(1), 159)}
	withReason := func(r *x509.RevocationList) {
		r.RevokedCertificateEntries[0].ReasonCode = 1
		r.RevokedCertificateEntries[1].ExtraExtensions = []pkix.Extension{{Id: oidInvalidityDate, Critical: true, Value: mustMarshal(t, now)}}
	}
	crls := map[string]*x509.RevocationList{
		"entries":    f.inter.crl(t, serials, withReason),
		"no-entries": f.inter.crl(t, nil),
	}
	for name, crl := range crls {
		t.Run(name, func(t *testing.T) {
			a, err := Compile(roots, []*x509.RevocationList{crl}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			b, err := CompileDER(roots, [][]byte{crl.Raw}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			ia, ib := a.CRLs()[0], b.CRLs()[0]
			if ia.Entries != ib.Entries || !ia.ThisUpdate.Equal(ib.ThisUpdate) || !ia.NextUpdate.Equal(ib.NextUpdate) || ia.Number != ib.Number || ia.Issuer != ib.Issuer {
				t.Errorf("CRLInfo differs: %+v vs %+v", ia, ib)
			}
			if !bytes.Equal(ia.Signature, crl.Signature) || !bytes.Equal(ib.Signature, crl.Signature) {
				t.Errorf("CRLInfo.Signature is not the CRL's signature")
			}
			// The Verifier keeps a copy, not a slice of the DER.
			der := append([]byte(nil), crl.Raw...)
			c, err := CompileDER(roots, [][]byte{der}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			clear(der)
			if !bytes.Equal(c.CRLs()[0].Signature, crl.Signature) {
				t.Errorf("CRLInfo.Signature aliases the DER")
			}
			for _, s := range serials {
				ca, cb := a.issuers[string(f.inter.cert.RawSubject)][0].revoked.contains(s), b.issuers[string(f.inter.cert.RawSubject)][0].revoked.contains(s)
				if ca != cb {
					t.Errorf("serial %s: Compile %v, CompileDER %v", s, ca, cb)
				}
			}
			for _, c := range []*x509.Certificate{revoked, fine} {
				_, ea := a.Verify([]*x509.Certificate{c}, now)
				_, eb := b.Verify([]*x509.Certificate{c}, now)
				if ReasonOf(ea) != ReasonOf(eb) {
					t.Errorf("%s: %v vs %v", c.Subject.CommonName, ea, eb)
				}
			}
		})
	}
	// A critical certificateIssuer entry extension is refused by both.
	indirect := f.inter.crl(t, serials, func(r *x509.RevocationList) {
		r.RevokedCertificateEntries[0].ExtraExtensions = []pkix.Extension{{Id: oidCertificateIssuer, Critical: true, Value: []byte{0x30, 0x00}}}
	})
	if _, err := Compile(roots, []*x509.RevocationList{indirect}, Options{}); err == nil {
		t.Error("Compile accepted a certificateIssuer entry")
	}
	if _, err := CompileDER(roots, [][]byte{indirect.Raw}, Options{}); err == nil {
		t.Error("CompileDER accepted a certificateIssuer entry")
	}
	// A modified entry breaks the signature.
	bad := append([]byte(nil), crls["entries"].Raw...)
	i := bytes.Index(bad, revoked.SerialNumber.Bytes())
	if i < 0 {
		t.Fatal("serial not found in the DER")
	}
	bad[i] ^= 1
	if _, err := CompileDER(roots, [][]byte{bad}, Options{}); err == nil {
		t.Error("CompileDER accepted a tampered CRL")
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzParseCRLDER checks that the DER walk never accepts what crypto/x509
// rejects as a whole CRL and, when both accept, that they read the same
// serials.
func FuzzParseCRLDER(f *testing.F) {
	ca := newRoot(f, "Fuzz Root")
	f.Add(ca.crl(f, []*big.Int{big.NewInt(1), big.NewInt(300)}).Raw)
	f.Add(ca.crl(f, nil).Raw)
	f.Add(ca.bigCRLDER(f, 3, big.NewInt(-5)))
	f.Fuzz(func(t *testing.T, der []byte) {
		in, err := parseCRLDER(der)
		ref, refErr := x509.ParseRevocationList(der)
		if err != nil {
			return
		}
		var got [][]byte
		var negs int
		walkErr := in.each(func(mag []byte, neg bool, _ int) {
			if neg {
				negs++
				return
			}
			got = append(got, append([]byte(nil), mag...))
		})
		if refErr != nil {
			// x509 is stricter on entries (times, minimal integers); the
			// header it parsed itself. Nothing more to compare.
			return
		}
		if walkErr != nil {
			return
		}
		if in.entries != len(ref.RevokedCertificateEntries) {
			t.Fatalf("entries %d, x509 %d", in.entries, len(ref.RevokedCertificateEntries))
		}
		i := 0
		for _, e := range ref.RevokedCertificateEntries {
			if e.SerialNumber.Sign() < 0 {
				continue
			}
			if i >= len(got) || string(got[i]) != string(e.SerialNumber.Bytes()) {
				t.Fatalf("entry %d: %x, x509 %x", i, got, e.SerialNumber.Bytes())
			}
			i++
		}
		if !in.hdr.ThisUpdate.Equal(ref.ThisUpdate) || string(in.hdr.RawIssuer) != string(ref.RawIssuer) {
			t.Fatal("header differs")
		}
	})
}
