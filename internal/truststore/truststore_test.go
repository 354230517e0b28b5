package truststore_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/pki/pkitest"
	"github.com/trustgate/trustgate/internal/store"
	"github.com/trustgate/trustgate/internal/store/sqlite"
	"github.com/trustgate/trustgate/internal/truststore"
	"github.com/trustgate/trustgate/internal/truststore/verify"
)

// fakeCRLs is a CRLSource: the CRL of each CA ID, or an error.
type fakeCRLs struct {
	mu    sync.Mutex
	crls  map[string][]byte
	fails map[string]error
	calls int
}

func (f *fakeCRLs) CurrentCRL(_ context.Context, caID string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if err := f.fails[caID]; err != nil {
		return nil, err
	}
	der, ok := f.crls[caID]
	if !ok {
		return nil, fmt.Errorf("no CRL of %s", caID)
	}
	return der, nil
}

func (f *fakeCRLs) set(caID string, der []byte, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.crls[caID], f.fails[caID] = der, err
}

// env is a trust-store Service on a real SQLite store holding two CAs of
// "this Trustgate" (root and inter) and a pending one, with a partner PKI
// outside it.
type env struct {
	t        *testing.T
	ctx      context.Context
	st       *sqlite.DB
	svc      *truststore.Service
	crls     *fakeCRLs
	root     *pkitest.CA
	inter    *pkitest.CA
	rootID   string
	interID  string
	partner  *pkitest.CA // external root
	pinter   *pkitest.CA // external intermediate
	crlCount int64
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "tg.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, ctx: t.Context(), st: st, crls: &fakeCRLs{crls: map[string][]byte{}, fails: map[string]error{}}}
	e.root = pkitest.New(t, pkitest.WithName("Our Root"))
	e.inter = e.root.Child(t, "Our Intermediate")
	e.partner = pkitest.New(t, pkitest.WithName("Partner Root"))
	e.pinter = e.partner.Child(t, "Partner Intermediate")
	e.rootID = e.addCA("root", "", e.root)
	e.interID = e.addCA("inter", e.rootID, e.inter)
	pending := &store.CA{ID: "ca-pending", Name: "pending", State: store.CAPending, KeyType: "ec-p256", Subject: "CN=Pending", PathLen: -1,
		ExternalParent: true, CreatedAt: e.root.Now(), UpdatedAt: e.root.Now()}
	if err := st.CreateCA(e.ctx, pending); err != nil {
		t.Fatal(err)
	}
	e.crls.set(e.rootID, e.crl(e.root), nil)
	e.crls.set(e.interID, e.crl(e.inter), nil)
	e.svc, err = truststore.New(truststore.Config{Store: st, CRLs: e.crls, Now: func() time.Time { return e.root.Now() }})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// addCA records ca as a CA of this Trustgate and returns its ID.
func (e *env) addCA(name, parentID string, ca *pkitest.CA) string {
	e.t.Helper()
	rec := &store.CA{
		ID: "ca-" + name, Name: name, ParentID: parentID, State: store.CAActive, KeyType: "ec-p256",
		CertDER: ca.Cert.Raw, Subject: ca.Cert.Subject.String(), PathLen: -1,
		NotBefore: ca.Cert.NotBefore, NotAfter: ca.Cert.NotAfter, CreatedAt: ca.Now(), UpdatedAt: ca.Now(),
	}
	if err := e.st.CreateCA(e.ctx, rec); err != nil {
		e.t.Fatal(err)
	}
	return rec.ID
}

// crl returns a new CRL of ca listing serials, with the next CRL number.
func (e *env) crl(ca *pkitest.CA, serials ...*big.Int) []byte {
	e.t.Helper()
	e.crlCount++
	return e.crlNumbered(ca, e.crlCount, serials...)
}

func (e *env) crlNumbered(ca *pkitest.CA, number int64, serials ...*big.Int) []byte {
	e.t.Helper()
	now := ca.Now()
	tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(24 * time.Hour)}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: now.Add(-time.Minute)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		e.t.Fatal(err)
	}
	return der
}

func crlPEM(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}))
}

func (e *env) create(r apiv1.CreateTrustStoreRequest) *apiv1.TrustStore {
	e.t.Helper()
	ts, err := e.svc.Create(e.ctx, r)
	if err != nil {
		e.t.Fatalf("Create(%s): %v", r.Name, err)
	}
	return ts
}

// wantFault fails the test unless err has kind k and says want.
func wantFault(t *testing.T, err error, k fault.Kind, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s %q", k, want)
	}
	if got := fault.KindOf(err); got != k {
		t.Fatalf("error %q is %s, want %s", err, got, k)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
}

func TestCreateShowBundle(t *testing.T) {
	e := newEnv(t)
	ts := e.create(apiv1.CreateTrustStoreRequest{Name: "partners", CAs: []string{"inter"}, CertificatesPEM: string(e.partner.CertPEM())})
	if ts.Version != 1 || len(ts.CAs) != 2 || len(ts.CRLs) != 0 {
		t.Fatalf("created: %+v", ts)
	}
	ours, ext := ts.CAs[0], ts.CAs[1]
	if ours.Ref != "inter" || ours.Source != "ca" || ours.State != "active" || ours.Subject != e.inter.Cert.Subject.String() {
		t.Errorf("our CA: %+v", ours)
	}
	if ext.Source != "external" || ext.Ref != ext.Fingerprint || len(ext.Ref) != 64 || ext.Subject != e.partner.Cert.Subject.String() ||
		!ext.NotAfter.Equal(e.partner.Cert.NotAfter) {
		t.Errorf("external CA: %+v", ext)
	}
	got, err := e.svc.Get(e.ctx, "partners")
	if err != nil || got.ID != ts.ID || len(got.CAs) != 2 {
		t.Fatalf("Get: %+v, %v", got, err)
	}
	list, err := e.svc.List(e.ctx)
	if err != nil || len(list) != 1 || list[0].Name != "partners" {
		t.Fatalf("List: %+v, %v", list, err)
	}
	b, err := e.svc.Bundle(e.ctx, "partners")
	if err != nil {
		t.Fatal(err)
	}
	if want := string(pkitest.CertPEM(e.inter.Cert, e.partner.Cert)); string(b) != want {
		t.Errorf("bundle:\n%s\nwant:\n%s", b, want)
	}
	// An empty store is allowed, and lists nothing.
	empty := e.create(apiv1.CreateTrustStoreRequest{Name: "empty"})
	if empty.Version != 1 || len(empty.CAs) != 0 {
		t.Errorf("empty: %+v", empty)
	}
	if b, err := e.svc.Bundle(e.ctx, "empty"); err != nil || len(b) != 0 {
		t.Errorf("bundle of an empty store: %q, %v", b, err)
	}
}

func TestChangesMakeVersions(t *testing.T) {
	e := newEnv(t)
	e.create(apiv1.CreateTrustStoreRequest{Name: "ts"})
	steps := []struct {
		name string
		do   func() (*apiv1.TrustStore, error)
	}{
		{"add our root", func() (*apiv1.TrustStore, error) {
			return e.svc.AddCA(e.ctx, "ts", apiv1.AddTrustStoreCARequest{CA: "root"})
		}},
		{"add a partner bundle", func() (*apiv1.TrustStore, error) {
			return e.svc.AddCA(e.ctx, "ts", apiv1.AddTrustStoreCARequest{CertificatePEM: string(pkitest.CertPEM(e.partner.Cert, e.pinter.Cert))})
		}},
		{"upload a partner CRL", func() (*apiv1.TrustStore, error) {
			return e.svc.AddCRL(e.ctx, "ts", apiv1.AddTrustStoreCRLRequest{CRLPEM: crlPEM(e.crl(e.pinter))})
		}},
		{"add a CRL URL", func() (*apiv1.TrustStore, error) {
			return e.svc.AddCRL(e.ctx, "ts", apiv1.AddTrustStoreCRLRequest{URL: "https://pki.partner.example/root.crl"})
		}},
		{"remove our root", func() (*apiv1.TrustStore, error) { return e.svc.RemoveCA(e.ctx, "ts", "root") }},
	}
	for i, st := range steps {
		ts, err := st.do()
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if ts.Version != int64(i+2) {
			t.Fatalf("%s: version %d, want %d", st.name, ts.Version, i+2)
		}
	}
	ts, _ := e.svc.Get(e.ctx, "ts")
	if len(ts.CAs) != 2 || len(ts.CRLs) != 2 || ts.CRLs[0].Source != "upload" || ts.CRLs[0].Issuer != e.pinter.Cert.Subject.String() ||
		ts.CRLs[0].Number == "" || ts.CRLs[0].NextUpdate == nil || ts.CRLs[1].Source != "url" {
		t.Fatalf("after the changes: %+v", ts)
	}
	// Removing an external CA by fingerprint, written with colons in upper case.
	fp := ts.CAs[0].Fingerprint // the partner root: no CRL depends on it
	var colons []string
	for i := 0; i < len(fp); i += 2 {
		colons = append(colons, strings.ToUpper(fp[i:i+2]))
	}
	ts, err := e.svc.RemoveCA(e.ctx, "ts", strings.Join(colons, ":"))
	if err != nil || len(ts.CAs) != 1 || ts.Version != 7 {
		t.Fatalf("remove by fingerprint: %+v, %v", ts, err)
	}
	// The partner intermediate signed the uploaded CRL: it goes after it.
	_, err = e.svc.RemoveCA(e.ctx, "ts", ts.CAs[0].Ref)
	wantFault(t, err, fault.Conflict, "remove the CRL first")
	if ts, err = e.svc.RemoveCRL(e.ctx, "ts", ts.CRLs[0].ID); err != nil || len(ts.CRLs) != 1 {
		t.Fatalf("RemoveCRL: %+v, %v", ts, err)
	}
	if ts, err = e.svc.RemoveCA(e.ctx, "ts", ts.CAs[0].Ref); err != nil || len(ts.CAs) != 0 || ts.Version != 9 {
		t.Fatalf("remove the intermediate: %+v, %v", ts, err)
	}
}

func TestCRLReplacedByNewer(t *testing.T) {
	e := newEnv(t)
	e.create(apiv1.CreateTrustStoreRequest{Name: "ts", CertificatesPEM: string(e.partner.CertPEM())})
	add := func(number int64) (*apiv1.TrustStore, error) {
		return e.svc.AddCRL(e.ctx, "ts", apiv1.AddTrustStoreCRLRequest{CRLDER: e.crlNumbered(e.partner, number)})
	}
	ts, err := add(5)
	if err != nil || len(ts.CRLs) != 1 || ts.CRLs[0].Number != "5" {
		t.Fatalf("first CRL: %+v, %v", ts, err)
	}
	first := ts.CRLs[0].ID
	ts, err = add(6)
	if err != nil || len(ts.CRLs) != 1 || ts.CRLs[0].Number != "6" || ts.CRLs[0].ID == first || ts.Version != 3 {
		t.Fatalf("newer CRL: %+v, %v", ts, err)
	}
	for _, n := range []int64{6, 4} {
		_, err = add(n)
		wantFault(t, err, fault.Conflict, "not newer")
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	e.create(apiv1.CreateTrustStoreRequest{Name: "ts", CAs: []string{"inter"}, CertificatesPEM: string(e.partner.CertPEM())})
	e.svc.AddCRL(e.ctx, "ts", apiv1.AddTrustStoreCRLRequest{URL: "http://pki.partner.example/a.crl"})
	leaf, _ := e.partner.Leaf(t, pkitest.LeafOptions{CN: "leaf"})
	stranger := pkitest.New(t, pkitest.WithName("Stranger"))
	impostor := pkitest.New(t, pkitest.WithName("Partner Root")) // same name, other key
	big := make([]byte, truststore.MaxCRLBytes+1)
	tests := []struct {
		name string
		do   func() error
		kind fault.Kind
		want string
	}{
		{"fail/create bad name", func() error {
			_, err := e.svc.Create(e.ctx, apiv1.CreateTrustStoreRequest{Name: "Partners!"})
			return err
		}, fault.Invalid, "lower-case"},
		{"fail/create taken name", func() error {
			_, err := e.svc.Create(e.ctx, apiv1.CreateTrustStoreRequest{Name: "ts"})
			return err
		}, fault.Conflict, `trust store "ts" already exists`},
		{"fail/create unknown CA", func() error {
			_, err := e.svc.Create(e.ctx, apiv1.CreateTrustStoreRequest{Name: "x", CAs: []string{"nope"}})
			return err
		}, fault.NotFound, `CA "nope" does not exist`},
		{"fail/create pending CA", func() error {
			_, err := e.svc.Create(e.ctx, apiv1.CreateTrustStoreRequest{Name: "x", CAs: []string{"pending"}})
			return err
		}, fault.Conflict, "no certificate yet"},
		{"fail/create CA twice", func() error {
			_, err := e.svc.Create(e.ctx, apiv1.CreateTrustStoreRequest{Name: "x", CAs: []string{"root", "root"}})
			return err
		}, fault.Invalid, "listed twice"},
		{"fail/leaf as CA", func() error {
			_, err := e.svc.Create(e.ctx, apiv1.CreateTrustStoreRequest{Name: "x", CertificatesPEM: string(pkitest.CertPEM(leaf))})
			return err
		}, fault.Invalid, "not a CA certificate"},
		{"fail/garbage PEM", func() error {
			_, err := e.svc.AddCA(e.ctx, "ts", apiv1.AddTrustStoreCARequest{CertificatePEM: "hello"})
			return err
		}, fault.Invalid, "not PEM"},
		{"fail/broken certificate", func() error {
			_, err := e.svc.AddCA(e.ctx, "ts", apiv1.AddTrustStoreCARequest{CertificatePEM: "-----BEGIN CERTIFICATE-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE-----\n"})
			return err
		}, fault.Invalid, "cannot be parsed"},
		{"fail/key in bundle", func() error {
			_, err := e.svc.AddCA(e.ctx, "ts", apiv1.AddTrustStoreCARequest{CertificatePEM: string(pkitest.KeyPEM(t, e.partner.Key))})
			return err
		}, fault.Invalid, `"PRIVATE KEY"`},
		{"fail/duplicate in bundle", func() error {
			_, err := e.svc.AddCA(e.ctx, "ts", apiv1.AddTrustStoreCARequest{CertificatePEM: string(pkitest.CertPEM(e.pinter.Cert, e.pinter.Cert))})
			return err
		}, fault.Invalid, "same as certificate 1"},
		{"fail/our CA as external", func() error {
			_, err := e.svc.AddCA(e.ctx, "ts", apiv1.AddTrustStoreCARequest{CertificatePEM: string(e.root.CertPEM())})
			return err
		}, fault.Invalid, `is CA "root" of this Trustgate`},
		{"fail/external twice", func() error {
			_, err := e.svc.AddCA(e.ctx, "ts", apiv1.AddTrustStoreCARequest{CertificatePEM: string(e.partner.CertPEM())})
			return err
		}, fault.Conflict, "already in trust store"},
		{"fail/our CA twice", func() error {
			_, err := e.svc.AddCA(e.ctx, "ts", apiv1.AddTrustStoreCARequest{CA: "inter"})
			return err
		}, fault.Conflict, `CA "inter" is already in trust store "ts"`},
		{"fail/add-ca both fields", func() error {
			_, err := e.svc.AddCA(e.ctx, "ts", apiv1.AddTrustStoreCARequest{CA: "root", CertificatePEM: string(e.partner.CertPEM())})
			return err
		}, fault.Invalid, "exactly one"},
		{"fail/add-ca nothing", func() error {
			_, err := e.svc.AddCA(e.ctx, "ts", apiv1.AddTrustStoreCARequest{})
			return err
		}, fault.Invalid, "exactly one"},
		{"fail/unknown store", func() error {
			_, err := e.svc.AddCA(e.ctx, "nope", apiv1.AddTrustStoreCARequest{CA: "root"})
			return err
		}, fault.NotFound, `trust store "nope" does not exist`},
		{"fail/remove unknown ref", func() error {
			_, err := e.svc.RemoveCA(e.ctx, "ts", "root")
			return err
		}, fault.NotFound, `has no CA "root"`},
		{"fail/crl of an unknown issuer", func() error {
			_, err := e.svc.AddCRL(e.ctx, "ts", apiv1.AddTrustStoreCRLRequest{CRLPEM: crlPEM(e.crl(stranger))})
			return err
		}, fault.Invalid, "is not a CA of trust store"},
		{"fail/crl with a bad signature", func() error {
			_, err := e.svc.AddCRL(e.ctx, "ts", apiv1.AddTrustStoreCRLRequest{CRLDER: e.crl(impostor)})
			return err
		}, fault.Invalid, "signature does not verify"},
		{"fail/crl of our CA", func() error {
			_, err := e.svc.AddCRL(e.ctx, "ts", apiv1.AddTrustStoreCRLRequest{CRLDER: e.crl(e.inter)})
			return err
		}, fault.Invalid, "follows its revocations by itself"},
		{"fail/crl not PEM", func() error {
			_, err := e.svc.AddCRL(e.ctx, "ts", apiv1.AddTrustStoreCRLRequest{CRLPEM: "hello"})
			return err
		}, fault.Invalid, "not PEM"},
		{"fail/crl PEM of a certificate", func() error {
			_, err := e.svc.AddCRL(e.ctx, "ts", apiv1.AddTrustStoreCRLRequest{CRLPEM: string(e.partner.CertPEM())})
			return err
		}, fault.Invalid, `"CERTIFICATE" PEM block`},
		{"fail/crl garbage DER", func() error {
			_, err := e.svc.AddCRL(e.ctx, "ts", apiv1.AddTrustStoreCRLRequest{CRLDER: []byte("not a crl")})
			return err
		}, fault.Invalid, "cannot be parsed"},
		{"fail/crl empty DER", func() error {
			_, err := e.svc.AddCRL(e.ctx, "ts", apiv1.AddTrustStoreCRLRequest{CRLDER: []byte{}})
			return err
		}, fault.Invalid, "empty"},
		{"fail/crl too large", func() error {
			_, err := e.svc.AddCRL(e.ctx, "ts", apiv1.AddTrustStoreCRLRequest{CRLDER: big})
			return err
		}, fault.TooLarge, "at most"},
		{"fail/crl two fields", func() error {
			_, err := e.svc.AddCRL(e.ctx, "ts", apiv1.AddTrustStoreCRLRequest{URL: "http://a.example/", CRLPEM: "x"})
			return err
		}, fault.Invalid, "exactly one"},
		{"fail/crl url scheme", func() error {
			_, err := e.svc.AddCRL(e.ctx, "ts", apiv1.AddTrustStoreCRLRequest{URL: "ftp://pki.example/a.crl"})
			return err
		}, fault.Invalid, "http:// or https://"},
		{"fail/crl url without host", func() error {
			_, err := e.svc.AddCRL(e.ctx, "ts", apiv1.AddTrustStoreCRLRequest{URL: "http:///a.crl"})
			return err
		}, fault.Invalid, "with a host"},
		{"fail/crl url with user", func() error {
			_, err := e.svc.AddCRL(e.ctx, "ts", apiv1.AddTrustStoreCRLRequest{URL: "https://u:p@pki.example/a.crl"})
			return err
		}, fault.Invalid, "without user"},
		{"fail/crl url twice", func() error {
			_, err := e.svc.AddCRL(e.ctx, "ts", apiv1.AddTrustStoreCRLRequest{URL: "http://pki.partner.example/a.crl"})
			return err
		}, fault.Conflict, "already in trust store"},
		{"fail/remove unknown crl", func() error {
			_, err := e.svc.RemoveCRL(e.ctx, "ts", "nope")
			return err
		}, fault.NotFound, `has no CRL "nope"`},
	}
	before, _ := e.svc.Get(e.ctx, "ts")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantFault(t, tt.do(), tt.kind, tt.want)
		})
	}
	after, _ := e.svc.Get(e.ctx, "ts")
	if after.Version != before.Version {
		t.Errorf("refused changes moved the version from %d to %d", before.Version, after.Version)
	}
}

func TestSnapshot(t *testing.T) {
	e := newEnv(t)
	_, err := e.svc.Snapshot(e.ctx, "nope")
	wantFault(t, err, fault.NotFound, "does not exist")
	e.create(apiv1.CreateTrustStoreRequest{Name: "ts"})
	_, err = e.svc.Snapshot(e.ctx, "ts")
	wantFault(t, err, fault.Conflict, "no CA yet")

	e.svc.AddCA(e.ctx, "ts", apiv1.AddTrustStoreCARequest{CA: "inter"})
	e.svc.AddCA(e.ctx, "ts", apiv1.AddTrustStoreCARequest{CertificatePEM: string(e.partner.CertPEM())})
	partnerCRL := e.crl(e.partner)
	e.svc.AddCRL(e.ctx, "ts", apiv1.AddTrustStoreCRLRequest{CRLDER: partnerCRL})
	e.svc.AddCRL(e.ctx, "ts", apiv1.AddTrustStoreCRLRequest{URL: "https://pki.partner.example/inter.crl"})
	snap, err := e.svc.Snapshot(e.ctx, "ts")
	if err != nil {
		t.Fatal(err)
	}
	interCRL, _ := e.crls.CurrentCRL(e.ctx, e.interID)
	if snap.Name != "ts" || snap.Version != 5 || len(snap.CACertificates) != 2 || string(snap.CACertificates[0]) != string(e.inter.Cert.Raw) ||
		len(snap.CRLs) != 2 || string(snap.CRLs[0]) != string(interCRL) || string(snap.CRLs[1]) != string(partnerCRL) ||
		len(snap.CRLURLs) != 1 || len(snap.Warnings) != 0 || !strings.HasPrefix(snap.ETag, `"`) {
		t.Fatalf("snapshot: version %d, %d CAs, %d CRLs, urls %v, warnings %v, etag %s", snap.Version, len(snap.CACertificates), len(snap.CRLs), snap.CRLURLs, snap.Warnings, snap.ETag)
	}
	etag := func() string {
		t.Helper()
		s, err := e.svc.Snapshot(e.ctx, "ts")
		if err != nil {
			t.Fatal(err)
		}
		return s.ETag
	}
	if again := etag(); again != snap.ETag {
		t.Errorf("nothing changed, but the ETag went from %s to %s", snap.ETag, again)
	}
	// A new CRL of our CA (a revocation) changes the ETag; so does a
	// version.
	leaf, _ := e.inter.Leaf(t, pkitest.LeafOptions{CN: "doomed", ClientAuth: true})
	e.crls.set(e.interID, e.crl(e.inter, leaf.SerialNumber), nil)
	afterRevoke := etag()
	if afterRevoke == snap.ETag {
		t.Error("a new CRL of our CA left the ETag unchanged")
	}
	e.svc.AddCA(e.ctx, "ts", apiv1.AddTrustStoreCARequest{CA: "root"})
	if etag() == afterRevoke {
		t.Error("a new version left the ETag unchanged")
	}

	// The snapshot compiles to a verifier that refuses the revoked leaf.
	snap, _ = e.svc.Snapshot(e.ctx, "ts")
	var roots []*x509.Certificate
	for _, der := range snap.CACertificates {
		c, _ := x509.ParseCertificate(der)
		roots = append(roots, c)
	}
	v, err := verify.CompileDER(roots, snap.CRLs, verify.Options{})
	if err != nil {
		t.Fatalf("the snapshot does not compile: %v", err)
	}
	good, _ := e.inter.Leaf(t, pkitest.LeafOptions{CN: "good", ClientAuth: true})
	if _, err := v.Verify([]*x509.Certificate{good, e.inter.Cert}, e.root.Now()); err != nil {
		t.Errorf("a good leaf: %v", err)
	}
	if _, err := v.Verify([]*x509.Certificate{leaf, e.inter.Cert}, e.root.Now()); verify.ReasonOf(err) != verify.ClientCertCrlHit {
		t.Errorf("the revoked leaf: %v, want revoked", err)
	}

	// A CRL of ours that cannot be had: unavailable; but an offline CA
	// without one is left out with a warning.
	e.crls.set(e.interID, nil, errors.New("store down"))
	_, err = e.svc.Snapshot(e.ctx, "ts")
	wantFault(t, err, fault.Unavailable, `CRL of CA "inter"`)
	c, _ := e.st.GetCA(e.ctx, "inter")
	c.State = store.CAOffline
	if err := e.st.UpdateCA(e.ctx, c); err != nil {
		t.Fatal(err)
	}
	snap, err = e.svc.Snapshot(e.ctx, "ts")
	if err != nil || len(snap.Warnings) != 1 || !strings.Contains(snap.Warnings[0], `"inter" is offline`) || len(snap.CRLs) != 2 {
		t.Fatalf("offline CA: %v, %+v", err, snap)
	}
}

// Changes made at once all land, each in its own version.
func TestConcurrentChanges(t *testing.T) {
	e := newEnv(t)
	e.create(apiv1.CreateTrustStoreRequest{Name: "ts"})
	const n = 12
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := e.svc.AddCRL(e.ctx, "ts", apiv1.AddTrustStoreCRLRequest{URL: fmt.Sprintf("https://pki%d.example/x.crl", i)})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			// Losing the race five times in a row is possible, and must say so.
			if fault.KindOf(err) != fault.Conflict || !strings.Contains(err.Error(), "retry") {
				t.Errorf("AddCRL: %v", err)
			}
			failed++
		}
	}
	ts, _ := e.svc.Get(e.ctx, "ts")
	if len(ts.CRLs) != n-failed || ts.Version != int64(1+n-failed) {
		t.Errorf("%d concurrent changes (%d refused): %d CRLs, version %d", n, failed, len(ts.CRLs), ts.Version)
	}
}

// A snapshot of an unchanged store reads the trust store's version only.
func TestSnapshotUnchangedIsCheap(t *testing.T) {
	e := newEnv(t)
	e.create(apiv1.CreateTrustStoreRequest{Name: "ts", CAs: []string{"root", "inter"}})
	counting := &countingStore{Store: e.st}
	svc, err := truststore.New(truststore.Config{Store: counting, CRLs: e.crls})
	if err != nil {
		t.Fatal(err)
	}
	first, err := svc.Snapshot(e.ctx, "ts")
	if err != nil {
		t.Fatal(err)
	}
	counting.reset()
	for range 10 {
		s, err := svc.Snapshot(e.ctx, "ts")
		if err != nil || s.ETag != first.ETag {
			t.Fatalf("Snapshot: %v", err)
		}
	}
	if counting.full != 0 || counting.versions != 10 {
		t.Errorf("10 snapshots of an unchanged store read %d full stores and %d versions; want 0 and 10", counting.full, counting.versions)
	}
}

// countingStore counts the trust-store reads of a truststore.Store.
type countingStore struct {
	truststore.Store
	mu             sync.Mutex
	full, versions int
}

func (c *countingStore) reset() { c.mu.Lock(); c.full, c.versions = 0, 0; c.mu.Unlock() }

func (c *countingStore) GetTrustStore(ctx context.Context, name string) (*store.TrustStore, error) {
	c.mu.Lock()
	c.full++
	c.mu.Unlock()
	return c.Store.GetTrustStore(ctx, name)
}

func (c *countingStore) GetTrustStoreVersion(ctx context.Context, name string) (string, int64, error) {
	c.mu.Lock()
	c.versions++
	c.mu.Unlock()
	return c.Store.GetTrustStoreVersion(ctx, name)
}
