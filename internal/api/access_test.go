package api_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/api"
	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/authz"
	"github.com/trustgate/trustgate/internal/inventory"
	"github.com/trustgate/trustgate/internal/store"
)

// as returns a copy of e that calls with another token.
func (e *env) as(token string) *env {
	c := *e
	c.token = token
	return &c
}

// principal creates a principal with a policy document and returns a caller with its token.
func (e *env) principal(name, policy string) *env {
	e.t.Helper()
	if policy != "" {
		if code, eb := e.call("PUT", "/v1/policies/"+name+"-policy", apiv1.PutPolicyRequest{Document: policy}, nil); code != 200 {
			e.t.Fatalf("put policy: %d %+v", code, eb)
		}
	}
	req := apiv1.CreatePrincipalRequest{Name: name, Policies: []string{}}
	if policy != "" {
		req.Policies = []string{name + "-policy"}
	}
	var out apiv1.CreatedPrincipal
	if code, eb := e.call("POST", "/v1/principals", req, &out); code != 201 || !strings.HasPrefix(out.Token, "tgat_") {
		e.t.Fatalf("create principal: %d %+v", code, eb)
	}
	return e.as(out.Token)
}

// auditTail returns the last n audit records.
func (e *env) auditTail(n int) []*store.AuditRecord {
	e.t.Helper()
	recs, err := e.st.ListAudit(context.Background(), store.AuditFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	return recs[max(0, len(recs)-n):]
}

const teamPolicy = `
statements:
  - sid: issue-clients
    effect: allow
    actions: [cert:Issue]
    resources: [ca/issuing]
    conditions:
      profiles: [client]
      dns_names: ["*.svc.internal"]
      max_validity: 24h
`

func TestScopedIssuance(t *testing.T) {
	e := newEnv(t)
	e.mustCreateCA(apiv1.CreateCARequest{Name: "root"})
	e.mustCreateCA(apiv1.CreateCARequest{Name: "issuing", Parent: "root", Validity: "30d"})
	e.mustCreateCA(apiv1.CreateCARequest{Name: "other", Parent: "root", Validity: "30d"})
	team := e.principal("team", teamPolicy)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	req := func(mod func(*apiv1.IssueRequest)) apiv1.IssueRequest {
		r := apiv1.IssueRequest{CA: "issuing", Profile: "client", CSR: csrPEM(t, key, "api.svc.internal"),
			DNS: []string{"api.svc.internal"}, Validity: "24h"}
		mod(&r)
		return r
	}
	var okOut apiv1.IssueResponse
	if code, eb := team.call("POST", "/v1/certificates", req(func(*apiv1.IssueRequest) {}), &okOut); code != 201 {
		t.Fatalf("allowed issuance: %d %+v", code, eb)
	}
	if okOut.Certificate.Requester != "team" {
		t.Errorf("requester = %q", okOut.Certificate.Requester)
	}
	if rec := e.auditTail(1)[0]; rec.Action != "cert:Issue" || rec.Decision != "allow" || rec.Actor != "team" || !strings.Contains(rec.Detail, okOut.Certificate.Serial) {
		t.Errorf("audit record of the issuance = %+v", rec)
	}

	refused := map[string]apiv1.IssueRequest{
		"name outside": req(func(r *apiv1.IssueRequest) { r.DNS = []string{"evil.example"} }),
		"server":       req(func(r *apiv1.IssueRequest) { r.Profile = "server" }),
		"48h":          req(func(r *apiv1.IssueRequest) { r.Validity = "48h" }),
		"other CA":     req(func(r *apiv1.IssueRequest) { r.CA = "other" }),
		"default 365d": req(func(r *apiv1.IssueRequest) { r.Validity = "" }),
		"extra CSR SAN": req(func(r *apiv1.IssueRequest) {
			r.DNS = nil
			r.CSR = csrPEM(t, key, "x", "api.svc.internal", "evil.example")
		}),
	}
	for name, r := range refused {
		t.Run(name, func(t *testing.T) {
			before := e.certCount()
			code, eb := team.call("POST", "/v1/certificates", r, nil)
			if code != 403 || eb.Error.Code != "denied" {
				t.Fatalf("%d %+v, want 403", code, eb)
			}
			if !strings.Contains(eb.Error.Message, "cert:Issue") || strings.Contains(eb.Error.Message, "svc.internal") {
				t.Errorf("message %q must name the action and nothing of the policy", eb.Error.Message)
			}
			if e.certCount() != before {
				t.Error("a refused issuance recorded a certificate")
			}
			rec := e.auditTail(1)[0]
			if rec.Decision != "deny" || rec.Actor != "team" || rec.Action != "cert:Issue" || rec.Resource != "ca/"+r.CA || rec.Outcome != "denied" {
				t.Errorf("audit record = %+v", rec)
			}
		})
	}
}

func TestEveryGuardedRouteDenies(t *testing.T) {
	e := newEnv(t)
	nobody := e.principal("nobody", "")
	fill := strings.NewReplacer("{name}", "demo", "{serial}", "01", "{ref}", "x", "{id}", "1", "{file}", "demo.pem")
	for _, rt := range api.Routes() {
		if rt.Public {
			continue
		}
		code, eb := nobody.call(rt.Method, fill.Replace(rt.Path), "{}", nil)
		if code != 403 {
			t.Errorf("%s %s as a principal without policies: %d, want 403", rt.Method, rt.Path, code)
			continue
		}
		if !strings.Contains(eb.Error.Message, rt.Action) {
			t.Errorf("%s %s: 403 message %q does not name %s", rt.Method, rt.Path, eb.Error.Message, rt.Action)
		}
	}
	// Each denial is in the audit log, reads included.
	recs := e.auditTail(1000)
	denied := 0
	for _, r := range recs {
		if r.Actor == "nobody" && r.Decision == "deny" {
			denied++
		}
	}
	if want := countGuarded(); denied != want {
		t.Errorf("%d denials audited, want %d", denied, want)
	}
}

func countGuarded() int {
	n := 0
	for _, rt := range api.Routes() {
		if !rt.Public {
			n++
		}
	}
	return n
}

func TestSimulate(t *testing.T) {
	e := newEnv(t)
	e.principal("team", teamPolicy)
	tests := []struct {
		req       apiv1.SimulateRequest
		decision  string
		statement string
		reason    string
	}{
		{apiv1.SimulateRequest{Principal: "team", Action: "cert:Issue", Resource: "ca/issuing", Profile: "client",
			DNS: []string{"a.svc.internal"}, Validity: "24h"}, "allow", "issue-clients", "allowed by statement issue-clients"},
		{apiv1.SimulateRequest{Principal: "team", Action: "cert:Issue", Resource: "ca/issuing", Profile: "client",
			DNS: []string{"a.svc.internal"}, Validity: "48h"}, "deny", "", "validity 48h0m0s is over the limit of 24h"},
		{apiv1.SimulateRequest{Principal: "team", Action: "ca:Create", Resource: "ca/x"}, "deny", "", "default deny"},
		{apiv1.SimulateRequest{Principal: "ghost", Action: "ca:Read", Resource: "ca/x"}, "deny", "", `principal "ghost" does not exist`},
		{apiv1.SimulateRequest{Principal: "admin", Action: "ca:Create", Resource: "ca/x"}, "allow", "everything", ""},
	}
	for _, tt := range tests {
		var d apiv1.Decision
		if code, eb := e.call("POST", "/v1/policies/simulate", tt.req, &d); code != 200 {
			t.Fatalf("simulate: %d %+v", code, eb)
		}
		if d.Decision != tt.decision || d.Statement != tt.statement || !strings.Contains(d.Reason, tt.reason) {
			t.Errorf("simulate(%+v) = %+v", tt.req, d)
		}
	}
	if code, _ := e.call("POST", "/v1/policies/simulate", apiv1.SimulateRequest{Principal: "team"}, nil); code != 400 {
		t.Errorf("simulate without action: %d, want 400", code)
	}
}

func TestPolicyChangeAppliesToNextRequest(t *testing.T) {
	e := newEnv(t)
	e.mustCreateCA(apiv1.CreateCARequest{Name: "root"})
	reader := e.principal("reader", `{"statements":[{"effect":"allow","actions":["ca:Read"],"resources":["ca/root"]}]}`)
	if code, _ := reader.call("GET", "/v1/cas/root", nil, nil); code != 200 {
		t.Fatalf("read allowed: %d", code)
	}
	if code, _ := e.call("PUT", "/v1/policies/reader-policy", apiv1.PutPolicyRequest{Document: `{"statements":[{"effect":"deny","actions":["*"],"resources":["*"]}]}`}, nil); code != 200 {
		t.Fatal("put policy")
	}
	if code, _ := reader.call("GET", "/v1/cas/root", nil, nil); code != 403 {
		t.Fatalf("after the change: %d, want 403", code)
	}
	// Tokens: list, revoke, and a revoked token stops working.
	var toks apiv1.APITokenList
	if code, _ := e.call("GET", "/v1/principals/reader/tokens", nil, &toks); code != 200 || len(toks.Tokens) != 1 {
		t.Fatalf("list tokens: %d %+v", code, toks)
	}
	if code, _ := e.call("POST", "/v1/principals/reader/tokens/"+toks.Tokens[0].ID+"/revoke", nil, nil); code != 200 {
		t.Fatal("revoke token")
	}
	if code, _ := e.call("POST", "/v1/principals/admin/tokens/"+toks.Tokens[0].ID+"/revoke", nil, nil); code != 404 {
		t.Error("revoking another principal's token through the wrong principal must be 404")
	}
	if code, _ := e.call("DELETE", "/v1/policies/reader-policy", nil, nil); code != 409 {
		t.Error("a policy in use must not be deleted")
	}
	if code, _ := e.call("DELETE", "/v1/policies/admin", nil, nil); code != 409 {
		t.Error("the admin policy must not be deleted")
	}
}

func TestHostileNames(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{"../../etc/passwd", "x'; DROP TABLE principals; --", "a b", "", strings.Repeat("a", 200), "%00"} {
		code, _ := e.call("POST", "/v1/principals", apiv1.CreatePrincipalRequest{Name: name, Policies: []string{}}, nil)
		if code != 400 {
			t.Errorf("principal name %q: %d, want 400", name, code)
		}
		code, _ = e.call("PUT", "/v1/policies/"+url.PathEscape(name), apiv1.PutPolicyRequest{Document: teamPolicy}, nil)
		if code != 400 && code != 404 {
			t.Errorf("policy name %q: %d, want 400", name, code)
		}
	}
	for _, q := range []string{"' OR 1=1 --", "%", "_", `\`, "../"} {
		code, _ := e.call("GET", "/v1/certificates?san_contains="+url.QueryEscape(q), nil, nil)
		if code != 200 {
			t.Errorf("san_contains %q: %d", q, code)
		}
		code, _ = e.call("GET", "/v1/principals/"+url.PathEscape(q), nil, nil)
		if code != 404 && code != 400 {
			t.Errorf("principal %q: %d, want 404", q, code)
		}
	}
	ps, _ := e.st.ListPrincipals(context.Background())
	if len(ps) != 1 {
		t.Errorf("%d principals after hostile names, want only admin", len(ps))
	}
	// Over the body limit.
	code, eb := e.call("PUT", "/v1/policies/big", `{"document":"`+strings.Repeat("a", 70<<10)+`"}`, nil)
	if code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d %+v", code, eb)
	}
}

// TestNoSecretsInLogsOrAnswers issues with a server-generated key, exports
// a CA key with a passphrase, and makes tokens; then no secret may appear
// in the logs, in the audit log, or in an answer other than its own.
func TestNoSecretsInLogsOrAnswers(t *testing.T) {
	e := newEnv(t)
	e.mustCreateCA(apiv1.CreateCARequest{Name: "root"})
	e.mustCreateCA(apiv1.CreateCARequest{Name: "issuing", Parent: "root", Validity: "30d"})
	var issued apiv1.IssueResponse
	if code, eb := e.call("POST", "/v1/certificates", apiv1.IssueRequest{CA: "issuing", Profile: "client", CommonName: "c", DNS: []string{"c.internal"}}, &issued); code != 201 {
		t.Fatalf("issue: %d %+v", code, eb)
	}
	const passphrase = "correct horse battery staple 42"
	var exp apiv1.ExportCAKeyResponse
	if code, eb := e.call("POST", "/v1/cas/root/export-key", apiv1.ExportCAKeyRequest{Passphrase: passphrase}, &exp); code != 200 {
		t.Fatalf("export: %d %+v", code, eb)
	}
	svc := e.principal("svc", "")
	var tok apiv1.CreatedToken
	e.call("POST", "/v1/principals/svc/tokens", apiv1.CreateTokenRequest{TTL: "1h"}, &tok)
	// A failed call with a secret in it.
	e.call("POST", "/v1/cas/root/export-key", apiv1.ExportCAKeyRequest{Passphrase: passphrase}, nil)
	svc.call("GET", "/v1/cas", nil, nil)

	secrets := map[string]string{"admin token": e.token, "principal token": svc.token, "second token": tok.Token,
		"passphrase": passphrase, "private key": "PRIVATE KEY", "issued key": issued.PrivateKeyPEM[40:80]}
	var audit apiv1.AuditList
	if code, _ := e.call("GET", "/v1/audit?limit=5000", nil, &audit); code != 200 || len(audit.Records) == 0 {
		t.Fatal("read audit")
	}
	var auditText strings.Builder
	for _, r := range audit.Records {
		auditText.WriteString(r.Detail + r.Resource + r.Action + "\n")
	}
	var principals apiv1.PrincipalList
	e.call("GET", "/v1/principals", nil, &principals)
	for what, s := range secrets {
		if strings.Contains(e.logs.String(), s) {
			t.Errorf("the %s appears in the logs", what)
		}
		if strings.Contains(auditText.String(), s) {
			t.Errorf("the %s appears in the audit log", what)
		}
		if strings.Contains(principalsText(principals), s) {
			t.Errorf("the %s appears in the principal list", what)
		}
	}
	var v apiv1.AuditVerification
	if code, _ := e.call("GET", "/v1/audit/verify", nil, &v); code != 200 || !v.OK || v.Records != int64(len(audit.Records))+1 && v.Records != int64(len(audit.Records)) {
		t.Errorf("verify = %+v (records listed %d)", v, len(audit.Records))
	}
}

func principalsText(l apiv1.PrincipalList) string {
	var b strings.Builder
	for _, p := range l.Principals {
		b.WriteString(p.Name + strings.Join(p.Policies, ",") + strings.Join(p.Identities, ","))
	}
	return b.String()
}

func TestIssuanceRateLimit(t *testing.T) {
	e := newEnv(t)
	e.mustCreateCA(apiv1.CreateCARequest{Name: "root"})
	e.mustCreateCA(apiv1.CreateCARequest{Name: "issuing", Parent: "root", Validity: "30d"})
	limited := authz.New(authz.Config{Store: e.st, Limits: map[string]authz.RateLimit{"cert:Issue": {Rate: 0.01, Burst: 2}}})
	h := api.New(api.Config{CA: e.ca, Inventory: inventory.New(inventory.Config{Store: e.st}), Auth: limited, Authz: limited,
		Audit: e.st, CAByID: e.st.GetCAByID})
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	l := e.as(e.token)
	l.srv = srv
	req := apiv1.IssueRequest{CA: "issuing", Profile: "client", CommonName: "c", DNS: []string{"c.internal"}}
	for i := range 2 {
		if code, eb := l.call("POST", "/v1/certificates", req, nil); code != 201 {
			t.Fatalf("issue %d: %d %+v", i, code, eb)
		}
	}
	hreq, _ := http.NewRequest("POST", srv.URL+"/v1/certificates", strings.NewReader(`{"ca":"issuing","profile":"client","common_name":"c","dns":["c.internal"]}`))
	hreq.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := srv.Client().Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over the limit: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if rec := e.auditTail(1)[0]; rec.Outcome != "too_many_requests" || rec.Action != "cert:Issue" {
		t.Errorf("the refused call's audit record = %+v", rec)
	}
}

func TestOperatorCertificateLogin(t *testing.T) {
	e := newEnv(t)
	e.mustCreateCA(apiv1.CreateCARequest{Name: "root"})
	e.mustCreateCA(apiv1.CreateCARequest{Name: "operators", Parent: "root", Validity: "30d"})
	e.mustCreateCA(apiv1.CreateCARequest{Name: "workloads", Parent: "root", Validity: "30d"})
	reader := `{"statements":[{"effect":"allow","actions":["ca:List"],"resources":["*"]}]}`
	if code, _ := e.call("PUT", "/v1/policies/readers", apiv1.PutPolicyRequest{Document: reader}, nil); code != 200 {
		t.Fatal("put policy")
	}
	if code, eb := e.call("POST", "/v1/principals", apiv1.CreatePrincipalRequest{Name: "alice", Kind: "human", Policies: []string{"readers"},
		Identities: []string{"dns:alice.ops.example"}}, nil); code != 201 {
		t.Fatalf("create principal: %d %+v", code, eb)
	}
	issue := func(ca, dns string) (tls.Certificate, string) {
		var out apiv1.IssueResponse
		if code, eb := e.call("POST", "/v1/certificates", apiv1.IssueRequest{CA: ca, Profile: "client", CommonName: dns, DNS: []string{dns}}, &out); code != 201 {
			t.Fatalf("issue: %d %+v", code, eb)
		}
		c, err := tls.X509KeyPair([]byte(out.CertificatePEM+out.ChainPEM), []byte(out.PrivateKeyPEM))
		if err != nil {
			t.Fatal(err)
		}
		return c, out.Certificate.Serial
	}
	access := authz.New(authz.Config{Store: e.st, OperatorCA: "operators", CertStore: e.st})
	h := api.New(api.Config{CA: e.ca, Inventory: inventory.New(inventory.Config{Store: e.st}), Auth: access, Authz: access,
		Audit: e.st, CAByID: e.st.GetCAByID})
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	login := func(cert tls.Certificate) (int, string) {
		tr := srv.Client().Transport.(*http.Transport).Clone()
		tr.TLSClientConfig.Certificates = []tls.Certificate{cert}
		resp, err := (&http.Client{Transport: tr}).Get(srv.URL + "/v1/cas")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	alice, serial := issue("operators", "alice.ops.example")
	if code, body := login(alice); code != 200 {
		t.Fatalf("alice's certificate: %d %s", code, body)
	}
	stranger, strangerSerial := issue("operators", "bob.ops.example")
	if code, body := login(stranger); code != 401 || !strings.Contains(body, "no principal") {
		t.Errorf("certificate of nobody: %d %s", code, body)
	}
	// Refusals of a certificate of the operator CA name it in the audit
	// log; one of another CA proves nothing and stays anonymous.
	refusedBy := func(name, actor string) {
		t.Helper()
		r := e.auditTail(1)[0]
		if r.Action != "ca:List" || r.Decision != "deny" || r.Actor != actor ||
			(actor != "" && !strings.Contains(r.Detail, `certificate issued by CA "operators"`)) {
			t.Errorf("%s: audit record %+v, want actor %q", name, r, actor)
		}
	}
	refusedBy("certificate of nobody", "certificate:"+strangerSerial)
	other, _ := issue("workloads", "alice.ops.example")
	if code, body := login(other); code != 401 || !strings.Contains(body, "not a valid operator certificate") {
		t.Errorf("certificate of another CA: %d %s", code, body)
	}
	refusedBy("certificate of another CA", "")
	if code, _ := e.call("POST", "/v1/certificates/"+serial+"/revoke", apiv1.RevokeRequest{Reason: "keyCompromise"}, nil); code != 200 {
		t.Fatal("revoke")
	}
	if code, body := login(alice); code != 401 || !strings.Contains(body, "revoked") {
		t.Errorf("revoked certificate: %d %s", code, body)
	}
	refusedBy("revoked certificate", "certificate:"+serial)
}

// TestServerCNIsJudgedAsAName keeps a server certificate's CN, which the
// certificate also carries as a DNS name, from slipping past dns_names.
func TestServerCNIsJudgedAsAName(t *testing.T) {
	e := newEnv(t)
	e.mustCreateCA(apiv1.CreateCARequest{Name: "root"})
	e.mustCreateCA(apiv1.CreateCARequest{Name: "issuing", Parent: "root", Validity: "30d"})
	web := e.principal("web", `{"statements":[{"effect":"allow","actions":["cert:Issue"],"resources":["ca/issuing"],
		"conditions":{"profiles":["server"],"dns_names":["*.svc.internal"]}}]}`)
	req := apiv1.IssueRequest{CA: "issuing", Profile: "server", CommonName: "evil.example", DNS: []string{"a.svc.internal"}, Validity: "24h"}
	if code, eb := web.call("POST", "/v1/certificates", req, nil); code != 403 {
		t.Fatalf("CN outside the allowed names: %d %+v, want 403", code, eb)
	}
	req.CommonName = "b.svc.internal"
	if code, eb := web.call("POST", "/v1/certificates", req, nil); code != 201 {
		t.Fatalf("CN inside: %d %+v", code, eb)
	}
}

// TestUnauthenticatedAuditBounded floods a guarded route with a bad token
// from one address: every call is refused with 401, the first ones are
// audited, and the rest are counted and logged instead of each becoming a
// durable record.
func TestUnauthenticatedAuditBounded(t *testing.T) {
	e := newEnv(t)
	before := len(e.auditTail(100000))
	const calls = 45
	start := time.Now()
	for i := range calls {
		req, _ := http.NewRequest("GET", e.srv.URL+"/v1/cas", nil)
		req.Header.Set("Authorization", "Bearer tg_not-a-token")
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("call %d: %d, want 401", i, resp.StatusCode)
		}
	}
	elapsed := time.Since(start)
	recs := e.auditTail(100000)[before:]
	for _, r := range recs {
		if r.Decision != "deny" || r.Actor != "" {
			t.Errorf("unexpected record %+v", r)
		}
	}
	// 30 at once, then one per 2 s of the flood's duration.
	most := 30 + int(elapsed/(2*time.Second)) + 1
	if len(recs) < 30 || len(recs) > most {
		t.Errorf("%d of %d unauthenticated calls audited in %s, want 30..%d", len(recs), calls, elapsed, most)
	}
	if n := strings.Count(e.logs.String(), "audited at a limited rate"); n != 1 {
		t.Errorf("the limit was logged %d times, want once", n)
	}
}

// TestRefusedCredentialIsAttributed floods a guarded route with a revoked
// API token: the caller proved the token, so every refusal is recorded,
// under the token's ID and with its principal, and none is rate-limited
// away as an anonymous call would be.
func TestRefusedCredentialIsAttributed(t *testing.T) {
	e := newEnv(t)
	deploy := e.principal("deploy", "")
	dtoks, err := e.st.ListTokens(context.Background(), "deploy")
	if err != nil || len(dtoks) != 1 {
		t.Fatalf("tokens of deploy: %v %v", dtoks, err)
	}
	if err := e.st.RevokeToken(context.Background(), dtoks[0].ID); err != nil {
		t.Fatal(err)
	}
	before := len(e.auditTail(100000))
	const calls = 45
	for i := range calls {
		if code, eb := deploy.call("GET", "/v1/cas", nil, nil); code != 401 || !strings.Contains(eb.Error.Message, "revoked") {
			t.Fatalf("call %d with a revoked token: %d %+v", i, code, eb)
		}
	}
	recs := e.auditTail(100000)[before:]
	const burst = 30 // a credential's limit, as a source's
	if len(recs) != burst {
		t.Fatalf("%d of %d calls with a revoked token recorded, want the first %d", len(recs), calls, burst)
	}
	for _, r := range recs {
		if r.Actor != "token:"+dtoks[0].ID || r.Decision != "deny" || r.Outcome != "unauthenticated" ||
			!strings.Contains(r.Detail, "API token of principal deploy") {
			t.Fatalf("record %+v", r)
		}
	}
	// Limited per credential, not as the source's anonymous calls.
	if logs := e.logs.String(); !strings.Contains(logs, `"key":"token:`+dtoks[0].ID+`"`) {
		t.Errorf("no WARN naming the refused credential as what is limited:\n%s", logs)
	}
}
