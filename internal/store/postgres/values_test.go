package postgres

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/store"
)

// TestUnstorableValues checks the values this store refuses beyond the
// conformance suite, as fault.Invalid errors: the SQLite store refuses the
// same SANs and times, and PostgreSQL text cannot hold a NUL or bytes that
// are not UTF-8.
func TestUnstorableValues(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
	ctx := t.Context()
	if err := db.CreateCA(ctx, testCA("ca-1")); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(c *store.Certificate){
		"fail/san-newline":      func(c *store.Certificate) { c.SANs = []string{"dns:a\ndns:b"} },
		"fail/san-nul":          func(c *store.Certificate) { c.SANs = []string{"dns:a\x00"} },
		"fail/san-not-utf8":     func(c *store.Certificate) { c.SANs = []string{"dns:\xff.example"} },
		"fail/subject-nul":      func(c *store.Certificate) { c.Subject = "CN=a\x00b" },
		"fail/year-10000":       func(c *store.Certificate) { c.NotAfter = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"fail/negative-year":    func(c *store.Certificate) { c.NotBefore = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC) },
		"fail/partition-huge":   func(c *store.Certificate) { c.Partition = 1 << 40 },
		"fail/reason-huge":      func(c *store.Certificate) { c.Reason = 1 << 40 },
		"fail/requester-binary": func(c *store.Certificate) { c.Requester = "\xc3\x28" },
	} {
		t.Run(name, func(t *testing.T) {
			c := testCert("ca-1", "01")
			mod(c)
			if err := db.InsertCertificate(ctx, c); fault.KindOf(err) != fault.Invalid {
				t.Errorf("InsertCertificate: err = %v, want kind invalid", err)
			}
		})
	}
	for name, mod := range map[string]func(ca *store.CA){
		"fail/ca-depth-huge":     func(ca *store.CA) { ca.Depth = 1 << 40 },
		"fail/ca-name-nul":       func(ca *store.CA) { ca.Name = "a\x00" },
		"fail/ca-year-10000":     func(ca *store.CA) { ca.NotAfter = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"fail/ca-partitions-neg": func(ca *store.CA) { ca.CRLPartitions = -1 },
	} {
		t.Run(name, func(t *testing.T) {
			ca := testCA("ca-2")
			mod(ca)
			if err := db.CreateCA(ctx, ca); fault.KindOf(err) != fault.Invalid {
				t.Errorf("CreateCA: err = %v, want kind invalid", err)
			}
		})
	}
	if err := db.PutMeta(ctx, "k\x00", []byte("v")); fault.KindOf(err) != fault.Invalid {
		t.Errorf("PutMeta(key with NUL): err = %v, want kind invalid", err)
	}
	if n, err := db.CountCertificates(ctx, "ca-1"); err != nil || n != 0 {
		t.Errorf("CountCertificates after refused inserts = %d, %v; want 0", n, err)
	}

	// A lookup by a key that no row can hold finds nothing; it is not an error.
	if err := db.InsertCertificate(ctx, testCert("ca-1", "02")); err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"GetCA":              func() error { _, err := db.GetCA(ctx, "\x00"); return err },
		"GetCAByID":          func() error { _, err := db.GetCAByID(ctx, "\xff"); return err },
		"GetCertificate":     func() error { _, err := db.GetCertificate(ctx, "02\x00"); return err },
		"GetCertificateByCA": func() error { _, err := db.GetCertificateByCA(ctx, "ca-1\x00", "02"); return err },
		"RevokeCertificate":  func() error { _, err := db.RevokeCertificate(ctx, "ca-1", "\xff", 1, t0); return err },
		"ReleaseHold":        func() error { _, err := db.ReleaseHold(ctx, "ca-1", "\x00"); return err },
		"NextCRLNumber":      func() error { _, err := db.NextCRLNumber(ctx, "\x00", 0); return err },
		"GetMeta":            func() error { _, err := db.GetMeta(ctx, "\xff"); return err },
		"UpdateCA":           func() error { return db.UpdateCA(ctx, testCA("\x00")) },
	} {
		if err := call(); !store.IsNotFound(err) {
			t.Errorf("%s with an unstorable key: err = %v, want not found", name, err)
		}
	}
	for _, f := range []store.CertFilter{
		{SANContains: "example\n"}, {SANContains: "\x00"}, {SANContains: "\xff"},
		{Serial: "02\x00"}, {CAID: "\xff"},
	} {
		if got, err := db.ListCertificates(ctx, f); err != nil || len(got) != 0 {
			t.Errorf("ListCertificates(%+v) = %d entries, %v; want none", f, len(got), err)
		}
	}
	if n, err := db.CountCertificates(ctx, "\x00"); err != nil || n != 0 {
		t.Errorf("CountCertificates(NUL) = %d, %v; want 0", n, err)
	}
}

// TestRevocationInvalidValues checks the revocation values this store
// refuses beyond the conformance suite, as the SQLite store does.
func TestRevocationInvalidValues(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
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
		"fail/crl-number-negative-partition": func() error {
			_, err := db.NextCRLNumber(ctx, "ca-1", -1)
			return err
		},
		"fail/crl-number-huge-partition": func() error {
			_, err := db.NextCRLNumber(ctx, "ca-1", 1<<40)
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

// TestTimes checks the edges of the stored times: microseconds are kept,
// finer digits dropped; UpdateCA stamps a time that reads back equal.
func TestTimes(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.FixedZone("X", 3600))
	db := openTest(t, func(c *Config) { c.Now = func() time.Time { return now } })
	ctx := t.Context()
	ca := testCA("ca-1")
	ca.NotBefore = now
	if err := db.CreateCA(ctx, ca); err != nil {
		t.Fatal(err)
	}
	got, err := db.GetCAByID(ctx, "ca-1")
	if err != nil {
		t.Fatal(err)
	}
	if want := now.UTC().Truncate(time.Microsecond); got.NotBefore != want {
		t.Errorf("NotBefore = %v, want %v", got.NotBefore, want)
	}
	if err := db.UpdateCA(ctx, ca); err != nil {
		t.Fatal(err)
	}
	if got, err := db.GetCAByID(ctx, "ca-1"); err != nil || got.UpdatedAt != ca.UpdatedAt {
		t.Errorf("UpdatedAt = %v, %v; UpdateCA set %v", got.UpdatedAt, err, ca.UpdatedAt)
	}
	for _, at := range []time.Time{{}, time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)} {
		c := testCert("ca-1", fmt.Sprintf("%x", at.Year()+1))
		c.NotBefore, c.NotAfter = at, at
		if err := db.InsertCertificate(ctx, c); err != nil {
			t.Fatalf("InsertCertificate(%v): %v", at, err)
		}
		got, err := db.GetCertificate(ctx, c.Serial)
		if err != nil || got.NotBefore != at || got.NotAfter != at {
			t.Errorf("times %v stored, got %v, %v (%v)", at, got.NotBefore, got.NotAfter, err)
		}
	}
}

// bulkInsert records the certificates numbered first to first+n-1 of caID
// with serials hex(bulkSerialBase+number), spread over partitions by number,
// revoked at t0 for reason 1 when status says so, in one statement: a
// test-only path for volumes that would take InsertCertificate too long.
func bulkInsert(tb testing.TB, d *DB, caID string, first, n, partitions int, status store.CertStatus) {
	tb.Helper()
	rt, reason := time.Time{}, 0
	if status == store.CertRevoked {
		rt, reason = t0, 1
	}
	_, err := d.pool.Exec(tb.Context(), `INSERT INTO certificates (`+certColumns+`)
		SELECT $1, to_hex(i + $2), $1, 'CN=bulk', '{}', 'server', 'ecdsa-p256', $3, $4,
			'', $5, decode(repeat('30', 100), 'hex'), '', false, true, $3, $6, $7, i % $8
		FROM generate_series($9::bigint, $10::bigint) AS i`,
		caID, bulkSerialBase, t0.Add(-time.Hour), t0.Add(90*24*time.Hour),
		string(status), rt, reason, max(partitions, 1), first, first+n-1)
	if err != nil {
		tb.Fatalf("bulk insert: %v", err)
	}
	if _, err := d.pool.Exec(tb.Context(), "VACUUM ANALYZE certificates"); err != nil {
		tb.Fatalf("vacuum: %v", err)
	}
}

// bulkSerialBase makes bulk serials the same width, so that they sort as
// strings in the order of their numbers.
const bulkSerialBase = 0x10000000

// TestListRevokedStreams walks 100,000 revoked entries, among active
// certificates, and checks that the live heap does not grow with them: a
// store that collected the entries before calling fn would hold megabytes.
func TestListRevokedStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 125,000 rows")
	}
	const revoked, active, partitions = 100_000, 25_000, 4
	db := openTest(t, nil)
	if err := db.CreateCA(t.Context(), partitionedCA("ca-1", partitions)); err != nil {
		t.Fatal(err)
	}
	bulkInsert(t, db, "ca-1", 0, active, partitions, store.CertActive)
	bulkInsert(t, db, "ca-1", active, revoked, partitions, store.CertRevoked)

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
}

// explain returns the plan of query with args, as text.
func explain(t *testing.T, db *DB, query string, args ...any) string {
	t.Helper()
	return explainWith(t, db, "", query, args...)
}

// explainWith is explain with settings (e.g. "enable_sort = off") set for
// the EXPLAIN only.
func explainWith(t *testing.T, db *DB, settings, query string, args ...any) string {
	t.Helper()
	tx, err := db.pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(t.Context())
	if settings != "" {
		if _, err := tx.Exec(t.Context(), "SET LOCAL "+settings); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := tx.Query(t.Context(), "EXPLAIN "+query, args...)
	if err != nil {
		t.Fatalf("EXPLAIN %s: %v", query, err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.TrimSpace(l))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "; ")
}

// TestQueryPlans checks, on an analyzed table of 60,000 certificates, that
// the CRL walk reads the partial index in order and that the paginated and
// point queries use an index without sorting the inventory.
func TestQueryPlans(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("writes 60,000 rows")
	}
	db := openTest(t, nil)
	if err := db.CreateCA(t.Context(), partitionedCA("ca-1", 4)); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateCA(t.Context(), testCA("ca-2")); err != nil {
		t.Fatal(err)
	}
	bulkInsert(t, db, "ca-1", 0, 50_000, 4, store.CertActive)
	bulkInsert(t, db, "ca-2", 50_000, 5_000, 1, store.CertActive)
	bulkInsert(t, db, "ca-1", 55_000, 5_000, 4, store.CertRevoked)

	// The CRL walks are checked with sorting discouraged: at 5,000 revoked
	// rows (a sample of which ANALYZE reads at random) the planner may
	// find a sort cheap enough; what matters is that the partial index
	// gives the order, which it takes when a sort costs more (large CRLs).
	const noSort = "enable_sort = off"
	for name, tc := range map[string]struct {
		query    string
		args     []any
		index    string
		settings string
	}{
		"ok/revoked-all":           {listRevokedSQL(false, false), []any{"ca-1"}, "certificates_revoked", noSort},
		"ok/revoked-partition":     {listRevokedSQL(true, false), []any{"ca-1", 2}, "certificates_revoked", noSort},
		"ok/revoked-expiring":      {listRevokedSQL(false, true), []any{"ca-1", t0}, "certificates_revoked", noSort},
		"ok/revoked-partition-exp": {listRevokedSQL(true, true), []any{"ca-1", 2, t0}, "certificates_revoked", noSort},
		"ok/get-serial":            {getCertSQL, []any{"10000005"}, "certificates_serial_seq", ""},
		"ok/get-by-ca":             {getCertByCASQL, []any{"ca-1", "10000005"}, "certificates_issuer_key_serial_key", ""},
		"ok/list-all":              {selectCertSQL + " WHERE seq > $1 ORDER BY seq LIMIT 100", []any{1000}, "certificates_pkey", ""},
		"ok/list-ca":               {selectCertSQL + " WHERE seq > $1 AND ca_id = $2 ORDER BY seq LIMIT 100", []any{0, "ca-2"}, "certificates_ca_id_seq", ""},
		"ok/list-status":           {selectCertSQL + " WHERE seq > $1 AND status = $2 ORDER BY seq LIMIT 100", []any{0, "revoked"}, "certificates_", ""},
	} {
		t.Run(name, func(t *testing.T) {
			plan := explainWith(t, db, tc.settings, tc.query, tc.args...)
			t.Log(plan)
			if !strings.Contains(plan, tc.index) || strings.Contains(plan, "Sort") || strings.Contains(plan, "Seq Scan") {
				t.Errorf("plan %q, want a scan of %s without a sort", plan, tc.index)
			}
		})
	}
}
