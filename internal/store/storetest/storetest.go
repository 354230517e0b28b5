// Package storetest is the conformance suite of store.Store, in the manner of
// SPIRE's datastore sqltest: every backend runs the same Run against a real
// database, so that they cannot drift apart.
//
// Beyond the doc comments of store.Store, the suite pins down what callers
// may rely on:
//
//   - Times come back in UTC, equal to what was stored to at least the
//     microsecond (the suite's times have microsecond precision so that
//     PostgreSQL's timestamptz passes), including the zero time.Time and
//     9999-12-31T23:59:59Z (RFC 5280's "no well-defined expiration").
//   - A nil []byte comes back nil and an empty one empty, for every blob of CA
//     and Certificate. Empty and nil SAN lists are not told apart.
//   - A CA's ParentID and a Certificate's CAID, when not "", must name an
//     existing CA; otherwise the write is an error wrapping store.ErrNotFound.
//   - CertFilter.SANContains is a literal, case-sensitive substring of one SAN;
//     '%', '_', quotes and backslashes have no special meaning.
//   - CertFilter.Limit <= 0 means DefaultListLimit.
//   - A method called with an already cancelled context fails with an error
//     wrapping context.Canceled and writes nothing.
//   - GetCertificateByCA, RevokeCertificate and ReleaseHold find only
//     certificates recorded under that CA: imports (CAID "") are never found.
//     A missing certificate is ErrNotFound with a nil record; a refused
//     transition is ErrConflict with the record as stored. A certificate
//     inserted already revoked behaves as one revoked through the store.
//   - ListRevoked lists certificates on hold too; expiresAfter is strict
//     (NotAfter == expiresAfter is left out); an unknown CA, or a partition
//     the CA does not have, lists nothing without an error; the order of the
//     walk is not specified; fn's error comes back as is or wrapped.
//   - NextCRLNumber starts each (CA, partition) at 1 and counts up by one per
//     call, concurrent calls included; a CA that does not exist is ErrNotFound.
//   - ReadCRL lists what ListRevoked lists and then takes the number that
//     NextCRLNumber would, from the same sequence, only when keep says so.
//     Between concurrent callers, a higher number of a sequence lists every
//     certificate a lower one listed (when none was released or expired);
//     a call may fail with ErrConflict, using up nothing, for the caller to
//     read again.
//   - Trust-store members come back in the order they were added (a member
//     removed and added again goes last); nil and empty member lists are
//     not told apart, but a URL source's nil DER stays nil. A CRL source ID
//     is unique across stores; CA references, fingerprints and CRL keys are
//     unique within one. Of concurrent ChangeTrustStore calls from one
//     version exactly one succeeds; the others get ErrConflict.
//   - A lease has one holder at a time among the holders of one store;
//     Release frees it at once and closes Lost; a held lease is not lost
//     while the database stays reachable.
//   - A change published reaches every subscriber of the store that
//     listens; a subscriber's first call of fn is fn(""), once it listens;
//     SubscribeChanges returns nil once its context ends.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/store"
)

// DefaultListLimit is how many certificates ListCertificates returns when
// CertFilter.Limit is zero.
const DefaultListLimit = 100

// Run runs the conformance suite against the stores that open returns. open
// must return a new, empty store each time it is called, and arrange with
// t.Cleanup for it to be closed and removed. Subtests run in parallel, so open
// is called from several goroutines at once.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	groups := []struct {
		name  string
		cases []testCase
	}{
		{"CA", caCases()},
		{"Certificate", certCases()},
		{"ListCertificates", listCases()},
		{"Revocation", revokeCases()},
		{"CRL", crlCases()},
		{"ReadCRL", readCRLCases()},
		{"Token", tokenCases()},
		{"Meta", metaCases()},
		{"TrustStore", trustStoreCases()},
		{"Access", accessCases()},
		{"Maintenance", maintenanceCases()},
		{"Lifecycle", lifecycleCases()},
		{"Renewal", renewalCases()},
		{"Context", contextCases()},
		{"Lease", leaseCases()},
		{"Changes", changeCases()},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range g.cases {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.run(t, open(t))
				})
			}
		})
	}
}

// testCase is one named check, given a fresh store.
type testCase struct {
	name string
	run  func(t *testing.T, s store.Store)
}

// t0 is the suite's reference instant: microsecond precision, UTC.
var t0 = time.Date(2026, time.March, 14, 15, 9, 26, 535897000, time.UTC)

// farFuture is RFC 5280's notAfter for "no well-defined expiration date".
var farFuture = time.Date(9999, time.December, 31, 23, 59, 59, 0, time.UTC)

// ctx returns a context that ends with the test.
func ctx(t *testing.T) context.Context {
	t.Helper()
	return t.Context()
}

// must fails the test now if err is not nil.
func must(t *testing.T, err error, format string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(format, args...), err)
	}
}

// wantErr fails the test unless err wraps target.
func wantErr(t *testing.T, err, target error, format string, args ...any) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want one wrapping %v", fmt.Sprintf(format, args...), err, target)
	}
}

// checkEqual reports every field of the structs *want and *got that differs.
// Times must be equal as values (so in UTC without a monotonic reading),
// blobs equal including nil versus empty; SAN lists of length 0 are equal.
func checkEqual[T any](t *testing.T, what string, want, got *T) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: got nil", what)
		return
	}
	for _, d := range diff(reflect.ValueOf(want).Elem(), reflect.ValueOf(got).Elem()) {
		t.Errorf("%s: %s", what, d)
	}
}

// diff lists the fields in which two struct values differ.
func diff(want, got reflect.Value) []string {
	var out []string
	typ := want.Type()
	for i := range typ.NumField() {
		name := typ.Field(i).Name
		w, g := want.Field(i).Interface(), got.Field(i).Interface()
		switch w := w.(type) {
		case []byte:
			g := g.([]byte)
			if (w == nil) != (g == nil) || !bytes.Equal(w, g) {
				out = append(out, fmt.Sprintf("%s: want %s, got %s", name, showBytes(w), showBytes(g)))
			}
		case []string:
			if g := g.([]string); len(w) != 0 || len(g) != 0 {
				if !reflect.DeepEqual(w, g) {
					out = append(out, fmt.Sprintf("%s: want %q, got %q", name, w, g))
				}
			}
		case time.Time:
			g := g.(time.Time)
			if w != g {
				out = append(out, fmt.Sprintf("%s: want %s (%v), got %s (%v)",
					name, w.Format(time.RFC3339Nano), w.Location(), g.Format(time.RFC3339Nano), g.Location()))
			}
		default:
			if !reflect.DeepEqual(w, g) {
				out = append(out, fmt.Sprintf("%s: want %#v, got %#v", name, w, g))
			}
		}
	}
	return out
}

// showBytes prints a blob so that nil and empty differ.
func showBytes(b []byte) string {
	switch {
	case b == nil:
		return "nil"
	case len(b) == 0:
		return "empty (non-nil)"
	}
	return fmt.Sprintf("%x (len %d)", b, len(b))
}

// inUTC returns t in UTC without a monotonic reading: the form a store
// returns.
func inUTC(t time.Time) time.Time { return t.UTC().Round(0) }

// caFixture returns a CA with every field set and distinct blobs. Callers
// change what their case needs.
func caFixture(id, name string) *store.CA {
	return &store.CA{
		ID:          id,
		Name:        name,
		State:       store.CAActive,
		KeyType:     "ecdsa-p256",
		SealedKey:   []byte("sealed\x00key:" + id),
		CSRDER:      nil,
		CertDER:     []byte("cert:" + id),
		ChainDER:    []byte{},
		Subject:     "CN=" + name + ",O=Trustgate Test",
		Depth:       0,
		PathLen:     -1,
		KeyExported: false,
		NotBefore:   t0.Add(-time.Hour),
		NotAfter:    t0.Add(10 * 365 * 24 * time.Hour),
		CreatedAt:   t0,
		UpdatedAt:   t0.Add(time.Microsecond),
	}
}

// createCA stores ca, failing the test on error.
func createCA(t *testing.T, s store.Store, ca *store.CA) *store.CA {
	t.Helper()
	must(t, s.CreateCA(ctx(t), ca), "CreateCA(%q)", ca.Name)
	return ca
}

// certFixture returns an active, managed certificate of caID with every
// field set.
func certFixture(caID, serial string) *store.Certificate {
	return &store.Certificate{
		Serial:      serial,
		CAID:        caID,
		IssuerKey:   caID,
		Subject:     "CN=" + serial + ".svc.example",
		SANs:        []string{"dns:" + serial + ".svc.example", "ip:10.0.0.1", "uri:spiffe://example.org/" + serial},
		Profile:     "server",
		KeyType:     "ecdsa-p256",
		NotBefore:   t0.Add(-time.Minute),
		NotAfter:    t0.Add(24 * time.Hour),
		Fingerprint: strings.Repeat("ab", 32),
		Status:      store.CertActive,
		DER:         []byte("der:" + serial),
		Requester:   "token:ci",
		Imported:    false,
		Managed:     true,
		CreatedAt:   t0.Add(-time.Minute),
	}
}

// insertCert records c, failing the test on error.
func insertCert(t *testing.T, s store.Store, c *store.Certificate) *store.Certificate {
	t.Helper()
	must(t, s.InsertCertificate(ctx(t), c), "InsertCertificate(%q, %q)", c.IssuerKey, c.Serial)
	if c.Seq <= 0 {
		t.Fatalf("InsertCertificate(%q, %q): Seq = %d, want > 0", c.IssuerKey, c.Serial, c.Seq)
	}
	return c
}

// clone returns a shallow copy of *v, so that the store writing Seq or
// UpdatedAt into its argument does not change the expectation.
func clone[T any](v *T) *T {
	c := *v
	return &c
}
