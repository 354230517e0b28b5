package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/trustgate/trustgate/internal/apiv1"
)

// GatewayEnvPrefix starts the environment overrides of `trustgate gateway`.
const GatewayEnvPrefix = EnvPrefix + "GATEWAY_"

// Gateway is the configuration of `trustgate gateway`: mTLS-terminating
// listeners, each with its routes to backends. See docs/gateway.md.
type Gateway struct {
	// Listeners are the TLS listeners; at least one.
	Listeners []GatewayListener `yaml:"listeners"`
	// MetricsListen is the plain-HTTP address of /metrics; empty disables it.
	MetricsListen string `yaml:"metrics_listen"`
	// ConnectionLog receives one JSON line per TLS connection: "stderr"
	// (default), "stdout", "off", or a file path (appended to, reopened on SIGHUP).
	ConnectionLog string `yaml:"connection_log"`
	// AccessLog receives one JSON line per request; same values as ConnectionLog.
	AccessLog string `yaml:"access_log"`
	// Log is the gateway's own log (errors, reloads), on stderr.
	Log Log `yaml:"log"`
	// Timeouts bound every client connection of every listener.
	Timeouts GatewayTimeouts `yaml:"timeouts"`
	// MaxHeaderBytes caps the request line and headers of a request.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// ControlPlane is how the gateway reaches the control plane's API, for
	// listeners whose trust store is named (trust_store.name), those that
	// follow the renewals of their certificate (certificate.follow_renewals)
	// and those whose certificate it issues (certificate.issue).
	ControlPlane GatewayControlPlane `yaml:"control_plane"`
}

// GatewayControlPlane is the control plane's API as the gateway uses it.
type GatewayControlPlane struct {
	// Address is the API's base URL, https://host:port.
	Address string `yaml:"address"`
	// TokenFile holds the API token the gateway presents, read at start.
	// The token is never logged. Either it or enroll is required for a
	// named trust store, follow_renewals or issue; with both, the gateway sends both and the API
	// logs it in with the token.
	TokenFile string `yaml:"token_file"`
	// Enroll, when any of its keys is set, gives the gateway its own
	// client certificate, presented on every connection to the API
	// (client-certificate login, access.operator_ca): enrolled with a
	// bootstrap token at the first start and renewed over mTLS, as the
	// agent does. It is used only while a listener names a trust store,
	// follows its certificate's renewals or has its certificate issued.
	Enroll GatewayEnroll `yaml:"enroll"`
	// CAFile is a PEM bundle that verifies the API's certificate; default
	// the system roots.
	CAFile string `yaml:"ca_file"`
	// PollInterval is how often each named trust store is polled; an
	// unchanged one costs a 304. Default 1s.
	PollInterval Duration `yaml:"poll_interval"`
	// SnapshotDir, when set, is a directory where the gateway keeps the
	// last good snapshot of each named trust store (NAME.snapshot.json,
	// checksummed), so that a gateway started while no control-plane node
	// answers enforces it. Empty keeps snapshots in memory only.
	SnapshotDir string `yaml:"snapshot_dir"`
	// MaxStaleness is how long a listener keeps enforcing a snapshot that
	// the control plane has not confirmed current (a poll that answered
	// the snapshot or 304): past it, the listener refuses every client
	// certificate (fails closed) until the control plane answers again.
	// Default 24h.
	MaxStaleness Duration `yaml:"max_staleness"`
	// LongPoll, when positive (at most 50s), makes each poll of a named
	// trust store a long poll: the control plane answers as soon as the
	// snapshot changes (a revocation, once the CA's CRL is published),
	// else with 304 after this long, and the gateway asks again at once.
	// poll_interval is then only the wait after a failed poll. 0 (the
	// default) polls every poll_interval.
	LongPoll Duration `yaml:"long_poll"`
}

// GatewayEnroll is the gateway's own client certificate for the API,
// kept fresh as the agent keeps a workload's (see AgentCertificate).
type GatewayEnroll struct {
	// TokenFile holds a bootstrap token (trustgate token create), needed
	// only while cert_file holds no valid certificate.
	TokenFile string `yaml:"token_file"`
	// CertFile and KeyFile receive the certificate and its key (generated
	// on the gateway, mode 0600). Both are required.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// CommonName is what enrolment asks for; it must be the token's name.
	// The principal the gateway logs in as has CN=<common_name> as its
	// identity.
	CommonName string `yaml:"common_name"`
	// KeyType is the type of the keys generated; default ec-p256.
	KeyType string `yaml:"key_type"`
	// Validity asks for a lifetime at enrolment ("24h"); empty takes the
	// token's or the profile's. The certificate is renewed after 66% of
	// its lifetime, as the agent's are by default.
	Validity string `yaml:"validity"`
}

// Enabled reports whether the section is in use: any of its keys is set.
func (e GatewayEnroll) Enabled() bool { return e != GatewayEnroll{} }

// Agent is the agent configuration that keeps e's certificate fresh
// through the control plane c.
func (e GatewayEnroll) Agent(c GatewayControlPlane) Agent {
	a := Agent{
		ControlPlane: AgentControlPlane{Address: c.Address, CAFile: c.CAFile},
		Certificates: []AgentCertificate{{Name: "gateway", CommonName: e.CommonName, TokenFile: e.TokenFile,
			CertFile: e.CertFile, KeyFile: e.KeyFile, KeyType: e.KeyType, Validity: e.Validity}},
	}
	a.ApplyDefaults()
	return a
}

// GatewayTimeouts are the client-side timeouts of the listeners.
type GatewayTimeouts struct {
	// ReadHeader bounds the TLS handshake and, separately, the reading of
	// a request's headers: a client that sends them slower is disconnected.
	ReadHeader Duration `yaml:"read_header"`
	// Read bounds the reading of a whole request, body included.
	Read Duration `yaml:"read"`
	// Write bounds the writing of a response, from the end of the request
	// headers; a route's backend timeout must not exceed it.
	Write Duration `yaml:"write"`
	// Idle closes a keep-alive connection that waits this long for a request.
	Idle Duration `yaml:"idle"`
	// Shutdown bounds the draining of connections on SIGINT/SIGTERM.
	Shutdown Duration `yaml:"shutdown"`
}

// GatewayListener is one TLS listener.
type GatewayListener struct {
	// Name identifies the listener in logs and metrics: [a-z0-9][a-z0-9_.-]*.
	Name string `yaml:"name"`
	// Address is host:port to listen on.
	Address string `yaml:"address"`
	// Certificate is the listener's server certificate.
	Certificate GatewayCertificate `yaml:"certificate"`
	// SecurityPolicy is "modern" (TLS 1.3 only) or "compatible" (TLS 1.2
	// and 1.3, ECDHE with AEAD ciphers only); default compatible.
	SecurityPolicy string `yaml:"security_policy"`
	// MTLS is how client certificates are handled.
	MTLS GatewayMTLS `yaml:"mtls"`
	// Routes map host and path prefix to backends; at least one.
	Routes []GatewayRoute `yaml:"routes"`
}

// GatewayCertificate names PEM files, re-read when they change and on SIGHUP.
type GatewayCertificate struct {
	// CertFile holds the certificate followed by its intermediates.
	CertFile string `yaml:"cert_file"`
	// KeyFile holds the private key (PKCS#8, PKCS#1 or SEC 1).
	KeyFile string `yaml:"key_file"`
	// FollowRenewals makes the gateway ask the control plane (section
	// control_plane), at start and every follow_interval, whether the
	// certificate it serves was renewed (managed renewal re-certifies the
	// same key); a successor for the key of key_file, verified, is written
	// to cert_file and served from the next handshake. The gateway's
	// principal needs cert:Read on the certificate's CA.
	FollowRenewals bool `yaml:"follow_renewals"`
	// FollowInterval is how often the control plane is asked, with
	// follow_renewals; default 5m.
	FollowInterval Duration `yaml:"follow_interval"`
	// Issue, when its ca is set, has the gateway obtain the certificate
	// itself: it generates the key (never sent anywhere), has a CSR for it
	// issued by the control plane (POST /v1/certificates, as the
	// gateway's principal, section control_plane), writes key_file (0600)
	// and cert_file, and renews the same way, with a new key, before
	// expiry. cert_file and key_file are then files the gateway writes. It
	// excludes follow_renewals.
	Issue GatewayIssue `yaml:"issue"`
}

// GatewayIssue is a listener certificate that the gateway has issued and
// renewed by the control plane, for a key it generates.
type GatewayIssue struct {
	// CA is the control plane's CA that issues the certificate; required.
	CA string `yaml:"ca"`
	// Profile is the issuance profile; default server.
	Profile string `yaml:"profile"`
	// CommonName, DNS and IP are the names asked for; at least one DNS
	// name or IP address, which TLS clients check. The certificate must
	// carry them all, or it is refused.
	CommonName string   `yaml:"common_name"`
	DNS        []string `yaml:"dns"`
	IP         []string `yaml:"ip"`
	// KeyType is the type of the keys generated: ec-p256 (default),
	// ec-p384, rsa-2048, rsa-3072, rsa-4096 or ed25519.
	KeyType string `yaml:"key_type"`
	// Validity is the lifetime asked for ("30d"); empty takes the
	// profile's default.
	Validity string `yaml:"validity"`
	// RenewAt is the fraction of the lifetime after which the certificate
	// is renewed; default 0.66, brought forward at random by up to 5% of
	// the lifetime so that gateways started together do not renew
	// together.
	RenewAt float64 `yaml:"renew_at"`
}

// Enabled reports whether the listener's certificate is issued by the
// control plane at the gateway's request.
func (i GatewayIssue) Enabled() bool { return i.CA != "" }

// DefaultIssueProfile is the profile of listener certificates issued at
// the gateway's request unless issue.profile says otherwise.
const DefaultIssueProfile = "server"

// IssueKeyTypes are the key types a gateway generates for its listeners
// (as the agent's key_type).
var IssueKeyTypes = []string{"ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096", "ed25519"}

// The mTLS modes, as AWS ALB's.
const (
	MTLSOff         = "off"
	MTLSPassthrough = "passthrough"
	MTLSVerify      = "verify"
)

// GatewayMTLS configures client certificates on a listener.
type GatewayMTLS struct {
	// Mode is required: "off" (no client certificate), "passthrough"
	// (requested, not verified, forwarded) or "verify" (required and verified).
	Mode string `yaml:"mode"`
	// TrustStore is what verify mode checks against; verify mode only.
	TrustStore GatewayTrustStore `yaml:"trust_store"`
	// IgnoreClientCertificateExpiry accepts expired leaf certificates (verify mode).
	IgnoreClientCertificateExpiry bool `yaml:"ignore_client_certificate_expiry"`
	// AdvertiseCANames sends the trust store's subjects in the TLS
	// CertificateRequest (verify mode); otherwise the list is empty.
	AdvertiseCANames bool `yaml:"advertise_ca_names"`
	// MaxChainDepth caps the certificates of a client chain, leaf and root
	// included; default 4.
	MaxChainDepth int `yaml:"max_chain_depth"`
	// MaxCertSize caps each client certificate in DER bytes; default 16384.
	MaxCertSize int `yaml:"max_cert_size"`
	// Headers selects the identity headers sent to backends: "alb"
	// (X-Amzn-Mtls-Clientcert-*, default), "xfcc" (X-Forwarded-Client-Cert)
	// or "both". Passthrough mode supports alb only.
	Headers string `yaml:"headers"`
}

// GatewayTrustStore is a CA bundle and its revocation sources: files and
// URLs, or a trust store of the control plane by name.
type GatewayTrustStore struct {
	// Name is a trust store of the control plane (see control_plane),
	// fetched with its revocations at start and polled for changes. It
	// excludes ca_file, crl_files and crl_urls; crl_refresh applies to the
	// CRL URLs the store lists, stale_crl_policy to every CRL.
	Name string `yaml:"name"`
	// CAFile is a PEM bundle of the CA certificates (roots or
	// intermediates) that client chains must lead to.
	CAFile string `yaml:"ca_file"`
	// CRLFiles are CRLs in DER or PEM, re-read when they change.
	CRLFiles []string `yaml:"crl_files"`
	// CRLURLs are CRLs fetched over HTTP(S) at start, then every
	// CRLRefresh and before their nextUpdate.
	CRLURLs []string `yaml:"crl_urls"`
	// CRLRefresh is the longest time between two fetches of a CRL URL; default 5m.
	CRLRefresh Duration `yaml:"crl_refresh"`
	// StaleCRLPolicy is what happens to certificates whose issuer's CRL is
	// past its nextUpdate: "fail-closed" (default, rejected with
	// ClientCertCrlExpired) or "fail-open" (accepted, logged and counted).
	StaleCRLPolicy string `yaml:"stale_crl_policy"`
}

// The stale-CRL policies.
const (
	StaleCRLFailClosed = "fail-closed"
	StaleCRLFailOpen   = "fail-open"
)

// The identity header sets.
const (
	HeadersALB  = "alb"
	HeadersXFCC = "xfcc"
	HeadersBoth = "both"
)

// The security policies.
const (
	PolicyModern     = "modern"
	PolicyCompatible = "compatible"
)

// GatewayRoute sends requests that match Host and PathPrefix to Backend.
// The most specific route wins: an exact host before a wildcard host
// before any host, then the longest path prefix.
type GatewayRoute struct {
	// Name identifies the route in logs and metrics; default Host+PathPrefix
	// ("*" for any host).
	Name string `yaml:"name"`
	// Host is an exact host name, "*.suffix", or empty for any host.
	Host string `yaml:"host"`
	// PathPrefix matches whole path segments ("/api" matches "/api" and
	// "/api/x", not "/apix"); default "/".
	PathPrefix string         `yaml:"path_prefix"`
	Backend    GatewayBackend `yaml:"backend"`
	// Allow restricts the route to some verified client identities (verify
	// mode only); empty allows every verified client.
	Allow GatewayAllow `yaml:"allow"`
}

// GatewayBackend is where a route's requests go.
type GatewayBackend struct {
	// URL is http:// or https://host[:port][/base-path].
	URL string `yaml:"url"`
	// CAFile verifies an https backend's certificate; default the system roots.
	CAFile string `yaml:"ca_file"`
	// ClientCertFile and ClientKeyFile are the gateway's own certificate for
	// mTLS to an https backend; re-read when they change.
	ClientCertFile string `yaml:"client_cert_file"`
	ClientKeyFile  string `yaml:"client_key_file"`
	// Timeout bounds a whole exchange with the backend, response body
	// included; default 30s. Past it the client gets 504.
	Timeout Duration `yaml:"timeout"`
}

// GatewayAllow lists the client identities a route accepts. Each non-empty
// list is a condition that one of its entries must meet, and all
// conditions must hold.
type GatewayAllow struct {
	// Subjects are exact RFC 2253 subject DNs, as in X-Amzn-Mtls-Clientcert-Subject.
	Subjects []string `yaml:"subjects"`
	// Issuers are exact RFC 2253 issuer DNs, as in X-Amzn-Mtls-Clientcert-Issuer.
	Issuers []string `yaml:"issuers"`
	// DNS are SAN DNS names, exact or "*.suffix" (any name under suffix).
	DNS []string `yaml:"dns"`
	// URIPrefixes are prefixes of SAN URIs, such as "spiffe://prod.internal/ns/payments/".
	URIPrefixes []string `yaml:"uri_prefixes"`
}

// Empty reports whether the rules allow every verified client.
func (a GatewayAllow) Empty() bool {
	return len(a.Subjects) == 0 && len(a.Issuers) == 0 && len(a.DNS) == 0 && len(a.URIPrefixes) == 0
}

// LoadGateway reads a YAML file (unknown keys are errors), applies the
// environment overrides of the scalar top-level keys (GatewayEnvVars), then
// the defaults. It does not validate: call Validate.
func LoadGateway(path string, env func(string) (string, bool)) (Gateway, error) {
	var cfg Gateway
	if path == "" {
		return cfg, errors.New("a gateway configuration file is required (--config)")
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
	if err := ApplyGatewayEnv(&cfg, env); err != nil {
		return cfg, err
	}
	cfg.ApplyDefaults()
	return cfg, nil
}

// ApplyDefaults fills every key left empty with its default. It is the one
// place defaults live, and is idempotent. It copies the listener and route
// slices before filling them, so a caller's configuration is not changed
// through shared slices.
func (g *Gateway) ApplyDefaults() {
	if g.ConnectionLog == "" {
		g.ConnectionLog = "stderr"
	}
	if g.AccessLog == "" {
		g.AccessLog = "stderr"
	}
	if g.Log.Level == "" {
		g.Log.Level = "info"
	}
	if g.Log.Format == "" {
		g.Log.Format = "json"
	}
	setDur := func(d *Duration, def time.Duration) {
		if *d == 0 {
			*d = Duration(def)
		}
	}
	setDur(&g.Timeouts.ReadHeader, 10*time.Second)
	setDur(&g.Timeouts.Read, 60*time.Second)
	setDur(&g.Timeouts.Write, 60*time.Second)
	setDur(&g.Timeouts.Idle, 120*time.Second)
	setDur(&g.Timeouts.Shutdown, 30*time.Second)
	if g.MaxHeaderBytes == 0 {
		g.MaxHeaderBytes = 64 << 10
	}
	setDur(&g.ControlPlane.PollInterval, time.Second)
	setDur(&g.ControlPlane.MaxStaleness, 24*time.Hour)
	g.Listeners = append([]GatewayListener(nil), g.Listeners...)
	for i := range g.Listeners {
		l := &g.Listeners[i]
		if l.SecurityPolicy == "" {
			l.SecurityPolicy = PolicyCompatible
		}
		if l.Certificate.FollowRenewals && l.Certificate.FollowInterval == 0 {
			l.Certificate.FollowInterval = Duration(5 * time.Minute)
		}
		if is := &l.Certificate.Issue; is.Enabled() {
			is.DNS = append([]string(nil), is.DNS...)
			is.IP = append([]string(nil), is.IP...)
			if is.Profile == "" {
				is.Profile = DefaultIssueProfile
			}
			if is.KeyType == "" {
				is.KeyType = "ec-p256"
			}
			if is.RenewAt == 0 {
				is.RenewAt = DefaultAgentRenewAt
			}
		}
		m := &l.MTLS
		if m.MaxChainDepth == 0 {
			m.MaxChainDepth = 4
		}
		if m.MaxCertSize == 0 {
			m.MaxCertSize = 16 << 10
		}
		if m.Headers == "" {
			m.Headers = HeadersALB
		}
		if m.Mode == MTLSVerify {
			setDur(&m.TrustStore.CRLRefresh, 5*time.Minute)
			if m.TrustStore.StaleCRLPolicy == "" {
				m.TrustStore.StaleCRLPolicy = StaleCRLFailClosed
			}
		}
		l.Routes = append([]GatewayRoute(nil), l.Routes...)
		for j := range l.Routes {
			r := &l.Routes[j]
			if r.PathPrefix == "" {
				r.PathPrefix = "/"
			}
			r.Host = strings.ToLower(r.Host)
			if r.Name == "" {
				h := r.Host
				if h == "" {
					h = "*"
				}
				r.Name = h + r.PathPrefix
			}
			setDur(&r.Backend.Timeout, 30*time.Second)
		}
	}
}

var (
	listenerNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)
	// trustStoreNameRE is the rule of trust-store (and CA) names.
	trustStoreNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	hostLabelRE      = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	profileNameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
)

// Validate reports every problem with the configuration, each with its
// YAML path; it changes nothing. It checks the configuration alone: files
// are read when the gateway starts.
func (g Gateway) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if len(g.Listeners) == 0 {
		add("listeners", "at least one listener is required")
	}
	addrs := map[string]string{}
	checkAddr := func(p, addr string) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			add(p, "%q is not host:port: %v", addr, err)
			return
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			add(p, "%q: bad port", addr)
			return
		}
		if port != "0" {
			key := host + ":" + port
			if prev, ok := addrs[key]; ok {
				add(p, "%q is also the address of %s", addr, prev)
			}
			addrs[key] = p
		}
	}
	if g.MetricsListen != "" {
		checkAddr("metrics_listen", g.MetricsListen)
	}
	names := map[string]bool{}
	// issuedFiles are the files the gateway writes, by absolute path: two
	// listeners that issue to one file would overwrite each other's keys.
	issuedFiles := map[string]string{}
	for i, l := range g.Listeners {
		lp := fmt.Sprintf("listeners[%d]", i)
		if !listenerNameRE.MatchString(l.Name) {
			add(lp+".name", "%q must match [a-z0-9][a-z0-9_.-]* (at most 64 characters)", l.Name)
		} else if names[l.Name] {
			add(lp+".name", "%q is used by another listener", l.Name)
		}
		names[l.Name] = true
		checkAddr(lp+".address", l.Address)
		if l.Certificate.CertFile == "" {
			add(lp+".certificate.cert_file", "is required")
		}
		if l.Certificate.KeyFile == "" {
			add(lp+".certificate.key_file", "is required")
		}
		if d := time.Duration(l.Certificate.FollowInterval); l.Certificate.FollowRenewals && (d < 100*time.Millisecond || d > 24*time.Hour) {
			add(lp+".certificate.follow_interval", "%s is outside 100ms..24h", d)
		}
		errs = append(errs, l.Certificate.validateIssue(lp+".certificate")...)
		if l.Certificate.Issue.Enabled() {
			for _, f := range []string{l.Certificate.CertFile, l.Certificate.KeyFile} {
				if f == "" {
					continue
				}
				abs, _ := filepath.Abs(f)
				if prev, ok := issuedFiles[abs]; ok {
					add(lp+".certificate", "%s is also written for %s", f, prev)
				}
				issuedFiles[abs] = lp
			}
		}
		switch l.SecurityPolicy {
		case PolicyModern, PolicyCompatible:
		default:
			add(lp+".security_policy", "%q is not modern or compatible", l.SecurityPolicy)
		}
		errs = append(errs, l.MTLS.validate(lp+".mtls")...)
		if len(l.Routes) == 0 {
			add(lp+".routes", "at least one route is required")
		}
		seen := map[string]int{}
		routeNames := map[string]int{}
		for j, r := range l.Routes {
			rp := fmt.Sprintf("%s.routes[%d]", lp, j)
			key := r.Host + " " + r.PathPrefix
			if k, ok := seen[key]; ok {
				add(rp, "same host and path_prefix as routes[%d]", k)
			}
			seen[key] = j
			if k, ok := routeNames[r.Name]; ok && r.Name != "" {
				add(rp+".name", "%q is also the name of routes[%d]", r.Name, k)
			}
			routeNames[r.Name] = j
			errs = append(errs, r.validate(rp, l.MTLS.Mode, time.Duration(g.Timeouts.Write))...)
		}
	}
	// The gateway's own client certificate is kept by another agent than
	// the listeners' certificates: on one file they would overwrite each
	// other's keys.
	for _, f := range []struct{ key, path string }{{"cert_file", g.ControlPlane.Enroll.CertFile}, {"key_file", g.ControlPlane.Enroll.KeyFile}} {
		if f.path == "" {
			continue
		}
		abs, _ := filepath.Abs(f.path)
		if lp, ok := issuedFiles[abs]; ok {
			add("control_plane.enroll."+f.key, "%s is also written for %s.certificate.issue: each needs files of its own", f.path, lp)
		}
	}
	t := g.Timeouts
	for _, d := range []struct {
		name string
		v    Duration
	}{{"read_header", t.ReadHeader}, {"read", t.Read}, {"write", t.Write}, {"idle", t.Idle}, {"shutdown", t.Shutdown}} {
		if d.v <= 0 {
			add("timeouts."+d.name, "must be positive")
		}
	}
	if t.ReadHeader > t.Read && t.Read > 0 {
		add("timeouts.read_header", "%s exceeds timeouts.read %s", time.Duration(t.ReadHeader), time.Duration(t.Read))
	}
	if g.MaxHeaderBytes < 4096 || g.MaxHeaderBytes > 1<<20 {
		add("max_header_bytes", "%d is outside 4096..1048576", g.MaxHeaderBytes)
	}
	for _, lg := range []struct{ name, v string }{{"connection_log", g.ConnectionLog}, {"access_log", g.AccessLog}} {
		if lg.v == "" {
			add(lg.name, "is required: stderr, stdout, off or a file path")
		}
	}
	switch g.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level", "%q is not one of debug, info, warn, error", g.Log.Level)
	}
	switch g.Log.Format {
	case "json", "text":
	default:
		add("log.format", "%q is not json or text", g.Log.Format)
	}
	usedBy := g.namedTrustStore()
	if usedBy != "" {
		usedBy += " names a trust store of the control plane"
	} else if usedBy = g.followedCertificate(); usedBy != "" {
		usedBy += " follows the certificate's renewals on the control plane"
	} else if usedBy = g.issuedCertificate(); usedBy != "" {
		usedBy += " has its certificate issued by the control plane"
	}
	errs = append(errs, g.ControlPlane.validate(usedBy)...)
	return errors.Join(errs...)
}

// namedTrustStore returns the YAML path of the first listener whose trust
// store comes from the control plane, or "".
func (g Gateway) namedTrustStore() string {
	for i, l := range g.Listeners {
		if l.MTLS.Mode == MTLSVerify && l.MTLS.TrustStore.Name != "" {
			return fmt.Sprintf("listeners[%d].mtls.trust_store.name", i)
		}
	}
	return ""
}

// followedCertificate returns the YAML path of the first listener whose
// certificate follows its renewals on the control plane, or "".
func (g Gateway) followedCertificate() string {
	for i, l := range g.Listeners {
		if l.Certificate.FollowRenewals {
			return fmt.Sprintf("listeners[%d].certificate.follow_renewals", i)
		}
	}
	return ""
}

// IssuesCertificates reports whether a listener has its certificate
// issued by the control plane at the gateway's request.
func (g Gateway) IssuesCertificates() bool { return g.issuedCertificate() != "" }

// issuedCertificate returns the YAML path of the first listener whose
// certificate the control plane issues at the gateway's request, or "".
func (g Gateway) issuedCertificate() string {
	for i, l := range g.Listeners {
		if l.Certificate.Issue.Enabled() {
			return fmt.Sprintf("listeners[%d].certificate.issue", i)
		}
	}
	return ""
}

// validateIssue checks the issue section of a listener certificate at
// path p; an issue section without ca is an error when any other of its
// keys is set (it would be silently ignored).
func (c GatewayCertificate) validateIssue(p string) []error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	is := c.Issue
	ip := p + ".issue"
	if !is.Enabled() {
		if is.Profile != "" || is.CommonName != "" || len(is.DNS) > 0 || len(is.IP) > 0 || is.KeyType != "" || is.Validity != "" || is.RenewAt != 0 {
			add(ip+".ca", "is required: it names the control plane's CA that issues the listener's certificate")
		}
		return errs
	}
	if !trustStoreNameRE.MatchString(is.CA) {
		add(ip+".ca", "%q is not a CA name (1-63 lower-case letters, digits, '.', '_' or '-')", is.CA)
	}
	if !profileNameRE.MatchString(is.Profile) {
		add(ip+".profile", "%q is not a profile name (such as server)", is.Profile)
	}
	if c.FollowRenewals {
		add(p+".follow_renewals", "excludes issue: an issued certificate is renewed by the gateway itself")
	}
	if len(is.DNS) == 0 && len(is.IP) == 0 {
		add(ip, "dns or ip is required: TLS clients check a server certificate's DNS and IP names, not its common name (RFC 9525)")
	}
	if len(is.CommonName) > 64 {
		add(ip+".common_name", "is %d characters; X.509 allows at most 64", len(is.CommonName))
	}
	for k, d := range is.DNS {
		if !validHostPattern(d) {
			add(fmt.Sprintf("%s.dns[%d]", ip, k), "%q is not a lower-case DNS name or *.suffix", d)
		}
	}
	for k, a := range is.IP {
		if _, err := netip.ParseAddr(a); err != nil || strings.Contains(a, "%") {
			add(fmt.Sprintf("%s.ip[%d]", ip, k), "%q is not an IP address", a)
		}
	}
	if !slices.Contains(IssueKeyTypes, is.KeyType) {
		add(ip+".key_type", "%q is not one of %s", is.KeyType, strings.Join(IssueKeyTypes, ", "))
	}
	if is.Validity != "" {
		if d, err := apiv1.ParseDuration(is.Validity); err != nil {
			add(ip+".validity", "%v", err)
		} else if d < time.Minute {
			add(ip+".validity", "%s is under a minute", d)
		}
	}
	if is.RenewAt <= 0 || is.RenewAt >= 1 {
		add(ip+".renew_at", "%v must be between 0 and 1 (a fraction of the lifetime)", is.RenewAt)
	}
	if c.CertFile != "" && c.CertFile == c.KeyFile {
		add(p+".key_file", "is cert_file: the gateway writes them separately")
	}
	return errs
}

// validate checks the control-plane section; usedBy is the path of a key
// that needs it, with why ("" when no listener does).
func (c GatewayControlPlane) validate(usedBy string) []error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("control_plane.%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if c.Address == "" {
		if usedBy != "" {
			add("address", "is required: %s", usedBy)
		}
	} else if u, err := url.Parse(c.Address); err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		add("address", "%q must be https://host[:port] (the API speaks TLS only)", c.Address)
	}
	if c.TokenFile == "" && !c.Enroll.Enabled() && usedBy != "" {
		add("token_file", "or enroll is required: the API needs a token or a client certificate to answer")
	}
	if e := c.Enroll; e.Enabled() {
		if e.CertFile == "" || e.KeyFile == "" {
			add("enroll", "cert_file and key_file are required")
		}
		if e.CommonName == "" {
			add("enroll.common_name", "is required: it names the gateway to the control plane")
		}
		if c.Address != "" {
			if err := e.Agent(c).Validate(); err != nil {
				add("enroll", "%v", err)
			}
		}
	}
	if d := time.Duration(c.LongPoll); d < 0 || d > 50*time.Second {
		add("long_poll", "%s is outside 0..50s", d)
	}
	if d := time.Duration(c.PollInterval); d < 100*time.Millisecond || d > time.Hour {
		add("poll_interval", "%s is outside 100ms..1h", d)
	}
	// At least a few polls, so that one slow answer does not shut the door.
	if d := time.Duration(c.MaxStaleness); d < 3*time.Duration(c.PollInterval) || d > 366*24*time.Hour {
		add("max_staleness", "%s is outside 3 poll intervals..366d", d)
	}
	return errs
}

func (m GatewayMTLS) validate(p string) []error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	ts := m.TrustStore
	switch m.Mode {
	case MTLSVerify:
		switch {
		case ts.Name != "":
			if !trustStoreNameRE.MatchString(ts.Name) {
				add(p+".trust_store.name", "%q is not a trust store name (1-63 lower-case letters, digits, '.', '_' or '-')", ts.Name)
			}
			if ts.CAFile != "" || len(ts.CRLFiles) > 0 || len(ts.CRLURLs) > 0 {
				add(p+".trust_store.name", "excludes ca_file, crl_files and crl_urls: a named trust store brings its CAs and CRLs from the control plane")
			}
		case ts.CAFile == "":
			add(p+".trust_store.ca_file", "is required in verify mode (or name a trust store of the control plane: trust_store: {name: NAME})")
		}
		for k, u := range ts.CRLURLs {
			if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
				add(fmt.Sprintf("%s.trust_store.crl_urls[%d]", p, k), "%q is not an http:// or https:// URL", u)
			}
		}
		for k, f := range ts.CRLFiles {
			if f == "" {
				add(fmt.Sprintf("%s.trust_store.crl_files[%d]", p, k), "is empty")
			}
		}
		if d := time.Duration(ts.CRLRefresh); d < time.Second || d > 7*24*time.Hour {
			add(p+".trust_store.crl_refresh", "%s is outside 1s..7d", d)
		}
		switch ts.StaleCRLPolicy {
		case StaleCRLFailClosed, StaleCRLFailOpen:
		default:
			add(p+".trust_store.stale_crl_policy", "%q is not fail-closed or fail-open", ts.StaleCRLPolicy)
		}
	case MTLSPassthrough, MTLSOff:
		if ts.Name != "" || ts.CAFile != "" || len(ts.CRLFiles) > 0 || len(ts.CRLURLs) > 0 || ts.StaleCRLPolicy != "" || ts.CRLRefresh != 0 {
			add(p+".trust_store", "is only used in verify mode")
		}
		if m.IgnoreClientCertificateExpiry {
			add(p+".ignore_client_certificate_expiry", "is only used in verify mode")
		}
		if m.AdvertiseCANames {
			add(p+".advertise_ca_names", "is only used in verify mode")
		}
		if m.Headers != HeadersALB && m.Mode == MTLSPassthrough {
			add(p+".headers", "%q: passthrough mode sends alb headers only (an unverified identity must not look like a verified one)", m.Headers)
		}
		if m.Headers != HeadersALB && m.Mode == MTLSOff {
			add(p+".headers", "is only used with client certificates")
		}
	case "":
		add(p+".mode", "is required: off, passthrough or verify")
	default:
		add(p+".mode", "%q is not off, passthrough or verify", m.Mode)
	}
	if m.MaxChainDepth < 1 || m.MaxChainDepth > 10 {
		add(p+".max_chain_depth", "%d is outside 1..10", m.MaxChainDepth)
	}
	if m.MaxCertSize < 1024 || m.MaxCertSize > 64<<10 {
		add(p+".max_cert_size", "%d is outside 1024..65536", m.MaxCertSize)
	}
	switch m.Headers {
	case HeadersALB, HeadersXFCC, HeadersBoth:
	default:
		add(p+".headers", "%q is not alb, xfcc or both", m.Headers)
	}
	return errs
}

func (r GatewayRoute) validate(p, mode string, writeTimeout time.Duration) []error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if r.Host != "" && !validHostPattern(r.Host) {
		add(p+".host", "%q is not a host name or *.suffix (no port, lower case)", r.Host)
	}
	if !strings.HasPrefix(r.PathPrefix, "/") {
		add(p+".path_prefix", "%q must start with /", r.PathPrefix)
	} else if c := cleanPrefix(r.PathPrefix); c != r.PathPrefix {
		add(p+".path_prefix", "%q is not a clean path (want %q)", r.PathPrefix, c)
	}
	b := r.Backend
	u, err := url.Parse(b.URL)
	switch {
	case b.URL == "":
		add(p+".backend.url", "is required")
	case err != nil:
		add(p+".backend.url", "%q: %v", b.URL, err)
	case u.Scheme != "http" && u.Scheme != "https":
		add(p+".backend.url", "%q must be http:// or https://", b.URL)
	case u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "":
		add(p+".backend.url", "%q must be scheme://host[:port][/path] without user, query or fragment", b.URL)
	}
	if u != nil && u.Scheme == "http" && (b.CAFile != "" || b.ClientCertFile != "" || b.ClientKeyFile != "") {
		add(p+".backend", "ca_file and client certificates need an https:// url")
	}
	if (b.ClientCertFile == "") != (b.ClientKeyFile == "") {
		add(p+".backend", "client_cert_file and client_key_file go together")
	}
	if d := time.Duration(b.Timeout); d <= 0 {
		add(p+".backend.timeout", "must be positive")
	} else if writeTimeout > 0 && d > writeTimeout {
		add(p+".backend.timeout", "%s exceeds timeouts.write %s, which would cut the response first", d, writeTimeout)
	}
	a := r.Allow
	if !a.Empty() && mode != MTLSVerify {
		add(p+".allow", "identity rules need mtls.mode verify")
	}
	for k, s := range a.Subjects {
		if strings.TrimSpace(s) == "" {
			add(fmt.Sprintf("%s.allow.subjects[%d]", p, k), "is empty")
		}
	}
	for k, s := range a.Issuers {
		if strings.TrimSpace(s) == "" {
			add(fmt.Sprintf("%s.allow.issuers[%d]", p, k), "is empty")
		}
	}
	for k, d := range a.DNS {
		if !validHostPattern(strings.ToLower(d)) || d != strings.ToLower(d) {
			add(fmt.Sprintf("%s.allow.dns[%d]", p, k), "%q is not a lower-case DNS name or *.suffix", d)
		}
	}
	for k, s := range a.URIPrefixes {
		u, err := url.Parse(s)
		// The prefix must reach into the path, so that it cannot match a
		// longer authority ("spiffe://prod" would match "spiffe://prod.evil").
		if err != nil || u.Scheme == "" || u.Host == "" || !strings.HasPrefix(u.Path, "/") {
			add(fmt.Sprintf("%s.allow.uri_prefixes[%d]", p, k), "%q must be scheme://authority/ followed by an optional path, such as spiffe://prod.internal/", s)
		}
	}
	return errs
}

// validHostPattern accepts a DNS name or "*." followed by one.
func validHostPattern(h string) bool {
	h = strings.TrimPrefix(h, "*.")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if !hostLabelRE.MatchString(label) {
			return false
		}
	}
	return true
}

// cleanPrefix is path.Clean keeping a trailing slash.
func cleanPrefix(p string) string {
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

// GatewayEnvVars lists the environment overrides of the gateway: the
// scalar keys outside listeners, TRUSTGATE_GATEWAY_ plus the key path in
// upper case joined by '_' (timeouts.read_header ->
// TRUSTGATE_GATEWAY_TIMEOUTS_READ_HEADER). Listeners are configured in the
// file only.
func GatewayEnvVars() []EnvVar {
	var out []EnvVar
	walk(reflect.ValueOf(&Gateway{}).Elem(), nil, func(path []string, fv reflect.Value) {
		if fv.Kind() == reflect.Slice {
			return
		}
		out = append(out, EnvVar{Name: gatewayEnvName(path), Key: strings.Join(path, ".")})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func gatewayEnvName(path []string) string {
	return GatewayEnvPrefix + strings.ToUpper(strings.Join(path, "_"))
}

// ApplyGatewayEnv sets every key of GatewayEnvVars whose variable is set;
// env nil means the process environment.
func ApplyGatewayEnv(cfg *Gateway, env func(string) (string, bool)) error {
	if env == nil {
		env = os.LookupEnv
	}
	var errs []error
	walk(reflect.ValueOf(cfg).Elem(), nil, func(path []string, fv reflect.Value) {
		if fv.Kind() == reflect.Slice {
			return
		}
		name := gatewayEnvName(path)
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
