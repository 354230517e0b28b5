package server

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trustgate/trustgate/internal/ca"
	"github.com/trustgate/trustgate/internal/config"
	"github.com/trustgate/trustgate/internal/lifecycle"
	"github.com/trustgate/trustgate/internal/store"
)

// newLifecycle builds the lifecycle event service from the configuration:
// thresholds, and the webhooks with their secrets read from their files.
func newLifecycle(cfg config.Server, st store.Store, now func() time.Time, log *slog.Logger, reg prometheus.Registerer) (*lifecycle.Service, error) {
	thresholds, err := cfg.Lifecycle.Thresholds()
	if err != nil {
		return nil, err
	}
	var hooks []lifecycle.Webhook
	if f := cfg.Lifecycle.WebhooksFile; f != "" {
		specs, err := config.LoadWebhooks(f)
		if err != nil {
			return nil, err
		}
		for _, w := range specs {
			secret, err := os.ReadFile(w.SecretFile)
			if err != nil {
				return nil, fmt.Errorf("webhook %q: secret: %w", w.Name, err)
			}
			if secret = bytes.TrimSpace(secret); len(secret) < 16 {
				return nil, fmt.Errorf("webhook %q: the secret in %s is shorter than 16 bytes", w.Name, w.SecretFile)
			}
			hooks = append(hooks, lifecycle.Webhook{Name: w.Name, URL: w.URL, Secret: secret})
		}
	}
	return lifecycle.New(lifecycle.Config{
		Store: st, Webhooks: hooks, Thresholds: thresholds, ScanInterval: time.Duration(cfg.Lifecycle.ScanInterval),
		Now: now, Logger: log.With("component", "lifecycle"), Registerer: reg,
	})
}

// newManaged builds the managed renewer from the configuration.
func newManaged(cfg config.Server, st store.Store, casvc *ca.Service, events *lifecycle.Service, now func() time.Time, log *slog.Logger) (*lifecycle.Managed, error) {
	at, jitter, err := cfg.Lifecycle.RenewPoint()
	if err != nil {
		return nil, err
	}
	return lifecycle.NewManaged(lifecycle.ManagedConfig{
		Store: st, CA: casvc, Events: events, RenewAt: at, RenewJitter: jitter,
		Interval: time.Duration(cfg.Lifecycle.ScanInterval), Now: now, Logger: log.With("component", "managed-renewal"),
	})
}
