package agent_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/agent"
	"github.com/trustgate/trustgate/internal/api/client"
	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/config"
	"github.com/trustgate/trustgate/internal/lifecycle"
	"github.com/trustgate/trustgate/internal/server"
)

// fakeClock is a clock the test moves. After registers a waiter that fires
// when the clock is set at or past its deadline.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, waiter{at: c.now.Add(d), ch: ch})
	return ch
}

// Set moves the clock to t and fires the waiters due by then.
func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(t) {
			w.ch <- t
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// nextWaiter waits (in real time) until something waits on the clock and
// returns the earliest deadline.
func (c *fakeClock) nextWaiter(t *testing.T) time.Time {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		var first time.Time
		for _, w := range c.waiters {
			if first.IsZero() || w.at.Before(first) {
				first = w.at
			}
		}
		c.mu.Unlock()
		if !first.IsZero() {
			return first
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("nothing waits on the clock")
	return time.Time{}
}

// controlPlane is a real control plane (`trustgate dev`'s assembly, on a
// SQLite file) serving its API on loopback, on the test's clock.
type controlPlane struct {
	t     *testing.T
	clock *fakeClock
	dir   string
	addr  string
	files server.DevFiles
	admin *client.Client
	stop  func()
	// webhooks, when set, is the lifecycle webhooks file.
	webhooks string
}

func startControlPlane(t *testing.T, clock *fakeClock, webhooks ...string) *controlPlane {
	t.Helper()
	cp := &controlPlane{t: t, clock: clock, dir: t.TempDir(), addr: "127.0.0.1:0"}
	if len(webhooks) > 0 {
		cp.webhooks = webhooks[0]
	}
	cp.start()
	t.Cleanup(func() { cp.stop() })
	tok, err := os.ReadFile(cp.files.Token)
	if err != nil {
		t.Fatal(err)
	}
	cp.admin, err = client.New(client.Config{Addr: "https://" + cp.addr, Token: strings.TrimSpace(string(tok)), CACertFile: cp.files.Root})
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// start opens the data directory and serves on cp.addr (a fixed port
// after the first start, so that a restart comes back where it was).
func (cp *controlPlane) start() {
	t := cp.t
	t.Helper()
	cfg := server.DevConfig(cp.dir, cp.addr, "")
	cfg.Public.BaseURL = "http://pki.test"
	cfg.Lifecycle.WebhooksFile = cp.webhooks
	s, files, err := server.PrepareDev(context.Background(), cfg, server.Options{Now: cp.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	cp.files = files
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, func(api, _ string) { started <- api }) }()
	select {
	case cp.addr = <-started:
	case err := <-done:
		s.Close()
		t.Fatalf("control plane: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the control plane did not start")
	}
	var once sync.Once
	cp.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("control plane Run: %v", err)
			}
			s.Close()
		})
	}
}

func (cp *controlPlane) token(r apiv1.CreateBootstrapTokenRequest) string {
	cp.t.Helper()
	if r.CA == "" {
		r.CA = server.DemoIntermediate
	}
	tok, err := cp.admin.CreateBootstrapToken(context.Background(), r)
	if err != nil {
		cp.t.Fatalf("create bootstrap token: %v", err)
	}
	return tok.Token
}

// certSpec is an agent certificate for svc-a written under dir.
func certSpec(dir, token string) config.AgentCertificate {
	return config.AgentCertificate{
		Name: "svc-a", CommonName: "svc-a", DNS: []string{"svc-a.internal"}, Token: token,
		CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem"),
		ChainFile: filepath.Join(dir, "chain.pem"), BundleFile: filepath.Join(dir, "bundle.pem"), RenewAt: 0.5,
	}
}

func newAgent(t *testing.T, cp *controlPlane, clock *fakeClock, certs ...config.AgentCertificate) *agent.Agent {
	t.Helper()
	a, err := agent.New(agent.Config{
		Spec: config.Agent{
			ControlPlane: config.AgentControlPlane{Address: "https://" + cp.addr, CAFile: cp.files.Root},
			Retry:        config.AgentRetry{Initial: config.Duration(time.Second), Max: config.Duration(time.Minute)},
			Certificates: certs,
		},
		Clock: clock, Logger: slog.New(slog.DiscardHandler), RequestTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// runAgent runs a until the test ends.
func runAgent(t *testing.T, a *agent.Agent) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// waitStatus waits until cond holds for the first certificate's status.
func waitStatus(t *testing.T, a *agent.Agent, what string, cond func(agent.Status) bool) agent.Status {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if s := a.Status()[0]; cond(s) {
			return s
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s: not within 20 s; status %+v", what, a.Status()[0])
	return agent.Status{}
}

// loadPair loads the certificate and key files as a TLS server would.
func loadPair(t *testing.T, spec config.AgentCertificate) *x509.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(spec.CertFile, spec.KeyFile)
	if err != nil {
		t.Fatalf("certificate and key files: %v", err)
	}
	return c.Leaf
}

// TestAgentRenewsRepeatedly: an agent enrols, then renews three times as
// the clock reaches each renewal time; a concurrent reader never sees a
// torn file or a mismatched pair in the bundle, and the reload hook runs
// each time with a matching certificate and key in place.
func TestAgentRenewsRepeatedly(t *testing.T) {
	clock := &fakeClock{now: time.Now().UTC()}
	// A webhook receiver for the control plane's renewal events.
	secret := []byte("0123456789abcdef-webhook")
	var (
		evMu    sync.Mutex
		renewed []string
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		// The fake clock jumps some 40 minutes at each renewal, and a
		// delivery may land after the next jump: the tolerance spans the
		// test's whole fake time (three renewals of one-hour certificates),
		// while the signature is checked as a receiver would.
		if err := lifecycle.Verify(secret, r.Header, body, clock.Now(), 3*time.Hour); err != nil {
			t.Errorf("webhook delivery: %v", err)
			return
		}
		var ev struct{ Type string }
		json.Unmarshal(body, &ev)
		evMu.Lock()
		renewed = append(renewed, ev.Type)
		evMu.Unlock()
	}))
	defer hook.Close()
	dir := t.TempDir()
	secretFile, hooksFile := filepath.Join(dir, "hook.secret"), filepath.Join(dir, "webhooks.yaml")
	os.WriteFile(secretFile, secret, 0o600)
	os.WriteFile(hooksFile, []byte(fmt.Sprintf("- name: test\n  url: %s\n  secret_file: %s\n", hook.URL, secretFile)), 0o600)
	cp := startControlPlane(t, clock, hooksFile)
	spec := certSpec(dir, cp.token(apiv1.CreateBootstrapTokenRequest{Profile: "server", Name: "svc-a", DNS: []string{"svc-a.internal"}, MaxValidity: "1h"}))
	// The hook keeps a copy of the pair as it found it, numbered.
	hookDir := filepath.Join(dir, "hook")
	if err := os.Mkdir(hookDir, 0o700); err != nil {
		t.Fatal(err)
	}
	hookLog := filepath.Join(dir, "hook.log")
	spec.OnRenew = fmt.Sprintf(`n=$(ls %[1]s | wc -l); cp "$TRUSTGATE_CERT_FILE" %[1]s/$n.cert; cp "$TRUSTGATE_KEY_FILE" %[1]s/$n.key; echo done >> %[2]s`, hookDir, hookLog)
	a := newAgent(t, cp, clock, spec)

	var reads atomic.Int64
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if b, err := os.ReadFile(spec.BundleFile); err == nil {
				if _, err := tls.X509KeyPair(b, b); err != nil {
					t.Errorf("the bundle file held a torn or mismatched pair: %v", err)
					return
				}
				reads.Add(1)
			}
			for _, f := range []string{spec.CertFile, spec.KeyFile, spec.ChainFile} {
				if b, err := os.ReadFile(f); err == nil {
					if err := wholePEM(b); err != nil {
						t.Errorf("%s was torn: %v", filepath.Base(f), err)
						return
					}
				}
			}
		}
	}()
	runAgent(t, a)

	st := waitStatus(t, a, "enrolment", func(s agent.Status) bool { return s.Renewals == 1 })
	first := loadPair(t, spec)
	if first.Subject.CommonName != "svc-a" || first.NotAfter.Sub(first.NotBefore) != time.Hour+time.Minute {
		t.Fatalf("enrolled certificate: %s, lifetime %s", first.Subject, first.NotAfter.Sub(first.NotBefore))
	}
	if fi, err := os.Stat(spec.KeyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi.Mode(), err)
	}
	serials := map[string]bool{st.Serial: true}
	prev := first
	for i := 2; i <= 4; i++ {
		due := clock.nextWaiter(t)
		// Renewal comes at half the lifetime, brought forward by at most
		// 5%; the lifetime counts from issuance, not from the NotBefore
		// that the CA moved back by a minute. NotBefore is in whole
		// seconds and the agent counts from the instant it got the
		// certificate, so the moment of issuance is known to a second.
		issued := prev.NotBefore.Add(time.Minute)
		life := prev.NotAfter.Sub(issued)
		if due.After(issued.Add(life/2+time.Second)) || due.Before(issued.Add(life*45/100)) {
			t.Fatalf("renewal %d due at %s, not within 45-50%% of [%s, %s]", i, due, issued, prev.NotAfter)
		}
		clock.Set(due)
		st = waitStatus(t, a, fmt.Sprintf("renewal %d", i), func(s agent.Status) bool { return s.Renewals == i })
		cur := loadPair(t, spec)
		if serials[st.Serial] || pkSerial(cur) != st.Serial {
			t.Fatalf("renewal %d: serial %s (files %s) is not new", i, st.Serial, pkSerial(cur))
		}
		serials[st.Serial] = true
		if cur.Subject.String() != first.Subject.String() || strings.Join(cur.DNSNames, ",") != strings.Join(first.DNSNames, ",") ||
			cur.NotAfter.Sub(cur.NotBefore) != first.NotAfter.Sub(first.NotBefore) {
			t.Fatalf("renewal %d changed the identity or lifetime: %s %v %s", i, cur.Subject, cur.DNSNames, cur.NotAfter.Sub(cur.NotBefore))
		}
		prev = cur
	}
	close(stop)
	<-readerDone
	if reads.Load() == 0 {
		t.Fatal("the reader never read the bundle")
	}
	// The hook ran after each of the four certificates (the last run may
	// still be finishing), each time with a matching pair in place.
	deadline := time.Now().Add(10 * time.Second)
	for b, _ := os.ReadFile(hookLog); strings.Count(string(b), "done") < 4 && time.Now().Before(deadline); b, _ = os.ReadFile(hookLog) {
		time.Sleep(10 * time.Millisecond)
	}
	for n := range 4 {
		if _, err := tls.LoadX509KeyPair(filepath.Join(hookDir, fmt.Sprintf("%d.cert", 2*n)), filepath.Join(hookDir, fmt.Sprintf("%d.key", 2*n))); err != nil {
			t.Fatalf("hook run %d: %v", n+1, err)
		}
	}
	if ents, _ := os.ReadDir(hookDir); len(ents) != 8 {
		t.Fatalf("the hook ran %d times, want 4", len(ents)/2)
	}
	// The control plane told its webhook of each of the three renewals.
	deadline = time.Now().Add(10 * time.Second)
	for {
		evMu.Lock()
		n := strings.Count(strings.Join(renewed, ","), "certificate.renewed")
		evMu.Unlock()
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook received %v, want three certificate.renewed", renewed)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAgentKeepsFilesWhileControlPlaneDown: with the control plane
// stopped, the agent keeps its current files, backs off exponentially,
// and renews once the control plane is back.
func TestAgentKeepsFilesWhileControlPlaneDown(t *testing.T) {
	clock := &fakeClock{now: time.Now().UTC()}
	cp := startControlPlane(t, clock)
	dir := t.TempDir()
	spec := certSpec(dir, cp.token(apiv1.CreateBootstrapTokenRequest{Profile: "server", Name: "svc-a", DNS: []string{"svc-a.internal"}, MaxValidity: "1h"}))
	a := newAgent(t, cp, clock, spec)
	runAgent(t, a)
	st := waitStatus(t, a, "enrolment", func(s agent.Status) bool { return s.Renewals == 1 })
	certBefore, _ := os.ReadFile(spec.CertFile)
	keyBefore, _ := os.ReadFile(spec.KeyFile)

	cp.stop()
	due := clock.nextWaiter(t)
	clock.Set(due)
	last := due
	for i := 1; i <= 4; i++ {
		st = waitStatus(t, a, fmt.Sprintf("failure %d", i), func(s agent.Status) bool { return s.ConsecutiveFailures == i })
		if st.LastError == "" || st.Renewals != 1 {
			t.Fatalf("failure %d: status %+v", i, st)
		}
		next := clock.nextWaiter(t)
		// Equal jitter: between half and all of 1s, 2s, 4s, 8s.
		nominal := time.Second << (i - 1)
		if wait := next.Sub(last); wait < nominal/2 || wait >= nominal {
			t.Fatalf("after failure %d the agent waits %s, want [%s, %s)", i, wait, nominal/2, nominal)
		}
		if c, _ := os.ReadFile(spec.CertFile); string(c) != string(certBefore) {
			t.Fatal("the certificate file changed while the control plane was down")
		}
		if k, _ := os.ReadFile(spec.KeyFile); string(k) != string(keyBefore) {
			t.Fatal("the key file changed while the control plane was down")
		}
		if i < 4 {
			clock.Set(next)
			last = next
		}
	}
	// The files still serve: a TLS server could load them, and the health
	// endpoint says so.
	loadPair(t, spec)
	hs := httptest.NewServer(a.Handler())
	defer hs.Close()
	if code, body := get(t, hs.URL+"/healthz"); code != 200 || !strings.Contains(body, `"consecutive_failures": 4`) {
		t.Fatalf("healthz while the control plane is down: %d %s", code, body)
	}

	cp.start() // same data directory, same address
	clock.Set(clock.nextWaiter(t))
	st = waitStatus(t, a, "renewal once back", func(s agent.Status) bool { return s.Renewals == 2 })
	if st.ConsecutiveFailures != 0 {
		t.Fatalf("after the renewal: %+v", st)
	}
	if c, _ := os.ReadFile(spec.CertFile); string(c) == string(certBefore) {
		t.Fatal("the certificate file did not change after the renewal")
	}
	code, body := get(t, hs.URL+"/metrics")
	for _, want := range []string{`trustgate_agent_renewals_total{certificate="svc-a"} 2`, `trustgate_agent_renewal_failures_total{certificate="svc-a"} 4`,
		`trustgate_agent_consecutive_failures{certificate="svc-a"} 0`, `trustgate_agent_certificate_not_after_seconds{certificate="svc-a"}`} {
		if code != 200 || !strings.Contains(body, want) {
			t.Fatalf("metrics lack %s:\n%s", want, body)
		}
	}
}

// TestAgentRefusals drives one-shot agents (--once) against a real
// control plane: what needs a token, single use, name binding, and no
// renewal of revoked or expired certificates.
func TestAgentRefusals(t *testing.T) {
	clock := &fakeClock{now: time.Now().UTC()}
	cp := startControlPlane(t, clock)
	ctx := context.Background()
	svcA := func() string {
		return cp.token(apiv1.CreateBootstrapTokenRequest{Profile: "server", Name: "svc-a", DNS: []string{"svc-a.internal"}, MaxValidity: "1h"})
	}
	once := func(spec config.AgentCertificate) error {
		t.Helper()
		a := newAgent(t, cp, clock, spec)
		defer a.Close() // as the process of agent --once exits
		return a.RunOnce(ctx)
	}
	wantErr := func(err error, want string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, want an error with %q", err, want)
		}
	}

	t.Run("fail/no token and no files", func(t *testing.T) {
		wantErr(once(certSpec(t.TempDir(), "")), "no bootstrap token")
	})
	t.Run("fail/name binding", func(t *testing.T) {
		spec := certSpec(t.TempDir(), svcA())
		spec.CommonName, spec.DNS = "svc-b", []string{"svc-b.internal"}
		wantErr(once(spec), `does not allow common name "svc-b"`)
		if _, err := os.Stat(spec.CertFile); err == nil {
			t.Fatal("a refused enrolment wrote a certificate")
		}
	})
	t.Run("fail/single use", func(t *testing.T) {
		tok := svcA()
		if err := once(certSpec(t.TempDir(), tok)); err != nil {
			t.Fatal(err)
		}
		wantErr(once(certSpec(t.TempDir(), tok)), "used up")
	})
	t.Run("fail/token expired", func(t *testing.T) {
		tok := cp.token(apiv1.CreateBootstrapTokenRequest{Profile: "server", Name: "svc-a", ExpiresIn: "5m"})
		clock.Set(clock.Now().Add(5 * time.Minute))
		wantErr(once(certSpec(t.TempDir(), tok)), "expired")
	})
	t.Run("ok/renewal needs no token; not due does nothing", func(t *testing.T) {
		dir := t.TempDir()
		spec := certSpec(dir, svcA())
		if err := once(spec); err != nil {
			t.Fatal(err)
		}
		first := loadPair(t, spec)
		spec.Token = ""
		if err := once(spec); err != nil {
			t.Fatal(err)
		}
		if pkSerial(loadPair(t, spec)) != pkSerial(first) {
			t.Fatal("a certificate not due was renewed")
		}
		clock.Set(first.NotBefore.Add(40 * time.Minute))
		if err := once(spec); err != nil {
			t.Fatalf("renewal without a token: %v", err)
		}
		if pkSerial(loadPair(t, spec)) == pkSerial(first) {
			t.Fatal("a certificate due was not renewed")
		}
	})
	t.Run("fail/revoked, then a new token", func(t *testing.T) {
		spec := certSpec(t.TempDir(), svcA())
		if err := once(spec); err != nil {
			t.Fatal(err)
		}
		leaf := loadPair(t, spec)
		if _, err := cp.admin.Revoke(ctx, pkSerial(leaf), "keyCompromise"); err != nil {
			t.Fatal(err)
		}
		clock.Set(leaf.NotBefore.Add(40 * time.Minute))
		spec.Token = ""
		wantErr(once(spec), "revoked")
		if pkSerial(loadPair(t, spec)) != pkSerial(leaf) {
			t.Fatal("the files changed after a refused renewal")
		}
		// With a new token the agent enrols again.
		spec.Token = svcA()
		if err := once(spec); err != nil {
			t.Fatalf("enrolment after revocation: %v", err)
		}
		if pkSerial(loadPair(t, spec)) == pkSerial(leaf) {
			t.Fatal("no new certificate after enrolling again")
		}
	})
	t.Run("fail/expired", func(t *testing.T) {
		spec := certSpec(t.TempDir(), svcA())
		if err := once(spec); err != nil {
			t.Fatal(err)
		}
		leaf := loadPair(t, spec)
		clock.Set(leaf.NotAfter)
		spec.Token = ""
		wantErr(once(spec), "no valid certificate")
	})
}

func pkSerial(c *x509.Certificate) string { return strings.ToLower(c.SerialNumber.Text(16)) }

// wholePEM checks that b is a sequence of complete PEM blocks.
func wholePEM(b []byte) error {
	if len(b) == 0 {
		return fmt.Errorf("empty")
	}
	rest := b
	n := 0
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		n++
	}
	if n == 0 || len(strings.TrimSpace(string(rest))) != 0 {
		return fmt.Errorf("%d whole blocks and %d bytes of something else", n, len(rest))
	}
	return nil
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
