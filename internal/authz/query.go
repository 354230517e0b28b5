package authz

import (
	"net/netip"
	"time"
)

// Query is one authorization question: may Principal take Action on
// Resource (with, for issuance, the facts of the certificate asked for)?
type Query struct {
	Principal string
	Action    string // e.g. "cert:Issue"
	Resource  string // e.g. "ca/issuing"; "*" for a whole collection
	// Issuance is set for actions that mint credentials (cert:Issue,
	// token:Create); policy conditions are judged against it.
	Issuance *Issuance
}

// Issuance holds the facts of a certificate request that policy
// conditions restrict.
type Issuance struct {
	Profile string
	DNS     []string
	URIs    []string
	IPs     []netip.Addr
	Emails  []string
	// Subject holds the subject's attributes by short name (CN, O, OU, C, L, ST).
	Subject  map[string][]string
	KeyType  string        // e.g. "ec-p256"; "" when not known yet
	Validity time.Duration // requested lifetime; 0 when the profile's default applies
}
