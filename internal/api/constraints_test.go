package api_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/internal/apiv1"
)

func TestNameConstrainedCA(t *testing.T) {
	e := newEnv(t)
	root := e.mustCreateCA(apiv1.CreateCARequest{Name: "root"})
	ca := e.mustCreateCA(apiv1.CreateCARequest{Name: "confined", Parent: "root", Validity: "30d",
		NameConstraints: &apiv1.NameConstraints{PermittedDNS: []string{"svc.internal"}, ExcludedDNS: []string{"admin.svc.internal"},
			PermittedIP: []string{"10.20.0.0/16"}, PermittedURI: []string{".prod.example"}}})
	if ca.NameConstraints == nil || len(ca.NameConstraints.PermittedDNS) != 1 || ca.NameConstraints.PermittedIP[0] != "10.20.0.0/16" {
		t.Fatalf("the CA's view lacks its constraints: %+v", ca.NameConstraints)
	}

	issue := func(dns, ip, uri []string) (int, apiv1.IssueResponse, apiv1.ErrorBody) {
		var out apiv1.IssueResponse
		cn := dns[0]
		if len(dns) > 1 && dns[1] == "cn:x" {
			cn, dns = "x", dns[:1]
		}
		code, eb := e.call("POST", "/v1/certificates", apiv1.IssueRequest{CA: "confined", Profile: "client", CommonName: cn,
			DNS: dns, IP: ip, URI: uri}, &out)
		return code, out, eb
	}
	// Even the administrator, whose policy allows everything, is confined.
	for name, req := range map[string][3][]string{
		"dns outside":  {{"evil.example"}, nil, nil},
		"dns excluded": {{"admin.svc.internal"}, nil, nil},
		"dns suffix":   {{"evilsvc.internal"}, nil, nil},
		"ip outside":   {{"a.svc.internal"}, {"10.21.0.1"}, nil},
		"uri outside":  {{"a.svc.internal"}, nil, {"spiffe://dev.example/x"}},
		"one of many":  {{"a.svc.internal", "evil.example"}, nil, nil},
	} {
		before := e.certCount()
		code, _, eb := issue(req[0], req[1], req[2])
		if code != 403 || !strings.Contains(eb.Error.Message, "outside the name constraints") {
			t.Errorf("%s: %d %+v, want 403", name, code, eb)
		}
		if e.certCount() != before {
			t.Errorf("%s: a refused certificate was recorded", name)
		}
	}
	code, out, eb := issue([]string{"api.svc.internal"}, []string{"10.20.3.4"}, []string{"spiffe://a.prod.example/api"})
	if code != 201 {
		t.Fatalf("within the constraints: %d %+v", code, eb)
	}

	// OpenSSL checks the constraints of the chain and accepts the leaf.
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is required (.ci/run installs it)")
	}
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cmd := exec.Command("openssl", "verify", "-CAfile", write("root.pem", root.CertificatePEM),
		"-untrusted", write("ca.pem", ca.CertificatePEM), write("leaf.pem", out.CertificatePEM))
	if b, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(b), ": OK") {
		t.Fatalf("openssl verify: %v\n%s", err, b)
	}
	// The constraint is critical in the CA's certificate.
	b, err := exec.Command("openssl", "x509", "-noout", "-text", "-in", filepath.Join(dir, "ca.pem")).CombinedOutput()
	if err != nil || !strings.Contains(string(b), "X509v3 Name Constraints: critical") {
		t.Fatalf("CA certificate lacks critical name constraints:\n%s", b)
	}

	for name, nc := range map[string]*apiv1.NameConstraints{
		"bad dns":  {PermittedDNS: []string{"*.example"}},
		"bad cidr": {PermittedIP: []string{"10.0.0.0/40"}},
		"bad mail": {PermittedEmail: []string{"@"}},
	} {
		if code, _ := e.call("POST", "/v1/cas", apiv1.CreateCARequest{Name: "bad", Parent: "root", Validity: "1d", NameConstraints: nc}, nil); code != 400 {
			t.Errorf("%s: %d, want 400", name, code)
		}
	}
}

// TestNameConstraintsOfParents issues from a CA without constraints whose
// parent has them: the parent's constraints bind it, on the first
// issuance and on later ones served from the issuer cache.
func TestNameConstraintsOfParents(t *testing.T) {
	e := newEnv(t)
	e.mustCreateCA(apiv1.CreateCARequest{Name: "root"})
	one := 1
	e.mustCreateCA(apiv1.CreateCARequest{Name: "confined", Parent: "root", Validity: "30d", PathLen: &one,
		NameConstraints: &apiv1.NameConstraints{PermittedDNS: []string{"svc.internal"}}})
	e.mustCreateCA(apiv1.CreateCARequest{Name: "issuing", Parent: "confined", Validity: "20d"})
	for i, tc := range []struct {
		dns  string
		want int
	}{{"a.svc.internal", 201}, {"evil.example", 403}, {"b.svc.internal", 201}, {"evil.example", 403}} {
		code, eb := e.call("POST", "/v1/certificates", apiv1.IssueRequest{CA: "issuing", Profile: "server", DNS: []string{tc.dns}}, nil)
		if code != tc.want {
			t.Errorf("%d: %s: %d %+v, want %d", i, tc.dns, code, eb, tc.want)
		}
	}
}
