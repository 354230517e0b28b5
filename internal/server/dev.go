package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/trustgate/trustgate/internal/atomicfile"
	"github.com/trustgate/trustgate/internal/ca"
	"github.com/trustgate/trustgate/internal/config"
	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/inventory"
	"github.com/trustgate/trustgate/internal/keystore"
)

// The demo hierarchy `trustgate dev` creates on first start.
const (
	DemoRoot         = "demo-root"
	DemoIntermediate = "demo-intermediate"
)

// DevFiles are the paths `trustgate dev` writes under DIR/dev.
type DevFiles struct {
	Dir, Root, Chain, ServerCert, ServerKey, ClientCert, ClientKey, Token, Env string
}

func devFiles(dataDir string) DevFiles {
	d := filepath.Join(dataDir, "dev")
	return DevFiles{
		Dir: d, Root: filepath.Join(d, "root.pem"), Chain: filepath.Join(d, "chain.pem"),
		ServerCert: filepath.Join(d, "server.pem"), ServerKey: filepath.Join(d, "server.key"),
		ClientCert: filepath.Join(d, "client.pem"), ClientKey: filepath.Join(d, "client.key"),
		Token: filepath.Join(d, "admin.token"), Env: filepath.Join(d, "env.sh"),
	}
}

// DevConfig returns the all-in-one configuration for a data directory.
func DevConfig(dataDir, apiListen, publicListen string) config.Server {
	cfg := config.Default(dataDir)
	cfg.API.Listen = apiListen
	cfg.Public.Listen = publicListen
	cfg.Log.Format = "text"
	cfg.Fill()
	// The API serves the demo server certificate.
	f := devFiles(dataDir)
	cfg.API.TLSCert, cfg.API.TLSKey = f.ServerCert, f.ServerKey
	return cfg
}

// PrepareDev opens (creating on first start) the all-in-one data directory,
// creates the demo CAs unless they exist, and writes the demo files. It
// returns the opened server and the files written.
func PrepareDev(ctx context.Context, cfg config.Server, opts Options) (*Server, DevFiles, error) {
	f := devFiles(cfg.DataDir)
	if err := os.MkdirAll(f.Dir, 0o700); err != nil {
		return nil, f, fmt.Errorf("create %s: %w", f.Dir, err)
	}
	if !fileExists(cfg.MasterKeyFile) {
		if err := keystore.CreateMasterKeyFile(cfg.MasterKeyFile); err != nil {
			return nil, f, err
		}
	}
	opts.Create = true
	s, err := Open(ctx, cfg, opts)
	if err != nil {
		return nil, f, err
	}
	fail := func(err error) (*Server, DevFiles, error) { s.Close(); return nil, f, err }
	for _, c := range []ca.CreateRequest{
		{Name: DemoRoot, Subject: "CN=Trustgate Demo Root CA,O=Trustgate Demo"},
		{Name: DemoIntermediate, Parent: DemoRoot, Subject: "CN=Trustgate Demo Intermediate CA,O=Trustgate Demo"},
	} {
		if _, err := s.CA.GetCA(ctx, c.Name); err == nil {
			continue
		} else if !fault.Is(err, fault.NotFound) {
			return fail(err)
		}
		if _, err := s.CA.CreateCA(ctx, c); err != nil {
			return fail(fmt.Errorf("create %s: %w", c.Name, err))
		}
	}
	inter, err := s.CA.GetCA(ctx, DemoIntermediate)
	if err != nil {
		return fail(err)
	}
	chain, err := s.CA.Chain(ctx, inter)
	if err != nil {
		return fail(err)
	}
	if err := atomicfile.WriteFile(f.Root, []byte(inventory.EncodePEM(chain[len(chain)-1])), 0o644); err != nil {
		return fail(err)
	}
	if err := atomicfile.WriteFile(f.Chain, []byte(inventory.EncodePEM(chain...)), 0o644); err != nil {
		return fail(err)
	}
	now := time.Now()
	for _, leaf := range []struct {
		cert, key string
		req       ca.IssueRequest
	}{
		{f.ServerCert, f.ServerKey, ca.IssueRequest{CA: DemoIntermediate, Profile: "server", CommonName: "localhost",
			DNS: []string{"localhost"}, IP: []string{"127.0.0.1", "::1"}, Validity: "30d", Requester: "trustgate-dev"}},
		{f.ClientCert, f.ClientKey, ca.IssueRequest{CA: DemoIntermediate, Profile: "client", CommonName: "demo-client",
			URI: []string{"spiffe://demo.trustgate.local/client"}, Validity: "30d", Requester: "trustgate-dev"}},
	} {
		if fresh(leaf.cert, now) && fileExists(leaf.key) {
			continue
		}
		is, err := s.CA.Issue(ctx, leaf.req)
		if err != nil {
			return fail(fmt.Errorf("issue %s: %w", filepath.Base(leaf.cert), err))
		}
		keyPEM, err := inventory.EncodeKeyPEM(is.Key)
		if err != nil {
			return fail(err)
		}
		if err := atomicfile.WriteFile(leaf.key, []byte(keyPEM), 0o600); err != nil {
			return fail(err)
		}
		// Leaf then intermediate: what a TLS peer sends.
		if err := atomicfile.WriteFile(leaf.cert, []byte(inventory.EncodePEM(is.Cert.Raw, is.Chain[0])), 0o644); err != nil {
			return fail(err)
		}
	}
	if _, err := s.Access.EnsureAdmin(ctx, BootstrapPrincipal); err != nil {
		return fail(err)
	}
	tok := ""
	if b, err := os.ReadFile(f.Token); err == nil && s.Tokens.Valid(ctx, strings.TrimSpace(string(b))) {
		tok = strings.TrimSpace(string(b))
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fail(err)
	}
	if tok == "" {
		if tok, err = s.Tokens.Create(ctx, BootstrapPrincipal, 0); err != nil {
			return fail(err)
		}
		if err := atomicfile.WriteFile(f.Token, []byte(tok+"\n"), 0o600); err != nil {
			return fail(err)
		}
	}
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	env := fmt.Sprintf("export TRUSTGATE_ADDR=%s\nexport TRUSTGATE_TOKEN=%s\nexport TRUSTGATE_CACERT=%s\n",
		shellQuote("https://"+cfg.API.Listen), shellQuote(tok), shellQuote(abs(f.Root)))
	if err := atomicfile.WriteFile(f.Env, []byte(env), 0o600); err != nil {
		return fail(err)
	}
	return s, f, nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
