package keystore

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"encoding/pem"
	"github.com/youmark/pkcs8"
)

func newSealer(t *testing.T) *Sealer {
	t.Helper()
	k := make([]byte, MasterKeySize)
	rand.Read(k)
	s, err := New(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealRoundTrip(t *testing.T) {
	s := newSealer(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sealed, err := s.Seal("ca-1", key)
	if err != nil {
		t.Fatal(err)
	}
	// The sealed blob must not contain the private scalar.
	if bytes.Contains(sealed, key.D.Bytes()) {
		t.Fatal("sealed blob contains the private scalar")
	}
	got, err := s.Unseal("ca-1", sealed)
	if err != nil {
		t.Fatal(err)
	}
	if !key.Equal(got) {
		t.Fatal("unsealed key differs")
	}

	tests := []struct {
		name   string
		sealer *Sealer
		id     string
		blob   []byte
	}{
		{"fail/other ca id", s, "ca-2", sealed},
		{"fail/other master key", newSealer(t), "ca-1", sealed},
		{"fail/flipped byte", s, "ca-1", flip(sealed, len(sealed)-3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.sealer.Unseal(tt.id, tt.blob); !errors.Is(err, ErrWrongMasterKey) {
				t.Fatalf("err = %v, want ErrWrongMasterKey", err)
			}
		})
	}
	if _, err := s.Unseal("ca-1", sealed[:5]); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Fatalf("short blob: err = %v", err)
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 1
	return c
}

func TestCanary(t *testing.T) {
	s := newSealer(t)
	c, err := s.Canary()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.VerifyCanary(c); err != nil {
		t.Fatal(err)
	}
	if err := newSealer(t).VerifyCanary(c); !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("other key: %v", err)
	}
}

func TestMasterKeyFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "master.key")
	if err := CreateMasterKeyFile(p); err != nil {
		t.Fatal(err)
	}
	if err := CreateMasterKeyFile(p); err == nil {
		t.Fatal("overwrote an existing master key")
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %o", st.Mode().Perm())
	}
	k, err := LoadMasterKeyFile(p)
	if err != nil || len(k) != MasterKeySize {
		t.Fatalf("load: %v", err)
	}
	tests := []struct {
		name, want string
		prep       func(string)
	}{
		{"fail/missing", "does not exist", func(string) {}},
		{"fail/too short", "holds 3 bytes", func(p string) { os.WriteFile(p, []byte("abc"), 0o600) }},
		{"fail/world readable", "mode 0644", func(p string) { os.WriteFile(p, make([]byte, 32), 0o644) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "k")
			tt.prep(p)
			if _, err := LoadMasterKeyFile(p); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestExportEncryptedPEM(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := ExportEncryptedPEM(key, []byte("short")); err == nil {
		t.Fatal("short passphrase accepted")
	}
	out, err := ExportEncryptedPEM(key, []byte("correct horse battery"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(out)
	if blk == nil || blk.Type != "ENCRYPTED PRIVATE KEY" {
		t.Fatalf("bad PEM: %s", out)
	}
	back, err := pkcs8.ParsePKCS8PrivateKey(blk.Bytes, []byte("correct horse battery"))
	if err != nil || !key.Equal(back) {
		t.Fatalf("decrypt: %v", err)
	}
	if _, err := pkcs8.ParsePKCS8PrivateKey(blk.Bytes, []byte("wrong passphrase")); err == nil {
		t.Fatal("wrong passphrase opened the key")
	}
	// A real peer reads it.
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "k.pem")
	os.WriteFile(f, out, 0o600)
	cmd := exec.Command("openssl", "pkey", "-in", f, "-passin", "pass:correct horse battery", "-noout")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl pkey: %v\n%s", err, b)
	}
}
