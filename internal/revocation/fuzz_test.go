package revocation

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"

	"golang.org/x/crypto/ocsp"
)

// FuzzOCSPRequest sends arbitrary bodies to the OCSP responder. Invariants:
// the answer is always HTTP 200 with an OCSPResponse; a body the request
// parser refuses gets malformedRequest and nothing else does; a
// successful answer has one SingleResponse per CertID, echoes the nonce,
// and its signature verifies with a responder certificate of the CA.
func FuzzOCSPRequest(f *testing.F) {
	e := newEnv(f, envOptions{})
	good := e.issue(e.sub, "good.example")
	bad := e.issue(e.sub, "bad.example")
	e.revoke(e.sub, bad, 1)
	e.svc.flush(e.ctx)
	h := e.svc.Handler()

	idGood := certIDOf(f, good, e.sub.cert, crypto.SHA1)
	idBad := certIDOf(f, bad, e.sub.cert, crypto.SHA256)
	idUnknown := idGood
	idUnknown.SerialNumber = big.NewInt(7)
	for _, seed := range [][]byte{
		ocspRequestFor(f, good, e.sub.cert, crypto.SHA1),
		ocspRequestFor(f, bad, e.sub.cert, crypto.SHA256),
		buildRequest(f, []certIDASN1{idGood, idBad, idUnknown}),
		buildRequest(f, []certIDASN1{idGood}, nonceExt(f, 16)),
		buildRequest(f, []certIDASN1{idBad}, nonceExt(f, 33)),
		buildRequest(f, []certIDASN1{idGood}, pkix.Extension{Id: asn1.ObjectIdentifier{1, 2}, Critical: true}),
		{0x30, 0x03, 0x30, 0x01, 0x30},
		{0x30, 0x80, 0x00, 0x00},
		{},
	} {
		f.Add(seed)
	}

	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/ocsp/sub", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/ocsp-request")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/ocsp-response" {
			t.Fatalf("HTTP %d %q", w.Code, w.Header().Get("Content-Type"))
		}
		resp := w.Body.Bytes()
		status := ocspStatus(t, resp)
		var req ocspRequest
		parseErr := parseRequest(body, &req)
		if tooBig := len(body) > maxRequestSize; (parseErr != nil || tooBig) != (status == ocsp.Malformed) {
			t.Fatalf("parse error %v, size %d, but status %d", parseErr, len(body), status)
		}
		if status != ocsp.Success {
			if len(resp) != 5 {
				t.Fatalf("unsuccessful response of %d octets", len(resp))
			}
			return
		}
		basic := parseBasic(t, resp)
		if len(basic.TBSResponseData.Responses) != len(req.ids) {
			t.Fatalf("%d SingleResponses for %d CertIDs", len(basic.TBSResponseData.Responses), len(req.ids))
		}
		for i, sr := range basic.TBSResponseData.Responses {
			if !bytes.Equal(sr.CertID.FullBytes, req.ids[i].raw) {
				t.Fatalf("SingleResponse %d does not echo its CertID", i)
			}
		}
		if hasNonce := len(basic.TBSResponseData.Extensions) > 0; hasNonce != req.hasNonce {
			t.Fatalf("nonce in answer %v, in request %v", hasNonce, req.hasNonce)
		}
		if len(basic.Certificates) != 1 {
			t.Fatalf("%d certificates in the answer", len(basic.Certificates))
		}
		rc, err := x509.ParseCertificate(basic.Certificates[0].FullBytes)
		if err != nil {
			t.Fatal(err)
		}
		if err := rc.CheckSignatureFrom(e.sub.cert); err != nil {
			t.Fatalf("responder certificate: %v", err)
		}
		if err := rc.CheckSignature(x509.ECDSAWithSHA256, basic.TBSResponseData.Raw, basic.Signature.RightAlign()); err != nil {
			t.Fatalf("answer signature: %v", err)
		}
		if len(req.ids) == 1 {
			// x/crypto/ocsp reads single answers too.
			if _, err := ocsp.ParseResponse(resp, e.sub.cert); err != nil {
				t.Fatalf("x/crypto/ocsp: %v", err)
			}
		}
	})
}
