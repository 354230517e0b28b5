package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// LockName is the lock file of path: beside it, hidden, named like the
// temporary files WriteFile makes there, and never one of them.
func LockName(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".trustgate-lock")
}

// ErrLocked is returned by TryLock when another process holds the lock.
var ErrLocked = errors.New("locked by another process")

// A Lock is an advisory lock held on the files of one path (see TryLock).
type Lock struct {
	f *os.File
}

// TryLock takes the advisory lock of path (an exclusive flock(2) of
// LockName(path), created 0600 when missing) without waiting: it tells
// two processes that would manage the same files apart, so that the
// second fails to start rather than change files under the first. The
// lock is the process's until Unlock or its exit, and also excludes
// another TryLock of the same path in the same process. When another holds
// it, the error wraps ErrLocked and names the lock file and, when it is
// known, the process ID of the holder. The lock file stays in place
// after Unlock: removing it would let two processes lock two different
// files of the same name.
//
// On systems without flock(2) TryLock only creates the file: it locks
// nothing there.
func TryLock(path string) (*Lock, error) {
	name := LockName(path)
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := flock(f); err != nil {
		holder := ""
		if b, rerr := os.ReadFile(name); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 0 {
				holder = fmt.Sprintf(" (process %d)", pid)
			}
		}
		f.Close()
		if errors.Is(err, errWouldBlock) {
			return nil, fmt.Errorf("lock %s: %w%s: %s is held", path, ErrLocked, holder, name)
		}
		return nil, fmt.Errorf("lock %s: %s: %w", path, name, err)
	}
	// Who holds it, for the message of the next one that tries. Best
	// effort: the lock does not depend on it.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

// Unlock releases the lock. It is safe to call on a nil Lock and more
// than once.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the descriptor releases the flock
	l.f = nil
	return err
}
