package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/trustgate/trustgate/internal/agent"
	"github.com/trustgate/trustgate/internal/api/client"
	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/config"
)

// CertificateIssuer has certificates issued by the control plane and reads
// its CA certificates; *client.Client satisfies it.
type CertificateIssuer interface {
	Issue(ctx context.Context, r apiv1.IssueRequest) (*apiv1.IssueResponse, error)
	// CAPEM returns a CA's certificate (the public /ca/NAME.pem).
	CAPEM(ctx context.Context, name string, chain bool) ([]byte, error)
}

var _ CertificateIssuer = (*client.Client)(nil)

// Results of an attempt to have a listener certificate issued, the result
// label of trustgate_gateway_certificate_issuances_total.
const (
	IssueIssued = "issued"
	IssueError  = "error"
)

// issuedCertName is the name under which the issuing agent keeps a
// listener's certificate (its logs and trustgate_agent_* series).
func issuedCertName(listener string) string { return "listener/" + listener }

// newIssuer sets up the agent that keeps the certificates of the listeners
// in issue mode (certificate.issue), and has each one that the files do
// not hold valid, or that is due for renewal, issued now. A failure is
// logged and counted here; whether the listener can start is decided when
// it loads its files (see servable): a certificate still valid on disk is
// served while the control plane is away.
//
// The agent does for a listener what it does for a workload: a new key
// for every certificate, generated here and written 0600 before the
// certificate (both atomically), a CSR that carries only the public key,
// renewal at renew_at of the lifetime with jitter, and capped exponential
// backoff after a failure while the current files are kept and served.
func (g *Gateway) newIssuer(ctx context.Context) (*agent.Agent, error) {
	cp := g.spec.ControlPlane
	spec := config.Agent{ControlPlane: config.AgentControlPlane{Address: cp.Address, CAFile: cp.CAFile}}
	g.issueCerts = map[string]config.GatewayListener{}
	for _, ls := range g.spec.Listeners {
		is := ls.Certificate.Issue
		if !is.Enabled() {
			continue
		}
		name := issuedCertName(ls.Name)
		g.issueCerts[name] = ls
		// The state directory, made private when the gateway creates it:
		// the key is written there.
		for _, f := range []string{ls.Certificate.KeyFile, ls.Certificate.CertFile} {
			if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
				return nil, fmt.Errorf("listener %s: certificate: %w", ls.Name, err)
			}
		}
		spec.Certificates = append(spec.Certificates, config.AgentCertificate{Name: name, CommonName: is.CommonName,
			DNS: is.DNS, IP: is.IP, KeyType: is.KeyType, Validity: is.Validity, RenewAt: is.RenewAt,
			CertFile: ls.Certificate.CertFile, KeyFile: ls.Certificate.KeyFile})
	}
	a, err := agent.New(agent.Config{Spec: spec, Logger: g.log.With("component", "listener-certificates"), Registry: g.reg,
		RequestTimeout: controlPlaneTimeout, Issue: g.issue, Obtained: g.issued, Failed: g.issueFailed, Check: g.checkOnDisk})
	if err != nil {
		return nil, fmt.Errorf("listener certificates: %w", err)
	}
	// Each failure was logged and counted by issueFailed.
	_ = a.RunOnce(ctx)
	return a, nil
}

// issue is the issuing agent's Config.Issue: it asks the control plane to
// issue the CSR as the listener's configuration says, as the gateway's
// principal, and checks the answer before the agent writes it. The CA's
// certificate is fetched first: a failure to fetch it then costs no
// certificate. An answer that fails the checks is an agent.RefusedError,
// which the agent retries only after a long wait (each one costs a
// certificate).
func (g *Gateway) issue(ctx context.Context, name, csrPEM string) (*apiv1.IssueResponse, error) {
	ls, ok := g.issueCerts[name]
	if !ok {
		return nil, fmt.Errorf("no listener certificate %q", name)
	}
	is := ls.Certificate.Issue
	ctx, cancel := context.WithTimeout(ctx, controlPlaneTimeout)
	defer cancel()
	caPEM, err := g.issuing.CAPEM(ctx, is.CA, false)
	if err != nil {
		return nil, fmt.Errorf("control plane: CA %s's certificate: %w", is.CA, err)
	}
	res, err := g.issuing.Issue(ctx, apiv1.IssueRequest{CA: is.CA, Profile: is.Profile, CSR: csrPEM,
		CommonName: is.CommonName, DNS: is.DNS, IP: is.IP, Validity: is.Validity})
	if err != nil {
		return nil, fmt.Errorf("control plane: POST /v1/certificates (ca %s, profile %s): %w", is.CA, is.Profile, err)
	}
	now := g.now()
	leaf, err := checkIssued(res, caPEM, is, now)
	if err != nil {
		return nil, &agent.RefusedError{Err: fmt.Errorf("certificate %s from the control plane refused: %w", res.Certificate.Serial, err)}
	}
	if ahead := leaf.NotBefore.Sub(now); ahead > 0 {
		g.log.Warn("gateway: the certificate issued is valid from a time ahead of the gateway's clock; check the clocks",
			keyListener, ls.Name, "serial", res.Certificate.Serial, "not_before", leaf.NotBefore, "ahead_by", ahead.Round(time.Second).String())
	}
	return res, nil
}

// checkIssued checks what the control plane answered against what was
// asked: a leaf signed by the CA asked for (caPEM) and valid for server
// authentication at now (its NotBefore may be up to agent.MaxClockSkew
// ahead: the CA's clock may be ahead of the gateway's), a chain that
// holds that CA's certificate (what clients get to build their path), and
// every name asked for. It returns the leaf. The agent then checks that
// the leaf certifies the key it generated.
func checkIssued(res *apiv1.IssueResponse, caPEM []byte, is config.GatewayIssue, now time.Time) (*x509.Certificate, error) {
	certs, err := parseCertsPEM([]byte(res.CertificatePEM))
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	leaf := certs[0]
	cas, err := parseCertsPEM(caPEM)
	if err != nil {
		return nil, fmt.Errorf("CA %s's certificate: %w", is.CA, err)
	}
	roots := x509.NewCertPool()
	for _, c := range cas {
		roots.AddCert(c)
	}
	at := now
	if ahead := leaf.NotBefore.Sub(now); ahead > agent.MaxClockSkew {
		return nil, fmt.Errorf("it is valid from %s, %s after the gateway's clock (%s): check the clocks",
			leaf.NotBefore.UTC().Format(time.RFC3339), ahead.Round(time.Second), now.UTC().Format(time.RFC3339))
	} else if ahead > 0 {
		at = leaf.NotBefore
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return nil, fmt.Errorf("not a server certificate of CA %s valid now: %w", is.CA, err)
	}
	chain, err := parseCertsPEM([]byte(res.ChainPEM))
	if err != nil {
		return nil, fmt.Errorf("chain: %w", err)
	}
	if !slices.ContainsFunc(chain, func(c *x509.Certificate) bool { return c.Equal(cas[0]) }) {
		return nil, fmt.Errorf("the chain sent does not hold CA %s's certificate", is.CA)
	}
	if err := checkNames(leaf, is); err != nil {
		return nil, err
	}
	return leaf, nil
}

// checkNames checks that leaf carries every name asked for.
func checkNames(leaf *x509.Certificate, is config.GatewayIssue) error {
	var missing []string
	if is.CommonName != "" && leaf.Subject.CommonName != is.CommonName {
		missing = append(missing, "CN="+is.CommonName)
	}
	for _, d := range is.DNS {
		if !slices.ContainsFunc(leaf.DNSNames, func(n string) bool { return strings.EqualFold(n, d) }) {
			missing = append(missing, "dns:"+d)
		}
	}
	for _, a := range is.IP {
		ip := net.ParseIP(a)
		if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
			missing = append(missing, "ip:"+a)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("it lacks the names asked for: %s", strings.Join(missing, ", "))
	}
	return nil
}

// checkOnDisk is the issuing agent's Config.Check, asked about a valid
// certificate found in a listener's files (at start): one that lacks a
// name of the configuration, or that another CA than issue.ca issued
// (the configuration changed since), is renewed at once, and served
// meanwhile. The CA is checked only when its certificate can be had from
// the control plane; when it cannot (the certificate could not be
// renewed either), the answer is agent.ErrCheckUnknown, and the agent
// asks again later.
func (g *Gateway) checkOnDisk(ctx context.Context, name string, leaf *x509.Certificate) error {
	ls, ok := g.issueCerts[name]
	if !ok {
		return nil
	}
	is := ls.Certificate.Issue
	if err := checkNames(leaf, is); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, controlPlaneTimeout)
	defer cancel()
	caPEM, err := g.issuing.CAPEM(ctx, is.CA, false)
	if err != nil {
		// Not a match: the agent asks again later, and not cached as
		// checked, a certificate of another CA is still found out.
		return fmt.Errorf("%w: CA %s's certificate: %w", agent.ErrCheckUnknown, is.CA, err)
	}
	return checkIssuedBy(leaf, caPEM, is.CA)
}

// checkIssuedBy checks that leaf was signed by the CA whose certificate
// caPEM holds.
func checkIssuedBy(leaf *x509.Certificate, caPEM []byte, ca string) error {
	cas, err := parseCertsPEM(caPEM)
	if err != nil {
		return fmt.Errorf("CA %s's certificate: %w", ca, err)
	}
	if !bytes.Equal(leaf.RawIssuer, cas[0].RawSubject) || leaf.CheckSignatureFrom(cas[0]) != nil {
		return fmt.Errorf("CA %s did not issue it (its issuer is %s)", ca, leaf.Issuer)
	}
	return nil
}

// issued is the issuing agent's Config.Obtained: the new certificate and
// its key are in the files; the listener serves them from the next
// handshake (connections already established keep theirs), or, when the
// new one is not valid yet and the current one is, from its NotBefore
// (the file poll swaps it in then; see swapDue). At start the
// listener does not exist yet and loads the files itself.
func (g *Gateway) issued(name string, leaf *x509.Certificate) error {
	ls := g.issueCerts[name]
	lname := ls.Name
	g.m.issuances.WithLabelValues(lname, IssueIssued).Inc()
	l := g.listener(lname)
	if l != nil {
		// Should the swap below fail, the file poll tries again.
		l.written.Store(leaf)
	}
	if l == nil {
		g.log.Info("gateway: listener certificate issued by the control plane", keyListener, lname,
			"serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter, "file", ls.Certificate.CertFile)
		return nil
	}
	var prev string
	if cur := l.cert.get(); cur != nil && cur.Leaf != nil {
		prev = cur.Leaf.SerialNumber.Text(16)
	}
	if now := g.now(); !swapDue(l.cert.get(), leaf, now) {
		// Clients with a right clock would refuse it until then; the
		// file poll swaps it in once its NotBefore has passed.
		g.log.Info("gateway: listener certificate issued by the control plane; served from its NotBefore, the current one meanwhile",
			keyListener, lname, "serial", leaf.SerialNumber.Text(16), "previous", prev, "not_before", leaf.NotBefore,
			"not_after", leaf.NotAfter, "file", l.cert.certFile)
		return nil
	}
	g.reloadMu.Lock()
	_, err := l.cert.reload(true)
	g.reloadMu.Unlock()
	if now := l.cert.get(); err != nil || now == nil || now.Leaf == nil || !now.Leaf.Equal(leaf) {
		g.m.reloads.WithLabelValues(l.name, "certificate", "error").Inc()
		return fmt.Errorf("listener %s: certificate %s written to %s but not loaded: %w", lname, leaf.SerialNumber.Text(16),
			l.cert.certFile, errors.Join(err, errors.New("the files do not hold it")))
	}
	g.m.reloads.WithLabelValues(l.name, "certificate", "changed").Inc()
	g.log.Info("gateway: listener certificate issued by the control plane", keyListener, lname,
		"serial", leaf.SerialNumber.Text(16), "previous", prev, "not_after", leaf.NotAfter, "file", l.cert.certFile)
	return nil
}

// swapDue reports whether a listener serving cur should swap in next, a
// certificate written for it, at now: at once, unless next is not valid
// yet (a CA clock ahead) while cur is valid; an early certificate is
// served only when nothing valid is.
func swapDue(cur *tls.Certificate, next *x509.Certificate, now time.Time) bool {
	if !now.Before(next.NotBefore) || cur == nil || cur.Leaf == nil {
		return true
	}
	return now.Before(cur.Leaf.NotBefore) || !now.Before(cur.Leaf.NotAfter)
}

// issueFailed is the issuing agent's Config.Failed. The error carries the
// control plane's own message (a policy's refusal names the principal,
// action and resource).
func (g *Gateway) issueFailed(name string, err error) {
	lname := g.issueCerts[name].Name
	g.m.issuances.WithLabelValues(lname, IssueError).Inc()
	g.log.Error("gateway: the control plane did not issue the listener certificate; keeping the current one, if any",
		keyListener, lname, keyError, err)
}

// servable decides whether a listener in issue mode can start: it needs
// a certificate and key that load (loadErr nil) and are valid now (a
// NotBefore up to agent.MaxClockSkew ahead is tolerated, as the agent
// does). Otherwise the start fails with why, and with the last issuance
// error.
func (g *Gateway) servable(ls config.GatewayListener, kp *keyPair, loadErr error) error {
	var why error
	switch {
	case loadErr != nil:
		why = loadErr
	case kp.get().Leaf == nil:
		why = errors.New("no certificate")
	default:
		if leaf, now := kp.get().Leaf, g.now(); now.Before(leaf.NotBefore.Add(-agent.MaxClockSkew)) || !now.Before(leaf.NotAfter) {
			why = fmt.Errorf("certificate %s in %s is valid from %s to %s only", leaf.SerialNumber.Text(16),
				ls.Certificate.CertFile, leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	if why == nil {
		return nil
	}
	issueErr := "none attempted"
	if g.issuer == nil {
		return fmt.Errorf("no certificate to serve (%v)", why)
	}
	for _, s := range g.issuer.Status() {
		if s.Name == issuedCertName(ls.Name) && s.LastError != "" {
			issueErr = s.LastError
		}
	}
	return fmt.Errorf("no certificate to serve (%v), and the control plane issued none: %s", why, issueErr)
}

// listener returns the listener of that name, or nil.
func (g *Gateway) listener(name string) *listener {
	for _, l := range g.listeners {
		if l.name == name {
			return l
		}
	}
	return nil
}
