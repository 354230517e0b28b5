package revocation

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/pki/pkitest"
	"github.com/trustgate/trustgate/internal/store"
)

var oidIDP = asn1.ObjectIdentifier{2, 5, 29, 28}

// TestCRLEncodingMatchesCreateRevocationList checks the streaming encoder
// byte for byte against crypto/x509 for every key type a CA may have.
func TestCRLEncodingMatchesCreateRevocationList(t *testing.T) {
	thisUpdate := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	nextUpdate := thisUpdate.Add(7 * 24 * time.Hour)
	entries := []struct {
		serial string
		at     time.Time
		reason int
	}{
		{"1", thisUpdate.Add(-time.Hour), 0},
		{"ff", thisUpdate.Add(-time.Minute), 1}, // high bit: a leading zero octet
		{"7f", thisUpdate, 6},
		{"abc", thisUpdate.Add(-24 * time.Hour), 9}, // odd number of digits
		{"1234567890abcdef1234567890abcdef12345678", time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC), 10},
		{"5a", time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC), 4},
	}
	for _, kt := range []pki.KeyType{pki.ECP256, pki.ECP384, pki.RSA2048, pki.Ed25519} {
		ca := pkitest.New(t, pkitest.WithKeyType(kt))
		for _, n := range []int{0, 1, len(entries)} {
			t.Run(string(kt)+"/"+string(rune('0'+n)), func(t *testing.T) {
				idp, err := issuingDistributionPoint(testBase + "/crl/x.crl")
				if err != nil {
					t.Fatal(err)
				}
				b, err := newCRLBuilder(ca.Cert, ca.Key.Public(), thisUpdate, nextUpdate, 0)
				if err != nil {
					t.Fatal(err)
				}
				tmpl := &x509.RevocationList{
					Number: big.NewInt(1 << 40), ThisUpdate: thisUpdate, NextUpdate: nextUpdate,
					ExtraExtensions: []pkix.Extension{{Id: oidIDP, Critical: true, Value: idp}},
				}
				for _, en := range entries[:n] {
					if err := b.add([]byte(en.serial), en.at, en.reason); err != nil {
						t.Fatal(err)
					}
					sn, _ := new(big.Int).SetString(en.serial, 16)
					tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
						x509.RevocationListEntry{SerialNumber: sn, RevocationTime: en.at, ReasonCode: en.reason})
				}
				der, off, length, err := b.finish(1<<40, idp, nil, ca.Key)
				if err != nil {
					t.Fatal(err)
				}
				got := parseCRL(t, der, ca.Cert)
				wantDER, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
				if err != nil {
					t.Fatal(err)
				}
				want, err := x509.ParseRevocationList(wantDER)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got.RawTBSRevocationList, want.RawTBSRevocationList) {
					t.Fatalf("TBSCertList differs from crypto/x509's:\n got %x\nwant %x", got.RawTBSRevocationList, want.RawTBSRevocationList)
				}
				if got.SignatureAlgorithm != want.SignatureAlgorithm {
					t.Errorf("signature algorithm %v, want %v", got.SignatureAlgorithm, want.SignatureAlgorithm)
				}
				if n > 0 && !bytes.Contains(got.RawTBSRevocationList, der[off:off+length]) {
					t.Error("entry offsets do not point into the TBSCertList")
				}
				if n == 0 && length != 0 {
					t.Errorf("empty CRL has %d octets of entries", length)
				}
			})
		}
	}
}

// TestCRLBuilderClampsAndRejects covers entries the store should never
// hold: future revocation times are clamped to thisUpdate, bad serials fail.
func TestCRLBuilderClampsAndRejects(t *testing.T) {
	ca := pkitest.New(t)
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	b, err := newCRLBuilder(ca.Cert, ca.Key.Public(), now, now.Add(time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.add([]byte("10"), now.Add(time.Hour), 1); err != nil {
		t.Fatal(err)
	}
	if err := b.add([]byte("11"), time.Time{}, 1); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "0", "00", "xyz", "-1", strings.Repeat("f", 65)} {
		if err := b.add([]byte(bad), now, 1); err == nil {
			t.Errorf("add(%q) succeeded", bad)
		}
	}
	der, _, _, err := b.finish(1, nil, nil, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	crl := parseCRL(t, der, ca.Cert)
	for _, e := range crl.RevokedCertificateEntries {
		if !e.RevocationTime.Equal(now) {
			t.Errorf("serial %x revoked at %s, want clamped to %s", e.SerialNumber, e.RevocationTime, now)
		}
	}
	for _, ext := range crl.Extensions {
		if ext.Id.Equal(oidIDP) {
			t.Error("CRL without a URL has an issuing distribution point")
		}
	}
}

// TestCRLPublishedAfterNotify is the main path: revoke, Notify, and within
// a second the CRL lists the certificate, correctly formed and served.
func TestCRLPublishedAfterNotify(t *testing.T) {
	// A coalescing window wide enough for both revocations of the burst
	// below on a loaded machine (the race detector slows each revocation
	// down to tens of milliseconds).
	e := newEnv(t, envOptions{cfg: func(c *Config) { c.Coalesce = 300 * time.Millisecond }})
	good := e.issue(e.sub, "good.example")
	bad := e.issue(e.sub, "bad.example")
	plain := e.issue(e.sub, "plain.example")
	e.run()
	srv := e.server()
	url := srv.URL + "/crl/sub.crl"

	first := fetchCRL(t, url, e.sub.cert)
	if len(first.RevokedCertificateEntries) != 0 {
		t.Fatalf("new CA's CRL has %d entries", len(first.RevokedCertificateEntries))
	}

	start := time.Now()
	e.revoke(e.sub, bad, 1)   // keyCompromise
	e.revoke(e.sub, plain, 0) // unspecified
	var crl *x509.RevocationList
	eventually(t, time.Second, "CRL lists the revoked certificates", func() bool {
		crl = fetchCRL(t, url, e.sub.cert)
		return len(crl.RevokedCertificateEntries) == 2
	})
	t.Logf("published %s after Notify", time.Since(start))
	if crl.Number.Cmp(first.Number) <= 0 {
		t.Errorf("CRL number %s does not follow %s", crl.Number, first.Number)
	}
	// One burst, one CRL: the two revocations took one number.
	if want := new(big.Int).Add(first.Number, big.NewInt(1)); crl.Number.Cmp(want) != 0 {
		t.Errorf("CRL number %s, want %s (one CRL for the burst)", crl.Number, want)
	}
	got := revokedSerials(crl)
	if r, ok := got[pki.SerialHex(bad.SerialNumber)]; !ok || r != 1 {
		t.Errorf("revoked certificate: listed %v with reason %d, want keyCompromise", ok, r)
	}
	if _, ok := got[pki.SerialHex(good.SerialNumber)]; ok {
		t.Error("good certificate is on the CRL")
	}
	for _, en := range crl.RevokedCertificateEntries {
		if pki.SerialHex(en.SerialNumber) == pki.SerialHex(plain.SerialNumber) {
			for _, x := range en.Extensions {
				if x.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 21}) {
					t.Error("unspecified reason has a reason code extension (RFC 5280 §5.3.1)")
				}
			}
		}
		if en.RevocationTime.After(crl.ThisUpdate) {
			t.Errorf("revocation time %s after thisUpdate %s", en.RevocationTime, crl.ThisUpdate)
		}
	}
	if !bytes.Equal(crl.AuthorityKeyId, e.sub.cert.SubjectKeyId) {
		t.Error("authority key identifier is not the CA's subject key identifier")
	}
	if d := crl.NextUpdate.Sub(crl.ThisUpdate); d != DefaultCRLValidity {
		t.Errorf("nextUpdate - thisUpdate = %s, want %s", d, DefaultCRLValidity)
	}
	checkNoIDP(t, crl)

	// HTTP: headers, conditional GET, PEM.
	res, body := get(t, url)
	if ct := res.Header.Get("Content-Type"); ct != "application/pkix-crl" {
		t.Errorf("Content-Type %q", ct)
	}
	etag := res.Header.Get("ETag")
	if etag == "" || strings.HasPrefix(etag, "W/") {
		t.Errorf("ETag %q is not a strong validator", etag)
	}
	if lm, err := http.ParseTime(res.Header.Get("Last-Modified")); err != nil || !lm.Equal(crl.ThisUpdate) {
		t.Errorf("Last-Modified %q, want thisUpdate %s", res.Header.Get("Last-Modified"), crl.ThisUpdate)
	}
	cc := res.Header.Get("Cache-Control")
	if !strings.Contains(cc, "public") || !strings.Contains(cc, "no-transform") || !strings.Contains(cc, "max-age=300") {
		t.Errorf("Cache-Control %q", cc)
	}
	res304, _ := get(t, url, "If-None-Match", etag)
	if res304.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %s, want 304", res304.Status)
	}
	resPEM, pemBody := get(t, srv.URL+"/crl/sub.pem")
	block, _ := pem.Decode(pemBody)
	if resPEM.StatusCode != http.StatusOK || block == nil || block.Type != "X509 CRL" || !bytes.Equal(block.Bytes, body) {
		t.Errorf("PEM CRL: %s, block %v", resPEM.Status, block != nil)
	}
	if resPEM.Header.Get("ETag") == etag {
		t.Error("PEM and DER share an ETag")
	}
	// By ID as well as by name.
	if res, _ := get(t, srv.URL+"/crl/"+e.sub.id()+".crl"); res.StatusCode != http.StatusOK {
		t.Errorf("CRL by CA ID: %s", res.Status)
	}

	// Propagation was measured for both kinds.
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != "trustgate_revocation_propagation_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			counts[m.GetLabel()[0].GetValue()] = m.GetHistogram().GetSampleCount()
		}
	}
	if counts["crl"] != 2 || counts["ocsp"] != 2 {
		t.Errorf("propagation samples %v, want 2 crl and 2 ocsp", counts)
	}
}

// checkNoIDP checks that a full CRL is a complete CRL: no issuing
// distribution point, so that it covers every certificate of its CA,
// whatever CRL distribution point the certificate names (or none: the
// CA's own certificate, under openssl -crl_check_all).
func checkNoIDP(t *testing.T, crl *x509.RevocationList) {
	t.Helper()
	for _, ext := range crl.Extensions {
		if ext.Id.Equal(oidIDP) {
			t.Error("full CRL has an issuing distribution point")
		}
	}
}

func checkIDP(t *testing.T, crl *x509.RevocationList, url string) {
	t.Helper()
	for _, ext := range crl.Extensions {
		if !ext.Id.Equal(oidIDP) {
			continue
		}
		if !ext.Critical {
			t.Error("issuing distribution point is not critical (RFC 5280 §5.2.5)")
		}
		want, _ := issuingDistributionPoint(url)
		if !bytes.Equal(ext.Value, want) {
			t.Errorf("issuing distribution point %x, want %x (%s)", ext.Value, want, url)
		}
		if !bytes.Contains(ext.Value, []byte(url)) {
			t.Errorf("issuing distribution point does not name %s", url)
		}
		return
	}
	t.Error("CRL has no issuing distribution point")
}

// TestCRLOpenSSL has openssl verify every CRL's signature and use the
// CRLs to reject a revoked certificate and accept a good one.
func TestCRLOpenSSL(t *testing.T) {
	e := newEnv(t, envOptions{})
	good := e.issue(e.sub, "good.example")
	bad := e.issue(e.sub, "bad.example")
	pgood := e.issue(e.parts, "pgood.example")
	pbad := e.issue(e.parts, "pbad.example")
	e.revoke(e.sub, bad, 4)
	e.revoke(e.parts, pbad, 1)
	srv := e.server() // not running: CRLs are built on first request

	dir := t.TempDir()
	root := writePEM(t, dir, "root.pem", e.root.cert)
	subChain := writePEM(t, dir, "sub-chain.pem", e.sub.cert, e.root.cert)
	partsChain := writePEM(t, dir, "parts-chain.pem", e.parts.cert, e.root.cert)
	paths := []struct{ path, chain string }{
		{"/crl/root.crl", root}, {"/crl/sub.crl", subChain}, {"/crl/parts.crl", partsChain},
	}
	for i := range 4 {
		paths = append(paths, struct{ path, chain string }{"/crl/parts/" + string(rune('0'+i)) + ".crl", partsChain})
	}
	for _, p := range paths {
		res, der := get(t, srv.URL+p.path)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", p.path, res.Status)
		}
		file := writeFile(t, dir, "x.crl", der)
		out, err := openssl(t, "crl", "-inform", "DER", "-in", file, "-CAfile", p.chain, "-noout")
		if err != nil || !strings.Contains(out, "verify OK") {
			t.Errorf("openssl crl %s: %v\n%s", p.path, err, out)
		}
	}

	pemOf := func(path string) string {
		res, body := get(t, srv.URL+path)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", path, res.Status)
		}
		return writeFile(t, dir, filepath.Base(filepath.Dir(path))+"-"+filepath.Base(path), body)
	}
	rootCRL := pemOf("/crl/root.pem")
	subCRL := pemOf("/crl/sub.pem")
	for _, tc := range []struct {
		name    string
		leaf    *testCA
		cert    *x509.Certificate
		crl     string
		revoked bool
	}{
		{"ok/sub", e.sub, good, subCRL, false},
		{"fail/sub", e.sub, bad, subCRL, true},
		{"ok/partition", e.parts, pgood, pemOf("/crl/parts/" + string(rune('0'+partitionOf(pgood.SerialNumber, 4))) + ".pem"), false},
		{"fail/partition", e.parts, pbad, pemOf("/crl/parts/" + string(rune('0'+partitionOf(pbad.SerialNumber, 4))) + ".pem"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leaf := writePEM(t, dir, "leaf.pem", tc.cert)
			inter := writePEM(t, dir, "inter.pem", tc.leaf.cert)
			// -crl_check_all checks the intermediate against the root's CRL too.
			out, err := openssl(t, "verify", "-crl_check_all", "-CRLfile", tc.crl, "-CRLfile", rootCRL,
				"-CAfile", root, "-untrusted", inter, leaf)
			switch {
			case tc.revoked && (err == nil || !strings.Contains(out, "certificate revoked")):
				t.Errorf("openssl verify accepted a revoked certificate: %v\n%s", err, out)
			case !tc.revoked && (err != nil || !strings.Contains(out, ": OK")):
				t.Errorf("openssl verify rejected a good certificate: %v\n%s", err, out)
			}
		})
	}
}

// TestCRLNumberIncreasesAcrossRestart: a new Service on the same store
// (reopened) continues the numbers.
func TestCRLNumberIncreasesAcrossRestart(t *testing.T) {
	e := newEnv(t, envOptions{})
	srv := e.server()
	first := fetchCRL(t, srv.URL+"/crl/sub.crl", e.sub.cert)
	bad := e.issue(e.sub, "bad.example")
	if _, err := e.st.RevokeCertificate(e.ctx, e.sub.id(), pki.SerialHex(bad.SerialNumber), 1, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}
	e.st = e.openStore()
	e.svc = e.newService()
	srv2 := e.server()
	second := fetchCRL(t, srv2.URL+"/crl/sub.crl", e.sub.cert)
	if second.Number.Cmp(first.Number) <= 0 {
		t.Fatalf("CRL number after restart %s, before %s", second.Number, first.Number)
	}
	if len(second.RevokedCertificateEntries) != 1 {
		t.Errorf("CRL after restart has %d entries, want 1", len(second.RevokedCertificateEntries))
	}
}

// TestPartitionCRLs: each partition's CRL holds only its own revocations
// and names its own URL in a critical IDP; the full CRL holds all.
func TestPartitionCRLs(t *testing.T) {
	e := newEnv(t, envOptions{})
	byPart := map[int][]*x509.Certificate{}
	for i := 0; len(byPart) < 4 || i < 12; i++ {
		c := e.issue(e.parts, "p"+string(rune('a'+i))+".example")
		p := partitionOf(c.SerialNumber, 4)
		byPart[p] = append(byPart[p], c)
		if i > 200 {
			t.Fatal("could not fill every partition")
		}
	}
	victim := byPart[2][0]
	e.run()
	srv := e.server()
	before := fetchCRL(t, srv.URL+"/crl/parts/0.crl", e.parts.cert)
	e.revoke(e.parts, victim, 3)
	eventually(t, time.Second, "partition 2 and the full CRL list the revocation", func() bool {
		return len(fetchCRL(t, srv.URL+"/crl/parts/2.crl", e.parts.cert).RevokedCertificateEntries) == 1 &&
			len(fetchCRL(t, srv.URL+"/crl/parts.crl", e.parts.cert).RevokedCertificateEntries) == 1
	})
	for p := range 4 {
		url := testBase + "/crl/parts/" + string(rune('0'+p)) + ".crl"
		crl := fetchCRL(t, srv.URL+"/crl/parts/"+string(rune('0'+p))+".crl", e.parts.cert)
		checkIDP(t, crl, url)
		got := revokedSerials(crl)
		if p == 2 {
			if _, ok := got[pki.SerialHex(victim.SerialNumber)]; !ok || len(got) != 1 {
				t.Errorf("partition 2 lists %v, want only %s", got, pki.SerialHex(victim.SerialNumber))
			}
		} else if len(got) != 0 {
			t.Errorf("partition %d lists %v, want nothing", p, got)
		}
	}
	// An unchanged partition keeps its CRL (and number) on a change elsewhere.
	if after := fetchCRL(t, srv.URL+"/crl/parts/0.crl", e.parts.cert); after.Number.Cmp(before.Number) != 0 {
		t.Errorf("partition 0 republished (%s -> %s) though nothing changed in it", before.Number, after.Number)
	}
	full := fetchCRL(t, srv.URL+"/crl/parts.crl", e.parts.cert)
	checkNoIDP(t, full)
	if got := revokedSerials(full); len(got) != 1 {
		t.Errorf("full CRL lists %v", got)
	}
	for _, path := range []string{"/crl/parts/4.crl", "/crl/parts/01.crl", "/crl/sub/0.crl", "/crl/parts/-1.crl", "/crl/parts/+1.crl"} {
		if res, _ := get(t, srv.URL+path); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", path, res.Status)
		}
	}
}

// TestHoldAndRelease: a certificate on hold is listed with reason
// certificateHold; released, it leaves the next CRL.
func TestHoldAndRelease(t *testing.T) {
	e := newEnv(t, envOptions{})
	held := e.issue(e.sub, "held.example")
	e.run()
	srv := e.server()
	url := srv.URL + "/crl/sub.crl"
	e.revoke(e.sub, held, store.ReasonCertificateHold)
	eventually(t, time.Second, "hold on the CRL", func() bool {
		r, ok := revokedSerials(fetchCRL(t, url, e.sub.cert))[pki.SerialHex(held.SerialNumber)]
		return ok && r == store.ReasonCertificateHold
	})
	e.unhold(e.sub, held)
	eventually(t, time.Second, "released certificate off the CRL", func() bool {
		return len(fetchCRL(t, url, e.sub.cert).RevokedCertificateEntries) == 0
	})
}

// TestExpiredLeaveCRL: an expired certificate stays for one CRL validity
// after it expires (RFC 5280 §3.3), then leaves; KeepExpired keeps it.
func TestExpiredLeaveCRL(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(map[bool]string{false: "ok/default", true: "ok/keep-expired"}[keep], func(t *testing.T) {
			now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
			e := newEnv(t, envOptions{now: now, cfg: func(c *Config) { c.KeepExpired = keep }})
			short := e.issue(e.sub, "short.example", leafOptions{notAfter: now.Add(time.Hour)})
			e.revoke(e.sub, short, 1)
			e.svc.flush(e.ctx)
			listed := func() bool {
				a, _ := e.svc.byName.Load("sub")
				crl := parseCRL(t, a.(*authority).scopes[0].cur.Load().der, e.sub.cert)
				return len(crl.RevokedCertificateEntries) == 1
			}
			if !listed() {
				t.Fatal("revoked certificate not listed")
			}
			// Expired, but not yet one validity ago: still listed.
			e.svc.sweep(e.ctx, e.clock.Advance(DefaultCRLValidity/2))
			if !listed() {
				t.Fatal("certificate left the CRL right after expiring")
			}
			e.svc.sweep(e.ctx, e.clock.Advance(DefaultCRLValidity))
			if listed() != keep {
				t.Fatalf("expired for over a validity: listed %v, want %v", !keep, keep)
			}
		})
	}
}

// TestOfflineCAKeepsLastCRL: a CA that cannot sign serves its last CRL.
func TestOfflineCAKeepsLastCRL(t *testing.T) {
	e := newEnv(t, envOptions{})
	bad := e.issue(e.sub, "bad.example")
	srv := e.server()
	first := fetchCRL(t, srv.URL+"/crl/sub.crl", e.sub.cert)
	e.keys.setOffline(e.sub.id(), true)
	e.keys.setOffline(e.root.id(), true)
	e.revoke(e.sub, bad, 1)
	e.svc.flush(e.ctx)
	e.svc.sweep(e.ctx, e.clock.Advance(DefaultCRLValidity/2+time.Second))
	again := fetchCRL(t, srv.URL+"/crl/sub.crl", e.sub.cert)
	if again.Number.Cmp(first.Number) != 0 {
		t.Fatalf("offline CA published CRL %s", again.Number)
	}
	// Never built and cannot sign: 503, not a panic or 500.
	if res, _ := get(t, srv.URL+"/crl/root.crl"); res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("CRL of an offline CA never built: %s, want 503", res.Status)
	}
	// Back online, the pending change is published by the next sweep.
	e.keys.setOffline(e.sub.id(), false)
	e.svc.Notify(e.sub.id(), "", e.clock.Now())
	e.svc.flush(e.ctx)
	if crl := fetchCRL(t, srv.URL+"/crl/sub.crl", e.sub.cert); len(crl.RevokedCertificateEntries) != 1 {
		t.Errorf("after coming back online: %d entries", len(crl.RevokedCertificateEntries))
	}
}

// TestCRLBadPaths: unknown CAs and malformed paths are 4xx, never 5xx.
func TestCRLBadPaths(t *testing.T) {
	e := newEnv(t, envOptions{})
	srv := e.server()
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/crl/sub.crl", 200},
		{"HEAD", "/crl/sub.crl", 200},
		{"GET", "/crl/nope.crl", 404},
		{"GET", "/crl/", 404},
		{"GET", "/crl/.crl", 404},
		{"GET", "/crl/sub", 404},
		{"GET", "/crl/sub.der", 404},
		{"GET", "/crl/sub/x.crl", 404},
		{"GET", "/crl/sub/0/1.crl", 404},
		{"GET", "/crl/%zz.crl", 400},
		{"GET", "/crl/a%2Fb.crl", 404},
		{"GET", "/crl/" + strings.Repeat("a", 300) + ".crl", 404},
		{"GET", "/crl/sub%00.crl", 404},
		{"GET", "/crl/parts/99999999.crl", 404},
		{"POST", "/crl/sub.crl", 405},
		{"GET", "/other", 404},
	} {
		req, err := http.NewRequest(tc.method, srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Opaque = tc.path // sent as is, malformed escapes included
		res, body := do(t, req)
		if res.StatusCode != tc.want {
			t.Errorf("%s %s: %s (%s), want %d", tc.method, tc.path, res.Status, bytes.TrimSpace(body), tc.want)
		}
	}
}

// TestCurrentCRL: the full CRL, built on first use, the same slice while
// it is current, a new one after a change, and the last one kept for a CA
// that can no longer sign; an unknown CA is an error.
func TestCurrentCRL(t *testing.T) {
	e := newEnv(t, envOptions{})
	doomed := e.issue(e.sub, "doomed.example")
	first, err := e.svc.CurrentCRL(e.ctx, e.sub.id())
	if err != nil {
		t.Fatal(err)
	}
	if crl := parseCRL(t, first, e.sub.cert); len(crl.RevokedCertificateEntries) != 0 {
		t.Fatalf("first CRL has %d entries", len(crl.RevokedCertificateEntries))
	}
	again, err := e.svc.CurrentCRL(e.ctx, e.sub.id())
	if err != nil || &again[0] != &first[0] || len(again) != len(first) {
		t.Fatalf("second call: %v, same slice %v", err, err == nil && &again[0] == &first[0])
	}
	e.run()
	e.revoke(e.sub, doomed, 1)
	eventually(t, 2*time.Second, "CurrentCRL lists the revocation", func() bool {
		der, err := e.svc.CurrentCRL(e.ctx, e.sub.id())
		return err == nil && len(parseCRL(t, der, e.sub.cert).RevokedCertificateEntries) == 1
	})
	// Partitioned CAs: the full CRL, which has no issuing distribution point.
	der, err := e.svc.CurrentCRL(e.ctx, e.parts.id())
	if err != nil {
		t.Fatal(err)
	}
	for _, ext := range parseCRL(t, der, e.parts.cert).Extensions {
		if ext.Id.Equal(oidIDP) {
			t.Error("the CRL of a partitioned CA is a partition CRL")
		}
	}
	// Offline: the last CRL stays; never built: an error.
	last, _ := e.svc.CurrentCRL(e.ctx, e.sub.id())
	e.keys.setOffline(e.sub.id(), true)
	if der, err := e.svc.CurrentCRL(e.ctx, e.sub.id()); err != nil || !bytes.Equal(der, last) {
		t.Errorf("offline CA: %v", err)
	}
	fresh := e.newService()
	if _, err := fresh.CurrentCRL(e.ctx, e.sub.id()); err == nil {
		t.Error("an offline CA with no CRL built yet gave one")
	}
	if _, err := e.svc.CurrentCRL(e.ctx, "no-such-ca"); err == nil {
		t.Error("an unknown CA has a CRL")
	}
}

// TestRunRepublishesAtStart plays a failover between two nodes on one
// store: node b serves a CRL built on request while node a publishes; a
// publishes a newer one; when b takes over publishing (its Run starts), the
// CRL it serves has a number above a's, though its own was not due.
func TestRunRepublishesAtStart(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.svc
	b := e.newService()
	bad := e.issue(e.sub, "bad.example")
	srvB := httptest.NewServer(b.Handler())
	t.Cleanup(srvB.Close)
	onB := fetchCRL(t, srvB.URL+"/crl/sub.crl", e.sub.cert) // built on request

	e.revoke(e.sub, bad, 1)
	a.Notify(e.sub.id(), pki.SerialHex(bad.SerialNumber), e.clock.Now())
	a.flush(e.ctx)
	onA, err := a.CurrentCRL(e.ctx, e.sub.id())
	if err != nil {
		t.Fatal(err)
	}
	numA := parseCRL(t, onA, e.sub.cert).Number
	if numA.Cmp(onB.Number) <= 0 {
		t.Fatalf("node a published %s, not above node b's %s", numA, onB.Number)
	}

	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := fetchCRL(t, srvB.URL+"/crl/sub.crl", e.sub.cert)
		if got.Number.Cmp(numA) > 0 {
			if len(got.RevokedCertificateEntries) != 1 {
				t.Fatalf("node b's CRL %s lists %d entries, want 1", got.Number, len(got.RevokedCertificateEntries))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node b still serves CRL %s, not above node a's %s", got.Number, numA)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPublishChangesWithoutRun is a node that does not hold the lease: Run
// is not running, and a revocation made through it still reaches its CRL
// within a second.
func TestPublishChangesWithoutRun(t *testing.T) {
	e := newEnv(t, envOptions{})
	bad := e.issue(e.sub, "bad.example")
	srv := e.server()
	first := fetchCRL(t, srv.URL+"/crl/sub.crl", e.sub.cert)
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- e.svc.PublishChanges(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("PublishChanges: %v", err)
		}
	})
	e.revoke(e.sub, bad, 1)
	var crl *x509.RevocationList
	eventually(t, time.Second, "the CRL lists the revocation", func() bool {
		crl = fetchCRL(t, srv.URL+"/crl/sub.crl", e.sub.cert)
		return len(crl.RevokedCertificateEntries) == 1
	})
	if crl.Number.Cmp(first.Number) <= 0 {
		t.Errorf("CRL number %s does not follow %s", crl.Number, first.Number)
	}
}
