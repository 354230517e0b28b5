package verify

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

type fixture struct {
	root, inter, other *testCA
	leaf, viaInter     *x509.Certificate
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{root: newRoot(t, "Test Root"), other: newRoot(t, "Other Root")}
	f.inter = f.root.child(t, "Test Intermediate")
	f.leaf = f.root.leaf(t, "direct")
	f.viaInter = f.inter.leaf(t, "svc-a")
	return f
}

func mustCompile(t *testing.T, roots []*x509.Certificate, crls []*x509.RevocationList, opts Options) *Verifier {
	t.Helper()
	v, err := Compile(roots, crls, opts)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return v
}

func TestVerify(t *testing.T) {
	f := newFixture(t)
	deep := f.inter.child(t, "Deep 1")
	deep2 := deep.child(t, "Deep 2")
	deep3 := deep2.child(t, "Deep 3")
	deepLeaf := deep3.leaf(t, "deep")
	revokedLeaf := f.inter.leaf(t, "revoked")
	revokedInter := f.root.child(t, "Revoked Intermediate")
	underRevoked := revokedInter.leaf(t, "under-revoked")
	expired := f.inter.leaf(t, "expired", func(c *x509.Certificate) {
		c.NotBefore, c.NotAfter = now.Add(-48*time.Hour), now.Add(-time.Hour)
	})
	notYet := f.inter.leaf(t, "not-yet", func(c *x509.Certificate) {
		c.NotBefore, c.NotAfter = now.Add(time.Hour), now.Add(48*time.Hour)
	})
	serverOnly := f.inter.leaf(t, "server-only", func(c *x509.Certificate) {
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	})
	oversized := f.inter.leaf(t, "big", func(c *x509.Certificate) {
		c.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, Value: make([]byte, 5000)}}
	})
	untrusted := f.other.leaf(t, "stranger")
	expiredCA := f.root.child(t, "Expired CA", func(c *x509.Certificate) {
		c.NotBefore, c.NotAfter = now.Add(-72*time.Hour), now.Add(-30*time.Minute)
	})
	expiredUnderExpiredCA := expiredCA.leaf(t, "old", func(c *x509.Certificate) {
		c.NotBefore, c.NotAfter = now.Add(-48*time.Hour), now.Add(-time.Hour)
	})

	rootCRL := f.root.crl(t, []*big.Int{revokedInter.cert.SerialNumber})
	interCRL := f.inter.crl(t, []*big.Int{revokedLeaf.SerialNumber, big1(7)})
	staleCRL := f.inter.crl(t, []*big.Int{revokedLeaf.SerialNumber}, func(r *x509.RevocationList) {
		r.ThisUpdate, r.NextUpdate = now.Add(-48*time.Hour), now.Add(-time.Hour)
	})
	anchors := []*x509.Certificate{f.root.cert}
	withInter := []*x509.Certificate{f.root.cert, f.inter.cert}

	tests := []struct {
		name   string
		roots  []*x509.Certificate
		crls   []*x509.RevocationList
		opts   Options
		chain  []*x509.Certificate
		reason Reason
		check  func(t *testing.T, r Result)
	}{
		{name: "ok/leaf-of-root", roots: anchors, chain: []*x509.Certificate{f.leaf},
			check: func(t *testing.T, r Result) {
				if len(r.Chain) != 2 || r.Chain[1] != f.root.cert {
					t.Errorf("chain = %d certificates", len(r.Chain))
				}
			}},
		{name: "ok/intermediate-presented", roots: anchors, chain: []*x509.Certificate{f.viaInter, f.inter.cert}},
		{name: "ok/intermediate-in-store", roots: withInter, chain: []*x509.Certificate{f.viaInter},
			check: func(t *testing.T, r Result) {
				if len(r.Chain) != 2 || r.Chain[1] != f.inter.cert {
					t.Errorf("want the intermediate as anchor, got %d certificates", len(r.Chain))
				}
			}},
		{name: "ok/crl-miss", roots: withInter, crls: []*x509.RevocationList{rootCRL, interCRL}, chain: []*x509.Certificate{f.viaInter, f.inter.cert}},
		{name: "ok/expired-ignored", roots: anchors, opts: Options{IgnoreExpiry: true}, chain: []*x509.Certificate{expired, f.inter.cert},
			check: func(t *testing.T, r Result) {
				if !r.ExpiryIgnored {
					t.Error("ExpiryIgnored not set")
				}
			}},
		{name: "ok/stale-crl-fail-open", roots: withInter, crls: []*x509.RevocationList{staleCRL}, opts: Options{StaleCRL: FailOpen},
			chain: []*x509.Certificate{f.viaInter},
			check: func(t *testing.T, r Result) {
				if !r.StaleCRL || r.StaleIssuer != f.inter.cert {
					t.Errorf("StaleCRL = %v, issuer %v", r.StaleCRL, r.StaleIssuer)
				}
			}},
		{name: "fail/no-certificate", roots: anchors, chain: nil, reason: ClientCertNotFound},
		{name: "fail/untrusted", roots: anchors, chain: []*x509.Certificate{untrusted}, reason: ClientCertUntrusted},
		{name: "fail/missing-intermediate", roots: anchors, chain: []*x509.Certificate{f.viaInter}, reason: ClientCertUntrusted},
		{name: "fail/untrusted-and-expired", roots: anchors, chain: []*x509.Certificate{f.other.leaf(t, "x", func(c *x509.Certificate) {
			c.NotAfter = now.Add(-time.Minute)
		})}, reason: ClientCertUntrusted},
		{name: "fail/expired", roots: anchors, chain: []*x509.Certificate{expired, f.inter.cert}, reason: ClientCertExpired},
		{name: "fail/not-yet-valid", roots: anchors, chain: []*x509.Certificate{notYet, f.inter.cert}, reason: ClientCertNotYetValid},
		{name: "fail/not-yet-valid-despite-ignore-expiry", roots: anchors, opts: Options{IgnoreExpiry: true}, chain: []*x509.Certificate{notYet, f.inter.cert}, reason: ClientCertNotYetValid},
		{name: "fail/expired-ca-despite-ignore-expiry", roots: anchors, opts: Options{IgnoreExpiry: true}, chain: []*x509.Certificate{expiredUnderExpiredCA, expiredCA.cert}, reason: ClientCertExpired},
		{name: "fail/server-only-certificate", roots: anchors, chain: []*x509.Certificate{serverOnly, f.inter.cert}, reason: ClientCertWrongUsage},
		{name: "fail/presented-chain-too-deep", roots: anchors, chain: []*x509.Certificate{deepLeaf, deep3.cert, deep2.cert, deep.cert, f.inter.cert}, reason: ClientCertMaxChainDepthExceeded},
		{name: "fail/missing-intermediates-of-deep-chain", roots: anchors, opts: Options{MaxChainDepth: 3}, chain: []*x509.Certificate{deepLeaf, deep3.cert, deep2.cert}, reason: ClientCertUntrusted},
		{name: "ok/anchor-shortens-path", roots: []*x509.Certificate{f.root.cert, deep.cert, deep2.cert}, opts: Options{MaxChainDepth: 3},
			chain: []*x509.Certificate{deepLeaf, deep3.cert}, check: func(t *testing.T, r Result) {
				// deep2 is an anchor: leaf, deep3, deep2 fits.
				if len(r.Chain) != 3 {
					t.Errorf("chain = %d", len(r.Chain))
				}
			}},
		{name: "fail/path-longer-than-depth", roots: withInter, opts: Options{MaxChainDepth: 4},
			chain: []*x509.Certificate{deepLeaf, deep3.cert, deep2.cert, deep.cert}, reason: ClientCertMaxChainDepthExceeded},
		{name: "fail/oversized", roots: anchors, opts: Options{MaxCertSize: 4096}, chain: []*x509.Certificate{oversized, f.inter.cert}, reason: ClientCertMaxSizeExceeded},
		{name: "fail/revoked-leaf", roots: withInter, crls: []*x509.RevocationList{rootCRL, interCRL}, chain: []*x509.Certificate{revokedLeaf, f.inter.cert}, reason: ClientCertCrlHit},
		{name: "fail/revoked-intermediate", roots: anchors, crls: []*x509.RevocationList{rootCRL}, chain: []*x509.Certificate{underRevoked, revokedInter.cert}, reason: ClientCertCrlHit},
		{name: "fail/stale-crl-fail-closed", roots: withInter, crls: []*x509.RevocationList{staleCRL}, chain: []*x509.Certificate{f.viaInter}, reason: ClientCertCrlExpired},
		{name: "fail/revoked-with-stale-crl-fail-open", roots: withInter, crls: []*x509.RevocationList{staleCRL}, opts: Options{StaleCRL: FailOpen},
			chain: []*x509.Certificate{revokedLeaf}, reason: ClientCertCrlHit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := mustCompile(t, tt.roots, tt.crls, tt.opts)
			res, err := v.Verify(tt.chain, now)
			if tt.reason != 0 {
				if err == nil {
					t.Fatalf("Verify succeeded, want %s", tt.reason)
				}
				var ve *Error
				if !errors.As(err, &ve) {
					t.Fatalf("error %v is not a *verify.Error", err)
				}
				if ve.Reason != tt.reason {
					t.Fatalf("reason = %s, want %s (%v)", ve.Reason, tt.reason, err)
				}
				if !strings.HasPrefix(err.Error(), "verify: "+tt.reason.String()) {
					t.Errorf("error text %q", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if len(res.Chain) == 0 || res.Chain[0] != tt.chain[0] {
				t.Errorf("result chain does not start with the leaf")
			}
			if tt.check != nil {
				tt.check(t, res)
			}
		})
	}
}

func big1(n int64) *big.Int { return big.NewInt(n) }

func TestCompileRejects(t *testing.T) {
	f := newFixture(t)
	impostor := newRoot(t, "Test Root") // same name, other key
	leaf := f.root.leaf(t, "not-a-ca")
	deltaExt := func(r *x509.RevocationList) {
		r.ExtraExtensions = []pkix.Extension{{Id: oidDeltaCRLIndicator, Critical: true, Value: []byte{0x02, 0x01, 0x01}}}
	}
	unknownCrit := func(r *x509.RevocationList) {
		r.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Critical: true, Value: []byte{0x05, 0x00}}}
	}
	indirect := func(r *x509.RevocationList) {
		v, _ := asn1.Marshal(issuingDistributionPoint{IndirectCRL: true})
		r.ExtraExtensions = []pkix.Extension{{Id: oidIssuingDistribution, Critical: true, Value: v}}
	}
	tests := []struct {
		name  string
		roots []*x509.Certificate
		crls  []*x509.RevocationList
		want  string
	}{
		{"fail/empty", nil, nil, "no CA certificate"},
		{"fail/not-a-ca", []*x509.Certificate{f.root.cert, leaf}, nil, "not a CA certificate"},
		{"fail/crl-unknown-issuer", []*x509.Certificate{f.root.cert}, []*x509.RevocationList{f.other.crl(t, nil)}, "not issued by a CA of the trust store"},
		{"fail/crl-of-intermediate-not-in-store", []*x509.Certificate{f.root.cert}, []*x509.RevocationList{f.inter.crl(t, nil)}, "not issued by a CA of the trust store"},
		{"fail/crl-bad-signature", []*x509.Certificate{f.root.cert}, []*x509.RevocationList{impostor.crl(t, nil)}, "not issued by a CA of the trust store"},
		{"fail/delta-crl", []*x509.Certificate{f.root.cert}, []*x509.RevocationList{f.root.crl(t, nil, deltaExt)}, "delta CRLs"},
		{"fail/unknown-critical-extension", []*x509.Certificate{f.root.cert}, []*x509.RevocationList{f.root.crl(t, nil, unknownCrit)}, "unsupported critical extension"},
		{"fail/indirect-crl", []*x509.Certificate{f.root.cert}, []*x509.RevocationList{f.root.crl(t, nil, indirect)}, "indirect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(tt.roots, tt.crls, Options{})
			if err == nil {
				t.Fatal("Compile succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

// A CRL signed by a key that is not the CA's, under the CA's name, is
// rejected as a bad signature, not silently ignored.
func TestCompileBadSignature(t *testing.T) {
	f := newFixture(t)
	impostor := &testCA{cert: f.root.cert, key: newKey(t)}
	crl := impostor.crlUnchecked(t)
	_, err := Compile([]*x509.Certificate{f.root.cert}, []*x509.RevocationList{crl}, Options{})
	if err == nil || !strings.Contains(err.Error(), "bad signature") {
		t.Fatalf("err = %v, want a bad signature", err)
	}
}

// crlUnchecked signs a CRL naming ca.cert as issuer with ca.key, which may
// not be the certificate's key (x509.CreateRevocationList would refuse).
func (ca *testCA) crlUnchecked(t *testing.T) *x509.RevocationList {
	t.Helper()
	der := ca.bigCRLDER(t, 3)
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	return crl
}

func TestPartitionsMergeAndNewestWins(t *testing.T) {
	f := newFixture(t)
	a := f.inter.leaf(t, "a", func(c *x509.Certificate) { c.CRLDistributionPoints = []string{"http://crl/inter/0.crl"} })
	b := f.inter.leaf(t, "b", func(c *x509.Certificate) { c.CRLDistributionPoints = []string{"http://crl/inter/1.crl"} })
	part := func(url string, number int64, this time.Time, next time.Time, serials ...*big.Int) *x509.RevocationList {
		return f.inter.crl(t, serials, func(r *x509.RevocationList) {
			v, _ := asn1.Marshal(issuingDistributionPoint{DistributionPoint: distributionPointName{
				FullName: []asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte(url)}}}})
			r.ExtraExtensions = []pkix.Extension{{Id: oidIssuingDistribution, Critical: true, Value: v}}
			r.Number, r.ThisUpdate, r.NextUpdate = big.NewInt(number), this, next
		})
	}
	fresh := now.Add(time.Hour)
	p0old := part("http://crl/inter/0.crl", 1, now.Add(-2*time.Hour), fresh, a.SerialNumber)
	p0new := part("http://crl/inter/0.crl", 2, now.Add(-time.Hour), fresh) // a un-revoked
	p1 := part("http://crl/inter/1.crl", 1, now.Add(-2*time.Hour), now.Add(-time.Minute), b.SerialNumber)

	roots := []*x509.Certificate{f.root.cert, f.inter.cert}
	v := mustCompile(t, roots, []*x509.RevocationList{p0new, p1, p0old}, Options{StaleCRL: FailOpen})
	if res, err := v.Verify([]*x509.Certificate{a}, now); err != nil || res.StaleCRL {
		t.Errorf("a: err %v, stale %v; want accepted by the newer partition 0, which is fresh", err, res.StaleCRL)
	}
	if _, err := v.Verify([]*x509.Certificate{b}, now); ReasonOf(err) != ClientCertCrlHit {
		t.Errorf("b: %v, want ClientCertCrlHit from partition 1", err)
	}
	if got := len(v.CRLs()); got != 2 {
		t.Errorf("CRLs() = %d, want 2 (the older partition 0 dropped)", got)
	}
	// Only partition 1 is stale: a (partition 0) passes fail-closed, a
	// fresh certificate of partition 1 does not.
	v = mustCompile(t, roots, []*x509.RevocationList{p0new, p1}, Options{})
	if _, err := v.Verify([]*x509.Certificate{a}, now); err != nil {
		t.Errorf("a: %v", err)
	}
	c := f.inter.leaf(t, "c", func(c *x509.Certificate) { c.CRLDistributionPoints = []string{"http://crl/inter/1.crl"} })
	if _, err := v.Verify([]*x509.Certificate{c}, now); ReasonOf(err) != ClientCertCrlExpired {
		t.Errorf("c: %v, want ClientCertCrlExpired", err)
	}
}

func TestCheckLimits(t *testing.T) {
	f := newFixture(t)
	if err := CheckLimits([]*x509.Certificate{f.viaInter, f.inter.cert, f.root.cert}, Options{MaxChainDepth: 2}); ReasonOf(err) != ClientCertMaxChainDepthExceeded {
		t.Errorf("depth: %v", err)
	}
	if err := CheckLimits([]*x509.Certificate{f.viaInter}, Options{MaxCertSize: 100}); ReasonOf(err) != ClientCertMaxSizeExceeded {
		t.Errorf("size: %v", err)
	}
	if err := CheckLimits([]*x509.Certificate{f.viaInter, f.inter.cert}, Options{}); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func TestReasonNames(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Reasons() {
		s := r.String()
		if !strings.HasPrefix(s, "ClientCert") || seen[s] {
			t.Errorf("reason %d: %q", int(r), s)
		}
		seen[s] = true
	}
	if len(seen) != 11 {
		t.Errorf("%d reasons, want the 11 of the fixed list", len(seen))
	}
	if Reason(0).String() != "" || Reason(99).String() != "Reason(99)" {
		t.Error("out-of-range names")
	}
}

// The Verifier is used by every handshake at once.
func TestVerifyConcurrent(t *testing.T) {
	f := newFixture(t)
	revoked := f.inter.leaf(t, "r")
	v := mustCompile(t, []*x509.Certificate{f.root.cert, f.inter.cert}, []*x509.RevocationList{f.inter.crl(t, []*big.Int{revoked.SerialNumber})}, Options{})
	done := make(chan struct{})
	for i := 0; i < 4; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for j := 0; j < 50; j++ {
				if _, err := v.Verify([]*x509.Certificate{f.viaInter}, now); err != nil {
					t.Error(err)
					return
				}
				if _, err := v.Verify([]*x509.Certificate{revoked}, now); ReasonOf(err) != ClientCertCrlHit {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := 0; i < 4; i++ {
		<-done
	}
}

// TestVerifyPresentedAnchor: a client that sends an intermediate which the
// trust store also holds gets the path that ends at that anchor, as before
// the presented copy was kept out of the intermediates; a path through an
// intermediate the trust store does not hold still builds to the root.
func TestVerifyPresentedAnchor(t *testing.T) {
	root := newRoot(t, "Anchor Root")
	inter := root.child(t, "Anchor Intermediate")
	leaf := inter.leaf(t, "client")
	both, err := Compile([]*x509.Certificate{root.cert, inter.cert}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := both.Verify([]*x509.Certificate{leaf, inter.cert}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Chain) != 2 || !res.Chain[1].Equal(inter.cert) {
		t.Errorf("path of %d certificates ending at %s, want leaf -> intermediate (the anchor)", len(res.Chain), res.Chain[len(res.Chain)-1].Subject)
	}
	rootOnly, err := Compile([]*x509.Certificate{root.cert}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err = rootOnly.Verify([]*x509.Certificate{leaf, inter.cert}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Chain) != 3 || !res.Chain[2].Equal(root.cert) {
		t.Errorf("path of %d certificates, want leaf -> intermediate -> root", len(res.Chain))
	}
}

// BenchmarkVerifyPresentedAnchor verifies a leaf sent with its
// intermediate, which the trust store holds as an anchor next to the root:
// the gateway benchmark's setup.
func BenchmarkVerifyPresentedAnchor(b *testing.B) {
	root := newRoot(b, "Bench Root")
	inter := root.child(b, "Bench Intermediate")
	leaf := inter.leaf(b, "bench")
	v, err := Compile([]*x509.Certificate{root.cert, inter.cert}, nil, Options{})
	if err != nil {
		b.Fatal(err)
	}
	chain := []*x509.Certificate{leaf, inter.cert}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(chain, now); err != nil {
			b.Fatal(err)
		}
	}
}
