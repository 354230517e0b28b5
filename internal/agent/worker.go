package agent

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/trustgate/trustgate/internal/api/client"
	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/atomicfile"
	"github.com/trustgate/trustgate/internal/config"
	"github.com/trustgate/trustgate/internal/pki"
)

// Status is the state of one certificate, as the health endpoint shows it.
type Status struct {
	Name     string `json:"name"`
	CertFile string `json:"cert_file"`
	// Valid is true when the files hold a matching certificate and key
	// within their validity.
	Valid    bool       `json:"valid"`
	Serial   string     `json:"serial,omitempty"`
	NotAfter *time.Time `json:"not_after,omitempty"`
	// NextAttempt is when the agent next renews (or retries).
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	LastRenewal *time.Time `json:"last_renewal,omitempty"`
	// Renewals counts certificates obtained since the agent started
	// (enrolments included).
	Renewals            int        `json:"renewals"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
	LastError           string     `json:"last_error,omitempty"`
	LastErrorAt         *time.Time `json:"last_error_at,omitempty"`
}

// worker keeps one certificate fresh.
type worker struct {
	a       *Agent
	spec    config.AgentCertificate
	keyType pki.KeyType
	policy  Policy
	log     *slog.Logger
	// lock is held on the files from New to Close.
	lock *atomicfile.Lock

	// Owned by the worker's goroutine (or RunOnce). failedSerial is the
	// serial in the files when the failures began: when the files change
	// under the agent, the failures no longer apply.
	failures     int
	lastFailure  time.Time
	failedSerial string
	// refused is true when the last failure was a refused answer
	// (RefusedError).
	refused bool
	// checkedSerial is the serial last put to Config.Check (or obtained
	// here, and so checked already); stale is its verdict.
	checkedSerial string
	stale         bool
	// unchecked is true when Check could not tell about the serial in
	// the files (ErrCheckUnknown): it is asked again soon.
	unchecked bool
	// extras, when not nil, are chain and bundle files still to write
	// for the certificate in place: retried soon.
	extras *extras
	// obtained is when the agent obtained the certificate with serial
	// obtainedSerial. The lifetime counts from then, not from NotBefore,
	// which the CA backdates to absorb clock skew: for a one-minute
	// certificate backdated by a minute, half the validity would already
	// be gone at issuance. After a restart NotBefore is all there is.
	obtained       time.Time
	obtainedSerial string
	// u is the random draw of the current schedule: drawn again after
	// each attempt, so that re-evaluating the schedule while waiting does
	// not move it.
	u float64

	mu     sync.Mutex
	status Status
}

// loaded is what the files hold.
type loaded struct {
	Current
	cert   *tls.Certificate
	serial string
}

// load reads the certificate and key files. A missing, unreadable or
// mismatched pair, or one outside its validity at now, is not Valid; a
// NotBefore up to MaxClockSkew ahead of now is tolerated. When a renewal
// stopped between the new key and the new certificate, the key kept
// aside for the certificate in place is put back (see write).
func (w *worker) load(now time.Time) loaded {
	var l loaded
	certPEM, err := os.ReadFile(w.spec.CertFile)
	if err != nil {
		return l
	}
	keyPEM, keyErr := os.ReadFile(w.spec.KeyFile)
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if keyErr != nil || err != nil {
		var ok bool
		if c, ok = w.restoreKey(certPEM); !ok {
			if keyErr == nil {
				w.log.Warn("the certificate and key files do not hold a matching pair", "err", err)
			}
			return l
		}
	} else if err := os.Remove(w.keptKeyFile()); err == nil {
		w.log.Info("removed the key kept aside during the last renewal: the new pair is in place", "file", w.keptKeyFile())
	}
	l.cert, l.serial = &c, pki.SerialHex(c.Leaf.SerialNumber)
	l.NotBefore, l.NotAfter = c.Leaf.NotBefore, c.Leaf.NotAfter
	l.Valid = !now.Before(l.NotBefore.Add(-MaxClockSkew)) && now.Before(l.NotAfter)
	if l.serial == w.obtainedSerial && w.obtained.After(l.NotBefore) {
		l.NotBefore = w.obtained
	}
	w.mu.Lock()
	w.status.Valid, w.status.Serial = l.Valid, l.serial
	na := l.NotAfter
	w.status.NotAfter = &na
	w.mu.Unlock()
	w.a.m.notAfter.WithLabelValues(w.spec.Name).Set(float64(l.NotAfter.Unix()))
	return l
}

// keptKeyFile is where write keeps the key of the certificate in place
// while a new key and certificate replace the pair: a hidden name beside
// the key file reserved for the agent (as atomicfile's temporary names
// are), never one an operator would give a backup of their own.
func (w *worker) keptKeyFile() string {
	return filepath.Join(filepath.Dir(w.spec.KeyFile), "."+filepath.Base(w.spec.KeyFile)+".trustgate-prev")
}

// restoreKey is load's way back from a renewal that stopped after the new
// key was written and before the new certificate was (a crash, a full
// disk): when the kept key is the certificate's, it goes back in place,
// and the new key, which nothing certified, is gone.
func (w *worker) restoreKey(certPEM []byte) (tls.Certificate, bool) {
	keyPEM, err := os.ReadFile(w.keptKeyFile())
	if err != nil {
		return tls.Certificate{}, false
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, false
	}
	if err := os.Rename(w.keptKeyFile(), w.spec.KeyFile); err != nil {
		w.log.Error("could not put back the key of the current certificate", "err", err)
		return tls.Certificate{}, false
	}
	w.log.Warn("the last renewal stopped between the key and the certificate; the key of the current certificate is back in place",
		"file", w.spec.KeyFile)
	return c, true
}

// check puts the certificate of cur to Config.Check once per serial (a
// certificate obtained here passed it already) and marks it Stale when
// it no longer matches what is asked for.
func (w *worker) check(ctx context.Context, cur *loaded) {
	w.unchecked = false
	if w.a.cfg.Check == nil || cur.cert == nil || !cur.Valid {
		return
	}
	if cur.serial != w.checkedSerial {
		err := w.a.cfg.Check(ctx, w.spec.Name, cur.cert.Leaf)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, ErrCheckUnknown) {
			// Not a verdict: not kept, asked again on a later pass.
			w.unchecked = true
			w.log.Info("could not check the certificate in the files against the configuration; asking again later",
				"serial", cur.serial, "err", err)
			return
		}
		w.checkedSerial, w.stale = cur.serial, err != nil
		if err != nil {
			w.log.Warn("the certificate in the files no longer matches the configuration; renewing it now, serving it meanwhile",
				"serial", cur.serial, "err", err)
		}
	}
	cur.Stale = w.stale
}

// run renews until ctx ends.
func (w *worker) run(ctx context.Context) {
	clock := w.a.cfg.Clock
	for ctx.Err() == nil {
		now := clock.Now()
		cur := w.load(now)
		w.retryExtras(ctx, cur)
		w.check(ctx, &cur)
		if w.failures > 0 && cur.serial != w.failedSerial {
			w.failures = 0
		}
		due := w.policy.Next(now, cur.Current, w.failuresSoFar(), w.u)
		if w.unchecked || w.extras != nil {
			// Look again (and ask Check again) within the longest
			// backoff; only the wait changes, not the due time shown.
			w.setNext(due)
			due = minTime(due, now.Add(w.policy.MaxBackoff))
		} else {
			w.setNext(due)
		}
		if wait := due.Sub(now); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-clock.After(wait):
			}
			continue // the files may have changed meanwhile: look again
		}
		w.attempt(ctx, cur)
	}
}

// attempt obtains a certificate once and records the outcome.
func (w *worker) attempt(ctx context.Context, cur loaded) error {
	err := w.obtain(ctx, cur)
	now := w.a.cfg.Clock.Now()
	w.u = w.a.cfg.Rand()
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		w.failures++
		w.lastFailure, w.failedSerial = now, cur.serial
		var refused *RefusedError
		w.refused = errors.As(err, &refused)
		w.recordError(now, err)
		w.a.m.failures.WithLabelValues(w.spec.Name).Inc()
		w.a.m.consecutive.WithLabelValues(w.spec.Name).Set(float64(w.failures))
		w.log.Warn("could not obtain a certificate; keeping the current files",
			"err", err, "consecutive_failures", w.failures, "retry_in", w.policy.Retry(w.failuresSoFar(), cur.Current, w.u).String())
		if w.a.cfg.Failed != nil {
			w.a.cfg.Failed(w.spec.Name, err)
		}
		return err
	}
	return nil
}

// obtain renews the current certificate, or enrols with the token when
// there is none (or renewal is refused and a token is at hand), or, with
// Config.Issue, has it issued; then writes the files, and runs the reload
// hook.
func (w *worker) obtain(ctx context.Context, cur loaded) error {
	key, err := pki.GenerateKey(w.keyType)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	csr, err := w.csr(key)
	if err != nil {
		return err
	}
	var res *apiv1.IssueResponse
	how := "renewed"
	if issue := w.a.cfg.Issue; issue != nil {
		how = "issued"
		if res, err = issue(ctx, w.spec.Name, csr); err != nil {
			return fmt.Errorf("issue: %w", err)
		}
	} else if cur.Valid {
		res, err = w.call(ctx, cur.cert, func(c *client.Client) (*apiv1.IssueResponse, error) { return c.Renew(ctx, csr) })
		var ce *client.Error
		if err != nil && !(errors.As(err, &ce) && ce.Status == http.StatusUnauthorized && w.hasToken()) {
			return fmt.Errorf("renew: %w", err)
		}
		if err != nil {
			w.log.Warn("renewal refused; enrolling again with the bootstrap token", "err", err)
			res = nil
		}
	}
	if res == nil {
		how = "enrolled"
		tok, err := w.token()
		if err != nil {
			return err
		}
		if tok == "" {
			return fmt.Errorf("no valid certificate in %s and no bootstrap token (token or token_file) to enrol with", w.spec.CertFile)
		}
		req := apiv1.EnrollRequest{Token: tok, CSR: csr, CommonName: w.spec.CommonName, DNS: w.spec.DNS, IP: w.spec.IP,
			URI: w.spec.URI, Validity: w.spec.Validity}
		if res, err = w.call(ctx, nil, func(c *client.Client) (*apiv1.IssueResponse, error) { return c.Enroll(ctx, req) }); err != nil {
			return fmt.Errorf("enrol: %w", err)
		}
	}
	leaf, err := w.write(key, res, w.a.cfg.Clock.Now())
	if err != nil {
		return err
	}
	now := w.a.cfg.Clock.Now()
	serial := pki.SerialHex(leaf.SerialNumber)
	w.obtained, w.obtainedSerial = now, serial
	w.checkedSerial, w.stale = serial, false
	// Succeeded: the status shows the renewal and no failure together
	// (a failure of the hooks below is recorded on its own).
	w.failures, w.refused = 0, false
	w.mu.Lock()
	w.status.ConsecutiveFailures = 0
	w.status.Renewals++
	w.status.LastRenewal = &now
	w.status.Valid, w.status.Serial = true, serial
	na := leaf.NotAfter
	w.status.NotAfter = &na
	w.mu.Unlock()
	w.a.m.consecutive.WithLabelValues(w.spec.Name).Set(0)
	w.a.m.renewals.WithLabelValues(w.spec.Name).Inc()
	w.a.m.lastRenewal.WithLabelValues(w.spec.Name).Set(float64(now.Unix()))
	w.a.m.notAfter.WithLabelValues(w.spec.Name).Set(float64(leaf.NotAfter.Unix()))
	w.log.Info("certificate "+how, "serial", serial, "not_after", leaf.NotAfter)
	// The key and certificate are in place: a chain or bundle file that
	// cannot be written is reported with the hooks' errors, and written
	// again on the next passes of Run (retryExtras); the hooks run all
	// the same, or the consumer would never pick up the new pair.
	extrasErr := w.writeExtras()
	var hookErr error
	if w.a.cfg.Obtained != nil {
		hookErr = w.a.cfg.Obtained(w.spec.Name, leaf)
	}
	if err := errors.Join(extrasErr, hookErr, w.reload(ctx)); err != nil {
		// The new key and certificate are in place; the consumer did not
		// pick them up, or not all the files. That is an error to see,
		// not a reason to renew again.
		w.recordError(now, err)
		w.a.m.hookFailures.WithLabelValues(w.spec.Name).Inc()
		w.log.Error("after renewal: a file or the reload failed", "err", err)
	}
	return nil
}

// call runs fn with a client of the control plane that presents cert (nil
// for none). Each call has its own connections, closed after: a kept-alive
// connection would go on presenting the certificate it was opened with.
func (w *worker) call(ctx context.Context, cert *tls.Certificate, fn func(*client.Client) (*apiv1.IssueResponse, error)) (*apiv1.IssueResponse, error) {
	cp := w.a.cfg.Spec.ControlPlane
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cp.CAFile != "" {
		b, err := os.ReadFile(cp.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read the control plane's CA certificate: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("%s holds no PEM certificate", cp.CAFile)
		}
	}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true, Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext, TLSHandshakeTimeout: 10 * time.Second}
	defer tr.CloseIdleConnections()
	c, err := client.New(client.Config{Addr: cp.Address, HTTPClient: &http.Client{Transport: tr, Timeout: w.a.cfg.RequestTimeout}})
	if err != nil {
		return nil, err
	}
	return fn(c)
}

// csr makes the certificate request for key. Its names matter only at
// enrolment; a renewal keeps the identity of the current certificate.
func (w *worker) csr(key crypto.Signer) (string, error) {
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: w.spec.CommonName}, DNSNames: w.spec.DNS}
	for _, s := range w.spec.IP {
		if ip := net.ParseIP(s); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		}
	}
	for _, s := range w.spec.URI {
		if u, err := url.Parse(s); err == nil {
			tmpl.URIs = append(tmpl.URIs, u)
		}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return "", fmt.Errorf("create CSR: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), nil
}

func (w *worker) hasToken() bool { return w.spec.Token != "" || w.spec.TokenFile != "" }

// token returns the bootstrap token, "" when none is configured.
func (w *worker) token() (string, error) {
	if w.spec.TokenFile == "" {
		return w.spec.Token, nil
	}
	b, err := os.ReadFile(w.spec.TokenFile)
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// write checks the answer against key and the time (valid at now, with
// a NotBefore up to MaxClockSkew ahead) and writes the files, each
// atomically: key, then certificate (with the intermediates); the chain
// and bundle it leaves in w.extras, for obtain to write.
// The key goes first, so that a consumer that watches the certificate
// file finds the new key in place when it sees the new certificate.
//
// Until the new certificate is in place the previous key is kept aside
// (keptKeyFile, 0600): a failed certificate write puts it back at once,
// and after a crash in between load does, so that the last valid pair
// can always be served. Once the certificate is written it is removed.
func (w *worker) write(key crypto.Signer, res *apiv1.IssueResponse, now time.Time) (*x509.Certificate, error) {
	leaf, err := firstCert(res.CertificatePEM)
	if err != nil {
		return nil, &RefusedError{Err: fmt.Errorf("the control plane answered with an unusable certificate: %w", err)}
	}
	if !publicKeyEqual(leaf.PublicKey, key.Public()) {
		return nil, &RefusedError{Err: errors.New("the control plane answered with a certificate for another key")}
	}
	// One that load would not take as valid would be obtained again at
	// once, and again: refused, it waits RefusedBackoff.
	if ahead := leaf.NotBefore.Sub(now); ahead > MaxClockSkew {
		return nil, &RefusedError{Err: fmt.Errorf("the control plane answered with a certificate valid from %s, %s after the local clock (%s): check the clocks",
			leaf.NotBefore.UTC().Format(time.RFC3339), ahead.Round(time.Second), now.UTC().Format(time.RFC3339))}
	}
	if !now.Before(leaf.NotAfter) {
		return nil, &RefusedError{Err: fmt.Errorf("the control plane answered with a certificate that expired at %s (local clock %s): check the clocks",
			leaf.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
	}
	chain, err := certsOf(res.ChainPEM)
	if err != nil {
		return nil, fmt.Errorf("the control plane answered with an unusable chain: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	// What a TLS peer sends: the leaf and the intermediates, not the root.
	full := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})
	for _, c := range chain {
		if !isSelfSigned(c) {
			full = append(full, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
	}
	kept, err := w.keepKey()
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(w.spec.KeyFile, keyPEM, 0o600); err != nil {
		return nil, errors.Join(err, w.putBackKey(kept))
	}
	if err := atomicfile.WriteFile(w.spec.CertFile, full, 0o644); err != nil {
		return nil, errors.Join(err, w.putBackKey(kept))
	}
	if kept {
		if err := os.Remove(w.keptKeyFile()); err != nil && !errors.Is(err, os.ErrNotExist) {
			// load removes it once it sees the new pair.
			w.log.Warn("could not remove the previous key", "file", w.keptKeyFile(), "err", err)
		}
	}
	// The pair is in place: from here on a failure is no reason to
	// obtain another certificate, and the hooks must run (see obtain).
	w.extras = &extras{serial: pki.SerialHex(leaf.SerialNumber), chain: []byte(res.ChainPEM), bundle: append(keyPEM, full...)}
	return leaf, nil
}

// extras are the chain and bundle files of the certificate with serial,
// to be written (again, when a write failed).
type extras struct {
	serial        string
	chain, bundle []byte
}

// writeExtras writes the chain and bundle files of w.extras, and forgets
// them once both are written.
func (w *worker) writeExtras() error {
	e := w.extras
	if e == nil {
		return nil
	}
	var errs []error
	if w.spec.ChainFile != "" && e.chain != nil {
		if err := atomicfile.WriteFile(w.spec.ChainFile, e.chain, 0o644); err != nil {
			errs = append(errs, err)
		} else {
			e.chain = nil
		}
	}
	if w.spec.BundleFile != "" && e.bundle != nil {
		if err := atomicfile.WriteFile(w.spec.BundleFile, e.bundle, 0o600); err != nil {
			errs = append(errs, err)
		} else {
			e.bundle = nil
		}
	}
	if len(errs) == 0 {
		w.extras = nil
	}
	return errors.Join(errs...)
}

// retryExtras writes again the chain or bundle file that could not be
// written after the certificate in the files was, and reloads the
// consumer once they are. When the files hold another certificate by
// now, the pending writes are forgotten.
func (w *worker) retryExtras(ctx context.Context, cur loaded) {
	if w.extras == nil {
		return
	}
	if cur.serial != w.extras.serial {
		w.extras = nil
		return
	}
	now := w.a.cfg.Clock.Now()
	if err := w.writeExtras(); err != nil {
		w.recordError(now, err)
		w.log.Error("the chain or bundle file of the certificate in place still cannot be written", "err", err)
		return
	}
	w.log.Info("wrote the chain and bundle files that could not be written after the renewal", "serial", cur.serial)
	if err := w.reload(ctx); err != nil {
		w.recordError(now, err)
		w.a.m.hookFailures.WithLabelValues(w.spec.Name).Inc()
		w.log.Error("reload after writing the chain and bundle files failed", "err", err)
	}
}

// keepKey copies the key file, if there is one, to keptKeyFile (0600),
// and reports whether it did.
func (w *worker) keepKey() (bool, error) {
	b, err := os.ReadFile(w.spec.KeyFile)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("keep the current key aside: %w", err)
	}
	if err := atomicfile.WriteFile(w.keptKeyFile(), b, 0o600); err != nil {
		return false, fmt.Errorf("keep the current key aside: %w", err)
	}
	return true, nil
}

// putBackKey undoes a renewal whose certificate could not be written: the
// kept key goes back in place, or, when there was none, the new key,
// which nothing certifies, goes.
func (w *worker) putBackKey(kept bool) error {
	var err error
	if kept {
		err = os.Rename(w.keptKeyFile(), w.spec.KeyFile)
	} else if err = os.Remove(w.spec.KeyFile); errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("put back the previous key: %w", err)
	}
	return nil
}

// removeTemps removes what an interrupted write of this certificate's
// files left: temporary files that may hold an uncertified key.
func (w *worker) removeTemps() {
	for _, f := range []string{w.spec.KeyFile, w.keptKeyFile(), w.spec.CertFile, w.spec.ChainFile, w.spec.BundleFile} {
		if f == "" {
			continue
		}
		removed, err := atomicfile.RemoveTemps(f)
		if err != nil {
			w.log.Warn("could not remove the temporary files of an interrupted write", "err", err)
		}
		for _, r := range removed {
			w.log.Info("removed a temporary file of an interrupted write", "file", r)
		}
	}
}

// failuresSoFar describes the failures since the last success.
func (w *worker) failuresSoFar() Failures {
	return Failures{Count: w.failures, Last: w.lastFailure, Refused: w.refused}
}

// reload runs the on_renew command and signals the pid_file's process.
func (w *worker) reload(ctx context.Context) error {
	var errs []error
	if w.spec.OnRenew != "" {
		hctx, cancel := context.WithTimeout(ctx, w.a.cfg.HookTimeout)
		defer cancel()
		cmd := exec.CommandContext(hctx, "/bin/sh", "-c", w.spec.OnRenew)
		cmd.Env = append(os.Environ(), "TRUSTGATE_CERT_NAME="+w.spec.Name, "TRUSTGATE_CERT_FILE="+w.spec.CertFile,
			"TRUSTGATE_KEY_FILE="+w.spec.KeyFile, "TRUSTGATE_CHAIN_FILE="+w.spec.ChainFile, "TRUSTGATE_BUNDLE_FILE="+w.spec.BundleFile)
		if out, err := cmd.CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("on_renew command: %w: %s", err, strings.TrimSpace(string(tail(out, 512)))))
		}
	}
	if w.spec.PIDFile != "" {
		if err := signalPIDFile(w.spec.PIDFile, w.spec.ReloadSignal); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

var signals = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2,
	"TERM": syscall.SIGTERM, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT,
}

// signalPIDFile sends the named signal to the process whose ID the file holds.
func signalPIDFile(path, name string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reload signal: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return fmt.Errorf("reload signal: %s does not hold a process ID", path)
	}
	sig, ok := signals[name]
	if !ok {
		return fmt.Errorf("reload signal: unknown signal %q", name)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("reload signal: send SIG%s to %d: %w", name, pid, err)
	}
	return nil
}

func (w *worker) setNext(due time.Time) {
	w.mu.Lock()
	w.status.NextAttempt = &due
	w.mu.Unlock()
}

func (w *worker) recordError(at time.Time, err error) {
	w.mu.Lock()
	w.status.LastError, w.status.LastErrorAt = err.Error(), &at
	w.status.ConsecutiveFailures = w.failures
	w.mu.Unlock()
	w.a.m.lastError.WithLabelValues(w.spec.Name).Set(float64(at.Unix()))
}

func (w *worker) snapshot() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.status
	return s
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func firstCert(s string) (*x509.Certificate, error) {
	cs, err := certsOf(s)
	if err != nil {
		return nil, err
	}
	if len(cs) == 0 {
		return nil, errors.New("no certificate")
	}
	return cs[0], nil
}

func certsOf(s string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := []byte(s)
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return out, nil
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
}

func isSelfSigned(c *x509.Certificate) bool {
	return string(c.RawIssuer) == string(c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
