package pki

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
)

// NameConstraints are the X.509 name constraints (RFC 5280 section
// 4.2.1.10) a CA certificate carries, critical, to confine every
// certificate below it. An empty permitted list leaves that kind of name
// unconstrained; excluded subtrees always apply.
type NameConstraints struct {
	PermittedDNS, ExcludedDNS     []string     // "example.com" covers it and every name below it
	PermittedIP, ExcludedIP       []*net.IPNet // CIDR ranges
	PermittedURI, ExcludedURI     []string     // hosts: "example.com" exactly, ".example.com" any host below it
	PermittedEmail, ExcludedEmail []string     // "a@example.com", "example.com" (any mailbox there), ".example.com"
}

// NameConstraintsInput is NameConstraints as text, as a request carries it.
type NameConstraintsInput struct {
	PermittedDNS, ExcludedDNS     []string
	PermittedIP, ExcludedIP       []string
	PermittedURI, ExcludedURI     []string
	PermittedEmail, ExcludedEmail []string
}

// Empty reports whether in names no subtree.
func (in NameConstraintsInput) Empty() bool {
	return len(in.PermittedDNS)+len(in.ExcludedDNS)+len(in.PermittedIP)+len(in.ExcludedIP)+
		len(in.PermittedURI)+len(in.ExcludedURI)+len(in.PermittedEmail)+len(in.ExcludedEmail) == 0
}

// ParseNameConstraints validates the subtrees of in.
func ParseNameConstraints(in NameConstraintsInput) (*NameConstraints, error) {
	if in.Empty() {
		return nil, nil
	}
	nc := &NameConstraints{}
	var err error
	if nc.PermittedDNS, err = domains("permitted DNS", in.PermittedDNS, false); err != nil {
		return nil, err
	}
	if nc.ExcludedDNS, err = domains("excluded DNS", in.ExcludedDNS, false); err != nil {
		return nil, err
	}
	if nc.PermittedURI, err = domains("permitted URI", in.PermittedURI, true); err != nil {
		return nil, err
	}
	if nc.ExcludedURI, err = domains("excluded URI", in.ExcludedURI, true); err != nil {
		return nil, err
	}
	if nc.PermittedEmail, err = mailboxes("permitted email", in.PermittedEmail); err != nil {
		return nil, err
	}
	if nc.ExcludedEmail, err = mailboxes("excluded email", in.ExcludedEmail); err != nil {
		return nil, err
	}
	if nc.PermittedIP, err = ranges("permitted IP", in.PermittedIP); err != nil {
		return nil, err
	}
	if nc.ExcludedIP, err = ranges("excluded IP", in.ExcludedIP); err != nil {
		return nil, err
	}
	return nc, nil
}

func domains(what string, in []string, leadingDot bool) ([]string, error) {
	var out []string
	for _, d := range in {
		name := strings.ToLower(strings.TrimSpace(d))
		if name == "" {
			return nil, invalidf("%s subtree is empty", what)
		}
		check := name
		if leadingDot {
			check = strings.TrimPrefix(name, ".")
		}
		if _, err := normalizeDNSName(check, false); err != nil {
			return nil, invalidf("%s subtree %q is not a domain name", what, d)
		}
		out = append(out, name)
	}
	return out, nil
}

func mailboxes(what string, in []string) ([]string, error) {
	var out []string
	for _, m := range in {
		m = strings.TrimSpace(m)
		local, domain, hasAt := strings.Cut(m, "@")
		if hasAt && (local == "" || strings.ContainsAny(local, " @")) {
			return nil, invalidf("%s subtree %q is not a mailbox or domain", what, m)
		}
		if !hasAt {
			domain = m
		}
		if _, err := normalizeDNSName(strings.TrimPrefix(domain, "."), false); err != nil {
			return nil, invalidf("%s subtree %q is not a mailbox or domain", what, m)
		}
		out = append(out, m)
	}
	return out, nil
}

func ranges(what string, in []string) ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, r := range in {
		_, n, err := net.ParseCIDR(strings.TrimSpace(r))
		if err != nil {
			return nil, invalidf("%s subtree %q is not a CIDR range", what, r)
		}
		out = append(out, n)
	}
	return out, nil
}

// apply writes nc into a CA template, marked critical as RFC 5280 and the
// CA/B Forum require.
func (nc *NameConstraints) apply(t *x509.Certificate) {
	if nc == nil {
		return
	}
	t.PermittedDNSDomainsCritical = true
	t.PermittedDNSDomains, t.ExcludedDNSDomains = nc.PermittedDNS, nc.ExcludedDNS
	t.PermittedIPRanges, t.ExcludedIPRanges = nc.PermittedIP, nc.ExcludedIP
	t.PermittedURIDomains, t.ExcludedURIDomains = nc.PermittedURI, nc.ExcludedURI
	t.PermittedEmailAddresses, t.ExcludedEmailAddresses = nc.PermittedEmail, nc.ExcludedEmail
}

// CheckNameConstraints refuses names that a CA certificate of the chain
// (the issuer first, then its parents) does not permit or excludes, with
// the semantics relying parties apply (RFC 5280 section 4.2.1.10), so that
// no certificate is issued that its own chain would make invalid. A
// subject CN that reads as a host name is held to the DNS constraints as
// well, as OpenSSL does when it verifies.
func CheckNameConstraints(chain []*x509.Certificate, sans SANs, cn string) error {
	dnsNames := sans.DNS
	if cn != "" {
		if _, err := normalizeDNSName(cn, false); err == nil {
			dnsNames = append(slices.Clone(sans.DNS), cn)
		}
	}
	for _, ca := range chain {
		for _, d := range dnsNames {
			if !allowed(ca.PermittedDNSDomains, ca.ExcludedDNSDomains, func(c string) bool { return dnsWithin(d, c) }) {
				return invalidf("DNS name %q is outside the name constraints of CA %q", d, ca.Subject.CommonName)
			}
		}
		for _, ip := range sans.IP {
			in := func(n *net.IPNet) bool { return n.Contains(ip) && len(n.IP) == len(normIP(ip)) }
			if !allowedNets(ca.PermittedIPRanges, ca.ExcludedIPRanges, in) {
				return invalidf("IP address %s is outside the name constraints of CA %q", ip, ca.Subject.CommonName)
			}
		}
		for _, u := range sans.URI {
			host := uriHost(u)
			if !allowed(ca.PermittedURIDomains, ca.ExcludedURIDomains, func(c string) bool { return host != "" && hostWithin(host, c) }) {
				return invalidf("URI %q is outside the name constraints of CA %q", u.String(), ca.Subject.CommonName)
			}
		}
		for _, e := range sans.Email {
			if !allowed(ca.PermittedEmailAddresses, ca.ExcludedEmailAddresses, func(c string) bool { return emailWithin(e, c) }) {
				return invalidf("email %q is outside the name constraints of CA %q", e, ca.Subject.CommonName)
			}
		}
	}
	return nil
}

func allowed(permitted, excluded []string, within func(string) bool) bool {
	for _, c := range excluded {
		if within(c) {
			return false
		}
	}
	if len(permitted) == 0 {
		return true
	}
	for _, c := range permitted {
		if within(c) {
			return true
		}
	}
	return false
}

func allowedNets(permitted, excluded []*net.IPNet, in func(*net.IPNet) bool) bool {
	for _, n := range excluded {
		if in(n) {
			return false
		}
	}
	if len(permitted) == 0 {
		return true
	}
	for _, n := range permitted {
		if in(n) {
			return true
		}
	}
	return false
}

// normIP gives an IPv4 address its 4-byte form, so that its length says
// which family a range must be of.
func normIP(ip net.IP) net.IP {
	if v4 := ip.To4(); v4 != nil {
		return v4
	}
	return ip
}

// dnsWithin: a DNS constraint covers the name itself and every name below
// it; a leading dot covers only names below it.
func dnsWithin(name, constraint string) bool {
	name, constraint = strings.ToLower(strings.TrimSuffix(name, ".")), strings.ToLower(constraint)
	if constraint == "" {
		return true
	}
	if strings.HasPrefix(constraint, ".") {
		return strings.HasSuffix(name, constraint)
	}
	return name == constraint || strings.HasSuffix(name, "."+constraint)
}

// hostWithin: a URI constraint "example.com" covers that host only, and
// ".example.com" every host below it (RFC 5280).
func hostWithin(host, constraint string) bool {
	host, constraint = strings.ToLower(host), strings.ToLower(constraint)
	if strings.HasPrefix(constraint, ".") {
		return strings.HasSuffix(host, constraint)
	}
	return host == constraint
}

func uriHost(u *url.URL) string {
	h := u.Hostname()
	if net.ParseIP(h) != nil {
		return "" // RFC 5280: an IP address host never matches a URI constraint
	}
	return h
}

// emailWithin: "a@example.com" is that mailbox, "example.com" any mailbox
// at that host, ".example.com" any mailbox at a host below it.
func emailWithin(addr, constraint string) bool {
	local, domain, ok := strings.Cut(addr, "@")
	if !ok {
		return false
	}
	if strings.Contains(constraint, "@") {
		cl, cd, _ := strings.Cut(constraint, "@")
		return local == cl && strings.EqualFold(domain, cd)
	}
	if strings.HasPrefix(constraint, ".") {
		return strings.HasSuffix(strings.ToLower(domain), strings.ToLower(constraint))
	}
	return strings.EqualFold(domain, constraint)
}

// String describes nc for logs and views.
func (nc *NameConstraints) String() string {
	if nc == nil {
		return ""
	}
	return fmt.Sprintf("permitted dns=%v ip=%v uri=%v email=%v; excluded dns=%v ip=%v uri=%v email=%v",
		nc.PermittedDNS, nc.PermittedIP, nc.PermittedURI, nc.PermittedEmail, nc.ExcludedDNS, nc.ExcludedIP, nc.ExcludedURI, nc.ExcludedEmail)
}
