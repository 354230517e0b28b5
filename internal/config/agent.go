package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/trustgate/trustgate/internal/apiv1"
)

// Agent is the configuration of `trustgate agent`: the control plane it
// talks to and the certificates it keeps fresh.
type Agent struct {
	// ControlPlane is where certificates come from. Its address and CA file
	// default to TRUSTGATE_ADDR and TRUSTGATE_CACERT, as for the CLI.
	ControlPlane AgentControlPlane `yaml:"control_plane"`
	// HealthListen serves /healthz and /metrics, e.g. 127.0.0.1:9901;
	// empty serves nothing.
	HealthListen string `yaml:"health_listen"`
	// Retry bounds the backoff after a failed attempt.
	Retry AgentRetry `yaml:"retry"`
	// Certificates are the certificates to keep fresh; at least one.
	Certificates []AgentCertificate `yaml:"certificates"`
}

// AgentControlPlane is the API the agent enrols and renews through.
type AgentControlPlane struct {
	// Address is the API's base URL, e.g. https://pki.internal:9443.
	Address string `yaml:"address"`
	// CAFile verifies the API's certificate; empty means the system roots.
	CAFile string `yaml:"ca_file"`
}

// AgentRetry is the capped exponential backoff, with jitter, between
// failed attempts. The agent keeps its current files meanwhile.
type AgentRetry struct {
	// Initial is the first wait; default 1s.
	Initial Duration `yaml:"initial"`
	// Max caps the wait; default 5m.
	Max Duration `yaml:"max"`
}

// AgentCertificate is one certificate the agent keeps fresh.
type AgentCertificate struct {
	// Name labels the certificate in logs, metrics and the health answer;
	// default the common name.
	Name string `yaml:"name"`
	// CommonName, DNS, IP and URI are what enrolment asks for; they must
	// stay within the bootstrap token's binding. Renewal keeps the
	// identity of the current certificate whatever these say.
	CommonName string   `yaml:"common_name"`
	DNS        []string `yaml:"dns"`
	IP         []string `yaml:"ip"`
	URI        []string `yaml:"uri"`
	// Validity asks for a lifetime at enrolment ("24h"); empty takes the
	// token's or the profile's. Renewals keep the current lifetime.
	Validity string `yaml:"validity"`
	// KeyType is the type of the keys generated on this host: ec-p256
	// (default), ec-p384, rsa-2048, rsa-3072, rsa-4096 or ed25519.
	KeyType string `yaml:"key_type"`
	// Token is a bootstrap token, or TokenFile a file holding one. It is
	// needed only when there is no valid certificate in the files yet (or
	// any more).
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	// CertFile receives the certificate followed by the intermediate CAs,
	// KeyFile the private key (mode 0600). Both are required.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ChainFile, when set, receives the CA chain up to the root.
	ChainFile string `yaml:"chain_file"`
	// BundleFile, when set, receives key, certificate and intermediates in
	// one file (mode 0600): the one file whose pair is consistent at every
	// instant, for readers that do not wait for the reload hook.
	BundleFile string `yaml:"bundle_file"`
	// RenewAt is the fraction of the lifetime after which the certificate
	// is renewed; default 0.66. The agent renews up to 5% of the lifetime
	// earlier, at random, so that a fleet does not renew in one burst.
	RenewAt float64 `yaml:"renew_at"`
	// OnRenew is a shell command run after each new certificate is written.
	OnRenew string `yaml:"on_renew"`
	// PIDFile names a process to send ReloadSignal (default HUP) to after
	// each new certificate is written.
	PIDFile      string `yaml:"pid_file"`
	ReloadSignal string `yaml:"reload_signal"`
}

// Defaults of the agent configuration.
const (
	DefaultAgentRenewAt      = 0.66
	DefaultAgentRetryInitial = time.Second
	DefaultAgentRetryMax     = 5 * time.Minute
)

// LoadAgent reads an agent configuration file, fills the control plane
// from TRUSTGATE_ADDR and TRUSTGATE_CACERT (through env) where the file
// leaves it empty, and applies the defaults. It does not validate.
func LoadAgent(path string, env func(string) (string, bool)) (Agent, error) {
	var cfg Agent
	if path == "" {
		return cfg, errors.New("an agent configuration file is required (--config)")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	cfg.ApplyEnv(env)
	cfg.ApplyDefaults()
	return cfg, nil
}

// ApplyEnv fills the control plane's address and CA file from
// TRUSTGATE_ADDR and TRUSTGATE_CACERT where they are empty.
func (a *Agent) ApplyEnv(env func(string) (string, bool)) {
	if env == nil {
		return
	}
	if v, ok := env(EnvPrefix + "ADDR"); ok && a.ControlPlane.Address == "" {
		a.ControlPlane.Address = v
	}
	if v, ok := env(EnvPrefix + "CACERT"); ok && a.ControlPlane.CAFile == "" {
		a.ControlPlane.CAFile = v
	}
}

// ApplyDefaults fills the zero fields that have defaults.
func (a *Agent) ApplyDefaults() {
	if a.Retry.Initial == 0 {
		a.Retry.Initial = Duration(DefaultAgentRetryInitial)
	}
	if a.Retry.Max == 0 {
		a.Retry.Max = Duration(DefaultAgentRetryMax)
	}
	for i := range a.Certificates {
		c := &a.Certificates[i]
		if c.Name == "" {
			c.Name = c.CommonName
		}
		if c.RenewAt == 0 {
			c.RenewAt = DefaultAgentRenewAt
		}
		if c.KeyType == "" {
			c.KeyType = "ec-p256"
		}
		if c.ReloadSignal == "" && c.PIDFile != "" {
			c.ReloadSignal = "HUP"
		}
	}
}

// AgentSignals are the signals a reload may send, by name.
var AgentSignals = []string{"HUP", "USR1", "USR2", "TERM", "INT", "QUIT"}

// Validate reports every problem of a, without changing it.
func (a Agent) Validate() error {
	var errs []error
	if a.ControlPlane.Address == "" {
		errs = append(errs, errors.New("control_plane.address is required (or TRUSTGATE_ADDR)"))
	}
	if a.Retry.Initial <= 0 || a.Retry.Max < a.Retry.Initial {
		errs = append(errs, fmt.Errorf("retry: initial %s must be positive and at most max %s", time.Duration(a.Retry.Initial), time.Duration(a.Retry.Max)))
	}
	if len(a.Certificates) == 0 {
		errs = append(errs, errors.New("certificates: at least one is required"))
	}
	names := map[string]bool{}
	files := map[string]string{}
	for i, c := range a.Certificates {
		p := fmt.Sprintf("certificates[%d]", i)
		if c.Name == "" {
			errs = append(errs, fmt.Errorf("%s: name or common_name is required", p))
		} else if names[c.Name] {
			errs = append(errs, fmt.Errorf("%s: name %q is used twice", p, c.Name))
		}
		names[c.Name] = true
		if c.CertFile == "" || c.KeyFile == "" {
			errs = append(errs, fmt.Errorf("%s: cert_file and key_file are required", p))
		}
		for _, f := range []string{c.CertFile, c.KeyFile, c.ChainFile, c.BundleFile} {
			if f == "" {
				continue
			}
			abs, _ := filepath.Abs(f)
			if other, ok := files[abs]; ok {
				errs = append(errs, fmt.Errorf("%s: file %s is also written by %s", p, f, other))
			}
			files[abs] = p
		}
		if c.Validity != "" {
			if _, err := apiv1.ParseDuration(c.Validity); err != nil {
				errs = append(errs, fmt.Errorf("%s: validity: %w", p, err))
			}
		}
		if c.RenewAt <= 0 || c.RenewAt >= 1 {
			errs = append(errs, fmt.Errorf("%s: renew_at %v must be between 0 and 1 (a fraction of the lifetime)", p, c.RenewAt))
		}
		if c.Token != "" && c.TokenFile != "" {
			errs = append(errs, fmt.Errorf("%s: give token or token_file, not both", p))
		}
		if c.ReloadSignal != "" {
			if c.PIDFile == "" {
				errs = append(errs, fmt.Errorf("%s: reload_signal needs pid_file", p))
			}
			known := false
			for _, s := range AgentSignals {
				known = known || s == c.ReloadSignal
			}
			if !known {
				errs = append(errs, fmt.Errorf("%s: reload_signal %q is not one of %v", p, c.ReloadSignal, AgentSignals))
			}
		}
	}
	return errors.Join(errs...)
}
