package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"slices"
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

// DeltaSnapshotWatcher is an optional SnapshotClient capability: a long
// poll (or, with wait 0, a plain request) that names the full CRLs the
// gateway holds, so that the control plane answers their changes as delta
// CRLs (see apiv1.HeldCRLs). *client.Client has it.
type DeltaSnapshotWatcher interface {
	WatchTrustStoreSnapshotSince(ctx context.Context, name, etag string, held apiv1.HeldCRLs, wait time.Duration) (snap *apiv1.TrustStoreSnapshot, newETag string, notModified bool, err error)
}

var (
	_ SnapshotWatcher      = (*client.Client)(nil)
	_ DeltaSnapshotWatcher = (*client.Client)(nil)
	_ TrustSource          = (*ControlPlaneSource)(nil)
	_ Invalidator          = (*ControlPlaneSource)(nil)
	_ Aging                = (*ControlPlaneSource)(nil)
	_ SnapshotClient       = (*client.Client)(nil)
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
// Revocations come as delta CRLs when the client can ask for them
// (DeltaSnapshotWatcher): each request names the full CRLs the source
// holds (their issuers' key identifiers, CRL numbers and digests), and the
// control plane answers, for its CAs, with a delta CRL from the one held,
// or says it is unchanged. The full CRLs stay compiled (the expensive
// part, about a second and 30 MB for a million entries); a delta is
// applied on top of them (verify.ApplyDeltas), in time and memory that
// follow the delta's size. A delta replaces the previous one of its
// issuer, as it lists every change since the full CRL. A delta that cannot be applied makes the next
// request ask for full CRLs, the last good Verifier staying meanwhile.
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
	// OnCRLs, when set, is told after each compile how many full CRLs were
	// compiled anew and how many delta CRLs were applied anew.
	OnCRLs func(full, delta int)
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
	// baseV is the Verifier of the full CRLs (v is baseV with snap's
	// deltas applied), compiled from the full CRLs whose hash is baseKey.
	baseV   *verify.Verifier
	baseKey [sha256.Size]byte
	// sums are the SHA-256 of the full CRLs of baseV, by the address of
	// their first byte and their length: a CRL kept from one snapshot to
	// the next is the same slice and is not hashed again.
	sums map[crlRef][sha256.Size]byte
	// held are the full CRLs of snap from the control plane that a delta
	// may apply to, by their issuer's key identifier: the number (sent
	// as have) and the DER; deltas are snap's delta CRLs, by the same key.
	held     apiv1.HeldCRLs
	heldDER  map[string][]byte
	deltas   map[string][]byte
	wantFull bool // a delta could not be applied: ask for full CRLs
	// digests is whether the control plane's last answer said it reads
	// CRL digests in have (apiv1.TrustStoreSnapshot.HaveDigests).
	digests bool
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

// crlRef names a CRL slice by identity.
type crlRef struct {
	first *byte
	n     int
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
//
// held goes with its digests only to a control plane whose last answer
// said it reads them (s.digests); another gets the numbers alone, which
// it answers with full CRLs or, if it is from before digests, as it
// always did. A 400 to a request with digests is taken for a control
// plane from before them (one node of several not upgraded yet, behind
// the same address): the request is made again at once without them, and
// they are sent again once an answer says they are read.
func (s *ControlPlaneSource) fetch(ctx context.Context, etag string, held apiv1.HeldCRLs) (*apiv1.TrustStoreSnapshot, string, bool, error) {
	if !s.digests && held.HasDigests() {
		held = held.WithoutDigests()
	}
	snap, newETag, notModified, err := s.fetchOnce(ctx, etag, held)
	var ce *client.Error
	if err != nil && held.HasDigests() && errors.As(err, &ce) && ce.Status == http.StatusBadRequest && ctx.Err() == nil {
		s.digests = false
		if s.Logger != nil {
			s.Logger.Info("gateway: the control plane refused CRL digests in have; asking again without them",
				"truststore", s.Name, "error", err)
		}
		return s.fetchOnce(ctx, etag, held.WithoutDigests())
	}
	return snap, newETag, notModified, err
}

// fetchOnce is one request of fetch.
func (s *ControlPlaneSource) fetchOnce(ctx context.Context, etag string, held apiv1.HeldCRLs) (*apiv1.TrustStoreSnapshot, string, bool, error) {
	dw, deltas := s.Client.(DeltaSnapshotWatcher)
	deltas = deltas && len(held) > 0
	w, ok := s.Client.(SnapshotWatcher)
	if etag == "" || !s.LongPolls() || !ok {
		if deltas {
			return dw.WatchTrustStoreSnapshotSince(ctx, s.Name, etag, held, 0)
		}
		return s.Client.TrustStoreSnapshot(ctx, s.Name, etag)
	}
	wctx, cancel := context.WithCancel(ctx)
	s.waitMu.Lock()
	s.cancelWait = cancel
	s.waitMu.Unlock()
	var snap *apiv1.TrustStoreSnapshot
	var newETag string
	var notModified bool
	var err error
	if deltas {
		snap, newETag, notModified, err = dw.WatchTrustStoreSnapshotSince(wctx, s.Name, etag, held, s.Wait)
	} else {
		snap, newETag, notModified, err = w.WatchTrustStoreSnapshot(wctx, s.Name, etag, s.Wait)
	}
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
	etag, held := s.etag, s.held
	if force || s.snap == nil || s.wantFull {
		etag, held = "", nil
	}
	snap, newETag, notModified, err := s.fetch(ctx, etag, held)
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
		s.digests = snap.HaveDigests
		roots, err := parseDERCerts(snap.CACertificates)
		var merged *apiv1.TrustStoreSnapshot
		if err == nil {
			merged, err = s.merge(snap)
		}
		if err != nil {
			s.poll(PollError)
			s.wantFull = true
			return s.v, s.version, fmt.Errorf("trust store %q version %d: %w", s.Name, snap.Version, err)
		}
		s.poll(PollChanged)
		s.snap, s.roots, s.etag, s.dirty = merged, roots, newETag, true
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

// merge returns the snapshot that an answer of the control plane brings
// the source to: the answer itself, with the full CRL held under each
// delta CRL of the answer, and the full CRL and delta held of each CRL the
// answer says unchanged. The result has no UnchangedCRLs; its CRLs are
// full CRLs, its DeltaCRLs the deltas to apply to them.
//
// A CRL is never replaced by an older one: a full CRL or a delta of a key
// whose CRL this source enforces at a higher number (the held full CRL's,
// or its delta's) is taken as unchanged. Nodes of a control plane publish
// at their own pace, and a node that has not caught up yet must not take
// back a revocation a gateway already enforces (RFC 5280 §5.2.3: a higher
// number is a later CRL).
func (s *ControlPlaneSource) merge(snap *apiv1.TrustStoreSnapshot) (*apiv1.TrustStoreSnapshot, error) {
	out := *snap
	out.CRLs = make([][]byte, 0, len(snap.CRLs))
	out.DeltaCRLs = make([][]byte, 0, len(snap.DeltaCRLs))
	out.UnchangedCRLs = nil
	unchanged := slices.Clone(snap.UnchangedCRLs)
	for _, der := range snap.CRLs {
		if k, older := s.older(der); older {
			unchanged = append(unchanged, k)
			continue
		}
		out.CRLs = append(out.CRLs, der)
	}
	for i, d := range snap.DeltaCRLs {
		k, err := crlKeyID(d)
		if err != nil {
			return nil, fmt.Errorf("delta CRL %d: %w", i, err)
		}
		if _, older := s.older(d); older {
			unchanged = append(unchanged, k)
			continue
		}
		der, ok := s.heldDER[k]
		if !ok {
			return nil, fmt.Errorf("delta CRL %d: this gateway holds no full CRL of key %s", i, k)
		}
		out.CRLs = append(out.CRLs, der)
		out.DeltaCRLs = append(out.DeltaCRLs, d)
	}
	for _, k := range unchanged {
		der, ok := s.heldDER[k]
		if !ok {
			return nil, fmt.Errorf("the control plane says the CRL of key %s is unchanged, and this gateway holds none", k)
		}
		out.CRLs = append(out.CRLs, der)
		if d := s.deltas[k]; d != nil {
			out.DeltaCRLs = append(out.DeltaCRLs, d)
		}
	}
	return &out, nil
}

// older reports whether der, a full or delta CRL, is older than the CRL
// of its key that this source enforces, with that key. CRLs of keys this
// source holds no full CRL of (external ones, partitions) are never older.
func (s *ControlPlaneSource) older(der []byte) (string, bool) {
	hdr, err := verify.ParseCRLHeader(der)
	if err != nil || hdr.Number == nil || len(hdr.AuthorityKeyId) == 0 {
		return "", false
	}
	k := hex.EncodeToString(hdr.AuthorityKeyId)
	held, ok := s.held[k]
	if !ok {
		return "", false
	}
	enforced := big.NewInt(held.Number)
	if d := s.deltas[k]; d != nil {
		if dh, err := verify.ParseCRLHeader(d); err == nil && dh.Number != nil {
			enforced = dh.Number
		}
	}
	if hdr.Number.Cmp(enforced) >= 0 {
		return k, false
	}
	if s.Logger != nil {
		s.Logger.Warn("gateway: the control plane sent an older CRL than the one enforced; keeping the one enforced",
			"truststore", s.Name, "key_id", k, "sent", hdr.Number.String(), "enforced", enforced.String())
	}
	return k, true
}

// crlKeyID returns the authority key identifier of a CRL in hex.
func crlKeyID(der []byte) (string, error) {
	hdr, err := verify.ParseCRLHeader(der)
	if err != nil {
		return "", err
	}
	if len(hdr.AuthorityKeyId) == 0 {
		return "", errors.New("the CRL has no authority key identifier")
	}
	return hex.EncodeToString(hdr.AuthorityKeyId), nil
}

// compile compiles s.snap with the fetched copies of its CRL URLs into
// s.v: the full CRLs into s.baseV, unless they are those of s.baseV, then
// the delta CRLs on top. On failure s.v stays and the error is kept in
// s.compileErr; a delta that cannot be applied also makes the next request
// ask for full CRLs.
func (s *ControlPlaneSource) compile() error {
	fetched := s.crls.ders(s.snap.CRLURLs)
	crls := make([][]byte, 0, len(s.snap.CRLs)+len(fetched))
	crls = append(append(crls, s.snap.CRLs...), fetched...)
	sums := make(map[crlRef][sha256.Size]byte, len(crls))
	list := make([][sha256.Size]byte, 0, len(crls))
	fresh := 0 // full CRLs not in the last compile
	for _, der := range crls {
		if len(der) == 0 {
			s.compileErr = fmt.Errorf("trust store %q version %d: an empty CRL", s.Name, s.snap.Version)
			return s.compileErr
		}
		ref := crlRef{&der[0], len(der)}
		sum, ok := s.sums[ref]
		if !ok {
			sum = sha256.Sum256(der)
			fresh++
		}
		sums[ref] = sum
		list = append(list, sum)
	}
	slices.SortFunc(list, func(a, b [sha256.Size]byte) int { return bytes.Compare(a[:], b[:]) })
	h := sha256.New()
	for _, r := range s.roots {
		sum := sha256.Sum256(r.Raw)
		h.Write(sum[:])
	}
	h.Write([]byte{0})
	for _, sum := range list {
		h.Write(sum[:])
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])

	baseV, full := s.baseV, 0
	if baseV == nil || key != s.baseKey {
		v, err := verify.CompileDER(s.roots, crls, s.Options)
		if err != nil {
			s.compileErr = fmt.Errorf("trust store %q version %d: %w", s.Name, s.snap.Version, err)
			return s.compileErr
		}
		baseV, full = v, fresh
	}
	v, err := baseV.ApplyDeltas(s.snap.DeltaCRLs)
	if err != nil {
		s.wantFull = true
		s.compileErr = fmt.Errorf("trust store %q version %d: %w", s.Name, s.snap.Version, err)
		return s.compileErr
	}
	deltas := map[string][]byte{}
	applied := 0
	for _, d := range s.snap.DeltaCRLs {
		k, err := crlKeyID(d)
		if err != nil { // ApplyDeltas parsed it: not reached
			s.compileErr = fmt.Errorf("trust store %q version %d: %w", s.Name, s.snap.Version, err)
			return s.compileErr
		}
		if !bytes.Equal(s.deltas[k], d) {
			applied++
		}
		deltas[k] = d
	}
	if key != s.baseKey || s.held == nil {
		s.held, s.heldDER = heldCRLs(s.snap.CRLs, fetched, sums)
	}
	s.compileErr, s.wantFull = nil, false
	s.baseV, s.baseKey, s.sums, s.deltas = baseV, key, sums, deltas
	eh := sha256.New()
	eh.Write([]byte(s.etag))
	for _, c := range fetched {
		sum := sha256.Sum256(c)
		eh.Write(sum[:])
	}
	s.v = v
	s.version = fmt.Sprintf("%d-%s", s.snap.Version, hex.EncodeToString(eh.Sum(nil)[:6]))
	if s.OnCRLs != nil {
		s.OnCRLs(full, applied)
	}
	return nil
}

// heldCRLs returns the full CRLs of crls that a delta may apply to (those
// without an issuing distribution point, with a CRL number and an
// authority key identifier of at most 64 bytes, which the control plane
// accepts), by key identifier: their numbers and digests, and DER. A key
// identifier of two CRLs (two full CRLs, a full CRL and a partition's, or
// a CRL the gateway fetches itself, in others) is left out: a delta could
// not tell them apart, and the issuer's revocations would come from
// several CRLs. sums holds the SHA-256 of CRLs already hashed, by slice.
func heldCRLs(crls, others [][]byte, sums map[crlRef][sha256.Size]byte) (apiv1.HeldCRLs, map[string][]byte) {
	held, ders := apiv1.HeldCRLs{}, map[string][]byte{}
	twice := map[string]bool{}
	for _, der := range others {
		if k, err := crlKeyID(der); err == nil {
			twice[k] = true
		}
	}
	for _, der := range crls {
		hdr, err := verify.ParseCRLHeader(der)
		if err != nil || len(hdr.AuthorityKeyId) == 0 {
			continue
		}
		k := hex.EncodeToString(hdr.AuthorityKeyId)
		partial := false
		for _, ext := range hdr.Extensions {
			if ext.Id.Equal(oidIssuingDistributionPoint) {
				partial = true
			}
		}
		_, dup := held[k]
		if dup || twice[k] || partial || hdr.Number == nil || !hdr.Number.IsInt64() || hdr.Number.Sign() <= 0 || len(hdr.AuthorityKeyId) > 64 {
			twice[k] = true
			delete(held, k)
			delete(ders, k)
			continue
		}
		if len(held) >= apiv1.MaxHeldCRLs {
			break
		}
		sum, ok := sums[crlRef{&der[0], len(der)}]
		if !ok {
			sum = sha256.Sum256(der)
		}
		held[k] = apiv1.HeldCRL{Number: hdr.Number.Int64(), Digest: apiv1.CRLDigest(sum[:apiv1.CRLDigestSize])}
		ders[k] = der
	}
	return held, ders
}

// oidIssuingDistributionPoint marks a partial CRL (RFC 5280 §5.2.5).
var oidIssuingDistributionPoint = asn1.ObjectIdentifier{2, 5, 29, 28}

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
	s.snap, s.roots, s.etag, s.digests = c.Snapshot, roots, c.ETag, c.Snapshot.HaveDigests
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
