package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/store"
)

// FuzzIssueRequest sends arbitrary bodies to POST /v1/certificates. The
// invariants: never a 5xx, every refusal is the JSON error envelope with a
// code and a message, and a refused request records nothing.
func FuzzIssueRequest(f *testing.F) {
	seeds := []string{
		`{"ca":"issuing","profile":"server","common_name":"a.internal","dns":["a.internal"]}`,
		`{"ca":"issuing","profile":"client","common_name":"svc","uri":["spiffe://x.internal/y"],"validity":"1h"}`,
		`{"ca":"issuing","profile":"server","dns":["*.a.internal"],"ip":["10.0.0.1","::1"],"key_type":"ed25519"}`,
		`{"ca":"issuing","profile":"subordinate-ca","common_name":"sub"}`,
		`{"ca":"issuing","profile":"server","validity":"-5d"}`,
		`{"ca":"issuing","profile":"server","dns":["a..b"]}`,
		`{"ca":1}`, `[]`, `null`, `{}`, `{"ca":"issuing"}{}`, "\x00\xff",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		e := fuzzEnv(t)
		before := e.count(t)
		req := httptest.NewRequest("POST", "/v1/certificates", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e.token)
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("5xx (%d) for %q: %s", rec.Code, body, rec.Body)
		}
		after := e.count(t)
		if rec.Code == http.StatusCreated {
			var res apiv1.IssueResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil || res.CertificatePEM == "" {
				t.Fatalf("201 without a certificate: %s", rec.Body)
			}
			if after != before+1 {
				t.Fatalf("201 but %d records added", after-before)
			}
			return
		}
		var eb apiv1.ErrorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
			t.Fatalf("%d without the error envelope: %s", rec.Code, rec.Body)
		}
		if after != before {
			t.Fatalf("refused request (%d) recorded %d certificates", rec.Code, after-before)
		}
	})
}

type fuzzState struct {
	h     http.Handler
	st    store.Store
	token string
}

var fuzzShared *fuzzState

// fuzzEnv builds one environment per fuzz process: CA creation is far
// slower than a fuzz iteration.
func fuzzEnv(t *testing.T) *fuzzState {
	if fuzzShared != nil {
		return fuzzShared
	}
	dir, err := os.MkdirTemp("", "trustgate-fuzz-")
	if err != nil {
		t.Fatal(err)
	}
	e := buildEnv(t, dir)
	e.mustCreateCA(apiv1.CreateCARequest{Name: "root"})
	e.mustCreateCA(apiv1.CreateCARequest{Name: "issuing", Parent: "root"})
	fuzzShared = &fuzzState{h: e.handler, st: e.st, token: e.token}
	return fuzzShared
}

func (f *fuzzState) count(t *testing.T) int64 {
	cas, err := f.st.ListCAs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, c := range cas {
		k, err := f.st.CountCertificates(context.Background(), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		n += k
	}
	return n
}
