package revocation

import (
	"bytes"
	"crypto"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/crypto/ocsp"
)

// ocspStatus returns the responseStatus of an OCSPResponse.
func ocspStatus(t testing.TB, der []byte) ocsp.ResponseStatus {
	t.Helper()
	var outer struct {
		Status asn1.Enumerated
		Rest   asn1.RawValue `asn1:"optional,explicit,tag:0"`
	}
	if rest, err := asn1.Unmarshal(der, &outer); err != nil || len(rest) != 0 {
		t.Fatalf("not an OCSPResponse: %v: %x", err, der)
	}
	return ocsp.ResponseStatus(outer.Status)
}

// TestOCSPBadInput: malformed, oversized and misdirected requests get the
// right OCSP status (HTTP 200) or a 4xx, never a 5xx.
func TestOCSPBadInput(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.issue(e.sub, "c.example")
	other := e.newCA("other", e.root, 0)
	foreign := e.issue(other, "f.example")
	srv := e.server()
	good := ocspRequestFor(t, c, e.sub.cert, crypto.SHA1)
	id := certIDOf(t, c, e.sub.cert, crypto.SHA1)

	withVersion := func(v int) []byte {
		var req ocspRequestASN1
		req.TBSRequest.Version = v
		req.TBSRequest.RequestList = []requestASN1{{id}}
		der, _ := asn1.Marshal(req)
		return der
	}
	badAlg := id
	badAlg.HashAlgorithm = pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 3}}
	md5 := id
	md5.HashAlgorithm = pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 5}, Parameters: asn1.NullRawValue}
	critical := pkix.Extension{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Critical: true, Value: []byte{5, 0}}
	nonCritical := pkix.Extension{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Value: []byte{5, 0}}
	rawNonce := pkix.Extension{Id: oidNonce, Value: bytes.Repeat([]byte{1}, 16)}
	many := make([]certIDASN1, maxCertIDs+1)
	for i := range many {
		many[i] = id
	}

	post := func(ct string, body []byte) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/ocsp/sub", bytes.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		return do(t, req)
	}
	for _, tc := range []struct {
		name string
		body []byte
		want ocsp.ResponseStatus
	}{
		{"ok/good", good, ocsp.Success},
		{"ok/version-0", withVersion(0), ocsp.Success},
		{"ok/non-critical-extension", buildRequest(t, []certIDASN1{id}, nonCritical), ocsp.Success},
		{"ok/nonce-1", buildRequest(t, []certIDASN1{id}, nonceExt(t, 1)), ocsp.Success},
		{"ok/nonce-32", buildRequest(t, []certIDASN1{id}, nonceExt(t, 32)), ocsp.Success},
		{"ok/max-certids", buildRequest(t, many[:maxCertIDs]), ocsp.Success},
		{"fail/empty", nil, ocsp.Malformed},
		{"fail/garbage", []byte("hello, world"), ocsp.Malformed},
		{"fail/truncated", good[:len(good)-1], ocsp.Malformed},
		{"fail/trailing", append(append([]byte{}, good...), 0), ocsp.Malformed},
		{"fail/oversized", bytes.Repeat([]byte{0x30}, maxRequestSize+1), ocsp.Malformed},
		{"fail/version-1", withVersion(1), ocsp.Malformed},
		{"fail/no-certids", buildRequest(t, nil), ocsp.Malformed},
		{"fail/too-many-certids", buildRequest(t, many), ocsp.Malformed},
		{"fail/nonce-0", buildRequest(t, []certIDASN1{id}, nonceExt(t, 0)), ocsp.Malformed},
		{"fail/nonce-33", buildRequest(t, []certIDASN1{id}, nonceExt(t, 33)), ocsp.Malformed},
		{"fail/nonce-not-octet-string", buildRequest(t, []certIDASN1{id}, rawNonce), ocsp.Malformed},
		{"fail/two-nonces", buildRequest(t, []certIDASN1{id}, nonceExt(t, 8), nonceExt(t, 8)), ocsp.Malformed},
		{"fail/critical-extension", buildRequest(t, []certIDASN1{id}, critical), ocsp.Malformed},
		{"fail/unknown-hash", buildRequest(t, []certIDASN1{badAlg}), ocsp.Unauthorized},
		{"fail/md5", buildRequest(t, []certIDASN1{md5}), ocsp.Unauthorized},
		{"fail/other-issuer", ocspRequestFor(t, foreign, other.cert, crypto.SHA1), ocsp.Unauthorized},
		{"fail/mixed-issuers", buildRequest(t, []certIDASN1{id, certIDOf(t, foreign, other.cert, crypto.SHA1)}), ocsp.Unauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := post("application/ocsp-request", tc.body)
			if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/ocsp-response" {
				t.Fatalf("%s %q", res.Status, res.Header.Get("Content-Type"))
			}
			if got := ocspStatus(t, body); got != tc.want {
				t.Errorf("status %d, want %d", got, tc.want)
			}
		})
	}

	for _, tc := range []struct {
		name, method, path, ctype string
		body                      []byte
		wantHTTP                  int
		wantOCSP                  ocsp.ResponseStatus
	}{
		{"fail/unknown-ca", "POST", "/ocsp/nope", "application/ocsp-request", good, 200, ocsp.Unauthorized},
		{"fail/unknown-ca-get", "GET", "/ocsp/nope/" + base64.StdEncoding.EncodeToString(good), "", nil, 200, ocsp.Unauthorized},
		// net/http refuses a path with a bad escape before the handler.
		{"fail/bad-ca-name", "POST", "/ocsp/%zz", "application/ocsp-request", good, 400, 0},
		{"fail/weird-ca-name", "POST", "/ocsp/a%20b", "application/ocsp-request", good, 200, ocsp.Unauthorized},
		{"fail/wrong-ca", "POST", "/ocsp/other", "application/ocsp-request", good, 200, ocsp.Unauthorized},
		{"fail/wrong-content-type", "POST", "/ocsp/sub", "text/plain", good, 415, 0},
		{"fail/no-content-type", "POST", "/ocsp/sub", "", good, 415, 0},
		{"ok/content-type-params", "POST", "/ocsp/sub", "application/ocsp-request; charset=binary", good, 200, ocsp.Success},
		{"fail/put", "PUT", "/ocsp/sub", "application/ocsp-request", good, 405, 0},
		{"fail/delete", "DELETE", "/ocsp/sub/x", "", nil, 405, 0},
		{"fail/post-subpath", "POST", "/ocsp/sub/x", "application/ocsp-request", good, 404, 0},
		{"fail/get-no-request", "GET", "/ocsp/sub", "", nil, 200, ocsp.Malformed},
		{"fail/get-empty-request", "GET", "/ocsp/sub/", "", nil, 200, ocsp.Malformed},
		{"fail/get-bad-base64", "GET", "/ocsp/sub/!!!!", "", nil, 200, ocsp.Malformed},
		{"fail/get-bad-escape", "GET", "/ocsp/sub/%zz", "", nil, 400, 0},
		{"fail/get-escaped-garbage", "GET", "/ocsp/sub/%00%01", "", nil, 200, ocsp.Malformed},
		{"fail/get-huge", "GET", "/ocsp/sub/" + strings.Repeat("A", 20000), "", nil, 200, ocsp.Malformed},
		{"ok/get-escaped", "GET", "/ocsp/sub/" + strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(base64.StdEncoding.EncodeToString(good)), "", nil, 200, ocsp.Success},
		{"ok/get-raw", "GET", "/ocsp/sub/" + base64.StdEncoding.EncodeToString(good), "", nil, 200, ocsp.Success},
		{"ok/get-unpadded", "GET", "/ocsp/sub/" + base64.RawStdEncoding.EncodeToString(good), "", nil, 200, ocsp.Success},
		{"ok/get-url-alphabet", "GET", "/ocsp/sub/" + base64.URLEncoding.EncodeToString(good), "", nil, 200, ocsp.Success},
		{"ok/by-id", "POST", "/ocsp/" + e.sub.id(), "application/ocsp-request", good, 200, ocsp.Success},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL, bytes.NewReader(tc.body))
			req.URL.Opaque = tc.path
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			res, body := do(t, req)
			if res.StatusCode != tc.wantHTTP {
				t.Fatalf("HTTP %s, want %d: %s", res.Status, tc.wantHTTP, body)
			}
			if tc.wantHTTP == 200 {
				if got := ocspStatus(t, body); got != tc.wantOCSP {
					t.Errorf("OCSP status %d, want %d", got, tc.wantOCSP)
				}
			}
		})
	}
}

// TestOCSPGetPathWithSlashes: base64 holding "/" and "+" unescaped, "//"
// included, reaches the handler intact (it reads the raw path).
func TestOCSPGetPathWithSlashes(t *testing.T) {
	e := newEnv(t, envOptions{})
	h := e.svc.Handler()
	tried := 0
	for i := 0; i < 400 && tried < 3; i++ {
		c := e.issue(e.sub, "c.example")
		enc := base64.StdEncoding.EncodeToString(ocspRequestFor(t, c, e.sub.cert, crypto.SHA1))
		if !strings.Contains(enc, "/") || !strings.Contains(enc, "+") {
			continue
		}
		tried++
		r := httptest.NewRequest(http.MethodGet, "http://x/ocsp/sub/"+enc, nil)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if _, err := ocsp.ParseResponseForCert(w.Body.Bytes(), c, e.sub.cert); err != nil {
			t.Errorf("GET %s: %v", enc, err)
		}
	}
	if tried == 0 {
		t.Skip("no request with both / and + in its base64")
	}
}
