package api_test

import (
	"strings"
	"testing"

	"github.com/trustgate/trustgate/internal/apiv1"
)

func TestRevokeAndHold(t *testing.T) {
	e := newEnv(t)
	e.mustCreateCA(apiv1.CreateCARequest{Name: "root"})
	inter := e.mustCreateCA(apiv1.CreateCARequest{Name: "issuing", Parent: "root"})
	issue := func(cn string) string {
		t.Helper()
		var res apiv1.IssueResponse
		if code, eb := e.call("POST", "/v1/certificates", apiv1.IssueRequest{CA: "issuing", Profile: "client", CommonName: cn}, &res); code != 201 {
			t.Fatalf("issue: %+v", eb)
		}
		return res.Certificate.Serial
	}
	a, b := issue("a"), issue("b")

	var c apiv1.Certificate
	if code, eb := e.call("POST", "/v1/certificates/"+a+"/revoke", apiv1.RevokeRequest{Reason: "keyCompromise"}, &c); code != 200 {
		t.Fatalf("revoke: %d %+v", code, eb)
	}
	if c.Status != "revoked" || c.RevocationReason != "keyCompromise" || c.RevokedAt == nil {
		t.Fatalf("after revoke: %+v", c)
	}
	tests := []struct {
		name, path string
		body       any
		status     int
		want       string
	}{
		{"fail/again", "/v1/certificates/" + a + "/revoke", apiv1.RevokeRequest{Reason: "superseded"}, 409, "already revoked (reason keyCompromise, at "},
		{"fail/unknown serial", "/v1/certificates/0abc/revoke", nil, 404, "no certificate with serial abc"},
		{"fail/malformed serial", "/v1/certificates/xyz/revoke", nil, 400, "serial"},
		{"fail/unknown reason", "/v1/certificates/" + b + "/revoke", apiv1.RevokeRequest{Reason: "stolen"}, 400, "stolen"},
		{"fail/removeFromCRL is no reason", "/v1/certificates/" + b + "/revoke", apiv1.RevokeRequest{Reason: "removeFromCRL"}, 400, "removeFromCRL"},
		{"fail/unhold a final revocation", "/v1/certificates/" + a + "/unhold", nil, 409, "final"},
		{"fail/unhold an active certificate", "/v1/certificates/" + b + "/unhold", nil, 409, "not on hold"},
		{"fail/unknown field", "/v1/certificates/" + b + "/revoke", `{"reason":"superseded","why":"x"}`, 400, "why"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, eb := e.call("POST", tt.path, tt.body, nil)
			if code != tt.status || !strings.Contains(eb.Error.Message, tt.want) {
				t.Fatalf("%d %q, want %d %q", code, eb.Error.Message, tt.status, tt.want)
			}
		})
	}

	// Hold, release, hold again, then make it final.
	for _, step := range []struct {
		path, reason, status string
	}{
		{"revoke", "certificateHold", "revoked"},
		{"unhold", "", "active"},
		{"revoke", "certificateHold", "revoked"},
		{"revoke", "cessationOfOperation", "revoked"},
	} {
		var body any
		if step.reason != "" {
			body = apiv1.RevokeRequest{Reason: step.reason}
		}
		if code, eb := e.call("POST", "/v1/certificates/"+b+"/"+step.path, body, &c); code != 200 || c.Status != step.status {
			t.Fatalf("%s %s: %d %+v %+v", step.path, step.reason, code, eb, c)
		}
	}
	if c.RevocationReason != "cessationOfOperation" {
		t.Fatalf("hold made final: %+v", c)
	}
	var page apiv1.CertificateList
	e.call("GET", "/v1/certificates?status=revoked", nil, &page)
	if len(page.Certificates) != 2 {
		t.Fatalf("status=revoked lists %d", len(page.Certificates))
	}

	// Revoking the intermediate's certificate stops it issuing, for good.
	if code, eb := e.call("POST", "/v1/certificates/"+inter.Serial+"/revoke", apiv1.RevokeRequest{Reason: "cACompromise"}, nil); code != 200 {
		t.Fatalf("revoke intermediate: %+v", eb)
	}
	if code, eb := e.call("POST", "/v1/certificates", apiv1.IssueRequest{CA: "issuing", Profile: "client", CommonName: "c"}, nil); code != 409 || !strings.Contains(eb.Error.Message, "disabled") {
		t.Fatalf("issue from revoked intermediate: %d %+v", code, eb)
	}
	if code, eb := e.call("POST", "/v1/cas/issuing/enable", nil, nil); code != 409 || !strings.Contains(eb.Error.Message, "revoked") {
		t.Fatalf("enable revoked intermediate: %d %+v", code, eb)
	}
}
