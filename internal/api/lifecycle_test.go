package api_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/api"
	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/authz"
	"github.com/trustgate/trustgate/internal/ca"
	"github.com/trustgate/trustgate/internal/inventory"
	"github.com/trustgate/trustgate/internal/keystore"
	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/pki/pkitest"
	"github.com/trustgate/trustgate/internal/store"
	"github.com/trustgate/trustgate/internal/store/sqlite"
)

// testClock is a clock the test moves; safe for concurrent use.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// denyDNS is a policy that refuses any issuance naming one DNS name, and
// records the last question it was asked.
// forbidPolicy, attached to the administrator, denies issuing or minting
// tokens for forbidden.internal.
const forbidPolicy = `{"statements":[{"effect":"deny","actions":["cert:Issue","token:Create"],"resources":["*"],
	"conditions":{"dns_names":["forbidden.internal"]}}]}`

// lifecycleEnv is an env whose TLS server requests client certificates,
// with bootstrap tokens and renewal enabled, the real access control (the
// administrator may do all but name forbidden.internal), and a test clock
// shared by every service.
func lifecycleEnv(t *testing.T) (*env, *testClock) {
	t.Helper()
	linterOnce.Do(func() {
		var err error
		if linter, err = pki.NewLinter(); err != nil {
			t.Fatal(err)
		}
	})
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "tg.db"))
	if err != nil {
		t.Fatal(err)
	}
	clock := &testClock{now: time.Now().UTC().Truncate(time.Second)}
	mk := make([]byte, 32)
	rand.Read(mk)
	sealer, _ := keystore.New(mk)
	casvc, err := ca.New(ca.Config{Store: st, Sealer: sealer, Linter: linter, PublicBaseURL: "http://pki.test", Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	access := authz.New(authz.Config{Store: st, Now: clock.Now})
	ctx := context.Background()
	if _, err := access.EnsureAdmin(ctx, "admin"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := access.PutPolicy(ctx, "no-forbidden", []byte(forbidPolicy)); err != nil {
		t.Fatal(err)
	}
	if _, err := access.UpdatePrincipal(ctx, "admin", func(p *store.Principal) error {
		p.Policies = append(p.Policies, "no-forbidden")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	tok, err := access.Tokens.Create(ctx, "admin", 0)
	if err != nil {
		t.Fatal(err)
	}
	h := api.New(api.Config{CA: casvc, Inventory: inventory.New(inventory.Config{Store: st, Now: clock.Now}), Auth: access, Authz: access,
		Access: access, AccessStore: st, Audit: st,
		Bootstrap: authz.NewBootstrap(st, clock.Now), Renewal: casvc, CAByID: st.GetCAByID, MaxBodyBytes: 64 << 10, Now: clock.Now})
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	e := &env{t: t, srv: srv, handler: h, st: st, access: access, ca: casvc, token: tok}
	t.Cleanup(func() { srv.Close(); st.Close() })
	e.mustCreateCA(apiv1.CreateCARequest{Name: "root"})
	e.mustCreateCA(apiv1.CreateCARequest{Name: "issuing", Parent: "root", Validity: "1y"})
	return e, clock
}

// post sends a JSON body without an API token, presenting cert (when
// non-nil) as TLS client certificate, and decodes a 2xx answer into out.
func (e *env) post(path string, body any, cert *tls.Certificate, out any) (int, apiv1.ErrorBody) {
	e.t.Helper()
	tr := e.srv.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig = tr.TLSClientConfig.Clone()
	if cert != nil {
		tr.TLSClientConfig.Certificates = []tls.Certificate{*cert}
	}
	defer tr.CloseIdleConnections()
	j, _ := json.Marshal(body)
	resp, err := (&http.Client{Transport: tr}).Post(e.srv.URL+path, "application/json", bytes.NewReader(j))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var eb apiv1.ErrorBody
	if resp.StatusCode >= 300 {
		if err := json.Unmarshal(data, &eb); err != nil {
			e.t.Fatalf("POST %s: error answer is not the JSON envelope: %s", path, data)
		}
		return resp.StatusCode, eb
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			e.t.Fatalf("POST %s: %v: %s", path, err, data)
		}
	}
	return resp.StatusCode, eb
}

func (e *env) mustToken(r apiv1.CreateBootstrapTokenRequest) apiv1.BootstrapToken {
	e.t.Helper()
	var out apiv1.BootstrapToken
	if code, eb := e.call("POST", "/v1/tokens", r, &out); code != 201 {
		e.t.Fatalf("create token: %d %+v", code, eb)
	}
	return out
}

func newKey(t *testing.T) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// tlsCert pairs an issued certificate with its key, as an agent presents it.
func tlsCert(t *testing.T, res apiv1.IssueResponse, key crypto.Signer) *tls.Certificate {
	t.Helper()
	leaf := parsePEMCerts(t, res.CertificatePEM)[0]
	c := &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
	for _, ch := range parsePEMCerts(t, res.ChainPEM) {
		c.Certificate = append(c.Certificate, ch.Raw)
	}
	return c
}

func TestCreateBootstrapTokenBadInput(t *testing.T) {
	e, _ := lifecycleEnv(t)
	tests := []struct {
		name string
		req  apiv1.CreateBootstrapTokenRequest
		code int
		msg  string
	}{
		{"fail/no name", apiv1.CreateBootstrapTokenRequest{CA: "issuing", Profile: "server"}, 400, "required"},
		{"fail/unknown profile", apiv1.CreateBootstrapTokenRequest{CA: "issuing", Profile: "nope", Name: "a"}, 400, "unknown profile"},
		{"fail/CA profile", apiv1.CreateBootstrapTokenRequest{CA: "issuing", Profile: "subordinate-ca", Name: "a"}, 400, "leaf certificates"},
		{"fail/bad DNS", apiv1.CreateBootstrapTokenRequest{CA: "issuing", Profile: "server", Name: "a", DNS: []string{"-x-"}}, 400, "-x-"},
		{"fail/max validity over profile", apiv1.CreateBootstrapTokenRequest{CA: "issuing", Profile: "server", Name: "a", MaxValidity: "500d"}, 400, "max_validity"},
		{"fail/max validity under a minute", apiv1.CreateBootstrapTokenRequest{CA: "issuing", Profile: "server", Name: "a", MaxValidity: "30s"}, 400, "minimum"},
		{"fail/expires too late", apiv1.CreateBootstrapTokenRequest{CA: "issuing", Profile: "server", Name: "a", ExpiresIn: "90d"}, 400, "expires_in"},
		{"fail/bad expires", apiv1.CreateBootstrapTokenRequest{CA: "issuing", Profile: "server", Name: "a", ExpiresIn: "soon"}, 400, "expires_in"},
		{"fail/server name not a host", apiv1.CreateBootstrapTokenRequest{CA: "issuing", Profile: "server", Name: "svc a"}, 400, "host name"},
		{"fail/negative uses", apiv1.CreateBootstrapTokenRequest{CA: "issuing", Profile: "server", Name: "a", Uses: -1}, 400, "uses"},
		{"fail/unknown CA", apiv1.CreateBootstrapTokenRequest{CA: "nope", Profile: "server", Name: "a"}, 404, "nope"},
		{"fail/policy", apiv1.CreateBootstrapTokenRequest{CA: "issuing", Profile: "server", Name: "a", DNS: []string{"forbidden.internal"}}, 403, "token:Create"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, eb := e.call("POST", "/v1/tokens", tt.req, nil)
			if code != tt.code || !strings.Contains(eb.Error.Message, tt.msg) {
				t.Fatalf("got %d %q, want %d with %q", code, eb.Error.Message, tt.code, tt.msg)
			}
		})
	}
	// The policy is asked about the CA, with everything the token allows:
	// a principal allowed exactly that gets the token, and no more.
	minter := e.principal("minter", `{"statements":[{"effect":"allow","actions":["token:Create"],"resources":["ca/issuing"],
		"conditions":{"profiles":["client"],"uri_prefixes":["spiffe://ex/"],"max_validity":"2h","subject":{"CN":["svc-a"]}}}]}`)
	ok := apiv1.CreateBootstrapTokenRequest{CA: "issuing", Profile: "client", Name: "svc-a", URI: []string{"spiffe://ex/svc-a"}, MaxValidity: "2h"}
	if code, eb := minter.call("POST", "/v1/tokens", ok, nil); code != 201 {
		t.Fatalf("token within the policy: %d %+v", code, eb)
	}
	for name, mod := range map[string]func(*apiv1.CreateBootstrapTokenRequest){
		"longer":     func(r *apiv1.CreateBootstrapTokenRequest) { r.MaxValidity = "3h" },
		"other name": func(r *apiv1.CreateBootstrapTokenRequest) { r.Name = "svc-b" },
		"other uri":  func(r *apiv1.CreateBootstrapTokenRequest) { r.URI = []string{"spiffe://other/svc-a"} },
		"server":     func(r *apiv1.CreateBootstrapTokenRequest) { r.Profile = "server" },
		"another CA": func(r *apiv1.CreateBootstrapTokenRequest) { r.CA = "root" },
	} {
		req := ok
		mod(&req)
		if code, eb := minter.call("POST", "/v1/tokens", req, nil); code != 403 {
			t.Errorf("%s: %d %+v, want 403", name, code, eb)
		}
	}
	// Without an API token, nothing.
	if code, _ := e.post("/v1/tokens", apiv1.CreateBootstrapTokenRequest{CA: "issuing", Profile: "server", Name: "a"}, nil, nil); code != 401 {
		t.Fatalf("unauthenticated token creation: %d", code)
	}
}

func TestEnrollAndRenew(t *testing.T) {
	e, clock := lifecycleEnv(t)
	tok := e.mustToken(apiv1.CreateBootstrapTokenRequest{CA: "issuing", Profile: "server-client", Name: "svc-a",
		DNS: []string{"svc-a.internal"}, MaxValidity: "24h", ExpiresIn: "1h"})
	if !strings.HasPrefix(tok.Token, authz.BootstrapTokenPrefix) || tok.MaxUses != 1 || tok.SANs[0] != "dns:svc-a.internal" {
		t.Fatalf("token: %+v", tok)
	}
	key := newKey(t)
	csr := csrPEM(t, key, "svc-a", "svc-a.internal")

	// Name binding: a token for svc-a cannot get svc-b, and a refusal
	// spends no use.
	for _, tt := range []struct {
		name string
		req  apiv1.EnrollRequest
		code int
		msg  string
	}{
		{"fail/other DNS", apiv1.EnrollRequest{Token: tok.Token, CSR: csr, DNS: []string{"svc-b.internal"}}, 403, `DNS name "svc-b.internal"`},
		{"fail/other CN", apiv1.EnrollRequest{Token: tok.Token, CSR: csr, CommonName: "svc-b"}, 403, `common name "svc-b"`},
		{"fail/too long", apiv1.EnrollRequest{Token: tok.Token, CSR: csr, Validity: "48h"}, 403, "lifetime"},
		{"fail/no token", apiv1.EnrollRequest{CSR: csr}, 401, "token is required"},
		{"fail/API token", apiv1.EnrollRequest{Token: e.token, CSR: csr}, 401, "not a Trustgate bootstrap token"},
		{"fail/no CSR", apiv1.EnrollRequest{Token: tok.Token}, 400, "csr is required"},
		{"fail/bad CSR", apiv1.EnrollRequest{Token: tok.Token, CSR: "garbage"}, 400, "csr"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, eb := e.post("/v1/enroll", tt.req, nil, nil)
			if code != tt.code || !strings.Contains(eb.Error.Message, tt.msg) {
				t.Fatalf("got %d %q, want %d with %q", code, eb.Error.Message, tt.code, tt.msg)
			}
		})
	}
	// A CSR asking for svc-b, with the names left to the token: the
	// token's names win (the CSR's are not used).
	var first apiv1.IssueResponse
	if code, eb := e.post("/v1/enroll", apiv1.EnrollRequest{Token: tok.Token, CSR: csrPEM(t, key, "svc-b", "svc-b.internal")}, nil, &first); code != 201 {
		t.Fatalf("enroll: %d %+v", code, eb)
	}
	leaf := parsePEMCerts(t, first.CertificatePEM)[0]
	// A server certificate's common name is one of its SANs too.
	if leaf.Subject.CommonName != "svc-a" || strings.Join(leaf.DNSNames, ",") != "svc-a.internal,svc-a" ||
		leaf.NotAfter.Sub(leaf.NotBefore) != 24*time.Hour+time.Minute || first.Certificate.Requester != "bootstrap:"+tok.ID {
		t.Fatalf("enrolled: CN %q DNS %v lifetime %v requester %q", leaf.Subject.CommonName, leaf.DNSNames, leaf.NotAfter.Sub(leaf.NotBefore), first.Certificate.Requester)
	}
	verifyChain(t, first.CertificatePEM, first.ChainPEM, x509.ExtKeyUsageClientAuth)
	// Single use.
	if code, eb := e.post("/v1/enroll", apiv1.EnrollRequest{Token: tok.Token, CSR: csr}, nil, nil); code != 401 || !strings.Contains(eb.Error.Message, "used up") {
		t.Fatalf("second enrolment: %d %+v", code, eb)
	}
	// The refusal of a token the caller proved names it.
	if r := e.auditTail(1)[0]; r.Actor != "bootstrap-token:"+tok.ID || r.Action != "cert:Enroll" || r.Decision != "deny" ||
		!strings.Contains(r.Detail, `used up`) || !strings.Contains(r.Detail, `bootstrap token for "svc-a", made by principal admin`) {
		t.Errorf("audit record of the used-up token's call: %+v", r)
	}

	// Renewal over mTLS with the enrolled certificate, for a new key; the
	// CSR's names are ignored.
	cur := tlsCert(t, first, key)
	key2 := newKey(t)
	var second apiv1.IssueResponse
	if code, eb := e.post("/v1/renew", apiv1.RenewRequest{CSR: csrPEM(t, key2, "svc-b", "svc-b.internal")}, cur, &second); code != 201 {
		t.Fatalf("renew: %d %+v", code, eb)
	}
	leaf2 := parsePEMCerts(t, second.CertificatePEM)[0]
	// Both are in the audit log, in the transaction of their certificate,
	// under who proved themselves: the token, then the certificate.
	var recs []*store.AuditRecord
	for _, r := range e.auditTail(10) {
		if r.Outcome == "ok" && (r.Action == "cert:Enroll" || r.Action == "cert:Renew") {
			recs = append(recs, r)
		}
	}
	if len(recs) != 2 {
		t.Fatalf("%d audit records of successful enrolments and renewals, want 2", len(recs))
	}
	if recs[0].Action != "cert:Enroll" || recs[0].Actor != "bootstrap-token:"+tok.ID || !strings.Contains(recs[0].Detail, first.Certificate.Serial) ||
		recs[1].Action != "cert:Renew" || recs[1].Actor != "certificate:"+first.Certificate.Serial || !strings.Contains(recs[1].Detail, second.Certificate.Serial) {
		t.Errorf("audit records of enrolment and renewal: %+v %+v", recs[0], recs[1])
	}
	if leaf2.Subject.String() != leaf.Subject.String() || strings.Join(leaf2.DNSNames, ",") != "svc-a.internal,svc-a" ||
		leaf2.NotAfter.Sub(leaf2.NotBefore) != leaf.NotAfter.Sub(leaf.NotBefore) || second.Certificate.Profile != "server-client" ||
		second.Certificate.CA != "issuing" || leaf2.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Fatalf("renewed: %s %v %v %+v", leaf2.Subject, leaf2.DNSNames, leaf2.NotAfter.Sub(leaf2.NotBefore), second.Certificate)
	}
	if !leaf2.PublicKey.(*ecdsa.PublicKey).Equal(key2.Public()) {
		t.Fatal("the renewed certificate is not for the CSR's key")
	}

	renewFails := func(name string, cert *tls.Certificate, csr string, code int, msg string) {
		t.Helper()
		got, eb := e.post("/v1/renew", apiv1.RenewRequest{CSR: csr}, cert, nil)
		if got != code || !strings.Contains(eb.Error.Message, msg) {
			t.Fatalf("%s: got %d %q, want %d with %q", name, got, eb.Error.Message, code, msg)
		}
	}
	cur2 := tlsCert(t, second, key2)
	renewFails("fail/same key", cur2, csrPEM(t, key2, "svc-a"), 400, "new key")
	renewFails("fail/no client certificate", nil, csrPEM(t, newKey(t), "svc-a"), 401, "no client certificate")
	renewFails("fail/no CSR", cur2, "", 400, "csr is required")
	// A certificate of a CA that is not ours, with the same names.
	foreign := pkitest.New(t, pkitest.WithName("Foreign CA"))
	fc, fk := foreign.Leaf(t, pkitest.LeafOptions{CN: "svc-a", DNS: []string{"svc-a.internal"}, ClientAuth: true})
	renewFails("fail/foreign CA", &tls.Certificate{Certificate: [][]byte{fc.Raw}, PrivateKey: fk}, csrPEM(t, newKey(t), "svc-a"), 401, "not issued by a CA of this Trustgate")
	// A certificate that is not ours proves nothing: its refusal is
	// anonymous. One of ours, refused, is named by serial and CA.
	refusedBy := func(name, actor string) {
		t.Helper()
		r := e.auditTail(1)[0]
		if r.Action != "cert:Renew" || r.Actor != actor || (actor != "" && !strings.Contains(r.Detail, `certificate issued by CA "issuing"`)) {
			t.Errorf("%s: audit record %+v, want actor %q", name, r, actor)
		}
	}
	refusedBy("foreign CA", "")

	// Revoked: no renewal (a new token is needed).
	if code, eb := e.call("POST", "/v1/certificates/"+second.Certificate.Serial+"/revoke", apiv1.RevokeRequest{Reason: "keyCompromise"}, nil); code != 200 {
		t.Fatalf("revoke: %d %+v", code, eb)
	}
	renewFails("fail/revoked", cur2, csrPEM(t, newKey(t), "svc-a"), 401, "revoked")
	refusedBy("revoked", "certificate:"+second.Certificate.Serial)

	// Expired: no renewal. The first certificate is still unrevoked.
	clock.Advance(25 * time.Hour)
	renewFails("fail/expired", cur, csrPEM(t, newKey(t), "svc-a"), 401, "expired")
	refusedBy("expired", "certificate:"+first.Certificate.Serial)
}

func TestEnrollTokenExpiryAndConcurrency(t *testing.T) {
	e, clock := lifecycleEnv(t)
	// Concurrent enrolments with one two-use token: exactly two succeed.
	tok := e.mustToken(apiv1.CreateBootstrapTokenRequest{CA: "issuing", Profile: "client", Name: "svc-c", Uses: 2, ExpiresIn: "10m"})
	csr := csrPEM(t, newKey(t), "svc-c")
	var wg sync.WaitGroup
	codes := make(chan int, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _ := e.post("/v1/enroll", apiv1.EnrollRequest{Token: tok.Token, CSR: csr}, nil, nil)
			codes <- code
		}()
	}
	wg.Wait()
	close(codes)
	n := map[int]int{}
	for c := range codes {
		n[c]++
	}
	if n[201] != 2 || n[401] != 6 {
		t.Fatalf("8 concurrent enrolments with a two-use token: %v", n)
	}

	// An issuance that fails after the use was spent (here a lint error:
	// a URI host that is not a fully qualified name) gives the use back.
	lint := e.mustToken(apiv1.CreateBootstrapTokenRequest{CA: "issuing", Profile: "client", Name: "svc-e", URI: []string{"spiffe://demo/svc-e"}})
	for range 2 {
		code, eb := e.post("/v1/enroll", apiv1.EnrollRequest{Token: lint.Token, CSR: csrPEM(t, newKey(t), "svc-e")}, nil, nil)
		if code != 400 || !strings.Contains(eb.Error.Message, "lint") {
			t.Fatalf("enrolment failing lint: %d %+v", code, eb)
		}
	}
	if rec, err := e.st.GetBootstrapTokenByHash(context.Background(), authz.HashToken(lint.Token)); err != nil || rec.Uses != 0 {
		t.Fatalf("after failed issuances the token has %d uses spent (%v), want 0", rec.Uses, err)
	}

	// Revocation: refused from then on; unknown IDs are 404.
	rev := e.mustToken(apiv1.CreateBootstrapTokenRequest{CA: "issuing", Profile: "client", Name: "svc-f"})
	var revoked apiv1.BootstrapToken
	if code, eb := e.call("POST", "/v1/tokens/"+rev.ID+"/revoke", nil, &revoked); code != 200 || !revoked.Revoked || revoked.Token != "" {
		t.Fatalf("revoke token: %d %+v %+v", code, eb, revoked)
	}
	if code, eb := e.post("/v1/enroll", apiv1.EnrollRequest{Token: rev.Token, CSR: csrPEM(t, newKey(t), "svc-f")}, nil, nil); code != 401 || !strings.Contains(eb.Error.Message, "revoked") {
		t.Fatalf("enrolment with a revoked token: %d %+v", code, eb)
	}
	if code, _ := e.call("POST", "/v1/tokens/bt-nope/revoke", nil, nil); code != 404 {
		t.Fatalf("revoke of a missing token: %d", code)
	}

	// Expiry.
	late := e.mustToken(apiv1.CreateBootstrapTokenRequest{CA: "issuing", Profile: "client", Name: "svc-d", ExpiresIn: "10m"})
	clock.Advance(10 * time.Minute)
	code, eb := e.post("/v1/enroll", apiv1.EnrollRequest{Token: late.Token, CSR: csrPEM(t, newKey(t), "svc-d")}, nil, nil)
	if code != 401 || !strings.Contains(eb.Error.Message, "expired") {
		t.Fatalf("enrolment with an expired token: %d %+v", code, eb)
	}
}

// firstRead signals once, when the handler first reads the request body
// (after it started the call's audit record).
type firstRead struct {
	io.ReadCloser
	once   *sync.Once
	signal chan<- struct{}
}

func (f firstRead) Read(p []byte) (int, error) {
	f.once.Do(func() { f.signal <- struct{}{} })
	return f.ReadCloser.Read(p)
}

// TestSlowUnauthenticatedCallDoesNotRefill is a caller that trickles one
// request's body in while sending others at full speed: its late refusal
// must be judged when it is decided, not when the request began, or it
// would hand the bucket of unauthenticated calls back to the flood.
func TestSlowUnauthenticatedCallDoesNotRefill(t *testing.T) {
	e, clock := lifecycleEnv(t)
	reading := make(chan struct{}, 1)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/enroll" {
			r.Body = firstRead{ReadCloser: r.Body, once: new(sync.Once), signal: reading}
		}
		e.handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	unauthenticated := func() int {
		n := 0
		for _, r := range e.auditTail(100000) {
			if r.Outcome == "unauthenticated" && r.Actor == "" {
				n++
			}
		}
		return n
	}
	before := unauthenticated()
	fast := func(n int) {
		t.Helper()
		for range n {
			req, _ := http.NewRequest("GET", srv.URL+"/v1/cas", nil)
			req.Header.Set("Authorization", "Bearer tg_not-a-token")
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 401 {
				t.Fatalf("fast call: %d, want 401", resp.StatusCode)
			}
		}
	}
	for round := range 3 {
		// The slow call begins (its record is started), then its body
		// takes 100 s to arrive while 29 fast calls are refused.
		pr, pw := io.Pipe()
		done := make(chan int, 1)
		go func() {
			req, _ := http.NewRequest("POST", srv.URL+"/v1/enroll", pr)
			resp, err := srv.Client().Do(req)
			if err != nil {
				done <- 0
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
		if _, err := pw.Write([]byte(`{"csr":"x",`)); err != nil {
			t.Fatal(err)
		}
		<-reading
		clock.Advance(100 * time.Second)
		fast(29)
		pw.Write([]byte(`"token":"tgbt_not-a-token"}`))
		pw.Close()
		if code := <-done; code != 401 {
			t.Fatalf("round %d: slow call answered %d, want 401", round, code)
		}
		fast(29)
	}
	// 3 × (29 + 1 + 29) calls, with the clock moving 100 s three times: at
	// most a full bucket per move.
	if n := unauthenticated() - before; n > 3*30 {
		t.Errorf("%d of %d unauthenticated calls recorded, want at most %d", n, 3*59, 3*30)
	}
}
