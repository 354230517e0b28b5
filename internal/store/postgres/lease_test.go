package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/store"
)

// TestLeaseTakeover plays two nodes on one database: the holder's session
// is killed as kill -9 of its process would end it, its lease is lost, and
// the other node takes the lease within the 10 s the control plane promises.
func TestLeaseTakeover(t *testing.T) {
	schema := testSchema(t)
	open := func() *DB {
		t.Helper()
		db, err := OpenConfig(context.Background(), testConfig(schema))
		if err != nil {
			t.Fatalf("OpenConfig: %v", err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	a, b := open(), open()
	ctx := t.Context()

	ha, err := a.TryLease(ctx, "jobs")
	if err != nil {
		t.Fatalf("node a: TryLease: %v", err)
	}
	t.Cleanup(ha.Release)
	if _, err := b.TryLease(ctx, "jobs"); !errors.Is(err, store.ErrLeaseHeld) {
		t.Fatalf("node b: TryLease while a holds it: got %v, want ErrLeaseHeld", err)
	}

	// The server ends a's session, as it does when a's socket closes.
	pid := ha.(*pgHeld).conn.PgConn().PID()
	var ok bool
	if err := adminPool(t).QueryRow(ctx, "SELECT pg_terminate_backend($1)", pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend(%d) = %v, %v", pid, ok, err)
	}
	start := time.Now()
	select {
	case <-ha.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("node a did not notice that its session ended")
	}
	for {
		hb, err := b.TryLease(ctx, "jobs")
		if err == nil {
			hb.Release()
			break
		}
		if !errors.Is(err, store.ErrLeaseHeld) {
			t.Fatalf("node b: TryLease: %v", err)
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("node b did not take the lease within 10 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("node b took over %v after a's session ended", time.Since(start).Round(time.Millisecond))
}

// TestLeaseLostOnClose checks that closing the DB gives its leases up.
func TestLeaseLostOnClose(t *testing.T) {
	db := openTest(t, nil)
	h, err := db.TryLease(t.Context(), "jobs")
	if err != nil {
		t.Fatalf("TryLease: %v", err)
	}
	db.Close()
	select {
	case <-h.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("the lease outlived its DB")
	}
}

// TestLeaseAfterClose checks that TryLease on a closed DB is
// ErrUnavailable, not ErrLeaseHeld: a node must not take a store it cannot
// use for another holder's lease.
func TestLeaseAfterClose(t *testing.T) {
	db := openTest(t, nil)
	db.Close()
	if _, err := db.TryLease(t.Context(), "jobs"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("TryLease on a closed DB: got %v, want ErrUnavailable", err)
	}
}
