package revocation

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trustgate/trustgate/internal/store"
)

// responder is a CA's delegated OCSP responder (RFC 6960 §4.2.2.2): a
// P-256 key that lives only in this process and the certificate the CA
// issued for it.
type responder struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
	// tail is the certs field of every BasicOCSPResponse it signs:
	// [0] EXPLICIT SEQUENCE OF Certificate, holding its certificate.
	tail []byte
	// keyHash identifies it in responses (ResponderID byKey, §4.2.1).
	keyHash [sha1.Size]byte
	// rotateAt is half-way through its certificate's lifetime.
	rotateAt time.Time
}

// due reports whether r should be replaced at now: half of its lifetime
// has passed, and a new certificate can outlive it (a responder
// certificate never outlives its CA's, so near the CA's end there is
// nothing to gain).
func (r *responder) due(now, caNotAfter time.Time) bool {
	return !now.Before(r.rotateAt) && r.cert.NotAfter.Before(caNotAfter)
}

// usable reports whether r may sign at now.
func (r *responder) usable(now time.Time) bool {
	return now.Before(r.cert.NotAfter) && !now.Before(r.cert.NotBefore.Add(-time.Minute))
}

// responderRetry is how long after a failure to issue a responder
// certificate requests fail fast instead of trying again.
const responderRetry = 10 * time.Second

// newResponder generates a key and has the CA certify it, then checks that
// the certificate can sign answers that clients accept.
func (s *Service) newResponder(ctx context.Context, a *authority, now time.Time) (*responder, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	cert, err := s.cfg.Responders.IssueOCSPResponder(ctx, a.id, key.Public(), s.cfg.ResponderValidity)
	if err != nil {
		return nil, fmt.Errorf("issue OCSP responder certificate: %w", err)
	}
	switch pub, _ := cert.PublicKey.(*ecdsa.PublicKey); {
	case pub == nil || !pub.Equal(key.Public()):
		return nil, errors.New("OCSP responder certificate is not for the responder key")
	case cert.CheckSignatureFrom(a.cert) != nil:
		return nil, errors.New("OCSP responder certificate is not signed by its CA")
	case !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning):
		return nil, errors.New("OCSP responder certificate lacks the OCSPSigning extended key usage")
	case !now.Before(cert.NotAfter):
		return nil, fmt.Errorf("OCSP responder certificate expires at %s, already", cert.NotAfter.Format(time.RFC3339))
	}
	spk, err := subjectPublicKey(cert)
	if err != nil {
		return nil, err
	}
	r := &responder{
		key: key, cert: cert,
		tail:     appendTLV(nil, tagContext0, appendTLV(nil, tagSequence, cert.Raw)),
		keyHash:  sha1.Sum(spk),
		rotateAt: cert.NotBefore.Add(cert.NotAfter.Sub(cert.NotBefore) / 2),
	}
	s.log.Info("revocation: OCSP responder certificate issued", logCA, a.name,
		logSerial, cert.SerialNumber.Text(16), "not_after", cert.NotAfter)
	return r, nil
}

// responderFor returns a's responder usable at now, issuing one if there
// is none or it expired.
func (s *Service) responderFor(ctx context.Context, a *authority, now time.Time) (*responder, error) {
	if r := a.resp.Load(); r != nil && r.usable(now) {
		return r, nil
	}
	a.respMu.Lock()
	defer a.respMu.Unlock()
	if r := a.resp.Load(); r != nil && r.usable(now) {
		return r, nil
	}
	if f := a.respFailed.Load(); f != nil && now.Sub(f.at) < responderRetry {
		return nil, f.err
	}
	r, err := s.newResponder(ctx, a, now)
	if err != nil {
		s.log.Warn("revocation: no OCSP responder", logCA, a.name, logErr, err)
		a.respFailed.Store(&failure{at: now, err: err})
		return nil, err
	}
	a.respFailed.Store(nil)
	a.resp.Store(r)
	return r, nil
}

type failure struct {
	at  time.Time
	err error
}

// rotateResponder replaces a's responder at half its lifetime, so that
// the new one exists well before the old one expires. Answers are
// re-signed by the next refresh (refreshAnswers treats an answer of
// another responder as due). A failure keeps the old responder and is
// tried again at the next sweep.
func (s *Service) rotateResponder(ctx context.Context, a *authority, now time.Time) {
	r := a.resp.Load()
	if r == nil || !r.due(now, a.cert.NotAfter) {
		return
	}
	a.respMu.Lock()
	defer a.respMu.Unlock()
	if a.resp.Load() != r {
		return
	}
	nr, err := s.newResponder(ctx, a, now)
	if err != nil {
		if msg := err.Error(); msg != a.rotateErr {
			a.rotateErr = msg
			s.log.Warn("revocation: OCSP responder not rotated; the current one stays until it expires",
				logCA, a.name, "not_after", r.cert.NotAfter, logErr, err)
		}
		return
	}
	a.rotateErr = ""
	a.resp.Store(nr)
}

// answer is a signed OCSPResponse with one SingleResponse, cached and
// immutable (but for hit).
type answer struct {
	head, tail []byte // the response is head followed by tail
	certID     []byte
	serialHex  string
	st         status
	resp       *responder

	thisUpdate, nextUpdate time.Time
	refreshAt              time.Time // the sweep re-signs it from then
	serveUntil             time.Time // served from the cache until then

	// HTTP header values (RFC 5019 §6.2), computed once.
	hdrLength, hdrLastModified, hdrExpires, hdrETag []string

	hit  atomic.Bool // served since signed
	idle bool        // re-signed once already without being served
}

// due reports whether a should be re-signed at now.
func (a *answer) due(now time.Time) bool { return !now.Before(a.refreshAt) }

// servable reports whether a may be served from the cache at now. Past
// it (the sweep fell behind) a request re-signs.
func (a *answer) servable(now time.Time) bool { return now.Before(a.serveUntil) }

// newAnswer signs the answer st for certID with r at now.
func (s *Service) newAnswer(r *responder, certID []byte, serialHex string, st status, now time.Time) (*answer, error) {
	this := now.Truncate(time.Second)
	next := earliest(this.Add(s.cfg.OCSPValidity), r.cert.NotAfter)
	head, err := r.signResponse(this, []single{{certID, st}}, nil, this, next)
	if err != nil {
		return nil, fmt.Errorf("sign OCSP answer: %w", err)
	}
	v := next.Sub(this)
	tag := sha256.Sum256(head)
	return &answer{
		head: head, tail: r.tail, certID: certID, serialHex: serialHex, st: st, resp: r,
		thisUpdate: this, nextUpdate: next,
		refreshAt: this.Add(v / 2), serveUntil: this.Add(v * 3 / 4),
		hdrLength:       []string{strconv.Itoa(len(head) + len(r.tail))},
		hdrLastModified: []string{this.Format(http.TimeFormat)},
		hdrExpires:      []string{next.Format(http.TimeFormat)},
		hdrETag:         []string{`"` + hex.EncodeToString(tag[:12]) + `"`},
	}, nil
}

// cacheShards spreads a cache over locks; serials are random, so their
// last octet spreads evenly.
const cacheShards = 16

// answerCache maps serial magnitudes to answers.
type answerCache struct {
	shards [cacheShards]struct {
		mu sync.RWMutex
		m  map[string]*answer
		_  [64]byte // keep shards on separate cache lines
	}
}

func (c *answerCache) init() {
	for i := range c.shards {
		c.shards[i].m = map[string]*answer{}
	}
}

func shardOf(serial string) int { return int(serial[len(serial)-1]) % cacheShards }

// get returns the answer for a serial magnitude, or nil.
func (c *answerCache) get(serial []byte) *answer {
	sh := &c.shards[int(serial[len(serial)-1])%cacheShards]
	sh.mu.RLock()
	a := sh.m[string(serial)]
	sh.mu.RUnlock()
	return a
}

// put caches a unless ok, checked under the shard's lock, says no. It
// reports whether the cache grew.
func (c *answerCache) put(serial string, a *answer, ok func() bool) (added, stored bool) {
	sh := &c.shards[shardOf(serial)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if !ok() {
		return false, false
	}
	_, had := sh.m[serial]
	sh.m[serial] = a
	return !had, true
}

// replace swaps old for a (nil a: removes old) if old is still cached;
// it reports whether it did.
func (c *answerCache) replace(serial string, old, a *answer) bool {
	sh := &c.shards[shardOf(serial)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.m[serial] != old {
		return false
	}
	if a == nil {
		delete(sh.m, serial)
	} else {
		sh.m[serial] = a
	}
	return true
}

// cached is one entry of a cache snapshot.
type cached struct {
	variant int
	serial  string
	ans     *answer
}

// collect appends to dst the entries of c for which keep is true.
func (c *answerCache) collect(dst []cached, variant int, keep func(*answer) bool) []cached {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		for serial, a := range sh.m {
			if keep(a) {
				dst = append(dst, cached{variant, serial, a})
			}
		}
		sh.mu.RUnlock()
	}
	return dst
}

// response is what the responder sends: head then tail, and the cached
// answer it came from when it may be cached by HTTP caches.
type response struct {
	head, tail []byte
	ans        *answer
}

var (
	malformedResponse    = response{head: errorResponse(respMalformedRequest)}
	unauthorizedResponse = response{head: errorResponse(respUnauthorized)}
	tryLaterResponse     = response{head: errorResponse(respTryLater)}
	internalResponse     = response{head: errorResponse(respInternalError)}
)

// respond answers the DER OCSPRequest der sent to the responder of the
// CA ref (a name or an ID) at now. A request for one certificate without
// a nonce is answered from the cache, or signed once and cached; a
// request with a nonce or several CertIDs is signed for itself. Every
// outcome is an OCSPResponse.
func (s *Service) respond(ctx context.Context, ref string, der []byte, now time.Time) response {
	var req ocspRequest
	if err := parseRequest(der, &req); err != nil {
		s.met.count(respMalformedRequest, 0)
		return malformedResponse
	}
	a, err := s.authorityByRef(ctx, ref)
	if err != nil {
		if errors.Is(err, errNoCA) {
			s.met.count(respUnauthorized, 0)
			return unauthorizedResponse
		}
		s.log.Warn("revocation: OCSP request not answered", logCA, ref, logErr, err)
		s.met.count(respTryLater, 0)
		return tryLaterResponse
	}
	for i := range req.ids {
		if !a.issued(&req.ids[i]) {
			// One responder certificate speaks for one CA (RFC 6960
			// §4.2.2.2); a CertID of another issuer cannot be answered.
			s.met.count(respUnauthorized, 0)
			return unauthorizedResponse
		}
	}
	if len(req.ids) == 1 && !req.hasNonce {
		id := &req.ids[0]
		if id.serial != nil {
			if ans := a.cache[id.variant()].get(id.serial); ans != nil && ans.servable(now) && ans.resp.usable(now) {
				if !ans.hit.Load() {
					ans.hit.Store(true)
				}
				s.met.count(respSuccessful, ans.st.kind)
				return response{ans.head, ans.tail, ans}
			}
		}
		ans, err := s.fill(ctx, a, id, now)
		if err != nil {
			s.log.Warn("revocation: OCSP request not answered", logCA, a.name, logErr, err)
			s.met.count(respTryLater, 0)
			return tryLaterResponse
		}
		ans.hit.Store(true)
		s.met.count(respSuccessful, ans.st.kind)
		return response{ans.head, ans.tail, ans}
	}
	return s.respondFresh(ctx, a, &req, now)
}

// respondFresh signs an answer for a request with a nonce or several
// CertIDs. Statuses come from fresh cached answers where there are some.
func (s *Service) respondFresh(ctx context.Context, a *authority, req *ocspRequest, now time.Time) response {
	r, err := s.responderFor(ctx, a, now)
	if err != nil {
		s.met.count(respTryLater, 0)
		return tryLaterResponse
	}
	singles := make([]single, len(req.ids))
	for i := range req.ids {
		id := &req.ids[i]
		singles[i].certID = id.raw
		if id.serial == nil {
			singles[i].st = status{kind: statusUnknown}
			continue
		}
		if ans := a.cache[id.variant()].get(id.serial); ans != nil && ans.servable(now) {
			singles[i].st = ans.st
			continue
		}
		st, err := s.statusOf(ctx, a, serialHex(id.serial))
		if err != nil {
			s.log.Warn("revocation: OCSP request not answered", logCA, a.name, logErr, err)
			s.met.count(respTryLater, 0)
			return tryLaterResponse
		}
		singles[i].st = st
	}
	var nonce []byte
	if req.hasNonce {
		nonce = req.nonce
	}
	this := now.Truncate(time.Second)
	next := earliest(this.Add(s.cfg.OCSPValidity), r.cert.NotAfter)
	head, err := r.signResponse(this, singles, nonce, this, next)
	if err != nil {
		s.log.Error("revocation: cannot sign OCSP answer", logCA, a.name, logErr, err)
		s.met.count(respInternalError, 0)
		return internalResponse
	}
	for _, sr := range singles {
		s.met.count(respSuccessful, sr.st.kind)
	}
	return response{head: head, tail: r.tail}
}

// issued reports whether id names a certificate issued by a's key and name.
func (a *authority) issued(id *certID) bool {
	if id.hash < 0 {
		return false
	}
	h := &a.hashes[id.hash]
	return string(id.nameHash) == string(h.name) && string(id.keyHash) == string(h.key)
}

// serialHex formats a serial magnitude the way the store keeps serials:
// lower-case hex without leading zeros.
func serialHex(serial []byte) string {
	return strings.TrimLeft(hex.EncodeToString(serial), "0")
}

// statusOf reads the status of a's certificate serial in the store.
// A serial the CA never issued is unknown (RFC 6960 §2.2): the store
// holds every certificate the CA issued.
func (s *Service) statusOf(ctx context.Context, a *authority, serial string) (status, error) {
	if serial == "" {
		return status{kind: statusUnknown}, nil // zero or negative: never issued
	}
	c, err := s.cfg.Store.GetCertificateByCA(ctx, a.id, serial)
	if store.IsNotFound(err) {
		return status{kind: statusUnknown}, nil
	}
	if err != nil {
		return status{}, fmt.Errorf("read certificate %s: %w", serial, err)
	}
	return certStatus(c.Status, c.RevokedAt, c.Reason), nil
}

func certStatus(st store.CertStatus, revokedAt time.Time, reason int) status {
	if st != store.CertRevoked {
		return status{kind: statusGood}
	}
	return status{kind: statusRevoked, revokedAt: revokedAt.UTC().Truncate(time.Second), reason: reason}
}

// fill signs the answer for id at now from the store and caches it,
// unless its status is unknown (a cache of unknown serials would grow
// with every guess) or a Notify came in meanwhile (the status read may
// predate the change).
func (s *Service) fill(ctx context.Context, a *authority, id *certID, now time.Time) (*answer, error) {
	r, err := s.responderFor(ctx, a, now)
	if err != nil {
		return nil, err
	}
	gen := a.gen.Load()
	serial := serialHex(id.serial)
	st, err := s.statusOf(ctx, a, serial)
	if err != nil {
		return nil, err
	}
	ans, err := s.newAnswer(r, id.raw, serial, st, now)
	if err != nil {
		return nil, err
	}
	if st.kind != statusUnknown {
		added, _ := a.cache[id.variant()].put(string(id.serial), ans, func() bool { return a.gen.Load() == gen })
		if added {
			s.cacheEntries.Add(1)
		}
	}
	return ans, nil
}

// refreshMode says which cached answers refreshAnswers looks at.
type refreshMode int

const (
	// refreshAll checks every cached answer against the store and
	// re-signs those whose status changed (after a Notify that did not
	// say which certificates changed, or too many of them).
	refreshAll refreshMode = iota
	// refreshDue re-signs the answers past half their validity or signed
	// by a replaced responder, and drops those nobody asked for.
	refreshDue
)

// refreshAnswers re-signs a's cached answers per mode at now.
func (s *Service) refreshAnswers(ctx context.Context, a *authority, now time.Time, mode refreshMode) error {
	if a.resp.Load() == nil {
		return nil // nothing was ever signed for this CA
	}
	r, err := s.responderFor(ctx, a, now)
	if err != nil {
		// Without a responder nothing can be re-signed; answers past
		// their serving time are re-tried on request.
		return err
	}
	var items []cached
	for v := range a.cache {
		items = a.cache[v].collect(items, v, func(ans *answer) bool {
			return mode == refreshAll || ans.due(now) || ans.resp != r
		})
	}
	return s.resign(ctx, a, r, items, now)
}

// refreshSerials re-signs the cached answers, in every CertID variant, of
// the certificates of a whose serials (lower-case hex) changed status. The
// cost follows the number of serials, not the size of the cache or of the
// CA's revoked list. A serial with no cached answer needs nothing: its
// first request reads the store (and fill does not cache an answer whose
// status read may predate the change).
func (s *Service) refreshSerials(ctx context.Context, a *authority, serials map[string]struct{}, now time.Time) error {
	if a.resp.Load() == nil {
		return nil // nothing was ever signed for this CA
	}
	var items []cached
	for hex := range serials {
		key, ok := cacheKey(hex)
		if !ok {
			continue // not a serial the CA can have issued: never cached
		}
		for v := range a.cache {
			if ans := a.cache[v].get([]byte(key)); ans != nil {
				items = append(items, cached{v, key, ans})
			}
		}
	}
	if len(items) == 0 {
		return nil
	}
	r, err := s.responderFor(ctx, a, now)
	if err != nil {
		return err
	}
	return s.resign(ctx, a, r, items, now)
}

// cacheKey returns the key of the answer cache for a serial in lower-case
// hex: the magnitude's octets, without the sign octet of its DER INTEGER.
func cacheKey(serialHex string) (string, bool) {
	n, err := serialBytes(nil, serialHex)
	if err != nil {
		return "", false
	}
	if n[0] == 0 {
		n = n[1:]
	}
	return string(n), true
}

// resign reads the status of each item's certificate and re-signs with r
// the answers whose status changed or that are due at now; it drops the
// answers of certificates the store no longer has and those re-signed once
// already without being served.
func (s *Service) resign(ctx context.Context, a *authority, r *responder, items []cached, now time.Time) error {
	if len(items) == 0 {
		return nil
	}
	sts, err := s.statuses(ctx, a, items)
	if err != nil {
		return err
	}
	for i, it := range items {
		st, old := sts[i], it.ans
		changed := st != old.st
		due := old.due(now) || old.resp != r
		hit := old.hit.Load()
		var na *answer
		switch {
		case st.kind == statusUnknown:
			// Gone from the store: nothing to answer from the cache.
		case !changed && !due:
			continue
		case !changed && !hit && old.idle:
			// Signed twice and never asked for: let it go.
		default:
			na, err = s.newAnswer(r, old.certID, old.serialHex, st, now)
			if err != nil {
				return err
			}
			na.idle = !hit
		}
		if a.cache[it.variant].replace(it.serial, old, na) && na == nil {
			s.cacheEntries.Add(-1)
		}
	}
	return nil
}

// statuses returns the store's status of each item's certificate. A few
// are looked up one by one; many are compared with one pass over the
// CA's revoked certificates, which costs what a CRL build does.
func (s *Service) statuses(ctx context.Context, a *authority, items []cached) ([]status, error) {
	sts := make([]status, len(items))
	if len(items) <= s.lookupMax {
		for i, it := range items {
			st, err := s.statusOf(ctx, a, it.ans.serialHex)
			if err != nil {
				return nil, err
			}
			sts[i] = st
		}
		return sts, nil
	}
	revoked := make(map[string]status, len(items))
	for _, it := range items {
		revoked[it.ans.serialHex] = status{kind: statusGood}
	}
	err := s.cfg.Store.ListRevoked(ctx, a.id, -1, time.Time{}, func(e store.RevokedEntry) error {
		if _, ok := revoked[string(e.Serial)]; ok {
			revoked[string(e.Serial)] = certStatus(store.CertRevoked, e.RevokedAt, e.Reason)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list revoked certificates: %w", err)
	}
	for i, it := range items {
		sts[i] = revoked[it.ans.serialHex]
	}
	return sts, nil
}

// earliest returns the earlier of two times.
func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
