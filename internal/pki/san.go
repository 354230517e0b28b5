package pki

import (
	"crypto/x509"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"golang.org/x/net/idna"
)

// Limits on names, from RFC 1035 section 2.3.4 (a name is at most 255
// octets on the wire, which is 253 characters written out without the root
// dot; a label is 1 to 63 octets) and RFC 5321 section 4.5.3.1 (a mailbox
// local part is at most 64 octets, an address at most 254).
const (
	maxDNSNameLen    = 253
	maxDNSLabelLen   = 63
	maxEmailLocalLen = 64
	maxEmailLen      = 254
	// maxURILen is a sanity cap; RFC 5280 sets no limit for URIs, but a
	// SAN longer than this is a mistake or an attack on the inventory.
	maxURILen = 2048
)

// SANs are the subject alternative names of a certificate
// (RFC 5280 section 4.2.1.6), validated and normalized by [ParseSANs].
// The zero value has no names.
type SANs struct {
	DNS   []string
	IP    []net.IP
	URI   []*url.URL
	Email []string
}

// Empty reports whether s holds no name at all.
func (s SANs) Empty() bool {
	return len(s.DNS) == 0 && len(s.IP) == 0 && len(s.URI) == 0 && len(s.Email) == 0
}

// Strings returns the names as typed strings for the certificate inventory
// and for logs: "dns:a.example", "ip:10.0.0.1", "uri:spiffe://td/x",
// "email:a@b.example", in that order of types. [ParseSANStrings] is its
// inverse.
func (s SANs) Strings() []string {
	out := make([]string, 0, len(s.DNS)+len(s.IP)+len(s.URI)+len(s.Email))
	for _, d := range s.DNS {
		out = append(out, "dns:"+d)
	}
	for _, ip := range s.IP {
		out = append(out, "ip:"+ip.String())
	}
	for _, u := range s.URI {
		out = append(out, "uri:"+u.String())
	}
	for _, e := range s.Email {
		out = append(out, "email:"+e)
	}
	return out
}

// SANsOf returns the subject alternative names of c, copied so that
// changing them does not change c. The names are returned as the
// certificate holds them, without validation.
func SANsOf(c *x509.Certificate) SANs {
	s := SANs{
		DNS:   slices.Clone(c.DNSNames),
		Email: slices.Clone(c.EmailAddresses),
	}
	for _, ip := range c.IPAddresses {
		s.IP = append(s.IP, slices.Clone(ip))
	}
	for _, u := range c.URIs {
		c := *u
		s.URI = append(s.URI, &c)
	}
	return s
}

// ParseSANStrings parses typed strings as produced by [SANs.Strings]
// ("dns:", "ip:", "uri:" or "email:" followed by the name) with the rules
// of [ParseSANs].
func ParseSANStrings(typed []string) (SANs, error) {
	var dns, ips, uris, emails []string
	for _, t := range typed {
		kind, name, ok := strings.Cut(t, ":")
		if !ok {
			return SANs{}, invalidf("SAN %q has no type prefix (want dns:, ip:, uri: or email:)", t)
		}
		switch kind {
		case "dns":
			dns = append(dns, name)
		case "ip":
			ips = append(ips, name)
		case "uri":
			uris = append(uris, name)
		case "email":
			emails = append(emails, name)
		default:
			return SANs{}, invalidf("SAN %q has unknown type %q (want dns, ip, uri or email)", t, kind)
		}
	}
	return ParseSANs(dns, ips, uris, emails)
}

// ParseSANs validates and normalizes subject alternative names. DNS names
// are lower-cased; IP addresses are stored in their shortest form (IPv4 in
// 4 bytes, IPv4-mapped IPv6 unmapped); duplicates after normalization are
// dropped, keeping the first. The error names the first offending value.
//
// DNS names (RFC 5280 section 4.2.1.6, which requires the "preferred name
// syntax" of RFC 1034 section 3.5 as modified by RFC 1123 section 2.1) are
// letters, digits and hyphens in dot-separated labels of 1 to 63
// characters not starting or ending with a hyphen, 253 characters at most,
// with no trailing dot. The left-most label may be the wildcard "*" when at
// least two labels follow (RFC 9525 section 6.3). Internationalized names
// must be given as A-labels ("xn--..."), which must decode (RFC 3492) to
// a U-label that golang.org/x/net/idna's IDNA2008 registration profile
// encodes back to the same A-label (RFC 5891 section 5.4); other labels with "--" in the third and fourth positions are
// reserved (RFC 5890 section 2.3.1). The right-most label must not be all
// digits (RFC 3696 section 2), so an IP address is not taken for a name.
//
// IP addresses are IPv4 or IPv6 without a zone and not unspecified.
//
// URIs must be absolute (RFC 5280: "MUST NOT be a relative reference"),
// use only characters allowed by RFC 3986, and, when they have an
// authority, name a host by DNS name or IP address. SPIFFE IDs
// ("spiffe://trust-domain/path") are checked against the SPIFFE ID
// specification. Email addresses belong in email SANs, so "mailto:" URIs
// are refused.
//
// Email addresses are plain RFC 5322 addr-specs with a dot-atom local part
// ("local@domain.example"; no display name, angle brackets, quoting or
// "mailto:"); the domain follows the DNS rules and is lower-cased.
func ParseSANs(dns, ip, uri, email []string) (SANs, error) {
	var s SANs
	for _, d := range dns {
		n, err := normalizeDNSName(d, true)
		if err != nil {
			return SANs{}, err
		}
		if !slices.Contains(s.DNS, n) {
			s.DNS = append(s.DNS, n)
		}
	}
	for _, a := range ip {
		addr, err := parseIP(a)
		if err != nil {
			return SANs{}, err
		}
		if !slices.ContainsFunc(s.IP, func(x net.IP) bool { return x.Equal(addr) }) {
			s.IP = append(s.IP, addr)
		}
	}
	for _, raw := range uri {
		u, err := parseURI(raw)
		if err != nil {
			return SANs{}, err
		}
		if !slices.ContainsFunc(s.URI, func(x *url.URL) bool { return x.String() == u.String() }) {
			s.URI = append(s.URI, u)
		}
	}
	for _, e := range email {
		n, err := normalizeEmail(e)
		if err != nil {
			return SANs{}, err
		}
		if !slices.Contains(s.Email, n) {
			s.Email = append(s.Email, n)
		}
	}
	return s, nil
}

// NormalizeDNSName validates a DNS name with the rules of [ParseSANs] and
// returns it lower-cased. allowWildcard permits a left-most "*" label.
func NormalizeDNSName(name string, allowWildcard bool) (string, error) {
	return normalizeDNSName(name, allowWildcard)
}

func normalizeDNSName(name string, allowWildcard bool) (string, error) {
	if name == "" {
		return "", invalidf("DNS name is empty")
	}
	if len(name) > maxDNSNameLen {
		return "", invalidf("DNS name %q is %d characters long (maximum %d)", truncate(name), len(name), maxDNSNameLen)
	}
	if strings.HasSuffix(name, ".") {
		return "", invalidf("DNS name %q has a trailing dot; give the name without it", name)
	}
	n := strings.ToLower(name)
	labels := strings.Split(n, ".")
	if labels[0] == "*" {
		if !allowWildcard {
			return "", invalidf("DNS name %q: a wildcard is not allowed here", name)
		}
		if len(labels) < 3 {
			return "", invalidf("DNS name %q: a wildcard needs at least two labels after it (like *.example.com)", name)
		}
	}
	for i, l := range labels {
		if i == 0 && l == "*" {
			continue
		}
		if err := checkLabel(name, l); err != nil {
			return "", err
		}
	}
	if isDigits(labels[len(labels)-1]) {
		return "", invalidf("DNS name %q has an all-numeric top-level label; put IP addresses in an IP SAN", name)
	}
	return n, nil
}

// checkLabel checks one lower-cased label of name (for messages).
func checkLabel(name, l string) error {
	switch {
	case l == "":
		return invalidf("DNS name %q has an empty label", name)
	case len(l) > maxDNSLabelLen:
		return invalidf("DNS name %q has a label of %d characters (maximum %d)", truncate(name), len(l), maxDNSLabelLen)
	case strings.Contains(l, "*"):
		return invalidf("DNS name %q: a wildcard may only be the whole left-most label", name)
	case l[0] == '-' || l[len(l)-1] == '-':
		return invalidf("DNS name %q has label %q that starts or ends with a hyphen", name, l)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			if c >= 0x80 {
				return invalidf("DNS name %q is not ASCII; give internationalized names as A-labels (xn--...)", name)
			}
			return invalidf("DNS name %q has invalid character %q (only letters, digits and hyphens)", name, c)
		}
	}
	if len(l) >= 4 && l[2:4] == "--" {
		if !strings.HasPrefix(l, "xn--") {
			return invalidf("DNS name %q has label %q with the reserved \"--\" in positions 3-4 (RFC 5890)", name, l)
		}
		// An A-label must decode to a U-label that encodes back to
		// exactly itself under IDNA2008 (RFC 5891 section 5.4).
		u, err := idna.Punycode.ToUnicode(l)
		if err == nil {
			var a string
			a, err = idna.Registration.ToASCII(u)
			if err == nil && a != l {
				err = errNotCanonical
			}
		}
		if err != nil {
			return invalidWrap(err, "DNS name %q has label %q that is not a valid IDNA A-label", name, l)
		}
	}
	return nil
}

type notCanonicalError struct{}

func (notCanonicalError) Error() string { return "not in canonical form" }

var errNotCanonical error = notCanonicalError{}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

func parseIP(s string) (net.IP, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return nil, invalidf("IP address %q is not a valid IPv4 or IPv6 address", s)
	}
	if a.Zone() != "" {
		return nil, invalidf("IP address %q has a zone, which a certificate cannot carry", s)
	}
	a = a.Unmap()
	if a.IsUnspecified() {
		return nil, invalidf("IP address %q is the unspecified address", s)
	}
	return net.IP(a.AsSlice()), nil
}

// uriChars are the characters RFC 3986 section 2 allows in a URI:
// unreserved, reserved (gen-delims and sub-delims) and '%'.
const uriChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~:/?#[]@!$&'()*+,;=%"

func parseURI(s string) (*url.URL, error) {
	if s == "" {
		return nil, invalidf("URI is empty")
	}
	if len(s) > maxURILen {
		return nil, invalidf("URI %q is %d characters long (maximum %d)", truncate(s), len(s), maxURILen)
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(uriChars, s[i]) < 0 {
			return nil, invalidf("URI %q has character %q that RFC 3986 does not allow (percent-encode it)", truncate(s), s[i])
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, invalidf("URI %q cannot be parsed", truncate(s))
	}
	if u.Scheme == "" {
		return nil, invalidf("URI %q is not absolute: it has no scheme", truncate(s))
	}
	if u.Scheme == "mailto" {
		return nil, invalidf("URI %q is an email address; put it in an email SAN without \"mailto:\"", truncate(s))
	}
	if u.Opaque == "" && u.Host == "" && u.Path == "" {
		return nil, invalidf("URI %q has no scheme-specific part", truncate(s))
	}
	if u.Opaque == "" && strings.HasPrefix(s[len(u.Scheme)+1:], "//") {
		// RFC 5280 section 4.2.1.6: a URI with an authority "MUST
		// include a fully qualified domain name or IP address as the host".
		h := u.Hostname()
		if h == "" {
			return nil, invalidf("URI %q has an authority without a host", truncate(s))
		}
		if a, err := netip.ParseAddr(h); err == nil {
			if a.Zone() != "" {
				return nil, invalidf("URI %q has an IP address host with a zone", truncate(s))
			}
		} else {
			if _, err := normalizeDNSName(h, false); err != nil {
				return nil, invalidf("URI %q has host %q that is neither a DNS name nor an IP address", truncate(s), h)
			}
		}
	}
	if u.Scheme == "spiffe" {
		if err := checkSPIFFEID(s, u); err != nil {
			return nil, err
		}
	}
	// The certificate carries u.String(); insist that it is stable, so
	// that what the operator typed is what the inventory shows.
	if again, err := url.Parse(u.String()); err != nil || again.String() != u.String() {
		return nil, invalidf("URI %q does not have a canonical form", truncate(s))
	}
	return u, nil
}

// checkSPIFFEID applies the SPIFFE ID rules (SPIFFE-ID specification
// section 2): a lower-case trust domain of letters, digits, '.', '-' and
// '_', no user info or port, no query or fragment, and a path of non-empty
// segments other than "." and "..".
func checkSPIFFEID(s string, u *url.URL) error {
	fail := func(why string) error { return invalidf("SPIFFE ID %q %s", truncate(s), why) }
	if !strings.HasPrefix(s, "spiffe://") {
		return fail(`must start with "spiffe://"`)
	}
	if u.User != nil || u.Port() != "" || strings.HasSuffix(u.Host, ":") {
		return fail("must not have user info or a port")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(s, "?#") {
		return fail("must not have a query or fragment")
	}
	td := u.Host
	if td == "" {
		return fail("has no trust domain")
	}
	for i := 0; i < len(td); i++ {
		c := td[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fail("has a trust domain with characters other than lower-case letters, digits, '.', '-' and '_'")
		}
	}
	if u.Path == "" {
		return nil
	}
	if strings.Contains(u.EscapedPath(), "%") {
		return fail("must not have percent-encoded characters in its path")
	}
	for _, seg := range strings.Split(u.Path, "/")[1:] {
		if seg == "" || seg == "." || seg == ".." {
			return fail(`has an empty, "." or ".." path segment`)
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
				return fail("has a path with characters other than letters, digits, '.', '-' and '_'")
			}
		}
	}
	return nil
}

// atext is the RFC 5322 section 3.2.3 set of characters of a dot-atom.
const atext = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~"

func normalizeEmail(s string) (string, error) {
	if s == "" {
		return "", invalidf("email address is empty")
	}
	if len(s) > maxEmailLen {
		return "", invalidf("email address %q is %d characters long (maximum %d)", truncate(s), len(s), maxEmailLen)
	}
	if strings.HasPrefix(strings.ToLower(s), "mailto:") {
		return "", invalidf("email address %q: give the bare address without \"mailto:\"", s)
	}
	if strings.ContainsAny(s, "<> \t\"") {
		return "", invalidf("email address %q must be a bare addr-spec (local@domain), without a display name, brackets or quotes", s)
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return "", invalidf("email address %q has no '@'", s)
	}
	local, domain := s[:at], s[at+1:]
	if local == "" || len(local) > maxEmailLocalLen {
		return "", invalidf("email address %q has a local part of %d characters (want 1 to %d)", s, len(local), maxEmailLocalLen)
	}
	for _, atom := range strings.Split(local, ".") {
		if atom == "" {
			return "", invalidf("email address %q has an empty dot-separated part before the '@'", s)
		}
		for i := 0; i < len(atom); i++ {
			if strings.IndexByte(atext, atom[i]) < 0 {
				return "", invalidf("email address %q has character %q in its local part that needs quoting, which is not supported", s, atom[i])
			}
		}
	}
	d, err := normalizeDNSName(domain, false)
	if err != nil {
		return "", invalidWrap(err, "email address %q has an invalid domain", s)
	}
	return local + "@" + d, nil
}
