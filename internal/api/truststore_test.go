package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
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
	"github.com/trustgate/trustgate/internal/revocation"
	"github.com/trustgate/trustgate/internal/store/sqlite"
	"github.com/trustgate/trustgate/internal/truststore"
)

// newTrustEnv is newEnv with the revocation service running and the
// trust-store service wired to it, as the server assembles them.
func newTrustEnv(t *testing.T) *env {
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
	mk := make([]byte, 32)
	rand.Read(mk)
	sealer, _ := keystore.New(mk)
	var rev *revocation.Service
	casvc, err := ca.New(ca.Config{Store: st, Sealer: sealer, Linter: linter, PublicBaseURL: "http://pki.test",
		Revocations: ca.NotifyFunc(func(caID, serial string, at time.Time) { rev.Notify(caID, serial, at) })})
	if err != nil {
		t.Fatal(err)
	}
	rev, err = revocation.New(revocation.Config{Store: st, Keys: casvc, Responders: casvc, BaseURL: "http://pki.test", Coalesce: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); rev.Run(ctx) }()
	trust, err := truststore.New(truststore.Config{Store: st, CRLs: rev})
	if err != nil {
		t.Fatal(err)
	}
	access := authz.New(authz.Config{Store: st})
	if _, err := access.EnsureAdmin(context.Background(), "admin"); err != nil {
		t.Fatal(err)
	}
	tok, err := access.Tokens.Create(context.Background(), "admin", 0)
	if err != nil {
		t.Fatal(err)
	}
	h := api.New(api.Config{CA: casvc, Inventory: inventory.New(inventory.Config{Store: st}), TrustStores: trust, Auth: access,
		Authz: access, Audit: st, CAByID: st.GetCAByID, MaxBodyBytes: 64 << 10})
	e := &env{t: t, srv: httptest.NewTLSServer(h), handler: h, st: st, token: tok}
	t.Cleanup(func() { e.srv.Close(); cancel(); <-done; st.Close() })
	return e
}

// raw sends a request with extra headers and returns the status, headers
// and body as they came.
func (e *env) raw(method, path string, body []byte, hdr map[string]string) (int, http.Header, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.token)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, data
}

func partnerCRL(t *testing.T, ca *pkitest.CA, number int64, serials ...*big.Int) []byte {
	t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: time.Now().Add(time.Hour)}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: time.Now().Add(-time.Minute)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestTrustStoreFlow(t *testing.T) {
	e := newTrustEnv(t)
	e.mustCreateCA(apiv1.CreateCARequest{Name: "root"})
	e.mustCreateCA(apiv1.CreateCARequest{Name: "issuing", Parent: "root"})
	partner := pkitest.New(t, pkitest.WithName("Partner Root"), pkitest.WithNow(time.Now()))

	var ts apiv1.TrustStore
	if code, eb := e.call("POST", "/v1/truststores", apiv1.CreateTrustStoreRequest{Name: "partners", CAs: []string{"issuing"}}, &ts); code != 201 {
		t.Fatalf("create: %d %+v", code, eb)
	}
	if ts.Version != 1 || len(ts.CAs) != 1 || ts.CAs[0].Ref != "issuing" {
		t.Fatalf("created: %+v", ts)
	}
	steps := []struct {
		method, path string
		body         any
	}{
		{"POST", "/v1/truststores/partners/cas", apiv1.AddTrustStoreCARequest{CertificatePEM: string(partner.CertPEM())}},
		{"POST", "/v1/truststores/partners/crls", apiv1.AddTrustStoreCRLRequest{URL: "https://pki.partner.example/root.crl"}},
		{"POST", "/v1/truststores/partners/crls", apiv1.AddTrustStoreCRLRequest{CRLDER: partnerCRL(t, partner, 1)}},
		{"POST", "/v1/truststores/partners/crls", apiv1.AddTrustStoreCRLRequest{CRLPEM: string(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: partnerCRL(t, partner, 2)}))}},
	}
	for i, st := range steps {
		if code, eb := e.call(st.method, st.path, st.body, &ts); code != 200 || ts.Version != int64(i+2) {
			t.Fatalf("step %d (%s %s): %d %+v, version %d", i, st.method, st.path, code, eb, ts.Version)
		}
	}
	if len(ts.CAs) != 2 || len(ts.CRLs) != 2 || ts.CRLs[1].Number != "2" {
		t.Fatalf("after the steps (the second CRL replaces the first): %+v", ts)
	}
	var list apiv1.TrustStoreList
	if code, _ := e.call("GET", "/v1/truststores", nil, &list); code != 200 || len(list.TrustStores) != 1 || list.TrustStores[0].Version != 5 {
		t.Fatalf("list: %d %+v", code, list)
	}
	code, hdr, body := e.raw("GET", "/v1/truststores/partners/bundle", nil, nil)
	if code != 200 || hdr.Get("Content-Type") != "application/x-pem-file" || len(parsePEMCerts(t, string(body))) != 2 {
		t.Fatalf("bundle: %d %s\n%s", code, hdr.Get("Content-Type"), body)
	}

	// The snapshot, then 304 while nothing changes.
	code, hdr, body = e.raw("GET", "/v1/truststores/partners/snapshot", nil, nil)
	var snap apiv1.TrustStoreSnapshot
	if code != 200 || json.Unmarshal(body, &snap) != nil {
		t.Fatalf("snapshot: %d %s", code, body)
	}
	etag := hdr.Get("ETag")
	if etag == "" || etag != snap.ETag || snap.Version != 5 || len(snap.CACertificates) != 2 || len(snap.CRLs) != 2 || len(snap.CRLURLs) != 1 {
		t.Fatalf("snapshot: etag %q/%q, %+v", etag, snap.ETag, snap)
	}
	for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
		code, _, body = e.raw("GET", "/v1/truststores/partners/snapshot", nil, map[string]string{"If-None-Match": inm})
		if code != http.StatusNotModified || len(body) != 0 {
			t.Fatalf("If-None-Match %s: %d %q, want 304 and no body", inm, code, body)
		}
	}

	heldCRL, err := x509.ParseRevocationList(snap.CRLs[0])
	if err != nil {
		t.Fatal(err)
	}
	heldKey := hex.EncodeToString(heldCRL.AuthorityKeyId) + ":" + heldCRL.Number.String()
	held := heldKey + ":" + apiv1.DigestCRL(snap.CRLs[0]).String()

	// A revocation by the issuing CA reaches the snapshot by itself.
	var issued apiv1.IssueResponse
	if code, eb := e.call("POST", "/v1/certificates", apiv1.IssueRequest{CA: "issuing", Profile: "client", CommonName: "svc"}, &issued); code != 201 {
		t.Fatalf("issue: %+v", eb)
	}
	if code, eb := e.call("POST", "/v1/certificates/"+issued.Certificate.Serial+"/revoke", apiv1.RevokeRequest{Reason: "keyCompromise"}, nil); code != 200 {
		t.Fatalf("revoke: %+v", eb)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, hdr, body = e.raw("GET", "/v1/truststores/partners/snapshot", nil, map[string]string{"If-None-Match": etag})
		if code == 200 {
			break
		}
		if code != 304 || time.Now().After(deadline) {
			t.Fatalf("snapshot after a revocation: %d %s", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := json.Unmarshal(body, &snap); err != nil || hdr.Get("ETag") == etag || snap.Version != 5 {
		t.Fatalf("snapshot after a revocation: %v, etag %s, version %d", err, hdr.Get("ETag"), snap.Version)
	}
	crl, err := x509.ParseRevocationList(snap.CRLs[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(crl.RevokedCertificateEntries) != 1 || pki.SerialHex(crl.RevokedCertificateEntries[0].SerialNumber) != issued.Certificate.Serial {
		t.Fatalf("the issuing CA's CRL in the snapshot: %+v", crl.RevokedCertificateEntries)
	}
	// A gateway that holds the CRL from before: the revocation comes as a
	// delta CRL, under the same ETag; one that holds the current CRL is
	// told it is unchanged.
	var since apiv1.TrustStoreSnapshot
	code, dhdr, body := e.raw("GET", "/v1/truststores/partners/snapshot?have="+held, nil, nil)
	if code != 200 || json.Unmarshal(body, &since) != nil || dhdr.Get("ETag") != hdr.Get("ETag") {
		t.Fatalf("snapshot since the held CRL: %d, etag %s (want %s) %s", code, dhdr.Get("ETag"), hdr.Get("ETag"), body)
	}
	if len(since.DeltaCRLs) != 1 || len(since.CRLs) != 1 || len(since.UnchangedCRLs) != 0 {
		t.Fatalf("snapshot since the held CRL: %d deltas, %d CRLs (want the uploaded one), %d unchanged", len(since.DeltaCRLs), len(since.CRLs), len(since.UnchangedCRLs))
	}
	delta, err := x509.ParseRevocationList(since.DeltaCRLs[0])
	if err != nil || len(delta.RevokedCertificateEntries) != 1 || delta.Number.Cmp(crl.Number) != 0 {
		t.Fatalf("delta CRL: %v, %+v", err, delta)
	}
	currentKey := hex.EncodeToString(crl.AuthorityKeyId) + ":" + crl.Number.String()
	current := currentKey + ":" + apiv1.DigestCRL(snap.CRLs[0]).String()
	since = apiv1.TrustStoreSnapshot{}
	if code, _, body = e.raw("GET", "/v1/truststores/partners/snapshot?have="+current, nil, nil); code != 200 || json.Unmarshal(body, &since) != nil ||
		len(since.UnchangedCRLs) != 1 || since.UnchangedCRLs[0] != hex.EncodeToString(crl.AuthorityKeyId) || len(since.CRLs) != 1 || len(since.DeltaCRLs) != 0 || !since.HaveDigests {
		t.Fatalf("snapshot since the current CRL: %d %s", code, body)
	}
	// A CRL of the same number with other content (another digest: a
	// store restored from a backup handed the number out again), or one
	// named by number alone (a gateway from before digests): neither a
	// delta nor "unchanged", but the full CRL.
	other := strings.Repeat("5a", apiv1.CRLDigestSize)
	for _, have := range []string{heldKey + ":" + other, currentKey + ":" + other, heldKey, currentKey} {
		since = apiv1.TrustStoreSnapshot{}
		code, _, body = e.raw("GET", "/v1/truststores/partners/snapshot?have="+have, nil, nil)
		if code != 200 || json.Unmarshal(body, &since) != nil || len(since.DeltaCRLs) != 0 || len(since.UnchangedCRLs) != 0 ||
			len(since.CRLs) != 2 || !bytes.Equal(since.CRLs[0], snap.CRLs[0]) {
			t.Fatalf("have=%s: %d, %d deltas, %d unchanged, %d CRLs (want 2, the current full CRL first) %.200s", have, code, len(since.DeltaCRLs), len(since.UnchangedCRLs), len(since.CRLs), body)
		}
	}

	// A long poll: 304 after the wait while nothing changes...
	etag = hdr.Get("ETag")
	start := time.Now()
	if code, _, body = e.raw("GET", "/v1/truststores/partners/snapshot?wait=300ms", nil, map[string]string{"If-None-Match": etag}); code != 304 || time.Since(start) < 250*time.Millisecond {
		t.Fatalf("long poll of an unchanged store: %d %s after %s, want 304 after the wait", code, body, time.Since(start))
	}
	// ...and the new snapshot as soon as a revocation changes it.
	if code, eb := e.call("POST", "/v1/certificates", apiv1.IssueRequest{CA: "issuing", Profile: "client", CommonName: "svc2"}, &issued); code != 201 {
		t.Fatalf("issue: %+v", eb)
	}
	type answer struct {
		code int
		etag string
	}
	polled := make(chan answer, 1)
	go func() {
		code, hdr, _ := e.raw("GET", "/v1/truststores/partners/snapshot?wait=20s", nil, map[string]string{"If-None-Match": etag})
		polled <- answer{code, hdr.Get("ETag")}
	}()
	time.Sleep(100 * time.Millisecond) // let the long poll wait
	if code, eb := e.call("POST", "/v1/certificates/"+issued.Certificate.Serial+"/revoke", apiv1.RevokeRequest{Reason: "keyCompromise"}, nil); code != 200 {
		t.Fatalf("revoke: %+v", eb)
	}
	select {
	case a := <-polled:
		if a.code != 200 || a.etag == etag {
			t.Fatalf("long poll across a revocation: %d, etag %s (was %s)", a.code, a.etag, etag)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the long poll did not answer within 5 s of a revocation")
	}

	// Removals.
	if code, eb := e.call("DELETE", "/v1/truststores/partners/crls/"+ts.CRLs[0].ID, nil, &ts); code != 200 || len(ts.CRLs) != 1 {
		t.Fatalf("remove CRL: %d %+v", code, eb)
	}
	if code, eb := e.call("DELETE", "/v1/truststores/partners/cas/issuing", nil, &ts); code != 200 || len(ts.CAs) != 1 || ts.Version != 7 {
		t.Fatalf("remove CA: %d %+v %+v", code, eb, ts)
	}
}

func TestTrustStoreBadInput(t *testing.T) {
	e := newTrustEnv(t)
	e.mustCreateCA(apiv1.CreateCARequest{Name: "root"})
	if code, eb := e.call("POST", "/v1/truststores", apiv1.CreateTrustStoreRequest{Name: "ts"}, nil); code != 201 {
		t.Fatalf("create: %+v", eb)
	}
	stranger := pkitest.New(t, pkitest.WithName("Stranger"))
	bigCRL := `{"crl_pem":"` + strings.Repeat("A", 100<<10) + `"}`
	hugeCRL := `{"crl_der":"` + strings.Repeat("A", 25<<20) + `"}`
	tests := []struct {
		name, method, path string
		body               any
		status             int
		want               string
	}{
		{"fail/bad name", "POST", "/v1/truststores", apiv1.CreateTrustStoreRequest{Name: "Bad Name"}, 400, "lower-case"},
		{"fail/taken name", "POST", "/v1/truststores", apiv1.CreateTrustStoreRequest{Name: "ts"}, 409, "already exists"},
		{"fail/unknown CA", "POST", "/v1/truststores", apiv1.CreateTrustStoreRequest{Name: "x", CAs: []string{"nope"}}, 404, `CA "nope" does not exist`},
		{"fail/unknown field", "POST", "/v1/truststores", `{"name":"x","members":[]}`, 400, `unknown field "members"`},
		{"fail/unknown store", "GET", "/v1/truststores/nope", nil, 404, `trust store "nope" does not exist`},
		{"fail/unknown store snapshot", "GET", "/v1/truststores/nope/snapshot", nil, 404, "does not exist"},
		{"fail/empty store snapshot", "GET", "/v1/truststores/ts/snapshot", nil, 409, "no CA yet"},
		{"fail/wait not a duration", "GET", "/v1/truststores/ts/snapshot?wait=forever", nil, 400, `wait="forever": want a duration from 0s to 50s`},
		{"fail/wait negative", "GET", "/v1/truststores/ts/snapshot?wait=-1s", nil, 400, "want a duration"},
		{"fail/wait too long", "GET", "/v1/truststores/ts/snapshot?wait=51s", nil, 400, "want a duration"},
		{"fail/have not hex", "GET", "/v1/truststores/ts/snapshot?have=zz:1", nil, 400, "not 1 to 64 bytes in hex"},
		{"fail/have no number", "GET", "/v1/truststores/ts/snapshot?have=ab01", nil, 400, "is not <key id>:<CRL number>"},
		{"fail/have zero", "GET", "/v1/truststores/ts/snapshot?have=ab01:0", nil, 400, "not a positive integer"},
		{"fail/have short digest", "GET", "/v1/truststores/ts/snapshot?have=ab01:7:abcd", nil, 400, `have: digest "abcd" of key identifier ab01 is not 16 bytes in hex`},
		{"fail/have digest not hex", "GET", "/v1/truststores/ts/snapshot?have=ab01:7:" + strings.Repeat("zz", 16), nil, 400, "is not 16 bytes in hex"},
		{"fail/have empty digest", "GET", "/v1/truststores/ts/snapshot?have=ab01:7:", nil, 400, "is not 16 bytes in hex"},
		{"fail/have four fields", "GET", "/v1/truststores/ts/snapshot?have=ab01:7:" + strings.Repeat("ab", 16) + ":1", nil, 400, "is not <key id>:<CRL number> or <key id>:<CRL number>:<digest>"},
		{"fail/add-ca both", "POST", "/v1/truststores/ts/cas", apiv1.AddTrustStoreCARequest{CA: "root", CertificatePEM: "x"}, 400, "exactly one"},
		{"fail/add-ca malformed PEM", "POST", "/v1/truststores/ts/cas", apiv1.AddTrustStoreCARequest{CertificatePEM: "-----BEGIN CERTIFICATE-----\nnope\n"}, 400, "not PEM"},
		{"fail/add-ca body over limit", "POST", "/v1/truststores/ts/cas", `{"certificate_pem":"` + strings.Repeat("A", 70<<10) + `"}`, 413, "over the limit"},
		{"fail/remove unknown CA", "DELETE", "/v1/truststores/ts/cas/root", nil, 404, `has no CA "root"`},
		{"fail/crl unknown issuer", "POST", "/v1/truststores/ts/crls", apiv1.AddTrustStoreCRLRequest{CRLDER: partnerCRL(t, stranger, 1)}, 400, "is not a CA of trust store"},
		{"fail/crl bad url", "POST", "/v1/truststores/ts/crls", apiv1.AddTrustStoreCRLRequest{URL: "file:///etc/passwd"}, 400, "http:// or https://"},
		{"fail/crl not base64", "POST", "/v1/truststores/ts/crls", `{"crl_der":"***"}`, 400, "not valid base64"},
		// The CRL route allows more than the 64 KiB of the others...
		{"fail/crl over the general limit is parsed", "POST", "/v1/truststores/ts/crls", bigCRL, 400, "not PEM"},
		// ...up to its own limit.
		{"fail/crl over its limit", "POST", "/v1/truststores/ts/crls", hugeCRL, 413, "over the limit"},
		{"fail/remove unknown CRL", "DELETE", "/v1/truststores/ts/crls/nope", nil, 404, `has no CRL "nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, eb := e.call(tt.method, tt.path, tt.body, nil)
			if code != tt.status || !strings.Contains(eb.Error.Message, tt.want) {
				t.Fatalf("%d %q, want %d %q", code, eb.Error.Message, tt.status, tt.want)
			}
		})
	}
	var ts apiv1.TrustStore
	if code, _ := e.call("GET", "/v1/truststores/ts", nil, &ts); code != 200 || ts.Version != 1 {
		t.Fatalf("refused requests changed the store: version %d", ts.Version)
	}
}

// TestSnapshotOpenAPI: the OpenAPI document describes the snapshot's
// query parameters and its delta fields.
func TestSnapshotOpenAPI(t *testing.T) {
	b, err := json.Marshal(api.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"delta_crls"`, `"unchanged_crls"`, `"have_digests"`, `"name":"have"`, `"name":"wait"`, `\u003ckey id\u003e:\u003cCRL number\u003e:\u003cdigest\u003e`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the OpenAPI document lacks %s", want)
		}
	}
}
