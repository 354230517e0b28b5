package lifecycle

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/store"
	"github.com/trustgate/trustgate/internal/store/sqlite"
)

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// clock is a clock the test moves.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time)         { c.mu.Lock(); c.now = t; c.mu.Unlock() }
func (c *clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// openStore opens (or reopens) the SQLite store at path; the test closes it.
func openStore(t *testing.T, path string) *sqlite.DB {
	t.Helper()
	st, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// withCA stores a CA for certificates to belong to.
func withCA(t *testing.T, st store.Store) {
	t.Helper()
	if err := st.CreateCA(context.Background(), &store.CA{ID: "ca-1", Name: "issuing", State: store.CAActive, KeyType: "ec-p256",
		Subject: "CN=issuing", PathLen: -1, CreatedAt: t0, UpdatedAt: t0}); err != nil {
		t.Fatal(err)
	}
}

// addCert records an active certificate valid from nb to na.
func addCert(t *testing.T, st store.Store, serial string, nb, na time.Time) *store.Certificate {
	t.Helper()
	c := &store.Certificate{Serial: serial, CAID: "ca-1", IssuerKey: "ca-1", Subject: "CN=" + serial, SANs: []string{"dns:" + serial + ".internal"},
		Profile: "server", KeyType: "ec-p256", NotBefore: nb, NotAfter: na, Fingerprint: strings.Repeat("ab", 32),
		Status: store.CertActive, DER: []byte("der:" + serial), Requester: "test", CreatedAt: nb}
	if err := st.InsertCertificate(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return c
}

// receiver is a webhook endpoint that verifies every delivery and fails
// the first `failures` of them with 500.
type receiver struct {
	t        *testing.T
	secret   []byte
	clock    *clock
	mu       sync.Mutex
	failures int
	got      []envelope
	attempts map[string]int
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := Verify(r.secret, req.Header, body, r.clock.Now(), 5*time.Minute); err != nil {
		r.t.Errorf("delivery does not verify: %v", err)
		http.Error(w, "bad signature", 400)
		return
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil || env.ID == "" || env.ID != req.Header.Get(HeaderEventID) {
		r.t.Errorf("delivery body %s (id header %q): %v", body, req.Header.Get(HeaderEventID), err)
	}
	r.attempts[env.ID]++
	if r.failures > 0 {
		r.failures--
		http.Error(w, "down for maintenance", http.StatusInternalServerError)
		return
	}
	r.got = append(r.got, env)
}

func (r *receiver) delivered() []envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]envelope(nil), r.got...)
}

func newReceiver(t *testing.T, c *clock, failures int) (*receiver, *httptest.Server) {
	t.Helper()
	r := &receiver{t: t, secret: []byte("webhook-secret"), clock: c, failures: failures, attempts: map[string]int{}}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv
}

func newService(t *testing.T, st Store, c *clock, hooks ...Webhook) *Service {
	t.Helper()
	s, err := New(Config{Store: st, Webhooks: hooks, Now: c.Now, Rand: func() float64 { return 0 }, RetryInitial: 10 * time.Second, RetryMax: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSignature(t *testing.T) {
	secret, body := []byte("s3cret"), []byte(`{"id":"ev-1"}`)
	now := time.Unix(1_800_000_000, 0)
	good := func() http.Header {
		h := http.Header{}
		h.Set(HeaderTimestamp, "1800000000")
		h.Set(HeaderSignature, Sign(secret, now.Unix(), body))
		return h
	}
	tests := []struct {
		name   string
		mod    func(h http.Header) (http.Header, []byte, []byte)
		wantOK bool
	}{
		{"ok/as sent", func(h http.Header) (http.Header, []byte, []byte) { return h, body, secret }, true},
		{"ok/one of two signatures (secret rotation)", func(h http.Header) (http.Header, []byte, []byte) {
			h.Set(HeaderSignature, Sign([]byte("old"), now.Unix(), body)+", "+h.Get(HeaderSignature))
			return h, body, secret
		}, true},
		{"fail/other secret", func(h http.Header) (http.Header, []byte, []byte) { return h, body, []byte("other") }, false},
		{"fail/body changed", func(h http.Header) (http.Header, []byte, []byte) { return h, []byte(`{"id":"ev-2"}`), secret }, false},
		{"fail/timestamp changed", func(h http.Header) (http.Header, []byte, []byte) {
			h.Set(HeaderTimestamp, "1800000001")
			return h, body, secret
		}, false},
		{"fail/replayed later", func(h http.Header) (http.Header, []byte, []byte) {
			ts := now.Add(-10 * time.Minute).Unix()
			h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
			h.Set(HeaderSignature, Sign(secret, ts, body))
			return h, body, secret
		}, false},
		{"fail/no signature", func(h http.Header) (http.Header, []byte, []byte) { h.Del(HeaderSignature); return h, body, secret }, false},
		{"fail/bad timestamp", func(h http.Header) (http.Header, []byte, []byte) {
			h.Set(HeaderTimestamp, "soon")
			return h, body, secret
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, b, s := tt.mod(good())
			err := Verify(s, h, b, now, 5*time.Minute)
			if (err == nil) != tt.wantOK {
				t.Fatalf("Verify = %v, want ok %v", err, tt.wantOK)
			}
		})
	}
	// The signature is HMAC-SHA256 of "timestamp.body", in hex, as a
	// receiver in any language computes it.
	m := hmac.New(sha256.New, []byte("key"))
	m.Write([]byte("1800000000.x"))
	if got, want := Sign([]byte("key"), 1800000000, []byte("x")), "v1="+hex.EncodeToString(m.Sum(nil)); got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
}

func TestCrossed(t *testing.T) {
	day := pki.Day
	tests := []struct {
		name    string
		nb, na  time.Time
		now     time.Time
		want    time.Duration
		crossed bool
	}{
		{"ok/none yet", t0, t0.Add(90 * day), t0.Add(10 * day), 0, false},
		{"ok/30 days", t0, t0.Add(90 * day), t0.Add(60 * day), 30 * day, true},
		{"ok/14 days, skipping 30", t0, t0.Add(90 * day), t0.Add(80 * day), 14 * day, true},
		{"ok/1 day", t0, t0.Add(90 * day), t0.Add(89*day + time.Hour), day, true},
		{"ok/short-lived: no threshold longer than its life", t0, t0.Add(time.Hour), t0.Add(59 * time.Minute), 0, false},
		{"ok/10-day certificate: only 7 and 1", t0, t0.Add(10 * day), t0.Add(time.Hour), 0, false},
		{"ok/10-day certificate at 7", t0, t0.Add(10 * day), t0.Add(3 * day), 7 * day, true},
		{"ok/expired", t0, t0.Add(90 * day), t0.Add(91 * day), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Crossed(DefaultThresholds, tt.nb, tt.na, tt.now)
			if got != tt.want || ok != tt.crossed {
				t.Fatalf("Crossed = %s, %v; want %s, %v", got, ok, tt.want, tt.crossed)
			}
		})
	}
}

func TestExpiryEventsAndDelivery(t *testing.T) {
	c := &clock{now: t0}
	st := openStore(t, filepath.Join(t.TempDir(), "tg.db"))
	withCA(t, st)
	r, srv := newReceiver(t, c, 3)
	svc := newService(t, st, c, Webhook{Name: "ops", URL: srv.URL, Secret: r.secret})
	ctx := context.Background()

	addCert(t, st, "a1", t0, t0.Add(90*pki.Day))        // 30d crossed at day 60
	addCert(t, st, "b2", t0, t0.Add(time.Hour))         // short-lived: never
	old := addCert(t, st, "c3", t0, t0.Add(90*pki.Day)) // renewed: never
	if _, err := svc.Emit(ctx, TypeRenewed, renewedKey(old.CAID, old.Serial), map[string]string{"serial": "d4"}); err != nil {
		t.Fatal(err)
	}
	c.Set(t0.Add(61 * pki.Day))
	for range 2 { // a second scan adds nothing
		if err := svc.Scan(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The endpoint fails three times: both events on the first pass, one
	// again on the second, and then takes the last.
	for i, want := range []int{0, 1, 1} {
		n, err := svc.Deliver(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Fatalf("pass %d delivered %d, want %d", i, n, want)
		}
		// Nothing is due again before the backoff (10s, then 20s, at the
		// least half of each with u = 0: 5s, 10s).
		if n, _ := svc.Deliver(ctx); n != 0 {
			t.Fatalf("pass %d: a delivery was retried before its backoff", i)
		}
		c.Advance(time.Duration(5<<i) * time.Second)
	}
	got := r.delivered()
	types := map[string]int{}
	for _, e := range got {
		types[e.Type]++
	}
	if len(got) != 2 || types[TypeRenewed] != 1 || types[TypeExpiring] != 1 {
		t.Fatalf("delivered %+v", got)
	}
	for _, e := range got {
		if e.Type == TypeExpiring {
			d := e.Data.(map[string]any)
			if d["serial"] != "a1" || d["threshold"] != "30d" {
				t.Fatalf("expiring event data: %v", d)
			}
		}
	}
	// The failed attempts were of the same events, with the same IDs.
	r.mu.Lock()
	for id, n := range r.attempts {
		if n < 1 || n > 3 {
			t.Errorf("event %s attempted %d times", id, n)
		}
	}
	r.mu.Unlock()

	// The next threshold raises a new event, once.
	c.Set(t0.Add(77 * pki.Day))
	for range 2 {
		if err := svc.Scan(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := svc.Deliver(ctx); err != nil || n != 1 {
		t.Fatalf("14-day event: delivered %d, %v", n, err)
	}
}

// TestRestartLosesNoEvent: events recorded while the webhook is down stay
// in the store's outbox across a restart (the store closed and opened
// again by a new service) and are delivered after it; one delivered
// before the restart is not sent again.
func TestRestartLosesNoEvent(t *testing.T) {
	c := &clock{now: t0}
	path := filepath.Join(t.TempDir(), "tg.db")
	r, srv := newReceiver(t, c, 0)
	hook := Webhook{Name: "ops", URL: srv.URL, Secret: r.secret}
	ctx := context.Background()

	st1, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	svc1 := newService(t, st1, c, hook)
	if _, err := svc1.Emit(ctx, TypeRenewed, "k-0", map[string]int{"n": 0}); err != nil {
		t.Fatal(err)
	}
	if n, err := svc1.Deliver(ctx); err != nil || n != 1 {
		t.Fatalf("first delivery: %d %v", n, err)
	}
	// The endpoint goes away; three more events, one failed attempt each.
	down := &receiver{t: t, secret: r.secret, clock: c, failures: 1 << 30, attempts: map[string]int{}}
	downSrv := httptest.NewServer(down)
	svc1.webhooks["ops"] = Webhook{Name: "ops", URL: downSrv.URL, Secret: r.secret}
	for i := 1; i <= 3; i++ {
		if _, err := svc1.Emit(ctx, TypeRenewed, "k-"+strconv.Itoa(i), map[string]int{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := svc1.Deliver(ctx); err != nil || n != 0 {
		t.Fatalf("deliveries to a failing endpoint: %d %v", n, err)
	}
	downSrv.Close()
	if err := st1.Close(); err != nil { // the control plane stops
		t.Fatal(err)
	}

	// Restart: a new store handle and service, the endpoint back.
	st2 := openStore(t, path)
	svc2 := newService(t, st2, c, hook)
	c.Advance(time.Hour)
	if n, err := svc2.Deliver(ctx); err != nil || n != 3 {
		t.Fatalf("deliveries after the restart: %d %v", n, err)
	}
	seen := map[string]bool{}
	for _, e := range r.delivered() {
		if seen[e.ID] {
			t.Errorf("event %s delivered twice to the working endpoint", e.ID)
		}
		seen[e.ID] = true
	}
	if len(seen) != 4 {
		t.Fatalf("%d distinct events delivered, want 4", len(seen))
	}
}
