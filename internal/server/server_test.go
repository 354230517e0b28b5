package server

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/trustgate/trustgate/internal/ca"
	"github.com/trustgate/trustgate/internal/config"
	"github.com/trustgate/trustgate/internal/keystore"
	"github.com/trustgate/trustgate/internal/pki"
)

// syncBuffer collects logs from concurrent goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// secretForms returns byte strings that would betray a private key if found:
// its PKCS#8 DER, its PEM body, and its raw private scalar or seed.
func secretForms(t *testing.T, key crypto.Signer) [][]byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pemBody := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	lines := strings.Split(string(pemBody), "\n")
	forms := [][]byte{der, []byte(lines[1])}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		forms = append(forms, k.D.Bytes())
	case *rsa.PrivateKey:
		forms = append(forms, k.Primes[0].Bytes(), k.D.Bytes())
	case ed25519.PrivateKey:
		forms = append(forms, k.Seed())
	}
	return forms
}

func TestKeyMaterialNeverStoredOrLogged(t *testing.T) {
	dir := t.TempDir()
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := DevConfig(dir, "127.0.0.1:0", "")
	cfg.Public.BaseURL = "http://pki.test"
	s, files, err := PrepareDev(context.Background(), cfg, Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var secrets [][]byte
	for _, kt := range pki.KeyTypes() {
		name := "ca-" + string(kt)
		if _, err := s.CA.CreateCA(ctx, ca.CreateRequest{Name: name, KeyType: string(kt)}); err != nil {
			t.Fatal(err)
		}
		is, err := s.CA.Issue(ctx, ca.IssueRequest{CA: name, Profile: "client", CommonName: "leaf-" + string(kt), KeyType: string(kt)})
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, secretForms(t, is.Key)...)
	}
	// The CA keys themselves, unsealed here only to know what to look for.
	mk, err := keystore.LoadMasterKeyFile(cfg.MasterKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	sealer, _ := keystore.New(mk)
	cas, err := s.Store.ListCAs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cas {
		k, err := sealer.Unseal(c.ID, c.SealedKey)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, secretForms(t, k)...)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The admin token must not be stored either: only its hash.
	tok, _ := os.ReadFile(files.Token)
	secrets = append(secrets, bytes.TrimSpace(tok))

	var haystacks = map[string][]byte{"logs": logs.Bytes()}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.IsDir() || e.Name() == "master.key" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		haystacks[e.Name()] = b
	}
	if len(haystacks) < 2 {
		t.Fatalf("found no database files in %s", dir)
	}
	for where, hay := range haystacks {
		for i, sec := range secrets {
			if len(sec) >= 16 && bytes.Contains(hay, sec) {
				t.Errorf("secret %d found in %s", i, where)
			}
		}
	}
}

func TestMasterKeyChecks(t *testing.T) {
	dir := t.TempDir()
	cfg := DevConfig(dir, "127.0.0.1:0", "")
	cfg.Public.BaseURL = "http://pki.test"
	s, _, err := PrepareDev(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, dbPath, _ := cfg.StoreLocation()
	before := fileHash(t, dbPath)

	wrong := filepath.Join(t.TempDir(), "wrong.key")
	if err := keystore.CreateMasterKeyFile(wrong); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, keyFile, want string
	}{
		{"fail/wrong master key", wrong, "wrong master key"},
		{"fail/missing master key", filepath.Join(dir, "nope.key"), "does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg
			c.MasterKeyFile = tt.keyFile
			_, err := Open(context.Background(), c, Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if !errors.Is(err, keystore.ErrWrongMasterKey) && tt.want == "wrong master key" {
				t.Errorf("err does not wrap ErrWrongMasterKey: %v", err)
			}
			if fileHash(t, dbPath) != before {
				t.Fatal("a refused start modified the database")
			}
		})
	}
	// The right key still opens it.
	s, err = Open(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

func fileHash(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	tok, err := Init(context.Background(), configFor(dir, ""), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, "tgat_") {
		t.Fatalf("token %q", tok)
	}
	for f, mode := range map[string]os.FileMode{"": 0o700, "master.key": 0o600, "api.key": 0o600, "api.pem": 0o644, "api-ca.pem": 0o644} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s mode %o, want %o", f, st.Mode().Perm(), mode)
		}
	}
	if _, err := Init(context.Background(), configFor(dir, ""), Options{}); err == nil || !strings.Contains(err.Error(), "already initialized") {
		t.Fatalf("second init: %v", err)
	}
	cfg := configFor(dir, "")
	s, err := Open(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if p, err := s.Tokens.Authenticate(context.Background(), tok); err != nil || p != "admin" {
		t.Fatalf("admin token: %q %v", p, err)
	}
	// The API certificate chains to api-ca.pem and names localhost.
	certPEM, _ := os.ReadFile(cfg.API.TLSCert)
	rootPEM, _ := os.ReadFile(filepath.Join(dir, "api-ca.pem"))
	blk, _ := pem.Decode(certPEM)
	leaf, _ := x509.ParseCertificate(blk.Bytes)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(rootPEM)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost"}); err != nil {
		t.Fatal(err)
	}
	// A server pointed at an uninitialized directory refuses, creating nothing.
	empty := t.TempDir()
	keystore.CreateMasterKeyFile(filepath.Join(empty, "master.key"))
	if _, err := Open(context.Background(), configFor(empty, ""), Options{}); !errors.Is(err, ErrNotInitialized) {
		t.Fatalf("uninitialized: %v", err)
	}
	if ents, _ := os.ReadDir(empty); len(ents) != 1 {
		t.Fatalf("Open created files in an uninitialized directory: %v", ents)
	}
}

// configFor returns the default configuration of a data directory.
func configFor(dataDir, masterKeyFile string) config.Server {
	cfg := config.Default(dataDir)
	cfg.MasterKeyFile = masterKeyFile
	cfg.Fill()
	return cfg
}
