package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/store"
)

// tokenFixture returns a token whose hash is the SHA-256 of secret.
func tokenFixture(id, secret string) *store.Token {
	h := sha256.Sum256([]byte(secret))
	return &store.Token{
		ID:        id,
		Principal: "svc:" + id,
		Hash:      h[:],
		CreatedAt: t0,
		ExpiresAt: t0.Add(90 * 24 * time.Hour),
	}
}

// tokenCases checks CreateToken and GetTokenByHash.
func tokenCases() []testCase {
	roundTrip := func(mod func(tok *store.Token)) func(t *testing.T, s store.Store) {
		return func(t *testing.T, s store.Store) {
			tok := tokenFixture("tok-1", "secret")
			mod(tok)
			want := clone(tok)
			want.CreatedAt, want.ExpiresAt = inUTC(want.CreatedAt), inUTC(want.ExpiresAt)
			must(t, s.CreateToken(ctx(t), tok), "CreateToken")
			must(t, s.CreateToken(ctx(t), tokenFixture("tok-2", "other")), "CreateToken(other)")
			got, err := s.GetTokenByHash(ctx(t), tok.Hash)
			must(t, err, "GetTokenByHash")
			checkEqual(t, "GetTokenByHash", want, got)
		}
	}
	return []testCase{
		{"ok/expiring", roundTrip(func(tok *store.Token) {})},
		{"ok/never-expires", roundTrip(func(tok *store.Token) { tok.ExpiresAt = time.Time{} })},
		{"ok/revoked", roundTrip(func(tok *store.Token) { tok.Revoked = true })},
		{"ok/non-utc", roundTrip(func(tok *store.Token) {
			tok.CreatedAt = tok.CreatedAt.In(time.FixedZone("UTC+1", 3600))
		})},
		{"fail/missing", func(t *testing.T, s store.Store) {
			tok := tokenFixture("tok-1", "secret")
			must(t, s.CreateToken(ctx(t), tok), "CreateToken")
			other := sha256.Sum256([]byte("wrong"))
			for _, h := range [][]byte{other[:], tok.Hash[:16], nil} {
				_, err := s.GetTokenByHash(ctx(t), h)
				wantErr(t, err, store.ErrNotFound, "GetTokenByHash(%x)", h)
			}
		}},
		{"fail/duplicate-hash", func(t *testing.T, s store.Store) {
			must(t, s.CreateToken(ctx(t), tokenFixture("tok-1", "secret")), "CreateToken")
			wantErr(t, s.CreateToken(ctx(t), tokenFixture("tok-2", "secret")), store.ErrConflict, "CreateToken with a taken hash")
			got, err := s.GetTokenByHash(ctx(t), tokenFixture("", "secret").Hash)
			must(t, err, "GetTokenByHash")
			if got.ID != "tok-1" {
				t.Errorf("after a refused duplicate, the hash finds %q, want tok-1", got.ID)
			}
		}},
		{"fail/duplicate-id", func(t *testing.T, s store.Store) {
			must(t, s.CreateToken(ctx(t), tokenFixture("tok-1", "secret")), "CreateToken")
			wantErr(t, s.CreateToken(ctx(t), tokenFixture("tok-1", "other")), store.ErrConflict, "CreateToken with a taken ID")
			_, err := s.GetTokenByHash(ctx(t), tokenFixture("", "other").Hash)
			wantErr(t, err, store.ErrNotFound, "GetTokenByHash of the refused token")
		}},
	}
}

// metaCases checks GetMeta and PutMeta.
func metaCases() []testCase {
	return []testCase{
		{"ok/put-get", func(t *testing.T, s store.Store) {
			for key, val := range map[string][]byte{
				"crl/ca-1":     []byte("\x00\x01binary\xff"),
				"empty":        {},
				"key with ' ;": []byte("v"),
			} {
				must(t, s.PutMeta(ctx(t), key, val), "PutMeta(%q)", key)
				got, err := s.GetMeta(ctx(t), key)
				must(t, err, "GetMeta(%q)", key)
				if !bytes.Equal(got, val) {
					t.Errorf("GetMeta(%q) = %x, want %x", key, got, val)
				}
			}
		}},
		{"ok/replace", func(t *testing.T, s store.Store) {
			must(t, s.PutMeta(ctx(t), "k", []byte("one")), "PutMeta")
			must(t, s.PutMeta(ctx(t), "other", []byte("kept")), "PutMeta")
			must(t, s.PutMeta(ctx(t), "k", []byte("two, longer")), "PutMeta again")
			for key, want := range map[string]string{"k": "two, longer", "other": "kept"} {
				got, err := s.GetMeta(ctx(t), key)
				must(t, err, "GetMeta(%q)", key)
				if string(got) != want {
					t.Errorf("GetMeta(%q) = %q, want %q", key, got, want)
				}
			}
		}},
		{"fail/missing", func(t *testing.T, s store.Store) {
			must(t, s.PutMeta(ctx(t), "k", []byte("v")), "PutMeta")
			for _, key := range []string{"missing", "K", "k ", ""} {
				_, err := s.GetMeta(ctx(t), key)
				wantErr(t, err, store.ErrNotFound, "GetMeta(%q)", key)
			}
		}},
	}
}

// contextCases checks that a cancelled context fails every method and that
// the writes then leave nothing behind.
func contextCases() []testCase {
	cancelled := func() context.Context {
		c, cancel := context.WithCancel(context.Background())
		cancel()
		return c
	}
	// wantCanceled fails the test unless err wraps context.Canceled.
	wantCanceled := func(t *testing.T, err error, what string) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: err = %v, want one wrapping context.Canceled", what, err)
		}
	}
	return []testCase{
		{"fail/writes", func(t *testing.T, s store.Store) {
			ca := createCA(t, s, caFixture("ca-1", "one"))
			insertCert(t, s, certFixture(ca.ID, "01"))
			must(t, s.PutMeta(ctx(t), "k", []byte("before")), "PutMeta")

			wantCanceled(t, s.CreateCA(cancelled(), caFixture("ca-2", "two")), "CreateCA")
			upd := clone(ca)
			upd.State, upd.Subject = store.CADisabled, "CN=changed"
			wantCanceled(t, s.UpdateCA(cancelled(), upd), "UpdateCA")
			c := certFixture(ca.ID, "02")
			wantCanceled(t, s.InsertCertificate(cancelled(), c), "InsertCertificate")
			if c.Seq != 0 {
				t.Errorf("cancelled InsertCertificate set Seq to %d", c.Seq)
			}
			held := insertCert(t, s, certFixture(ca.ID, "03"))
			_, err := s.RevokeCertificate(ctx(t), ca.ID, held.Serial, store.ReasonCertificateHold, t0)
			must(t, err, "RevokeCertificate(hold)")
			_, err = s.RevokeCertificate(cancelled(), ca.ID, "01", 1, t0)
			wantCanceled(t, err, "RevokeCertificate")
			_, err = s.RevokeCertificate(cancelled(), ca.ID, held.Serial, 1, t0)
			wantCanceled(t, err, "RevokeCertificate(held)")
			_, err = s.ReleaseHold(cancelled(), ca.ID, held.Serial)
			wantCanceled(t, err, "ReleaseHold")
			_, err = s.NextCRLNumber(cancelled(), ca.ID, 0)
			wantCanceled(t, err, "NextCRLNumber")
			_, err = s.ReadCRL(cancelled(), store.CRLQuery{CAID: ca.ID, Partition: -1}, func(store.RevokedEntry) error {
				t.Error("ReadCRL with a cancelled context called fn")
				return nil
			}, func() bool { return true })
			wantCanceled(t, err, "ReadCRL")
			wantCanceled(t, s.CreateToken(cancelled(), tokenFixture("tok-1", "secret")), "CreateToken")
			wantCanceled(t, s.PutMeta(cancelled(), "k", []byte("after")), "PutMeta")
			wantCanceled(t, s.PutMeta(cancelled(), "new", []byte("x")), "PutMeta(new)")

			if _, err := s.GetCA(ctx(t), "two"); !store.IsNotFound(err) {
				t.Errorf("cancelled CreateCA left a CA (err = %v)", err)
			}
			got, err := s.GetCAByID(ctx(t), ca.ID)
			must(t, err, "GetCAByID")
			checkEqual(t, "CA after a cancelled UpdateCA", ca, got)
			c1, err := s.GetCertificateByCA(ctx(t), ca.ID, "01")
			if err != nil || c1.Status != store.CertActive {
				t.Errorf("certificate 01 after a cancelled RevokeCertificate: %+v, %v; want active", c1, err)
			}
			c3, err := s.GetCertificateByCA(ctx(t), ca.ID, held.Serial)
			if err != nil || c3.Status != store.CertRevoked || c3.Reason != store.ReasonCertificateHold {
				t.Errorf("held certificate after a cancelled RevokeCertificate and ReleaseHold: %+v, %v; want on hold", c3, err)
			}
			if n, err := s.NextCRLNumber(ctx(t), ca.ID, 0); err != nil || n != 1 {
				t.Errorf("NextCRLNumber after a cancelled call = %d, %v; want 1", n, err)
			}
			if _, err := s.GetCertificate(ctx(t), "02"); !store.IsNotFound(err) {
				t.Errorf("cancelled InsertCertificate left a certificate (err = %v)", err)
			}
			if n, err := s.CountCertificates(ctx(t), ca.ID); err != nil || n != 2 {
				t.Errorf("CountCertificates = %d, %v; want 2", n, err)
			}
			if _, err := s.GetTokenByHash(ctx(t), tokenFixture("", "secret").Hash); !store.IsNotFound(err) {
				t.Errorf("cancelled CreateToken left a token (err = %v)", err)
			}
			if v, err := s.GetMeta(ctx(t), "k"); err != nil || string(v) != "before" {
				t.Errorf("GetMeta(k) after a cancelled PutMeta = %q, %v; want before", v, err)
			}
			if _, err := s.GetMeta(ctx(t), "new"); !store.IsNotFound(err) {
				t.Errorf("cancelled PutMeta left a value (err = %v)", err)
			}
		}},
		{"fail/reads", func(t *testing.T, s store.Store) {
			ca := createCA(t, s, caFixture("ca-1", "one"))
			insertCert(t, s, certFixture(ca.ID, "01"))
			rev := certFixture(ca.ID, "02")
			rev.Status, rev.Reason, rev.RevokedAt = store.CertRevoked, 1, t0
			insertCert(t, s, rev)
			tok := tokenFixture("tok-1", "secret")
			must(t, s.CreateToken(ctx(t), tok), "CreateToken")
			must(t, s.PutMeta(ctx(t), "k", []byte("v")), "PutMeta")

			_, err := s.GetCA(cancelled(), ca.Name)
			wantCanceled(t, err, "GetCA")
			_, err = s.GetCAByID(cancelled(), ca.ID)
			wantCanceled(t, err, "GetCAByID")
			_, err = s.ListCAs(cancelled())
			wantCanceled(t, err, "ListCAs")
			_, err = s.GetCertificate(cancelled(), "01")
			wantCanceled(t, err, "GetCertificate")
			_, err = s.ListCertificates(cancelled(), store.CertFilter{Now: t0})
			wantCanceled(t, err, "ListCertificates")
			_, err = s.CountCertificates(cancelled(), ca.ID)
			wantCanceled(t, err, "CountCertificates")
			_, err = s.GetCertificateByCA(cancelled(), ca.ID, "01")
			wantCanceled(t, err, "GetCertificateByCA")
			called := false
			err = s.ListRevoked(cancelled(), ca.ID, -1, time.Time{}, func(store.RevokedEntry) error {
				called = true
				return nil
			})
			wantCanceled(t, err, "ListRevoked")
			if called {
				t.Error("ListRevoked with a cancelled context called fn")
			}
			_, err = s.GetTokenByHash(cancelled(), tok.Hash)
			wantCanceled(t, err, "GetTokenByHash")
			_, err = s.GetMeta(cancelled(), "k")
			wantCanceled(t, err, "GetMeta")
		}},
	}
}
