package atomicfile

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key.pem")
	if err := WriteFile(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %o", st.Mode().Perm())
	}
	// Concurrent readers see only whole versions.
	a, b := bytes.Repeat([]byte("a"), 1<<16), bytes.Repeat([]byte("b"), 1<<16)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			got, err := os.ReadFile(p)
			if err != nil {
				t.Error(err)
				return
			}
			if !bytes.Equal(got, a) && !bytes.Equal(got, b) && string(got) != "one" {
				t.Errorf("torn read of %d bytes", len(got))
				return
			}
		}
	}()
	for i := 0; i < 50; i++ {
		d := a
		if i%2 == 1 {
			d = b
		}
		if err := WriteFile(p, d, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temporary files left behind: %v", ents)
	}
	if err := WriteFile(filepath.Join(dir, "missing", "x"), nil, 0o600); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}

// RemoveTemps removes what an interrupted WriteFile of the path left, and
// nothing else: not the file, not the temporary files of another file
// (even one whose name begins the same), not names that only look alike.
func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "web.key")
	for _, name := range []string{"web.key", ".web.key.tmp-123456", ".web.key.tmp-9", ".web.key.prev.tmp-77",
		".web.key.tmp-abc", ".web.key.tmp-", "web.key.tmp-1", ".web.crt.tmp-5", "other"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A real leftover: a temporary file WriteFile itself made.
	f, err := os.CreateTemp(dir, tempPrefix(p)+"*")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	removed, err := RemoveTemps(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 3 {
		t.Fatalf("removed %v, want the 3 temporary files of web.key", removed)
	}
	entries, _ := os.ReadDir(dir)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	want := []string{".web.crt.tmp-5", ".web.key.prev.tmp-77", ".web.key.tmp-", ".web.key.tmp-abc", "other", "web.key", "web.key.tmp-1"}
	if strings.Join(left, " ") != strings.Join(want, " ") {
		t.Fatalf("left %v, want %v", left, want)
	}
	if removed, err := RemoveTemps(filepath.Join(dir, "missing", "x")); err != nil || len(removed) != 0 {
		t.Fatalf("in a missing directory: %v %v", removed, err)
	}
}
