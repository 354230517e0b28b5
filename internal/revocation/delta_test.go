package revocation

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/store"
)

// testEntry is a CRL entry for encEntries.
type testEntry struct {
	serial string // hex
	reason int
}

// encEntries encodes entries, in the order given, as a CRL's
// revokedCertificates contents.
func encEntries(t *testing.T, at time.Time, entries ...testEntry) []byte {
	t.Helper()
	b := &crlBuilder{thisUpdate: at, serial: make([]byte, 0, 32)}
	for _, e := range entries {
		if err := b.add([]byte(e.serial), at.Add(-time.Hour), e.reason); err != nil {
			t.Fatal(err)
		}
	}
	return b.entryBytes()
}

// describe renders changes as "+serial/reason" and "-serial", sorted.
func describe(t *testing.T, changes []change) string {
	t.Helper()
	var out []string
	for _, c := range changes {
		serial := fmt.Sprintf("%x", new(big.Int).SetBytes(c.serial))
		if c.entry == nil {
			out = append(out, "-"+serial)
			continue
		}
		reason := 0 // entries end with the reasonCode's ENUMERATED when they have one
		if n := len(c.entry); bytes.Equal(c.entry[n-3:n-1], []byte{0x0a, 0x01}) {
			reason = int(c.entry[n-1])
		}
		out = append(out, fmt.Sprintf("+%s/%d", serial, reason))
	}
	slicesSort(out)
	return strings.Join(out, " ")
}

func slicesSort(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// TestDiffEntries: the changes between two CRLs' entries, whatever their
// order: additions, hold and release, a held certificate revoked for good,
// and entries leaving (expired).
func TestDiffEntries(t *testing.T) {
	at := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	e := func(serial string, reason int) testEntry { return testEntry{serial, reason} }
	base := []testEntry{e("10", 1), e("20", 6), e("30", 0), e("40", 4), e("50", 1)}
	shuffled := append([]testEntry(nil), base...)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for _, tc := range []struct {
		name       string
		prev, next []testEntry
		want       string
	}{
		{"ok/same", base, base, ""},
		{"ok/empty to one", nil, []testEntry{e("7f", 1)}, "+7f/1"},
		{"ok/one to empty", []testEntry{e("7f", 1)}, nil, "-7f"},
		{"ok/added in the middle", base, []testEntry{e("10", 1), e("20", 6), e("25", 1), e("30", 0), e("40", 4), e("50", 1)}, "+25/1"},
		{"ok/added first and last", base, []testEntry{e("01", 1), e("10", 1), e("20", 6), e("30", 0), e("40", 4), e("50", 1), e("ff", 3)}, "+1/1 +ff/3"},
		{"ok/released from hold", base, []testEntry{e("10", 1), e("30", 0), e("40", 4), e("50", 1)}, "-20"},
		{"ok/hold revoked for good", base, []testEntry{e("10", 1), e("20", 1), e("30", 0), e("40", 4), e("50", 1)}, "+20/1"},
		{"ok/expired left", base, []testEntry{e("30", 0), e("40", 4)}, "-10 -20 -50"},
		{"ok/other order", base, shuffled, ""},
		{"ok/hex text order", []testEntry{e("100", 1), e("ff", 1)}, []testEntry{e("100", 1), e("1f0", 2), e("ff", 1)}, "+1f0/2"},
		{"ok/hex text order, removal", []testEntry{e("100", 1), e("1f0", 2), e("ff", 1)}, []testEntry{e("100", 1), e("ff", 3)}, "+ff/3 -1f0"},
		{"ok/other order with changes", shuffled, []testEntry{e("50", 1), e("60", 1), e("10", 1), e("40", 4), e("30", 0)}, "+60/1 -20"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := diffEntries(encEntries(t, at, tc.prev...), encEntries(t, at, tc.next...), DefaultDeltaBytes)
			if err != nil {
				t.Fatal(err)
			}
			if d := describe(t, got); d != tc.want {
				t.Errorf("changes %q, want %q", d, tc.want)
			}
		})
	}
	t.Run("fail/too many changes", func(t *testing.T) {
		_, err := diffEntries(nil, encEntries(t, at, base...), 100)
		if !errors.Is(err, errTooManyChanges) {
			t.Errorf("err %v, want errTooManyChanges", err)
		}
	})
	t.Run("fail/malformed", func(t *testing.T) {
		if _, err := diffEntries([]byte{0x30, 0x05, 1}, encEntries(t, at, base...), DefaultDeltaBytes); err == nil {
			t.Error("malformed entries diffed")
		}
	})
}

// TestHistoryBounds: the history keeps at most DeltaSteps steps and
// DeltaBytes bytes, dropping the oldest, and starts afresh after a step
// larger than DeltaBytes.
// TestCmpSerialHex: serials compare as the store sorts them, as text.
func TestCmpSerialHex(t *testing.T) {
	for _, tc := range []struct {
		a, b []byte
		want int // sign
	}{
		{[]byte{0x01, 0x00}, []byte{0xff}, -1}, // "100" < "ff"
		{[]byte{0x00, 0x80}, []byte{0x80}, 0},
		{[]byte{0x0a}, []byte{0x0a, 0x00}, -1}, // "a" < "a00"
		{[]byte{0x12, 0x34}, []byte{0x12, 0x35}, -1},
		{[]byte{0x02}, []byte{0x01, 0xff}, 1}, // "2" > "1ff"
	} {
		got := cmpSerialHex(tc.a, tc.b)
		if (got < 0) != (tc.want < 0) || (got == 0) != (tc.want == 0) {
			t.Errorf("cmpSerialHex(%x, %x) = %d, want sign %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestHistoryBounds(t *testing.T) {
	var h history
	sum := func(n int64) [sha256.Size]byte { return sha256.Sum256(fmt.Appendf(nil, "CRL %d", n)) }
	for i := range int64(10) {
		h = h.then(&step{from: i, fromSum: sum(i), to: i + 1, size: 100}, 4, 1000)
	}
	if len(h.steps) != 4 || h.steps[0].from != 6 || h.size != 400 {
		t.Fatalf("history of %d steps from %d, %d bytes; want 4 from 6, 400", len(h.steps), h.steps[0].from, h.size)
	}
	s5, s8, s9 := sum(5), sum(8), sum(9)
	if _, ok := h.since(5, s5[:MinBaseDigest]); ok {
		t.Error("a base older than the history was found")
	}
	if s, ok := h.since(8, s8[:MinBaseDigest]); !ok || len(s) != 2 {
		t.Errorf("since 8: %d steps, %v", len(s), ok)
	}
	if s, ok := h.since(8, s8[:]); !ok || len(s) != 2 {
		t.Errorf("since 8 by its whole SHA-256: %d steps, %v", len(s), ok)
	}
	// Number 8 with other content, or with too little of a digest to
	// tell: no steps.
	for name, d := range map[string][]byte{"another CRL's digest": s9[:MinBaseDigest], "no digest": nil, "a short digest": s8[:MinBaseDigest-1]} {
		if _, ok := h.since(8, d); ok {
			t.Errorf("since 8 with %s: found", name)
		}
	}
	h = h.then(&step{from: 10, to: 11, size: 750}, 4, 1000)
	if len(h.steps) != 3 || h.steps[0].from != 8 || h.size != 950 {
		t.Errorf("byte bound: %d steps from %d, %d bytes; want 3 from 8, 950", len(h.steps), h.steps[0].from, h.size)
	}
	if h = h.then(&step{from: 11, to: 12, size: 2000}, 4, 1000); len(h.steps) != 0 {
		t.Errorf("a step over the byte bound left %d steps", len(h.steps))
	}
}

var oidDeltaIndicator = asn1.ObjectIdentifier{2, 5, 29, 27}

// digestOf returns the digest by which a caller that holds the CRL der
// names it as a base: the first MinBaseDigest bytes of its SHA-256.
func digestOf(der []byte) []byte {
	sum := sha256.Sum256(der)
	return sum[:MinBaseDigest]
}

// checkDelta parses a delta CRL, checks its signature with issuer, its
// critical Delta CRL Indicator naming base and its number, and returns
// its entries as serial -> reason (-1 without a reason code).
func checkDelta(t *testing.T, der []byte, issuer *x509.Certificate, base, number int64) map[string]int {
	t.Helper()
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("delta CRL does not parse: %v", err)
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		t.Fatalf("delta CRL signature: %v", err)
	}
	if crl.Number.Int64() != number {
		t.Errorf("delta CRL number %s, want %d", crl.Number, number)
	}
	found := false
	for _, ext := range crl.Extensions {
		if ext.Id.Equal(oidDeltaIndicator) {
			var b *big.Int
			if _, err := asn1.Unmarshal(ext.Value, &b); err != nil {
				t.Fatal(err)
			}
			if !ext.Critical || b.Int64() != base {
				t.Errorf("delta CRL indicator: critical %v, base %s, want true, %d", ext.Critical, b, base)
			}
			found = true
		}
	}
	if !found {
		t.Fatal("no Delta CRL Indicator")
	}
	out := map[string]int{}
	for _, e := range crl.RevokedCertificateEntries {
		out[pki.SerialHex(e.SerialNumber)] = e.ReasonCode
	}
	return out
}

// TestCRLSince follows a CA through revocations, a hold and its release, a
// held certificate revoked for good and an expired certificate leaving its
// CRL, asking each time for the delta from one base; a base the service
// has no history from, and a service restarted, give no delta.
func TestCRLSince(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	e := newEnv(t, envOptions{now: now})
	old := e.issue(e.sub, "old.example")
	heldLater := e.issue(e.sub, "held-later.example")
	held := e.issue(e.sub, "held.example")
	final := e.issue(e.sub, "final.example")
	short := e.issue(e.sub, "short.example", leafOptions{notAfter: now.Add(time.Hour)})
	bad := e.issue(e.sub, "bad.example")
	e.revoke(e.sub, old, 1)
	e.revoke(e.sub, heldLater, store.ReasonCertificateHold)
	e.revoke(e.sub, final, store.ReasonCertificateHold)
	e.revoke(e.sub, short, 1)
	e.svc.flush(e.ctx)
	full, base, delta, err := e.svc.CRLSince(e.ctx, e.sub.id(), 0, nil)
	if err != nil || delta != nil {
		t.Fatalf("CRLSince(0): delta %v, %v", delta != nil, err)
	}
	if n := len(parseCRL(t, full, e.sub.cert).RevokedCertificateEntries); n != 4 {
		t.Fatalf("base CRL has %d entries, want 4", n)
	}
	baseSum := digestOf(full)
	// Nothing changed since base: no delta.
	if _, n, d, err := e.svc.CRLSince(e.ctx, e.sub.id(), base, baseSum); err != nil || d != nil || n != base {
		t.Fatalf("CRLSince(current): number %d, delta %v, %v", n, d != nil, err)
	}
	serial := func(c *x509.Certificate) string { return pki.SerialHex(c.SerialNumber) }
	since := func(what string, want map[string]int) {
		t.Helper()
		_, number, d, err := e.svc.CRLSince(e.ctx, e.sub.id(), base, baseSum)
		if err != nil || d == nil {
			t.Fatalf("%s: delta %v, %v", what, d != nil, err)
		}
		got := checkDelta(t, d, e.sub.cert, base, number)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: delta entries %v, want %v", what, got, want)
		}
	}

	e.revoke(e.sub, bad, 4)
	e.revoke(e.sub, held, store.ReasonCertificateHold)
	e.svc.flush(e.ctx)
	since("revoked and held", map[string]int{serial(bad): 4, serial(held): store.ReasonCertificateHold})

	e.unhold(e.sub, held)
	e.unhold(e.sub, heldLater)
	e.revoke(e.sub, final, 1)
	e.svc.flush(e.ctx)
	since("released and revoked for good", map[string]int{
		serial(bad): 4, serial(held): reasonRemoveFromCRL, serial(heldLater): reasonRemoveFromCRL, serial(final): 1,
	})

	// The short certificate expires and, a CRL validity later, leaves.
	e.svc.sweep(e.ctx, e.clock.Advance(DefaultCRLValidity/2+time.Hour))
	e.svc.sweep(e.ctx, e.clock.Advance(DefaultCRLValidity))
	full, _, _, _ = e.svc.CRLSince(e.ctx, e.sub.id(), base, baseSum)
	if _, ok := revokedSerials(parseCRL(t, full, e.sub.cert))[serial(short)]; ok {
		t.Fatal("the expired certificate is still on the full CRL")
	}
	since("expired", map[string]int{
		serial(bad): 4, serial(held): reasonRemoveFromCRL, serial(heldLater): reasonRemoveFromCRL,
		serial(final): 1, serial(short): reasonRemoveFromCRL,
	})

	// One signature per base and current number, whoever asks.
	_, _, d1, _ := e.svc.CRLSince(e.ctx, e.sub.id(), base, baseSum)
	_, _, d2, _ := e.svc.CRLSince(e.ctx, e.sub.id(), base, baseSum)
	if &d1[0] != &d2[0] {
		t.Error("the same delta was signed twice")
	}
	if signed := counterValue(t, e, "trustgate_crl_deltas_signed_total"); signed != 3 {
		t.Errorf("%v deltas signed, want 3", signed)
	}

	// openssl reads it as a delta CRL.
	path := writeFile(t, t.TempDir(), "delta.crl", d1)
	out, err := openssl(t, "crl", "-inform", "DER", "-noout", "-text", "-in", path)
	if err != nil || !strings.Contains(out, "Delta CRL Indicator") || !strings.Contains(out, "Remove From CRL") {
		t.Errorf("openssl crl: %v\n%s", err, out)
	}

	// Bases the service has no history from.
	for _, b := range []int64{base - 1, -5} {
		if _, _, d, err := e.svc.CRLSince(e.ctx, e.sub.id(), b, baseSum); err != nil || d != nil {
			t.Errorf("base %d: delta %v, %v", b, d != nil, err)
		}
	}
	restarted := e.newService()
	full, number, d, err := restarted.CRLSince(e.ctx, e.sub.id(), base, baseSum)
	if err != nil || d != nil || len(full) == 0 || number <= base {
		t.Errorf("after a restart: number %d, delta %v, %v", number, d != nil, err)
	}
	if _, _, _, err := e.svc.CRLSince(e.ctx, "no-such-ca", 1, baseSum); err == nil {
		t.Error("an unknown CA has a CRL")
	}
}

// TestCRLSinceAfterRestore restores the store from a backup, as an
// operator would: the store hands out CRL numbers again, and the CRL the
// restored node builds under a number has other entries than the CRL a
// gateway took under that number before the restore. A delta from the
// gateway's CRL, named by number alone, would leave out the revocation
// made since the restore; named by number and digest, the base is not
// found and the gateway gets the full CRL. The restored node's own CRL of
// that number still gets a delta.
func TestCRLSinceAfterRestore(t *testing.T) {
	e := newEnv(t, envOptions{})
	lost, after, later := e.issue(e.sub, "lost.example"), e.issue(e.sub, "after.example"), e.issue(e.sub, "later.example")
	if _, _, _, err := e.svc.CRLSince(e.ctx, e.sub.id(), 0, nil); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "backup.db")
	e.reopenStore(func() { copyDB(t, e.dbPath, backup) })

	// Before the restore: a revocation, and the gateway takes CRL n.
	e.svc = e.newService()
	e.revoke(e.sub, lost, 1)
	held, n, _, err := e.svc.CRLSince(e.ctx, e.sub.id(), 0, nil)
	if err != nil {
		t.Fatal(err)
	}

	// The restore: that revocation is gone, and the restored node builds
	// its own CRL n with another one, then CRL n+1 with one more.
	e.reopenStore(func() { copyDB(t, backup, e.dbPath) })
	e.svc = e.newService()
	if _, err := e.st.RevokeCertificate(e.ctx, e.sub.id(), pki.SerialHex(after.SerialNumber), 1, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	ours, number, _, err := e.svc.CRLSince(e.ctx, e.sub.id(), 0, nil)
	if err != nil || number != n || bytes.Equal(ours, held) {
		t.Fatalf("after the restore: CRL %d (want %d, the number handed out again), same bytes %v, %v", number, n, bytes.Equal(ours, held), err)
	}
	e.revoke(e.sub, later, 1)
	e.svc.flush(e.ctx)

	full, number, d, err := e.svc.CRLSince(e.ctx, e.sub.id(), n, digestOf(held))
	if err != nil || d != nil || number != n+1 {
		t.Fatalf("from the CRL %d held before the restore: CRL %d, delta %v, %v; want CRL %d and no delta", n, number, d != nil, err, n+1)
	}
	got := revokedSerials(parseCRL(t, full, e.sub.cert))
	for _, c := range []*x509.Certificate{after, later} {
		if _, ok := got[pki.SerialHex(c.SerialNumber)]; !ok {
			t.Errorf("the full CRL does not list %s", c.Subject.CommonName)
		}
	}
	if _, _, d, _ := e.svc.CRLSince(e.ctx, e.sub.id(), n, nil); d != nil {
		t.Error("a delta for a base named by number alone")
	}
	_, _, d, err = e.svc.CRLSince(e.ctx, e.sub.id(), n, digestOf(ours))
	if err != nil || d == nil {
		t.Fatalf("from the restored node's own CRL %d: delta %v, %v", n, d != nil, err)
	}
	want := map[string]int{pki.SerialHex(later.SerialNumber): 1}
	if got := checkDelta(t, d, e.sub.cert, n, n+1); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("delta entries %v, want %v", got, want)
	}
}

// reopenStore closes e's store, runs between (the store's files are then
// complete and at rest) and opens the store again.
func (e *env) reopenStore(between func()) {
	e.tb.Helper()
	if err := e.st.Close(); err != nil {
		e.tb.Fatal(err)
	}
	between()
	e.st = e.openStore()
}

// copyDB copies the SQLite database at from, with its WAL when there is
// one, to to.
func copyDB(t *testing.T, from, to string) {
	t.Helper()
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(from + suffix)
		if errors.Is(err, os.ErrNotExist) && suffix != "" {
			if err := os.Remove(to + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDeltaHistoryBounded: past DeltaSteps CRLs, the oldest base has no
// delta any more; a burst larger than DeltaBytes starts the history afresh.
func TestDeltaHistoryBounded(t *testing.T) {
	e := newEnv(t, envOptions{cfg: func(c *Config) { c.DeltaSteps = 2; c.DeltaBytes = 600 }})
	certs := make([]*x509.Certificate, 12)
	for i := range certs {
		certs[i] = e.issue(e.sub, fmt.Sprintf("c%d.example", i))
	}
	firstDER, first, _, err := e.svc.CRLSince(e.ctx, e.sub.id(), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	numbers, sums := []int64{first}, [][]byte{digestOf(firstDER)}
	for _, c := range certs[:3] {
		e.revoke(e.sub, c, 1)
		e.svc.flush(e.ctx)
		der, n, _, _ := e.svc.CRLSince(e.ctx, e.sub.id(), 0, nil)
		numbers, sums = append(numbers, n), append(sums, digestOf(der))
	}
	for i, n := range numbers[:3] {
		_, _, d, _ := e.svc.CRLSince(e.ctx, e.sub.id(), n, sums[i])
		if want := i >= 1; (d != nil) != want {
			t.Errorf("base %d (%d steps back): delta %v, want %v", n, 3-i, d != nil, want)
		}
	}
	// Deltas from at most maxDeltaBases bases are signed per CRL.
	a, _ := e.svc.byName.Load("sub")
	cur := a.(*authority).scopes[0].cur.Load()
	cur.deltas.Delete(numbers[2])
	for i := range maxDeltaBases {
		cur.deltas.Store(int64(-1000-i), &deltaCRL{})
	}
	cur.deltaBases.Store(maxDeltaBases)
	if _, _, d, _ := e.svc.CRLSince(e.ctx, e.sub.id(), numbers[2], sums[2]); d != nil {
		t.Error("a delta from one base more than maxDeltaBases")
	}
	// Cached deltas weigh at most deltaCacheShare × DeltaBytes in all.
	cur.deltaBases.Store(0)
	cur.deltaBytes.Store(int64(deltaCacheShare*e.svc.cfg.DeltaBytes) - 1)
	if _, _, d, _ := e.svc.CRLSince(e.ctx, e.sub.id(), numbers[2], sums[2]); d != nil {
		t.Error("a delta over the byte bound of the cached deltas")
	}
	cur.deltaBytes.Store(0)
	if _, _, d, _ := e.svc.CRLSince(e.ctx, e.sub.id(), numbers[2], sums[2]); d == nil {
		t.Error("no delta with the cache empty again")
	}
	if n, b := cur.deltaBases.Load(), cur.deltaBytes.Load(); n != 1 || b <= 0 {
		t.Errorf("after one cached delta: %d bases, %d bytes reserved; want 1 and its weight", n, b)
	}
	// A delta whose changes outweigh half a full CRL over 64 KiB is
	// neither built nor kept.
	heavy := make([]*step, len(cur.history.steps))
	for i, st := range cur.history.steps {
		h := *st
		h.size = deltaNotWorth
		heavy[i] = &h
	}
	big := &crl{der: make([]byte, deltaNotWorth+1), number: cur.number, history: history{steps: heavy}}
	bound := e.svc.cfg.DeltaBytes
	e.svc.cfg.DeltaBytes = 1 << 30 // the cache's bound is not what refuses it
	d, err := e.svc.delta(e.ctx, a.(*authority), big, numbers[2], sums[2])
	e.svc.cfg.DeltaBytes = bound
	if d != nil || err != nil {
		t.Errorf("delta over a large CRL = %d bytes, %v; want none", len(d), err)
	}
	if n, b := big.deltaBases.Load(), big.deltaBytes.Load(); n != 0 || b != 0 {
		t.Errorf("a delta not worth serving holds %d bases, %d bytes of the cache", n, b)
	}
	// A burst of revocations over the byte bound.
	for _, c := range certs[3:] {
		e.revoke(e.sub, c, 1)
	}
	e.svc.flush(e.ctx)
	if _, _, d, _ := e.svc.CRLSince(e.ctx, e.sub.id(), numbers[3], sums[3]); d != nil {
		t.Error("a delta across a burst over DeltaBytes")
	}
}

// counterValue returns the value of the unlabelled counter name in e's registry.
func counterValue(t *testing.T, e *env, name string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter %s", name)
	return 0
}

// BenchmarkDiffEntries compares two CRLs of a million entries that differ
// by one revocation in the middle, and by two at either end: in the
// store's order (one merge pass), and out of it (a partitioned CA's full
// CRL: matched by hash).
func BenchmarkDiffEntries(b *testing.B) {
	const n = 1_000_000
	at := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	encode := func(ordered bool, skip int, extra ...string) []byte {
		bl := &crlBuilder{thisUpdate: at, serial: make([]byte, 0, 32), buf: make([]byte, 0, 40*n)}
		for i := range n {
			if i == skip {
				continue
			}
			v := uint64(i) * 1000
			if !ordered {
				v = uint64(i) * 0x9e3779b97f4a7c15 >> 4
			}
			if err := bl.add(fmt.Appendf(nil, "7%019x", v), at, i%7); err != nil {
				b.Fatal(err)
			}
		}
		for _, s := range extra {
			if err := bl.add([]byte(s), at, 1); err != nil {
				b.Fatal(err)
			}
		}
		return bl.entryBytes()
	}
	for _, tc := range []struct {
		name       string
		prev, next []byte
		want       int
	}{
		{"ordered/one-in-the-middle", encode(true, -1), encode(true, n/2), 1},
		{"ordered/first-and-last", encode(true, -1), encode(true, 0, "7fffffffffffffffffff"), 2},
		{"unordered/first-and-last", encode(false, -1), encode(false, 0, "7fffffffffffffffffff"), 2},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.prev)))
			for b.Loop() {
				changes, err := diffEntries(tc.prev, tc.next, DefaultDeltaBytes)
				if err != nil || len(changes) != tc.want {
					b.Fatalf("%d changes, %v; want %d", len(changes), err, tc.want)
				}
			}
		})
	}
}

// TestCRLSinceLargeDelta: after so many revocations that the delta would
// be about the size of the full CRL, the caller gets the full CRL.
func TestCRLSinceLargeDelta(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.revoke(e.sub, e.issue(e.sub, "first.example"), 1)
	e.svc.flush(e.ctx)
	baseDER, base, _, err := e.svc.CRLSince(e.ctx, e.sub.id(), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	fillRevoked(t, e, e.sub, 2500)
	e.svc.Notify(e.sub.id(), "", e.clock.Now())
	e.svc.flush(e.ctx)
	full, number, d, err := e.svc.CRLSince(e.ctx, e.sub.id(), base, digestOf(baseDER))
	if err != nil {
		t.Fatal(err)
	}
	if number <= base || len(full) <= deltaNotWorth {
		t.Fatalf("CRL %d of %d bytes after the fill; want a number above %d and over %d bytes", number, len(full), base, deltaNotWorth)
	}
	if d != nil {
		t.Errorf("a delta of %d bytes next to a full CRL of %d", len(d), len(full))
	}

	// From that large CRL as the base, one more revocation is a delta
	// whose size does not depend on the base's: one entry and a signature.
	e.revoke(e.sub, e.issue(e.sub, "one-more.example"), 1)
	e.svc.flush(e.ctx)
	full, _, d, err = e.svc.CRLSince(e.ctx, e.sub.id(), number, digestOf(full))
	if err != nil || d == nil {
		t.Fatalf("one revocation after the fill: delta %v, %v", d != nil, err)
	}
	if len(d) > 1024 {
		t.Errorf("a delta of one revocation is %d bytes (full CRL %d bytes), want under 1 KiB", len(d), len(full))
	}
}
