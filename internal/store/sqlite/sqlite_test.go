package sqlite

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/store"
	"github.com/trustgate/trustgate/internal/store/storetest"
)

// t0 is the reference instant of these tests.
var t0 = time.Date(2026, time.March, 14, 15, 9, 26, 535897123, time.UTC)

// openTemp opens a new database in a temporary directory, closed at cleanup.
func openTemp(t testing.TB) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "trustgate.db")
	db, err := Open(path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db, path
}

// testCA returns a CA record with the given ID.
func testCA(id string) *store.CA {
	return &store.CA{
		ID: id, Name: "name-" + id, State: store.CAActive, KeyType: "ecdsa-p256",
		SealedKey: []byte("k"), CertDER: []byte("c"), Subject: "CN=" + id, PathLen: -1,
		NotBefore: t0, NotAfter: t0.Add(time.Hour), CreatedAt: t0, UpdatedAt: t0,
	}
}

// testCert returns a certificate record of caID.
func testCert(caID, serial string) *store.Certificate {
	return &store.Certificate{
		Serial: serial, CAID: caID, IssuerKey: caID, Subject: "CN=" + serial,
		SANs: []string{"dns:" + serial + ".example"}, Profile: "server", KeyType: "ecdsa-p256",
		NotBefore: t0, NotAfter: t0.Add(24 * time.Hour), Fingerprint: strings.Repeat("0", 64),
		Status: store.CertActive, DER: bytes.Repeat([]byte{0x30}, 600), Managed: true, CreatedAt: t0,
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		db, _ := openTemp(t)
		return db
	})
}

func TestReopenKeepsEverything(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "trustgate.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ca := testCA("ca-1")
	if err := db.CreateCA(ctx, ca); err != nil {
		t.Fatal(err)
	}
	var certs []*store.Certificate
	for i := range 20 {
		c := testCert(ca.ID, fmt.Sprintf("%x", i+1))
		if err := db.InsertCertificate(ctx, c); err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	tok := &store.Token{ID: "t", Principal: "p", Hash: []byte("hash"), CreatedAt: t0}
	if err := db.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := db.PutMeta(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-wal"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Close, %s-wal: %v; want it checkpointed and removed", path, err)
	}

	db, err = Open(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	if got, err := db.GetCA(ctx, ca.Name); err != nil || got.ID != ca.ID || !bytes.Equal(got.SealedKey, ca.SealedKey) {
		t.Errorf("GetCA after reopen = %+v, %v", got, err)
	}
	list, err := db.ListCertificates(ctx, store.CertFilter{Limit: 1000})
	if err != nil || len(list) != len(certs) {
		t.Fatalf("ListCertificates after reopen: %d certificates, %v; want %d", len(list), err, len(certs))
	}
	for i, c := range list {
		if c.Seq != certs[i].Seq || c.Serial != certs[i].Serial {
			t.Errorf("certificate %d after reopen: seq %d serial %s, want %d %s", i, c.Seq, c.Serial, certs[i].Seq, certs[i].Serial)
		}
	}
	if got, err := db.GetTokenByHash(ctx, tok.Hash); err != nil || got.ID != tok.ID {
		t.Errorf("GetTokenByHash after reopen = %+v, %v", got, err)
	}
	if v, err := db.GetMeta(ctx, "k"); err != nil || string(v) != "v" {
		t.Errorf("GetMeta after reopen = %q, %v", v, err)
	}
	// Seq continues past every value ever handed out.
	c := testCert(ca.ID, "ff")
	if err := db.InsertCertificate(ctx, c); err != nil {
		t.Fatal(err)
	}
	if last := certs[len(certs)-1].Seq; c.Seq <= last {
		t.Errorf("Seq after reopen = %d, want > %d", c.Seq, last)
	}
}

// crashEnv names the database that TestCrashHelper writes to when run as a
// child process of TestInsertSurvivesKill.
const crashEnv = "TRUSTGATE_SQLITE_CRASH_DB"

// TestCrashHelper is not a test: run by TestInsertSurvivesKill in a child
// process, it inserts certificates from several goroutines and prints the
// serial of each insert that returned nil, until it is killed.
func TestCrashHelper(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("helper process for TestInsertSurvivesKill")
	}
	db, err := Open(path)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				serial := fmt.Sprintf("%02x%06x", w, i)
				err := db.InsertCertificate(context.Background(), testCert("ca-1", serial))
				mu.Lock()
				if err != nil {
					fmt.Fprintln(out, "error", err)
				} else {
					fmt.Fprintln(out, "committed", serial)
				}
				out.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestInsertSurvivesKill kills a process that is inserting certificates and
// checks that every insert it saw return nil is in the database: a nil
// return means committed, not queued.
func TestInsertSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	path := filepath.Join(t.TempDir(), "trustgate.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateCA(t.Context(), testCA("ca-1")); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var committed []string
	sc := bufio.NewScanner(stdout)
	for len(committed) < 500 && sc.Scan() {
		verb, arg, _ := strings.Cut(sc.Text(), " ")
		if verb != "committed" {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("helper: %s", sc.Text())
		}
		committed = append(committed, arg)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(committed) < 500 {
		t.Fatalf("helper stopped after %d inserts: %v", len(committed), sc.Err())
	}

	db, err = Open(path)
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer db.Close()
	for _, serial := range committed {
		if _, err := db.GetCertificate(t.Context(), serial); err != nil {
			t.Errorf("serial %s was reported committed before the kill: %v", serial, err)
		}
	}
}

func TestSchemaTooNewIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trustgate.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Pretend a newer Trustgate migrated the file.
	raw, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'future.sql', 'x')", SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	_, err = Open(path)
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open of a newer schema: err = %v, want ErrSchemaTooNew", err)
	}
	for _, want := range []string{path, fmt.Sprintf("version %d", SchemaVersion+1), fmt.Sprintf("up to %d", SchemaVersion), "upgrade Trustgate"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("refused Open modified the database file")
	}
}

func TestOpenFailures(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not a database "), 512), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		path string
		want error // nil: any error
	}{
		"fail/missing-directory": {filepath.Join(dir, "no", "such", "dir", "x.db"), store.ErrUnavailable},
		"fail/directory":         {dir, store.ErrUnavailable},
		"fail/empty-path":        {"", nil},
		"fail/memory":            {":memory:", nil},
		"fail/not-a-database":    {garbage, nil},
	} {
		t.Run(name, func(t *testing.T) {
			db, err := Open(tc.path)
			if err == nil {
				db.Close()
				t.Fatalf("Open(%q) succeeded", tc.path)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Open(%q): err = %v, want one wrapping %v", tc.path, err, tc.want)
			}
		})
	}
}

// TestOpenPaths checks that a path means that file, whatever characters it
// holds: the DSN is a file: URI, where '?', '#' and '%' are special.
func TestOpenPaths(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for name, path := range map[string]string{
		"ok/relative":         "rel.db",
		"ok/relative-subdir":  filepath.Join("sub", "rel.db"),
		"ok/uri-characters":   filepath.Join(dir, "a?b=1&c#d%41 e", "x.db"),
		"ok/double-slash":     "/" + filepath.Join(dir, "dbl.db"),
		"ok/mode-like-suffix": filepath.Join(dir, "y.db?mode=ro"),
	} {
		t.Run(name, func(t *testing.T) {
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			db, err := Open(path)
			if err != nil {
				t.Fatalf("Open(%q): %v", path, err)
			}
			if err := db.PutMeta(t.Context(), "k", []byte("v")); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil || fi.Size() == 0 {
				t.Fatalf("database not written at %q: %v", path, err)
			}
		})
	}
}

func TestOpenSettings(t *testing.T) {
	db, path := openTemp(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("database file mode %v, want 0600", perm)
	}
	for _, tc := range []struct {
		db          *sql.DB
		pragma, val string
	}{
		{db.w, "journal_mode", "wal"},
		{db.w, "synchronous", "2"}, // FULL
		{db.w, "foreign_keys", "1"},
		{db.w, "busy_timeout", "5000"},
		{db.r, "journal_mode", "wal"},
		{db.r, "query_only", "1"},
	} {
		var got string
		if err := tc.db.QueryRow("PRAGMA " + tc.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tc.val {
			t.Errorf("PRAGMA %s = %s, want %s", tc.pragma, got, tc.val)
		}
	}
	if v, err := storedVersion(t.Context(), db.r); err != nil || v != SchemaVersion {
		t.Errorf("schema version = %d, %v; want %d", v, err, SchemaVersion)
	}
}

func TestMigrationsAreWellFormed(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || SchemaVersion != len(ms) {
		t.Fatalf("SchemaVersion %d with %d migrations", SchemaVersion, len(ms))
	}
}

func TestReadsDoNotWaitForWriter(t *testing.T) {
	db, _ := openTemp(t)
	if err := db.CreateCA(t.Context(), testCA("ca-1")); err != nil {
		t.Fatal(err)
	}
	// Hold the write lock with an uncommitted insert.
	tx, err := db.w.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec("UPDATE cas SET subject = 'uncommitted'"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	got, err := db.GetCA(ctx, "name-ca-1")
	if err != nil {
		t.Fatalf("GetCA while a write is open: %v", err)
	}
	if got.Subject != "CN=ca-1" {
		t.Errorf("GetCA saw subject %q, want the committed one", got.Subject)
	}
}

func TestClose(t *testing.T) {
	db, _ := openTemp(t)
	if err := db.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := t.Context()
	for name, err := range map[string]error{
		"CreateCA":          db.CreateCA(ctx, testCA("x")),
		"InsertCertificate": db.InsertCertificate(ctx, testCert("x", "1")),
		"PutMeta":           db.PutMeta(ctx, "k", nil),
		"ListCertificates":  func() error { _, err := db.ListCertificates(ctx, store.CertFilter{}); return err }(),
		"GetMeta":           func() error { _, err := db.GetMeta(ctx, "k"); return err }(),
	} {
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s after Close: err = %v, want one wrapping ErrUnavailable", name, err)
		}
	}
}

// TestCloseDrainsQueue closes the store while inserts are in flight: each
// insert either returns nil and is in the file, or fails as unavailable.
func TestCloseDrainsQueue(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trustgate.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateCA(t.Context(), testCA("ca-1")); err != nil {
		t.Fatal(err)
	}
	var (
		mu        sync.Mutex
		committed []string
		wg        sync.WaitGroup
	)
	started := make(chan struct{})
	var once sync.Once
	for w := range 32 {
		wg.Go(func() {
			for i := 0; ; i++ {
				serial := fmt.Sprintf("%02x%06x", w, i)
				err := db.InsertCertificate(context.Background(), testCert("ca-1", serial))
				if err != nil {
					if !errors.Is(err, store.ErrUnavailable) {
						t.Errorf("insert during Close: %v", err)
					}
					return
				}
				mu.Lock()
				committed = append(committed, serial)
				if len(committed) == 200 {
					once.Do(func() { close(started) })
				}
				mu.Unlock()
			}
		})
	}
	<-started
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()

	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n, err := db.CountCertificates(t.Context(), "ca-1")
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(committed)) {
		t.Errorf("%d certificates in the file, %d inserts returned nil", n, len(committed))
	}
	for _, serial := range committed {
		if _, err := db.GetCertificate(t.Context(), serial); err != nil {
			t.Errorf("serial %s: %v", serial, err)
		}
	}
}

// TestInsertContextDeadline races short deadlines against the group commit:
// a nil return means the row is there, and a context error means it is not.
func TestInsertContextDeadline(t *testing.T) {
	db, _ := openTemp(t)
	if err := db.CreateCA(t.Context(), testCA("ca-1")); err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		serial string
		err    error
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
		wg       sync.WaitGroup
	)
	for w := range 32 {
		wg.Go(func() {
			for i := range 40 {
				serial := fmt.Sprintf("%02x%04x", w, i)
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%8)*250*time.Microsecond)
				err := db.InsertCertificate(ctx, testCert("ca-1", serial))
				cancel()
				mu.Lock()
				outcomes = append(outcomes, outcome{serial, err})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	var ok, cancelled int
	for _, o := range outcomes {
		_, err := db.GetCertificate(t.Context(), o.serial)
		switch {
		case o.err == nil:
			ok++
			if err != nil {
				t.Errorf("serial %s: insert returned nil, lookup: %v", o.serial, err)
			}
		case errors.Is(o.err, context.DeadlineExceeded):
			cancelled++
			if !store.IsNotFound(err) {
				t.Errorf("serial %s: insert returned %v, but the row exists", o.serial, o.err)
			}
		default:
			t.Errorf("serial %s: %v", o.serial, o.err)
		}
	}
	t.Logf("%d committed, %d abandoned in the queue", ok, cancelled)
}

func TestListLimitIsCapped(t *testing.T) {
	db, _ := openTemp(t)
	if err := db.CreateCA(t.Context(), testCA("ca-1")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < MaxListLimit+10; i += 8 {
				if err := db.InsertCertificate(t.Context(), testCert("ca-1", fmt.Sprintf("%x", i+1))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	got, err := db.ListCertificates(t.Context(), store.CertFilter{Limit: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != MaxListLimit {
		t.Errorf("ListCertificates(Limit 1<<30) returned %d, want %d", len(got), MaxListLimit)
	}
}

func TestUnstorableValues(t *testing.T) {
	db, _ := openTemp(t)
	ctx := t.Context()
	if err := db.CreateCA(ctx, testCA("ca-1")); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(c *store.Certificate){
		"fail/san-newline":   func(c *store.Certificate) { c.SANs = []string{"dns:a\ndns:b"} },
		"fail/san-nul":       func(c *store.Certificate) { c.SANs = []string{"dns:a\x00"} },
		"fail/year-10000":    func(c *store.Certificate) { c.NotAfter = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"fail/negative-year": func(c *store.Certificate) { c.NotBefore = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC) },
	} {
		t.Run(name, func(t *testing.T) {
			c := testCert("ca-1", "01")
			mod(c)
			err := db.InsertCertificate(ctx, c)
			if fault.KindOf(err) != fault.Invalid {
				t.Errorf("InsertCertificate: err = %v, want kind invalid", err)
			}
		})
	}
	// A SAN substring with a separator would match across two SANs.
	if err := db.InsertCertificate(ctx, testCert("ca-1", "02")); err != nil {
		t.Fatal(err)
	}
	got, err := db.ListCertificates(ctx, store.CertFilter{SANContains: "example\n"})
	if err != nil || len(got) != 0 {
		t.Errorf("ListCertificates(SANContains with newline) = %d entries, %v; want none", len(got), err)
	}
}

// TestListQueriesUseIndexes checks that the paginated queries most used at
// scale read an index in seq order instead of sorting.
func TestListQueriesUseIndexes(t *testing.T) {
	db, _ := openTemp(t)
	for name, tc := range map[string]struct {
		shape listShape
		index string // "" for any index
	}{
		"ok/all":        {0, "INTEGER PRIMARY KEY"},
		"ok/ca":         {byCA, "certificates_ca_id_seq"},
		"ok/ca-status":  {byCA | byStatus, ""},
		"ok/status":     {byStatus, "certificates_status_seq"},
		"ok/serial":     {bySerial, "certificates_serial"},
		"ok/expired":    {byExpired, "INTEGER PRIMARY KEY"},
		"ok/san":        {bySAN, "INTEGER PRIMARY KEY"},
		"ok/ca-san-exp": {byCA | bySAN | byNotExpired, ""},
	} {
		t.Run(name, func(t *testing.T) {
			n := 2 // After and the limit
			for s := tc.shape; s != 0; s &= s - 1 {
				n++
			}
			rows, err := db.r.Query("EXPLAIN QUERY PLAN "+listSQL(tc.shape), make([]any, n)...)
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
			if !strings.Contains(p, "SEARCH") || !strings.Contains(p, tc.index) || strings.Contains(p, "TEMP B-TREE") || strings.Contains(p, "SCAN") {
				t.Errorf("plan %q, want a search of %s without a sort", p, tc.index)
			}
		})
	}
}

// BenchmarkInsertCertificateParallel measures group-committed inserts from
// concurrent callers, with synchronous=FULL on the test's disk; "callers" is
// the number of goroutines.
func BenchmarkInsertCertificateParallel(b *testing.B) {
	for _, perProc := range []int{1, 4, 32} {
		callers := perProc * runtime.GOMAXPROCS(0)
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			db, _ := openTemp(b)
			if err := db.CreateCA(b.Context(), testCA("ca-1")); err != nil {
				b.Fatal(err)
			}
			var worker atomic.Int64
			b.SetParallelism(perProc)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				w := worker.Add(1)
				for i := 0; pb.Next(); i++ {
					c := testCert("ca-1", fmt.Sprintf("%04x%08x", w, i))
					if err := db.InsertCertificate(context.Background(), c); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "inserts/s")
		})
	}
}

// BenchmarkInsertCertificateSerial measures one caller at a time: one
// transaction and one fsync per certificate, the floor group commit lifts.
func BenchmarkInsertCertificateSerial(b *testing.B) {
	db, _ := openTemp(b)
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
