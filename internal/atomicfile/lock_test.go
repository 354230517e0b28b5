//go:build linux

package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestTryLock: a second lock of the same files fails, in this process or
// in another, with a message naming the lock file and the holder; after
// Unlock it succeeds, and neither touches the files themselves.
func TestTryLock(t *testing.T) {
	if os.Getenv("ATOMICFILE_LOCK_CHILD") != "" {
		return // the child's part is in TestTryLockChild
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "web.key")
	if err := os.WriteFile(key, []byte("key"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := TryLock(key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Unlock() })
	if fi, err := os.Stat(LockName(key)); err != nil || fi.Mode().Perm() != 0o600 || filepath.Base(LockName(key)) != ".web.key.trustgate-lock" {
		t.Fatalf("lock file: %v %v", fi, err)
	}
	tests := []struct {
		name string
		try  func() error
	}{
		{"fail/same-process", func() error {
			l2, err := TryLock(key)
			l2.Unlock()
			return err
		}},
		{"fail/other-process", func() error {
			cmd := exec.Command(os.Args[0], "-test.run=^TestTryLockChild$", "-test.v")
			cmd.Env = append(os.Environ(), "ATOMICFILE_LOCK_CHILD="+key)
			out, err := cmd.CombinedOutput()
			if err != nil {
				return fmt.Errorf("child: %v: %s", err, out)
			}
			if i := strings.Index(string(out), "LOCKERR="); i >= 0 {
				return errors.New(strings.SplitN(string(out[i+len("LOCKERR="):]), "\n", 2)[0])
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.try()
			want := fmt.Sprintf("lock %s: locked by another process (process %d): %s is held", key, os.Getpid(), LockName(key))
			if err == nil || err.Error() != want {
				t.Fatalf("got %v, want %q", err, want)
			}
		})
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	l3, err := TryLock(key)
	if err != nil {
		t.Fatalf("after Unlock: %v", err)
	}
	l3.Unlock()
	if b, err := os.ReadFile(key); err != nil || string(b) != "key" {
		t.Fatalf("the locked file changed: %q %v", b, err)
	}
}

// TestTryLockChild is the other process of TestTryLock.
func TestTryLockChild(t *testing.T) {
	key := os.Getenv("ATOMICFILE_LOCK_CHILD")
	if key == "" {
		t.Skip("run by TestTryLock")
	}
	l, err := TryLock(key)
	if err != nil {
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("not ErrLocked: %v", err)
		}
		fmt.Printf("LOCKERR=%s\n", err)
		return
	}
	l.Unlock()
}
