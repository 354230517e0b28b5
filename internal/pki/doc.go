// Package pki is the pure X.509 core of Trustgate's private CA: key types,
// certificate profiles, certificate templates, CSR checks, serial numbers,
// subject alternative name rules and a zlint wrapper that lints every
// certificate before a CA key signs it.
//
// The package follows RFC 5280 (the Internet X.509 PKI certificate profile)
// and, where a private CA can, the CA/Browser Forum Baseline Requirements that
// zlint checks. It performs no I/O except reading crypto/rand, keeps no
// state except a Linter's cache of lint verdicts by subject key, and
// imports nothing else from Trustgate: it is a leaf of the package graph so
// that the CA, the gateway and the agent can all share it.
//
// Every validation failure wraps [ErrInvalid] (size limits wrap
// [ErrTooLarge]) and carries a message that names the offending value and
// the rule it breaks, fit to show to an API client.
package pki
