package gateway

import (
	"encoding/asn1"
	"encoding/hex"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// attributeNames are the short names of RFC 4514 §3 (plus SERIALNUMBER and
// POSTALCODE, as crypto/x509/pkix writes them); other types are written as
// a dotted OID with a hex value.
var attributeNames = map[string]string{
	"2.5.4.3":                    "CN",
	"2.5.4.5":                    "SERIALNUMBER",
	"2.5.4.6":                    "C",
	"2.5.4.7":                    "L",
	"2.5.4.8":                    "ST",
	"2.5.4.9":                    "STREET",
	"2.5.4.10":                   "O",
	"2.5.4.11":                   "OU",
	"2.5.4.17":                   "POSTALCODE",
	"0.9.2342.19200300.100.1.1":  "UID",
	"0.9.2342.19200300.100.1.25": "DC",
}

type rawATV struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue
}

// rawRDNSET is a RelativeDistinguishedName: encoding/asn1 reads a slice
// type whose name ends in SET as a SET OF.
type rawRDNSET []rawATV

// formatDN writes a DER Name (a certificate's RawSubject or RawIssuer) as
// an RFC 2253 / RFC 4514 string: the RDNs from last to first, joined by
// ',', multi-valued RDNs joined by '+'. Beyond RFC 4514's required escapes
// it escapes every control character and every byte of invalid UTF-8 as
// \XX, so the result is always a valid, unambiguous HTTP header value.
func formatDN(der []byte) string {
	var rdns []rawRDNSET
	rest, err := asn1.Unmarshal(der, &rdns)
	if err != nil || len(rest) > 0 {
		// Not a Name: show the DER, which still identifies it exactly.
		return "#" + hex.EncodeToString(der)
	}
	var b strings.Builder
	for i := len(rdns) - 1; i >= 0; i-- {
		if i != len(rdns)-1 {
			b.WriteByte(',')
		}
		for j, atv := range rdns[i] {
			if j > 0 {
				b.WriteByte('+')
			}
			oid := atv.Type.String()
			name, known := attributeNames[oid]
			s, isString := attributeString(atv.Value)
			if !known || !isString {
				// RFC 4514 §2.4: a value of an unknown type or encoding is
				// '#' and the hex of its BER encoding.
				if !known {
					name = oid
				}
				b.WriteString(name)
				b.WriteString("=#")
				b.WriteString(hex.EncodeToString(atv.Value.FullBytes))
				continue
			}
			b.WriteString(name)
			b.WriteByte('=')
			escapeDNValue(&b, s)
		}
	}
	return b.String()
}

// attributeString decodes the directory string types of X.520.
func attributeString(v asn1.RawValue) (string, bool) {
	if v.Class != asn1.ClassUniversal {
		return "", false
	}
	switch v.Tag {
	case asn1.TagUTF8String, asn1.TagPrintableString, asn1.TagIA5String, asn1.TagNumericString:
		return string(v.Bytes), true
	case asn1.TagT61String:
		// Treated as Latin-1, as most software does.
		r := make([]rune, len(v.Bytes))
		for i, c := range v.Bytes {
			r[i] = rune(c)
		}
		return string(r), true
	case asn1.TagBMPString:
		if len(v.Bytes)%2 != 0 {
			return "", false
		}
		u := make([]uint16, len(v.Bytes)/2)
		for i := range u {
			u[i] = uint16(v.Bytes[2*i])<<8 | uint16(v.Bytes[2*i+1])
		}
		return string(utf16.Decode(u)), true
	case 28: // UniversalString, UTF-32BE
		if len(v.Bytes)%4 != 0 {
			return "", false
		}
		r := make([]rune, len(v.Bytes)/4)
		for i := range r {
			b := v.Bytes[4*i:]
			r[i] = rune(uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]))
		}
		return string(r), true
	}
	return "", false
}

const hexDigits = "0123456789ABCDEF"

// escapeDNValue writes s escaped per RFC 4514 §2.4, and control characters
// and invalid UTF-8 as \XX.
func escapeDNValue(b *strings.Builder, s string) {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		c := s[i]
		switch {
		case r == utf8.RuneError && size <= 1, c < 0x20, c == 0x7f:
			b.WriteByte('\\')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xf])
			i++
			continue
		case c == '"' || c == '+' || c == ',' || c == ';' || c == '<' || c == '>' || c == '\\',
			c == '#' && i == 0,
			c == ' ' && (i == 0 || i == len(s)-1):
			b.WriteByte('\\')
			b.WriteByte(c)
			i++
			continue
		}
		b.WriteString(s[i : i+size])
		i += size
	}
}
