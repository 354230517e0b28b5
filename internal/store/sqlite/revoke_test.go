package sqlite

import (
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/store"
)

// bulkSerialBase makes bulk serials the same width, so that they sort as
// strings in the order of their numbers.
const bulkSerialBase = 0x10000000

// bulkInsertSQL inserts the certificates numbered ?1 to ?2-1 of CA ?3 in one
// statement: serial ?11+n in hex, partition n % ?10, a ?7-byte DER, status
// ?6, reason ?9, revoked at ?8, valid from ?4 to ?5.
const bulkInsertSQL = `WITH RECURSIVE i(n) AS (SELECT ?1 UNION ALL SELECT n + 1 FROM i WHERE n + 1 < ?2)
INSERT INTO certificates (` + certColumns + `)
SELECT ?3, printf('%x', n + ?11), ?3, 'CN=bulk', '', 'server', 'ecdsa-p256', ?4, ?5,
	'', ?6, zeroblob(?7), '', 0, 1, ?4, ?8, ?9, n % ?10
FROM i`

// bulkInsert records the certificates numbered first to first+n-1 of caID,
// with serials bulkSerialBase+number, spread over partitions by number,
// revoked at t0 for reason 1 when status says so. It writes straight through
// the writer connection in transactions of up to 100,000 rows: a test-only
// path for volumes that InsertCertificate, one fsync per batch, would take
// minutes to write.
func bulkInsert(tb testing.TB, d *DB, caID string, first, n, partitions int, status store.CertStatus) {
	tb.Helper()
	nb, na := mustEncode(tb, t0.Add(-time.Hour)), mustEncode(tb, t0.Add(90*24*time.Hour))
	rt, reason := zeroTime, 0
	if status == store.CertRevoked {
		rt, reason = mustEncode(tb, t0), 1
	}
	const chunk = 100_000
	for lo := first; lo < first+n; lo += chunk {
		hi := min(lo+chunk, first+n)
		if _, err := d.w.ExecContext(tb.Context(), bulkInsertSQL,
			lo, hi, caID, nb, na, string(status), 100, rt, reason, max(partitions, 1), bulkSerialBase); err != nil {
			tb.Fatalf("bulk insert: %v", err)
		}
	}
}

// partitionedCA returns a test CA record with the given number of partitions.
func partitionedCA(id string, partitions int) *store.CA {
	ca := testCA(id)
	ca.CRLPartitions = partitions
	return ca
}

// TestListRevokedStreams walks 200,000 revoked entries, among active
// certificates, and checks that the live heap does not grow with them: a
// store that collected the entries before calling fn would hold several
// megabytes of them.
func TestListRevokedStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 250,000 rows")
	}
	if raceEnabled {
		// One goroutine walks: the detector has nothing to find, and it
		// would stretch the bulk insert from seconds to about a minute.
		t.Skip("writes 250,000 rows; too slow under the race detector")
	}
	const revoked, active, partitions = 200_000, 50_000, 4
	db, _ := openTemp(t)
	if err := db.CreateCA(t.Context(), partitionedCA("ca-1", partitions)); err != nil {
		t.Fatal(err)
	}
	bulkInsert(t, db, "ca-1", 0, active/2, partitions, store.CertActive)
	bulkInsert(t, db, "ca-1", active/2, revoked, partitions, store.CertRevoked)
	bulkInsert(t, db, "ca-1", active/2+revoked, active/2, partitions, store.CertActive)

	liveHeap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	base := liveHeap()
	var (
		n          int
		peak       uint64
		prevPart   = -1
		prevSerial string
	)
	err := db.ListRevoked(t.Context(), "ca-1", -1, time.Time{}, func(e store.RevokedEntry) error {
		// The walk is in (partition, serial) order; the partition of
		// bulk serial s is (s - bulkSerialBase) % partitions.
		serial := string(e.Serial)
		num, err := strconv.ParseInt(serial, 16, 64)
		if err != nil {
			return err
		}
		part := int(num-bulkSerialBase) % partitions
		if part < prevPart || part == prevPart && serial <= prevSerial {
			return fmt.Errorf("entry %d: %s (partition %d) after %s (partition %d)", n, serial, part, prevSerial, prevPart)
		}
		prevPart, prevSerial = part, serial
		if e.Reason != 1 || e.RevokedAt != t0 {
			return fmt.Errorf("entry %s: %+v", serial, e)
		}
		n++
		if n%(revoked/4) == 0 {
			peak = max(peak, liveHeap())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != revoked {
		t.Fatalf("ListRevoked walked %d entries, want %d", n, revoked)
	}
	const bound = 4 << 20
	if peak > base+bound {
		t.Errorf("live heap grew from %d to %d bytes during the walk; want under %d more", base, peak, bound)
	}
	t.Logf("live heap %d bytes before the walk, at most %d during it", base, peak)

	var inOne int
	err = db.ListRevoked(t.Context(), "ca-1", 1, time.Time{}, func(store.RevokedEntry) error {
		inOne++
		return nil
	})
	if err != nil || inOne != revoked/partitions {
		t.Errorf("ListRevoked(partition 1) walked %d entries, %v; want %d", inOne, err, revoked/partitions)
	}
}

func mustEncode(tb testing.TB, t time.Time) string {
	tb.Helper()
	s, err := encodeTime(t)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// TestListRevokedUsesIndex checks that every ListRevoked query reads only the
// covering partial index, in order: no table rows, no active rows, no sort.
func TestListRevokedUsesIndex(t *testing.T) {
	db, _ := openTemp(t)
	for shape := range revokedShape(numRevokedShapes) {
		t.Run(fmt.Sprintf("shape-%d", shape), func(t *testing.T) {
			n := 1
			for s := shape; s != 0; s &= s - 1 {
				n++
			}
			rows, err := db.r.Query("EXPLAIN QUERY PLAN "+listRevokedSQL(shape), make([]any, n)...)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			p := strings.Join(plan, "; ")
			if !strings.Contains(p, "SEARCH certificates USING COVERING INDEX certificates_revoked") || strings.Contains(p, "TEMP B-TREE") {
				t.Errorf("plan %q, want a search of the covering index certificates_revoked without a sort", p)
			}
		})
	}
}

// TestRevocationSurvivesReopen checks that CRL numbers continue, and
// revocations and partitions persist, across Close and Open.
func TestRevocationSurvivesReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "trustgate.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateCA(ctx, partitionedCA("ca-1", 8)); err != nil {
		t.Fatal(err)
	}
	c := testCert("ca-1", "0a")
	c.Partition = 5
	if err := db.InsertCertificate(ctx, c); err != nil {
		t.Fatal(err)
	}
	revoked, err := db.RevokeCertificate(ctx, "ca-1", "0a", store.ReasonCertificateHold, t0)
	if err != nil {
		t.Fatal(err)
	}
	for want := int64(1); want <= 3; want++ {
		if n, err := db.NextCRLNumber(ctx, "ca-1", 5); err != nil || n != want {
			t.Fatalf("NextCRLNumber = %d, %v; want %d", n, err, want)
		}
	}
	if n, err := db.NextCRLNumber(ctx, "ca-1", 0); err != nil || n != 1 {
		t.Fatalf("NextCRLNumber(partition 0) = %d, %v; want 1", n, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	if n, err := db.NextCRLNumber(ctx, "ca-1", 5); err != nil || n != 4 {
		t.Errorf("NextCRLNumber after reopen = %d, %v; want 4", n, err)
	}
	if n, err := db.NextCRLNumber(ctx, "ca-1", 0); err != nil || n != 2 {
		t.Errorf("NextCRLNumber(partition 0) after reopen = %d, %v; want 2", n, err)
	}
	if ca, err := db.GetCAByID(ctx, "ca-1"); err != nil || ca.CRLPartitions != 8 {
		t.Errorf("GetCAByID after reopen = %+v, %v; want 8 CRL partitions", ca, err)
	}
	got, err := db.GetCertificateByCA(ctx, "ca-1", "0a")
	if err != nil || got.Status != revoked.Status || got.Reason != revoked.Reason || got.RevokedAt != revoked.RevokedAt || got.Partition != 5 {
		t.Errorf("GetCertificateByCA after reopen = %+v, %v; want %+v", got, err, revoked)
	}
}

// TestMigrateFromVersion1 opens a database written at schema version 1: its
// rows take the defaults (one CRL, partition 0) and can be revoked.
func TestMigrateFromVersion1(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "trustgate.db")
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", dsn(path, "_pragma=foreign_keys(1)"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		createMigrationsTable,
		ms[0].sql,
		"INSERT INTO schema_migrations (version, name, applied_at) VALUES (1, '" + ms[0].name + "', 'x')",
		`INSERT INTO cas (id, name, external_parent, state, key_type, subject, depth, path_len,
			key_exported, not_before, not_after, created_at, updated_at)
			VALUES ('ca-1', 'one', 0, 'active', 'ecdsa-p256', 'CN=one', 0, -1, 0, '` + zeroTime + `', '` + zeroTime + `', '` + zeroTime + `', '` + zeroTime + `')`,
		`INSERT INTO certificates (issuer_key, serial, ca_id, subject, sans, profile, key_type,
			not_before, not_after, fingerprint, status, der, requester, imported, managed,
			created_at, revoked_at, reason)
			VALUES ('ca-1', '0a', 'ca-1', 'CN=a', '', 'server', 'ecdsa-p256', '` + zeroTime + `',
			'9999-12-31T23:59:59.000000000Z', '', 'active', NULL, '', 0, 1, '` + zeroTime + `', '` + zeroTime + `', 0)`,
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := Open(path)
	if err != nil {
		t.Fatalf("Open of a version 1 database: %v", err)
	}
	defer db.Close()
	if v, err := storedVersion(ctx, db.r); err != nil || v != SchemaVersion {
		t.Errorf("schema version after Open = %d, %v; want %d", v, err, SchemaVersion)
	}
	if ca, err := db.GetCAByID(ctx, "ca-1"); err != nil || ca.CRLPartitions != 0 {
		t.Errorf("GetCAByID = %+v, %v; want 0 CRL partitions", ca, err)
	}
	c, err := db.RevokeCertificate(ctx, "ca-1", "0a", 1, t0)
	if err != nil || c.Partition != 0 || c.Status != store.CertRevoked {
		t.Fatalf("RevokeCertificate = %+v, %v", c, err)
	}
	var serials []string
	err = db.ListRevoked(ctx, "ca-1", 0, t0, func(e store.RevokedEntry) error {
		serials = append(serials, string(e.Serial))
		return nil
	})
	if err != nil || len(serials) != 1 || serials[0] != "0a" {
		t.Errorf("ListRevoked = %v, %v; want [0a]", serials, err)
	}
}

// TestRevocationInvalidValues checks the values this store refuses beyond
// the conformance suite: they would make a CRL that RFC 5280 does not allow,
// or a certificate that no partition CRL lists.
func TestRevocationInvalidValues(t *testing.T) {
	db, _ := openTemp(t)
	ctx := t.Context()
	if err := db.CreateCA(ctx, partitionedCA("ca-1", 4)); err != nil {
		t.Fatal(err)
	}
	if err := db.InsertCertificate(ctx, testCert("ca-1", "01")); err != nil {
		t.Fatal(err)
	}
	revoke := func(reason int, at time.Time) func() error {
		return func() error { _, err := db.RevokeCertificate(ctx, "ca-1", "01", reason, at); return err }
	}
	for name, call := range map[string]func() error{
		"fail/reason-negative":        revoke(-1, t0),
		"fail/reason-unassigned-7":    revoke(7, t0),
		"fail/reason-remove-from-crl": revoke(8, t0),
		"fail/reason-11":              revoke(11, t0),
		"fail/zero-time":              revoke(1, time.Time{}),
		"fail/year-10000":             revoke(1, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)),
		"fail/ca-negative-partitions": func() error {
			return db.CreateCA(ctx, partitionedCA("ca-2", -1))
		},
		"fail/cert-negative-partition": func() error {
			c := testCert("ca-1", "02")
			c.Partition = -1
			return db.InsertCertificate(ctx, c)
		},
		"fail/crl-number-negative-partition": func() error {
			_, err := db.NextCRLNumber(ctx, "ca-1", -1)
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			if err := call(); fault.KindOf(err) != fault.Invalid {
				t.Errorf("err = %v, want kind invalid", err)
			}
		})
	}
	c, err := db.GetCertificateByCA(ctx, "ca-1", "01")
	if err != nil || c.Status != store.CertActive {
		t.Errorf("certificate after refused revocations: %+v, %v; want active", c, err)
	}
	if _, err := db.GetCAByID(ctx, "ca-2"); !store.IsNotFound(err) {
		t.Errorf("CA with negative partitions was created: %v", err)
	}
	if _, err := db.GetCertificateByCA(ctx, "ca-1", "02"); !store.IsNotFound(err) {
		t.Errorf("certificate with a negative partition was recorded: %v", err)
	}
	// Every valid reason is accepted, on certificates of their own.
	for i, reason := range []int{0, 1, 2, 3, 4, 5, 6, 9, 10} {
		serial := fmt.Sprintf("1%x", i)
		if err := db.InsertCertificate(ctx, testCert("ca-1", serial)); err != nil {
			t.Fatal(err)
		}
		if _, err := db.RevokeCertificate(ctx, "ca-1", serial, reason, t0); err != nil {
			t.Errorf("RevokeCertificate(reason %d): %v", reason, err)
		}
	}
}

// TestRevokeAfterClose checks that the revocation methods fail as
// unavailable once the store is closed.
func TestRevokeAfterClose(t *testing.T) {
	db, _ := openTemp(t)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for name, err := range map[string]error{
		"RevokeCertificate":  func() error { _, err := db.RevokeCertificate(ctx, "ca", "01", 1, t0); return err }(),
		"ReleaseHold":        func() error { _, err := db.ReleaseHold(ctx, "ca", "01"); return err }(),
		"NextCRLNumber":      func() error { _, err := db.NextCRLNumber(ctx, "ca", 0); return err }(),
		"GetCertificateByCA": func() error { _, err := db.GetCertificateByCA(ctx, "ca", "01"); return err }(),
		"ListRevoked": db.ListRevoked(ctx, "ca", -1, time.Time{}, func(store.RevokedEntry) error {
			return errors.New("called")
		}),
	} {
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s after Close: err = %v, want one wrapping ErrUnavailable", name, err)
		}
	}
}

// BenchmarkListRevoked1M walks a CRL of 1,000,000 revoked certificates, among
// 250,000 active ones, in 16 partitions: the whole CRL and one partition.
// The rows are written in bulk, outside the timed part.
func BenchmarkListRevoked1M(b *testing.B) {
	const revoked, active, partitions = 1_000_000, 250_000, 16
	db, _ := openTemp(b)
	if err := db.CreateCA(b.Context(), partitionedCA("ca-1", partitions)); err != nil {
		b.Fatal(err)
	}
	bulkInsert(b, db, "ca-1", 0, active, partitions, store.CertActive)
	bulkInsert(b, db, "ca-1", active, revoked, partitions, store.CertRevoked)
	for _, bc := range []struct {
		name      string
		partition int
		want      int
	}{{"all", -1, revoked}, {"partition", 3, revoked / partitions}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := processCPU(b)
			for b.Loop() {
				n := 0
				err := db.ListRevoked(b.Context(), "ca-1", bc.partition, t0, func(store.RevokedEntry) error {
					n++
					return nil
				})
				if err != nil || n != bc.want {
					b.Fatalf("ListRevoked walked %d entries, %v; want %d", n, err, bc.want)
				}
			}
			rows := float64(bc.want) * float64(b.N)
			b.ReportMetric(rows/b.Elapsed().Seconds(), "rows/s")
			// CPU time, the GC's included, is steadier than wall time on a
			// machine that other processes share.
			b.ReportMetric(float64(processCPU(b)-cpu0)/rows, "cpu-ns/row")
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
