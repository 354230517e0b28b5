package gateway

import (
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// stamp identifies a version of a file without reading it: a rewrite in
// place changes the modification time or the size, a replacement by rename
// (atomicfile, Kubernetes secret volumes) changes the inode.
type stamp struct{ fi os.FileInfo }

func statFile(path string) (stamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}, err
	}
	return stamp{fi}, nil
}

func (s stamp) same(o stamp) bool {
	if s.fi == nil || o.fi == nil {
		return false
	}
	return os.SameFile(s.fi, o.fi) && s.fi.ModTime().Equal(o.fi.ModTime()) && s.fi.Size() == o.fi.Size()
}

// keyPair is a certificate and key loaded from PEM files and replaced, as
// a whole and atomically, when either file changes. get is safe for
// concurrent use and never blocks; reload is serialized.
type keyPair struct {
	certFile, keyFile string
	// readFile reads a file; nil means os.ReadFile. Tests make it fail.
	readFile func(string) ([]byte, error)

	cur atomic.Pointer[tls.Certificate]

	mu      sync.Mutex
	stamps  [2]stamp
	lastErr string
}

// loadKeyPair reads the pair; an error here stops the gateway's start.
func loadKeyPair(certFile, keyFile string) (*keyPair, error) {
	k := &keyPair{certFile: certFile, keyFile: keyFile}
	if _, err := k.reload(true); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *keyPair) get() *tls.Certificate { return k.cur.Load() }

// reload re-reads the files when they changed (or always, with force) and
// swaps the pair in. On failure (a missing file, or a certificate and key
// that do not match because only one of them was replaced yet) the
// previous pair stays in use and the next call tries again. It reports
// whether the pair changed, and the error only the first time it happens.
func (k *keyPair) reload(force bool) (changed bool, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	cs, err1 := statFile(k.certFile)
	ks, err2 := statFile(k.keyFile)
	if err1 != nil || err2 != nil {
		return false, k.failed(fmt.Errorf("certificate %s / key %s: %w", k.certFile, k.keyFile, firstErr(err1, err2)))
	}
	if !force && cs.same(k.stamps[0]) && ks.same(k.stamps[1]) {
		return false, nil
	}
	read := k.readFile
	if read == nil {
		read = os.ReadFile
	}
	certPEM, err1 := read(k.certFile)
	keyPEM, err2 := read(k.keyFile)
	if err := firstErr(err1, err2); err != nil {
		return false, k.failed(fmt.Errorf("read certificate: %w", err))
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return false, k.failed(fmt.Errorf("certificate %s with key %s: %w", k.certFile, k.keyFile, err))
	}
	k.stamps = [2]stamp{cs, ks}
	k.lastErr = ""
	k.cur.Store(&pair)
	return true, nil
}

// failed returns err the first time it is seen, nil for repeats, so that a
// half-replaced pair does not log once a poll.
func (k *keyPair) failed(err error) error {
	if err.Error() == k.lastErr {
		return nil
	}
	k.lastErr = err.Error()
	return err
}

// notAfter is the leaf's expiry, for metrics.
func (k *keyPair) notAfter() time.Time {
	if c := k.get(); c != nil && c.Leaf != nil {
		return c.Leaf.NotAfter
	}
	return time.Time{}
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// logSink is where a log goes: stderr, stdout, nowhere, or a file opened
// for appending and reopened on SIGHUP (after logrotate moved it).
type logSink struct {
	path string
	mu   sync.Mutex
	w    io.Writer
	f    *os.File
}

func openSink(spec string, stderr io.Writer) (*logSink, error) {
	s := &logSink{path: spec}
	switch spec {
	case "", "stderr":
		s.w = stderr
	case "stdout":
		s.w = os.Stdout
	case "off":
		s.w = io.Discard
	default:
		f, err := os.OpenFile(spec, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, fmt.Errorf("open log: %w", err)
		}
		s.f, s.w = f, f
	}
	return s, nil
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// reopen reopens a file sink; other sinks ignore it.
func (s *logSink) reopen() error {
	if s.f == nil {
		return nil
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("reopen log: %w", err)
	}
	s.mu.Lock()
	old := s.f
	s.f, s.w = f, f
	s.mu.Unlock()
	return old.Close()
}

func (s *logSink) close() error {
	if s.f == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f.Close()
}
