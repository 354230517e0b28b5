package pki

import (
	"crypto/x509"
	"strings"
	"time"
)

// Day and Year are the calendar-free units of the API's durations (apiv1.ParseDuration): 24 hours and
// 365 days. Certificate lifetimes are counted in them throughout Trustgate.
const (
	Day  = 24 * time.Hour
	Year = 365 * Day
)

// Profile is a named kind of certificate and the rules it is issued under:
// its validity bounds, its extended key usages and whether it is a CA.
// Profiles returned by [LookupProfile] are copies; changing one does not
// change the built-in profile.
type Profile struct {
	// Name is the profile's name, such as "server".
	Name string
	// Description says in one line what the profile is for.
	Description string
	// DefaultValidity is the lifetime used when a request names none.
	DefaultValidity time.Duration
	// MaxValidity is the longest lifetime allowed; longer requests are
	// refused, never silently shortened.
	MaxValidity time.Duration
	// MinValidity is the shortest lifetime allowed. Leaves may be as short
	// as one minute, for short-lived credentials that are never revoked.
	MinValidity time.Duration
	// ServerAuth adds the id-kp-serverAuth EKU (RFC 5280 section 4.2.1.12)
	// and requires a DNS or IP SAN, the names TLS clients check
	// (RFC 9525 section 6).
	ServerAuth bool
	// ClientAuth adds the id-kp-clientAuth EKU.
	ClientAuth bool
	// IsCA marks a subordinate CA profile, built with [CATemplate]
	// rather than [LeafTemplate].
	IsCA bool
	// MaxPathLen is the default basicConstraints pathLenConstraint of a
	// CA profile (RFC 5280 section 4.2.1.9): 0 means the CA may issue
	// only leaves, -1 means unconstrained. Ignored for leaves.
	MaxPathLen int
}

// builtinProfiles are the profiles Trustgate issues under, in the order
// [ProfileNames] lists them.
//
// Leaf lifetimes default to 90 days (30 for client certificates, which
// agents renew automatically) and are capped at 398 days, the longest
// lifetime TLS clients have accepted since 2020; subordinate CAs default to
// five years and are capped at ten.
var builtinProfiles = []Profile{
	{
		Name:            "server",
		Description:     "TLS server certificate (serverAuth)",
		DefaultValidity: 90 * Day,
		MaxValidity:     398 * Day,
		MinValidity:     time.Minute,
		ServerAuth:      true,
	},
	{
		Name:            "client",
		Description:     "TLS client certificate for mTLS (clientAuth)",
		DefaultValidity: 30 * Day,
		MaxValidity:     398 * Day,
		MinValidity:     time.Minute,
		ClientAuth:      true,
	},
	{
		Name:            "server-client",
		Description:     "TLS certificate for both ends of mTLS (serverAuth and clientAuth)",
		DefaultValidity: 90 * Day,
		MaxValidity:     398 * Day,
		MinValidity:     time.Minute,
		ServerAuth:      true,
		ClientAuth:      true,
	},
	{
		Name:            "subordinate-ca",
		Description:     "intermediate CA that may issue only leaf certificates",
		DefaultValidity: 5 * Year,
		MaxValidity:     10 * Year,
		MinValidity:     Day,
		IsCA:            true,
		MaxPathLen:      0,
	},
}

// ProfileNames returns the names of the built-in profiles.
func ProfileNames() []string {
	names := make([]string, len(builtinProfiles))
	for i, p := range builtinProfiles {
		names[i] = p.Name
	}
	return names
}

// LookupProfile returns a copy of the built-in profile called name. An
// unknown name fails with an error listing the known ones.
func LookupProfile(name string) (*Profile, error) {
	for _, p := range builtinProfiles {
		if p.Name == name {
			p := p
			return &p, nil
		}
	}
	return nil, invalidf("unknown profile %q (known: %s)", name, strings.Join(ProfileNames(), ", "))
}

// CheckValidity reports whether a lifetime of d is within the profile's
// bounds. It never adjusts d: a request outside the bounds is an error
// that states the limit.
func (p *Profile) CheckValidity(d time.Duration) error {
	if d <= 0 {
		return invalidf("validity %s is not positive", FormatDuration(d))
	}
	if d < p.MinValidity {
		return invalidf("validity %s is below the minimum of %s for profile %q", FormatDuration(d), FormatDuration(p.MinValidity), p.Name)
	}
	if p.MaxValidity > 0 && d > p.MaxValidity {
		return invalidf("validity %s exceeds the maximum of %s for profile %q", FormatDuration(d), FormatDuration(p.MaxValidity), p.Name)
	}
	return nil
}

// ExtKeyUsage returns the extended key usages of a leaf issued under p, in
// a fixed order. A CA profile has none: an EKU in a CA certificate
// constrains every certificate below it (a de-facto rule of major TLS
// stacks), which Trustgate does not want by default.
func (p *Profile) ExtKeyUsage() []x509.ExtKeyUsage {
	if p.IsCA {
		return nil
	}
	var ekus []x509.ExtKeyUsage
	if p.ServerAuth {
		ekus = append(ekus, x509.ExtKeyUsageServerAuth)
	}
	if p.ClientAuth {
		ekus = append(ekus, x509.ExtKeyUsageClientAuth)
	}
	return ekus
}
