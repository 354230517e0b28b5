package ca

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/keystore"
	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/store"
	"github.com/trustgate/trustgate/internal/store/sqlite"
)

var (
	testLinterOnce sync.Once
	testLinter     *pki.Linter
)

// newTestService is a Service on a fresh SQLite store, with a fixed clock.
func newTestService(t *testing.T, now time.Time) *Service {
	t.Helper()
	testLinterOnce.Do(func() {
		var err error
		if testLinter, err = pki.NewLinter(); err != nil {
			t.Fatal(err)
		}
	})
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "tg.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	mk := make([]byte, 32)
	rand.Read(mk)
	sealer, err := keystore.New(mk)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Store: st, Sealer: sealer, Linter: testLinter, PublicBaseURL: "http://pki.test", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func intp(n int) *int { return &n }

// wantFault fails unless err is of kind k and its message holds every
// fragment.
func wantFault(t *testing.T, err error, k fault.Kind, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", k)
	}
	if got := fault.KindOf(err); got != k {
		t.Fatalf("error %q is %v, want %v", err, got, k)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not say %q", err, f)
		}
	}
}

func TestCreateCAHierarchy(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	s := newTestService(t, now)
	ctx := context.Background()
	root, err := s.CreateCA(ctx, CreateRequest{Name: "root", Validity: "10y"})
	if err != nil {
		t.Fatal(err)
	}
	if root.Depth != 0 || root.State != store.CAActive {
		t.Errorf("root: depth %d, state %s", root.Depth, root.State)
	}
	// Four levels below the root, each with room for the next: five in all.
	parent := "root"
	for i, name := range []string{"l1", "l2", "l3", "l4"} {
		c, err := s.CreateCA(ctx, CreateRequest{Name: name, Parent: parent, PathLen: intp(3 - i)})
		if err != nil {
			t.Fatalf("level %d: %v", i+1, err)
		}
		if c.Depth != i+1 {
			t.Errorf("%s: depth %d, want %d", name, c.Depth, i+1)
		}
		cert, err := x509.ParseCertificate(c.CertDER)
		if err != nil {
			t.Fatal(err)
		}
		if !cert.IsCA || cert.MaxPathLen != 3-i || cert.NotAfter.After(root.NotAfter) {
			t.Errorf("%s: IsCA %v, MaxPathLen %d, NotAfter %s (root's %s)", name, cert.IsCA, cert.MaxPathLen, cert.NotAfter, root.NotAfter)
		}
		parent = name
	}
	// Five levels are the most a hierarchy has.
	_, err = s.CreateCA(ctx, CreateRequest{Name: "l5", Parent: "l4"})
	wantFault(t, err, fault.Invalid, "at most 5 levels")
	// A CA of path length 0 has nothing below it.
	if _, err := s.CreateCA(ctx, CreateRequest{Name: "leafy", Parent: "root", PathLen: intp(0)}); err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateCA(ctx, CreateRequest{Name: "under-leafy", Parent: "leafy"})
	wantFault(t, err, fault.Invalid, "path length 0")

	for _, tc := range []struct {
		name string
		req  CreateRequest
		kind fault.Kind
		says []string
	}{
		{"fail/outlives its parent", CreateRequest{Name: "long", Parent: "root", Validity: "11y"}, fault.Invalid, []string{"after the parent CA", "root"}},
		{"fail/path length not below the parent's", CreateRequest{Name: "wide", Parent: "l1", PathLen: intp(3)}, fault.Invalid, []string{"below the parent's"}},
		{"fail/path length out of range", CreateRequest{Name: "deep", PathLen: intp(MaxDepth + 1)}, fault.Invalid, []string{"out of range"}},
		{"fail/unknown key type", CreateRequest{Name: "weird", KeyType: "rsa-1024"}, fault.Invalid, nil},
		{"fail/both parents", CreateRequest{Name: "both", Parent: "root", ExternalParent: true}, fault.Invalid, []string{"not both"}},
		{"fail/name taken", CreateRequest{Name: "root"}, fault.Conflict, nil},
		{"fail/unknown parent", CreateRequest{Name: "orphan", Parent: "nobody"}, fault.NotFound, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.CreateCA(ctx, tc.req)
			wantFault(t, err, tc.kind, tc.says...)
		})
	}

	// A default validity is cut at the parent's end instead.
	short, err := s.CreateCA(ctx, CreateRequest{Name: "short-root", Validity: "2y"})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := s.CreateCA(ctx, CreateRequest{Name: "short-sub", Parent: "short-root"})
	if err != nil {
		t.Fatal(err)
	}
	if !sub.NotAfter.Equal(short.NotAfter) {
		t.Errorf("default validity under a 2y root ends %s, want the root's %s", sub.NotAfter, short.NotAfter)
	}
}

func TestIssue(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	s := newTestService(t, now)
	ctx := context.Background()
	if _, err := s.CreateCA(ctx, CreateRequest{Name: "root", Validity: "10y"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateCA(ctx, CreateRequest{Name: "issuing", Parent: "root", Validity: "1y"}); err != nil {
		t.Fatal(err)
	}

	is, err := s.Issue(ctx, IssueRequest{CA: "issuing", Profile: "server", CommonName: "api.example", DNS: []string{"api.example"}, Validity: "30d", Requester: "test"})
	if err != nil {
		t.Fatal(err)
	}
	c := is.Cert
	if want := now.Add(-time.Minute); !c.NotBefore.Equal(want) {
		t.Errorf("NotBefore %s, want %s (back-dated by a minute)", c.NotBefore, want)
	}
	if want := now.Add(30 * 24 * time.Hour); !c.NotAfter.Equal(want) {
		t.Errorf("NotAfter %s, want %s", c.NotAfter, want)
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() < 120 {
		t.Errorf("serial %x: want positive, of up to 159 random bits", c.SerialNumber)
	}
	if len(c.SubjectKeyId) == 0 || len(c.AuthorityKeyId) == 0 || len(c.CRLDistributionPoints) != 1 || len(c.IssuingCertificateURL) != 1 {
		t.Errorf("SKI %x, AKI %x, CDP %v, AIA %v", c.SubjectKeyId, c.AuthorityKeyId, c.CRLDistributionPoints, c.IssuingCertificateURL)
	}
	if is.Key == nil || is.Record == nil || len(is.Chain) != 2 {
		t.Fatalf("key %v, record %v, chain of %d", is.Key != nil, is.Record != nil, len(is.Chain))
	}
	// The record is durable and holds no key.
	rec, err := s.cfg.Store.GetCertificate(ctx, is.Record.Serial)
	if err != nil || !strings.EqualFold(rec.Serial, pki.SerialHex(c.SerialNumber)) {
		t.Fatalf("stored record %+v, %v", rec, err)
	}

	for _, tc := range []struct {
		name string
		req  IssueRequest
		kind fault.Kind
		says []string
	}{
		{"fail/validity over the profile's maximum", IssueRequest{CA: "issuing", Profile: "client", CommonName: "c", Validity: "400d"}, fault.Invalid, []string{"validity"}},
		{"fail/validity past the issuer's end", IssueRequest{CA: "issuing", Profile: "client", CommonName: "c", Validity: "390d"}, fault.Invalid, []string{"after CA", "issuing"}},
		{"fail/no CA", IssueRequest{Profile: "server", CommonName: "x"}, fault.Invalid, []string{"ca is required"}},
		{"fail/no profile", IssueRequest{CA: "issuing", CommonName: "x"}, fault.Invalid, []string{"profile is required"}},
		{"fail/unknown CA", IssueRequest{CA: "nobody", Profile: "server", CommonName: "x"}, fault.NotFound, nil},
		{"fail/subordinate CA with a server key", IssueRequest{CA: "root", Profile: "subordinate-ca", CommonName: "sub"}, fault.Invalid, []string{"needs a CSR"}},
		{"fail/common name too long", IssueRequest{CA: "issuing", Profile: "client", CommonName: strings.Repeat("a", 65)}, fault.Invalid, []string{"64"}},
		{"fail/key type with a CSR", IssueRequest{CA: "issuing", Profile: "client", CSR: csrPEM(t, "c"), KeyType: "ec-p384"}, fault.Invalid, []string{"key_type"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Issue(ctx, tc.req)
			wantFault(t, err, tc.kind, tc.says...)
		})
	}

	// A disabled CA issues nothing until enabled again.
	if _, err := s.SetEnabled(ctx, "issuing", false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Issue(ctx, IssueRequest{CA: "issuing", Profile: "client", CommonName: "c"}); err == nil {
		t.Error("a disabled CA issued")
	}
	if _, err := s.SetEnabled(ctx, "issuing", true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Issue(ctx, IssueRequest{CA: "issuing", Profile: "client", CommonName: "c"}); err != nil {
		t.Errorf("enabled again: %v", err)
	}
}

// csrPEM is a CSR for cn with a new P-256 key.
func csrPEM(t *testing.T, cn string) []byte {
	t.Helper()
	key, err := pki.GenerateKey(pki.ECP256)
	if err != nil {
		t.Fatal(err)
	}
	der, err := pki.CreateCSR(pkix.Name{CommonName: cn}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
