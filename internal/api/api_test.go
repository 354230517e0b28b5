package api_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/trustgate/trustgate/internal/api"
	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/authz"
	"github.com/trustgate/trustgate/internal/ca"
	"github.com/trustgate/trustgate/internal/inventory"
	"github.com/trustgate/trustgate/internal/keystore"
	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/store"
	"github.com/trustgate/trustgate/internal/store/sqlite"
)

var (
	linterOnce sync.Once
	linter     *pki.Linter
)

type env struct {
	t       *testing.T
	srv     *httptest.Server
	handler http.Handler
	st      store.Store
	access  *authz.Service
	ca      *ca.Service
	token   string
	logs    *lockedBuffer // everything the API logged
}

// lockedBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := buildEnv(t, t.TempDir())
	t.Cleanup(func() { e.srv.Close(); e.st.Close() })
	return e
}

// buildEnv assembles the real services on a SQLite store in dir, behind a
// TLS test server on loopback. The caller closes it.
func buildEnv(t *testing.T, dir string) *env {
	t.Helper()
	linterOnce.Do(func() {
		var err error
		if linter, err = pki.NewLinter(); err != nil {
			t.Fatal(err)
		}
	})
	st, err := sqlite.Open(filepath.Join(dir, "tg.db"))
	if err != nil {
		t.Fatal(err)
	}
	mk := make([]byte, 32)
	rand.Read(mk)
	sealer, _ := keystore.New(mk)
	casvc, err := ca.New(ca.Config{Store: st, Sealer: sealer, Linter: linter, PublicBaseURL: "http://pki.test"})
	if err != nil {
		t.Fatal(err)
	}
	access := authz.New(authz.Config{Store: st, Limits: map[string]authz.RateLimit{"cert:Revoke": {Rate: 1000, Burst: 1000}}})
	if _, err := access.EnsureAdmin(context.Background(), "admin"); err != nil {
		t.Fatal(err)
	}
	tok, err := access.Tokens.Create(context.Background(), "admin", 0)
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	h := api.New(api.Config{CA: casvc, Inventory: inventory.New(inventory.Config{Store: st}),
		Auth: access, Authz: access, Access: access, AccessStore: st, Audit: st,
		CAByID: st.GetCAByID, MaxBodyBytes: 64 << 10,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	return &env{t: t, srv: httptest.NewTLSServer(h), handler: h, st: st, access: access, ca: casvc, token: tok, logs: logs}
}

// call sends a request and decodes the JSON answer into out (when non-nil).
func (e *env) call(method, path string, body any, out any) (int, apiv1.ErrorBody) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var eb apiv1.ErrorBody
	if resp.StatusCode >= 300 {
		if err := json.Unmarshal(data, &eb); err != nil {
			e.t.Fatalf("%s %s: error answer is not the JSON envelope: %s", method, path, data)
		}
		return resp.StatusCode, eb
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			e.t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
	return resp.StatusCode, eb
}

func (e *env) mustCreateCA(r apiv1.CreateCARequest) apiv1.CA {
	e.t.Helper()
	var out apiv1.CA
	if code, eb := e.call("POST", "/v1/cas", r, &out); code != 201 {
		e.t.Fatalf("create CA %s: %d %+v", r.Name, code, eb)
	}
	return out
}

func (e *env) certCount() int64 {
	e.t.Helper()
	return (&fuzzState{st: e.st}).count(e.t)
}

func csrPEM(t *testing.T, key crypto.Signer, cn string, dns ...string) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, DNSNames: dns}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func TestOpenAPICoversEveryRoute(t *testing.T) {
	e := newEnv(t)
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if code, _ := e.call("GET", "/v1/openapi.json", nil, &doc); code != 200 {
		t.Fatalf("openapi: %d", code)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	for _, rt := range api.Routes() {
		if _, ok := doc.Paths[rt.Path][strings.ToLower(rt.Method)]; !ok {
			t.Errorf("route %s %s is missing from the OpenAPI document", rt.Method, rt.Path)
		}
		if rt.Summary == "" {
			t.Errorf("route %s %s has no summary", rt.Method, rt.Path)
		}
	}
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, path, auth string
		want             int
	}{
		{"fail/anonymous", "/v1/cas", "", 401},
		{"fail/not bearer", "/v1/cas", "Basic YWRtaW46YWRtaW4=", 401},
		{"fail/unknown token", "/v1/cas", "Bearer tgat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 401},
		{"fail/not a token", "/v1/cas", "Bearer ' OR 1=1 --", 401},
		{"ok/admin", "/v1/cas", "Bearer " + e.token, 200},
		{"ok/health is public", "/healthz", "", 200},
		{"ok/openapi is public", "/v1/openapi.json", "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", e.srv.URL+tt.path, nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.want == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	// Every non-public route refuses anonymous callers.
	for _, rt := range api.Routes() {
		if rt.Public {
			continue
		}
		path := strings.NewReplacer("{name}", "demo", "{serial}", "01").Replace(rt.Path)
		req, _ := http.NewRequest(rt.Method, e.srv.URL+path, strings.NewReader("{}"))
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("anonymous %s %s: %d, want 401", rt.Method, rt.Path, resp.StatusCode)
		}
	}
}

func TestIssueBadInput(t *testing.T) {
	e := newEnv(t)
	e.mustCreateCA(apiv1.CreateCARequest{Name: "root"})
	e.mustCreateCA(apiv1.CreateCARequest{Name: "issuing", Parent: "root", Validity: "30d"})
	e.mustCreateCA(apiv1.CreateCARequest{Name: "off", Parent: "root", Validity: "30d"})
	if code, _ := e.call("POST", "/v1/cas/off/disable", nil, nil); code != 200 {
		t.Fatal("disable")
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good := csrPEM(t, ec, "web.internal", "web.internal")
	blk, _ := pem.Decode([]byte(good))
	bad := bytes.Clone(blk.Bytes)
	bad[len(bad)-5] ^= 0xff
	badSig := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: bad}))
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsa1024 := csrPEM(t, weak, "weak.internal", "weak.internal")

	issue := func(mod func(m map[string]any)) string {
		m := map[string]any{"ca": "issuing", "profile": "server", "csr": good, "dns": []string{"web.internal"}}
		mod(m)
		j, _ := json.Marshal(m)
		return string(j)
	}
	tests := []struct {
		name   string
		body   string
		status int
		want   string
	}{
		{"fail/garbage csr", issue(func(m map[string]any) {
			m["csr"] = "-----BEGIN CERTIFICATE REQUEST-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE REQUEST-----\n"
		}), 400, "csr"},
		{"fail/not pem or der", issue(func(m map[string]any) { m["csr"] = "hello" }), 400, "csr"},
		{"fail/bad csr signature", issue(func(m map[string]any) { m["csr"] = badSig }), 400, "signature"},
		{"fail/rsa-1024", issue(func(m map[string]any) { m["csr"] = rsa1024; m["dns"] = []string{"weak.internal"} }), 400, "1024"},
		{"fail/validity beyond issuer", issue(func(m map[string]any) { m["validity"] = "90d" }), 400, "after CA \"issuing\" expires"},
		{"fail/validity over profile", issue(func(m map[string]any) { m["ca"] = "root"; m["validity"] = "5y" }), 400, "maximum"},
		{"fail/unknown ca", issue(func(m map[string]any) { m["ca"] = "nope" }), 404, "CA \"nope\" does not exist"},
		{"fail/disabled ca", issue(func(m map[string]any) { m["ca"] = "off" }), 409, "disabled"},
		{"fail/unknown profile", issue(func(m map[string]any) { m["profile"] = "superuser" }), 400, "superuser"},
		{"fail/bad dns san", issue(func(m map[string]any) { m["dns"] = []string{"exa mple.com"} }), 400, "exa mple.com"},
		{"fail/bad ip san", issue(func(m map[string]any) { m["ip"] = []string{"1.2.3.999"} }), 400, "1.2.3.999"},
		{"fail/bad uri san", issue(func(m map[string]any) { m["uri"] = []string{"not a uri"} }), 400, "not a uri"},
		{"fail/bad validity", issue(func(m map[string]any) { m["validity"] = "forever" }), 400, "forever"},
		{"fail/key type with csr", issue(func(m map[string]any) { m["key_type"] = "rsa-2048" }), 400, "key_type"},
		{"fail/malformed json", `{"ca": "issuing",`, 400, "truncated"},
		{"fail/not json", `ca=issuing`, 400, "not valid JSON"},
		{"fail/unknown field", issue(func(m map[string]any) { m["admin"] = true }), 400, "unknown field \"admin\""},
		{"fail/wrong type", issue(func(m map[string]any) { m["dns"] = "web.internal" }), 400, "dns"},
		{"fail/two values", issue(func(map[string]any) {}) + "{}", 400, "more than one"},
		{"fail/empty body", "", 400, "empty"},
		{"fail/body over limit", issue(func(m map[string]any) { m["common_name"] = strings.Repeat("a", 70<<10) }), 413, "over the limit"},
		{"fail/csr over 32 KiB", issue(func(m map[string]any) { m["csr"] = strings.Repeat("A", 40<<10) }), 413, "32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.certCount()
			code, eb := e.call("POST", "/v1/certificates", tt.body, nil)
			if code != tt.status {
				t.Fatalf("status %d, want %d (%+v)", code, tt.status, eb)
			}
			if !strings.Contains(eb.Error.Message, tt.want) {
				t.Errorf("message %q does not say %q", eb.Error.Message, tt.want)
			}
			if eb.Error.Code == "" {
				t.Error("no error code")
			}
			if after := e.certCount(); after != before {
				t.Errorf("a refused request recorded %d certificates", after-before)
			}
		})
	}
}

// TestEveryRouteDeclaresAnAction keeps a route from being added without
// saying which policy action guards it.
func TestEveryRouteDeclaresAnAction(t *testing.T) {
	seen := map[string]bool{}
	for _, rt := range api.Routes() {
		label := rt.Method + " " + rt.Path
		if seen[label] {
			t.Errorf("%s is declared twice", label)
		}
		seen[label] = true
		if rt.Public {
			if rt.Action != "" || rt.Resource != "" {
				t.Errorf("%s is public but declares an action", label)
			}
			if rt.Method != "GET" && rt.Audit == "" {
				t.Errorf("%s is public and changes state, but declares no Audit action", label)
			}
			continue
		}
		if rt.Audit != "" {
			t.Errorf("%s: Audit is for public routes; a guarded route is recorded under its Action", label)
		}
		svc, verb, found := strings.Cut(rt.Action, ":")
		if !found || svc == "" || verb == "" || strings.ContainsAny(rt.Action, "*/ ") {
			t.Errorf("%s: action %q is not of the form service:Verb", label, rt.Action)
		}
		if !slices.Contains(authz.Actions, rt.Action) {
			t.Errorf("%s: action %q is not in authz.Actions, so no policy could grant it", label, rt.Action)
		}
		if rt.Resource != "" && rt.Resource != "*" && !strings.Contains(rt.Resource, "/") {
			t.Errorf("%s: resource %q is not of the form kind/name", label, rt.Resource)
		}
	}
}
