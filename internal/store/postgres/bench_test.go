package postgres

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

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
