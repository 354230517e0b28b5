package client

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a client certificate named cn and its key as PEM.
func selfSigned(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// TestClientCertificateFromFiles: the client presents the certificate of
// its files, picks up a renewed one at the next request (on a new
// connection), keeps the last good one while the files do not match, and
// says which files are missing when it has none.
func TestClientCertificateFromFiles(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"cn": r.TLS.PeerCertificates[0].Subject.CommonName})
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "server-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "c.key")
	c, err := New(Config{Addr: srv.URL, CACertFile: caFile, ClientCertFile: certFile, ClientKeyFile: keyFile})
	if err != nil {
		t.Fatalf("New before the files exist: %v", err)
	}
	stamp := time.Now().Add(-time.Hour)
	write := func(certPEM, keyPEM []byte) {
		t.Helper()
		// Each write gets a later modification time, as a renewal would.
		stamp = stamp.Add(time.Second)
		for _, f := range []struct {
			path string
			b    []byte
		}{{keyFile, keyPEM}, {certFile, certPEM}} {
			if err := os.WriteFile(f.path, f.b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(f.path, stamp, stamp); err != nil {
				t.Fatal(err)
			}
		}
	}
	gw1Cert, gw1Key := selfSigned(t, "gw-1")
	gw2Cert, gw2Key := selfSigned(t, "gw-1-renewed")
	_, otherKey := selfSigned(t, "other")

	tests := []struct {
		name    string
		setup   func()
		wantCN  string
		wantErr string
	}{
		{"fail/no files yet", func() {}, "", "client certificate"},
		{"ok/first certificate", func() { write(gw1Cert, gw1Key) }, "gw-1", ""},
		{"ok/unchanged", func() {}, "gw-1", ""},
		{"ok/renewed", func() { write(gw2Cert, gw2Key) }, "gw-1-renewed", ""},
		{"ok/mismatched pair keeps the last good one", func() { write(gw1Cert, otherKey) }, "gw-1-renewed", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.setup()
			var out struct{ CN string }
			err := c.Do(t.Context(), "GET", "/who", nil, &out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || out.CN != tt.wantCN {
				t.Fatalf("presented %q (%v), want %q", out.CN, err, tt.wantCN)
			}
		})
	}
}
