package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trustgate/trustgate/internal/truststore/verify"
)

// TrustSource yields the compiled trust store of a verify listener. The
// file source below reads a CA bundle and CRL files and fetches CRL URLs;
// the control-plane source (ControlPlaneSource) polls the API for the
// snapshots of a named trust store.
//
// Load returns the current Verifier and a version string that changes
// exactly when the trust state does. The gateway calls Load once when it
// starts (an error there stops the start), then every poll interval and on
// Reload, never concurrently for one source. When the version is unchanged
// it keeps the Verifier it has; when Load fails it keeps the last good one
// and logs the error, so a source may return its current Verifier together
// with an error (a CRL refresh that failed). Load must honour ctx.
type TrustSource interface {
	Load(ctx context.Context) (v *verify.Verifier, version string, err error)
}

// Invalidator is an optional TrustSource capability: Invalidate makes the
// next Load re-read everything, as on SIGHUP, even if nothing seems changed.
type Invalidator interface {
	Invalidate()
}

var (
	_ TrustSource = (*FileSource)(nil)
	_ Invalidator = (*FileSource)(nil)
)

// MaxCRLBytes bounds a CRL fetched over HTTP (a 1,000,000-entry CRL is
// about 35 MB).
const MaxCRLBytes = 256 << 20

// FileSource is a trust store made of local files and CRL URLs. Files are
// re-read when their modification time, size or inode changes; a CRL URL
// is fetched at the first Load, then again after Refresh or at 90% of the
// way from its thisUpdate to its nextUpdate, whichever is first, and a
// failed fetch is retried after min(Refresh, 30s) while the last good CRL
// stays in use. Its zero value is not usable: set CAFile.
type FileSource struct {
	// CAFile is a PEM bundle of CA certificates.
	CAFile string
	// CRLFiles are CRLs in DER or PEM.
	CRLFiles []string
	// CRLURLs are CRLs fetched over HTTP(S), in DER or PEM.
	CRLURLs []string
	// Refresh is the longest time between two fetches of a CRL URL; 0 means 5m.
	Refresh time.Duration
	// Options are the verification options compiled in.
	Options verify.Options
	// Client fetches CRL URLs; nil means a client with a 30 s timeout.
	Client *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu      sync.Mutex
	stamps  map[string]stamp
	crls    *crlFetcher
	v       *verify.Verifier
	version string
	force   bool
}

// Invalidate makes the next Load re-read the files and re-fetch the URLs.
func (s *FileSource) Invalidate() {
	s.mu.Lock()
	s.force = true
	s.mu.Unlock()
}

func (s *FileSource) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *FileSource) refresh() time.Duration {
	if s.Refresh > 0 {
		return s.Refresh
	}
	return 5 * time.Minute
}

// Load implements TrustSource.
func (s *FileSource) Load(ctx context.Context) (*verify.Verifier, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	force := s.force || s.v == nil
	s.force = false
	if s.stamps == nil {
		s.stamps = map[string]stamp{}
		s.crls = &crlFetcher{client: s.Client, refresh: s.refresh(), now: s.now}
	}
	changed := force
	newStamps := map[string]stamp{}
	for _, p := range append([]string{s.CAFile}, s.CRLFiles...) {
		st, err := statFile(p)
		if err != nil {
			return s.v, s.version, fmt.Errorf("trust store: %w", err)
		}
		newStamps[p] = st
		if !st.same(s.stamps[p]) {
			changed = true
		}
	}
	urlsChanged, fetchErrs, err := s.crls.update(ctx, s.CRLURLs, force)
	if err != nil {
		return s.v, s.version, fmt.Errorf("trust store: %w", err)
	}
	changed = changed || urlsChanged
	if !changed {
		return s.v, s.version, errors.Join(fetchErrs...)
	}
	// The stamps are kept even when compiling fails, so that a broken file
	// is compiled again when it changes, not at every poll.
	s.stamps = newStamps
	v, version, err := s.compile()
	if err != nil {
		return s.v, s.version, errors.Join(append(fetchErrs, err)...)
	}
	if version != s.version {
		s.v, s.version = v, version
	}
	return s.v, s.version, errors.Join(fetchErrs...)
}

// compile reads the files and compiles them with the fetched CRLs.
func (s *FileSource) compile() (*verify.Verifier, string, error) {
	h := sha256.New()
	caPEM, err := os.ReadFile(s.CAFile)
	if err != nil {
		return nil, "", fmt.Errorf("trust store: %w", err)
	}
	roots, err := parseCertsPEM(caPEM)
	if err != nil {
		return nil, "", fmt.Errorf("trust store %s: %w", s.CAFile, err)
	}
	h.Write(caPEM)
	var crls [][]byte
	for _, p := range s.CRLFiles {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, "", fmt.Errorf("trust store: %w", err)
		}
		der, err := crlDER(b)
		if err != nil {
			return nil, "", fmt.Errorf("trust store: CRL %s: %w", p, err)
		}
		crls = append(crls, der)
	}
	crls = append(crls, s.crls.ders(s.CRLURLs)...)
	v, err := verify.CompileDER(roots, crls, s.Options)
	if err != nil {
		return nil, "", fmt.Errorf("trust store: %w", err)
	}
	// The version covers the CA file and the CRLs in use by their
	// signatures, which CompileDER has checked and which therefore stand
	// for their content: hashing a million-entry CRL's DER again was a
	// fifth of a reload's CPU. A CRL that a newer one of its scope
	// supersedes changes nothing, and no version either.
	for _, info := range v.CRLs() {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(info.Signature)))
		h.Write(n[:])
		h.Write(info.Signature)
	}
	return v, hex.EncodeToString(h.Sum(nil)[:12]), nil
}

// crlFetcher keeps the last good copy of each of a set of CRL URLs. A URL
// is fetched when first listed, then again after refresh or at 90% of the
// way from its CRL's thisUpdate to its nextUpdate, whichever is first,
// conditionally (If-None-Match), so that an unchanged CRL costs a 304. A
// failed fetch is retried after min(refresh, 30s) while the last good copy
// stays in use. Its owner serializes the calls.
type crlFetcher struct {
	client  *http.Client // nil: a client with a 30 s timeout
	refresh time.Duration
	now     func() time.Time
	urls    map[string]*fetched
}

// fetched is the last good copy of a CRL URL.
type fetched struct {
	der  []byte
	etag string    // the server's validator, sent back as If-None-Match
	next time.Time // when to fetch again
}

// update fetches every URL of urls that is due (every one with force) and
// forgets the copies of URLs no longer listed. It reports whether a copy
// changed. A URL that has no copy yet and cannot be fetched stops it with
// err: the issuer would otherwise go unchecked. A URL that fails but has a
// copy keeps it, and its error is returned in soft.
func (f *crlFetcher) update(ctx context.Context, urls []string, force bool) (changed bool, soft []error, err error) {
	if f.urls == nil {
		f.urls = map[string]*fetched{}
	}
	listed := make(map[string]bool, len(urls))
	now := f.now()
	for _, u := range urls {
		listed[u] = true
		c := f.urls[u]
		if c != nil && !force && now.Before(c.next) {
			continue
		}
		der, etag, next, err := f.fetch(ctx, u, c, now)
		if err != nil {
			if c == nil {
				return changed, soft, fmt.Errorf("CRL %s: %w", u, err)
			}
			c.next = now.Add(min(f.refresh, 30*time.Second))
			soft = append(soft, fmt.Errorf("trust store: CRL %s (keeping the copy fetched before): %w", u, err))
			continue
		}
		if c == nil || !bytes.Equal(c.der, der) {
			changed = true
		}
		f.urls[u] = &fetched{der: der, etag: etag, next: next}
	}
	for u := range f.urls {
		if !listed[u] {
			delete(f.urls, u)
			changed = true
		}
	}
	return changed, soft, nil
}

// copies returns the copies of urls by URL, for the snapshot file.
func (f *crlFetcher) copies(urls []string) map[string][]byte {
	out := make(map[string][]byte, len(urls))
	for _, u := range urls {
		if c := f.urls[u]; c != nil {
			out[u] = c.der
		}
	}
	return out
}

// seed gives the fetcher copies of CRL URLs read from a snapshot file, due
// to be fetched again at the next update; without an ETag, the first fetch
// downloads them whole.
func (f *crlFetcher) seed(copies map[string][]byte) {
	if f.urls == nil {
		f.urls = map[string]*fetched{}
	}
	for u, der := range copies {
		f.urls[u] = &fetched{der: der}
	}
}

// ders returns the copies of urls, in order; update must have given each
// one a copy.
func (f *crlFetcher) ders(urls []string) [][]byte {
	out := make([][]byte, 0, len(urls))
	for _, u := range urls {
		out = append(out, f.urls[u].der)
	}
	return out
}

// fetch downloads one CRL, conditionally on the copy held (prev, may be
// nil), and works out when to fetch it again.
func (f *crlFetcher) fetch(ctx context.Context, url string, prev *fetched, now time.Time) (der []byte, etag string, next time.Time, err error) {
	client := f.client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, "", time.Time{}, err
	}
	if prev != nil && prev.etag != "" {
		req.Header.Set("If-None-Match", prev.etag)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", time.Time{}, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified && prev != nil:
		der, etag = prev.der, prev.etag
	case resp.StatusCode != http.StatusOK:
		return nil, "", time.Time{}, fmt.Errorf("HTTP %s", resp.Status)
	default:
		body, err := io.ReadAll(io.LimitReader(resp.Body, MaxCRLBytes+1))
		if err != nil {
			return nil, "", time.Time{}, err
		}
		if len(body) > MaxCRLBytes {
			return nil, "", time.Time{}, fmt.Errorf("larger than %d bytes", MaxCRLBytes)
		}
		if der, err = crlDER(body); err != nil {
			return nil, "", time.Time{}, err
		}
		etag = resp.Header.Get("ETag")
	}
	hdr, err := verify.ParseCRLHeader(der)
	if err != nil {
		return nil, "", time.Time{}, err
	}
	next = now.Add(f.refresh)
	if !hdr.NextUpdate.IsZero() {
		// Well before nextUpdate: at 90% of the CRL's validity.
		early := hdr.ThisUpdate.Add(hdr.NextUpdate.Sub(hdr.ThisUpdate) * 9 / 10)
		if early.Before(next) {
			next = early
		}
		if next.Before(now.Add(time.Second)) {
			next = now.Add(min(f.refresh, 30*time.Second))
		}
	}
	return der, etag, next, nil
}

// crlDER accepts a CRL in DER or PEM ("X509 CRL").
func crlDER(b []byte) ([]byte, error) {
	trimmed := bytes.TrimSpace(b)
	if !bytes.HasPrefix(trimmed, []byte("-----BEGIN")) {
		return b, nil
	}
	block, _ := pem.Decode(trimmed)
	if block == nil || block.Type != "X509 CRL" {
		return nil, errors.New("not a PEM X509 CRL")
	}
	return block.Bytes, nil
}

// parseCertsPEM reads every CERTIFICATE block of a PEM bundle.
func parseCertsPEM(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for len(b) > 0 {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out), err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return out, nil
}

// trustState holds a verify listener's current Verifier and refreshes it
// from its source. current is lock-free; refresh is serialized.
type trustState struct {
	listener string
	src      TrustSource
	cur      atomic.Pointer[verify.Verifier]

	mu      sync.Mutex
	version string
	lastErr string
}

func newTrustState(ctx context.Context, listener string, src TrustSource) (*trustState, error) {
	t := &trustState{listener: listener, src: src}
	v, version, err := src.Load(ctx)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, errors.New("trust store: the source returned no verifier")
	}
	t.cur.Store(v)
	t.version = version
	returnMemoryAfter(nil, v)
	return t, nil
}

// bigCRLEntries is the number of revoked serials in a trust store above
// which compiling it, or replacing it, is followed by a garbage collection.
const bigCRLEntries = 100_000

// memoryReturns counts the collections returnMemoryAfter started.
var (
	memoryReturns atomic.Int64
	returning     atomic.Bool
)

// returnMemoryAfter collects garbage, in the background, once a trust
// store with a large CRL has been compiled or replaced (old is the one
// replaced, nil at start). Compiling a million-entry CRL allocates several
// times what the result keeps, and the replaced store is garbage too; with
// the gateway's GOGC of 400 the collector would let that sit until the
// heap is five times the live size. A reload is rare and a collection
// costs tens of milliseconds of one core, so the gateway returns that
// memory at once instead.
func returnMemoryAfter(old, cur *verify.Verifier) {
	if crlEntries(old) < bigCRLEntries && crlEntries(cur) < bigCRLEntries {
		return
	}
	if !returning.CompareAndSwap(false, true) {
		return
	}
	memoryReturns.Add(1)
	go func() {
		defer returning.Store(false)
		debug.FreeOSMemory()
	}()
}

// crlEntries returns the number of revoked serials on v's CRLs.
func crlEntries(v *verify.Verifier) int {
	if v == nil {
		return 0
	}
	n := 0
	for _, c := range v.CRLs() {
		n += c.Entries + c.DeltaEntries
	}
	return n
}

func (t *trustState) current() *verify.Verifier { return t.cur.Load() }

// expired returns the error that refuses every client certificate while
// the source's trust state is too old to enforce (see Aging), else nil. It
// takes the reason of a stale CRL under the fail-closed policy: what is too
// old is the revocation state the gateway enforces.
func (t *trustState) expired(now time.Time) error {
	a, ok := t.src.(Aging)
	if !ok {
		return nil
	}
	if age, expired := a.Age(now); expired {
		return &verify.Error{Reason: verify.ClientCertCrlExpired,
			Err: fmt.Errorf("the trust store snapshot was last confirmed by the control plane %s ago, more than control_plane.max_staleness", age.Round(time.Second))}
	}
	return nil
}

// refresh loads from the source and swaps in a new Verifier when the
// version changed. It returns the version now in use, whether it swapped,
// and an error the first time it is seen (repeats return nil, to keep
// polling quiet).
func (t *trustState) refresh(ctx context.Context, force bool) (string, bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if force {
		if inv, ok := t.src.(Invalidator); ok {
			inv.Invalidate()
		}
	}
	v, version, err := t.src.Load(ctx)
	swapped := false
	if v != nil && version != t.version {
		old := t.cur.Swap(v)
		t.version, swapped = version, true
		returnMemoryAfter(old, v)
	}
	if err != nil {
		if err.Error() == t.lastErr && !force {
			return t.version, swapped, nil
		}
		t.lastErr = err.Error()
		return t.version, swapped, err
	}
	t.lastErr = ""
	return t.version, swapped, nil
}
