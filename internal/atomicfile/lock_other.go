//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package atomicfile

import (
	"errors"
	"os"
)

var errWouldBlock = errors.New("would block")

// flock locks nothing where flock(2) is missing (see TryLock).
func flock(*os.File) error { return nil }
