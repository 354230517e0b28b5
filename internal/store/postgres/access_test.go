package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/trustgate/trustgate/internal/store"
)

// TestAccessGenerationByHand: a change made straight in the database, from
// a session whose search_path does not hold the store's schema (an operator
// in psql), moves the store's access generation, and the number is at least
// the time of the change in microseconds, so that it never comes back after
// a failover or a restore.
func TestAccessGenerationByHand(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, nil)
	before, err := db.AccessGeneration(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	conn, err := pgx.Connect(ctx, testURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	schema := pgx.Identifier{db.cfg.Schema}.Sanitize()
	if _, err := conn.Exec(ctx, "INSERT INTO "+schema+`.policies (name, document, created_at, updated_at)
		VALUES ('by-hand', '{}', now(), now())`); err != nil {
		t.Fatalf("a change by hand, from another search_path: %v", err)
	}
	after, err := db.AccessGeneration(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Errorf("access generation %d -> %d after a change by hand; want it moved", before, after)
	}
	if floor := start.Add(-time.Minute).UnixMicro(); after < floor {
		t.Errorf("access generation %d is below the time of the change (%d µs): it could come back", after, floor)
	}
}

// TestAccessWritesDoNotDeadlock runs principal updates that link a policy
// beside deletions of that policy: each one must succeed or fail with the
// store's own errors, never a deadlock (the principal's row, then the
// policy's key-share lock for the foreign key, then the generation's row,
// against the policy's row, then the generation's row).
func TestAccessWritesDoNotDeadlock(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, nil)
	at := time.Now().UTC().Truncate(time.Microsecond)
	if err := db.PutPolicy(ctx, &store.PolicyRecord{Name: "base", Document: []byte(`{}`), CreatedAt: at, UpdatedAt: at}); err != nil {
		t.Fatal(err)
	}
	if err := db.CreatePrincipal(ctx, &store.Principal{Name: "p", Kind: "service", Policies: []string{"base"},
		CreatedAt: at, UpdatedAt: at}); err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		name := fmt.Sprintf("pol-%d", i)
		if err := db.PutPolicy(ctx, &store.PolicyRecord{Name: name, Document: []byte(`{}`), CreatedAt: at, UpdatedAt: at}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var upd, del error
		wg.Go(func() {
			upd = db.UpdatePrincipal(ctx, &store.Principal{Name: "p", Kind: "service", Policies: []string{"base", name},
				CreatedAt: at, UpdatedAt: at})
		})
		wg.Go(func() { del = db.DeletePolicy(ctx, name) })
		wg.Wait()
		for _, err := range []error{upd, del} {
			if err != nil && !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("round %d: %v", i, err)
			}
		}
	}
}
