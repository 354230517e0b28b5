package pki_test

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/pki"
)

var (
	oidKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidExtKeyUsage      = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidSAN              = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidAnyPolicy        = asn1.ObjectIdentifier{2, 5, 29, 32, 0}
)

// leafInput is the request of a realistic private-CA leaf for a profile:
// internal names, private addresses and SPIFFE IDs, which a public CA could
// not issue.
func leafInput(tb testing.TB, profile string) (pkix.Name, pki.SANs) {
	tb.Helper()
	var (
		subject                pkix.Name
		dns, ips, uris, emails []string
	)
	switch profile {
	case "server":
		subject = pkix.Name{CommonName: "api.trustgate.internal"}
		dns = []string{"api.trustgate.internal", "*.svc.cluster.local", "localhost"}
		ips = []string{"10.0.0.1", "::1"}
	case "server-client":
		subject = pkix.Name{CommonName: "gw.trustgate.internal"}
		dns = []string{"gw.trustgate.internal"}
		ips = []string{"127.0.0.1"}
		uris = []string{"spiffe://trustgate.internal/ns/prod/sa/gateway"}
	case "client":
		subject = pkix.Name{CommonName: "agent-7", Organization: []string{"Acme"}, OrganizationalUnit: []string{"Ops"}}
		uris = []string{"spiffe://trustgate.internal/agent/7"}
		emails = []string{"ops@example.com"}
	default:
		tb.Fatalf("no leaf input for profile %q", profile)
	}
	sans, err := pki.ParseSANs(dns, ips, uris, emails)
	if err != nil {
		tb.Fatalf("ParseSANs: %v", err)
	}
	return subject, sans
}

// lintDates are the issuance dates the lint tests run at: zlint lints have
// effective dates, and the CA/B Forum SC-081 lifetime lints change on
// 2027-03-15 and 2029-03-15, so issuance must stay lint-clean across them.
var lintDates = []time.Time{
	testNow,
	time.Date(2028, time.January, 1, 0, 0, 0, 0, time.UTC),
	time.Date(2029, time.June, 1, 0, 0, 0, 0, time.UTC),
}

// TestChainLintsClean builds root -> intermediate -> leaf for every key
// type and profile, signs every certificate through Linter.Sign (which
// fails on any zlint warning or error), and checks the fields the
// templates promise, at each of lintDates.
func TestChainLintsClean(t *testing.T) {
	l := testLinter(t)
	for _, kt := range pki.KeyTypes() {
		c := newChain(t, kt)
		checkRoot(t, c, kt)
		checkIntermediate(t, c)
		for _, name := range pki.ProfileNames() {
			p, err := pki.LookupProfile(name)
			if err != nil {
				t.Fatal(err)
			}
			for _, validity := range []time.Duration{p.DefaultValidity, p.MaxValidity, p.MinValidity} {
				for _, now := range lintDates {
					t.Run("ok/"+string(kt)+"/"+name+"/"+pki.FormatDuration(validity)+"/"+now.Format("2006"), func(t *testing.T) {
						if p.IsCA {
							checkSubordinate(t, l, c, p, kt, now, validity)
							return
						}
						leafKey := testKey(t, kt, 2)
						subject, sans := leafInput(t, name)
						tmpl, err := pki.LeafTemplate(pki.LeafRequest{
							Profile:   p,
							Subject:   subject,
							SANs:      sans,
							PublicKey: leafKey.Public(),
							Serial:    serial(t),
							NotBefore: now,
							NotAfter:  now.Add(validity),
							URLs:      c.interURLs,
						})
						if err != nil {
							t.Fatalf("LeafTemplate: %v", err)
						}
						der, err := l.Sign(tmpl, c.inter, leafKey.Public(), c.interKey)
						if err != nil {
							t.Fatalf("Sign: %v", err)
						}
						checkLeaf(t, c, p, kt, parseCert(t, der), leafKey.Public(), now)
					})
				}
			}
		}
	}
}

// TestChainMixedKeyTypes issues leaves of every key type from CAs of other
// key types: the signature algorithm follows the CA key, the key usage the
// leaf key.
func TestChainMixedKeyTypes(t *testing.T) {
	l := testLinter(t)
	p, _ := pki.LookupProfile("server")
	for _, caType := range []pki.KeyType{pki.ECP384, pki.RSA2048, pki.Ed25519} {
		c := newChain(t, caType)
		for _, leafType := range pki.KeyTypes() {
			t.Run("ok/ca-"+string(caType)+"/leaf-"+string(leafType), func(t *testing.T) {
				key := testKey(t, leafType, 2)
				subject, sans := leafInput(t, "server")
				tmpl, err := pki.LeafTemplate(pki.LeafRequest{Profile: p, Subject: subject, SANs: sans, PublicKey: key.Public(),
					Serial: serial(t), NotBefore: testNow, NotAfter: testNow.Add(p.DefaultValidity), URLs: c.interURLs})
				if err != nil {
					t.Fatal(err)
				}
				der, err := l.Sign(tmpl, c.inter, key.Public(), c.interKey)
				if err != nil {
					t.Fatal(err)
				}
				checkLeaf(t, c, p, leafType, parseCert(t, der), key.Public(), testNow)
			})
		}
	}
}

func wantSigAlg(kt pki.KeyType) x509.SignatureAlgorithm {
	switch {
	case kt == pki.ECP256:
		return x509.ECDSAWithSHA256
	case kt == pki.ECP384:
		return x509.ECDSAWithSHA384
	case kt == pki.Ed25519:
		return x509.PureEd25519
	case strings.HasPrefix(string(kt), "rsa-"):
		return x509.SHA256WithRSA
	}
	return x509.UnknownSignatureAlgorithm
}

// rfc7093KeyID recomputes RFC 7093 section 2 method 1 independently of
// the package: SHA-256 of the subjectPublicKey bits, leftmost 160 bits.
func rfc7093KeyID(tb testing.TB, pub crypto.PublicKey) []byte {
	tb.Helper()
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	var info struct {
		Alg pkix.AlgorithmIdentifier
		Key asn1.BitString
	}
	if _, err := asn1.Unmarshal(spki, &info); err != nil {
		tb.Fatal(err)
	}
	sum := sha256.Sum256(info.Key.Bytes)
	return sum[:20]
}

func extension(c *x509.Certificate, oid asn1.ObjectIdentifier) (pkix.Extension, bool) {
	for _, e := range c.Extensions {
		if e.Id.Equal(oid) {
			return e, true
		}
	}
	return pkix.Extension{}, false
}

func wantCritical(tb testing.TB, c *x509.Certificate, oid asn1.ObjectIdentifier, critical bool) {
	tb.Helper()
	e, ok := extension(c, oid)
	if !ok {
		tb.Fatalf("%s: extension %v missing", c.Subject, oid)
	}
	if e.Critical != critical {
		tb.Errorf("%s: extension %v critical = %v, want %v", c.Subject, oid, e.Critical, critical)
	}
}

func checkURLs(tb testing.TB, c *x509.Certificate, want pki.URLs) {
	tb.Helper()
	if !slices.Equal(c.CRLDistributionPoints, want.CRL) {
		tb.Errorf("%s: CRL DP = %v, want %v", c.Subject, c.CRLDistributionPoints, want.CRL)
	}
	if !slices.Equal(c.IssuingCertificateURL, want.IssuingCA) {
		tb.Errorf("%s: AIA caIssuers = %v, want %v", c.Subject, c.IssuingCertificateURL, want.IssuingCA)
	}
	if !slices.Equal(c.OCSPServer, want.OCSP) {
		tb.Errorf("%s: AIA OCSP = %v, want %v", c.Subject, c.OCSPServer, want.OCSP)
	}
}

func checkRoot(t *testing.T, c *chain, kt pki.KeyType) {
	t.Helper()
	r := c.root
	if !r.BasicConstraintsValid || !r.IsCA || r.MaxPathLen != -1 {
		t.Errorf("root basic constraints: valid=%v CA=%v pathlen=%d, want true true -1", r.BasicConstraintsValid, r.IsCA, r.MaxPathLen)
	}
	wantCritical(t, r, oidBasicConstraints, true)
	wantCritical(t, r, oidKeyUsage, true)
	if want := x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature; r.KeyUsage != want {
		t.Errorf("root key usage = %b, want %b", r.KeyUsage, want)
	}
	if !bytes.Equal(r.SubjectKeyId, rfc7093KeyID(t, c.rootKey.Public())) {
		t.Errorf("root SKI = %x, want the RFC 7093 key ID", r.SubjectKeyId)
	}
	if !bytes.Equal(r.AuthorityKeyId, r.SubjectKeyId) {
		t.Errorf("root AKI = %x, want its own SKI %x", r.AuthorityKeyId, r.SubjectKeyId)
	}
	if len(r.ExtKeyUsage) != 0 || len(r.PolicyIdentifiers) != 0 {
		t.Errorf("root has EKU %v or policies %v, want none", r.ExtKeyUsage, r.PolicyIdentifiers)
	}
	checkURLs(t, r, pki.URLs{})
	if r.SignatureAlgorithm != wantSigAlg(kt) {
		t.Errorf("root signature algorithm = %v, want %v", r.SignatureAlgorithm, wantSigAlg(kt))
	}
	if err := r.CheckSignatureFrom(r); err != nil {
		t.Errorf("root is not self-signed: %v", err)
	}
}

func checkIntermediate(t *testing.T, c *chain) {
	t.Helper()
	i := c.inter
	if !i.IsCA || i.MaxPathLen != 0 || !i.MaxPathLenZero {
		t.Errorf("intermediate: CA=%v pathlen=%d zero=%v, want true 0 true", i.IsCA, i.MaxPathLen, i.MaxPathLenZero)
	}
	wantCritical(t, i, oidBasicConstraints, true)
	if !bytes.Equal(i.AuthorityKeyId, c.root.SubjectKeyId) {
		t.Errorf("intermediate AKI = %x, want root SKI %x", i.AuthorityKeyId, c.root.SubjectKeyId)
	}
	if !bytes.Equal(i.SubjectKeyId, rfc7093KeyID(t, c.interKey.Public())) {
		t.Errorf("intermediate SKI = %x, want the RFC 7093 key ID", i.SubjectKeyId)
	}
	if len(i.PolicyIdentifiers) != 1 || !i.PolicyIdentifiers[0].Equal(oidAnyPolicy) {
		t.Errorf("intermediate policies = %v, want [anyPolicy]", i.PolicyIdentifiers)
	}
	checkURLs(t, i, c.rootURLs)
	if err := i.CheckSignatureFrom(c.root); err != nil {
		t.Errorf("intermediate not signed by root: %v", err)
	}
}

func checkSubordinate(t *testing.T, l *pki.Linter, c *chain, p *pki.Profile, kt pki.KeyType, now time.Time, validity time.Duration) {
	t.Helper()
	key := testKey(t, kt, 2)
	tmpl, err := pki.CATemplate(pki.CARequest{
		Subject:    pkix.Name{CommonName: "Issuing CA " + string(kt)},
		PublicKey:  key.Public(),
		Serial:     serial(t),
		NotBefore:  now,
		NotAfter:   now.Add(validity),
		MaxPathLen: p.MaxPathLen,
		URLs:       c.rootURLs,
	})
	if err != nil {
		t.Fatalf("CATemplate: %v", err)
	}
	der, err := l.Sign(tmpl, c.root, key.Public(), c.rootKey)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	sub := parseCert(t, der)
	if !sub.IsCA || sub.MaxPathLen != 0 || !sub.MaxPathLenZero {
		t.Errorf("subordinate: CA=%v pathlen=%d, want true 0", sub.IsCA, sub.MaxPathLen)
	}
	checkURLs(t, sub, c.rootURLs)
	if _, err := sub.Verify(x509.VerifyOptions{Roots: pool(c.root), CurrentTime: now.Add(time.Minute)}); err != nil {
		t.Errorf("subordinate does not verify: %v", err)
	}
}

func pool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func checkLeaf(t *testing.T, c *chain, p *pki.Profile, kt pki.KeyType, leaf *x509.Certificate, pub crypto.PublicKey, now time.Time) {
	t.Helper()
	wantKU := x509.KeyUsageDigitalSignature
	if strings.HasPrefix(string(kt), "rsa-") && p.ServerAuth {
		wantKU |= x509.KeyUsageKeyEncipherment
	}
	if leaf.KeyUsage != wantKU {
		t.Errorf("key usage = %b, want %b", leaf.KeyUsage, wantKU)
	}
	wantCritical(t, leaf, oidKeyUsage, true)
	if !slices.Equal(leaf.ExtKeyUsage, p.ExtKeyUsage()) {
		t.Errorf("EKU = %v, want %v", leaf.ExtKeyUsage, p.ExtKeyUsage())
	}
	wantCritical(t, leaf, oidExtKeyUsage, false)
	if !leaf.BasicConstraintsValid || leaf.IsCA {
		t.Errorf("basic constraints valid=%v CA=%v, want true false", leaf.BasicConstraintsValid, leaf.IsCA)
	}
	wantCritical(t, leaf, oidBasicConstraints, true)
	wantCritical(t, leaf, oidSAN, false)
	if !bytes.Equal(leaf.SubjectKeyId, rfc7093KeyID(t, pub)) {
		t.Errorf("SKI = %x, want the RFC 7093 key ID", leaf.SubjectKeyId)
	}
	if !bytes.Equal(leaf.AuthorityKeyId, c.inter.SubjectKeyId) {
		t.Errorf("AKI = %x, want intermediate SKI %x", leaf.AuthorityKeyId, c.inter.SubjectKeyId)
	}
	if len(leaf.PolicyIdentifiers) != 0 {
		t.Errorf("leaf policies = %v, want none", leaf.PolicyIdentifiers)
	}
	checkURLs(t, leaf, c.interURLs)
	if leaf.SignatureAlgorithm != wantSigAlg(pki.KeyType(keyTypeOf(t, c.interKey.Public()))) {
		t.Errorf("signature algorithm = %v", leaf.SignatureAlgorithm)
	}
	var usages []x509.ExtKeyUsage
	usages = append(usages, p.ExtKeyUsage()...)
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         pool(c.root),
		Intermediates: pool(c.inter),
		CurrentTime:   now.Add(30 * time.Second),
		KeyUsages:     usages,
	})
	if err != nil {
		t.Errorf("leaf does not verify: %v", err)
	}
	if p.ServerAuth && leaf.Subject.CommonName != "" {
		if err := leaf.VerifyHostname(leaf.Subject.CommonName); err != nil {
			t.Errorf("CN is not a SAN: %v", err)
		}
	}
}

func keyTypeOf(tb testing.TB, pub crypto.PublicKey) pki.KeyType {
	tb.Helper()
	kt, err := pki.KeyTypeOf(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return kt
}
