// Package verify is the compiled form of a trust store: CA certificates and
// their CRLs turned into an immutable Verifier that checks a client
// certificate chain (RFC 5280 §6 path validation through crypto/x509, the
// clientAuth extended key usage, validity, and revocation against the CRLs,
// RFC 5280 §5 and §6.3) in one call, without I/O.
//
// A Verifier is built once by [Compile] and then shared: it is safe for
// concurrent use and never changes, so a gateway swaps a whole Verifier
// (an atomic pointer) when its trust store or a CRL changes, and
// connections already verified are not affected.
//
// Revocation lookups cost O(1) per certificate: each CA's CRLs are merged
// into a hash set of revoked serials, found by the issuer's subject and
// public key. The parsed CRLs are not kept: a 1,000,000-entry CRL compiles
// to about 30 MB.
package verify

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"sort"
	"time"
)

// Defaults of Options.
const (
	// DefaultMaxChainDepth is the default number of certificates a chain may
	// hold, leaf and trust anchor included: a leaf, two intermediates, a root.
	DefaultMaxChainDepth = 4
	// DefaultMaxCertSize is the default size limit of one certificate in
	// DER bytes. Ordinary certificates are 0.5 to 2 KiB; 16 KiB leaves room
	// for long SAN lists and RSA-4096 keys while bounding what a client can
	// make the gateway parse and forward.
	DefaultMaxCertSize = 16 << 10
)

// StalePolicy is what Verify does when a CRL it needs is past its nextUpdate.
type StalePolicy int

const (
	// FailClosed rejects certificates of that issuer with
	// ClientCertCrlExpired. The zero value.
	FailClosed StalePolicy = iota
	// FailOpen accepts them and sets Result.StaleCRL, for the caller to log
	// and count.
	FailOpen
)

// Options tune a Verifier. The zero value is the defaults.
type Options struct {
	// MaxChainDepth caps the certificates of a chain, leaf and trust anchor
	// included, both as presented and as built; 0 means DefaultMaxChainDepth.
	MaxChainDepth int
	// MaxCertSize caps the DER size of each presented certificate; 0 means
	// DefaultMaxCertSize.
	MaxCertSize int
	// IgnoreExpiry accepts a leaf certificate past its notAfter (AWS ALB's
	// ignore_client_certificate_expiry). The CA certificates must still be
	// valid, and a leaf that is not yet valid is still rejected.
	IgnoreExpiry bool
	// StaleCRL is the policy for a CRL past its nextUpdate.
	StaleCRL StalePolicy
}

func (o Options) withDefaults() Options {
	if o.MaxChainDepth <= 0 {
		o.MaxChainDepth = DefaultMaxChainDepth
	}
	if o.MaxCertSize <= 0 {
		o.MaxCertSize = DefaultMaxCertSize
	}
	return o
}

// Verifier checks client certificate chains against a compiled trust store.
// It is immutable and safe for concurrent use.
type Verifier struct {
	opts      Options
	roots     *x509.CertPool
	clientCAs *x509.CertPool
	anchors   []*x509.Certificate
	// anchorDER holds the DER of every trust anchor, to keep presented
	// copies of anchors out of the intermediates (see Verify).
	anchorDER map[string]struct{}
	// issuers maps a CA's RawSubject to the CAs of that name that have CRLs.
	issuers map[string][]*issuer
	crls    []CRLInfo
}

// issuer is the revocation state of one CA: the union of its CRLs, and
// the entries of a delta CRL applied to its full CRL (see ApplyDeltas).
type issuer struct {
	spki    []byte // RawSubjectPublicKeyInfo: the CRL signature was checked with this key
	revoked *serialSet
	scopes  []scope
	// delta maps the serials a delta CRL lists (deltaKey) to whether
	// they are revoked: it overrides revoked. Nil without a delta.
	delta map[string]bool
}

// scope is one CRL of an issuer: a full CRL, or one partition of a
// partitioned CRL (RFC 5280 §5.2.5), and its freshness.
type scope struct {
	urls                   []string // IssuingDistributionPoint fullName URIs
	onlyUsers, onlyCAs     bool
	thisUpdate, nextUpdate time.Time
	entries                int
	number                 string
	// partial is set for a CRL with an issuing distribution point.
	partial bool
	// base is, once a delta CRL is applied, the number of the full CRL
	// it applies to; number and the dates are then the delta's.
	base string
	// signature is the CRL's signature value (a copy).
	signature []byte
}

// CRLInfo describes a compiled CRL, for metrics and refresh scheduling.
type CRLInfo struct {
	// Issuer is the CA certificate that signed the CRL.
	Issuer *x509.Certificate
	// URLs are the CRL's IssuingDistributionPoint URIs, if it has any.
	URLs       []string
	ThisUpdate time.Time
	// NextUpdate is zero when the CRL has none.
	NextUpdate time.Time
	// Number is the cRLNumber in decimal, or "".
	Number string
	// Entries is the number of revoked serials on this CRL.
	Entries int
	// Partial is set for a CRL with an issuing distribution point (RFC
	// 5280 §5.2.5): it covers part of its issuer's certificates.
	Partial bool
	// BaseNumber is set when a delta CRL is applied to this full CRL (see
	// ApplyDeltas): it is the full CRL's number, and Number, ThisUpdate
	// and NextUpdate are the delta's. DeltaEntries is the delta's entries.
	BaseNumber   string
	DeltaEntries int
	// Signature is the CRL's signature value. Compile has checked it
	// against Issuer, so it stands for the whole CRL: a fingerprint of it
	// that costs nothing, where hashing a large CRL again takes tens of
	// milliseconds. A delta applied by ApplyDeltas leaves it as it is.
	Signature []byte
}

// Result is a verified chain.
type Result struct {
	// Chain is the verified path: the leaf first, the trust anchor last.
	Chain []*x509.Certificate
	// ExpiryIgnored is set when the leaf is expired and was accepted
	// because of Options.IgnoreExpiry.
	ExpiryIgnored bool
	// StaleCRL is set when a CRL past its nextUpdate was used under
	// FailOpen; StaleIssuer is the CA whose CRL it was.
	StaleCRL    bool
	StaleIssuer *x509.Certificate
}

// Object identifiers of the CRL extensions Compile understands (RFC 5280 §5.2, §5.3).
var (
	oidAuthorityKeyID      = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidCRLNumber           = asn1.ObjectIdentifier{2, 5, 29, 20}
	oidDeltaCRLIndicator   = asn1.ObjectIdentifier{2, 5, 29, 27}
	oidIssuingDistribution = asn1.ObjectIdentifier{2, 5, 29, 28}
	oidFreshestCRL         = asn1.ObjectIdentifier{2, 5, 29, 46}
	oidAuthorityInfoAccess = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 1}
	oidReasonCode          = asn1.ObjectIdentifier{2, 5, 29, 21}
	oidInvalidityDate      = asn1.ObjectIdentifier{2, 5, 29, 24}
	oidCertificateIssuer   = asn1.ObjectIdentifier{2, 5, 29, 29}
)

// Compile builds a Verifier. Every certificate in roots is a trust anchor
// and must be a CA certificate (AWS ALB trust stores likewise accept roots
// and intermediates). Each CRL must be signed by one of roots, checked here;
// a CRL from any other issuer is an error, as are delta CRLs, indirect CRLs,
// CRLs limited to some revocation reasons and CRLs with a critical
// extension this package does not know (RFC 5280 §5.2: such a CRL must not
// be used). Several CRLs of one CA are merged when their scopes differ
// (partitions, §5.2.5); of two CRLs with the same scope the newer is used.
// The Verifier keeps no reference to the CRLs.
//
// For large CRLs prefer [CompileDER]: x509.ParseRevocationList allocates
// about 1 KB per entry (1 GB, 260 MB of it live, for a million entries).
func Compile(roots []*x509.Certificate, crls []*x509.RevocationList, opts Options) (*Verifier, error) {
	in := make([]crlInput, len(crls))
	for i, crl := range crls {
		if crl == nil {
			return nil, fmt.Errorf("verify: CRL %d is nil", i)
		}
		in[i] = fromParsed(crl)
	}
	return compile(roots, in, opts)
}

// CompileDER is Compile with the CRLs in DER. It walks the revoked
// certificates itself, without parsing each entry into an
// x509.RevocationListEntry, so that compiling a 1,000,000-entry CRL takes a
// fraction of a second and little more memory than its DER and the result.
func CompileDER(roots []*x509.Certificate, crls [][]byte, opts Options) (*Verifier, error) {
	in := make([]crlInput, len(crls))
	for i, der := range crls {
		c, err := parseCRLDER(der)
		if err != nil {
			return nil, fmt.Errorf("verify: CRL %d: %w", i, err)
		}
		in[i] = c
	}
	return compile(roots, in, opts)
}

func compile(roots []*x509.Certificate, crls []crlInput, opts Options) (*Verifier, error) {
	if len(roots) == 0 {
		return nil, errors.New("verify: the trust store has no CA certificate")
	}
	v := &Verifier{
		opts:      opts.withDefaults(),
		roots:     x509.NewCertPool(),
		clientCAs: x509.NewCertPool(),
		anchorDER: map[string]struct{}{},
		issuers:   map[string][]*issuer{},
	}
	for i, c := range roots {
		if c == nil {
			return nil, fmt.Errorf("verify: trust store certificate %d is nil", i)
		}
		if !c.BasicConstraintsValid || !c.IsCA {
			return nil, fmt.Errorf("verify: trust store certificate %d (%s) is not a CA certificate", i, c.Subject)
		}
		v.roots.AddCert(c)
		v.clientCAs.AddCert(c)
		v.anchors = append(v.anchors, c)
		v.anchorDER[string(c.Raw)] = struct{}{}
	}

	// Find each CRL's issuer and check its signature and extensions; of
	// two CRLs of one scope keep the newer.
	type parsed struct {
		in    crlInput
		ca    *x509.Certificate
		scope scope
	}
	byScope := map[string]*parsed{}
	var order []string
	for i, in := range crls {
		crl := in.hdr
		ca, err := crlIssuer(v.anchors, crl)
		if err != nil {
			return nil, fmt.Errorf("verify: CRL %d (issuer %s): %w", i, crl.Issuer, err)
		}
		sc, idp, err := crlScope(crl, false)
		if err != nil {
			return nil, fmt.Errorf("verify: CRL %d (issuer %s): %w", i, crl.Issuer, err)
		}
		sc.thisUpdate, sc.nextUpdate, sc.entries = crl.ThisUpdate, crl.NextUpdate, in.entries
		// A copy: crl.Signature is a slice of the DER, which the Verifier must not keep.
		sc.signature = bytes.Clone(crl.Signature)
		if crl.Number != nil {
			sc.number = crl.Number.String()
		}
		key := string(ca.RawSubject) + "\x00" + string(ca.RawSubjectPublicKeyInfo) + "\x00" + string(idp)
		if prev, ok := byScope[key]; ok {
			if !newer(crl, prev.in.hdr) {
				continue
			}
		} else {
			order = append(order, key)
		}
		byScope[key] = &parsed{in: in, ca: ca, scope: sc}
	}

	// Merge the CRLs of each CA into one serial set.
	type group struct {
		ca  *x509.Certificate
		crl []*parsed
	}
	groups := map[string]*group{}
	var gorder []string
	for _, key := range order {
		p := byScope[key]
		gk := string(p.ca.RawSubject) + "\x00" + string(p.ca.RawSubjectPublicKeyInfo)
		g, ok := groups[gk]
		if !ok {
			g = &group{ca: p.ca}
			groups[gk] = g
			gorder = append(gorder, gk)
		}
		g.crl = append(g.crl, p)
	}
	for _, gk := range gorder {
		g := groups[gk]
		n, size := 0, 0
		for _, p := range g.crl {
			n += p.in.entries
			size += p.in.serialBytes
		}
		b := newSerialSetBuilder(n, size)
		is := &issuer{spki: g.ca.RawSubjectPublicKeyInfo}
		for _, p := range g.crl {
			if err := p.in.each(func(mag []byte, neg bool, _ int) { b.add(mag, neg) }); err != nil {
				return nil, fmt.Errorf("verify: CRL of %s: %w", g.ca.Subject, err)
			}
			is.scopes = append(is.scopes, p.scope)
			v.crls = append(v.crls, CRLInfo{
				Issuer: g.ca, URLs: p.scope.urls, ThisUpdate: p.scope.thisUpdate,
				NextUpdate: p.scope.nextUpdate, Number: p.scope.number, Entries: p.scope.entries,
				Partial:   p.scope.partial,
				Signature: p.scope.signature,
			})
		}
		is.revoked = b.build()
		subj := string(g.ca.RawSubject)
		v.issuers[subj] = append(v.issuers[subj], is)
	}
	return v, nil
}

// crlIssuer returns the trust anchor that signed crl.
func crlIssuer(anchors []*x509.Certificate, crl *x509.RevocationList) (*x509.Certificate, error) {
	var lastErr error
	for _, ca := range anchors {
		if !bytes.Equal(ca.RawSubject, crl.RawIssuer) {
			continue
		}
		if len(crl.AuthorityKeyId) > 0 && len(ca.SubjectKeyId) > 0 && !bytes.Equal(crl.AuthorityKeyId, ca.SubjectKeyId) {
			continue
		}
		if err := crl.CheckSignatureFrom(ca); err != nil {
			lastErr = err
			continue
		}
		return ca, nil
	}
	if lastErr != nil {
		return nil, fmt.Errorf("bad signature: %w", lastErr)
	}
	return nil, errors.New("not issued by a CA of the trust store")
}

// newer reports whether a is a newer issue of the same CRL than b.
func newer(a, b *x509.RevocationList) bool {
	if a.Number != nil && b.Number != nil {
		if c := a.Number.Cmp(b.Number); c != 0 {
			return c > 0
		}
	}
	return a.ThisUpdate.After(b.ThisUpdate)
}

// issuingDistributionPoint is RFC 5280 §5.2.5.
type issuingDistributionPoint struct {
	DistributionPoint          distributionPointName `asn1:"optional,tag:0"`
	OnlyContainsUserCerts      bool                  `asn1:"optional,tag:1"`
	OnlyContainsCACerts        bool                  `asn1:"optional,tag:2"`
	OnlySomeReasons            asn1.BitString        `asn1:"optional,tag:3"`
	IndirectCRL                bool                  `asn1:"optional,tag:4"`
	OnlyContainsAttributeCerts bool                  `asn1:"optional,tag:5"`
}

type distributionPointName struct {
	FullName     []asn1.RawValue  `asn1:"optional,tag:0"`
	RelativeName pkix.RDNSequence `asn1:"optional,tag:1"`
}

// crlScope checks the CRL's extensions and returns its scope and the DER
// of its IssuingDistributionPoint (nil for a full CRL). A delta CRL is
// refused unless delta is set.
func crlScope(crl *x509.RevocationList, delta bool) (scope, []byte, error) {
	var sc scope
	var idpDER []byte
	for _, ext := range crl.Extensions {
		switch {
		case ext.Id.Equal(oidDeltaCRLIndicator):
			if !delta {
				return sc, nil, errors.New("delta CRLs are not supported: configure the full CRL")
			}
		case ext.Id.Equal(oidIssuingDistribution):
			var idp issuingDistributionPoint
			rest, err := asn1.Unmarshal(ext.Value, &idp)
			if err != nil || len(rest) > 0 {
				return sc, nil, errors.New("malformed issuing distribution point")
			}
			if idp.IndirectCRL {
				return sc, nil, errors.New("indirect CRLs are not supported")
			}
			if idp.OnlySomeReasons.BitLength > 0 {
				return sc, nil, errors.New("CRLs limited to some revocation reasons are not supported")
			}
			if idp.OnlyContainsAttributeCerts {
				return sc, nil, errors.New("attribute certificate CRLs are not supported")
			}
			for _, gn := range idp.DistributionPoint.FullName {
				if gn.Class == asn1.ClassContextSpecific && gn.Tag == 6 { // uniformResourceIdentifier
					sc.urls = append(sc.urls, string(gn.Bytes))
				}
			}
			sc.onlyUsers, sc.onlyCAs = idp.OnlyContainsUserCerts, idp.OnlyContainsCACerts
			sc.partial = true
			idpDER = ext.Value
		case ext.Id.Equal(oidAuthorityKeyID), ext.Id.Equal(oidCRLNumber),
			ext.Id.Equal(oidFreshestCRL), ext.Id.Equal(oidAuthorityInfoAccess):
		default:
			if ext.Critical {
				return sc, nil, fmt.Errorf("unsupported critical extension %s", ext.Id)
			}
		}
	}
	return sc, idpDER, nil
}

// ClientCAs returns the trust anchors as a pool, for a TLS server to name in
// its CertificateRequest (tls.Config.ClientCAs). The pool is shared: the
// caller must not modify it.
func (v *Verifier) ClientCAs() *x509.CertPool { return v.clientCAs }

// Anchors returns the trust anchors, in the order given to Compile.
func (v *Verifier) Anchors() []*x509.Certificate {
	return append([]*x509.Certificate(nil), v.anchors...)
}

// CRLs describes the compiled CRLs, ordered by issuer and thisUpdate.
func (v *Verifier) CRLs() []CRLInfo {
	out := append([]CRLInfo(nil), v.crls...)
	sort.SliceStable(out, func(i, j int) bool {
		if c := bytes.Compare(out[i].Issuer.Raw, out[j].Issuer.Raw); c != 0 {
			return c < 0
		}
		return out[i].ThisUpdate.Before(out[j].ThisUpdate)
	})
	return out
}

// Options returns the options the Verifier was compiled with, defaults filled in.
func (v *Verifier) Options() Options { return v.opts }

// CheckLimits checks a presented chain against the size and depth limits
// alone, without verifying it: what a passthrough listener enforces.
func CheckLimits(chain []*x509.Certificate, opts Options) error {
	opts = opts.withDefaults()
	if len(chain) > opts.MaxChainDepth {
		return fail(ClientCertMaxChainDepthExceeded, "the client sent %d certificates, more than %d", len(chain), opts.MaxChainDepth)
	}
	for i, c := range chain {
		if c == nil || len(c.Raw) == 0 {
			return fail(ClientCertMalformed, "certificate %d is empty", i)
		}
		if len(c.Raw) > opts.MaxCertSize {
			return fail(ClientCertMaxSizeExceeded, "certificate %d is %d bytes, more than %d", i, len(c.Raw), opts.MaxCertSize)
		}
	}
	return nil
}

// Verify checks chain, as sent by a TLS client (leaf first, then any
// intermediates), at time now. It builds a path to a trust anchor with
// crypto/x509 (signatures, basic constraints, path length and name
// constraints, validity of every certificate, the clientAuth extended key
// usage), then checks every certificate of the path but the anchor against
// its issuer's CRL. On failure the error is an *Error whose Reason says why.
func (v *Verifier) Verify(chain []*x509.Certificate, now time.Time) (Result, error) {
	if len(chain) == 0 {
		return Result{}, &Error{Reason: ClientCertNotFound, Err: errors.New("the client sent no certificate")}
	}
	if err := CheckLimits(chain, v.opts); err != nil {
		return Result{}, err
	}
	leaf := chain[0]
	// Build the path at a time the leaf is valid, so that an untrusted
	// certificate is reported as untrusted whatever its dates; then judge
	// the dates at now.
	at := now
	if now.Before(leaf.NotBefore) {
		at = leaf.NotBefore
	} else if now.After(leaf.NotAfter) {
		at = leaf.NotAfter
	}
	// A presented certificate that is itself a trust anchor (a client that
	// sends its intermediate, which the trust store also holds) is left out
	// of the intermediates: the path ending at the anchor is the shortest
	// one through it, which is the one chosen below anyway, and as an
	// intermediate it would make crypto/x509 build and check the longer
	// path through it too (two more signature verifications per handshake).
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		if _, anchor := v.anchorDER[string(c.Raw)]; !anchor {
			inter.AddCert(c)
		}
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         v.roots,
		Intermediates: inter,
		CurrentTime:   at,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return Result{}, classify(err, at)
	}
	// The shortest path that fits the depth limit; x509 may find several
	// (cross-signed CAs).
	var path []*x509.Certificate
	for _, c := range chains {
		if len(c) <= v.opts.MaxChainDepth && (path == nil || len(c) < len(path)) {
			path = c
		}
	}
	if path == nil {
		return Result{}, fail(ClientCertMaxChainDepthExceeded, "the shortest path has %d certificates, more than %d", shortest(chains), v.opts.MaxChainDepth)
	}
	var res Result
	switch {
	case now.Before(leaf.NotBefore):
		return Result{}, fail(ClientCertNotYetValid, "the certificate is valid from %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	case now.After(leaf.NotAfter) && !v.opts.IgnoreExpiry:
		return Result{}, fail(ClientCertExpired, "the certificate expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.After(leaf.NotAfter):
		res.ExpiryIgnored = true
	}
	if !at.Equal(now) {
		// The CAs were checked at the leaf's time; they must be valid now.
		for _, c := range path[1:] {
			if now.After(c.NotAfter) {
				return Result{}, fail(ClientCertExpired, "the CA certificate %s expired at %s", c.Subject, c.NotAfter.UTC().Format(time.RFC3339))
			}
			if now.Before(c.NotBefore) {
				return Result{}, fail(ClientCertNotYetValid, "the CA certificate %s is valid from %s", c.Subject, c.NotBefore.UTC().Format(time.RFC3339))
			}
		}
	}
	// Revocation: each certificate against its issuer's CRLs, the anchor
	// excepted (RFC 5280 §6.1: trust anchors are outside the path).
	for i := 0; i < len(path)-1; i++ {
		c, iss := path[i], path[i+1]
		is := v.issuerOf(iss)
		if is == nil {
			continue
		}
		if stale := is.stale(c, now); stale {
			if v.opts.StaleCRL == FailClosed {
				return Result{}, fail(ClientCertCrlExpired, "the CRL of %s is past its nextUpdate", iss.Subject)
			}
			if !res.StaleCRL {
				res.StaleCRL, res.StaleIssuer = true, iss
			}
		}
		if is.isRevoked(c.SerialNumber) {
			return Result{}, fail(ClientCertCrlHit, "certificate %s (serial %X) is revoked by %s", c.Subject, c.SerialNumber, iss.Subject)
		}
	}
	res.Chain = path
	return res, nil
}

func shortest(chains [][]*x509.Certificate) int {
	n := 0
	for _, c := range chains {
		if n == 0 || len(c) < n {
			n = len(c)
		}
	}
	return n
}

// issuerOf returns the revocation state of CA ca, or nil when no CRL of it
// is configured.
func (v *Verifier) issuerOf(ca *x509.Certificate) *issuer {
	for _, is := range v.issuers[string(ca.RawSubject)] {
		if bytes.Equal(is.spki, ca.RawSubjectPublicKeyInfo) {
			return is
		}
	}
	return nil
}

// stale reports whether a CRL that covers c is past its nextUpdate. A CRL
// covers c when its distribution point is one of c's CRL distribution
// points; when none matches, every CRL of the issuer does.
func (is *issuer) stale(c *x509.Certificate, now time.Time) bool {
	matched, stale := false, false
	for i := range is.scopes {
		sc := &is.scopes[i]
		if !sc.covers(c) {
			continue
		}
		matched = true
		if !sc.nextUpdate.IsZero() && now.After(sc.nextUpdate) {
			stale = true
		}
	}
	if matched {
		return stale
	}
	for i := range is.scopes {
		if sc := &is.scopes[i]; !sc.nextUpdate.IsZero() && now.After(sc.nextUpdate) {
			return true
		}
	}
	return false
}

func (sc *scope) covers(c *x509.Certificate) bool {
	if sc.onlyUsers && c.IsCA || sc.onlyCAs && !c.IsCA {
		return false
	}
	if len(sc.urls) == 0 {
		return true
	}
	for _, u := range sc.urls {
		for _, dp := range c.CRLDistributionPoints {
			if u == dp {
				return true
			}
		}
	}
	return false
}

// classify maps a crypto/x509 verification error to a Reason.
func classify(err error, now time.Time) error {
	var inv x509.CertificateInvalidError
	var ua x509.UnknownAuthorityError
	switch {
	case errors.As(err, &inv):
		switch inv.Reason {
		case x509.Expired:
			if inv.Cert != nil && now.Before(inv.Cert.NotBefore) {
				return &Error{Reason: ClientCertNotYetValid, Err: err}
			}
			return &Error{Reason: ClientCertExpired, Err: err}
		case x509.IncompatibleUsage:
			return &Error{Reason: ClientCertWrongUsage, Err: err}
		}
		return &Error{Reason: ClientCertUntrusted, Err: err}
	case errors.As(err, &ua):
		return &Error{Reason: ClientCertUntrusted, Err: err}
	}
	return &Error{Reason: ClientCertUntrusted, Err: err}
}
