package verify

import (
	"bytes"
	"hash/maphash"
	"math/big"
	"math/bits"
)

// serialSet is an immutable set of certificate serial numbers, built once
// and then read by any number of goroutines: an open-addressing hash table
// (linear probing, load factor at most 1/2) over the serials' bytes packed
// into one slice. A lookup hashes the serial once and compares on average
// fewer than two slots, whatever the size of the set.
//
// A slot holds an entry's index and, in the bits the index leaves free, a
// tag: more bits of the entry's hash. A probe compares the serial's bytes
// only when the tag matches, so that probing past other entries reads
// none of theirs (at a million entries each would be two cache misses).
//
// Memory is about len(serial)+4 bytes per entry for the packed bytes and
// their offsets plus 8 to 16 bytes for the table: 1,000,000 serials of 16
// to 20 bytes take about 30 MB. Parsed CRL entries (a *big.Int, a time and
// extensions each) are several times that, so they are dropped after
// compiling.
type serialSet struct {
	seed  maphash.Seed
	data  []byte   // the serials' magnitudes, big-endian, back to back
	off   []uint32 // entry i is data[off[i]:off[i+1]]
	slots []uint32 // 0 is empty, else tag | i+1 (idxMask bits); len is a power of two
	// idxMask selects a slot's index bits; the others hold the tag, the
	// same bits of the entry's hash (none for a set too big to leave any).
	idxMask uint32
	n       int // distinct serials in data
	// neg holds negative serials, which RFC 5280 §4.1.2.2 forbids but
	// which some CAs have issued; almost always empty.
	neg map[string]struct{}
}

// serialSetBuilder accumulates serials; build returns the set.
type serialSetBuilder struct {
	data []byte
	off  []uint32
	neg  map[string]struct{}
}

// newSerialSetBuilder sizes a builder for sizeHint serials of byteHint
// bytes in all (0: a guess of 20 bytes each).
func newSerialSetBuilder(sizeHint, byteHint int) *serialSetBuilder {
	if byteHint <= 0 {
		byteHint = sizeHint * 20
	}
	return &serialSetBuilder{
		data: make([]byte, 0, byteHint),
		off:  append(make([]uint32, 0, sizeHint+1), 0),
	}
}

// add adds a serial given as its big-endian magnitude without leading
// zeros (big.Int.Bytes) and its sign.
func (b *serialSetBuilder) add(mag []byte, negative bool) {
	if negative {
		if b.neg == nil {
			b.neg = map[string]struct{}{}
		}
		b.neg[string(mag)] = struct{}{}
		return
	}
	b.data = append(b.data, mag...)
	b.off = append(b.off, uint32(len(b.data)))
}

// build makes the table; duplicates collapse to one entry of the table
// (their bytes stay in data). The builder must not be used afterwards.
//
// Every serial is hashed first, in order; then the entries are inserted
// in the order of the slot they hash to (a counting sort on the slot
// number's top bits), so that the inserts sweep the table once instead of
// each touching a random cache line of it: at a million entries the table
// is 8 MB and random inserts were most of a compile's time.
func (b *serialSetBuilder) build() *serialSet {
	n := len(b.off) - 1
	size := 8
	if n > 4 {
		size = 1 << bits.Len(uint(2*n-1)) // the smallest power of two >= 2n
	}
	idxBits := uint(bits.Len32(uint32(n)))
	s := &serialSet{seed: maphash.MakeSeed(), slots: make([]uint32, size), neg: b.neg,
		idxMask: uint32(1)<<idxBits - 1}
	// Right-size: the builder's capacity was an upper bound.
	if waste := cap(b.data) - len(b.data); waste > len(b.data)/8 {
		b.data = append([]byte(nil), b.data...)
	}
	s.data, s.off = b.data, b.off
	b.data, b.off = nil, nil
	if n == 0 {
		return s
	}
	hashes := make([]uint64, n)
	for i := range hashes {
		hashes[i] = maphash.Bytes(s.seed, s.data[s.off[i]:s.off[i+1]])
	}
	mask := uint64(size - 1)
	sizeBits := uint(bits.Len(uint(size - 1)))
	bucketBits := min(sizeBits, 12)
	shift := sizeBits - bucketBits
	counts := make([]uint32, 1<<bucketBits+1)
	for _, h := range hashes {
		counts[(h&mask)>>shift+1]++
	}
	for i := 1; i < len(counts); i++ {
		counts[i] += counts[i-1]
	}
	// The scatter carries each hash along with its index, so that the
	// inserts read both in sequence; an entry's offsets and bytes are read
	// only when a slot's tag matches it.
	sortedH := make([]uint64, n)
	sortedI := make([]uint32, n)
	for i, h := range hashes {
		k := (h & mask) >> shift
		sortedH[counts[k]] = h
		sortedI[counts[k]] = uint32(i)
		counts[k]++
	}
	for j, h := range sortedH {
		i := sortedI[j]
		tag := s.tag(h)
		slot := h & mask
		for ; s.slots[slot] != 0; slot = (slot + 1) & mask {
			if s.slots[slot]&^s.idxMask == tag && bytes.Equal(s.entry(s.slots[slot]), s.data[s.off[i]:s.off[i+1]]) {
				break
			}
		}
		if s.slots[slot] == 0 {
			s.slots[slot] = tag | (i + 1)
			s.n++
		}
	}
	return s
}

// tag is the part of a slot that the hash h decides: bits of its upper
// half (its lower bits pick the slot), 0 when the index takes all 32.
func (s *serialSet) tag(h uint64) uint32 { return uint32(h>>32) &^ s.idxMask }

// entry returns the bytes of the entry a non-empty slot holds.
func (s *serialSet) entry(slot uint32) []byte {
	i := slot&s.idxMask - 1
	return s.data[s.off[i]:s.off[i+1]]
}

// len returns the number of distinct serials.
func (s *serialSet) len() int { return s.n + len(s.neg) }

// contains reports whether serial is in the set. It does not allocate for
// serials of up to 32 bytes.
func (s *serialSet) contains(serial *big.Int) bool {
	if serial.Sign() < 0 {
		_, ok := s.neg[string(serial.Bytes())]
		return ok
	}
	var buf [32]byte
	return s.containsBytes(magnitude(serial, &buf))
}

// magnitude returns the absolute value of serial in big-endian bytes
// without leading zeros, in buf when it fits, so that a lookup of a serial
// of up to 32 bytes does not allocate.
func magnitude(serial *big.Int, buf *[32]byte) []byte {
	if n := (serial.BitLen() + 7) / 8; n <= len(buf) {
		return serial.FillBytes(buf[:n])
	}
	return serial.Bytes()
}

func (s *serialSet) containsBytes(b []byte) bool {
	mask := uint64(len(s.slots) - 1)
	h := maphash.Bytes(s.seed, b)
	tag := s.tag(h)
	for i := h & mask; s.slots[i] != 0; i = (i + 1) & mask {
		if v := s.slots[i]; v&^s.idxMask == tag && bytes.Equal(s.entry(v), b) {
			return true
		}
	}
	return false
}
