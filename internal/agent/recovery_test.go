package agent_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trustgate/trustgate/internal/agent"
	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/config"
	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/server"
)

// issuing is an agent in issue mode (Config.Issue) on a real control
// plane, whose answers the test can hold back or spoil.
type issuing struct {
	spec config.AgentCertificate
	cp   *controlPlane
	// before runs before each issuance; an error fails it.
	before func() error
	// after may replace the control plane's answer.
	after func(*apiv1.IssueResponse) (*apiv1.IssueResponse, error)
	check func(ctx context.Context, name string, leaf *x509.Certificate) error

	// last is the agent made last: the next one on the same files
	// closes it first, as a process that exited would have.
	last *agent.Agent

	mu       sync.Mutex
	obtained []*x509.Certificate
}

func newIssuingSetup(t *testing.T, cp *controlPlane) *issuing {
	t.Helper()
	dir := t.TempDir()
	return &issuing{cp: cp, spec: config.AgentCertificate{Name: "listener/web", CommonName: "web.internal", DNS: []string{"web.internal"},
		CertFile: filepath.Join(dir, "web.crt"), KeyFile: filepath.Join(dir, "web.key")}}
}

// agent returns a new agent on the files, with the clock given, after
// closing the one made before.
func (is *issuing) agent(t *testing.T, clock agent.Clock) *agent.Agent {
	t.Helper()
	if is.last != nil {
		is.last.Close()
	}
	a, err := agent.New(agent.Config{
		Spec: config.Agent{
			ControlPlane: config.AgentControlPlane{Address: "https://" + is.cp.addr, CAFile: is.cp.files.Root},
			Certificates: []config.AgentCertificate{is.spec},
		},
		Clock: clock, Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry(),
		Issue: func(ctx context.Context, name, csr string) (*apiv1.IssueResponse, error) {
			if is.before != nil {
				if err := is.before(); err != nil {
					return nil, err
				}
			}
			res, err := is.cp.admin.Issue(ctx, apiv1.IssueRequest{CA: server.DemoIntermediate, Profile: "server", CSR: csr,
				CommonName: "web.internal", DNS: []string{"web.internal"}, Validity: "1h"})
			if err == nil && is.after != nil {
				return is.after(res)
			}
			return res, err
		},
		Obtained: func(name string, leaf *x509.Certificate) error {
			is.mu.Lock()
			defer is.mu.Unlock()
			is.obtained = append(is.obtained, leaf)
			return nil
		},
		Check: is.check,
	})
	if err != nil {
		t.Fatal(err)
	}
	is.last = a
	t.Cleanup(func() { a.Close() })
	return a
}

func (is *issuing) count() int {
	is.mu.Lock()
	defer is.mu.Unlock()
	return len(is.obtained)
}

func pemPrivateKey(t *testing.T, k crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// assertNoKeyLeftovers fails when a kept key or a temporary file is left
// beside the key file.
func assertNoKeyLeftovers(t *testing.T, keyFile string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Dir(keyFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if n := e.Name(); strings.HasSuffix(n, ".trustgate-prev") || strings.Contains(n, ".tmp-") {
			t.Fatalf("%s is left beside the key file", n)
		}
	}
}

// TestAgentCertificateWriteFails: when the new certificate cannot be
// written after the new key was (a full disk, an fsync error), the
// previous key is put back at once: the files still hold the last valid
// pair, and no copy of either key is left.
func TestAgentCertificateWriteFails(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	is := newIssuingSetup(t, startControlPlane(t, clock))
	if err := is.agent(t, clock).RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	first := loadPair(t, is.spec)
	firstKey := readFile(t, is.spec.KeyFile)

	// Due for renewal; the certificate file cannot be replaced (a
	// directory is in its way, so that the rename fails as a full disk
	// or an I/O error would).
	clock.Set(clock.Now().Add(50 * time.Minute))
	saved := is.spec.CertFile + ".saved"
	is.before = func() error {
		if err := os.Rename(is.spec.CertFile, saved); err != nil {
			return err
		}
		if err := os.Mkdir(is.spec.CertFile, 0o700); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(is.spec.CertFile, "in-the-way"), nil, 0o600)
	}
	err := is.agent(t, clock).RunOnce(t.Context())
	if err == nil || !strings.Contains(err.Error(), "write "+is.spec.CertFile) {
		t.Fatalf("RunOnce with an unwritable certificate file: %v", err)
	}
	if !bytes.Equal(readFile(t, is.spec.KeyFile), firstKey) {
		t.Fatal("the key file does not hold the key of the certificate in place")
	}
	assertNoKeyLeftovers(t, is.spec.KeyFile)
	if err := os.RemoveAll(is.spec.CertFile); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(saved, is.spec.CertFile); err != nil {
		t.Fatal(err)
	}
	if !loadPair(t, is.spec).Equal(first) {
		t.Fatal("the files do not hold the last valid pair")
	}
}

// TestAgentRestoresKeyAfterInterruptedRenewal: a renewal cut short (a
// crash) between writing the new key and the new certificate leaves the
// previous key kept aside; the next start puts it back, so that the last
// valid pair is served without the control plane, and leaves no copy.
func TestAgentRestoresKeyAfterInterruptedRenewal(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	cp := startControlPlane(t, clock)
	tests := []struct {
		name string
		// keyFile is what the key file holds after the crash: "new" (the
		// uncertified key) or "old".
		keyFile string
	}{
		{"ok/after the new key", "new"},
		{"ok/before the new key", "old"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := newIssuingSetup(t, cp)
			if err := is.agent(t, clock).RunOnce(t.Context()); err != nil {
				t.Fatal(err)
			}
			leaf := loadPair(t, is.spec)
			oldKey := readFile(t, is.spec.KeyFile)
			// The files as a crash leaves them.
			if err := os.WriteFile(keptKeyFile(is.spec.KeyFile), oldKey, 0o600); err != nil {
				t.Fatal(err)
			}
			if tt.keyFile == "new" {
				k, err := pki.GenerateKey(pki.ECP256)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(is.spec.KeyFile, pemPrivateKey(t, k), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			// The control plane is away: only the files can serve.
			is.before = func() error { return errors.New("control plane away") }
			a := is.agent(t, clock)
			if err := a.RunOnce(t.Context()); err != nil {
				t.Fatalf("RunOnce: %v", err)
			}
			if s := a.Status()[0]; !s.Valid || s.Serial != pki.SerialHex(leaf.SerialNumber) {
				t.Fatalf("status %+v", s)
			}
			if !loadPair(t, is.spec).Equal(leaf) || !bytes.Equal(readFile(t, is.spec.KeyFile), oldKey) {
				t.Fatal("the files do not hold the last valid pair")
			}
			if fi, err := os.Stat(is.spec.KeyFile); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("key file: %v %v", fi, err)
			}
			assertNoKeyLeftovers(t, is.spec.KeyFile)
			if is.count() != 1 {
				t.Fatalf("%d certificates obtained, want 1", is.count())
			}
		})
	}
}

// TestAgentRemovesStaleTemporaryFiles: temporary files that a write cut
// short left beside the files the agent manages (they may hold a key
// nothing certified) are removed at start; other files are not.
func TestAgentRemovesStaleTemporaryFiles(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	is := newIssuingSetup(t, startControlPlane(t, clock))
	dir := filepath.Dir(is.spec.KeyFile)
	stale := []string{".web.key.tmp-4242", "..web.key.trustgate-prev.tmp-17", ".web.crt.tmp-99"}
	kept := []string{".other.key.tmp-1", "web.key.tmp-3", ".web.key.tmp-x"}
	for _, n := range append(stale, kept...) {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("-----BEGIN PRIVATE KEY-----"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	is.agent(t, clock)
	for _, n := range stale {
		if _, err := os.Stat(filepath.Join(dir, n)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s is still there: %v", n, err)
		}
	}
	for _, n := range kept {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Fatalf("%s was removed: %v", n, err)
		}
	}
}

// TestAgentClockBehind: with the agent's clock behind the CA's by more
// than the CA back-dates NotBefore (but less than MaxClockSkew), a new
// certificate counts as valid: it is not obtained again and again.
func TestAgentClockBehind(t *testing.T) {
	cpClock := &fakeClock{now: time.Now()}
	is := newIssuingSetup(t, startControlPlane(t, cpClock))
	behind := &fakeClock{now: cpClock.Now().Add(-3 * time.Minute)}
	a := is.agent(t, behind)
	for range 2 {
		if err := a.RunOnce(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if s := a.Status()[0]; !s.Valid || is.count() != 1 {
		t.Fatalf("%d certificates obtained, status %+v", is.count(), s)
	}
	leaf := loadPair(t, is.spec)
	if !leaf.NotBefore.After(behind.Now()) {
		t.Fatalf("NotBefore %s is not ahead of the agent's clock %s", leaf.NotBefore, behind.Now())
	}
}

// TestAgentRefusedAnswerBacksOff: an answer refused after the control
// plane issued it is retried after half an hour at least, not at the
// pace of the backoff (each attempt costs a certificate), but no later
// than half the time the current certificate has left; with no valid
// certificate to serve meanwhile, after the backoff.
func TestAgentRefusedAnswerBacksOff(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	cp := startControlPlane(t, clock)
	refuse := func(*apiv1.IssueResponse) (*apiv1.IssueResponse, error) {
		return nil, &agent.RefusedError{Err: errors.New("names refused by the test")}
	}
	t.Run("ok/nothing valid: backoff", func(t *testing.T) {
		is := newIssuingSetup(t, cp)
		is.after = refuse
		a := is.agent(t, clock)
		start := clock.Now()
		runAgent(t, a)
		s := waitStatus(t, a, "a refused answer", func(s agent.Status) bool {
			// The due time before the attempt was start itself.
			return s.ConsecutiveFailures == 1 && s.NextAttempt != nil && s.NextAttempt.After(start)
		})
		if wait := s.NextAttempt.Sub(start); wait > time.Second {
			t.Fatalf("next attempt %s after the refusal, with nothing valid to serve", wait)
		}
	})
	tests := []struct {
		name string
		// at is when the renewal is refused, after the certificate's
		// NotBefore.
		at time.Duration
	}{
		{"ok/valid: half an hour at least", 0},
		{"ok/19 minutes left: half of it", 41 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := newIssuingSetup(t, cp)
			if err := is.agent(t, clock).RunOnce(t.Context()); err != nil {
				t.Fatal(err)
			}
			leaf := loadPair(t, is.spec)
			is.after = refuse
			// A stale certificate is due at once, whatever its age.
			is.check = func(context.Context, string, *x509.Certificate) error { return errors.New("stale") }
			clock.Set(leaf.NotBefore.Add(time.Minute + tt.at))
			a := is.agent(t, clock)
			start := clock.Now()
			runAgent(t, a)
			s := waitStatus(t, a, "a refused answer", func(s agent.Status) bool {
				// The due time before the attempt was start itself.
				return s.ConsecutiveFailures == 1 && s.NextAttempt != nil && s.NextAttempt.After(start)
			})
			wait, left := s.NextAttempt.Sub(start), leaf.NotAfter.Sub(start)
			if wait < 30*time.Minute && wait != left/2 || wait > left/2 {
				t.Fatalf("next attempt %s after the refusal, with %s left", wait, left)
			}
		})
	}
}

// TestAgentCheckMakesStaleCertificateDue: a valid certificate found in the
// files that Check says no longer matches is renewed at once (and served
// meanwhile); Check is asked once about it, and not about the
// certificate obtained in its place.
func TestAgentCheckMakesStaleCertificateDue(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	is := newIssuingSetup(t, startControlPlane(t, clock))
	if err := is.agent(t, clock).RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	old := loadPair(t, is.spec)
	var mu sync.Mutex
	var checked []string
	is.check = func(ctx context.Context, name string, leaf *x509.Certificate) error {
		mu.Lock()
		defer mu.Unlock()
		checked = append(checked, pki.SerialHex(leaf.SerialNumber))
		return errors.New("dns:www.internal is not in it")
	}
	a := is.agent(t, clock)
	// RunOnce does not ask: the certificate is valid and not due.
	if err := a.RunOnce(t.Context()); err != nil || is.count() != 1 {
		t.Fatalf("RunOnce: %v, %d obtained", err, is.count())
	}
	runAgent(t, a)
	waitStatus(t, a, "the stale certificate renewed", func(s agent.Status) bool { return s.Renewals == 1 })
	if loadPair(t, is.spec).Equal(old) {
		t.Fatal("the files still hold the stale certificate")
	}
	// The worker waits for the next renewal: no more checks by then.
	clock.nextWaiter(t)
	mu.Lock()
	defer mu.Unlock()
	if len(checked) != 1 || checked[0] != pki.SerialHex(old.SerialNumber) {
		t.Fatalf("checked %v, want only %s", checked, pki.SerialHex(old.SerialNumber))
	}
}

// keptKeyFile is where the agent keeps the previous key during a renewal.
func keptKeyFile(keyFile string) string {
	return filepath.Join(filepath.Dir(keyFile), "."+filepath.Base(keyFile)+".trustgate-prev")
}

// TestAgentLeavesOperatorFilesAlone: files beside the key whose names an
// operator may use (a backup in key_file.prev) are neither read, removed
// nor overwritten, through a start and a renewal.
func TestAgentLeavesOperatorFilesAlone(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	is := newIssuingSetup(t, startControlPlane(t, clock))
	if err := is.agent(t, clock).RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	backup := is.spec.KeyFile + ".prev"
	if err := os.WriteFile(backup, []byte("the operator's own backup"), 0o600); err != nil {
		t.Fatal(err)
	}
	clock.Set(clock.Now().Add(50 * time.Minute)) // due
	if err := is.agent(t, clock).RunOnce(t.Context()); err != nil || is.count() != 2 {
		t.Fatalf("renewal: %v, %d obtained", err, is.count())
	}
	if b := readFile(t, backup); string(b) != "the operator's own backup" {
		t.Fatalf("%s now holds %q", backup, b)
	}
	assertNoKeyLeftovers(t, is.spec.KeyFile)
}

// TestAgentSecondOnSameFilesFails: a second agent on the files of a
// running one (an agent --once from cron beside the daemon) fails to
// start, saying which file is locked, and changes nothing: the temporary
// files and the kept key of a renewal under way stay. Once the first is
// closed, another can start.
func TestAgentSecondOnSameFilesFails(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	is := newIssuingSetup(t, startControlPlane(t, clock))
	first := is.agent(t, clock)
	if err := first.RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	// What the first has on disk in the middle of a renewal.
	inFlight := []string{keptKeyFile(is.spec.KeyFile), filepath.Join(filepath.Dir(is.spec.KeyFile), ".web.key.tmp-123")}
	for _, f := range inFlight {
		if err := os.WriteFile(f, readFile(t, is.spec.KeyFile), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, err := agent.New(agent.Config{
		Spec: config.Agent{ControlPlane: config.AgentControlPlane{Address: "https://" + is.cp.addr},
			Certificates: []config.AgentCertificate{is.spec}},
		Logger: slog.New(slog.DiscardHandler),
	})
	lockFile := filepath.Join(filepath.Dir(is.spec.KeyFile), ".web.key.trustgate-lock")
	want := `certificate "listener/web": another agent or gateway manages its files: lock ` + is.spec.KeyFile +
		": locked by another process (process " + strconv.Itoa(os.Getpid()) + "): " + lockFile + " is held"
	if err == nil || err.Error() != want {
		t.Fatalf("second agent: %v\nwant %s", err, want)
	}
	for _, f := range inFlight {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("the second agent removed %s: %v", f, err)
		}
	}
	first.Close()
	third, err := agent.New(agent.Config{
		Spec: config.Agent{ControlPlane: config.AgentControlPlane{Address: "https://" + is.cp.addr},
			Certificates: []config.AgentCertificate{is.spec}},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	third.Close()
}

// TestAgentRefusesCertificateNotYetValid: with the CA's clock further
// ahead than MaxClockSkew, an enrolled certificate would not count as
// valid, and the agent would obtain another at once, again and again; it
// is refused instead (nothing is written) and retried after a backoff.
func TestAgentRefusesCertificateNotYetValid(t *testing.T) {
	cpClock := &fakeClock{now: time.Now()}
	cp := startControlPlane(t, cpClock)
	behind := &fakeClock{now: cpClock.Now().Add(-10 * time.Minute)}
	spec := certSpec(t.TempDir(), cp.token(apiv1.CreateBootstrapTokenRequest{Profile: "server", Name: "svc-a",
		DNS: []string{"svc-a.internal"}, MaxValidity: "1h"}))
	a := newAgent(t, cp, behind, spec)
	err := a.RunOnce(t.Context())
	if err == nil || !strings.Contains(err.Error(), "after the local clock") || !strings.Contains(err.Error(), "check the clocks") {
		t.Fatalf("RunOnce: %v", err)
	}
	var refused *agent.RefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("not a RefusedError: %v", err)
	}
	if _, err := os.Stat(spec.CertFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a certificate not valid yet was written: %v", err)
	}
	if s := a.Status()[0]; s.Valid || s.ConsecutiveFailures != 1 || s.Renewals != 0 {
		t.Fatalf("status %+v", s)
	}
}

// TestAgentCheckUnknownAskedAgain: when Check cannot tell (what it
// checks against cannot be had), the certificate is served and Check is
// asked again within the longest backoff, not taken as matching for
// good: a certificate that no longer matches is still renewed.
func TestAgentCheckUnknownAskedAgain(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	is := newIssuingSetup(t, startControlPlane(t, clock))
	if err := is.agent(t, clock).RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	old := loadPair(t, is.spec)
	var asked atomic.Int32
	is.check = func(ctx context.Context, name string, leaf *x509.Certificate) error {
		if asked.Add(1) == 1 {
			return fmt.Errorf("%w: the control plane is away", agent.ErrCheckUnknown)
		}
		return errors.New("another CA issued it")
	}
	a := is.agent(t, clock)
	runAgent(t, a)
	next := clock.nextWaiter(t)
	if is.count() != 1 || asked.Load() != 1 {
		t.Fatalf("%d obtained, asked %d times", is.count(), asked.Load())
	}
	if wait := next.Sub(clock.Now()); wait > 5*time.Minute {
		t.Fatalf("asks again in %s", wait)
	}
	clock.Set(next)
	waitStatus(t, a, "the stale certificate renewed", func(s agent.Status) bool { return s.Renewals == 1 })
	if loadPair(t, is.spec).Equal(old) || asked.Load() != 2 {
		t.Fatalf("asked %d times; the files still hold the certificate of another CA", asked.Load())
	}
}

// TestAgentChainWriteFailsAfterCertificate: when the chain file cannot
// be written after the new key and certificate were, the renewal is not
// undone: the reload hook runs all the same (or the consumer would never
// pick up the new pair), the error is reported, and the chain is written
// on a later pass, with the hook run again.
func TestAgentChainWriteFailsAfterCertificate(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	cp := startControlPlane(t, clock)
	dir := t.TempDir()
	spec := certSpec(dir, cp.token(apiv1.CreateBootstrapTokenRequest{Profile: "server", Name: "svc-a",
		DNS: []string{"svc-a.internal"}, MaxValidity: "1h"}))
	marker := filepath.Join(dir, "reloads")
	spec.OnRenew = "echo reload >> " + marker
	// A directory in the way of the chain file, as a full disk would be.
	if err := os.Mkdir(spec.ChainFile, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(spec.ChainFile, "in-the-way"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	a := newAgent(t, cp, clock, spec)
	runAgent(t, a)
	s := waitStatus(t, a, "enrolled", func(s agent.Status) bool { return s.Renewals == 1 && s.LastError != "" })
	if !strings.Contains(s.LastError, "write "+spec.ChainFile) || s.ConsecutiveFailures != 0 {
		t.Fatalf("status %+v", s)
	}
	leaf := loadPair(t, spec)
	reloads := func() int {
		b, _ := os.ReadFile(marker)
		return strings.Count(string(b), "reload")
	}
	if reloads() != 1 {
		t.Fatalf("the hook ran %d times, want 1", reloads())
	}
	if _, err := os.Stat(spec.BundleFile); err != nil {
		t.Fatalf("bundle file: %v", err)
	}
	next := clock.nextWaiter(t)
	if wait := next.Sub(clock.Now()); wait > time.Minute { // retry.max of newAgent
		t.Fatalf("the chain is written again in %s", wait)
	}
	if err := os.RemoveAll(spec.ChainFile); err != nil {
		t.Fatal(err)
	}
	clock.Set(next)
	deadline := time.Now().Add(20 * time.Second)
	for reloads() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the hook ran %d times after the chain was written, want 2", reloads())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if b := readFile(t, spec.ChainFile); !bytes.Contains(b, []byte("BEGIN CERTIFICATE")) {
		t.Fatalf("chain file: %q", b)
	}
	if !loadPair(t, spec).Equal(leaf) || a.Status()[0].Renewals != 1 {
		t.Fatal("the certificate was renewed again")
	}
}
