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
	"sync/atomic"
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

// SnapshotWatcher is an optional SnapshotClient capability: a long poll,
// which the control plane answers as soon as the snapshot's ETag is no
// longer etag, or with notModified after wait. *client.Client has it.
type SnapshotWatcher interface {
	WatchTrustStoreSnapshot(ctx context.Context, name, etag string, wait time.Duration) (snap *apiv1.TrustStoreSnapshot, newETag string, notModified bool, err error)
}

var (
	_ SnapshotWatcher = (*client.Client)(nil)
	_ TrustSource     = (*ControlPlaneSource)(nil)
	_ Invalidator     = (*ControlPlaneSource)(nil)
	_ Aging           = (*ControlPlaneSource)(nil)
	_ SnapshotClient  = (*client.Client)(nil)
)

// Aging is an optional TrustSource capability, for a source whose trust
// state comes from elsewhere and may go unconfirmed for a while (a control
// plane that cannot be reached). Age is called on every handshake and must
// not block.
type Aging interface {
	// Age returns how long ago, at now, the trust state in use was last
	// confirmed current, and whether that is past the source's limit: a
	// listener then refuses every client certificate (fails closed). A
	// source never confirmed reports 0 and false.
	Age(now time.Time) (age time.Duration, expired bool)
}

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
// none to fall back on but the snapshot file (CacheFile), when there is a
// good one; without it, its error stops the start.
//
// Every snapshot it compiles is written to CacheFile, and the time the
// control plane last confirmed it (an answer with the snapshot, or 304) is
// kept there too, at most a minute behind. Past MaxStaleness without a
// confirmation, Age reports the snapshot expired and the listener fails
// closed until the control plane answers again.
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
	// CacheFile, when set, is the file that keeps the last good snapshot
	// (see snapshotFile); "" keeps it in memory only.
	CacheFile string
	// MaxStaleness, when positive, is how long the snapshot in use may go
	// without the control plane confirming it before Age reports it
	// expired; 0 means never.
	MaxStaleness time.Duration
	// Wait, when positive and Client is a SnapshotWatcher, makes each Load
	// that holds a snapshot a long poll of up to Wait (see LongPolls).
	Wait time.Duration

	// force asks the next Load for the whole snapshot; cancelWait ends the
	// long poll under way, so that Invalidate need not wait for it.
	force      atomic.Bool
	waitMu     sync.Mutex
	cancelWait context.CancelFunc

	mu         sync.Mutex
	etag       string // of snap
	snap       *apiv1.TrustStoreSnapshot
	roots      []*x509.Certificate // snap's, parsed
	crls       *crlFetcher
	dirty      bool  // snap or a fetched CRL changed since the last compile
	compileErr error // why the last compile failed
	v          *verify.Verifier
	version    string
	// confirmed is when the control plane last confirmed the snapshot in
	// use, in Unix nanoseconds (0: never); atomic, for Age on every
	// handshake while Load holds mu across a request.
	confirmed atomic.Int64
	saved     time.Time // the confirmation time in CacheFile
	saveErr   string    // the last failure to write CacheFile, logged once
}

// Invalidate makes the next Load fetch the whole snapshot and re-fetch
// every CRL URL, as on SIGHUP.
func (s *ControlPlaneSource) Invalidate() {
	s.force.Store(true)
	s.waitMu.Lock()
	if s.cancelWait != nil {
		s.cancelWait()
	}
	s.waitMu.Unlock()
}

// LongPolls reports whether Load is a long poll: it then returns when the
// snapshot changes or after Wait, and the caller may call it again at
// once.
func (s *ControlPlaneSource) LongPolls() bool {
	_, ok := s.Client.(SnapshotWatcher)
	return s.Wait > 0 && ok
}

// fetch asks the control plane for the snapshot, by a long poll when it
// holds one (etag) and LongPolls. An Invalidate during the long poll ends
// it, and the whole snapshot is fetched at once.
func (s *ControlPlaneSource) fetch(ctx context.Context, etag string) (*apiv1.TrustStoreSnapshot, string, bool, error) {
	w, ok := s.Client.(SnapshotWatcher)
	if etag == "" || !s.LongPolls() || !ok {
		return s.Client.TrustStoreSnapshot(ctx, s.Name, etag)
	}
	wctx, cancel := context.WithCancel(ctx)
	s.waitMu.Lock()
	s.cancelWait = cancel
	s.waitMu.Unlock()
	snap, newETag, notModified, err := w.WatchTrustStoreSnapshot(wctx, s.Name, etag, s.Wait)
	s.waitMu.Lock()
	s.cancelWait = nil
	s.waitMu.Unlock()
	cancel()
	if err != nil && ctx.Err() == nil && s.force.Swap(false) {
		return s.Client.TrustStoreSnapshot(ctx, s.Name, "")
	}
	return snap, newETag, notModified, err
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
	force := s.force.Swap(false)
	etag := s.etag
	if force || s.snap == nil {
		etag = ""
	}
	snap, newETag, notModified, err := s.fetch(ctx, etag)
	now := s.now()
	switch {
	case err != nil:
		s.poll(PollError)
		err = fmt.Errorf("trust store %q: control plane: %w", s.Name, err)
		if s.v == nil && s.CacheFile != "" {
			return s.loadFile(err)
		}
		return s.v, s.version, err
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
		if s.compileErr == nil {
			s.confirm(now, false)
		}
		return s.v, s.version, errors.Join(append(soft, s.compileErr)...)
	}
	s.dirty = false
	if err := s.compile(); err != nil {
		return s.v, s.version, errors.Join(append(soft, err)...)
	}
	s.confirm(now, true)
	if s.Logger != nil {
		for _, w := range s.snap.Warnings {
			s.Logger.Warn("gateway: trust store snapshot warning", "truststore", s.Name, "version", s.snap.Version, "warning", w)
		}
	}
	return s.v, s.version, errors.Join(soft...)
}

// compile compiles s.snap with the fetched copies of its CRL URLs into
// s.v. On failure s.v stays and the error is kept in s.compileErr.
func (s *ControlPlaneSource) compile() error {
	fetched := s.crls.ders(s.snap.CRLURLs)
	crls := make([][]byte, 0, len(s.snap.CRLs)+len(fetched))
	crls = append(append(crls, s.snap.CRLs...), fetched...)
	v, err := verify.CompileDER(s.roots, crls, s.Options)
	if err != nil {
		s.compileErr = fmt.Errorf("trust store %q version %d: %w", s.Name, s.snap.Version, err)
		return s.compileErr
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
	return nil
}

// snapshotSaveEvery is how often, at most, a confirmation of an unchanged
// snapshot is written to CacheFile: a gateway restarted during an outage
// counts its snapshot's age from at most this far back, which errs on the
// side of failing closed early.
const snapshotSaveEvery = time.Minute

// confirm records that the control plane confirmed the snapshot in use at
// now, and writes CacheFile when the snapshot changed or the file's
// confirmation is snapshotSaveEvery old. A failed write is logged, not
// returned: the snapshot in memory is enforced all the same.
func (s *ControlPlaneSource) confirm(now time.Time, changed bool) {
	s.confirmed.Store(now.UnixNano())
	if s.CacheFile == "" || (!changed && now.Sub(s.saved) < snapshotSaveEvery) {
		return
	}
	err := writeSnapshotFile(s.CacheFile, &snapshotContent{
		TrustStore: s.Name, ETag: s.etag, Snapshot: s.snap,
		CRLs: s.crls.copies(s.snap.CRLURLs), ConfirmedAt: now,
	})
	if err != nil {
		if msg := err.Error(); msg != s.saveErr && s.Logger != nil {
			s.Logger.Warn("gateway: cannot keep the trust store snapshot on disk", "truststore", s.Name, "error", err)
		}
		s.saveErr = err.Error()
		return
	}
	s.saved, s.saveErr = now, ""
}

// loadFile starts from the snapshot in CacheFile, the first Load having
// found no control plane (cpErr). The snapshot is enforced as it was, its
// CRL URLs with the copies kept beside it (fetched again when they can be);
// its age runs from the file's confirmation time, so a file older than
// MaxStaleness fails closed at once. Without a good file, the error is
// cpErr with the file's.
func (s *ControlPlaneSource) loadFile(cpErr error) (*verify.Verifier, string, error) {
	c, err := readSnapshotFile(s.CacheFile, s.Name)
	if err != nil {
		return nil, "", errors.Join(cpErr, err)
	}
	roots, err := parseDERCerts(c.Snapshot.CACertificates)
	if err != nil {
		return nil, "", errors.Join(cpErr, fmt.Errorf("snapshot file %s: %w", s.CacheFile, err))
	}
	s.snap, s.roots, s.etag = c.Snapshot, roots, c.ETag
	s.crls.seed(c.CRLs)
	if err := s.compile(); err != nil {
		s.snap, s.roots, s.etag = nil, nil, ""
		return nil, "", errors.Join(cpErr, fmt.Errorf("snapshot file %s: %w", s.CacheFile, err))
	}
	s.confirmed.Store(c.ConfirmedAt.UnixNano())
	s.saved = c.ConfirmedAt
	if s.Logger != nil {
		s.Logger.Warn("gateway: no control plane answers; enforcing the trust store snapshot kept on disk",
			"truststore", s.Name, "version", s.snap.Version, "confirmed_at", c.ConfirmedAt, "file", s.CacheFile, "error", cpErr)
	}
	return s.v, s.version, nil
}

// Age implements Aging: the time since the control plane last confirmed
// the snapshot in use, expired past MaxStaleness.
func (s *ControlPlaneSource) Age(now time.Time) (time.Duration, bool) {
	c := s.confirmed.Load()
	if c == 0 {
		return 0, false
	}
	age := max(now.Sub(time.Unix(0, c)), 0)
	return age, s.MaxStaleness > 0 && age > s.MaxStaleness
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
// token. With enroll, the client presents the gateway's certificate, read
// again from its files after each renewal. Its timeout leaves room for a
// long poll.
func newControlPlaneClient(spec config.GatewayControlPlane) (*client.Client, error) {
	var token string
	if spec.TokenFile != "" {
		b, err := os.ReadFile(spec.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("control_plane.token_file: %w", err)
		}
		token = strings.TrimSpace(string(b))
		if token == "" || strings.ContainsAny(token, " \t\r\n") {
			return nil, fmt.Errorf("control_plane.token_file %s: want one API token on one line", spec.TokenFile)
		}
	}
	cfg := client.Config{Addr: spec.Address, Token: token, CACertFile: spec.CAFile,
		Timeout: controlPlaneTimeout + time.Duration(spec.LongPoll)}
	if e := spec.Enroll; e.Enabled() {
		cfg.ClientCertFile, cfg.ClientKeyFile = e.CertFile, e.KeyFile
	}
	c, err := client.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("control_plane: %w", err)
	}
	return c, nil
}
