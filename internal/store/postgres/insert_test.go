package postgres

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/store"
)

// TestSeqOrderIsCommitOrder has two stores on one schema, as two nodes,
// insert from many goroutines while a reader walks the inventory by Seq as a
// follower would, never going back. Rows becoming visible out of Seq order
// would make the reader pass over some for good.
func TestSeqOrderIsCommitOrder(t *testing.T) {
	t.Parallel()
	schema := testSchema(t)
	nodes := make([]*DB, 2)
	for i := range nodes {
		db, err := OpenConfig(t.Context(), testConfig(schema))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		nodes[i] = db
	}
	if err := nodes[0].CreateCA(t.Context(), testCA("ca-1")); err != nil {
		t.Fatal(err)
	}
	const workers, perWorker = 8, 60 // per node
	var (
		wg       sync.WaitGroup
		inserted sync.Map // serial → seq
	)
	for n, db := range nodes {
		for w := range workers {
			wg.Go(func() {
				for i := range perWorker {
					c := testCert("ca-1", fmt.Sprintf("%x%02x%04x", n, w, i))
					if err := db.InsertCertificate(t.Context(), c); err != nil {
						t.Errorf("InsertCertificate: %v", err)
						return
					}
					inserted.Store(c.Serial, c.Seq)
				}
			})
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	seen := map[string]int64{}
	var after int64
	walk := func() {
		for {
			page, err := nodes[1].ListCertificates(t.Context(), store.CertFilter{After: after, Limit: 7})
			if err != nil {
				t.Fatalf("ListCertificates: %v", err)
			}
			if len(page) == 0 {
				return
			}
			for _, c := range page {
				seen[c.Serial] = c.Seq
				after = c.Seq
			}
		}
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		walk()
	}
	walk() // everything has committed: one last pass from where the walk is
	if t.Failed() {
		return
	}
	total := 0
	inserted.Range(func(k, v any) bool {
		total++
		if seq, ok := seen[k.(string)]; !ok || seq != v.(int64) {
			t.Errorf("serial %s (Seq %d): the walk passed over it (saw Seq %d, %v)", k, v, seq, ok)
		}
		return true
	})
	if want := len(nodes) * workers * perWorker; total != want || len(seen) != want {
		t.Errorf("%d inserts returned nil and the walk saw %d, want %d", total, len(seen), want)
	}
}

// helperEnv holds "schema worker" for TestInsertHelper when it runs as a
// child process of TestManyProcesses.
const helperEnv = "TRUSTGATE_POSTGRES_INSERT_HELPER"

// helperSerials is how many serials every helper process tries to insert,
// all of them the same ones.
const helperSerials = 240

// TestInsertHelper is not a test: run by TestManyProcesses in a child
// process, it opens the schema given in its environment and inserts every
// helper serial from several goroutines, in an order of its own, printing
// the outcome of each.
func TestInsertHelper(t *testing.T) {
	env := os.Getenv(helperEnv)
	if env == "" {
		t.Skip("helper process for TestManyProcesses")
	}
	schema, worker, _ := strings.Cut(env, " ")
	w, _ := strconv.Atoi(worker)
	db, err := OpenConfig(context.Background(), testConfig(schema))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	defer db.Close()
	var (
		mu  sync.Mutex
		out = bufio.NewWriter(os.Stdout)
		wg  sync.WaitGroup
	)
	const goroutines = 8
	for g := range goroutines {
		wg.Go(func() {
			for i := g; i < helperSerials; i += goroutines {
				serial := fmt.Sprintf("%04x", (i+w*97)%helperSerials+1)
				c := testCert("ca-1", serial)
				err := db.InsertCertificate(context.Background(), c)
				mu.Lock()
				switch {
				case err == nil:
					fmt.Fprintln(out, "committed", serial, c.Seq)
				case store.IsConflict(err):
					fmt.Fprintln(out, "conflict", serial)
				default:
					fmt.Fprintln(out, "error", serial, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	out.Flush()
}

// TestManyProcesses runs several processes that insert the same serials
// into one schema at once: each serial must be committed by exactly one of
// them, refused as a conflict to the others, and stored once under the Seq
// its committer was given.
func TestManyProcesses(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts child processes")
	}
	schema := testSchema(t)
	db, err := OpenConfig(t.Context(), testConfig(schema))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.CreateCA(t.Context(), testCA("ca-1")); err != nil {
		t.Fatal(err)
	}
	const procs = 3
	outs := make([][]byte, procs)
	errs := make([]error, procs)
	var wg sync.WaitGroup
	for p := range procs {
		wg.Go(func() {
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestInsertHelper$", "-test.count=1")
			cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d", helperEnv, schema, p))
			outs[p], errs[p] = cmd.Output()
		})
	}
	wg.Wait()
	committed := map[string]int64{}
	conflicts := map[string]int{}
	for p := range procs {
		if errs[p] != nil {
			t.Fatalf("helper %d: %v\n%s", p, errs[p], outs[p])
		}
		for line := range strings.Lines(string(outs[p])) {
			f := strings.Fields(line)
			switch {
			case len(f) == 3 && f[0] == "committed":
				if _, dup := committed[f[1]]; dup {
					t.Errorf("serial %s committed twice", f[1])
				}
				committed[f[1]], _ = strconv.ParseInt(f[2], 10, 64)
			case len(f) == 2 && f[0] == "conflict":
				conflicts[f[1]]++
			case len(f) > 0 && (f[0] == "error" || f[0] == "--- FAIL:"):
				t.Errorf("helper %d: %s", p, line)
			}
		}
	}
	if len(committed) != helperSerials {
		t.Errorf("%d serials committed, want %d", len(committed), helperSerials)
	}
	for serial := range committed {
		if conflicts[serial] != procs-1 {
			t.Errorf("serial %s: %d conflicts, want %d", serial, conflicts[serial], procs-1)
		}
	}
	list, err := db.ListCertificates(t.Context(), store.CertFilter{Limit: MaxListLimit})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != helperSerials {
		t.Errorf("%d certificates stored, want %d", len(list), helperSerials)
	}
	for _, c := range list {
		if seq, ok := committed[c.Serial]; !ok || seq != c.Seq {
			t.Errorf("serial %s stored with Seq %d; its committer was given %d (%v)", c.Serial, c.Seq, seq, ok)
		}
	}
}

// TestBatchRowFailures sends batches in which some rows are refused by the
// server (an unknown CA, text that is not UTF-8, a duplicate): each fails
// alone with its own error, and every other row is committed exactly once.
func TestBatchRowFailures(t *testing.T) {
	t.Parallel()
	// One writer and a deep queue, so that rows share batches.
	db := openTest(t, func(c *Config) { c.Writers = 1 })
	if err := db.CreateCA(t.Context(), testCA("ca-1")); err != nil {
		t.Fatal(err)
	}
	type want struct {
		c   *store.Certificate
		err func(error) bool // nil: success
	}
	isInvalid := func(err error) bool { return fault.KindOf(err) == fault.Invalid }
	var cases []want
	for i := range 200 {
		c := testCert("ca-1", fmt.Sprintf("%04x", i))
		w := want{c: c}
		switch i % 10 {
		case 3:
			c.CAID, c.IssuerKey = "no-such-ca", "no-such-ca"
			w.err = store.IsNotFound
		case 6:
			c.Subject = "CN=\xff\xfe"
			w.err = isInvalid
		case 8:
			// A duplicate of row i-1, inserted at the same time: one of
			// the two wins, checked below.
			c.Serial = fmt.Sprintf("%04x", i-1)
		}
		cases = append(cases, w)
	}
	errs := make([]error, len(cases))
	var wg sync.WaitGroup
	for i := range cases {
		wg.Go(func() { errs[i] = db.InsertCertificate(t.Context(), cases[i].c) })
	}
	wg.Wait()
	ok := 0
	for i, w := range cases {
		switch {
		case i%10 == 7 || i%10 == 8:
			if i%10 == 8 {
				a, b := errs[i-1], errs[i]
				if (a == nil) == (b == nil) || !store.IsConflict(a) && !store.IsConflict(b) {
					t.Errorf("rows %d and %d, one serial: errors %v and %v; want one success and one conflict", i-1, i, a, b)
				}
				ok++
			}
		case w.err == nil && errs[i] != nil:
			t.Errorf("row %d: %v, want success", i, errs[i])
		case w.err != nil && !w.err(errs[i]):
			t.Errorf("row %d: err = %v, want another kind", i, errs[i])
		case w.err == nil:
			ok++
		}
	}
	n, err := db.CountCertificates(t.Context(), "ca-1")
	if err != nil || n != int64(ok) {
		t.Errorf("CountCertificates = %d, %v; want %d", n, err, ok)
	}
}

// TestInsertContextDeadline races short deadlines against the group commit:
// a nil return means the row is there, and a context error means it is not.
func TestInsertContextDeadline(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
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
	for w := range 16 {
		wg.Go(func() {
			for i := range 30 {
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

func TestClose(t *testing.T) {
	t.Parallel()
	db := openTest(t, nil)
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
		"RevokeCertificate": func() error { _, err := db.RevokeCertificate(ctx, "ca", "01", 1, t0); return err }(),
		"NextCRLNumber":     func() error { _, err := db.NextCRLNumber(ctx, "ca", 0); return err }(),
		"ListRevoked": db.ListRevoked(ctx, "ca", -1, time.Time{}, func(store.RevokedEntry) error {
			return errors.New("called")
		}),
	} {
		wantUnavailable(t, name+" after Close", err)
	}
}

// TestCloseDrainsQueue closes the store while inserts are in flight: each
// insert either returns nil and is stored, or fails as unavailable.
func TestCloseDrainsQueue(t *testing.T) {
	t.Parallel()
	schema := testSchema(t)
	db, err := OpenConfig(t.Context(), testConfig(schema))
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
		once      sync.Once
	)
	started := make(chan struct{})
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

	db, err = OpenConfig(t.Context(), testConfig(schema))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n, err := db.CountCertificates(t.Context(), "ca-1")
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(committed)) {
		t.Errorf("%d certificates stored, %d inserts returned nil", n, len(committed))
	}
}
