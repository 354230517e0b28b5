package storetest

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/store"
)

// listCases checks every CertFilter field and cursor pagination.
func listCases() []testCase {
	var cases []testCase
	for _, f := range []struct {
		name string
		f    store.CertFilter
		mid  bool // set f.After to the Seq of the middle of the inventory
	}{
		{"ok/all", store.CertFilter{}, false},
		{"ok/ca", store.CertFilter{CAID: "ca-a"}, false},
		{"ok/other-ca", store.CertFilter{CAID: "ca-b"}, false},
		{"ok/unknown-ca", store.CertFilter{CAID: "ca-x"}, false},
		{"ok/serial-two-issuers", store.CertFilter{Serial: "5a"}, false},
		{"ok/serial-unknown", store.CertFilter{Serial: "%"}, false},
		{"ok/status-active", store.CertFilter{Status: store.CertActive}, false},
		{"ok/status-revoked", store.CertFilter{Status: store.CertRevoked}, false},
		{"ok/expired", store.CertFilter{Expired: true}, false},
		{"ok/not-expired", store.CertFilter{NotExpired: true}, false},
		{"ok/expired-and-not-expired", store.CertFilter{Expired: true, NotExpired: true}, false},
		{"ok/expires-by", store.CertFilter{ExpiresBy: t0.Add(36 * time.Hour)}, false},
		{"ok/expires-by-and-not-expired", store.CertFilter{ExpiresBy: t0.Add(36 * time.Hour), NotExpired: true}, false},
		{"ok/after", store.CertFilter{}, true},
		{"ok/after-negative", store.CertFilter{After: -1}, false},
		{"ok/after-beyond-end", store.CertFilter{After: 1 << 40}, false},
		{"ok/combined", store.CertFilter{CAID: "ca-a", Status: store.CertActive, NotExpired: true, SANContains: "example"}, false},
		{"ok/combined-with-cursor", store.CertFilter{Status: store.CertActive, SANContains: "svc", Limit: 5}, true},
		{"ok/san-plain", store.CertFilter{SANContains: "svc.example"}, false},
		{"ok/san-type-prefix", store.CertFilter{SANContains: "ip:"}, false},
		{"ok/san-percent", store.CertFilter{SANContains: "%"}, false},
		{"ok/san-percent-inside", store.CertFilter{SANContains: "a%c"}, false},
		{"ok/san-underscore", store.CertFilter{SANContains: "a_b"}, false},
		{"ok/san-underscore-alone", store.CertFilter{SANContains: "_"}, false},
		{"ok/san-quote", store.CertFilter{SANContains: "it's"}, false},
		{"ok/san-double-quote", store.CertFilter{SANContains: `"`}, false},
		{"ok/san-sql-comment", store.CertFilter{SANContains: "x;--"}, false},
		{"ok/san-injection", store.CertFilter{SANContains: "' OR '1'='1"}, false},
		{"ok/san-path-traversal", store.CertFilter{SANContains: "../../etc/passwd"}, false},
		{"ok/san-backslash", store.CertFilter{SANContains: `a\b`}, false},
		{"ok/san-bracket", store.CertFilter{SANContains: "[a-z]"}, false},
		{"ok/san-star", store.CertFilter{SANContains: "*"}, false},
		{"ok/san-case-sensitive", store.CertFilter{SANContains: "DNS:"}, false},
		{"ok/san-no-match", store.CertFilter{SANContains: "nowhere.invalid"}, false},
	} {
		cases = append(cases, testCase{f.name, func(t *testing.T, s store.Store) {
			inv := seedInventory(t, s)
			filter := f.f
			filter.Now = t0
			if f.mid {
				filter.After = inv[len(inv)/2].Seq
			}
			want := expect(inv, filter)
			got, err := s.ListCertificates(ctx(t), filter)
			must(t, err, "ListCertificates(%+v)", filter)
			if !slices.Equal(seqs(got), seqs(want)) {
				t.Fatalf("ListCertificates(%+v):\n got seqs %v (serials %v)\nwant seqs %v (serials %v)",
					filter, seqs(got), serials(got), seqs(want), serials(want))
			}
			for i := range want {
				checkEqual(t, "ListCertificates["+want[i].Serial+"]", want[i], got[i])
			}
		}})
	}

	cases = append(cases,
		testCase{"ok/paginate-all", func(t *testing.T, s store.Store) {
			inv := seedMany(t, s, 300)
			for _, limit := range []int{1, 7, 100, 299, 300, 1000} {
				got := listAll(t, s, store.CertFilter{Limit: limit, Now: t0})
				if !slices.Equal(seqs(got), seqs(inv)) {
					t.Fatalf("walk with Limit %d: got %d entries, want %d, in Seq order without gaps or duplicates", limit, len(got), len(inv))
				}
			}
		}},
		testCase{"ok/paginate-filtered", func(t *testing.T, s store.Store) {
			inv := seedMany(t, s, 300)
			for _, f := range []store.CertFilter{
				{CAID: "ca-b", Limit: 13},
				{Status: store.CertRevoked, Limit: 9},
				{NotExpired: true, Limit: 11},
				{SANContains: "7.many", Limit: 4},
			} {
				f.Now = t0
				got := listAll(t, s, f)
				want := expect(inv, store.CertFilter{CAID: f.CAID, Status: f.Status, NotExpired: f.NotExpired, SANContains: f.SANContains, Now: t0, Limit: math.MaxInt})
				if len(want) == 0 {
					t.Fatalf("filter %+v selects nothing; the test is broken", f)
				}
				if !slices.Equal(seqs(got), seqs(want)) {
					t.Fatalf("walk %+v: got seqs %v, want %v", f, seqs(got), seqs(want))
				}
			}
		}},
		testCase{"ok/default-limit", func(t *testing.T, s store.Store) {
			inv := seedMany(t, s, DefaultListLimit+20)
			for _, limit := range []int{0, -1} {
				got, err := s.ListCertificates(ctx(t), store.CertFilter{Limit: limit, Now: t0})
				must(t, err, "ListCertificates(Limit %d)", limit)
				if !slices.Equal(seqs(got), seqs(inv[:DefaultListLimit])) {
					t.Fatalf("ListCertificates(Limit %d): got %d entries, want the first %d", limit, len(got), DefaultListLimit)
				}
			}
		}},
	)
	return cases
}

// expect filters inv, which is in Seq order, as the contract says
// ListCertificates must, and applies the limit rules.
func expect(inv []*store.Certificate, f store.CertFilter) []*store.Certificate {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	var out []*store.Certificate
	for _, c := range inv {
		if len(out) == limit {
			break
		}
		switch {
		case c.Seq <= f.After,
			f.CAID != "" && c.CAID != f.CAID,
			f.Serial != "" && c.Serial != f.Serial,
			f.Status != "" && c.Status != f.Status,
			f.Expired && c.NotAfter.After(f.Now),
			f.NotExpired && !c.NotAfter.After(f.Now),
			!f.ExpiresBy.IsZero() && c.NotAfter.After(f.ExpiresBy),
			f.SANContains != "" && !slices.ContainsFunc(c.SANs, func(san string) bool {
				return strings.Contains(san, f.SANContains)
			}):
			continue
		}
		out = append(out, c)
	}
	return out
}

// seedInventory records a small inventory that exercises every filter, and
// returns it in Seq order.
func seedInventory(t *testing.T, s store.Store) []*store.Certificate {
	t.Helper()
	a := createCA(t, s, caFixture("ca-a", "a"))
	b := createCA(t, s, caFixture("ca-b", "b"))
	type spec struct {
		ca, serial string
		notAfter   time.Duration // from t0
		revoked    bool
		sans       []string
	}
	specs := []spec{
		{a.ID, "01", 24 * time.Hour, false, nil},
		{a.ID, "02", -time.Hour, false, []string{"dns:100%.example"}},
		{a.ID, "03", 0, false, []string{"dns:a_b.example"}}, // expires exactly at Now: expired
		{a.ID, "04", time.Nanosecond * 1000, true, []string{"dns:axb.example"}},
		{b.ID, "05", 48 * time.Hour, false, []string{"dns:abc.example", "ip:10.1.2.3"}},
		{b.ID, "06", 36 * time.Hour, true, []string{"uri:spiffe://td/it's"}},
		{b.ID, "07", 72 * time.Hour, false, []string{"dns:x;--.example"}},
		{"", "08", 24 * time.Hour, false, []string{"uri:file:///../../etc/passwd"}},
		{"", "09", -48 * time.Hour, true, []string{`email:"quoted"@example`, `uri:urn:a\b`}},
		{a.ID, "5a", 24 * time.Hour, false, []string{"dns:' OR '1'='1"}},
		{b.ID, "5a", 24 * time.Hour, false, []string{"dns:[a-z].example", "dns:*.wild.example"}},
		{a.ID, "0a", 36*time.Hour + time.Microsecond, false, []string{"dns:dns-upper.example", "dns:UPPER.example"}},
	}
	for i := range 24 { // enough rows that After and Limit cut through the middle
		ca := []string{a.ID, b.ID, ""}[i%3]
		specs = append(specs, spec{ca, fmt.Sprintf("1%02x", i), time.Duration(i-12) * time.Hour, i%5 == 0,
			[]string{fmt.Sprintf("dns:n%d.svc.example", i), "ip:192.0.2." + fmt.Sprint(i)}})
	}
	var inv []*store.Certificate
	for _, sp := range specs {
		c := certFixture(sp.ca, sp.serial)
		if sp.ca == "" {
			c.IssuerKey = "ext:" + strings.Repeat("0", 64)
			c.Imported, c.Managed = true, false
		}
		c.NotAfter = t0.Add(sp.notAfter)
		c.SANs = sp.sans
		if sp.revoked {
			c.Status, c.RevokedAt, c.Reason = store.CertRevoked, t0.Add(-time.Minute), 1
		}
		inv = append(inv, insertCert(t, s, c))
	}
	return inv
}

// seedMany records n certificates over two CAs and imports, inserting them
// concurrently, and returns them in Seq order.
func seedMany(t *testing.T, s store.Store, n int) []*store.Certificate {
	t.Helper()
	cas := []string{
		createCA(t, s, caFixture("ca-a", "a")).ID,
		createCA(t, s, caFixture("ca-b", "b")).ID,
		"",
	}
	certs := make([]*store.Certificate, n)
	for i := range certs {
		c := certFixture(cas[i%3], fmt.Sprintf("%x", 0x1000+i))
		if c.CAID == "" {
			c.IssuerKey, c.Imported = "ext:00", true
		}
		c.NotAfter = t0.Add(time.Duration(i%7-3) * time.Hour)
		c.SANs = []string{fmt.Sprintf("dns:%d.many.example", i)}
		if i%4 == 0 {
			c.Status, c.RevokedAt = store.CertRevoked, t0
		}
		certs[i] = c
	}
	var wg sync.WaitGroup
	const workers = 16
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				if err := s.InsertCertificate(ctx(t), certs[i]); err != nil {
					t.Errorf("InsertCertificate(%s): %v", certs[i].Serial, err)
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	slices.SortFunc(certs, func(a, b *store.Certificate) int { return int(a.Seq - b.Seq) })
	return certs
}

// serials returns the Serial of each certificate.
func serials(cs []*store.Certificate) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Serial
	}
	return out
}
