package pki_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"maps"
	"math/big"
	"slices"
	"testing"
	"time"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
	"github.com/zmap/zlint/v3/lint"

	"github.com/trustgate/trustgate/internal/pki"
)

// referenceRegistry is zlint's registry minus pki.ExcludedLints, linted
// through zlint's own entry point.
func referenceRegistry(tb testing.TB) lint.Registry {
	tb.Helper()
	names := slices.Sorted(maps.Keys(pki.ExcludedLints()))
	reg, err := lint.GlobalRegistry().Filter(lint.FilterOptions{ExcludeNames: names})
	if err != nil {
		tb.Fatal(err)
	}
	return reg
}

func zparse(tb testing.TB, der []byte) *zx509.Certificate {
	tb.Helper()
	zc, err := zx509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("zcrypto parse: %v", err)
	}
	return zc
}

// rawLeaf signs a leaf with the intermediate of c by x509.CreateCertificate
// directly, without linting, so that it can break lints on purpose.
func rawLeaf(tb testing.TB, c *chain, pub crypto.PublicKey, edit func(*x509.Certificate)) []byte {
	tb.Helper()
	p, _ := pki.LookupProfile("server")
	subject, sans := leafInput(tb, "server")
	tmpl, err := pki.LeafTemplate(pki.LeafRequest{Profile: p, Subject: subject, SANs: sans, PublicKey: testKey(tb, pki.ECP256, 2).Public(),
		Serial: serial(tb), NotBefore: testNow, NotAfter: testNow.Add(p.DefaultValidity), URLs: c.interURLs})
	if err != nil {
		tb.Fatal(err)
	}
	tmpl.AuthorityKeyId = c.inter.SubjectKeyId
	if edit != nil {
		edit(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.inter, pub, c.interKey)
	if err != nil {
		tb.Fatalf("CreateCertificate: %v", err)
	}
	return der
}

// rawCA signs a subordinate CA certificate with the root of c, unlinted.
func rawCA(tb testing.TB, c *chain, subject pkix.Name) []byte {
	tb.Helper()
	key := testKey(tb, pki.ECP256, 3)
	tmpl, err := pki.CATemplate(pki.CARequest{Subject: pkix.Name{CommonName: "placeholder"}, PublicKey: key.Public(), Serial: serial(tb),
		NotBefore: testNow, NotAfter: testNow.Add(pki.Year), MaxPathLen: 0, URLs: c.rootURLs})
	if err != nil {
		tb.Fatal(err)
	}
	tmpl.Subject = subject
	tmpl.AuthorityKeyId = c.root.SubjectKeyId
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.root, key.Public(), c.rootKey)
	if err != nil {
		tb.Fatalf("CreateCertificate: %v", err)
	}
	return der
}

// smallECKey is the public key of the private scalar d on curve.
func smallECKey(curve elliptic.Curve, d int64) *ecdsa.PublicKey {
	x, y := curve.ScalarBaseMult(big.NewInt(d).Bytes()) //nolint:staticcheck // a deliberately weak key, no private key object
	return &ecdsa.PublicKey{Curve: curve, X: x, Y: y}
}

// closePrimesKey is an RSA public key whose primes are adjacent, which
// Fermat factoring splits at once.
func closePrimesKey(tb testing.TB) *rsa.PublicKey {
	tb.Helper()
	p, err := rand.Prime(rand.Reader, 1024)
	if err != nil {
		tb.Fatal(err)
	}
	q := new(big.Int).Add(p, big.NewInt(2))
	for !q.ProbablyPrime(20) {
		q.Add(q, big.NewInt(2))
	}
	return &rsa.PublicKey{N: new(big.Int).Mul(p, q), E: 65537}
}

func mustOID(tb testing.TB, ints ...uint64) x509.OID {
	tb.Helper()
	oid, err := x509.OIDFromInts(ints)
	if err != nil {
		tb.Fatal(err)
	}
	return oid
}

// lintTable is what the lint fast path is checked on: every certificate
// the profiles issue for every key type, and certificates that fail
// specific lints, including the ones whose verdicts are cached by SPKI.
func lintTable(t *testing.T) map[string][]byte {
	t.Helper()
	l := testLinter(t)
	certs := map[string][]byte{}
	for _, kt := range pki.KeyTypes() {
		c := newChain(t, kt)
		certs["ok/"+string(kt)+"/root"] = c.root.Raw
		certs["ok/"+string(kt)+"/intermediate"] = c.inter.Raw
		for _, name := range pki.ProfileNames() {
			p, _ := pki.LookupProfile(name)
			key := testKey(t, kt, 2)
			var (
				tmpl   *x509.Certificate
				parent = c.inter
				signer = c.interKey
				err    error
			)
			if p.IsCA {
				parent, signer = c.root, c.rootKey
				tmpl, err = pki.CATemplate(pki.CARequest{Subject: pkix.Name{CommonName: "Issuing CA " + string(kt)}, PublicKey: key.Public(),
					Serial: serial(t), NotBefore: testNow, NotAfter: testNow.Add(p.DefaultValidity), MaxPathLen: p.MaxPathLen, URLs: c.rootURLs})
			} else {
				subject, sans := leafInput(t, name)
				tmpl, err = pki.LeafTemplate(pki.LeafRequest{Profile: p, Subject: subject, SANs: sans, PublicKey: key.Public(),
					Serial: serial(t), NotBefore: testNow, NotAfter: testNow.Add(p.DefaultValidity), URLs: c.interURLs})
			}
			if err != nil {
				t.Fatal(err)
			}
			der, err := l.Sign(tmpl, parent, key.Public(), signer)
			if err != nil {
				t.Fatalf("%s/%s: %v", kt, name, err)
			}
			certs["ok/"+string(kt)+"/"+name] = der
		}
	}

	c := newChain(t, pki.ECP256)
	leafKey := testKey(t, pki.ECP256, 2).Public()
	certs["bad/ecdsa p-256 key with private scalar 3"] = rawLeaf(t, c, smallECKey(elliptic.P256(), 3), nil)
	certs["bad/ecdsa p-384 key with private scalar 2"] = rawLeaf(t, c, smallECKey(elliptic.P384(), 2), nil)
	certs["bad/rsa key with adjacent primes"] = rawLeaf(t, c, closePrimesKey(t), nil)
	certs["bad/rsa public exponent 3"] = rawLeaf(t, c, &rsa.PublicKey{N: testKey(t, pki.RSA2048, 2).Public().(*rsa.PublicKey).N, E: 3}, nil)
	certs["bad/dns name with a bad character"] = rawLeaf(t, c, leafKey, func(x *x509.Certificate) {
		x.DNSNames = []string{"bad!name.trustgate.internal"}
		x.Subject.CommonName = "bad!name.trustgate.internal"
	})
	certs["bad/html entity in the subject"] = rawLeaf(t, c, leafKey, func(x *x509.Certificate) {
		x.Subject.Organization, x.Subject.Country = []string{"Smith &amp; Sons"}, []string{"US"}
	})
	certs["bad/no aia, organization without country"] = rawLeaf(t, c, leafKey, func(x *x509.Certificate) {
		x.IssuingCertificateURL, x.OCSPServer = nil, nil
		x.Subject.Organization = []string{"Acme"}
	})
	certs["edge/issued in 2012 (lints not yet effective)"] = rawLeaf(t, c, leafKey, func(x *x509.Certificate) {
		x.NotBefore = time.Date(2012, time.January, 1, 0, 0, 0, 0, time.UTC)
		x.NotAfter = x.NotBefore.Add(90 * 24 * time.Hour)
	})
	certs["bad/s-mime mailbox-validated with an OU"] = rawLeaf(t, c, leafKey, func(x *x509.Certificate) {
		x.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}
		x.DNSNames, x.IPAddresses, x.URIs = nil, nil, nil
		x.EmailAddresses = []string{"ops@example.com"}
		x.Subject = pkix.Name{CommonName: "ops@example.com", OrganizationalUnit: []string{"Ops"}}
		x.Policies = []x509.OID{mustOID(t, 2, 23, 140, 1, 5, 1, 2)}
	})
	certs["edge/code signing policy"] = rawLeaf(t, c, leafKey, func(x *x509.Certificate) {
		x.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}
		x.Policies = []x509.OID{mustOID(t, 2, 23, 140, 1, 4, 1)}
	})
	certs["bad/ca with an ou and an unknown country"] = rawCA(t, c, pkix.Name{CommonName: "Sub", OrganizationalUnit: []string{"PKI"},
		Organization: []string{"Acme"}, Country: []string{"UK"}})
	certs["bad/ca without a common name"] = rawCA(t, c, pkix.Name{Organization: []string{"Acme"}})
	return certs
}

// TestLintMatchesZlint checks that Linter reaches exactly zlint's
// verdicts (status and details of every lint, through
// zlint.LintCertificateEx on the same registry) on a table of good and
// deliberately bad certificates, with its SPKI cache cold and warm, and
// with every lint built per run.
func TestLintMatchesZlint(t *testing.T) {
	reg := referenceRegistry(t)
	fast, err := pki.NewLinter() // its own SPKI cache, cold
	if err != nil {
		t.Fatal(err)
	}
	perRun, err := pki.NewPerRunLinter()
	if err != nil {
		t.Fatal(err)
	}
	failing := map[string]bool{}
	for name, der := range lintTable(t) {
		t.Run(name, func(t *testing.T) {
			want := map[string]pki.LintVerdict{}
			for lname, r := range zlint.LintCertificateEx(zparse(t, der), reg).Results {
				want[lname] = pki.LintVerdict{Status: r.Status, Details: r.Details}
			}
			for _, run := range []struct {
				name string
				l    *pki.Linter
			}{{"cold", fast}, {"warm", fast}, {"per run", perRun}} {
				got := run.l.LintResults(zparse(t, der))
				if len(got) != len(want) {
					t.Errorf("%s: %d results, zlint has %d", run.name, len(got), len(want))
				}
				for lname, w := range want {
					if g, ok := got[lname]; !ok || g != w {
						t.Errorf("%s: %s = %+v, zlint says %+v", run.name, lname, g, w)
					}
				}
			}
			bad := slices.ContainsFunc(slices.Collect(maps.Values(want)), func(v pki.LintVerdict) bool {
				return v.Status == lint.Warn || v.Status == lint.Error || v.Status == lint.Fatal
			})
			if lerr := fast.Lint(der); (lerr != nil) != bad {
				t.Errorf("Lint = %v, zlint finds failures: %v", lerr, bad)
			}
			if name[:4] == "bad/" && !bad {
				t.Errorf("no lint fails; the case tests nothing")
			}
			if name[:3] == "ok/" && bad {
				t.Errorf("a certificate Sign issued fails zlint")
			}
			for lname, v := range want {
				if v.Status == lint.Error || v.Status == lint.Warn {
					failing[lname] = true
				}
			}
		})
	}
	// The cached and the stateful lints must be among those the table
	// makes fail, or the comparison proves nothing about them.
	for _, lname := range []string{"e_ecdsa_small_private_key", "e_rsa_fermat_factorization", "e_dnsname_bad_character_in_label",
		"w_rsa_public_exponent_not_in_range", "e_subj_contains_html_entities", "e_subj_orgunit_in_ca_cert", "e_ca_country_name_invalid",
		"e_ca_common_name_missing", "e_mailbox_validated_enforce_subject_field_restrictions"} {
		if !failing[lname] {
			t.Errorf("no certificate of the table fails %s", lname)
		}
	}
}

// TestLintInstancesShared checks the reviewed lists against zlint: every
// reviewed lint exists and still has the fields it was reviewed with (so
// its instance is shared), and every SPKI-cached lint is shared and cached.
func TestLintInstancesShared(t *testing.T) {
	l := testLinter(t)
	shared, spki := l.SharedLints()
	for name := range pki.ReadOnlyLints {
		if lint.GlobalRegistry().ByName(name) == nil {
			t.Errorf("reviewed lint %q is not in zlint's registry", name)
		} else if !slices.Contains(shared, name) {
			t.Errorf("lint %q changed since it was reviewed as read-only; read its source again and update readOnlyLints", name)
		}
	}
	for name := range pki.SPKILints {
		if !slices.Contains(spki, name) {
			t.Errorf("lint %q is not cached by SPKI", name)
		}
	}
	t.Logf("%d certificate lints share one instance, %d are cached by SPKI", len(shared), len(spki))
}
