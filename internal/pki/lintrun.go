package pki

import (
	"crypto/sha256"
	"fmt"
	"reflect"
	"strings"
	"sync"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3/lint"
	"github.com/zmap/zlint/v3/util"
)

// zlint's CertificateLint.Execute builds a new lint instance and configures
// it by reflection for every certificate, and some constructors compile
// regular expressions: a fifth of the lint time of a leaf. A Linter instead
// builds and configures, once, every lint whose instance provably holds no
// state that a run could change, and runs them with the same steps as
// zlint (framework filter, CheckApplies, CheckEffective, Execute, a panic
// becoming Fatal). Every other lint goes through zlint's own Execute.

// readOnlyLints are the zlint lints whose instances have fields but never
// write them after the constructor and Configure: each was read in zlint's
// source. The value is the instance's field list as fieldSignature renders
// it; if an upgrade of zlint changes it, the lint is built per run again
// (and TestLintInstancesShared fails, so that someone reads it anew).
var readOnlyLints = map[string]string{
	// Fields filled from the (empty) configuration and only read.
	"e_ca_common_name_missing":           "TlsBrConfig *lint.CABFBaselineRequirementsConfig",
	"e_ca_country_name_invalid":          "TlsBrConfig *lint.CABFBaselineRequirementsConfig",
	"e_ca_multiple_reserved_policy_oids": "CrossCert bool",
	"e_ecdsa_small_private_key":          "Bits int",
	"e_rsa_fermat_factorization":         "Rounds int",
	"e_subj_contains_html_entities":      "Skip bool",
	"e_subj_orgunit_in_ca_cert":          "CrossCert bool",
	// A compiled regexp (safe for concurrent use), maps only looked up,
	// and a big.Int bound only compared against.
	"e_dnsname_bad_character_in_label":                       "CompiledExpression *regexp.Regexp",
	"e_mailbox_validated_enforce_subject_field_restrictions": "forbiddenSubjectFields map[string]string; allowedSubjectFields map[string]string",
	"w_rsa_public_exponent_not_in_range":                     "upperBound *big.Int",
}

// spkiLints are the lints whose verdict is a function of the subject public
// key info alone, and costly: CheckApplies and Execute read only
// PublicKeyAlgorithm and PublicKey (both parsed from the SPKI) and the
// lint's configuration, which is fixed per Linter. Their results are cached
// by SPKI hash, so that a renewal or a retry with the same key skips them.
// Both are Community lints with a zero effective date; the framework filter
// and CheckEffective still run on every certificate.
var spkiLints = map[string]bool{
	"e_ecdsa_small_private_key":  true, // baby-step giant-step search for a small discrete log (~0.1 ms)
	"e_rsa_fermat_factorization": true, // 100 rounds of Fermat factoring on the modulus (~0.6 ms)
}

// spkiCacheSize bounds the SPKI verdict cache: each entry is a hash, a
// status and usually an empty string.
const spkiCacheSize = 8192

// fieldSignature renders the fields of struct type t as "Name Type; ...".
func fieldSignature(t reflect.Type) string {
	fs := make([]string, t.NumField())
	for i := range fs {
		f := t.Field(i)
		fs[i] = f.Name + " " + f.Type.String()
	}
	return strings.Join(fs, "; ")
}

// sharedInstance returns the lint's instance to reuse for every
// certificate, configured once, or nil when the lint must be built per run.
// An instance is reused when it is a pointer to a struct without fields
// (the Go runtime already gives every such allocation the same address, so
// zlint itself shares them) or one of readOnlyLints with the reviewed
// fields.
func sharedInstance(cl *lint.CertificateLint, config lint.Configuration) (lint.CertificateLintInterface, error) {
	inst := cl.Lint()
	t := reflect.TypeOf(inst)
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil, nil
	}
	if sig := fieldSignature(t.Elem()); sig != "" && readOnlyLints[cl.Name] != sig {
		return nil, nil
	}
	if err := config.MaybeConfigure(inst, cl.Name); err != nil {
		return nil, fmt.Errorf("pki: configure lint %s: %w", cl.Name, err)
	}
	return inst, nil
}

// preparedLint is one lint of a Linter.
type preparedLint struct {
	*lint.CertificateLint
	// shared is the instance used for every certificate; nil means
	// CertificateLint.Execute builds one per run.
	shared lint.CertificateLintInterface
	// spki is whether the verdict is cached by SPKI hash (spkiLints).
	spki bool
}

// spkiKey names one lint's verdict on one subject public key.
type spkiKey struct {
	spki [sha256.Size]byte
	lint string
}

// spkiVerdict is what CheckApplies and, if it applies, Execute said.
type spkiVerdict struct {
	applies bool
	status  lint.LintStatus
	details string
}

// spkiCache holds verdicts of spkiLints, bounded by spkiCacheSize.
type spkiCache struct {
	mu sync.Mutex
	m  map[spkiKey]spkiVerdict
}

func (c *spkiCache) get(k spkiKey) (spkiVerdict, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	return v, ok
}

func (c *spkiCache) put(k spkiKey, v spkiVerdict) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= spkiCacheSize {
		// Evict one entry; map iteration order is random, which is
		// enough for a cache whose hits are keys seen again soon.
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[k] = v
}

// lintRun is the state of linting one certificate.
type lintRun struct {
	c      *zx509.Certificate
	spki   [sha256.Size]byte
	hashed bool
	linter *Linter
	// The framework filter's three questions, asked once per certificate
	// instead of once per lint: each is a function of the certificate.
	// filtered is false if asking panicked; each lint then asks again,
	// under its recover, and fails Fatal as in zlint.
	filtered                                 bool
	serverAuth, emailProtection, codeSigning bool
}

// filter answers the framework filter's questions for r.c, unless that
// panics.
func (r *lintRun) filter() {
	defer func() { _ = recover() }()
	r.serverAuth, r.emailProtection, r.codeSigning = util.IsServerAuthCert(r.c), util.IsEmailProtectionCert(r.c), util.IsCodeSigning(r.c.PolicyIdentifiers)
	r.filtered = true
}

// frameworkFilter is zlint's pre-flight check: whether a lint of source
// src is not applicable to r.c whatever the lint says.
func (r *lintRun) frameworkFilter(src lint.LintSource) bool {
	c := r.c
	switch src {
	case lint.CABFBaselineRequirements:
		return !r.answer(r.serverAuth, func() bool { return util.IsServerAuthCert(c) })
	case lint.CABFSMIMEBaselineRequirements:
		return !r.answer(r.emailProtection, func() bool { return util.IsEmailProtectionCert(c) })
	case lint.CABFCSBaselineRequirements:
		return !r.answer(r.codeSigning, func() bool { return util.IsCodeSigning(c.PolicyIdentifiers) })
	}
	return false
}

// answer is the filter's answer computed once, or ask's if that panicked.
func (r *lintRun) answer(once bool, ask func() bool) bool {
	if r.filtered {
		return once
	}
	return ask()
}

// run lints c with every lint of l and calls visit with each result.
func (l *Linter) run(c *zx509.Certificate, visit func(p *preparedLint, status lint.LintStatus, details string)) {
	r := lintRun{c: c, linter: l}
	r.filter()
	for i := range l.lints {
		p := &l.lints[i]
		status, details := r.execute(p)
		visit(p, status, details)
	}
}

// execute runs one lint in the order and with the results of zlint's
// CertificateLint.Execute.
func (r *lintRun) execute(p *preparedLint) (status lint.LintStatus, details string) {
	if p.shared == nil {
		res := p.Execute(r.c, r.linter.config)
		return res.Status, res.Details
	}
	defer func() {
		if err := recover(); err != nil {
			status, details = lint.Fatal, fmt.Sprintf("'%s' panicked. Error: %v", p.Name, err)
		}
	}()
	c := r.c
	if !p.OverrideFrameworkFilter && r.frameworkFilter(p.Source) {
		return lint.NA, ""
	}
	if p.spki {
		return r.spkiExecute(p)
	}
	if !p.shared.CheckApplies(c) {
		return lint.NA, ""
	}
	if !p.CheckEffective(c) {
		return lint.NE, ""
	}
	res := p.shared.Execute(c)
	return res.Status, res.Details
}

// spkiExecute runs an SPKI lint: CheckApplies and Execute come from the
// cache when this key was seen, and go into it otherwise. CheckEffective
// runs every time, between them as in zlint; a verdict is cached only once
// Execute has run, and a panic caches nothing.
func (r *lintRun) spkiExecute(p *preparedLint) (lint.LintStatus, string) {
	if !r.hashed {
		r.spki = sha256.Sum256(r.c.RawSubjectPublicKeyInfo)
		r.hashed = true
	}
	k := spkiKey{spki: r.spki, lint: p.Name}
	cache := &r.linter.spkiCache
	v, ok := cache.get(k)
	if !ok {
		if v.applies = p.shared.CheckApplies(r.c); !v.applies {
			cache.put(k, v)
		}
	}
	if !v.applies {
		return lint.NA, ""
	}
	if !p.CheckEffective(r.c) {
		return lint.NE, ""
	}
	if !ok {
		res := p.shared.Execute(r.c)
		v.status, v.details = res.Status, res.Details
		cache.put(k, v)
	}
	return v.status, v.details
}
