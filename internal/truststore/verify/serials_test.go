package verify

import (
	"crypto/rand"
	"crypto/x509"
	"math/big"
	mrand "math/rand/v2"
	"runtime"
	"testing"
	"time"
)

func addInt(b *serialSetBuilder, n *big.Int) { b.add(n.Bytes(), n.Sign() < 0) }

func TestSerialSet(t *testing.T) {
	r := mrand.New(mrand.NewPCG(1, 2))
	want := map[string]bool{}
	b := newSerialSetBuilder(0, 0)
	var in []*big.Int
	for i := 0; i < 5000; i++ {
		n := new(big.Int).SetUint64(r.Uint64() >> (r.IntN(64)))
		if i%7 == 0 {
			n.Lsh(n, 100) // long serials
		}
		if i%501 == 0 {
			n.Neg(n)
		}
		in = append(in, n)
		addInt(b, n)
		if i%3 == 0 {
			addInt(b, n) // duplicates collapse
		}
		want[n.String()] = true
	}
	addInt(b, big.NewInt(0))
	want["0"] = true
	s := b.build()
	if s.len() != len(want) {
		t.Errorf("len = %d, want %d", s.len(), len(want))
	}
	for _, n := range in {
		if !s.contains(n) {
			t.Fatalf("missing %s", n)
		}
	}
	if !s.contains(big.NewInt(0)) {
		t.Error("missing 0")
	}
	for i := 0; i < 20000; i++ {
		n := new(big.Int).SetUint64(r.Uint64())
		if s.contains(n) != want[n.String()] {
			t.Fatalf("contains(%s) = %v", n, !want[n.String()])
		}
	}
	// A serial equal to another's bytes with a leading zero is a different
	// byte string but the same number: both are magnitudes without
	// leading zeros, so they match.
	x := new(big.Int).SetBytes([]byte{0x00, 0x81, 0x02})
	b2 := newSerialSetBuilder(1, 0)
	addInt(b2, x)
	if !b2.build().contains(new(big.Int).SetBytes([]byte{0x81, 0x02})) {
		t.Error("leading zero changed the key")
	}
	// Negative and positive of one magnitude are different serials.
	b3 := newSerialSetBuilder(1, 0)
	addInt(b3, big.NewInt(-5))
	s3 := b3.build()
	if s3.contains(big.NewInt(5)) || !s3.contains(big.NewInt(-5)) {
		t.Error("sign confused")
	}
	if newSerialSetBuilder(0, 0).build().contains(big.NewInt(1)) {
		t.Error("empty set contains 1")
	}
}

// TestMillionEntryCRLMemory measures the heap held by a Verifier compiled
// from a 1,000,000-entry CRL, the DER and everything parsed dropped: the
// budget is 100 MB.
func TestMillionEntryCRLMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 1,000,000-entry CRL")
	}
	const n = 1_000_000
	ca := newRoot(t, "Big CRL Root")
	revoked := ca.leaf(t, "revoked")
	before := heapInUse()
	der := ca.bigCRLDER(t, n, revoked.SerialNumber)
	start := time.Now()
	v, err := CompileDER([]*x509.Certificate{ca.cert}, [][]byte{der}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	der = nil
	held := int64(heapInUse()) - int64(before)
	t.Logf("1,000,000-entry CRL: CompileDER %s; the verifier holds %.1f MB of heap (%.1f bytes/entry)",
		took.Round(time.Millisecond), float64(held)/1e6, float64(held)/n)
	if held > 100e6 {
		t.Errorf("verifier holds %d bytes, over the 100 MB budget", held)
	}
	if got := v.CRLs()[0].Entries; got != n+1 {
		t.Errorf("Entries = %d", got)
	}
	if _, err := v.Verify([]*x509.Certificate{revoked}, now); ReasonOf(err) != ClientCertCrlHit {
		t.Errorf("revoked leaf: %v", err)
	}
	if _, err := v.Verify([]*x509.Certificate{ca.leaf(t, "fine")}, now); err != nil {
		t.Errorf("fine leaf: %v", err)
	}
	runtime.KeepAlive(v)
}

// BenchmarkVerifyWithCRL compares Verify without a CRL and with a
// 1,000,000-entry CRL of the issuer: the lookup is O(1), so the two should
// be within noise of each other (path building and signatures dominate).
func BenchmarkVerifyWithCRL(b *testing.B) {
	ca := newRoot(b, "Bench Root")
	inter := ca.child(b, "Bench Intermediate")
	leaf := inter.leaf(b, "bench")
	roots := []*x509.Certificate{ca.cert, inter.cert}
	none, err := Compile(roots, nil, Options{})
	if err != nil {
		b.Fatal(err)
	}
	million, err := CompileDER(roots, [][]byte{inter.bigCRLDER(b, 1_000_000)}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	chain := []*x509.Certificate{leaf}
	nsop := map[string]float64{}
	run := func(name string, v *Verifier) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(chain, now); err != nil {
					b.Fatal(err)
				}
			}
			nsop[name] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		})
	}
	run("crl=none", none)
	run("crl=1M", million)
	if nsop["crl=none"] > 0 && nsop["crl=1M"] > 0 {
		b.Logf("Verify: %.0f ns/op without a CRL, %.0f ns/op with a 1,000,000-entry CRL: ratio %.3f",
			nsop["crl=none"], nsop["crl=1M"], nsop["crl=1M"]/nsop["crl=none"])
	}
	// The two above run one after the other, so a noisy machine skews
	// their ratio; here they alternate call by call.
	b.Run("interleaved", func(b *testing.B) {
		var tNone, tMillion time.Duration
		for b.Loop() {
			t0 := time.Now()
			if _, err := none.Verify(chain, now); err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			if _, err := million.Verify(chain, now); err != nil {
				b.Fatal(err)
			}
			tNone += t1.Sub(t0)
			tMillion += time.Since(t1)
		}
		n := float64(b.N)
		b.ReportMetric(float64(tNone.Nanoseconds())/n, "ns/verify-no-crl")
		b.ReportMetric(float64(tMillion.Nanoseconds())/n, "ns/verify-1M-crl")
		b.ReportMetric(float64(tMillion)/float64(tNone), "ratio")
	})
}

// BenchmarkSerialLookup isolates the revocation lookup in a 1M-entry set.
func BenchmarkSerialLookup(b *testing.B) {
	bld := newSerialSetBuilder(1_000_000, 0)
	buf := make([]byte, 16)
	for i := 0; i < 1_000_000; i++ {
		rand.Read(buf)
		addInt(bld, new(big.Int).SetBytes(buf))
	}
	s := bld.build()
	probe := new(big.Int).SetBytes([]byte("0123456789abcdef"))
	b.ReportAllocs()
	for b.Loop() {
		s.contains(probe)
	}
}

// BenchmarkCompileMillion reports the time and the heap held for a
// 1,000,000-entry CRL through CompileDER, and through
// x509.ParseRevocationList and Compile.
func BenchmarkCompileMillion(b *testing.B) {
	ca := newRoot(b, "Bench Root")
	der := ca.bigCRLDER(b, 1_000_000)
	roots := []*x509.Certificate{ca.cert}
	b.Run("CompileDER", func(b *testing.B) {
		for b.Loop() {
			before := heapInUse()
			v, err := CompileDER(roots, [][]byte{der}, Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(int64(heapInUse())-int64(before))/1e6, "MB-held")
			runtime.KeepAlive(v)
		}
	})
	b.Run("ParseRevocationList+Compile", func(b *testing.B) {
		for b.Loop() {
			before := heapInUse()
			crl, err := x509.ParseRevocationList(der)
			if err != nil {
				b.Fatal(err)
			}
			v, err := Compile(roots, []*x509.RevocationList{crl}, Options{})
			if err != nil {
				b.Fatal(err)
			}
			crl = nil
			b.ReportMetric(float64(int64(heapInUse())-int64(before))/1e6, "MB-held")
			runtime.KeepAlive(v)
		}
	})
}

func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkCompileDER1M is the CPU and allocation cost of compiling a
// 1,000,000-entry CRL with CompileDER: what a trust-store reload pays.
func BenchmarkCompileDER1M(b *testing.B) {
	ca := newRoot(b, "Bench Root")
	der := ca.bigCRLDER(b, 1_000_000)
	roots := []*x509.Certificate{ca.cert}
	b.ReportAllocs()
	b.SetBytes(int64(len(der)))
	for b.Loop() {
		if _, err := CompileDER(roots, [][]byte{der}, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
