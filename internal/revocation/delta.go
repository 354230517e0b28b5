package revocation

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/maphash"
	"math/bits"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Delta CRLs (RFC 5280 §5.2.4) of a CA's full CRL, for gateways that hold
// an earlier full CRL: what changed since, signed by the CA like the full
// CRL, so that a revocation in a CA of a million revoked certificates
// costs a gateway a few hundred bytes instead of tens of megabytes.
//
// Each full CRL the service builds carries the history of the changes
// that led to it: per step between two consecutive full CRLs of this
// node, the entries added or changed and the serials removed (released
// from hold, or left after expiring). The build finds them by comparing
// the previous CRL's entries with the new ones, which it holds anyway; the
// history is bounded by steps and bytes. A delta from base B to the
// current CRL folds the steps since B, and is signed once and shared by
// every caller at B. A base this node has no history from (older than the
// history, built by another node, or from before a restart) has no delta:
// the caller gets the full CRL. Nor has a base whose content is not the
// one this node built under that number: each step names its base by
// number and by the SHA-256 of its DER, and a caller names its base by
// both too, so that a CRL number handed out twice (a store restored from
// a backup, a CA key shared by two deployments) cannot get a delta
// computed from other entries than those the caller holds.

// RFC 5280 §5.3.1: removeFromCRL is only used in delta CRLs, for a
// certificate released from hold or that left the CRL after expiring.
const reasonRemoveFromCRL = 8

// maxDeltaBases bounds the delta CRLs cached per full CRL: gateways at
// that many different bases are a fleet in disarray or a client asking on
// purpose, and past it a request from another base gets the full CRL, so
// that neither signatures nor memory grow with what callers ask for.
const maxDeltaBases = 32

// deltaCacheShare bounds, as a multiple of Config.DeltaBytes, what the
// delta CRLs cached per full CRL may weigh in all: each one is at most the
// history's DeltaBytes, and without this bound the deltas from maxDeltaBases
// old bases could hold maxDeltaBases times that. Past it, a caller at a
// base with no cached delta gets the full CRL.
const deltaCacheShare = 4

// Defaults of the delta history bounds.
const (
	DefaultDeltaSteps = 1024
	DefaultDeltaBytes = 8 << 20
)

// change is one certificate's change between two full CRLs.
type change struct {
	serial []byte // the contents of the entry's serial INTEGER
	entry  []byte // the new CRL entry (DER); nil when the certificate left the CRL
}

func (c change) size() int { return len(c.serial) + len(c.entry) + 48 }

// step is the changes from full CRL number from, whose DER has the
// SHA-256 fromSum, to number to.
type step struct {
	from, to int64
	fromSum  [sha256.Size]byte
	at       time.Time // thisUpdate of CRL to: the revocationDate of removals
	changes  []change
	size     int
}

// history is the steps that led to a full CRL, oldest first, each one's
// to the next one's from. It is immutable once built.
type history struct {
	steps []*step
	size  int
}

// then returns the history after st, bounded to maxSteps and maxBytes by
// dropping the oldest steps. A step larger than maxBytes leaves it empty.
func (h history) then(st *step, maxSteps, maxBytes int) history {
	if st.size > maxBytes || maxSteps < 1 {
		return history{}
	}
	out := history{steps: make([]*step, 0, min(len(h.steps)+1, maxSteps)), size: h.size + st.size}
	steps := append(h.steps[:len(h.steps):len(h.steps)], st)
	for len(steps) > maxSteps || out.size > maxBytes {
		out.size -= steps[0].size
		steps = steps[1:]
	}
	out.steps = append(out.steps, steps...)
	return out
}

// MinBaseDigest is the shortest prefix of a base CRL's SHA-256 that
// CRLSince takes as naming it.
const MinBaseDigest = 16

// since returns the steps from full CRL number base on, or false when the
// history does not reach back to base or the CRL it holds of that number
// is not the caller's: digest, a prefix of the SHA-256 of the caller's
// base of at least MinBaseDigest bytes, differs from the one built here.
// The number alone does not tell: after a restore from a backup the
// store hands out numbers again, and the same number can name CRLs of
// different contents.
func (h history) since(base int64, digest []byte) ([]*step, bool) {
	if len(digest) < MinBaseDigest || len(digest) > sha256.Size {
		return nil, false
	}
	for i, st := range h.steps {
		if st.from == base {
			if !bytes.Equal(st.fromSum[:len(digest)], digest) {
				return nil, false
			}
			return h.steps[i:], true
		}
	}
	return nil, false
}

// errTooManyChanges stops a diff past its byte budget.
var errTooManyChanges = errors.New("too many changes for a delta")

// changeList collects a diff's changes within a byte budget.
type changeList struct {
	changes []change
	left    int // bytes the budget has left
}

// add appends c, or fails with errTooManyChanges once the budget is spent.
func (l *changeList) add(c change) error {
	if l.left -= c.size(); l.left < 0 {
		return errTooManyChanges
	}
	l.changes = append(l.changes, c)
	return nil
}

// readEntry splits the first revokedCertificate off entries: the entry's
// DER and its serial's contents.
func readEntry(entries []byte) (entry, serial, rest []byte, err error) {
	in := cryptobyte.String(entries)
	var el cryptobyte.String
	if !in.ReadASN1Element(&el, cbasn1.SEQUENCE) {
		return nil, nil, nil, errors.New("malformed CRL entry")
	}
	body := el
	var inner, ser cryptobyte.String
	if !body.ReadASN1(&inner, cbasn1.SEQUENCE) || !inner.ReadASN1(&ser, cbasn1.INTEGER) || len(ser) == 0 {
		return nil, nil, nil, errors.New("malformed CRL entry serial")
	}
	return el, ser, in, nil
}

// diffEntries returns the changes from the CRL entries prev to next (the
// revokedCertificates contents of two CRLs): each entry of next that prev
// does not hold byte for byte, then a removal for each serial of prev that
// next does not list. It stops with errTooManyChanges past maxBytes of
// changes. It makes no assumption on the order of the entries: the common
// prefix and suffix are skipped at the cost of a comparison, and what is
// left between is matched by serial through a hash table.
func diffEntries(prev, next []byte, maxBytes int) ([]change, error) {
	if bytes.Equal(prev, next) {
		return nil, nil
	}
	// Skip the entries both lists start with, then those they end with.
	for len(prev) > 0 && len(next) > 0 {
		pe, _, prest, err := readEntry(prev)
		if err != nil {
			return nil, err
		}
		ne, _, nrest, err := readEntry(next)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(pe, ne) {
			break
		}
		prev, next = prest, nrest
	}
	prevOff, err := entryOffsets(prev)
	if err != nil {
		return nil, err
	}
	nextOff, err := entryOffsets(next)
	if err != nil {
		return nil, err
	}
	pi, ni := len(prevOff)-1, len(nextOff)-1
	for pi > 0 && ni > 0 && bytes.Equal(prev[prevOff[pi-1]:prevOff[pi]], next[nextOff[ni-1]:nextOff[ni]]) {
		pi, ni = pi-1, ni-1
	}
	prevOff, nextOff = prevOff[:pi+1], nextOff[:ni+1]
	if out, ok, err := mergeDiff(prev[:prevOff[pi]], next[:nextOff[ni]], maxBytes); err != nil || ok {
		return out, err
	}

	// Out of order: index what is left of prev by serial.
	n := len(prevOff) - 1
	size := 8
	if n > 4 {
		size = 1 << bits.Len(uint(2*n-1))
	}
	seed := maphash.MakeSeed()
	slots := make([]uint32, size)
	mask := uint64(size - 1)
	serialAt := func(i int) []byte {
		_, s, _, _ := readEntry(prev[prevOff[i]:prevOff[i+1]])
		return s
	}
	for i := range n {
		h := maphash.Bytes(seed, serialAt(i)) & mask
		for slots[h] != 0 {
			h = (h + 1) & mask
		}
		slots[h] = uint32(i + 1)
	}
	seen := make([]bool, n)
	out := changeList{left: maxBytes}
	add := out.add
	for j := 0; j < len(nextOff)-1; j++ {
		entry, serial, _, err := readEntry(next[nextOff[j]:nextOff[j+1]])
		if err != nil {
			return nil, err
		}
		found := -1
		for h := maphash.Bytes(seed, serial) & mask; slots[h] != 0; h = (h + 1) & mask {
			if i := int(slots[h] - 1); bytes.Equal(serialAt(i), serial) {
				found = i
				break
			}
		}
		if found >= 0 {
			seen[found] = true
			if bytes.Equal(prev[prevOff[found]:prevOff[found+1]], entry) {
				continue
			}
		}
		if err := add(change{serial: bytes.Clone(serial), entry: bytes.Clone(entry)}); err != nil {
			return nil, err
		}
	}
	for i, ok := range seen {
		if !ok {
			if err := add(change{serial: bytes.Clone(serialAt(i))}); err != nil {
				return nil, err
			}
		}
	}
	return out.changes, nil
}

// mergeDiff is diffEntries for entries in the order of their serials'
// hexadecimal form (the store's order: lower-case hex without leading
// zeros, compared as text), in one pass over both. It reports false when
// either list turns out to be in another order (a partitioned CA's full
// CRL lists its partitions one after the other), for the caller to match
// by hash instead.
func mergeDiff(prev, next []byte, maxBytes int) ([]change, bool, error) {
	out := changeList{left: maxBytes}
	add := out.add
	var pe, ps, ne, ns, lastP, lastN []byte
	// read takes the next entry of list, checking the order.
	read := func(list *[]byte, entry, serial, last *[]byte) (bool, error) {
		if len(*list) == 0 {
			*entry, *serial = nil, nil
			return true, nil
		}
		e, s, rest, err := readEntry(*list)
		if err != nil {
			return false, err
		}
		if s[0]&0x80 != 0 || (*last != nil && cmpSerialHex(*last, s) >= 0) {
			return false, nil
		}
		*list, *entry, *serial, *last = rest, e, s, s
		return true, nil
	}
	if ok, err := read(&prev, &pe, &ps, &lastP); !ok || err != nil {
		return nil, false, err
	}
	if ok, err := read(&next, &ne, &ns, &lastN); !ok || err != nil {
		return nil, false, err
	}
	for pe != nil || ne != nil {
		c := 0
		switch {
		case pe == nil:
			c = 1
		case ne == nil:
			c = -1
		default:
			c = cmpSerialHex(ps, ns)
		}
		var err error
		switch {
		case c < 0: // left the CRL
			err = add(change{serial: bytes.Clone(ps)})
		case c > 0: // new on the CRL
			err = add(change{serial: bytes.Clone(ns), entry: bytes.Clone(ne)})
		case !bytes.Equal(pe, ne): // changed (a hold revoked for good)
			err = add(change{serial: bytes.Clone(ns), entry: bytes.Clone(ne)})
		}
		if err != nil {
			return nil, false, err
		}
		if c <= 0 {
			if ok, err := read(&prev, &pe, &ps, &lastP); !ok || err != nil {
				return nil, false, err
			}
		}
		if c >= 0 {
			if ok, err := read(&next, &ne, &ns, &lastN); !ok || err != nil {
				return nil, false, err
			}
		}
	}
	return out.changes, true, nil
}

// cmpSerialHex compares two positive serials (INTEGER contents) as their
// lower-case hexadecimal forms without leading zeros compare as text.
func cmpSerialHex(a, b []byte) int {
	a, b = trimZeros(a), trimZeros(b)
	aodd, bodd := len(a) > 0 && a[0] < 0x10, len(b) > 0 && b[0] < 0x10
	if aodd == bodd {
		// The digits line up with the octets: compare those.
		return bytes.Compare(a, b)
	}
	la, lb := 2*len(a), 2*len(b)
	if aodd {
		la--
	}
	if bodd {
		lb--
	}
	for i := range min(la, lb) {
		if da, db := nibble(a, aodd, i), nibble(b, bodd, i); da != db {
			return int(da) - int(db)
		}
	}
	return la - lb
}

func trimZeros(x []byte) []byte {
	for len(x) > 0 && x[0] == 0 {
		x = x[1:]
	}
	return x
}

// nibble returns hex digit i of x, whose first octet gives one digit when
// odd.
func nibble(x []byte, odd bool, i int) byte {
	if odd {
		i++
	}
	if b := x[i/2]; i%2 == 0 {
		return b >> 4
	} else {
		return b & 0x0f
	}
}

// entryOffsets returns the offsets at which the entries of b start, and
// len(b) last. (A CRL is far below 4 GiB.)
func entryOffsets(b []byte) ([]uint32, error) {
	off := make([]uint32, 0, len(b)/32+1)
	for rest, at := b, 0; len(rest) > 0; {
		off = append(off, uint32(at))
		e, _, r, err := readEntry(rest)
		if err != nil {
			return nil, err
		}
		at += len(e)
		rest = r
	}
	return append(off, uint32(len(b))), nil
}

// fold merges steps into the entries of one delta CRL, ordered by serial:
// the last change of each certificate, a removal with the time of its step.
type foldedChange struct {
	change
	at time.Time
}

func fold(steps []*step) []foldedChange {
	last := map[string]foldedChange{}
	for _, st := range steps {
		for _, c := range st.changes {
			last[string(c.serial)] = foldedChange{change: c, at: st.at}
		}
	}
	out := make([]foldedChange, 0, len(last))
	for _, c := range last {
		out = append(out, c)
	}
	// By value: a longer minimal INTEGER is a larger positive one.
	slices.SortFunc(out, func(a, b foldedChange) int {
		if d := len(a.serial) - len(b.serial); d != 0 {
			return d
		}
		return bytes.Compare(a.serial, b.serial)
	})
	return out
}

// deltaCRL is a delta CRL signed once, on first request.
type deltaCRL struct {
	once   sync.Once
	der    []byte
	err    error
	weight int64 // what it holds of its full CRL's deltaBytes
}

// deltaExtension returns the encoded Delta CRL Indicator extension (RFC
// 5280 §5.2.4), critical, naming base.
func deltaExtension(base int64) []byte {
	return appendExtension(nil, oidDeltaCRLIndicator, true, appendInt64(nil, base))
}

// buildDelta encodes and signs the delta CRL of the full CRL c from base,
// whose changes are steps: the same issuer, thisUpdate, nextUpdate and
// CRL number as c (RFC 5280 §5.2.4: a delta and the complete CRL issued
// with it share their number), a critical Delta CRL Indicator naming base,
// and an entry per certificate whose status changed.
func (s *Service) buildDelta(ctx context.Context, a *authority, c *crl, base int64, steps []*step) ([]byte, error) {
	signer, issuer, err := s.cfg.Keys.Signer(ctx, a.id)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errCannotSign, err)
	}
	changes := fold(steps)
	hint := 0
	for _, ch := range changes {
		hint += ch.size()
	}
	b, err := newCRLBuilder(issuer, signer.Public(), c.thisUpdate, c.nextUpdate, hint)
	if err != nil {
		return nil, err
	}
	for _, ch := range changes {
		if ch.entry != nil {
			b.addRaw(ch.entry)
			continue
		}
		b.addRemoval(ch.serial, ch.at)
	}
	der, _, _, err := b.finish(c.number, nil, deltaExtension(base), signer)
	if err != nil {
		return nil, err
	}
	s.met.deltasSigned.Inc()
	return der, nil
}

// delta returns the delta CRL of c from base, signing it on the first
// request, or nil when c's history does not reach back to base (by number
// and digest, see history.since) or c has deltas from maxDeltaBases other
// bases already. Deltas are cached by number alone: within one history a
// number names one CRL, whose digest since checked.
func (s *Service) delta(ctx context.Context, a *authority, c *crl, base int64, digest []byte) ([]byte, error) {
	steps, ok := c.history.since(base, digest)
	if !ok {
		return nil, nil
	}
	v, ok := c.deltas.Load(base)
	if !ok {
		// A slot and the delta's weight (its changes, which bound its
		// size) are reserved before it is built.
		weight := int64(0)
		for _, st := range steps {
			weight += int64(st.size)
		}
		if notWorth(c, int(weight)) {
			// Not built, not kept, so that callers at old bases use up no
			// room. The weight is at least the delta's size (each change
			// counts its entry and more), so a delta that passes here is
			// seldom found not worth serving once built.
			return nil, nil
		}
		release := func() {
			c.deltaBases.Add(-1)
			c.deltaBytes.Add(-weight)
		}
		bases, total := c.deltaBases.Add(1), c.deltaBytes.Add(weight)
		if bases > maxDeltaBases || total > deltaCacheShare*int64(s.cfg.DeltaBytes) {
			release()
			return nil, nil
		}
		d := &deltaCRL{weight: weight}
		var loaded bool
		if v, loaded = c.deltas.LoadOrStore(base, d); loaded {
			release()
		}
	}
	d := v.(*deltaCRL)
	d.once.Do(func() {
		// Detached from the caller: the answer is shared by every caller
		// at base, whichever asked first.
		d.der, d.err = s.buildDelta(context.WithoutCancel(ctx), a, c, base, steps)
	})
	if d.err != nil && c.deltas.CompareAndDelete(base, d) {
		// Not kept: the next request tries again.
		c.deltaBases.Add(-1)
		c.deltaBytes.Add(-d.weight)
	}
	return d.der, d.err
}

// deltaNotWorth is the size of a full CRL below which a delta is served
// however large it is next to it: both are small.
const deltaNotWorth = 64 << 10

// CRLSince returns the current full CRL of the CA with ID caID (as
// [Service.CurrentCRL] does) and its CRL number, and, for a caller that
// holds the full CRL numbered base whose DER's SHA-256 starts with
// baseDigest (at least MinBaseDigest bytes of it), a delta CRL (RFC 5280
// §5.2.4) from it to the current one. The delta is nil when base is the
// current number or newer (the caller compares the digest of the current
// CRL itself), and nil too when this node has no history back to base,
// when the CRL it built of that number is not the caller's (another
// digest, or none given: a delta applied to another CRL of the same
// number would miss revocations), or when the delta would be more than
// half the size of a full CRL over 64 KiB; the caller then takes the full
// CRL. The delta is signed once per base and shared; the slices must not
// be modified.
func (s *Service) CRLSince(ctx context.Context, caID string, base int64, baseDigest []byte) (full []byte, number int64, delta []byte, err error) {
	a, c, err := s.current(ctx, caID)
	if err != nil {
		return nil, 0, nil, err
	}
	if base >= c.number || base < 1 {
		return c.der, c.number, nil, nil
	}
	d, err := s.delta(ctx, a, c, base, baseDigest)
	if err != nil {
		s.log.Warn("revocation: delta CRL not built; the full CRL is served", logCA, a.name, logNumber, c.number, "base", base, logErr, err)
		return c.der, c.number, nil, nil
	}
	if notWorth(c, len(d)) {
		return c.der, c.number, nil, nil
	}
	return c.der, c.number, d, nil
}

// notWorth reports whether a delta of size bytes from c's history is not
// worth serving: so many changes (a churn, an expiry sweep) that the full
// CRL costs the caller little more, and gives it a new base.
func notWorth(c *crl, size int) bool {
	return len(c.der) > deltaNotWorth && size > len(c.der)/2
}
