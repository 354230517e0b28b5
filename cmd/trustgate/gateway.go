package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/trustgate/trustgate/internal/config"
	"github.com/trustgate/trustgate/internal/gateway"
)

func newGatewayCmd(g *globals) *cobra.Command {
	var cfgFile string
	cmd := &cobra.Command{
		Use:   "gateway --config FILE",
		Short: "Run the mTLS gateway: TLS listeners that verify client certificates and proxy to backends",
		Long: `gateway runs the listeners of a YAML configuration (docs/gateway.md): each
terminates TLS with its server certificate, handles client certificates in
mode off, passthrough or verify (against a CA bundle and CRLs, or a trust
store of the control plane polled through its API), and proxies requests by
host and path to HTTP(S) backends with the X-Amzn-Mtls-Clientcert-*
identity headers.

SIGHUP re-reads certificates, trust stores and CRLs and reopens log files;
files are also watched every second, and named trust stores polled every
control_plane.poll_interval. SIGINT and SIGTERM drain connections
for up to timeouts.shutdown, then stop.`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfgFile == "" {
				return usageError{fmt.Errorf("--config is required")}
			}
			// The gateway keeps little live heap, so the default GOGC makes the
			// collector run many times a second under load; trade some memory
			// for CPU unless the operator chose GOGC.
			if _, set := os.LookupEnv("GOGC"); !set {
				debug.SetGCPercent(400)
			}
			cfg, err := config.LoadGateway(cfgFile, nil)
			if err != nil {
				return usageError{err}
			}
			if err := cfg.Validate(); err != nil {
				return usageError{fmt.Errorf("configuration: %w", err)}
			}
			log := newLogger(cmd.ErrOrStderr(), cfg.Log.Level, cfg.Log.Format)
			ctx := cmd.Context()
			gw, err := gateway.New(ctx, gateway.Config{Spec: cfg, Logger: log})
			if err != nil {
				return err
			}
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for {
					select {
					case <-ctx.Done():
						return
					case <-hup:
						log.Info("SIGHUP: reloading")
						gw.Reload(ctx) // failures are logged; the previous state stays
					}
				}
			}()
			for _, l := range cfg.Listeners {
				log.Info("gateway listener", "listener", l.Name, "address", gw.Addr(l.Name).String(), "mtls_mode", l.MTLS.Mode)
			}
			if a := gw.MetricsAddr(); a != nil {
				log.Info("gateway metrics", "address", "http://"+a.String()+"/metrics")
			}
			return gw.Run(ctx)
		},
	}
	cmd.Flags().StringVar(&cfgFile, "config", "", "gateway configuration file (YAML); scalar top-level keys have TRUSTGATE_GATEWAY_* overrides")
	return cmd
}
