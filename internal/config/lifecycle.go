package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
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
	// RenewAt is the point of a managed certificate's lifetime at which
	// the control plane renews it, as a fraction ("0.66") or a percentage
	// ("66%"); empty means two thirds.
	RenewAt string `yaml:"renew_at"`
	// RenewJitter spreads managed renewals around RenewAt, as a fraction
	// or percentage of the lifetime (the whole spread, half before and
	// half after); empty means 10%, "0" means none.
	RenewJitter string `yaml:"renew_jitter"`
}

// RenewPoint parses RenewAt and RenewJitter. Zero values mean the
// defaults. The renewal point must lie strictly inside the lifetime, and
// with its jitter must stay inside it.
func (l Lifecycle) RenewPoint() (at, jitter float64, err error) {
	if at, err = fraction("lifecycle.renew_at", l.RenewAt); err != nil {
		return 0, 0, err
	}
	if jitter, err = fraction("lifecycle.renew_jitter", l.RenewJitter); err != nil {
		return 0, 0, err
	}
	switch {
	case strings.TrimSpace(l.RenewAt) != "" && (at <= 0 || at >= 1):
		return 0, 0, fmt.Errorf("lifecycle.renew_at %q must be above 0 and below 1 (100%%)", l.RenewAt)
	case jitter < 0 || jitter >= 1:
		return 0, 0, fmt.Errorf("lifecycle.renew_jitter %q must be at least 0 and below 1 (100%%)", l.RenewJitter)
	}
	eff, effJitter := at, jitter
	if strings.TrimSpace(l.RenewAt) == "" {
		eff = 2.0 / 3
	}
	if strings.TrimSpace(l.RenewJitter) == "" {
		effJitter = 0.1
	}
	if eff-effJitter/2 <= 0 || eff+effJitter/2 >= 1 {
		return 0, 0, fmt.Errorf("lifecycle.renew_at %.2f with renew_jitter %.2f would renew outside the lifetime", eff, effJitter)
	}
	if strings.TrimSpace(l.RenewJitter) == "" {
		jitter = -1 // the caller's default
	}
	return at, jitter, nil
}

// fraction parses "0.66" or "66%"; empty is 0.
func fraction(key, s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	div := 1.0
	if p, ok := strings.CutSuffix(s, "%"); ok {
		s, div = strings.TrimSpace(p), 100
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%s %q is not a fraction such as 0.66 or a percentage such as 66%%", key, s)
	}
	return f / div, nil
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
