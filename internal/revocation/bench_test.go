package revocation

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/store"
)

// fillRevoked inserts n revoked certificates of ca straight into the
// store (already revoked: one write each, batched by the store's group
// commit) and returns how long it took. Enough writers wait at once for
// the batches to fill (the store commits up to 256 rows at a time).
func fillRevoked(b testing.TB, e *env, ca *testCA, n int) time.Duration {
	b.Helper()
	start := time.Now()
	now := e.clock.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for range 1024 {
		wg.Go(func() {
			buf := make([]byte, 20)
			for next.Add(1) <= int64(n) {
				rand.Read(buf)
				buf[0] = buf[0]&0x7f | 0x01
				c := &store.Certificate{
					Serial: hex.EncodeToString(buf), CAID: ca.id(), IssuerKey: ca.id(),
					Subject: "CN=x", Profile: "server", KeyType: "ec-p256",
					NotBefore: now, NotAfter: now.Add(90 * 24 * time.Hour), Fingerprint: hex.EncodeToString(buf),
					Status: store.CertRevoked, DER: buf, CreatedAt: now,
					RevokedAt: now.Add(-time.Minute), Reason: int(buf[1] % 6),
				}
				if err := e.st.InsertCertificate(context.Background(), c); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// genStore streams n generated revoked entries for every CA, for
// benchmarks at sizes the real store takes too long to fill. Its CRL
// numbers count up in memory, one sequence for all.
type genStore struct {
	Store
	serials [][]byte
	at      time.Time
	number  atomic.Int64
}

func (g *genStore) ReadCRL(ctx context.Context, q store.CRLQuery, fn func(store.RevokedEntry) error, keep func() bool) (int64, error) {
	if err := g.ListRevoked(ctx, q.CAID, q.Partition, q.ExpiresAfter, fn); err != nil {
		return 0, err
	}
	if !keep() {
		return 0, nil
	}
	return g.number.Add(1), nil
}

func (g *genStore) ListRevoked(ctx context.Context, caID string, partition int, expiresAfter time.Time, fn func(store.RevokedEntry) error) error {
	for i, s := range g.serials {
		if err := fn(store.RevokedEntry{Serial: s, RevokedAt: g.at, Reason: i % 6}); err != nil {
			return err
		}
	}
	return nil
}

// benchCRL builds the full CRL of a: "first" without a previous CRL (the
// buffer grows by doubling), "republish" with one (its size is the hint).
func benchCRL(b *testing.B, e *env, a *authority) {
	b.Helper()
	var prev *crl
	for _, name := range []string{"first", "republish"} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var c *crl
			cpu0 := processCPU(b)
			for b.Loop() {
				var err error
				c, err = e.svc.newCRL(e.ctx, a, a.scopes[0], e.clock.Now(), prev, false)
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(c.der)), "DER-bytes")
			b.ReportMetric(float64(c.entries), "entries")
			// The process's CPU time per CRL, the GC's included: on a
			// machine that other processes share it is steadier than the
			// wall time.
			b.ReportMetric(time.Duration(processCPU(b)-cpu0).Seconds()/float64(b.N), "cpu-s/op")
			prev = c
		})
	}
}

// processCPU returns the user and system CPU time of the process, all
// threads, in nanoseconds.
func processCPU(tb testing.TB) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkCRL1M builds one CRL of a million entries. By default the
// entries stream from a generated source; TRUSTGATE_BENCH_SQLITE=1 fills
// the real SQLite store first (minutes: a million group-committed
// inserts) and streams from it.
func BenchmarkCRL1M(b *testing.B) {
	const n = 1_000_000
	e := newEnv(b, envOptions{})
	if os.Getenv("TRUSTGATE_BENCH_SQLITE") != "" {
		d := fillRevoked(b, e, e.sub, n)
		b.Logf("filled SQLite with %d revoked certificates in %s", n, d)
	} else {
		g := &genStore{Store: e.st, at: e.clock.Now().Add(-time.Hour)}
		buf := make([]byte, 20)
		for range n {
			rand.Read(buf)
			buf[0] &= 0x7f
			g.serials = append(g.serials, hex.AppendEncode(nil, buf))
		}
		e.cfg.Store = g
		e.svc = e.newService()
		e.svc.cfg.Store = g
	}
	a, err := e.svc.authorityByID(e.ctx, e.sub.id())
	if err != nil {
		b.Fatal(err)
	}
	benchCRL(b, e, a)
}

// BenchmarkCRLSQLite100k builds a CRL of 100,000 entries streamed from the
// real SQLite store.
func BenchmarkCRLSQLite100k(b *testing.B) {
	e := newEnv(b, envOptions{})
	d := fillRevoked(b, e, e.sub, 100_000)
	b.Logf("filled SQLite with 100000 revoked certificates in %s", d)
	a, err := e.svc.authorityByID(e.ctx, e.sub.id())
	if err != nil {
		b.Fatal(err)
	}
	benchCRL(b, e, a)
}

// discard is a reusable http.ResponseWriter that keeps nothing.
type discard struct {
	h    http.Header
	code int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(code int)        { d.code = code }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkOCSPCached serves cached GET answers through Handler() from
// parallel goroutines: a map lookup and a write per request, no signature.
func BenchmarkOCSPCached(b *testing.B) {
	e := newEnv(b, envOptions{})
	h := e.svc.Handler()
	var paths []string
	for i := range 64 {
		c := e.issue(e.sub, "c"+strconv.Itoa(i)+".example")
		paths = append(paths, "/ocsp/sub/"+base64.StdEncoding.EncodeToString(ocspRequestFor(b, c, e.sub.cert, crypto.SHA1)))
	}
	for _, p := range paths { // fill the cache
		r, _ := http.NewRequest(http.MethodGet, p, nil)
		h.ServeHTTP(&discard{h: http.Header{}}, r)
	}
	if n := e.svc.cacheEntries.Load(); n != int64(len(paths)) {
		b.Fatalf("%d cached answers, want %d", n, len(paths))
	}
	var worker atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		i := int(worker.Add(1))
		reqs := make([]*http.Request, len(paths))
		for j, p := range paths {
			reqs[j], _ = http.NewRequest(http.MethodGet, p, nil)
		}
		w := &discard{h: http.Header{}}
		for pb.Next() {
			clear(w.h)
			h.ServeHTTP(w, reqs[i%len(reqs)])
			if w.code != http.StatusOK {
				panic(fmt.Sprintf("HTTP %d", w.code))
			}
			i++
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "responses/s")
}

// BenchmarkOCSPRefreshAfterChange measures what a publication costs on the
// OCSP side after one certificate changed, in a CA with 1,000,000 revoked
// certificates (generated, streamed like the store's) and 2,000 cached
// answers: "by-serial" re-checks the answers of the changed serial, as a
// Notify that names it does; "all" re-checks every cached answer, as every
// Notify did before it carried the serial (with more than lookupMax
// answers, one walk of the CA's revoked list).
func BenchmarkOCSPRefreshAfterChange(b *testing.B) {
	const cached, revoked = 2000, 1_000_000
	e := newEnv(b, envOptions{})
	var serials []string
	for i := range cached {
		c := e.issue(e.sub, "c"+strconv.Itoa(i)+".example")
		serials = append(serials, pki.SerialHex(c.SerialNumber))
		warmAnswer(b, e, serials[i])
	}
	if n := e.svc.cacheEntries.Load(); n != cached {
		b.Fatalf("%d cached answers, want %d", n, cached)
	}
	g := &genStore{Store: e.st, at: e.clock.Now().Add(-time.Hour)}
	buf := make([]byte, 20)
	for range revoked {
		rand.Read(buf)
		buf[0] = buf[0]&0x7f | 0x01
		g.serials = append(g.serials, hex.AppendEncode(nil, buf))
	}
	e.svc.cfg.Store = g
	a, err := e.svc.authorityByID(e.ctx, e.sub.id())
	if err != nil {
		b.Fatal(err)
	}
	b.Run("by-serial", func(b *testing.B) {
		cpu0 := processCPU(b)
		i := 0
		for b.Loop() {
			if err := e.svc.refreshSerials(e.ctx, a, map[string]struct{}{serials[i%cached]: {}}, e.clock.Now()); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N)/1e3, "cpu-us/op")
	})
	b.Run("all", func(b *testing.B) {
		cpu0 := processCPU(b)
		for b.Loop() {
			if err := e.svc.refreshAnswers(e.ctx, a, e.clock.Now(), refreshAll); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N)/1e3, "cpu-us/op")
	})
}

// warmAnswer signs and caches the answer a SHA-1 CertID gets for serial,
// as the first request for it would.
func warmAnswer(tb testing.TB, e *env, serial string) {
	tb.Helper()
	a, err := e.svc.authorityByID(e.ctx, e.sub.id())
	if err != nil {
		tb.Fatal(err)
	}
	key, ok := cacheKey(serial)
	if !ok {
		tb.Fatalf("serial %q has no cache key", serial)
	}
	n := []byte(key)
	id := certID{hash: hashSHA1, nullParams: true, serial: n, raw: encodeCertID(hashSHA1, a.hashes[hashSHA1], n)}
	if _, err := e.svc.fill(e.ctx, a, &id, e.svc.now()); err != nil {
		tb.Fatal(err)
	}
}
