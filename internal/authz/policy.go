package authz

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/fault"
)

// Policy is a parsed, validated policy document: statements of allow or
// deny. Evaluation is default deny, and an explicit deny always wins.
type Policy struct {
	Statements []Statement `json:"statements" yaml:"statements"`
}

// Statement allows or denies actions on resources, optionally only under
// conditions.
type Statement struct {
	// Sid names the statement in decisions; optional.
	Sid        string      `json:"sid,omitempty" yaml:"sid,omitempty"`
	Effect     string      `json:"effect" yaml:"effect"`
	Actions    []string    `json:"actions" yaml:"actions"`
	Resources  []string    `json:"resources" yaml:"resources"`
	Conditions *Conditions `json:"conditions,omitempty" yaml:"conditions,omitempty"`
}

// Conditions restrict what a statement covers to issuance requests with
// the given facts.
//
// In an allow statement every condition must hold for the whole request:
// the profile is listed, every name matches a pattern of its kind, the key
// type is listed, the validity is at most MaxValidity. The name conditions
// (DNSNames, URIPrefixes, IPRanges, Emails) form one allow-list: once a
// statement names any of them, a name of a kind it does not list is
// outside it, so allowing *.svc.internal does not also allow any URI.
//
// In a deny statement the conditions say what the deny is about: it applies
// when every condition it lists is touched by the request (the profile is
// listed, some name matches, the key type is listed, the validity exceeds
// MaxValidity).
//
// A statement with conditions never applies to a question without issuance
// facts (reading a CA, say), for allow and deny alike.
type Conditions struct {
	Profiles    []string `json:"profiles,omitempty" yaml:"profiles,omitempty"`
	DNSNames    []string `json:"dns_names,omitempty" yaml:"dns_names,omitempty"`
	URIPrefixes []string `json:"uri_prefixes,omitempty" yaml:"uri_prefixes,omitempty"`
	IPRanges    []string `json:"ip_ranges,omitempty" yaml:"ip_ranges,omitempty"`
	Emails      []string `json:"emails,omitempty" yaml:"emails,omitempty"`
	// Subject maps an attribute's short name (CN, O, OU, C, L, ST) to the
	// patterns its values must match (* matches any run of characters).
	Subject     map[string][]string `json:"subject,omitempty" yaml:"subject,omitempty"`
	KeyTypes    []string            `json:"key_types,omitempty" yaml:"key_types,omitempty"`
	MaxValidity string              `json:"max_validity,omitempty" yaml:"max_validity,omitempty"`

	prefixes    []netip.Prefix
	maxValidity time.Duration
}

// Actions lists every action a policy may name. A route's action must be
// here; a policy naming an unknown action is refused, so that a typo does
// not silently grant nothing (or, with a wildcard, everything).
var Actions = []string{
	"ca:Create", "ca:List", "ca:Read", "ca:ImportCertificate", "ca:Disable", "ca:Enable", "ca:ExportKey", "ca:TakeOffline", "ca:Rotate",
	"cert:Issue", "cert:List", "cert:Read", "cert:Revoke", "cert:Unhold", "cert:Import", "cert:Export",
	"truststore:Create", "truststore:List", "truststore:Read", "truststore:Update",
	"policy:Put", "policy:List", "policy:Read", "policy:Delete", "policy:Simulate",
	"principal:Create", "principal:List", "principal:Read", "principal:Update", "principal:Delete",
	"token:Create", "token:List", "token:Revoke",
	"audit:Read",
}

// maxPolicyBytes bounds a policy document.
const maxPolicyBytes = 64 << 10

// ParsePolicy reads a policy document in YAML or JSON (JSON is YAML) and
// validates it. Unknown fields are errors, so a misspelled condition is
// not silently ignored.
func ParsePolicy(doc []byte) (*Policy, error) {
	if len(doc) > maxPolicyBytes {
		return nil, fault.New(fault.Invalid, "policy document is %d bytes; the limit is %d", len(doc), maxPolicyBytes)
	}
	var p Policy
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		return nil, fault.New(fault.Invalid, "policy document: %v", err)
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// JSON returns the policy's canonical JSON form, the form stored.
func (p *Policy) JSON() []byte {
	b, _ := json.Marshal(p) // plain strings and slices: cannot fail
	return b
}

func (p *Policy) validate() error {
	if len(p.Statements) == 0 {
		return fault.New(fault.Invalid, "policy has no statements")
	}
	for i := range p.Statements {
		st := &p.Statements[i]
		where := fmt.Sprintf("statement %d", i+1)
		if st.Sid != "" {
			where += fmt.Sprintf(" (%s)", st.Sid)
		}
		if st.Effect != "allow" && st.Effect != "deny" {
			return fault.New(fault.Invalid, "%s: effect %q must be allow or deny", where, st.Effect)
		}
		if len(st.Actions) == 0 || len(st.Resources) == 0 {
			return fault.New(fault.Invalid, "%s: actions and resources are required", where)
		}
		for _, a := range st.Actions {
			if !slices.ContainsFunc(Actions, func(known string) bool { return globMatch(a, known) }) {
				return fault.New(fault.Invalid, "%s: action %q matches no action (e.g. cert:Issue, cert:*, *)", where, a)
			}
		}
		for _, r := range st.Resources {
			if r != "*" && !validResource.MatchString(r) {
				return fault.New(fault.Invalid, "%s: resource %q must be * or KIND/NAME (ca/..., truststore/..., policy/..., principal/...), with * wildcards", where, r)
			}
		}
		if st.Conditions != nil {
			if err := st.Conditions.compile(); err != nil {
				return fault.New(fault.Invalid, "%s: %v", where, err)
			}
		}
	}
	return nil
}

var validResource = regexp.MustCompile(`^(ca|truststore|policy|principal|audit)/[A-Za-z0-9._*-]+$`)

func (c *Conditions) compile() error {
	c.prefixes = nil
	for _, r := range c.IPRanges {
		p, err := netip.ParsePrefix(r)
		if err != nil {
			return fmt.Errorf("ip_ranges: %q is not a CIDR range", r)
		}
		c.prefixes = append(c.prefixes, p.Masked())
	}
	for _, d := range c.DNSNames {
		if d == "" || strings.Contains(strings.TrimPrefix(d, "*."), "*") {
			return fmt.Errorf("dns_names: %q: a pattern is a name, optionally starting with *.", d)
		}
	}
	for k := range c.Subject {
		if !slices.Contains([]string{"CN", "O", "OU", "C", "L", "ST"}, k) {
			return fmt.Errorf("subject: unknown attribute %q (CN, O, OU, C, L, ST)", k)
		}
	}
	c.maxValidity = 0
	if c.MaxValidity != "" {
		d, err := apiv1.ParseDuration(c.MaxValidity)
		if err != nil || d <= 0 {
			return fmt.Errorf("max_validity: %q is not a positive duration (e.g. 24h, 30d)", c.MaxValidity)
		}
		c.maxValidity = d
	}
	return nil
}

// NamedPolicy is a policy with the name it is stored under.
type NamedPolicy struct {
	Name   string
	Policy *Policy
}

// Decision is the outcome of evaluating a question against policies.
type Decision struct {
	Allowed bool
	// Policy and Statement name what decided: the deny that matched, or the
	// first allow that matched; both empty for the default deny.
	Policy    string
	Statement string
	// Reason says in words why, for the simulator; it may name conditions
	// and so is never shown to the principal that was denied.
	Reason string
}

// Evaluate answers q against policies: an explicit deny wins, then any
// allow, else the default deny.
func Evaluate(policies []NamedPolicy, q Query) Decision {
	var allow *Decision
	var unmet []string
	for _, np := range policies {
		for i, st := range np.Policy.Statements {
			if !st.covers(q.Action, q.Resource) {
				continue
			}
			label := st.Sid
			if label == "" {
				label = fmt.Sprintf("#%d", i+1)
			}
			if st.Effect == "deny" {
				if st.Conditions == nil || st.Conditions.touchedBy(q.Issuance) {
					return Decision{Policy: np.Name, Statement: label,
						Reason: fmt.Sprintf("explicitly denied by statement %s of policy %q", label, np.Name)}
				}
				continue
			}
			if allow != nil {
				continue
			}
			if st.Conditions != nil {
				if why := st.Conditions.unmetBy(q.Issuance); why != "" {
					unmet = append(unmet, fmt.Sprintf("statement %s of policy %q: %s", label, np.Name, why))
					continue
				}
			}
			allow = &Decision{Allowed: true, Policy: np.Name, Statement: label,
				Reason: fmt.Sprintf("allowed by statement %s of policy %q", label, np.Name)}
		}
	}
	if allow != nil {
		return *allow
	}
	if len(unmet) > 0 {
		return Decision{Reason: "no statement allows it: " + strings.Join(unmet, "; ")}
	}
	return Decision{Reason: "no statement allows it (default deny)"}
}

// MayEver reports whether policies could allow action on some resource
// under some conditions: false when no allow statement names the action,
// or when a deny without conditions covers it everywhere. It lets a caller
// refuse early, before it looks up what the request is about.
func MayEver(policies []NamedPolicy, action string) bool {
	allowed := false
	for _, np := range policies {
		for _, st := range np.Policy.Statements {
			if !slices.ContainsFunc(st.Actions, func(p string) bool { return globMatch(p, action) }) {
				continue
			}
			if st.Effect == "deny" {
				if st.Conditions == nil && slices.Contains(st.Resources, "*") {
					return false
				}
				continue
			}
			allowed = true
		}
	}
	return allowed
}

func (st *Statement) covers(action, resource string) bool {
	return slices.ContainsFunc(st.Actions, func(p string) bool { return globMatch(p, action) }) &&
		slices.ContainsFunc(st.Resources, func(p string) bool { return globMatch(p, resource) })
}

// unmetBy returns why iss falls outside an allow statement's conditions,
// or "" when it is inside.
func (c *Conditions) unmetBy(iss *Issuance) string {
	if iss == nil {
		return "it has conditions and the request is not an issuance"
	}
	if len(c.Profiles) > 0 && !slices.Contains(c.Profiles, iss.Profile) {
		return fmt.Sprintf("profile %q is not among %v", iss.Profile, c.Profiles)
	}
	if len(c.KeyTypes) > 0 && iss.KeyType != "" && !slices.Contains(c.KeyTypes, iss.KeyType) {
		return fmt.Sprintf("key type %q is not among %v", iss.KeyType, c.KeyTypes)
	}
	if c.maxValidity > 0 && (iss.Validity <= 0 || iss.Validity > c.maxValidity) {
		if iss.Validity <= 0 {
			return fmt.Sprintf("the validity is not stated and the limit is %s", c.MaxValidity)
		}
		return fmt.Sprintf("validity %s is over the limit of %s", iss.Validity, c.MaxValidity)
	}
	if c.namesConstrained() {
		for _, d := range iss.DNS {
			if !slices.ContainsFunc(c.DNSNames, func(p string) bool { return dnsMatch(p, d) }) {
				return fmt.Sprintf("DNS name %q matches none of %v", d, c.DNSNames)
			}
		}
		for _, u := range iss.URIs {
			if !slices.ContainsFunc(c.URIPrefixes, func(p string) bool { return strings.HasPrefix(u, p) }) {
				return fmt.Sprintf("URI %q starts with none of %v", u, c.URIPrefixes)
			}
		}
		for _, ip := range iss.IPs {
			if !slices.ContainsFunc(c.prefixes, func(p netip.Prefix) bool { return p.Contains(ip) }) {
				return fmt.Sprintf("IP address %s is in none of %v", ip, c.IPRanges)
			}
		}
		for _, e := range iss.Emails {
			if !slices.ContainsFunc(c.Emails, func(p string) bool { return globMatch(strings.ToLower(p), strings.ToLower(e)) }) {
				return fmt.Sprintf("email %q matches none of %v", e, c.Emails)
			}
		}
	}
	for attr, pats := range c.Subject {
		for _, v := range iss.Subject[attr] {
			if !slices.ContainsFunc(pats, func(p string) bool { return globMatch(p, v) }) {
				return fmt.Sprintf("subject %s=%q matches none of %v", attr, v, pats)
			}
		}
	}
	return ""
}

func (c *Conditions) namesConstrained() bool {
	return len(c.DNSNames) > 0 || len(c.URIPrefixes) > 0 || len(c.IPRanges) > 0 || len(c.Emails) > 0
}

// touchedBy reports whether a deny statement's conditions all concern iss.
func (c *Conditions) touchedBy(iss *Issuance) bool {
	if iss == nil {
		return false
	}
	if len(c.Profiles) > 0 && !slices.Contains(c.Profiles, iss.Profile) {
		return false
	}
	if len(c.KeyTypes) > 0 && !slices.Contains(c.KeyTypes, iss.KeyType) {
		return false
	}
	if c.maxValidity > 0 && iss.Validity <= c.maxValidity {
		return false
	}
	if c.namesConstrained() {
		hit := slices.ContainsFunc(iss.DNS, func(d string) bool {
			return slices.ContainsFunc(c.DNSNames, func(p string) bool { return dnsMatch(p, d) })
		}) || slices.ContainsFunc(iss.URIs, func(u string) bool {
			return slices.ContainsFunc(c.URIPrefixes, func(p string) bool { return strings.HasPrefix(u, p) })
		}) || slices.ContainsFunc(iss.IPs, func(ip netip.Addr) bool {
			return slices.ContainsFunc(c.prefixes, func(p netip.Prefix) bool { return p.Contains(ip) })
		}) || slices.ContainsFunc(iss.Emails, func(e string) bool {
			return slices.ContainsFunc(c.Emails, func(p string) bool { return globMatch(strings.ToLower(p), strings.ToLower(e)) })
		})
		if !hit {
			return false
		}
	}
	for attr, pats := range c.Subject {
		if !slices.ContainsFunc(iss.Subject[attr], func(v string) bool {
			return slices.ContainsFunc(pats, func(p string) bool { return globMatch(p, v) })
		}) {
			return false
		}
	}
	return true
}

// dnsMatch matches a DNS name against a pattern, case-insensitively. A
// pattern "*.example.com" matches names below example.com at any depth
// (and the wildcard name *.example.com itself), never example.com.
func dnsMatch(pattern, name string) bool {
	pattern, name = strings.ToLower(strings.TrimSuffix(pattern, ".")), strings.ToLower(strings.TrimSuffix(name, "."))
	if suffix, ok := strings.CutPrefix(pattern, "*."); ok {
		return strings.HasSuffix(name, "."+suffix) && len(name) > len(suffix)+1
	}
	return name == pattern
}

// globMatch matches s against a pattern in which * stands for any run of
// characters (slashes too) and everything else is literal.
func globMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}
