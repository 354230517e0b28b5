package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/trustgate/trustgate/internal/atomicfile"
	"github.com/trustgate/trustgate/internal/config"
	"github.com/trustgate/trustgate/internal/server"
)

func atomicWrite(path string, data []byte, mode os.FileMode) error {
	return atomicfile.WriteFile(path, data, mode)
}

// devConfig is the configuration of `trustgate dev`: the demo defaults,
// then the environment (env, or the process's when nil), then the flags.
func devConfig(dataDir, apiListen, publicListen string, env func(string) (string, bool)) (config.Server, error) {
	cfg := server.DevConfig(dataDir, apiListen, publicListen)
	if err := config.ApplyEnv(&cfg, env); err != nil {
		return cfg, err
	}
	cfg.DataDir, cfg.API.Listen, cfg.Public.Listen = dataDir, apiListen, publicListen
	return cfg, nil
}

func newDevCmd(g *globals) *cobra.Command {
	var dataDir, apiListen, publicListen, gatewayListen string
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run everything on this machine with a demo CA (SQLite, no other service)",
		Long: `dev starts the control plane on the embedded SQLite store in --data, creates the
demo root and intermediate CAs on first start (and reuses them afterwards),
issues a server and a client certificate, and writes into DIR/dev:
root.pem, chain.pem, server.pem, server.key, client.pem, client.key,
admin.token and env.sh. It also runs the mTLS gateway in verify mode on
--gateway-listen in front of a built-in echo backend that answers with the
identity headers it received. Stop it with Ctrl-C. TRUSTGATE_* environment
variables override configuration keys as for the server (docs/configuration.md),
except the data directory and the listen addresses, which the flags set.`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := devConfig(dataDir, apiListen, publicListen, nil)
			if err != nil {
				return usageError{err}
			}
			log := newLogger(cmd.ErrOrStderr(), cfg.Log.Level, cfg.Log.Format)
			s, files, err := server.PrepareDev(cmd.Context(), cfg, server.Options{Logger: log})
			if err != nil {
				return err
			}
			defer s.Close()
			out := cmd.OutOrStdout()
			return server.RunDev(cmd.Context(), s, files, gatewayListen, func(a server.DevAddrs) {
				fmt.Fprintf(out, `
Trustgate is running (Ctrl-C to stop).
  API:       https://%s   (GET /healthz, /v1/openapi.json)
  Public:    http://%s    (/ca/%s.pem, /crl/%s.crl, /ocsp/%s)
`, a.API, a.Public, server.DemoIntermediate, server.DemoIntermediate, server.DemoIntermediate)
				if a.Gateway != "" {
					fmt.Fprintf(out, "  Gateway:   https://%s   (mTLS verify, in front of an echo backend)\n", a.Gateway)
				}
				fmt.Fprintf(out, `  Files:     %s

Next, in another shell:
  source %s
  go run ./cmd/trustgate ca list
  curl --cacert "$TRUSTGATE_CACERT" -H "Authorization: Bearer $TRUSTGATE_TOKEN" "$TRUSTGATE_ADDR/v1/certificates"
`, files.Dir, files.Env)
				if a.Gateway != "" {
					fmt.Fprintf(out, "  curl --cacert %s --cert %s --key %s https://%s/\n", files.Root, files.ClientCert, files.ClientKey, a.Gateway)
				}
			})
		},
	}
	cmd.Flags().StringVar(&dataDir, "data", "./trustgate-data", "data directory")
	cmd.Flags().StringVar(&apiListen, "api-listen", "127.0.0.1:9443", "address of the HTTPS API")
	cmd.Flags().StringVar(&publicListen, "public-listen", "127.0.0.1:9080", "address of the public HTTP endpoints (CA certificates, CRLs, OCSP)")
	cmd.Flags().StringVar(&gatewayListen, "gateway-listen", "127.0.0.1:8443", "address of the demo mTLS gateway; empty disables it")
	return cmd
}

func newInitCmd(g *globals) *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a data directory for production: master key, database, API identity, admin token",
		Long: `init creates the data directory (0700), a master key file (32 random bytes, 0600)
unless TRUSTGATE_MASTER_KEY_FILE names an existing one, the database (SQLite
in DIR, or the PostgreSQL database of TRUSTGATE_STORE), the API's
TLS identity from its own CA (api.pem, api.key, api-ca.pem), and an admin API
token, printed once: only its hash is stored.`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dataDir == "" {
				return usageError{fmt.Errorf("--data is required")}
			}
			log := newLogger(cmd.ErrOrStderr(), "warn", "text")
			cfg := config.Default(dataDir)
			if err := config.ApplyEnv(&cfg, nil); err != nil {
				return usageError{err}
			}
			cfg.DataDir = dataDir
			tok, err := server.Init(cmd.Context(), cfg, server.Options{Logger: log})
			if err != nil {
				return err
			}
			if g.json() {
				return printJSON(cmd.OutOrStdout(), map[string]string{"data_dir": dataDir, "admin_token": tok,
					"ca_cert": filepath.Join(dataDir, "api-ca.pem")})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Initialized %s.\nAdmin token (shown once, store it now):\n\n  %s\n\nThe API's CA certificate: %s\n",
				dataDir, tok, filepath.Join(dataDir, "api-ca.pem"))
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data", "", "data directory to create")
	return cmd
}

func newServerCmd(g *globals) *cobra.Command {
	var cfgFile string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane from a YAML configuration (every key has a TRUSTGATE_* override)",
		Args:  argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(cfgFile, nil)
			if err != nil {
				return usageError{err}
			}
			if err := cfg.Validate(); err != nil {
				return usageError{fmt.Errorf("configuration: %w", err)}
			}
			log := newLogger(cmd.ErrOrStderr(), cfg.Log.Level, cfg.Log.Format)
			s, err := server.Open(cmd.Context(), cfg, server.Options{Logger: log})
			if err != nil {
				return err
			}
			defer s.Close()
			if _, err := s.CA.GetCA(cmd.Context(), server.APICAName); err == nil {
				if err := s.EnsureAPIIdentity(cmd.Context(), server.APICAName, []string{"localhost"}, []string{"127.0.0.1", "::1"}); err != nil {
					return err
				}
			}
			return s.Run(cmd.Context(), nil)
		},
	}
	cmd.Flags().StringVar(&cfgFile, "config", "", "YAML configuration file")
	return cmd
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  argsUsage(cobra.NoArgs),
		Run: func(cmd *cobra.Command, _ []string) {
			v := "devel"
			if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
				v = bi.Main.Version
			}
			fmt.Fprintln(cmd.OutOrStdout(), "trustgate", v)
		},
	}
}
