package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/trustgate/trustgate/internal/agent"
	"github.com/trustgate/trustgate/internal/config"
)

func newAgentCmd(g *globals) *cobra.Command {
	var (
		cfgFile, healthListen, logLevel string
		once                            bool
		c                               config.AgentCertificate
	)
	cmd := &cobra.Command{
		Use:   "agent (--config agent.yaml | --cn CN --cert-out F --key-out F [--token T]) [--once]",
		Short: "Keep certificates fresh: keys generated here, enrol with a bootstrap token, renew over mTLS",
		Long: `agent keeps one or more certificates of this host fresh (docs/agent.md). It
generates each key here (the key never leaves the host), enrols the first time
with a bootstrap token (trustgate token create), and then renews over mTLS
with the current certificate, with a new key each time, at --renew-at of the
lifetime (with jitter). Files are replaced atomically (key files mode 0600) and
--on-renew runs after each renewal. When the control plane is unreachable the
current files stay in place and the agent retries with capped exponential
backoff. When the output files already hold a valid certificate, no token is
needed. A revoked or expired certificate cannot be renewed; that needs a new
token.

The control plane's address and CA certificate come from TRUSTGATE_ADDR and
TRUSTGATE_CACERT (or --addr and --cacert), as for the other commands. With
--once, the agent obtains what is missing or due and exits (cron jobs, init
containers); otherwise it runs until SIGINT or SIGTERM.`,
		Example: `  trustgate agent --token "$TOKEN" --cn svc-a --dns svc-a.internal \
      --cert-out /etc/svc-a/cert.pem --key-out /etc/svc-a/key.pem --on-renew 'systemctl reload svc-a'
  trustgate agent --config /etc/trustgate/agent.yaml --health-listen 127.0.0.1:9901`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var spec config.Agent
			if cfgFile != "" {
				if c.CommonName != "" || c.CertFile != "" || c.KeyFile != "" || len(c.DNS)+len(c.URI)+len(c.IP) > 0 {
					return usageError{fmt.Errorf("give --config or the certificate flags (--cn, --cert-out, ...), not both")}
				}
				var err error
				if spec, err = config.LoadAgent(cfgFile, os.LookupEnv); err != nil {
					return usageError{err}
				}
			} else {
				if c.CommonName == "" || c.CertFile == "" || c.KeyFile == "" {
					return usageError{fmt.Errorf("give --config FILE, or --cn, --cert-out and --key-out (and --token for the first enrolment)")}
				}
				// The global --token is the bootstrap token here: the agent
				// never uses an API token.
				c.Token = g.token
				spec.Certificates = []config.AgentCertificate{c}
			}
			if spec.ControlPlane.Address == "" {
				spec.ControlPlane.Address = g.addr
			}
			if spec.ControlPlane.CAFile == "" {
				spec.ControlPlane.CAFile = g.cacert
			}
			if healthListen != "" {
				spec.HealthListen = healthListen
			}
			a, err := agent.New(agent.Config{Spec: spec, Logger: newLogger(cmd.ErrOrStderr(), logLevel, "text")})
			if err != nil {
				return usageError{err}
			}
			defer a.Close()
			if once {
				return a.RunOnce(cmd.Context())
			}
			return a.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgFile, "config", "", "agent configuration file (YAML) for one or more certificates")
	f.BoolVar(&once, "once", false, "obtain what is missing or due, then exit")
	f.StringVar(&healthListen, "health-listen", "", "serve /healthz and /metrics here, e.g. 127.0.0.1:9901")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&c.TokenFile, "token-file", "", "file holding the bootstrap token (instead of --token)")
	f.StringVar(&c.CommonName, "cn", "", "common name to enrol with (must match the token's name)")
	f.StringArrayVar(&c.DNS, "dns", nil, "DNS SAN to enrol with (repeatable)")
	f.StringArrayVar(&c.IP, "ip", nil, "IP SAN to enrol with (repeatable)")
	f.StringArrayVar(&c.URI, "uri", nil, "URI SAN to enrol with (repeatable)")
	f.StringVar(&c.Validity, "validity", "", "lifetime to enrol with, e.g. 24h (default: the token's or the profile's)")
	f.StringVar(&c.KeyType, "key-type", "", "type of the keys generated here (default ec-p256)")
	f.StringVar(&c.CertFile, "cert-out", "", "certificate file (certificate and intermediates)")
	f.StringVar(&c.KeyFile, "key-out", "", "private key file (mode 0600)")
	f.StringVar(&c.ChainFile, "chain-out", "", "CA chain file (up to the root)")
	f.StringVar(&c.BundleFile, "bundle-out", "", "key, certificate and intermediates in one file (mode 0600)")
	f.Float64Var(&c.RenewAt, "renew-at", config.DefaultAgentRenewAt, "renew after this fraction of the lifetime")
	f.StringVar(&c.OnRenew, "on-renew", "", "shell command to run after each renewal")
	f.StringVar(&c.PIDFile, "pid-file", "", "signal the process in this file after each renewal")
	f.StringVar(&c.ReloadSignal, "reload-signal", "", "signal for --pid-file: HUP (default), USR1, USR2, TERM, INT or QUIT")
	return cmd
}
