package gateway

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"math/big"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/api/client"
	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/truststore/verify"
)

// deltaControlPlane answers each request with the next answer of a script,
// and records what each request said it held.
type deltaControlPlane struct {
	mu      sync.Mutex
	answers []*apiv1.TrustStoreSnapshot
	asked   []apiv1.HeldCRLs
	etags   []string
	// refuseDigests answers a have with digests 400, as a control plane
	// from before digests does.
	refuseDigests bool
}

func (d *deltaControlPlane) TrustStoreSnapshot(ctx context.Context, name, etag string) (*apiv1.TrustStoreSnapshot, string, bool, error) {
	return d.WatchTrustStoreSnapshotSince(ctx, name, etag, nil, 0)
}

func (d *deltaControlPlane) WatchTrustStoreSnapshotSince(_ context.Context, _, etag string, held apiv1.HeldCRLs, _ time.Duration) (*apiv1.TrustStoreSnapshot, string, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.asked = append(d.asked, held)
	d.etags = append(d.etags, etag)
	if d.refuseDigests && held.HasDigests() {
		// As a control plane from before digests parses have.
		return nil, "", false, &client.Error{Status: http.StatusBadRequest, Code: "invalid", Message: "have: CRL number \"10:…\" is not a positive integer"}
	}
	if len(d.answers) == 0 {
		return nil, "", false, errors.New("control plane down")
	}
	a := d.answers[0]
	d.answers = d.answers[1:]
	return a, a.ETag, false, nil
}

func (d *deltaControlPlane) next(a *apiv1.TrustStoreSnapshot) {
	d.mu.Lock()
	d.answers = append(d.answers, a)
	d.mu.Unlock()
}

func (d *deltaControlPlane) last() (string, apiv1.HeldCRLs) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.etags[len(d.etags)-1], d.asked[len(d.asked)-1]
}

// signCRL signs a CRL of ca numbered number listing serials with reasons;
// with base > 0 it is a delta CRL from base.
func signCRL(t *testing.T, ca *tca, number, base int64, entries map[*big.Int]int) []byte {
	t.Helper()
	now := time.Now()
	tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)}
	for serial, reason := range entries {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: serial, RevocationTime: now.Add(-time.Minute), ReasonCode: reason})
	}
	if base > 0 {
		v, err := asn1.Marshal(big.NewInt(base))
		if err != nil {
			t.Fatal(err)
		}
		tmpl.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 27}, Critical: true, Value: v}}
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestControlPlaneSourceDeltas plays a control plane that answers with a
// full CRL, then a delta, then "unchanged", then a delta the gateway
// cannot apply: the source applies the first two without compiling the
// full CRL again, keeps its state on the third, keeps its last good state
// on the fourth and asks for full CRLs next; the snapshot file carries the
// delta, and a source started from it enforces it.
func TestControlPlaneSourceDeltas(t *testing.T) {
	ca := newCA(t, "Delta Root")
	revoked, held, later, fine := ca.client(t, "revoked"), ca.client(t, "held"), ca.client(t, "later"), ca.client(t, "fine")
	key := hex.EncodeToString(ca.cert.SubjectKeyId)
	cp := &deltaControlPlane{}
	snap := func(version int64, etag string) *apiv1.TrustStoreSnapshot {
		return &apiv1.TrustStoreSnapshot{Name: "partners", Version: version, ETag: etag, CACertificates: [][]byte{ca.cert.Raw}, CRLs: [][]byte{}, CRLURLs: []string{}, HaveDigests: true}
	}
	var full, delta int
	src := &ControlPlaneSource{Client: cp, Name: "partners", CacheFile: filepath.Join(t.TempDir(), "partners.snapshot.json"),
		OnCRLs: func(f, d int) { full += f; delta += d }}
	expect := func(v *verify.Verifier, what string, want map[*leafCert]bool) {
		t.Helper()
		for lc, ok := range want {
			_, err := v.Verify(lc.chain, time.Now())
			if (err == nil) != ok {
				t.Errorf("%s: %s: %v, want accepted %v", what, lc.cert.Subject.CommonName, err, ok)
			}
		}
	}

	first := snap(1, `"1"`)
	first.CRLs = [][]byte{signCRL(t, ca, 10, 0, map[*big.Int]int{revoked.cert.SerialNumber: 1, held.cert.SerialNumber: 6})}
	cp.next(first)
	v, _, err := src.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	expect(v, "full CRL", map[*leafCert]bool{revoked: false, held: false, later: true, fine: true})

	second := snap(1, `"2"`)
	second.DeltaCRLs = [][]byte{signCRL(t, ca, 11, 10, map[*big.Int]int{held.cert.SerialNumber: 8, later.cert.SerialNumber: 1})}
	cp.next(second)
	v, _, err = src.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := key + ":10:" + apiv1.DigestCRL(first.CRLs[0]).String()
	if etag, asked := cp.last(); etag != `"1"` || asked.String() != want {
		t.Errorf("second request: etag %s, have %q; want \"1\", %s", etag, asked, want)
	}
	expect(v, "delta", map[*leafCert]bool{revoked: false, held: true, later: false, fine: true})

	third := snap(2, `"3"`)
	third.UnchangedCRLs = []string{key}
	cp.next(third)
	v, _, err = src.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	expect(v, "unchanged", map[*leafCert]bool{revoked: false, held: true, later: false, fine: true})
	if full != 1 || delta != 1 {
		t.Errorf("%d full CRLs compiled and %d deltas applied, want 1 and 1", full, delta)
	}

	// The snapshot file holds the full CRL and the delta: a source that
	// starts from it (no control plane) enforces both.
	fromFile := &ControlPlaneSource{Client: &deltaControlPlane{}, Name: "partners", CacheFile: src.CacheFile}
	fv, _, err := fromFile.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	expect(fv, "from the file", map[*leafCert]bool{revoked: false, held: true, later: false, fine: true})

	// A delta from a CRL the gateway does not hold: the last good state
	// stays, and the next request asks for everything whole.
	bad := snap(2, `"4"`)
	bad.DeltaCRLs = [][]byte{signCRL(t, ca, 12, 9, map[*big.Int]int{fine.cert.SerialNumber: 1})}
	cp.next(bad)
	if v, _, err = src.Load(t.Context()); err == nil {
		t.Fatal("a delta from another base was applied")
	}
	expect(v, "after a bad delta", map[*leafCert]bool{revoked: false, held: true, later: false, fine: true})
	again := snap(2, `"5"`)
	again.CRLs = [][]byte{signCRL(t, ca, 12, 0, map[*big.Int]int{revoked.cert.SerialNumber: 1, later.cert.SerialNumber: 1, fine.cert.SerialNumber: 1})}
	cp.next(again)
	if v, _, err = src.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	if etag, asked := cp.last(); etag != "" || len(asked) != 0 {
		t.Errorf("after a bad delta: etag %q, have %q; want neither", etag, asked)
	}
	expect(v, "full again", map[*leafCert]bool{revoked: false, held: true, later: false, fine: false})
	if full != 2 {
		t.Errorf("%d full CRLs compiled, want 2", full)
	}
}

// TestControlPlaneSourceDigestsCompat: digests go in have only to a
// control plane whose answer says it reads them. One that does not say
// so (from before digests) gets numbers alone and its deltas are applied
// as before; when a node that reads them is followed, behind the same
// address, by one that refuses them (a control plane half upgraded), the
// refused request is made again at once without digests, and digests
// come back with the next answer that says they are read.
func TestControlPlaneSourceDigestsCompat(t *testing.T) {
	ca := newCA(t, "Compat Root")
	revoked, later, fine := ca.client(t, "revoked"), ca.client(t, "later"), ca.client(t, "fine")
	key := hex.EncodeToString(ca.cert.SubjectKeyId)
	cp := &deltaControlPlane{}
	snap := func(etag string, digests bool) *apiv1.TrustStoreSnapshot {
		return &apiv1.TrustStoreSnapshot{Name: "partners", Version: 1, ETag: etag, CACertificates: [][]byte{ca.cert.Raw},
			CRLs: [][]byte{}, CRLURLs: []string{}, HaveDigests: digests}
	}
	src := &ControlPlaneSource{Client: cp, Name: "partners"}
	load := func(what string, want map[*leafCert]bool) {
		t.Helper()
		v, _, err := src.Load(t.Context())
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		for lc, ok := range want {
			if _, err := v.Verify(lc.chain, time.Now()); (err == nil) != ok {
				t.Errorf("%s: %s: %v, want accepted %v", what, lc.cert.Subject.CommonName, err, ok)
			}
		}
	}
	asked := func(what, want string) {
		t.Helper()
		if _, h := cp.last(); h.String() != want {
			t.Errorf("%s: have %q, want %q", what, h, want)
		}
	}

	// An older control plane: numbers alone, and its delta applies.
	cp.refuseDigests = true
	a := snap(`"a"`, false)
	a.CRLs = [][]byte{signCRL(t, ca, 10, 0, map[*big.Int]int{revoked.cert.SerialNumber: 1})}
	cp.next(a)
	load("full CRL from an older control plane", map[*leafCert]bool{revoked: false, later: true, fine: true})
	b := snap(`"b"`, false)
	b.DeltaCRLs = [][]byte{signCRL(t, ca, 11, 10, map[*big.Int]int{later.cert.SerialNumber: 1})}
	cp.next(b)
	load("delta from an older control plane", map[*leafCert]bool{revoked: false, later: false, fine: true})
	asked("to an older control plane", key+":10")

	// A node that reads digests answers with a new full CRL...
	c := snap(`"c"`, true)
	c.CRLs = [][]byte{signCRL(t, ca, 12, 0, map[*big.Int]int{revoked.cert.SerialNumber: 1, later.cert.SerialNumber: 1})}
	cp.next(c)
	load("full CRL from a newer node", map[*leafCert]bool{revoked: false, later: false, fine: true})
	// ...then an older node refuses the digests: asked again without.
	d := snap(`"d"`, false)
	d.DeltaCRLs = [][]byte{signCRL(t, ca, 13, 12, map[*big.Int]int{fine.cert.SerialNumber: 1})}
	cp.next(d)
	load("delta from an older node after a refusal", map[*leafCert]bool{revoked: false, later: false, fine: false})
	withDigest := key + ":12:" + apiv1.DigestCRL(c.CRLs[0]).String()
	if n := len(cp.asked); n < 2 || cp.asked[n-2].String() != withDigest {
		t.Errorf("the refused request: have %q, want %q", cp.asked[max(n-2, 0)], withDigest)
	}
	asked("after the refusal", key+":12")
	// A newer node's answer brings the digests back.
	cp.refuseDigests = false
	e := snap(`"e"`, true)
	e.UnchangedCRLs = []string{key}
	cp.next(e)
	load("unchanged, from a newer node", map[*leafCert]bool{revoked: false, later: false, fine: false})
	asked("to a node that said nothing yet", key+":12")
	f := snap(`"f"`, true)
	f.UnchangedCRLs = []string{key}
	cp.next(f)
	load("unchanged again", map[*leafCert]bool{revoked: false, later: false, fine: false})
	asked("once digests are read again", withDigest)
}

// TestControlPlaneSourceNeverGoesBack: a node of the control plane that
// has not caught up sends an older full CRL, or an older delta, than the
// one the gateway enforces; the gateway keeps what it enforces, so a
// revocation it has seen is never taken back.
func TestControlPlaneSourceNeverGoesBack(t *testing.T) {
	ca := newCA(t, "Rollback Root")
	old, fresh, fine := ca.client(t, "old"), ca.client(t, "fresh"), ca.client(t, "fine")
	cp := &deltaControlPlane{}
	snap := func(etag string) *apiv1.TrustStoreSnapshot {
		return &apiv1.TrustStoreSnapshot{Name: "partners", Version: 1, ETag: etag, CACertificates: [][]byte{ca.cert.Raw}, CRLs: [][]byte{}, CRLURLs: []string{}}
	}
	src := &ControlPlaneSource{Client: cp, Name: "partners"}
	load := func(a *apiv1.TrustStoreSnapshot) *verify.Verifier {
		t.Helper()
		cp.next(a)
		v, _, err := src.Load(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	expect := func(v *verify.Verifier, what string, want map[*leafCert]bool) {
		t.Helper()
		for lc, ok := range want {
			if _, err := v.Verify(lc.chain, time.Now()); (err == nil) != ok {
				t.Errorf("%s: %s: %v, want accepted %v", what, lc.cert.Subject.CommonName, err, ok)
			}
		}
	}

	a := snap(`"a"`)
	a.CRLs = [][]byte{signCRL(t, ca, 5, 0, map[*big.Int]int{old.cert.SerialNumber: 1})}
	load(a)
	b := snap(`"b"`)
	b.DeltaCRLs = [][]byte{signCRL(t, ca, 9, 5, map[*big.Int]int{fresh.cert.SerialNumber: 1})}
	expect(load(b), "delta 9 from 5", map[*leafCert]bool{old: false, fresh: false, fine: true})

	// A lagging node's full CRL 7, from before the revocation of fresh.
	c := snap(`"c"`)
	c.CRLs = [][]byte{signCRL(t, ca, 7, 0, map[*big.Int]int{old.cert.SerialNumber: 1})}
	expect(load(c), "older full CRL 7", map[*leafCert]bool{old: false, fresh: false, fine: true})

	// The same node's delta 7 from base 5.
	d := snap(`"d"`)
	d.DeltaCRLs = [][]byte{signCRL(t, ca, 7, 5, map[*big.Int]int{})}
	expect(load(d), "older delta 7", map[*leafCert]bool{old: false, fresh: false, fine: true})

	// A newer full CRL replaces everything.
	e := snap(`"e"`)
	e.CRLs = [][]byte{signCRL(t, ca, 12, 0, map[*big.Int]int{fresh.cert.SerialNumber: 1, fine.cert.SerialNumber: 1})}
	expect(load(e), "newer full CRL 12", map[*leafCert]bool{old: true, fresh: false, fine: false})
}

func TestHeldCRLs(t *testing.T) {
	a, b := newCA(t, "Held A"), newCA(t, "Held B")
	long := newCA(t, "Held Long")
	long.cert.SubjectKeyId = make([]byte, 65) // the AKI of its CRLs
	partition := func(ca *tca, number int64) []byte {
		t.Helper()
		idp, err := asn1.Marshal(struct {
			DP asn1.RawValue `asn1:"optional,tag:0"`
		}{DP: asn1.RawValue{Class: 2, Tag: 0, IsCompound: true, Bytes: mustMarshalURI(t, "http://pki.test/crl/x/1.crl")}})
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour),
			ExtraExtensions: []pkix.Extension{{Id: oidIssuingDistributionPoint, Critical: true, Value: idp}}}
		der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.cert, ca.key)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	key := func(ca *tca) string { return hex.EncodeToString(ca.cert.SubjectKeyId) }
	for _, tc := range []struct {
		name         string
		crls, others [][]byte
		want         string
	}{
		{"ok/two issuers", [][]byte{signCRL(t, a, 3, 0, nil), signCRL(t, b, 4, 0, nil)}, nil, ""},
		{"fail/two full CRLs of one key", [][]byte{signCRL(t, a, 3, 0, nil), signCRL(t, a, 4, 0, nil)}, nil, "none"},
		{"fail/a full CRL and a partition's", [][]byte{signCRL(t, a, 3, 0, nil), partition(a, 2)}, nil, "none"},
		{"fail/a CRL fetched by URL as well", [][]byte{signCRL(t, a, 3, 0, nil)}, [][]byte{signCRL(t, a, 5, 0, nil)}, "none"},
		{"fail/key identifier over 64 bytes", [][]byte{signCRL(t, long, 3, 0, nil)}, nil, "none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			held, ders := heldCRLs(tc.crls, tc.others, nil)
			want := apiv1.HeldCRLs{}
			if tc.want == "" {
				want = apiv1.HeldCRLs{
					key(a): {Number: 3, Digest: apiv1.DigestCRL(tc.crls[0])},
					key(b): {Number: 4, Digest: apiv1.DigestCRL(tc.crls[1])},
				}
			}
			if held.String() != want.String() || len(ders) != len(want) {
				t.Errorf("held %q (%d DERs), want %q", held, len(ders), want)
			}
		})
	}
}

func mustMarshalURI(t *testing.T, uri string) []byte {
	t.Helper()
	// fullName [0] GeneralNames { uniformResourceIdentifier [6] }
	gn, err := asn1.Marshal(asn1.RawValue{Class: 2, Tag: 6, Bytes: []byte(uri)})
	if err != nil {
		t.Fatal(err)
	}
	full, err := asn1.Marshal(asn1.RawValue{Class: 2, Tag: 0, IsCompound: true, Bytes: gn})
	if err != nil {
		t.Fatal(err)
	}
	return full
}
