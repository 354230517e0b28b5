package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/trustgate/trustgate/internal/api/client"
	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/config"
	"github.com/trustgate/trustgate/internal/truststore/verify"
)

// SnapshotClient fetches trust-store snapshots from the control plane;
// *client.Client satisfies it. With etag set, an unchanged snapshot
// answers notModified and costs no transfer.
type SnapshotClient interface {
	TrustStoreSnapshot(ctx context.Context, name, etag string) (snap *apiv1.TrustStoreSnapshot, newETag string, notModified bool, err error)
}

var (
	_ TrustSource    = (*ControlPlaneSource)(nil)
	_ Invalidator    = (*ControlPlaneSource)(nil)
	_ SnapshotClient = (*client.Client)(nil)
)

// Poll outcomes, the result label of trustgate_gateway_control_plane_polls_total.
const (
	PollChanged     = "changed"
	PollNotModified = "not_modified"
	PollError       = "error"
)

// ControlPlaneSource is a trust store of the control plane, by name. Each
// Load asks the control plane for the store's snapshot with the ETag of the
// one it holds (an unchanged store answers 304), fetches the CRL URLs the
// snapshot lists as FileSource does, and compiles anchors, CRLs and fetched
// CRLs into a Verifier.
//
// It never fails open: when the control plane cannot be reached, answers
// an error, or sends a snapshot that cannot be enforced (a CA that does not
// parse, a CRL that does not compile, a new CRL URL that cannot be
// fetched), Load returns the last good Verifier with the error, and the
// gateway keeps enforcing it. The first Load, when the gateway starts, has
// none to fall back on, and its error stops the start.
//
// Its zero value is not usable: set Client and Name. Load calls are
// serialized by the caller (see TrustSource); Invalidate may be called
// at any time.
type ControlPlaneSource struct {
	// Client reaches the control plane.
	Client SnapshotClient
	// Name is the trust store's name.
	Name string
	// Refresh is the longest time between two fetches of a CRL URL of the
	// snapshot; 0 means 5m.
	Refresh time.Duration
	// Options are the verification options compiled in.
	Options verify.Options
	// HTTPClient fetches CRL URLs; nil means a client with a 30 s timeout.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives the warnings of new snapshots; nil discards them.
	Logger *slog.Logger
	// OnPoll, when set, is told the outcome of each request to the control
	// plane: PollChanged, PollNotModified or PollError.
	OnPoll func(result string)

	mu         sync.Mutex
	etag       string // of snap
	snap       *apiv1.TrustStoreSnapshot
	roots      []*x509.Certificate // snap's, parsed
	crls       *crlFetcher
	dirty      bool  // snap or a fetched CRL changed since the last compile
	compileErr error // why the last compile failed
	v          *verify.Verifier
	version    string
	force      bool
}

// Invalidate makes the next Load fetch the whole snapshot and re-fetch
// every CRL URL, as on SIGHUP.
func (s *ControlPlaneSource) Invalidate() {
	s.mu.Lock()
	s.force = true
	s.mu.Unlock()
}

func (s *ControlPlaneSource) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *ControlPlaneSource) poll(result string) {
	if s.OnPoll != nil {
		s.OnPoll(result)
	}
}

// Load implements TrustSource.
func (s *ControlPlaneSource) Load(ctx context.Context) (*verify.Verifier, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.crls == nil {
		refresh := s.Refresh
		if refresh <= 0 {
			refresh = 5 * time.Minute
		}
		s.crls = &crlFetcher{client: s.HTTPClient, refresh: refresh, now: s.now}
	}
	force := s.force
	s.force = false
	etag := s.etag
	if force || s.snap == nil {
		etag = ""
	}
	snap, newETag, notModified, err := s.Client.TrustStoreSnapshot(ctx, s.Name, etag)
	switch {
	case err != nil:
		s.poll(PollError)
		return s.v, s.version, fmt.Errorf("trust store %q: control plane: %w", s.Name, err)
	case notModified:
		s.poll(PollNotModified)
	default:
		roots, err := parseDERCerts(snap.CACertificates)
		if err != nil {
			s.poll(PollError)
			return s.v, s.version, fmt.Errorf("trust store %q version %d: %w", s.Name, snap.Version, err)
		}
		s.poll(PollChanged)
		s.snap, s.roots, s.etag, s.dirty = snap, roots, newETag, true
	}
	urlsChanged, soft, err := s.crls.update(ctx, s.snap.CRLURLs, force)
	if err != nil {
		// A CRL URL new in this snapshot: enforcing the snapshot without it
		// would leave its issuer unchecked, so the last one stays.
		return s.v, s.version, fmt.Errorf("trust store %q version %d: %w", s.Name, s.snap.Version, err)
	}
	if !s.dirty && !urlsChanged && !force {
		return s.v, s.version, errors.Join(append(soft, s.compileErr)...)
	}
	s.dirty = false
	fetched := s.crls.ders(s.snap.CRLURLs)
	crls := make([][]byte, 0, len(s.snap.CRLs)+len(fetched))
	crls = append(append(crls, s.snap.CRLs...), fetched...)
	v, err := verify.CompileDER(s.roots, crls, s.Options)
	if err != nil {
		s.compileErr = fmt.Errorf("trust store %q version %d: %w", s.Name, s.snap.Version, err)
		return s.v, s.version, errors.Join(append(soft, s.compileErr)...)
	}
	s.compileErr = nil
	h := sha256.New()
	h.Write([]byte(s.etag))
	for _, c := range fetched {
		sum := sha256.Sum256(c)
		h.Write(sum[:])
	}
	s.v = v
	s.version = fmt.Sprintf("%d-%s", s.snap.Version, hex.EncodeToString(h.Sum(nil)[:6]))
	if s.Logger != nil {
		for _, w := range s.snap.Warnings {
			s.Logger.Warn("gateway: trust store snapshot warning", "truststore", s.Name, "version", s.snap.Version, "warning", w)
		}
	}
	return s.v, s.version, errors.Join(soft...)
}

// parseDERCerts parses the trust anchors of a snapshot.
func parseDERCerts(ders [][]byte) ([]*x509.Certificate, error) {
	out := make([]*x509.Certificate, 0, len(ders))
	for i, der := range ders {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("CA certificate %d: %w", i, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// controlPlaneTimeout bounds one request to the control plane, so that a
// hung control plane delays a listener's trust refresh, never blocks it.
const controlPlaneTimeout = 15 * time.Second

// newControlPlaneClient builds the API client of spec. The token comes
// from its file and goes nowhere else: errors name the file, never the
// token.
func newControlPlaneClient(spec config.GatewayControlPlane) (*client.Client, error) {
	b, err := os.ReadFile(spec.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("control_plane.token_file: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" || strings.ContainsAny(token, " \t\r\n") {
		return nil, fmt.Errorf("control_plane.token_file %s: want one API token on one line", spec.TokenFile)
	}
	c, err := client.New(client.Config{Addr: spec.Address, Token: token, CACertFile: spec.CAFile, Timeout: controlPlaneTimeout})
	if err != nil {
		return nil, fmt.Errorf("control_plane: %w", err)
	}
	return c, nil
}
