package gateway

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net/http"
	"strings"
	"sync"
)

// The identity headers sent to backends. The X-Amzn-Mtls-* names and
// encodings are those of AWS ALB's mutual TLS, so that backends written for
// ALB work unchanged; X-Forwarded-Client-Cert is Envoy's.
const (
	HeaderClientCert   = "X-Amzn-Mtls-Clientcert"               // passthrough: the whole chain
	HeaderSerialNumber = "X-Amzn-Mtls-Clientcert-Serial-Number" // verify: the leaf's serial
	HeaderIssuer       = "X-Amzn-Mtls-Clientcert-Issuer"
	HeaderSubject      = "X-Amzn-Mtls-Clientcert-Subject"
	HeaderValidity     = "X-Amzn-Mtls-Clientcert-Validity"
	HeaderLeaf         = "X-Amzn-Mtls-Clientcert-Leaf"
	HeaderXFCC         = "X-Forwarded-Client-Cert"
)

// isIdentityHeader reports whether a request header must be removed before
// forwarding because only the gateway may set it: every X-Amzn-Mtls-*,
// X-Forwarded-Client-Cert, and the underscore spellings of those and of
// X-Forwarded-For/-Proto/-Host, which CGI-style backends (and nginx with
// underscores_in_headers) read as the dashed names.
//
// It runs on every header of every request, so the common case (a name
// that is none of these) is decided without lower-casing a copy.
func isIdentityHeader(name string) bool {
	if strings.IndexByte(name, '_') < 0 {
		return hasPrefixFold(name, "x-amzn-mtls-") || strings.EqualFold(name, "x-amzn-mtls-clientcert") ||
			strings.EqualFold(name, "x-forwarded-client-cert")
	}
	n := strings.ReplaceAll(strings.ToLower(name), "_", "-")
	switch n {
	case "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host":
		return true
	}
	return strings.HasPrefix(n, "x-amzn-mtls-") || n == "x-amzn-mtls-clientcert" || n == "x-forwarded-client-cert"
}

// hasPrefixFold reports whether s begins with prefix, ASCII case folded.
func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// stripIdentityHeaders removes every header that isIdentityHeader names.
func stripIdentityHeaders(h http.Header) {
	for k := range h {
		if isIdentityHeader(k) {
			delete(h, k)
		}
	}
}

// unreserved are the characters RFC 3986 §2.3 never escapes.
func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// percentEncode escapes every byte but the unreserved ones and those in safe.
func percentEncode(b []byte, safe string) string {
	var sb strings.Builder
	sb.Grow(len(b) + len(b)/8)
	for _, c := range b {
		if unreserved(c) || strings.IndexByte(safe, c) >= 0 {
			sb.WriteByte(c)
			continue
		}
		sb.WriteByte('%')
		sb.WriteByte(hexDigits[c>>4])
		sb.WriteByte(hexDigits[c&0xf])
	}
	return sb.String()
}

// albEscape is ALB's URL encoding of a PEM: "URL-encoded PEM format ...
// with +=/ as safe characters" (so a space is %20 and a newline %0A, while
// '+', '=' and '/' of the base64 stay as they are). Backends must decode it
// as a percent-encoded string, not as a form value, which would turn '+'
// into a space; X-Forwarded-Client-Cert escapes '+' for that reason.
func albEscape(pemBytes []byte) string { return percentEncode(pemBytes, "+=/") }

// strictEscape percent-encodes every byte but the unreserved ones, so that
// any URL or form decoder reads the same bytes back.
func strictEscape(b []byte) string { return percentEncode(b, "") }

// pemChain encodes certificates as concatenated PEM blocks, in order.
func pemChain(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// serialHex writes a serial number as ALB does: upper-case hex of its
// big-endian bytes, two digits a byte ("0A" for 10), no separators.
func serialHex(n *big.Int) string {
	if n == nil {
		return ""
	}
	b := n.Bytes()
	if len(b) == 0 {
		b = []byte{0}
	}
	s := strings.ToUpper(hex.EncodeToString(b))
	if n.Sign() < 0 {
		return "-" + s
	}
	return s
}

// validityFormat is ALB's ISO 8601 form, in UTC to the second.
const validityFormat = "2006-01-02T15:04:05Z"

// validityString is "NotBefore=2023-09-21T01:50:17Z;NotAfter=2024-09-20T01:50:17Z".
func validityString(c *x509.Certificate) string {
	return "NotBefore=" + c.NotBefore.UTC().Format(validityFormat) + ";NotAfter=" + c.NotAfter.UTC().Format(validityFormat)
}

// xfccQuote writes v as an XFCC quoted value: double quotes around, '\'
// and '"' escaped with '\', and control characters (which a header value
// cannot carry) percent-encoded together with '%'.
func xfccQuote(b *strings.Builder, v string) {
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f || c == '%':
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xf])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}

// xfccElement builds one X-Forwarded-Client-Cert element for a verified
// leaf, in Envoy's format: Hash (hex SHA-256 of the DER), Cert (the
// URL-encoded PEM), Subject (RFC 2253), then one URI and one DNS pair per
// SAN. Every value but the hex hash is quoted, and the PEM escapes '+',
// '=' and '/' too, so neither ',', ';', '=', '"' in a name nor '+' in the
// base64 can confuse a parser.
func xfccElement(leaf *x509.Certificate, subject string) string {
	sum := sha256.Sum256(leaf.Raw)
	uris := make([]string, len(leaf.URIs))
	for i, u := range leaf.URIs {
		uris[i] = u.String()
	}
	return xfccFormat(hex.EncodeToString(sum[:]), pemChain([]*x509.Certificate{leaf}), subject, uris, leaf.DNSNames)
}

func xfccFormat(hash string, certPEM []byte, subject string, uris, dns []string) string {
	var b strings.Builder
	b.WriteString("Hash=")
	b.WriteString(hash)
	b.WriteString(`;Cert="`)
	b.WriteString(strictEscape(certPEM))
	b.WriteString(`";Subject=`)
	xfccQuote(&b, subject)
	for _, u := range uris {
		b.WriteString(";URI=")
		xfccQuote(&b, u)
	}
	for _, d := range dns {
		b.WriteString(";DNS=")
		xfccQuote(&b, d)
	}
	return b.String()
}

// identity is what the gateway knows of a connection's client certificate,
// computed once per connection, for the headers, the route rules and the logs.
type identity struct {
	leaf            *x509.Certificate
	subject, issuer string // RFC 2253
	serial          string // upper-case hex
	validity        string
	headers         [][2]string
}

// newIdentity computes the identity and the headers of a connection.
// chain is the verified path (verify mode) or the presented chain
// (passthrough mode); headers is the listener's header set.
func newIdentity(mode string, chain []*x509.Certificate, headers string) *identity {
	if len(chain) == 0 {
		return nil
	}
	leaf := chain[0]
	id := &identity{
		leaf:     leaf,
		subject:  formatDN(leaf.RawSubject),
		issuer:   formatDN(leaf.RawIssuer),
		serial:   serialHex(leaf.SerialNumber),
		validity: validityString(leaf),
	}
	switch mode {
	case "passthrough":
		id.headers = [][2]string{{HeaderClientCert, albEscape(pemChain(chain))}}
	case "verify":
		if headers == "alb" || headers == "both" {
			id.headers = append(id.headers,
				[2]string{HeaderSerialNumber, id.serial},
				[2]string{HeaderIssuer, id.issuer},
				[2]string{HeaderSubject, id.subject},
				[2]string{HeaderValidity, id.validity},
				[2]string{HeaderLeaf, albEscape(pemChain(chain[:1]))},
			)
		}
		if headers == "xfcc" || headers == "both" {
			id.headers = append(id.headers, [2]string{HeaderXFCC, xfccElement(leaf, id.subject)})
		}
	}
	return id
}

// leafFields are the leaf's fields for the connection log.
func leafFields(c *x509.Certificate) (subject, issuer, serial, validity string) {
	if c == nil {
		return "", "", "", ""
	}
	return formatDN(c.RawSubject), formatDN(c.RawIssuer), serialHex(c.SerialNumber), validityString(c)
}

// identityCache keeps the identities of the client certificates seen
// lately, so that a client that connects again (or clients sharing a
// certificate) does not cost the DN strings and the PEM encodings of its
// headers on every handshake. An identity is only what the certificates
// say; whether they are accepted is decided by every handshake anew.
type identityCache struct {
	mu  sync.Mutex
	m   map[string]*identity
	buf []byte // the key being looked up, under mu
}

// identityCacheMax bounds the cache; when full it starts over. An
// identity is a few KB (its headers), so the cache stays under a few MB.
const identityCacheMax = 1024

// get returns the identity of chain for a listener's mode and header set,
// from the cache or computed (newIdentity).
func (c *identityCache) get(mode string, chain []*x509.Certificate, headers string) *identity {
	if len(chain) == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// verify mode's headers come from the leaf alone; passthrough's from
	// the whole chain the client presented.
	key := append(c.buf[:0], mode...)
	key = append(key, 0)
	key = append(key, headers...)
	for i, cert := range chain {
		if i > 0 && mode != "passthrough" {
			break
		}
		key = append(key, 0)
		key = append(key, cert.Raw...)
	}
	c.buf = key
	if id, ok := c.m[string(key)]; ok {
		return id
	}
	id := newIdentity(mode, chain, headers)
	if c.m == nil || len(c.m) >= identityCacheMax {
		c.m = make(map[string]*identity)
	}
	c.m[string(key)] = id
	return id
}
