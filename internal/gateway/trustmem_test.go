package gateway

import (
	"math/big"
	"path/filepath"
	"testing"
	"time"
)

// TestReturnMemoryAfterBigTrustStore: compiling a trust store with a CRL
// of more than bigCRLEntries serials, and replacing it, starts a garbage
// collection; a small one does not.
func TestReturnMemoryAfterBigTrustStore(t *testing.T) {
	dir := t.TempDir()
	root := newCA(t, "Memory Root")
	inter := root.sub(t, "Memory Intermediate")
	now := time.Now()
	serials := make([]*big.Int, bigCRLEntries+1)
	for i := range serials {
		serials[i] = big.NewInt(int64(i + 1))
	}
	large := inter.crl(t, now.Add(-time.Hour), now.Add(time.Hour), serials...)
	small := inter.crl(t, now.Add(-time.Hour), now.Add(time.Hour), big.NewInt(1))
	ca, crl := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "crl")
	writeFile(t, ca, pemCerts(root.cert, inter.cert))
	writeFile(t, crl, small)
	src := &FileSource{CAFile: ca, CRLFiles: []string{crl}}

	// Wait for any collection started by an earlier test to end.
	waitIdle := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for returning.Load() {
			if time.Now().After(deadline) {
				t.Fatal("a collection did not end")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitIdle()
	before := memoryReturns.Load()
	ts, err := newTrustState(t.Context(), "mem", src)
	if err != nil {
		t.Fatal(err)
	}
	if n := memoryReturns.Load() - before; n != 0 {
		t.Errorf("a small trust store started %d collections", n)
	}
	for i, data := range [][]byte{large, small} {
		waitIdle()
		before = memoryReturns.Load()
		writeFile(t, crl, data)
		if _, swapped, err := ts.refresh(t.Context(), true); err != nil || !swapped {
			t.Fatalf("refresh %d: swapped %v, %v", i, swapped, err)
		}
		if n := memoryReturns.Load() - before; n != 1 {
			t.Errorf("refresh %d (to the %s CRL, from the %s one): %d collections, want 1", i, []string{"big", "small"}[i], []string{"small", "big"}[i], n)
		}
	}
	waitIdle()
}
