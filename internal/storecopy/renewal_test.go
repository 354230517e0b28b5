package storecopy

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/store"
	"github.com/trustgate/trustgate/internal/store/sqlite"
)

func openSQLite(t *testing.T, name string) *sqlite.DB {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// A copy keeps CA rotations and certificate renewals: without them,
// issuance through a rotated CA's name would go back to the old
// generation and managed renewal would renew again what it renewed.
func TestCopyKeepsRotationsAndRenewals(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	src, dst := openSQLite(t, "src.db"), openSQLite(t, "dst.db")
	for _, id := range []string{"ca-1", "ca-2"} {
		if err := src.CreateCA(ctx, &store.CA{ID: id, Name: id, State: store.CAActive, KeyType: "ec-p256", Subject: "CN=" + id,
			PathLen: -1, CertDER: []byte("cert:" + id), NotBefore: t0, NotAfter: t0.Add(time.Hour), CreatedAt: t0, UpdatedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	if err := src.SetCASuccessor(ctx, "ca-1", "ca-2", t0); err != nil {
		t.Fatal(err)
	}
	for _, serial := range []string{"a1", "a2"} {
		if err := src.InsertCertificate(ctx, &store.Certificate{Serial: serial, CAID: "ca-1", IssuerKey: "ca-1", Subject: "CN=x",
			Profile: "server", KeyType: "ec-p256", NotBefore: t0, NotAfter: t0.Add(time.Hour), Fingerprint: serial,
			Status: store.CertActive, DER: []byte(serial), Managed: true, CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := src.ClaimRenewal(ctx, "ca-1", "a1", t0, t0.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := src.SetSuccessor(ctx, "ca-1", "a1", "a2", t0); err != nil {
		t.Fatal(err)
	}
	rep, err := Copy(ctx, src, dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.CASuccessions != 1 || rep.Renewals != 1 {
		t.Errorf("report: %d rotations, %d renewals; want 1 and 1", rep.CASuccessions, rep.Renewals)
	}
	if got, err := dst.GetCASuccessor(ctx, "ca-1"); err != nil || got != "ca-2" {
		t.Errorf("copied CA successor = %q, %v", got, err)
	}
	if got, err := dst.GetSuccessor(ctx, "ca-1", "a1"); err != nil || got != "a2" {
		t.Errorf("copied certificate successor = %q, %v", got, err)
	}
}
