package revocation

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trustgate/trustgate/internal/store"
)

// errCannotSign is returned (wrapped) when a CA's key is not available
// (pending, offline): its last CRL stays published.
var errCannotSign = errors.New("CA cannot sign")

// scope is one CRL of a CA: the full CRL or one partition's (RFC 5280
// §5.2.5 calls what a CRL covers its scope). Each scope has its own CRL
// number sequence (RFC 5280 §5.2.3: numbers increase "for a given CRL
// scope and CRL issuer").
type scope struct {
	part      int    // partition for ListRevoked, -1 for the full CRL
	numberKey int    // the store's key for the scope's CRL numbers
	url       string // Issuing Distribution Point; "" for none

	// mu serializes builds, so that numbers are taken and CRLs published
	// in the same order: the served CRL number never goes back.
	mu  sync.Mutex
	cur atomic.Pointer[crl] // nil until first built
	// seen is the highest CRL number of the scope in the store that this
	// node has had the scope rebuilt for since (see catchUp).
	seen atomic.Int64
	// lastErr is the last reason a build failed, logged once per reason.
	lastErr string
}

// crl is one signed CRL, immutable once published.
type crl struct {
	der                    []byte
	entriesOff, entriesLen int // the revokedCertificates contents within der
	entries                int
	number                 int64
	thisUpdate, nextUpdate time.Time
	refreshAt              time.Time // republish at the latest then
	etag                   string    // of the DER; the PEM's adds "-pem"
	pem                    func() []byte
	// history is the changes that led to this CRL, for delta CRLs (full
	// scope only); deltas caches the delta CRLs signed from it, by base.
	// sum is the SHA-256 of der (full scope only): the next CRL's history
	// names this one by it as well as by number, so that a delta goes
	// only to a caller that holds these very bytes.
	sum        [sha256.Size]byte
	history    history
	deltas     sync.Map // int64 -> *deltaCRL
	deltaBases atomic.Int32
	deltaBytes atomic.Int64 // what the cached deltas' changes weigh
}

// entryBytes returns the encoded revokedCertificates entries: two CRLs
// with the same entry bytes list the same revocations.
func (c *crl) entryBytes() []byte { return c.der[c.entriesOff : c.entriesOff+c.entriesLen] }

// due reports whether c must be republished at now.
func (c *crl) due(now time.Time) bool { return !now.Before(c.refreshAt) }

// maxCRLReads bounds how many times newCRL reads a scope's list when the
// store reports that another builder took the number first. Each such
// conflict is another builder's success; past the bound the build fails
// and the change stays pending for the next try.
const maxCRLReads = 4

// buildMode says when buildScope builds.
type buildMode int

const (
	// buildIfDue builds a scope never built, or due for republication.
	buildIfDue buildMode = iota
	// buildIfChanged builds and publishes when the entries changed or
	// the scope is due (after Notify).
	buildIfChanged
	// buildAlways builds and publishes whatever was published before: as
	// Run starts, which on a control plane of several nodes is when this
	// node takes over publishing. A CRL this node built on request before
	// (a follower's) may carry a number below the last one another node
	// published; the new one takes the next number, so that the CRL served
	// never goes back across a failover.
	buildAlways
)

// buildCRLs builds every scope of a per mode; it returns the first error
// (errCannotSign when the CA cannot sign) after trying all scopes.
func (s *Service) buildCRLs(ctx context.Context, a *authority, now time.Time, mode buildMode) error {
	var first error
	for _, sc := range a.scopes {
		if err := s.buildScope(ctx, a, sc, now, mode); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// buildScope builds, signs and publishes the CRL of one scope at now,
// unless mode says there is nothing to do. A failure leaves the last CRL
// published.
func (s *Service) buildScope(ctx context.Context, a *authority, sc *scope, now time.Time, mode buildMode) error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	cur := sc.cur.Load()
	if cur != nil && mode == buildIfDue && !cur.due(now) {
		return nil
	}
	c, err := s.newCRL(ctx, a, sc, now, cur, mode == buildIfChanged)
	if err != nil {
		if msg := err.Error(); msg != sc.lastErr {
			sc.lastErr = msg
			level := slog.LevelWarn
			if errors.Is(err, errCannotSign) && cur != nil {
				level = slog.LevelInfo
			}
			s.log.Log(ctx, level, "revocation: CRL not republished; the last one stays", logCA, a.name, logPartition, sc.part, logErr, err)
		}
		return err
	}
	sc.lastErr = ""
	if c == nil {
		return nil // unchanged
	}
	sc.cur.Store(c)
	if sc.part < 0 {
		s.met.crlEntries.WithLabelValues(a.name).Set(float64(c.entries))
	}
	s.log.Debug("revocation: CRL published", logCA, a.name, logPartition, sc.part, logNumber, c.number, logEntries, c.entries)
	return nil
}

// newCRL builds the CRL of a scope at now. With skipUnchanged, it returns
// nil when prev lists the same entries and is not due, so that a change
// elsewhere in the CA costs this scope no CRL number.
func (s *Service) newCRL(ctx context.Context, a *authority, sc *scope, now time.Time, prev *crl, skipUnchanged bool) (*crl, error) {
	signer, issuer, err := s.cfg.Keys.Signer(ctx, a.id)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errCannotSign, err)
	}
	start := time.Now()
	thisUpdate := now.Truncate(time.Second)
	nextUpdate := thisUpdate.Add(s.cfg.CRLValidity)
	sizeHint := 0
	if prev != nil {
		sizeHint = prev.entriesLen + prev.entriesLen/8
	}
	q := store.CRLQuery{CAID: a.id, Partition: sc.part, NumberPartition: sc.numberKey}
	if !s.cfg.KeepExpired {
		q.ExpiresAfter = s.expiryCutoff(thisUpdate)
	}
	var (
		b      *crlBuilder
		number int64
	)
	// The store reads the list and takes the number together, so that a
	// higher number, which another node may have taken, never lists less
	// than a lower one. A store may refuse the number when another
	// builder of the scope took one since the list was read: then the
	// list is read again, from a later snapshot.
	for attempt := 1; ; attempt++ {
		if b, err = newCRLBuilder(issuer, signer.Public(), thisUpdate, nextUpdate, sizeHint); err != nil {
			return nil, err
		}
		number, err = s.cfg.Store.ReadCRL(ctx, q, func(e store.RevokedEntry) error {
			return b.add(e.Serial, e.RevokedAt, e.Reason)
		}, func() bool {
			return !skipUnchanged || prev == nil || prev.due(now) || !bytes.Equal(prev.entryBytes(), b.entryBytes())
		})
		if errors.Is(err, store.ErrConflict) && attempt < maxCRLReads {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read revoked certificates and CRL number: %w", err)
		}
		break
	}
	if number == 0 {
		return nil, nil // unchanged: no number used up
	}
	if prev != nil && number <= prev.number {
		// The store broke its contract; publishing would go backwards.
		return nil, fmt.Errorf("CRL number %d is not above the published %d", number, prev.number)
	}
	var idp []byte
	if sc.url != "" {
		if idp, err = issuingDistributionPoint(sc.url); err != nil {
			return nil, err
		}
	}
	der, off, n, err := b.finish(number, idp, nil, signer)
	if err != nil {
		return nil, err
	}
	c := &crl{
		der: der, entriesOff: off, entriesLen: n, entries: b.n, number: number,
		thisUpdate: thisUpdate, nextUpdate: nextUpdate,
		refreshAt: thisUpdate.Add(s.cfg.CRLValidity / 2),
		etag:      `"` + strconv.FormatInt(number, 10) + `"`,
	}
	if sc.part < 0 {
		c.sum = sha256.Sum256(der)
		if prev != nil {
			c.history = s.nextHistory(a, prev, c)
		}
	}
	s.met.crlBuild.Observe(time.Since(start).Seconds())
	c.pem = sync.OnceValue(func() []byte {
		return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	})
	return c, nil
}

// nextHistory returns the history of the full CRL c, built after prev:
// prev's, with the step between them. When the step cannot be had (too
// many changes, a CRL that does not parse), the history starts afresh at
// c, and gateways at older bases get the full CRL.
func (s *Service) nextHistory(a *authority, prev, c *crl) history {
	changes, err := diffEntries(prev.entryBytes(), c.entryBytes(), s.cfg.DeltaBytes)
	if err != nil {
		s.log.Info("revocation: no delta CRL from earlier CRLs to this one", logCA, a.name, logNumber, c.number, logErr, err)
		return history{}
	}
	st := &step{from: prev.number, fromSum: prev.sum, to: c.number, at: c.thisUpdate, changes: changes, size: 64}
	for _, ch := range changes {
		st.size += ch.size()
	}
	return prev.history.then(st, s.cfg.DeltaSteps, s.cfg.DeltaBytes)
}

// expiryCutoff is the NotAfter a revoked certificate needs to stay on a
// CRL issued at thisUpdate. RFC 5280 §3.3: an entry "MUST NOT be removed
// from the CRL until it appears on one regularly scheduled CRL issued
// beyond the revoked certificate's validity period". CRLs are issued at
// least every half validity, so an entry kept for one validity after
// expiry is on at least one CRL issued after it.
func (s *Service) expiryCutoff(thisUpdate time.Time) time.Time {
	return thisUpdate.Add(-s.cfg.CRLValidity)
}

// issuingDistributionPoint returns the DER IssuingDistributionPoint (RFC
// 5280 §5.2.5) naming url as the only distribution point. It does not set
// onlyContainsUserCerts: a CA's CRL also lists the subordinate CA
// certificates it revoked.
func issuingDistributionPoint(url string) ([]byte, error) {
	type distributionPointName struct {
		FullName []asn1.RawValue `asn1:"optional,tag:0"`
	}
	type issuingDistributionPoint struct {
		DistributionPoint distributionPointName `asn1:"optional,tag:0"`
	}
	return asn1.Marshal(issuingDistributionPoint{
		DistributionPoint: distributionPointName{
			// GeneralName uniformResourceIdentifier [6] IA5String
			FullName: []asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte(url)}},
		},
	})
}

// crlBuilder encodes a CertificateList (RFC 5280 §5.1) in one buffer:
// entries are appended as they stream from the store, after room left
// for the headers whose lengths are known only at the end, so memory is
// the DER of the CRL and nothing per entry.
type crlBuilder struct {
	buf        []byte // [0:reserve) is for the headers; entries follow
	reserve    int
	n          int
	fixed      []byte // version, signature, issuer, thisUpdate, nextUpdate
	thisUpdate time.Time
	alg        *sigAlg
	issuer     *x509.Certificate
	serial     []byte // scratch for one serial
}

// reasonExtensions holds, per reason code, the crlEntryExtensions holding
// just that reasonCode (RFC 5280 §5.3.1).
var reasonExtensions = func() (r [256][]byte) {
	for code := range r {
		ext := appendExtension(nil, oidReasonCode, false, []byte{tagEnumerated, 1, byte(code)})
		r[code] = appendTLV(nil, tagSequence, ext)
	}
	return r
}()

func newCRLBuilder(issuer *x509.Certificate, pub crypto.PublicKey, thisUpdate, nextUpdate time.Time, sizeHint int) (*crlBuilder, error) {
	// The checks of x509.CreateRevocationList.
	if issuer.KeyUsage != 0 && issuer.KeyUsage&x509.KeyUsageCRLSign == 0 {
		return nil, errors.New("the CA certificate lacks the cRLSign key usage")
	}
	if len(issuer.SubjectKeyId) == 0 {
		return nil, errors.New("the CA certificate has no subject key identifier")
	}
	alg, err := signatureAlgorithm(pub)
	if err != nil {
		return nil, err
	}
	fixed := []byte{tagInteger, 1, 1} // version v2
	fixed = append(fixed, alg.id...)
	fixed = append(fixed, issuer.RawSubject...)
	fixed = appendTime(fixed, thisUpdate)
	fixed = appendTime(fixed, nextUpdate)
	// Outer, TBSCertList and revokedCertificates headers are at most 6
	// octets each.
	reserve := 6 + 6 + len(fixed) + 6
	return &crlBuilder{
		buf: make([]byte, reserve, reserve+max(sizeHint, 4096)), reserve: reserve,
		fixed: fixed, thisUpdate: thisUpdate, alg: alg, issuer: issuer,
		serial: make([]byte, 0, 32),
	}, nil
}

// add appends the entry of a revoked certificate: its serial (lower-case
// hex), revocation time and reason. The time is at most thisUpdate (RFC
// 5280 §5.1.2.6: the CRL lists what was known at thisUpdate); the reason
// code extension is left out for unspecified (RFC 5280 §5.3.1).
func (b *crlBuilder) add(serialHex []byte, revokedAt time.Time, reason int) error {
	serial, err := serialBytes(b.serial[:0], serialHex)
	if err != nil {
		return err
	}
	if reason < 0 || reason > 255 {
		return fmt.Errorf("serial %s: reason %d is not a CRLReason", serialHex, reason)
	}
	if revokedAt.IsZero() || revokedAt.After(b.thisUpdate) {
		revokedAt = b.thisUpdate
	}
	revokedAt = revokedAt.UTC()
	timeLen := 15
	if y := revokedAt.Year(); y >= 1950 && y < 2050 {
		timeLen = 13
	}
	n := headerLen(len(serial)) + len(serial) + 2 + timeLen
	if reason != 0 {
		n += len(reasonExtensions[reason])
	}
	if cap(b.buf)-len(b.buf) < n+6 {
		// Double: append's growth of large slices (1.25x) copies the
		// entries of a big CRL over and over.
		grown := make([]byte, len(b.buf), 2*cap(b.buf)+n+6)
		copy(grown, b.buf)
		b.buf = grown
	}
	b.buf = appendHeader(b.buf, tagSequence, n)
	b.buf = appendTLV(b.buf, tagInteger, serial)
	b.buf = appendTime(b.buf, revokedAt)
	if reason != 0 {
		b.buf = append(b.buf, reasonExtensions[reason]...)
	}
	b.n++
	return nil
}

// addRaw appends an entry already encoded (one of another CRL of the
// same issuer).
func (b *crlBuilder) addRaw(entry []byte) {
	b.buf = append(b.buf, entry...)
	b.n++
}

// addRemoval appends the entry of a delta CRL for a certificate that left
// the CRL (released from hold, or expired): its serial (the INTEGER's
// contents), the time it left, and the reason removeFromCRL (RFC 5280
// §5.3.1).
func (b *crlBuilder) addRemoval(serial []byte, at time.Time) {
	ext := reasonExtensions[reasonRemoveFromCRL]
	at = at.UTC()
	timeLen := 15
	if y := at.Year(); y >= 1950 && y < 2050 {
		timeLen = 13
	}
	b.buf = appendHeader(b.buf, tagSequence, headerLen(len(serial))+len(serial)+2+timeLen+len(ext))
	b.buf = appendTLV(b.buf, tagInteger, serial)
	b.buf = appendTime(b.buf, at)
	b.buf = append(b.buf, ext...)
	b.n++
}

// serialBytes appends to dst the contents of the DER INTEGER of a positive
// serial in hex.
func serialBytes[T ~string | ~[]byte](dst []byte, serialHex T) ([]byte, error) {
	h := serialHex
	if len(h) == 0 || len(h) > 64 {
		return nil, fmt.Errorf("serial %q is not a serial", serialHex)
	}
	dst = slices.Grow(dst, len(h)/2+2)
	if len(h)%2 == 1 {
		v, ok := unhex(h[0])
		if !ok {
			return nil, fmt.Errorf("serial %q is not hexadecimal", serialHex)
		}
		dst = append(dst, v)
		h = h[1:]
	}
	for i := 0; i < len(h); i += 2 {
		hi, lo := unhexTable[h[i]], unhexTable[h[i+1]]
		if hi|lo == 0xff {
			return nil, fmt.Errorf("serial %q is not hexadecimal", serialHex)
		}
		dst = append(dst, hi<<4|lo)
	}
	// Minimal encoding: no leading zero octets, then one zero octet if
	// the high bit is set, so that the INTEGER is positive.
	i := 0
	for i < len(dst)-1 && dst[i] == 0 {
		i++
	}
	dst = dst[i:]
	if len(dst) == 1 && dst[0] == 0 {
		return nil, fmt.Errorf("serial %q is zero", serialHex)
	}
	if dst[0]&0x80 != 0 {
		dst = append(dst[:1], dst...)
		dst[0] = 0
	}
	return dst, nil
}

func unhex(c byte) (byte, bool) {
	v := unhexTable[c]
	return v, v != 0xff
}

// unhexTable maps hex digits to their value and everything else to 0xff.
var unhexTable = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range "0123456789abcdef" {
		t[c] = byte(i)
	}
	for i, c := range "ABCDEF" {
		t[c] = byte(10 + i)
	}
	return t
}()

// entryBytes returns the entries added so far.
func (b *crlBuilder) entryBytes() []byte { return b.buf[b.reserve:] }

// finish completes the CRL with its extensions (authority key identifier,
// CRL number, the issuing distribution point idp, critical, when not nil,
// then the encoded extensions extra), signs it and returns the DER with the offset and length of the
// entries in it. The builder is spent.
func (b *crlBuilder) finish(number int64, idp, extra []byte, signer crypto.Signer) (der []byte, entriesOff, entriesLen int, err error) {
	entriesLen = len(b.buf) - b.reserve

	// crlExtensions [0] EXPLICIT Extensions (RFC 5280 §5.2)
	aki := appendTLV(nil, 0x80, b.issuer.SubjectKeyId) // keyIdentifier [0] IMPLICIT
	var exts []byte
	exts = appendExtension(exts, oidAuthorityKeyID, false, appendTLV(nil, tagSequence, aki))
	exts = appendExtension(exts, oidCRLNumber, false, appendInt64(nil, number))
	if idp != nil {
		// RFC 5280 §5.2.5: "this extension MUST be critical".
		exts = appendExtension(exts, oidIssuingDistPt, true, idp)
	}
	exts = append(exts, extra...)
	exts = appendTLV(nil, tagSequence, exts)
	exts = appendTLV(nil, tagContext0, exts)

	// RFC 5280 §5.1.2.6: with no entries the list is absent, not empty.
	listLen := 0
	if b.n > 0 {
		listLen = headerLen(entriesLen) + entriesLen
	}
	head := appendHeader(nil, tagSequence, len(b.fixed)+listLen+len(exts))
	head = append(head, b.fixed...)
	if b.n > 0 {
		head = appendHeader(head, tagSequence, entriesLen)
	}
	start := b.reserve - len(head)
	copy(b.buf[start:], head)
	b.buf = append(b.buf, exts...)

	tbs := b.buf[start:]
	sig, err := sign(signer, b.alg, tbs)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("sign CRL: %w", err)
	}
	// A signature that does not verify (a key that is not the
	// certificate's, a faulty signer) must not be published.
	if err := b.issuer.CheckSignature(b.alg.x509, tbs, sig); err != nil {
		return nil, 0, 0, fmt.Errorf("CRL signature does not verify with the CA certificate: %w", err)
	}
	b.buf = append(b.buf, b.alg.id...)
	b.buf = appendHeader(b.buf, tagBitString, len(sig)+1)
	b.buf = append(b.buf, 0) // no unused bits
	b.buf = append(b.buf, sig...)

	outer := appendHeader(nil, tagSequence, len(b.buf)-start)
	begin := start - len(outer)
	copy(b.buf[begin:], outer)
	return b.buf[begin:], b.reserve - begin, entriesLen, nil
}

// serveCRL serves the CRL of scope sc of a, building it first if it never
// was. pemForm picks PEM over DER.
func (s *Service) serveCRL(w http.ResponseWriter, r *http.Request, a *authority, sc *scope, pemForm bool) {
	now := s.now()
	c := sc.cur.Load()
	if c == nil || !now.Before(c.nextUpdate) {
		// Never built, or stale (Run is not keeping up): build now. A
		// failure serves what there is.
		_ = s.buildScope(r.Context(), a, sc, now, buildIfDue)
		c = sc.cur.Load()
	}
	if c == nil {
		w.Header().Set("Retry-After", "60")
		http.Error(w, "the CRL of this CA is not available yet", http.StatusServiceUnavailable)
		return
	}
	body, ctype, etag := c.der, "application/pkix-crl", c.etag
	if pemForm {
		body, ctype, etag = c.pem(), "application/x-pem-file", etag[:len(etag)-1]+`-pem"`
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("ETag", etag)
	h.Set("Expires", c.nextUpdate.Format(http.TimeFormat))
	h.Set("Cache-Control", "max-age="+strconv.Itoa(maxAge(now, c.nextUpdate, s.cfg.MaxAge))+", public, no-transform")
	http.ServeContent(w, r, "", c.thisUpdate, bytes.NewReader(body))
}

// maxAge is the Cache-Control max-age, in seconds, of something valid
// until next, served at now: the time left, capped at limit.
func maxAge(now, next time.Time, limit time.Duration) int {
	d := min(next.Sub(now), limit)
	if d <= 0 {
		return 0
	}
	return int(d / time.Second)
}

// CurrentCRL returns the DER of the full CRL of the CA with ID caID, the one
// served at /crl/{name}.crl: the CRL [Service.Run] last published, built
// now if none was built yet or it is past its nextUpdate. The same CRL is
// always the same slice, which callers must not modify, so a caller can
// tell a new CRL from the one it has by identity. A CA that does not exist
// or has no certificate, or whose key cannot sign a first CRL (offline,
// pending), is an error.
func (s *Service) CurrentCRL(ctx context.Context, caID string) ([]byte, error) {
	_, c, err := s.current(ctx, caID)
	if err != nil {
		return nil, err
	}
	return c.der, nil
}

// current returns the authority of the CA with ID caID and its current
// full CRL, as CurrentCRL says.
func (s *Service) current(ctx context.Context, caID string) (*authority, *crl, error) {
	a, err := s.authorityByID(ctx, caID)
	if err != nil {
		return nil, nil, err
	}
	sc := a.scopes[0]
	now := s.now()
	if c := sc.cur.Load(); c != nil && now.Before(c.nextUpdate) {
		return a, c, nil
	}
	berr := s.buildScope(ctx, a, sc, now, buildIfDue)
	c := sc.cur.Load()
	if c == nil {
		if berr == nil {
			berr = errors.New("not built")
		}
		return nil, nil, fmt.Errorf("CRL of CA %q: %w", a.name, berr)
	}
	return a, c, nil
}
