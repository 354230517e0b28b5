// Package config holds the YAML schema of `trustgate server`, its defaults,
// the environment-variable overrides (every key has one) and a pure
// Validate. Components take their own Config structs; cmd maps these onto them.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/trustgate/trustgate/internal/apiv1"
)

// EnvPrefix starts every environment override.
const EnvPrefix = "TRUSTGATE_"

// Duration is a time.Duration that reads "90s", "15m" and also "7d", "1y"
// (apiv1.ParseDuration).
type Duration time.Duration

// UnmarshalYAML reads a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := apiv1.ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Server is the configuration of the control plane.
type Server struct {
	// DataDir holds the database, the master key and the API's TLS identity.
	DataDir string `yaml:"data_dir"`
	// Store is "sqlite" (a file in DataDir), "sqlite:PATH", or a
	// PostgreSQL URL "postgres://user@host:5432/db" for several nodes.
	Store string `yaml:"store"`
	// MasterKeyFile is the 32-byte key that seals CA keys; default DataDir/master.key.
	MasterKeyFile string    `yaml:"master_key_file"`
	API           API       `yaml:"api"`
	Public        Public    `yaml:"public"`
	Issuance      Issue     `yaml:"issuance"`
	Revocation    Revoke    `yaml:"revocation"`
	Access        Access    `yaml:"access"`
	Lifecycle     Lifecycle `yaml:"lifecycle"`
	Log           Log       `yaml:"log"`
}

// Access holds access-control settings.
type Access struct {
	// IssuePerMinute and IssueBurst are each principal's token bucket for
	// issuance; 0 per minute turns the limit off.
	IssuePerMinute int `yaml:"issue_per_minute"`
	IssueBurst     int `yaml:"issue_burst"`
	// RevokePerMinute and RevokeBurst are the same for revocation.
	RevokePerMinute int `yaml:"revoke_per_minute"`
	RevokeBurst     int `yaml:"revoke_burst"`
	// OperatorCA names the CA whose client certificates log in to the API
	// as the principal with a matching identity; "" turns that off.
	OperatorCA string `yaml:"operator_ca"`
}

// API is the authenticated HTTPS API.
type API struct {
	// Listen is the address of the HTTPS API.
	Listen string `yaml:"listen"`
	// TLSCert and TLSKey are the API's certificate (with chain) and key;
	// default DataDir/api.pem and DataDir/api.key.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// MaxBodyBytes caps request bodies.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

// Public is the unauthenticated plain-HTTP listener for relying parties:
// CA certificates, CRLs, OCSP. Plain HTTP on purpose: a relying party must
// not need TLS (and so revocation data) to check revocation (RFC 5280 §4.2.1.13).
type Public struct {
	// Listen is the address of the public listener; empty disables it.
	Listen string `yaml:"listen"`
	// BaseURL is what issued certificates carry in CRL DP and AIA; default http://Listen.
	BaseURL string `yaml:"base_url"`
}

// Issue holds issuance settings.
type Issue struct {
	// Backdate moves NotBefore into the past to absorb clock skew.
	Backdate Duration `yaml:"backdate"`
}

// Revoke holds revocation publishing settings.
type Revoke struct {
	// CRLValidity is a CRL's nextUpdate - thisUpdate; a new CRL is
	// published at the latest at half of it, and within a second of a change.
	CRLValidity Duration `yaml:"crl_validity"`
	// OCSPValidity is an OCSP answer's nextUpdate - thisUpdate.
	OCSPValidity Duration `yaml:"ocsp_validity"`
	// KeepExpiredOnCRL keeps expired certificates on CRLs; by default they
	// leave after they expire (RFC 5280 §3.3).
	KeepExpiredOnCRL bool `yaml:"keep_expired_on_crl"`
}

// Log configures structured logs.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is json or text.
	Format string `yaml:"format"`
}

// Default returns the defaults for a data directory.
func Default(dataDir string) Server {
	return Server{
		DataDir:  dataDir,
		Store:    "sqlite",
		API:      API{Listen: "127.0.0.1:9443", MaxBodyBytes: 1 << 20},
		Public:   Public{Listen: "127.0.0.1:9080"},
		Issuance: Issue{Backdate: Duration(time.Minute)},
		Revocation: Revoke{
			CRLValidity:  Duration(7 * 24 * time.Hour),
			OCSPValidity: Duration(time.Hour),
		},
		Access: Access{IssuePerMinute: 60000, IssueBurst: 1000, RevokePerMinute: 6000, RevokeBurst: 100},
		Log:    Log{Level: "info", Format: "json"},
	}
}

// Load reads a YAML file (unknown keys are errors), then applies the
// environment, then fills derived defaults.
func Load(path string, env func(string) (string, bool)) (Server, error) {
	cfg := Default("./trustgate-data")
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("read config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := ApplyEnv(&cfg, env); err != nil {
		return cfg, err
	}
	cfg.Fill()
	return cfg, nil
}

// Fill sets the defaults that derive from other keys.
func (c *Server) Fill() {
	if c.MasterKeyFile == "" {
		c.MasterKeyFile = filepath.Join(c.DataDir, "master.key")
	}
	if c.API.TLSCert == "" {
		c.API.TLSCert = filepath.Join(c.DataDir, "api.pem")
	}
	if c.API.TLSKey == "" {
		c.API.TLSKey = filepath.Join(c.DataDir, "api.key")
	}
	if c.Public.BaseURL == "" && c.Public.Listen != "" {
		c.Public.BaseURL = "http://" + c.Public.Listen
	}
	if c.API.MaxBodyBytes == 0 {
		c.API.MaxBodyBytes = 1 << 20
	}
}

// Store kinds.
const (
	StoreSQLite   = "sqlite"
	StorePostgres = "postgres"
)

// StoreLocation returns the kind of store the Store setting names and its
// target: the SQLite file, or the PostgreSQL URL.
func (c *Server) StoreLocation() (kind, target string, err error) {
	switch {
	case c.Store == "" || c.Store == "sqlite":
		return StoreSQLite, filepath.Join(c.DataDir, "trustgate.db"), nil
	case strings.HasPrefix(c.Store, "sqlite:"):
		return StoreSQLite, strings.TrimPrefix(c.Store, "sqlite:"), nil
	case strings.HasPrefix(c.Store, "postgres://"), strings.HasPrefix(c.Store, "postgresql://"):
		return StorePostgres, c.Store, nil
	default:
		return "", "", fmt.Errorf("store %q is not supported: use sqlite, sqlite:PATH or postgres://", redactURL(c.Store))
	}
}

// redactURL hides a password in a store URL before it reaches a message.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			return u.String()
		}
	}
	return s
}

// Validate reports every problem with the configuration; it changes nothing.
func (c Server) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir is required"))
	}
	if _, _, err := c.StoreLocation(); err != nil {
		errs = append(errs, err)
	}
	if _, _, err := net.SplitHostPort(c.API.Listen); err != nil {
		errs = append(errs, fmt.Errorf("api.listen %q: %v", c.API.Listen, err))
	}
	if c.Public.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Public.Listen); err != nil {
			errs = append(errs, fmt.Errorf("public.listen %q: %v", c.Public.Listen, err))
		}
	}
	if c.Public.BaseURL == "" {
		errs = append(errs, errors.New("public.base_url is required when public.listen is empty: certificates carry CRL and AIA URLs"))
	} else {
		if u, err := url.Parse(c.Public.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("public.base_url %q must be an http:// URL", c.Public.BaseURL))
		}
	}
	for _, l := range []struct {
		key         string
		rate, burst int
	}{{"issue", c.Access.IssuePerMinute, c.Access.IssueBurst}, {"revoke", c.Access.RevokePerMinute, c.Access.RevokeBurst}} {
		if l.rate < 0 || (l.rate > 0 && l.burst < 1) {
			errs = append(errs, fmt.Errorf("access.%s_per_minute must be >= 0 and access.%s_burst >= 1 when it is set", l.key, l.key))
		}
	}
	if c.API.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("api.max_body_bytes %d is below 1024", c.API.MaxBodyBytes))
	}
	if c.Issuance.Backdate < 0 || time.Duration(c.Issuance.Backdate) > time.Hour {
		errs = append(errs, errors.New("issuance.backdate must be between 0 and 1h"))
	}
	if d := time.Duration(c.Revocation.CRLValidity); d < 10*time.Minute || d > 365*24*time.Hour {
		errs = append(errs, fmt.Errorf("revocation.crl_validity %s is outside 10m..365d", d))
	}
	if d := time.Duration(c.Revocation.OCSPValidity); d < time.Minute || d > 7*24*time.Hour {
		errs = append(errs, fmt.Errorf("revocation.ocsp_validity %s is outside 1m..7d", d))
	}
	if _, err := c.Lifecycle.Thresholds(); err != nil {
		errs = append(errs, err)
	}
	if _, _, err := c.Lifecycle.RenewPoint(); err != nil {
		errs = append(errs, err)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level %q is not one of debug, info, warn, error", c.Log.Level))
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		errs = append(errs, fmt.Errorf("log.format %q is not json or text", c.Log.Format))
	}
	return errors.Join(errs...)
}

// EnvVar is one environment override: the variable and the YAML key it sets.
type EnvVar struct {
	Name, Key string
}

// EnvVars lists every override, derived from the YAML keys: TRUSTGATE_ plus
// the key path in upper case joined by '_' (api.listen -> TRUSTGATE_API_LISTEN).
func EnvVars() []EnvVar {
	var out []EnvVar
	walk(reflect.ValueOf(&Server{}).Elem(), nil, func(path []string, _ reflect.Value) {
		out = append(out, EnvVar{Name: envName(path), Key: strings.Join(path, ".")})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func envName(path []string) string { return EnvPrefix + strings.ToUpper(strings.Join(path, "_")) }

func walk(v reflect.Value, path []string, fn func([]string, reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		p := append(append([]string{}, path...), tag)
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct {
			walk(fv, p, fn)
			continue
		}
		fn(p, fv)
	}
}

// ApplyEnv sets every key that has an environment variable.
func ApplyEnv(cfg *Server, env func(string) (string, bool)) error {
	if env == nil {
		env = os.LookupEnv
	}
	var errs []error
	walk(reflect.ValueOf(cfg).Elem(), nil, func(path []string, fv reflect.Value) {
		name := envName(path)
		val, ok := env(name)
		if !ok {
			return
		}
		if err := setField(fv, val); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	})
	return errors.Join(errs...)
}

func setField(fv reflect.Value, val string) error {
	switch fv.Interface().(type) {
	case Duration:
		d, err := apiv1.ParseDuration(val)
		if err != nil {
			return err
		}
		fv.Set(reflect.ValueOf(Duration(d)))
		return nil
	}
	switch fv.Kind() {
	case reflect.String:
		fv.SetString(val)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", val)
		}
		fv.SetInt(n)
	case reflect.Bool:
		b, err := strconv.ParseBool(val)
		if err != nil {
			return fmt.Errorf("%q is not a boolean", val)
		}
		fv.SetBool(b)
	default:
		return fmt.Errorf("unsupported kind %s", fv.Kind())
	}
	return nil
}
