package postgres

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/store"
)

// BenchmarkInsertCertificateParallel measures group-committed inserts from
// concurrent callers, with synchronous_commit on; "callers" is the number of
// goroutines, "writers" Config.Writers. The "unbatched" cases are the
// alternative group commit replaced, measured in the same run: each caller
// sends its own autocommitted INSERT on a pool of as many connections as
// there are callers, up to 32.
func BenchmarkInsertCertificateParallel(b *testing.B) {
	for _, bc := range []struct {
		perProc   int
		writers   int
		unbatched bool
	}{
		{perProc: 1}, {perProc: 4}, {perProc: 32},
		{perProc: 32, writers: 1}, {perProc: 32, writers: 4},
		{perProc: 4, unbatched: true}, {perProc: 32, unbatched: true},
	} {
		callers := bc.perProc * runtime.GOMAXPROCS(0)
		writers := bc.writers
		if writers == 0 {
			writers = DefaultWriters
		}
		name := fmt.Sprintf("callers=%d/writers=%d", callers, writers)
		if bc.unbatched {
			name = fmt.Sprintf("callers=%d/unbatched", callers)
		}
		b.Run(name, func(b *testing.B) {
			db := openTest(b, func(c *Config) {
				c.Writers = bc.writers
				c.MaxConns = int32(min(callers, 32)) + 2
			})
			if err := db.CreateCA(b.Context(), testCA("ca-1")); err != nil {
				b.Fatal(err)
			}
			insert := db.InsertCertificate
			if bc.unbatched {
				insert = db.insertUnbatched
			}
			var worker atomic.Int64
			b.SetParallelism(bc.perProc)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				w := worker.Add(1)
				for i := 0; pb.Next(); i++ {
					c := testCert("ca-1", fmt.Sprintf("%04x%08x", w, i))
					if err := insert(context.Background(), c); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "inserts/s")
		})
	}
}

// insertUnbatched is InsertCertificate without group commit or the Seq
// lock: one autocommitted INSERT per call. Only the benchmark uses it.
func (d *DB) insertUnbatched(ctx context.Context, c *store.Certificate) error {
	args, err := certArgs(c)
	if err != nil {
		return err
	}
	return d.pool.QueryRow(ctx, insertCertSQL, args...).Scan(&c.Seq)
}

// BenchmarkInsertCertificateSerial measures one caller at a time: a batch
// of one row, one round trip and one WAL flush per certificate.
func BenchmarkInsertCertificateSerial(b *testing.B) {
	db := openTest(b, nil)
	if err := db.CreateCA(b.Context(), testCA("ca-1")); err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		if err := db.InsertCertificate(context.Background(), testCert("ca-1", fmt.Sprintf("%08x", i))); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "inserts/s")
}

// BenchmarkListRevoked1M walks a CA's 1,000,000 revoked certificates,
// among 250,000 active ones: the read behind a million-entry CRL. The rows
// are written in bulk, outside the timed part. cpu-ns/row is this
// process's CPU (the client's), the GC's included; the server's is not in
// it.
func BenchmarkListRevoked1M(b *testing.B) {
	const revoked, active = 1_000_000, 250_000
	db := openTest(b, nil)
	if err := db.CreateCA(b.Context(), testCA("ca-1")); err != nil {
		b.Fatal(err)
	}
	bulkInsert(b, db, "ca-1", 0, active, 1, store.CertActive)
	bulkInsert(b, db, "ca-1", active, revoked, 1, store.CertRevoked)
	b.ReportAllocs()
	cpu0 := processCPU(b)
	for b.Loop() {
		n := 0
		err := db.ListRevoked(b.Context(), "ca-1", -1, time.Time{}, func(store.RevokedEntry) error {
			n++
			return nil
		})
		if err != nil || n != revoked {
			b.Fatalf("ListRevoked walked %d entries, %v; want %d", n, err, revoked)
		}
	}
	rows := float64(revoked) * float64(b.N)
	b.ReportMetric(rows/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(processCPU(b)-cpu0)/rows, "cpu-ns/row")
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
