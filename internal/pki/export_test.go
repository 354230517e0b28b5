package pki

import (
	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3/lint"
)

// LintVerdict is one lint's status and details, for tests.
type LintVerdict struct {
	Status  lint.LintStatus
	Details string
}

// LintResults runs every lint of l on c and returns each lint's verdict by
// name: the results Lint and Sign decide on.
func (l *Linter) LintResults(c *zx509.Certificate) map[string]LintVerdict {
	out := make(map[string]LintVerdict, len(l.lints))
	l.run(c, func(p *preparedLint, status lint.LintStatus, details string) {
		out[p.Name] = LintVerdict{status, details}
	})
	return out
}

// NewPerRunLinter returns a Linter that builds every lint instance per run
// through zlint's CertificateLint.Execute, as if no instance could be
// shared.
func NewPerRunLinter() (*Linter, error) {
	l, err := NewLinter()
	if err != nil {
		return nil, err
	}
	for i := range l.lints {
		l.lints[i].shared, l.lints[i].spki = nil, false
	}
	return l, nil
}

// SharedLints returns the names of the lints whose instance l reuses and
// of those whose verdicts it caches by SPKI.
func (l *Linter) SharedLints() (shared, spki []string) {
	for _, p := range l.lints {
		if p.shared != nil {
			shared = append(shared, p.Name)
		}
		if p.spki {
			spki = append(spki, p.Name)
		}
	}
	return shared, spki
}

// ReadOnlyLints and SPKILints expose the reviewed lists.
var (
	ReadOnlyLints = readOnlyLints
	SPKILints     = spkiLints
)
