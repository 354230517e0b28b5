package server

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/trustgate/trustgate/internal/atomicfile"
	"github.com/trustgate/trustgate/internal/ca"
	"github.com/trustgate/trustgate/internal/config"
	"github.com/trustgate/trustgate/internal/inventory"
	"github.com/trustgate/trustgate/internal/keystore"
)

// APICAName is the CA that `trustgate init` creates for the API's own TLS identity.
const APICAName = "trustgate-api"

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// Init prepares a data directory for production: directory (0700), master
// key file (unless cfg names one that exists), database with its canary,
// the API's TLS identity from its own CA, and an admin token, which it
// returns; only its hash is stored. An initialized store is refused.
func Init(ctx context.Context, cfg config.Server, opts Options) (adminToken string, err error) {
	cfg.Fill()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return "", fmt.Errorf("create data directory: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return "", fmt.Errorf("configuration: %w", err)
	}
	if kind, target, _ := cfg.StoreLocation(); kind == config.StoreSQLite && fileExists(target) {
		return "", fmt.Errorf("%s is already initialized (database %s exists)", cfg.DataDir, target)
	}
	if !fileExists(cfg.MasterKeyFile) {
		if err := keystore.CreateMasterKeyFile(cfg.MasterKeyFile); err != nil {
			return "", err
		}
	}
	opts.Create = true
	s, err := Open(ctx, cfg, opts)
	if err != nil {
		return "", err
	}
	defer s.Close()
	if _, err := s.CA.GetCA(ctx, APICAName); err == nil {
		return "", fmt.Errorf("the store is already initialized (CA %q exists)", APICAName)
	}
	if _, err := s.CA.CreateCA(ctx, ca.CreateRequest{Name: APICAName, Subject: "CN=Trustgate API CA"}); err != nil {
		return "", fmt.Errorf("create API CA: %w", err)
	}
	if err := s.EnsureAPIIdentity(ctx, APICAName, []string{"localhost"}, []string{"127.0.0.1", "::1"}); err != nil {
		return "", err
	}
	if _, err := s.Access.EnsureAdmin(ctx, BootstrapPrincipal); err != nil {
		return "", err
	}
	return s.Tokens.Create(ctx, BootstrapPrincipal, 0)
}

// EnsureAPIIdentity issues the API's server certificate from caName unless
// the files hold one that is valid for more than a third of its lifetime.
// It also writes api-ca.pem, the root that clients trust.
func (s *Server) EnsureAPIIdentity(ctx context.Context, caName string, dns, ips []string) error {
	certFile, keyFile := s.Config.API.TLSCert, s.Config.API.TLSKey
	if fresh(certFile, time.Now()) && fileExists(keyFile) {
		return nil
	}
	is, err := s.CA.Issue(ctx, ca.IssueRequest{CA: caName, Profile: "server", CommonName: dns[0], DNS: dns, IP: ips, Validity: "90d", Requester: "trustgate"})
	if err != nil {
		return fmt.Errorf("issue API certificate: %w", err)
	}
	keyPEM, err := inventory.EncodeKeyPEM(is.Key)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(keyFile, []byte(keyPEM), 0o600); err != nil {
		return err
	}
	// The served file is the leaf followed by its chain without the root.
	chain := append([][]byte{is.Cert.Raw}, is.Chain[:len(is.Chain)-1]...)
	if err := atomicfile.WriteFile(certFile, []byte(inventory.EncodePEM(chain...)), 0o644); err != nil {
		return err
	}
	root := is.Chain[len(is.Chain)-1]
	return atomicfile.WriteFile(filepath.Join(s.Config.DataDir, "api-ca.pem"), []byte(inventory.EncodePEM(root)), 0o644)
}

// fresh reports whether the PEM certificate at path is inside the first two
// thirds of its lifetime.
func fresh(path string, now time.Time) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return false
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return false
	}
	life := c.NotAfter.Sub(c.NotBefore)
	return now.Before(c.NotBefore.Add(life * 2 / 3))
}
