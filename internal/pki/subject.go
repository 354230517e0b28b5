package pki

import (
	"crypto/x509/pkix"
	"strings"
	"unicode"
	"unicode/utf8"
)

// subjectAttr describes one attribute that ParseSubject accepts.
type subjectAttr struct {
	// max is the upper bound in characters from RFC 5280 Appendix A.1
	// (ub-common-name 64, ub-organization-name 64, ub-locality-name 128,
	// ub-postal-code 16, ...), which zlint's rfc lints enforce.
	max int
	// multi permits the attribute more than once.
	multi bool
	set   func(n *pkix.Name, v string)
}

var subjectAttrs = map[string]subjectAttr{
	"CN":           {64, false, func(n *pkix.Name, v string) { n.CommonName = v }},
	"O":            {64, true, func(n *pkix.Name, v string) { n.Organization = append(n.Organization, v) }},
	"OU":           {64, true, func(n *pkix.Name, v string) { n.OrganizationalUnit = append(n.OrganizationalUnit, v) }},
	"C":            {2, false, func(n *pkix.Name, v string) { n.Country = append(n.Country, v) }},
	"ST":           {128, false, func(n *pkix.Name, v string) { n.Province = append(n.Province, v) }},
	"L":            {128, false, func(n *pkix.Name, v string) { n.Locality = append(n.Locality, v) }},
	"STREET":       {128, false, func(n *pkix.Name, v string) { n.StreetAddress = append(n.StreetAddress, v) }},
	"POSTALCODE":   {16, false, func(n *pkix.Name, v string) { n.PostalCode = append(n.PostalCode, v) }},
	"SERIALNUMBER": {64, false, func(n *pkix.Name, v string) { n.SerialNumber = v }},
}

const subjectAttrNames = "CN, O, OU, C, ST, L, STREET, POSTALCODE, SERIALNUMBER"

// subjectEscapable are the characters a backslash may escape in a subject
// value: the separators of the RFC 4514 string form and the backslash,
// quote and space.
const subjectEscapable = `,+=\"<>;# `

// ParseSubject parses a distinguished name written like
// "CN=api,O=Acme,OU=Ops,C=US,ST=Oregon,L=Portland,SERIALNUMBER=42", a
// simplified RFC 4514 string. Attribute names are case-insensitive and
// limited to CN, O, OU, C, ST, L, STREET, POSTALCODE and SERIALNUMBER; O
// and OU may repeat, the others may not. Spaces around names and values are
// dropped; a backslash escapes ',', '+', '=', '\\' and a few other
// RFC 4514 specials. Multi-valued RDNs ('+') are not supported. C must be a
// two-letter ISO 3166 code and is upper-cased. Values must be non-empty
// UTF-8 without control characters and within the RFC 5280 upper bounds.
func ParseSubject(s string) (pkix.Name, error) {
	var name pkix.Name
	if strings.TrimSpace(s) == "" {
		return name, invalidf("subject is empty")
	}
	if strings.HasPrefix(strings.TrimSpace(s), "/") {
		return name, invalidf("subject %q: use the comma-separated form CN=x,O=y, not the /CN=x/O=y form", truncate(s))
	}
	if !utf8.ValidString(s) {
		return name, invalidf("subject %q is not valid UTF-8", truncate(s))
	}
	seen := map[string]bool{}
	var key, val strings.Builder
	inValue := false
	keep := 0 // length of val up to its last escaped or non-space byte
	finish := func() error {
		k := strings.ToUpper(strings.TrimSpace(key.String()))
		v := val.String()[:keep]
		key.Reset()
		val.Reset()
		keep = 0
		if !inValue {
			if k == "" {
				return invalidf("subject %q has an empty attribute (stray ',')", truncate(s))
			}
			return invalidf("subject %q: attribute %q has no '='", truncate(s), k)
		}
		inValue = false
		attr, ok := subjectAttrs[k]
		if !ok {
			if k == "" {
				return invalidf("subject %q has a value without an attribute name", truncate(s))
			}
			return invalidf("subject %q has unknown attribute %q (known: %s)", truncate(s), k, subjectAttrNames)
		}
		if seen[k] && !attr.multi {
			return invalidf("subject %q has attribute %s more than once", truncate(s), k)
		}
		seen[k] = true
		if v == "" {
			return invalidf("subject %q: attribute %s has an empty value", truncate(s), k)
		}
		for _, r := range v {
			if unicode.IsControl(r) {
				return invalidf("subject %q: attribute %s has a control character", truncate(s), k)
			}
		}
		if k == "C" {
			if len(v) != 2 || !isASCIILetter(v[0]) || !isASCIILetter(v[1]) {
				return invalidf("subject %q: country %q must be a two-letter ISO 3166 code such as US", truncate(s), v)
			}
			v = strings.ToUpper(v)
		}
		if n := utf8.RuneCountInString(v); n > attr.max {
			return invalidf("subject %q: attribute %s has %d characters (maximum %d)", truncate(s), k, n, attr.max)
		}
		attr.set(&name, v)
		return nil
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\':
			if i+1 == len(s) {
				return pkix.Name{}, invalidf("subject %q ends with a lone backslash", truncate(s))
			}
			i++
			if !inValue {
				return pkix.Name{}, invalidf("subject %q has a backslash in an attribute name", truncate(s))
			}
			if strings.IndexByte(subjectEscapable, s[i]) < 0 {
				return pkix.Name{}, invalidf("subject %q: backslash may only escape one of %s", truncate(s), subjectEscapable)
			}
			val.WriteByte(s[i])
			keep = val.Len()
		case ',':
			if err := finish(); err != nil {
				return pkix.Name{}, err
			}
		case '+':
			return pkix.Name{}, invalidf("subject %q has an unescaped '+': multi-valued RDNs are not supported (escape it as \\+)", truncate(s))
		case '=':
			if inValue {
				return pkix.Name{}, invalidf("subject %q has an unescaped '=' in a value (escape it as \\=)", truncate(s))
			}
			inValue = true
		default:
			if !inValue {
				key.WriteByte(c)
				continue
			}
			if c == ' ' && val.Len() == 0 {
				continue // leading space
			}
			val.WriteByte(c)
			if c != ' ' {
				keep = val.Len()
			}
		}
	}
	if err := finish(); err != nil {
		return pkix.Name{}, err
	}
	return name, nil
}

func isASCIILetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
