package revocation

import (
	"crypto"
	"crypto/x509"
	"strings"
	"testing"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
	"github.com/zmap/zlint/v3/lint"
	"golang.org/x/crypto/ocsp"

	"github.com/trustgate/trustgate/internal/store"
)

// crlLintsExcluded are the zlint CRL lints that do not apply here.
var crlLintsExcluded = map[string]string{
	// BR 7.2.2 allows only reasons 1, 3, 4, 5 and 9 on public TLS CRLs;
	// Trustgate offers every RFC 5280 reason, certificateHold included
	// (e_crl_has_valid_reason_code, the RFC 5280 lint, still runs).
	"e_cab_crl_has_valid_reason_code": "BR reason subset; a private CA offers every RFC 5280 reason",
}

// failedLints returns the lints of a result set that warned or failed.
func failedLints(rs *zlint.ResultSet) []string {
	var failed []string
	for name, r := range rs.Results {
		if _, skip := crlLintsExcluded[name]; skip {
			continue
		}
		switch r.Status {
		case lint.Warn, lint.Error, lint.Fatal:
			failed = append(failed, name+" ("+r.Status.String()+": "+r.Details+")")
		}
	}
	return failed
}

// TestZlint runs zlint's CRL lints (zlint v3.7 lints RevocationLists) on
// full and partition CRLs, its OCSP lints on answers, and its
// certificate lints on the responder certificate.
func TestZlint(t *testing.T) {
	e := newEnv(t, envOptions{})
	// Every reason a certificate can be revoked with, on both CAs.
	for i, reason := range []int{0, 1, 2, 3, 4, 5, store.ReasonCertificateHold, 9, 10} {
		e.revoke(e.sub, e.issue(e.sub, "s.example"), reason)
		for range 1 + i%2 {
			e.revoke(e.parts, e.issue(e.parts, "p.example"), reason)
		}
	}
	srv := e.server()
	var n int
	for _, path := range []string{"/crl/root.crl", "/crl/sub.crl", "/crl/parts.crl", "/crl/parts/0.crl", "/crl/parts/1.crl", "/crl/parts/2.crl", "/crl/parts/3.crl"} {
		_, der := get(t, srv.URL+path)
		crl, err := zx509.ParseRevocationList(der)
		if err != nil {
			t.Fatalf("%s: zcrypto: %v", path, err)
		}
		rs := zlint.LintRevocationListEx(crl, lint.GlobalRegistry())
		if failed := failedLints(rs); len(failed) > 0 {
			t.Errorf("%s fails zlint: %s", path, strings.Join(failed, "; "))
		}
		n = len(rs.Results)
	}
	if n < 15 {
		t.Errorf("only %d CRL lints ran", n)
	}
	t.Logf("%d zlint CRL lints pass (excluded: %v)", n, crlLintsExcluded)

	good := e.issue(e.sub, "good.example")
	bad := e.issue(e.sub, "bad.example")
	e.revoke(e.sub, bad, 1)
	e.svc.flush(e.ctx)
	for _, c := range []struct {
		name string
		leaf *x509.Certificate
	}{{"good", good}, {"revoked", bad}} {
		leaf := c.leaf
		_, body := postOCSP(t, srv.URL+"/ocsp/sub", ocspRequestFor(t, leaf, e.sub.cert, crypto.SHA1))
		r, err := ocsp.ParseResponseForCert(body, leaf, e.sub.cert)
		if err != nil {
			t.Fatal(err)
		}
		rs := zlint.LintOcspResponseEx(r, lint.GlobalRegistry())
		if failed := failedLints(rs); len(failed) > 0 {
			t.Errorf("%s OCSP answer fails zlint: %s", c.name, strings.Join(failed, "; "))
		}
		if len(rs.Results) == 0 {
			t.Error("no OCSP lint ran")
		}
		if err := mustLinter(t).Lint(r.Certificate.Raw); err != nil {
			t.Errorf("responder certificate fails zlint: %v", err)
		}
	}
}
