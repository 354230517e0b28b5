package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/trustgate/trustgate/internal/apiv1"
)

// Lifecycle configures the control plane's lifecycle events: expiry
// thresholds and the webhooks events are delivered to.
type Lifecycle struct {
	// WebhooksFile is a YAML file listing the webhooks (name, url,
	// secret_file); empty means events are kept in the store's outbox
	// but sent nowhere.
	WebhooksFile string `yaml:"webhooks_file"`
	// ExpiryThresholds are comma-separated durations before notAfter at
	// which a certificate raises an event; empty means 30d,14d,7d,1d.
	ExpiryThresholds string `yaml:"expiry_thresholds"`
	// ScanInterval is how often certificates are checked against the
	// thresholds; zero means 1m.
	ScanInterval Duration `yaml:"scan_interval"`
}

// WebhookSpec is one entry of the webhooks file.
type WebhookSpec struct {
	// Name identifies the webhook in the outbox and in metrics.
	Name string `yaml:"name"`
	// URL receives each event as a signed JSON POST.
	URL string `yaml:"url"`
	// SecretFile holds the HMAC-SHA256 key the deliveries are signed with.
	SecretFile string `yaml:"secret_file"`
}

// Thresholds parses ExpiryThresholds; nil means the defaults.
func (l Lifecycle) Thresholds() ([]time.Duration, error) {
	if strings.TrimSpace(l.ExpiryThresholds) == "" {
		return nil, nil
	}
	var out []time.Duration
	for _, s := range strings.Split(l.ExpiryThresholds, ",") {
		d, err := apiv1.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("lifecycle.expiry_thresholds: %q: %w", s, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// LoadWebhooks reads a webhooks file: a YAML list of WebhookSpec. Each
// needs a name, an http(s) URL and a secret file.
func LoadWebhooks(path string) ([]WebhookSpec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read webhooks file: %w", err)
	}
	var out []WebhookSpec
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&out); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("webhooks file %s: %w", path, err)
	}
	var errs []error
	for i, w := range out {
		if w.Name == "" || w.SecretFile == "" || !(strings.HasPrefix(w.URL, "https://") || strings.HasPrefix(w.URL, "http://")) {
			errs = append(errs, fmt.Errorf("webhooks file %s: entry %d needs name, an http(s) url and secret_file", path, i))
		}
	}
	return out, errors.Join(errs...)
}
