package pki_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/pki/pkitest"
)

func needOpenSSL(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not on PATH")
	}
	return path
}

func runOpenSSL(t *testing.T, openssl string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, openssl, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %v: %v\n%s", args, err, out)
	}
	return out
}

// TestOpenSSLVerify checks that OpenSSL, an independent X.509
// implementation, accepts root -> intermediate -> leaf chains of every key
// type in strict mode (-x509_strict enforces RFC 5280 rules such as the
// presence of AKI and SKI) for both TLS purposes.
func TestOpenSSLVerify(t *testing.T) {
	openssl := needOpenSSL(t)
	for _, kt := range pki.KeyTypes() {
		t.Run("ok/"+string(kt), func(t *testing.T) {
			root := pkitest.New(t, pkitest.WithKeyType(kt))
			inter := root.Child(t, "Issuing CA")
			leaf, _ := inter.Leaf(t, pkitest.LeafOptions{CN: "api.trustgate.internal", DNS: []string{"localhost"}, IP: []string{"127.0.0.1"}})
			dir := t.TempDir()
			rootPath := pkitest.WriteFile(t, dir, "root.pem", root.CertPEM())
			chainPath := pkitest.WriteFile(t, dir, "chain.pem", pkitest.CertPEM(inter.Intermediates()...))
			leafPath := pkitest.WriteFile(t, dir, "leaf.pem", pkitest.CertPEM(leaf))
			for _, purpose := range []string{"sslserver", "sslclient"} {
				runOpenSSL(t, openssl, "verify", "-x509_strict", "-purpose", purpose,
					"-attime", strconv.FormatInt(inter.Now().Unix(), 10),
					"-CAfile", rootPath, "-untrusted", chainPath, leafPath)
			}
		})
	}
}

// TestParseCSROpenSSL feeds ParseCSR requests made by OpenSSL, in PEM and
// DER.
func TestParseCSROpenSSL(t *testing.T) {
	openssl := needOpenSSL(t)
	tests := map[string]struct {
		args []string
		want pki.KeyType
	}{
		"ok/ec-p256":  {[]string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"}, pki.ECP256},
		"ok/ec-p384":  {[]string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"}, pki.ECP384},
		"ok/rsa-2048": {[]string{"-newkey", "rsa:2048"}, pki.RSA2048},
		"ok/ed25519":  {[]string{"-newkey", "ed25519"}, pki.Ed25519},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			csrPath := filepath.Join(dir, "csr.pem")
			args := append([]string{"req", "-new"}, tt.args...)
			args = append(args, "-nodes", "-subj", "/CN=x", "-keyout", filepath.Join(dir, "key.pem"), "-out", csrPath)
			runOpenSSL(t, openssl, args...)
			derPath := filepath.Join(dir, "csr.der")
			runOpenSSL(t, openssl, "req", "-in", csrPath, "-outform", "DER", "-out", derPath)
			for _, path := range []string{csrPath, derPath} {
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				csr, err := pki.ParseCSR(data)
				if err != nil {
					t.Fatalf("ParseCSR(%s): %v", filepath.Base(path), err)
				}
				if got := keyTypeOf(t, csr.PublicKey); got != tt.want {
					t.Errorf("key type = %s, want %s", got, tt.want)
				}
				if csr.Subject.CommonName != "x" {
					t.Errorf("CN = %q, want x", csr.Subject.CommonName)
				}
			}
		})
	}
}

// TestCreateCSROpenSSL checks that OpenSSL verifies the CSRs CreateCSR
// makes.
func TestCreateCSROpenSSL(t *testing.T) {
	openssl := needOpenSSL(t)
	for _, kt := range pki.KeyTypes() {
		t.Run("ok/"+string(kt), func(t *testing.T) {
			der, err := pki.CreateCSR(mustSubject(t, "CN=Trustgate Issuing CA,O=Acme,C=US"), testKey(t, kt, 0))
			if err != nil {
				t.Fatal(err)
			}
			path := pkitest.WriteFile(t, t.TempDir(), "csr.der", der)
			runOpenSSL(t, openssl, "req", "-verify", "-noout", "-inform", "DER", "-in", path)
			if _, err := pki.ParseCSR(der); err != nil {
				t.Errorf("ParseCSR of our own CSR: %v", err)
			}
		})
	}
}

// TestTLSHandshake runs a mutual-TLS handshake over loopback with a server
// certificate and a client certificate from the same test PKI, the client
// verifying the server name and the server requiring and verifying the
// client certificate.
func TestTLSHandshake(t *testing.T) {
	for _, kt := range pki.KeyTypes() {
		t.Run("ok/"+string(kt), func(t *testing.T) {
			root := pkitest.New(t, pkitest.WithKeyType(kt))
			inter := root.Child(t, "Issuing CA")
			srvCert, srvKey := inter.Leaf(t, pkitest.LeafOptions{CN: "localhost", IP: []string{"127.0.0.1"}, ServerAuth: true})
			cliCert, cliKey := inter.Leaf(t, pkitest.LeafOptions{CN: "agent-1", URI: []string{"spiffe://trustgate.internal/agent/1"}, ClientAuth: true})

			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			serverCfg := &tls.Config{
				Certificates: []tls.Certificate{inter.TLSCertificate(srvCert, srvKey)},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    inter.RootPool(),
				Time:         inter.Now,
				MinVersion:   tls.VersionTLS12,
			}
			peer := make(chan *x509.Certificate, 1)
			serverErr := make(chan error, 1)
			go func() {
				conn, err := ln.Accept()
				if err != nil {
					serverErr <- err
					return
				}
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				tc := tls.Server(conn, serverCfg)
				if err := tc.Handshake(); err != nil {
					serverErr <- fmt.Errorf("server handshake: %w", err)
					return
				}
				peer <- tc.ConnectionState().PeerCertificates[0]
				serverErr <- nil
			}()

			conn, err := net.DialTimeout("tcp", ln.Addr().String(), 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			tc := tls.Client(conn, &tls.Config{
				Certificates: []tls.Certificate{inter.TLSCertificate(cliCert, cliKey)},
				RootCAs:      inter.RootPool(),
				ServerName:   "localhost",
				Time:         inter.Now,
				MinVersion:   tls.VersionTLS12,
			})
			if err := tc.Handshake(); err != nil {
				t.Fatalf("client handshake: %v", err)
			}
			if err := <-serverErr; err != nil {
				t.Fatal(err)
			}
			if got := <-peer; got.Subject.CommonName != "agent-1" {
				t.Errorf("server saw client %q, want agent-1", got.Subject.CommonName)
			}
			if got := tc.ConnectionState().PeerCertificates[0]; !got.Equal(srvCert) {
				t.Errorf("client saw another server certificate")
			}
		})
	}
}

// TestTLSHandshakeRejectsServerCertAsClient checks that the EKUs matter:
// a server-only certificate is refused as a client certificate.
func TestTLSHandshakeRejectsServerCertAsClient(t *testing.T) {
	ca := pkitest.New(t)
	leaf, _ := ca.Leaf(t, pkitest.LeafOptions{CN: "localhost", ServerAuth: true})
	_, err := leaf.Verify(ca.VerifyOptions(x509.ExtKeyUsageClientAuth))
	var inv x509.CertificateInvalidError
	if !errors.As(err, &inv) || inv.Reason != x509.IncompatibleUsage {
		t.Fatalf("Verify as client = %v, want IncompatibleUsage", err)
	}
}
