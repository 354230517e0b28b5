package api_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/lifecycle"
)

// A managed certificate renewed by the control plane shows its successor
// in the inventory, for the same public key, and the newest of its line.
func TestManagedRenewalShowsSuccessor(t *testing.T) {
	e, clock := lifecycleEnv(t)
	events, err := lifecycle.New(lifecycle.Config{Store: e.st, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	m, err := lifecycle.NewManaged(lifecycle.ManagedConfig{Store: e.st, CA: e.ca, Events: events, RenewAt: 0.5, RenewJitter: 0.1, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	// A server-generated key: the consumer keeps the key it was handed
	// once, and renewals re-certify that key.
	var out apiv1.IssueResponse
	if code, eb := e.call("POST", "/v1/certificates", apiv1.IssueRequest{CA: "issuing", Profile: "server", CommonName: "svc-m.internal",
		Validity: "1h", Managed: true}, &out); code != 201 {
		t.Fatalf("issue: %d %+v", code, eb)
	}
	first := out.Certificate.Serial
	get := func(serial string) apiv1.CertificateDetail {
		t.Helper()
		var d apiv1.CertificateDetail
		if code, eb := e.call("GET", "/v1/certificates/"+serial, nil, &d); code != 200 {
			t.Fatalf("GET %s: %d %+v", serial, code, eb)
		}
		return d
	}
	if d := get(first); d.RenewedBy != "" || d.Latest != "" {
		t.Fatalf("a fresh certificate shows renewed_by %q latest %q", d.RenewedBy, d.Latest)
	}
	var line []string
	for range 2 {
		clock.Advance(40 * time.Minute) // past the middle of a one-hour life
		if n, err := m.RenewDue(context.Background()); err != nil || n != 1 {
			t.Fatalf("RenewDue = %d, %v; want 1", n, err)
		}
		prev := first
		if len(line) > 0 {
			prev = line[len(line)-1]
		}
		d := get(prev)
		if d.RenewedBy == "" {
			t.Fatalf("%s shows no renewed_by", prev)
		}
		line = append(line, d.RenewedBy)
	}
	d := get(first)
	if d.RenewedBy != line[0] || d.Latest != line[1] {
		t.Errorf("first: renewed_by %q latest %q, want %q and %q", d.RenewedBy, d.Latest, line[0], line[1])
	}
	last := get(line[1])
	if last.RenewedBy != "" || last.Latest != "" || !last.Managed {
		t.Errorf("newest: renewed_by %q latest %q managed %v", last.RenewedBy, last.Latest, last.Managed)
	}
	a, b := parsePEM(t, out.CertificatePEM), parsePEM(t, last.CertificatePEM)
	if !samePub(a, b) {
		t.Error("the renewal changed the key")
	}
}

func parsePEM(t *testing.T, s string) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode([]byte(s))
	if blk == nil {
		t.Fatal("no PEM")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func samePub(a, b *x509.Certificate) bool {
	return string(a.RawSubjectPublicKeyInfo) == string(b.RawSubjectPublicKeyInfo)
}
