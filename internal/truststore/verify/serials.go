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
// fewer than two entries, whatever the size of the set.
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
	slots []uint32 // 0 is empty, i+1 is entry i; len is a power of two
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

func newSerialSetBuilder(sizeHint int) *serialSetBuilder {
	return &serialSetBuilder{
		data: make([]byte, 0, sizeHint*20),
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

// build makes the table; duplicates collapse to one entry. The builder's
// slices are compacted in place and must not be used afterwards.
func (b *serialSetBuilder) build() *serialSet {
	n := len(b.off) - 1
	size := 8
	if n > 4 {
		size = 1 << bits.Len(uint(2*n-1)) // the smallest power of two >= 2n
	}
	s := &serialSet{seed: maphash.MakeSeed(), slots: make([]uint32, size), neg: b.neg}
	mask := uint64(size - 1)
	// Entry i is read from b.data[b.off[i]:b.off[i+1]] and, unless it is a
	// duplicate, written back as entry k <= i: writes never overtake reads.
	w, k := uint32(0), 0
	for i := 0; i < n; i++ {
		start, end := b.off[i], b.off[i+1]
		serial := b.data[start:end]
		h := maphash.Bytes(s.seed, serial) & mask
		dup := false
		for ; s.slots[h] != 0; h = (h + 1) & mask {
			j := s.slots[h] - 1
			if bytes.Equal(b.data[b.off[j]:b.off[j+1]], serial) {
				dup = true
				break
			}
		}
		if dup {
			continue
		}
		copy(b.data[w:], serial)
		b.off[k] = w
		w += end - start
		b.off[k+1] = w
		k++
		s.slots[h] = uint32(k)
	}
	// Right-size: the builder's capacity was a guess.
	s.data = append([]byte(nil), b.data[:w]...)
	s.off = append([]uint32(nil), b.off[:k+1]...)
	b.data, b.off = nil, nil
	return s
}

// len returns the number of distinct serials.
func (s *serialSet) len() int { return len(s.off) - 1 + len(s.neg) }

// contains reports whether serial is in the set. It does not allocate for
// serials of up to 32 bytes.
func (s *serialSet) contains(serial *big.Int) bool {
	if serial.Sign() < 0 {
		_, ok := s.neg[string(serial.Bytes())]
		return ok
	}
	var buf [32]byte
	n := (serial.BitLen() + 7) / 8
	var b []byte
	if n <= len(buf) {
		b = serial.FillBytes(buf[:n])
	} else {
		b = serial.Bytes()
	}
	return s.containsBytes(b)
}

func (s *serialSet) containsBytes(b []byte) bool {
	mask := uint64(len(s.slots) - 1)
	for h := maphash.Bytes(s.seed, b) & mask; s.slots[h] != 0; h = (h + 1) & mask {
		j := s.slots[h] - 1
		if bytes.Equal(s.data[s.off[j]:s.off[j+1]], b) {
			return true
		}
	}
	return false
}
