package api_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/youmark/pkcs8"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/trustgate/trustgate/internal/apiv1"
)

func parsePEMCerts(t *testing.T, s string) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	rest := []byte(s)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func verifyChain(t *testing.T, leafPEM, chainPEM string, usage x509.ExtKeyUsage) {
	t.Helper()
	leaf := parsePEMCerts(t, leafPEM)[0]
	chain := parsePEMCerts(t, chainPEM)
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(chain[len(chain)-1])
	for _, c := range chain[:len(chain)-1] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		t.Fatalf("chain does not verify: %v", err)
	}
}

func TestIssueAndInventory(t *testing.T) {
	e := newEnv(t)
	e.mustCreateCA(apiv1.CreateCARequest{Name: "root", KeyType: "ec-p384", Subject: "CN=Test Root,O=Example"})
	inter := e.mustCreateCA(apiv1.CreateCARequest{Name: "issuing", Parent: "root", Validity: "1y"})
	if inter.Parent != "root" || inter.Depth != 1 || inter.PathLen == nil || *inter.PathLen != 0 || inter.State != "active" {
		t.Fatalf("intermediate: %+v", inter)
	}

	// From a CSR: SANs from the CSR when the request names none.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var res apiv1.IssueResponse
	if code, eb := e.call("POST", "/v1/certificates", apiv1.IssueRequest{CA: "issuing", Profile: "server", CSR: csrPEM(t, key, "api.internal", "api.internal", "api2.internal"), Validity: "24h"}, &res); code != 201 {
		t.Fatalf("issue: %d %+v", code, eb)
	}
	verifyChain(t, res.CertificatePEM, res.ChainPEM, x509.ExtKeyUsageServerAuth)
	if res.PrivateKeyPEM != "" || res.PKCS12 != nil {
		t.Fatal("a CSR issuance returned a key")
	}
	leaf := parsePEMCerts(t, res.CertificatePEM)[0]
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got != 24*time.Hour+time.Minute {
		t.Errorf("lifetime %v, want 24h plus the 1m backdate", got)
	}
	if len(leaf.DNSNames) != 2 || leaf.SerialNumber.BitLen() < 128 || len(leaf.CRLDistributionPoints) != 1 ||
		leaf.CRLDistributionPoints[0] != "http://pki.test/crl/issuing.crl" || leaf.IssuingCertificateURL[0] != "http://pki.test/ca/issuing.pem" {
		t.Errorf("leaf fields: dns=%v serial bits=%d cdp=%v aia=%v", leaf.DNSNames, leaf.SerialNumber.BitLen(), leaf.CRLDistributionPoints, leaf.IssuingCertificateURL)
	}

	// Server-generated key, as PEM.
	var gen apiv1.IssueResponse
	if code, eb := e.call("POST", "/v1/certificates", apiv1.IssueRequest{CA: "issuing", Profile: "client", CommonName: "svc-a", URI: []string{"spiffe://prod.internal/svc-a"}, KeyType: "rsa-2048"}, &gen); code != 201 {
		t.Fatalf("issue gen: %d %+v", code, eb)
	}
	kb, _ := pem.Decode([]byte(gen.PrivateKeyPEM))
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	genLeaf := parsePEMCerts(t, gen.CertificatePEM)[0]
	if !k.(crypto.Signer).Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(genLeaf.PublicKey) {
		t.Fatal("returned key does not match the certificate")
	}
	verifyChain(t, gen.CertificatePEM, gen.ChainPEM, x509.ExtKeyUsageClientAuth)

	// Server-generated key, as PKCS#12.
	var p12 apiv1.IssueResponse
	if code, eb := e.call("POST", "/v1/certificates", apiv1.IssueRequest{CA: "issuing", Profile: "client", CommonName: "laptop", PKCS12Passphrase: "s3cret-passphrase"}, &p12); code != 201 {
		t.Fatalf("issue p12: %d %+v", code, eb)
	}
	pk, pc, cas, err := pkcs12.DecodeChain(p12.PKCS12, "s3cret-passphrase")
	if err != nil || pk == nil || pc.Subject.CommonName != "laptop" || len(cas) != 2 {
		t.Fatalf("pkcs12: %v %v %d", err, pc, len(cas))
	}
	if p12.PrivateKeyPEM != "" {
		t.Fatal("PKCS#12 answer also carried a PEM key")
	}

	// The inventory: every certificate is there, pages have no gaps.
	for i := 0; i < 7; i++ {
		if code, _ := e.call("POST", "/v1/certificates", apiv1.IssueRequest{CA: "issuing", Profile: "server", CommonName: "n.internal", DNS: []string{"n.internal"}, KeyType: "ec-p256"}, nil); code != 201 {
			t.Fatal("bulk issue")
		}
	}
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		var page apiv1.CertificateList
		path := "/v1/certificates?ca=issuing&limit=3"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		if code, eb := e.call("GET", path, nil, &page); code != 200 {
			t.Fatalf("list: %d %+v", code, eb)
		}
		for _, c := range page.Certificates {
			if seen[c.Serial] {
				t.Fatalf("serial %s twice", c.Serial)
			}
			seen[c.Serial] = true
			if c.CA != "issuing" {
				t.Fatalf("ca %q", c.CA)
			}
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
	}
	if len(seen) != 10 {
		t.Fatalf("inventory has %d certificates of issuing, want 10", len(seen))
	}
	var filtered apiv1.CertificateList
	e.call("GET", "/v1/certificates?san_contains=spiffe://prod.internal", nil, &filtered)
	if len(filtered.Certificates) != 1 || filtered.Certificates[0].Subject != "CN=svc-a" {
		t.Fatalf("san_contains: %+v", filtered.Certificates)
	}
	e.call("GET", "/v1/certificates?expiring_within=2d", nil, &filtered)
	if len(filtered.Certificates) != 1 {
		t.Fatalf("expiring_within=2d: %d", len(filtered.Certificates))
	}
	for _, bad := range []string{"status=lost", "limit=0", "limit=5000", "cursor=abc", "expiring_within=soon", "ca=missing"} {
		if code, _ := e.call("GET", "/v1/certificates?"+bad, nil, nil); code < 400 || code >= 500 {
			t.Errorf("list ?%s: %d", bad, code)
		}
	}

	// Show and export.
	var d apiv1.CertificateDetail
	if code, _ := e.call("GET", "/v1/certificates/"+res.Certificate.Serial, nil, &d); code != 200 {
		t.Fatal("get")
	}
	verifyChain(t, d.CertificatePEM, d.ChainPEM, x509.ExtKeyUsageServerAuth)
	if d.Status != "active" || d.Profile != "server" || d.Requester != "admin" || d.KeyType != "ec-p256" {
		t.Fatalf("detail %+v", d.Certificate)
	}
	if code, _ := e.call("GET", "/v1/certificates/00ff00", nil, nil); code != 404 {
		t.Errorf("unknown serial: %d", code)
	}
	if code, _ := e.call("GET", "/v1/certificates/zz", nil, nil); code != 400 {
		t.Errorf("malformed serial: %d", code)
	}

	// Import an external certificate; importing it twice conflicts.
	extKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(4242), Subject: pkix.Name{CommonName: "legacy.example"}, DNSNames: []string{"legacy.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, extKey.Public(), extKey)
	extPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	var imp apiv1.Certificate
	if code, eb := e.call("POST", "/v1/certificates/import", apiv1.ImportCertificateRequest{CertificatePEM: extPEM}, &imp); code != 201 || !imp.Imported || imp.Serial != "1092" {
		t.Fatalf("import: %d %+v %+v", code, eb, imp)
	}
	if code, _ := e.call("POST", "/v1/certificates/import", apiv1.ImportCertificateRequest{CertificatePEM: extPEM}, nil); code != 409 {
		t.Errorf("second import: %d", code)
	}
	if code, _ := e.call("POST", "/v1/certificates/import", apiv1.ImportCertificateRequest{CertificatePEM: "junk"}, nil); code != 400 {
		t.Errorf("junk import: %d", code)
	}
}

func TestCAHierarchy(t *testing.T) {
	e := newEnv(t)
	e.mustCreateCA(apiv1.CreateCARequest{Name: "l0", Validity: "10y"})
	// Five levels: l0 (root) .. l4. Path lengths must allow it.
	for i, pl := range []int{3, 2, 1, 0} {
		p := pl
		e.mustCreateCA(apiv1.CreateCARequest{Name: "l" + string(rune('1'+i)), Parent: "l" + string(rune('0'+i)), PathLen: &p})
	}
	zero := 0
	e.mustCreateCA(apiv1.CreateCARequest{Name: "flat", Parent: "l0", PathLen: &zero})
	tests := []struct {
		name   string
		req    apiv1.CreateCARequest
		status int
		want   string
	}{
		{"fail/sixth level", apiv1.CreateCARequest{Name: "l5", Parent: "l4"}, 400, "at most 5 levels"},
		{"fail/path length 0 parent", apiv1.CreateCARequest{Name: "under-flat", Parent: "flat"}, 400, "path length 0"},
		{"fail/validity past parent", apiv1.CreateCARequest{Name: "long", Parent: "l0", Validity: "11y"}, 400, "after the parent"},
		{"fail/duplicate", apiv1.CreateCARequest{Name: "l1", Parent: "l0"}, 409, "already exists"},
		{"fail/bad name", apiv1.CreateCARequest{Name: "../etc/passwd"}, 400, "invalid"},
		{"fail/sql name", apiv1.CreateCARequest{Name: "x'; DROP TABLE cas; --"}, 400, "invalid"},
		{"fail/unknown parent", apiv1.CreateCARequest{Name: "orphan", Parent: "ghost"}, 404, "ghost"},
		{"fail/bad key type", apiv1.CreateCARequest{Name: "k", KeyType: "dsa-1024"}, 400, "dsa-1024"},
		{"fail/bad subject", apiv1.CreateCARequest{Name: "s", Subject: "XX=1"}, 400, "XX"},
		{"fail/parent and external", apiv1.CreateCARequest{Name: "both", Parent: "l0", ExternalParent: true}, 400, "not both"},
		{"fail/path len too deep", apiv1.CreateCARequest{Name: "deep", Parent: "l0", PathLen: new(int)}, 0, ""},
	}
	*tests[len(tests)-1].req.PathLen = 7
	tests[len(tests)-1].status, tests[len(tests)-1].want = 400, "out of range"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, eb := e.call("POST", "/v1/cas", tt.req, nil)
			if code != tt.status || !strings.Contains(eb.Error.Message, tt.want) {
				t.Fatalf("%d %q, want %d %q", code, eb.Error.Message, tt.status, tt.want)
			}
		})
	}
	var list apiv1.CAList
	e.call("GET", "/v1/cas", nil, &list)
	if len(list.CAs) != 6 {
		t.Fatalf("%d CAs after refused creations", len(list.CAs))
	}
	// A leaf from the fifth level verifies through all of them.
	var res apiv1.IssueResponse
	if code, eb := e.call("POST", "/v1/certificates", apiv1.IssueRequest{CA: "l4", Profile: "server-client", CommonName: "deep.internal", DNS: []string{"deep.internal"}}, &res); code != 201 {
		t.Fatalf("issue from l4: %+v", eb)
	}
	if n := len(parsePEMCerts(t, res.ChainPEM)); n != 5 {
		t.Fatalf("chain of %d", n)
	}
	verifyChain(t, res.CertificatePEM, res.ChainPEM, x509.ExtKeyUsageClientAuth)

	// The public CA endpoint.
	resp, err := e.srv.Client().Get(e.srv.URL + "/ca/l2.pem?chain=1")
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-pem-file" {
		t.Fatalf("GET /ca/l2.pem: %v %v", err, resp)
	}
	resp.Body.Close()
	for _, p := range []string{"/ca/nope.pem", "/ca/l2.der", "/ca/..%2f..%2fetc%2fpasswd.pem"} {
		resp, err := e.srv.Client().Get(e.srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 && resp.StatusCode != 400 {
			t.Errorf("GET %s: %d", p, resp.StatusCode)
		}
	}
}

func TestExternalParentAndOfflineRoot(t *testing.T) {
	e := newEnv(t)
	pending := e.mustCreateCA(apiv1.CreateCARequest{Name: "partner", ExternalParent: true, Subject: "CN=Partner Issuing CA"})
	if pending.State != "pending-certificate" || pending.CSRPEM == "" {
		t.Fatalf("pending: %+v", pending)
	}
	if code, eb := e.call("POST", "/v1/certificates", apiv1.IssueRequest{CA: "partner", Profile: "client", CommonName: "x"}, nil); code != 409 || !strings.Contains(eb.Error.Message, "awaits") {
		t.Fatalf("issue from pending CA: %d %+v", code, eb)
	}
	// The offline root, outside Trustgate, signs the CSR.
	rootKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rootT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Offline Root"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(20 * 365 * 24 * time.Hour)}
	rootDER, _ := x509.CreateCertificate(rand.Reader, rootT, rootT, rootKey.Public(), rootKey)
	root, _ := x509.ParseCertificate(rootDER)
	blk, _ := pem.Decode([]byte(pending.CSRPEM))
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil || csr.CheckSignature() != nil {
		t.Fatalf("CSR: %v", err)
	}
	sign := func(pub any, isCA bool) string {
		tm := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: csr.Subject, IsCA: isCA, BasicConstraintsValid: true, MaxPathLenZero: isCA,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(5 * 365 * 24 * time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tm, root, pub, rootKey)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	}
	rootPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER}))
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, body := range map[string]string{
		"fail/other key": sign(otherKey.Public(), true) + rootPEM,
		"fail/not a CA":  sign(csr.PublicKey, false),
		"fail/not PEM":   "garbage",
		"fail/bad chain": sign(csr.PublicKey, true) + sign(csr.PublicKey, true),
	} {
		if code, eb := e.call("POST", "/v1/cas/partner/certificate", apiv1.ImportCACertRequest{CertificatePEM: body}, nil); code != 400 {
			t.Errorf("%s: %d %+v", name, code, eb)
		}
	}
	var active apiv1.CA
	if code, eb := e.call("POST", "/v1/cas/partner/certificate", apiv1.ImportCACertRequest{CertificatePEM: sign(csr.PublicKey, true) + rootPEM}, &active); code != 200 || active.State != "active" {
		t.Fatalf("import-cert: %d %+v", code, eb)
	}
	var res apiv1.IssueResponse
	if code, eb := e.call("POST", "/v1/certificates", apiv1.IssueRequest{CA: "partner", Profile: "client", CommonName: "partner-app"}, &res); code != 201 {
		t.Fatalf("issue from partner: %+v", eb)
	}
	verifyChain(t, res.CertificatePEM, res.ChainPEM, x509.ExtKeyUsageClientAuth)
	if code, _ := e.call("POST", "/v1/cas/partner/certificate", apiv1.ImportCACertRequest{CertificatePEM: rootPEM}, nil); code != 409 {
		t.Errorf("second import-cert: %d", code)
	}

	// Export a root key once, then take it offline.
	e.mustCreateCA(apiv1.CreateCARequest{Name: "vault-root"})
	e.mustCreateCA(apiv1.CreateCARequest{Name: "child", Parent: "vault-root"})
	if code, _ := e.call("POST", "/v1/cas/vault-root/offline", nil, nil); code != 409 {
		t.Errorf("offline before export: %d", code)
	}
	if code, _ := e.call("POST", "/v1/cas/child/export-key", apiv1.ExportCAKeyRequest{Passphrase: "long enough pass"}, nil); code != 400 {
		t.Errorf("export of an intermediate: %d", code)
	}
	if code, _ := e.call("POST", "/v1/cas/vault-root/export-key", apiv1.ExportCAKeyRequest{Passphrase: "short"}, nil); code != 400 {
		t.Errorf("short passphrase: %d", code)
	}
	var exp apiv1.ExportCAKeyResponse
	if code, eb := e.call("POST", "/v1/cas/vault-root/export-key", apiv1.ExportCAKeyRequest{Passphrase: "long enough pass"}, &exp); code != 200 {
		t.Fatalf("export: %+v", eb)
	}
	kb, _ := pem.Decode([]byte(exp.EncryptedKeyPEM))
	if kb == nil || kb.Type != "ENCRYPTED PRIVATE KEY" {
		t.Fatalf("export is not encrypted PKCS#8: %q", exp.EncryptedKeyPEM[:40])
	}
	if _, err := pkcs8.ParsePKCS8PrivateKey(kb.Bytes, []byte("long enough pass")); err != nil {
		t.Fatal(err)
	}
	if code, _ := e.call("POST", "/v1/cas/vault-root/export-key", apiv1.ExportCAKeyRequest{Passphrase: "long enough pass"}, nil); code != 409 {
		t.Errorf("second export: %d", code)
	}
	var off apiv1.CA
	if code, _ := e.call("POST", "/v1/cas/vault-root/offline", nil, &off); code != 200 || off.State != "offline" {
		t.Fatalf("offline: %+v", off)
	}
	if code, eb := e.call("POST", "/v1/cas", apiv1.CreateCARequest{Name: "child2", Parent: "vault-root"}, nil); code != 409 || !strings.Contains(eb.Error.Message, "offline") {
		t.Errorf("child of offline root: %d %+v", code, eb)
	}
	// The intermediate keeps issuing, and its chain still reaches the root.
	if code, _ := e.call("POST", "/v1/certificates", apiv1.IssueRequest{CA: "child", Profile: "client", CommonName: "c"}, &res); code != 201 {
		t.Error("issue from the child of an offline root")
	}
	if code, _ := e.call("POST", "/v1/cas/child/disable", nil, nil); code != 200 {
		t.Error("disable")
	}
	if code, _ := e.call("POST", "/v1/cas/child/enable", nil, nil); code != 200 {
		t.Error("enable")
	}
	if code, _ := e.call("POST", "/v1/cas/vault-root/enable", nil, nil); code != 409 {
		t.Error("enable an offline root")
	}
	_ = base64.StdEncoding
}
