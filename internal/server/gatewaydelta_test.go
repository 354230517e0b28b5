package server

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/gateway"
	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/store"
)

// TestGatewayDeltaCRLs runs a real control plane and a real gateway that
// long-polls its trust store. Once the gateway holds the issuing CA's full
// CRL, a revocation and a release from hold reach it as delta CRLs: it
// compiles no full CRL again, the snapshot on disk carries the delta, and
// over real TLS handshakes it refuses the revoked client and accepts the
// released one. The control plane answers a request naming the full CRL
// held (number and digest) with a delta CRL and no full CRL, and one that
// names its number with another digest, or none, with the full CRL.
// Restarted from its snapshot file
// during an outage, the gateway still refuses the client revoked by the
// delta.
func TestGatewayDeltaCRLs(t *testing.T) {
	ctx := t.Context()
	s, files := prepareTestDev(t, "", nil)
	if _, err := s.TrustStores.Create(ctx, apiv1.CreateTrustStoreRequest{Name: "partners", CAs: []string{DemoIntermediate}}); err != nil {
		t.Fatal(err)
	}
	api, _ := runDev(t, s)
	proxy := newTCPProxy(t, api)

	client := func(name string) (tls.Certificate, string) { return issueClient(t, s, name) }
	good, _ := client("good")
	held, heldSerial := client("held")
	doomed, doomedSerial := client("doomed")
	if _, err := s.CA.Revoke(ctx, heldSerial, store.ReasonCertificateHold, "test"); err != nil {
		t.Fatal(err)
	}

	snapDir := t.TempDir()
	spec := partnersGateway(files, okBackend(t).URL, "https://"+proxy.addr, snapDir, 20*time.Second)
	startGW := func(t *testing.T) (*gateway.Gateway, *prometheus.Registry, func()) {
		return newRunningGateway(t, ctx, spec)
	}
	passes := mtlsProbe(t, files, "partners")
	check := func(t *testing.T, gw *gateway.Gateway, when string, want map[string]bool) {
		t.Helper()
		for name, cert := range map[string]tls.Certificate{"good": good, "held": held, "doomed": doomed} {
			if got := passes(gw, cert); got != want[name] {
				t.Errorf("%s: client %s passes %v, want %v", when, name, got, want[name])
			}
		}
	}
	applied := func(reg prometheus.Gatherer, kind string) float64 {
		return counter(t, reg, "trustgate_gateway_crls_applied_total", map[string]string{"listener": "partners", "kind": kind})
	}

	gw, reg, stopGW := startGW(t)
	waitFor(t, 10*time.Second, "the held client refused", func() bool { return !passes(gw, held) })
	check(t, gw, "at start", map[string]bool{"good": true, "held": false, "doomed": true})
	fullAtStart := applied(reg, "full")
	if fullAtStart != 1 {
		t.Fatalf("%v full CRLs compiled at start, want 1", fullAtStart)
	}
	file := filepath.Join(snapDir, "partners.snapshot.json")
	base := readSnapshot(t, file)
	if len(base.CRLs) != 1 {
		t.Fatalf("the snapshot on disk holds %d full CRLs, want 1", len(base.CRLs))
	}
	baseCRL, err := x509.ParseRevocationList(base.CRLs[0])
	if err != nil {
		t.Fatal(err)
	}

	// A revocation, then a release from hold: deltas, no full CRL.
	if _, err := s.CA.Revoke(ctx, doomedSerial, 1, "test"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the revocation enforced", func() bool { return !passes(gw, doomed) })
	if _, err := s.CA.Unhold(ctx, heldSerial, "test"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the release from hold enforced", func() bool { return passes(gw, held) })
	check(t, gw, "after the deltas", map[string]bool{"good": true, "held": true, "doomed": false})
	if full, delta := applied(reg, "full"), applied(reg, "delta"); full != fullAtStart || delta < 2 {
		t.Errorf("after a revocation and a release: %v full CRLs compiled (want %v, none more), %v deltas applied (want 2 or more)", full, fullAtStart, delta)
	}
	if served := counter(t, s.Registry, "trustgate_truststore_snapshot_crls_total", map[string]string{"kind": "delta"}); served < 2 {
		t.Errorf("the control plane counts %v delta CRLs served, want 2 or more", served)
	}
	onDisk := readSnapshot(t, file)
	if len(onDisk.CRLs) != 1 || len(onDisk.DeltaCRLs) != 1 || string(onDisk.CRLs[0]) != string(base.CRLs[0]) {
		t.Fatalf("the snapshot on disk: %d full CRLs (the one from the start: %v), %d deltas; want 1, true, 1",
			len(onDisk.CRLs), len(onDisk.CRLs) == 1 && string(onDisk.CRLs[0]) == string(base.CRLs[0]), len(onDisk.DeltaCRLs))
	}

	// What the control plane answers a gateway that holds the base CRL.
	admin := newAPIClient(t, api, files)
	baseKey := hex.EncodeToString(baseCRL.AuthorityKeyId)
	have := apiv1.HeldCRLs{baseKey: {Number: baseCRL.Number.Int64(), Digest: apiv1.DigestCRL(base.CRLs[0])}}
	snap, _, _, err := admin.WatchTrustStoreSnapshotSince(ctx, "partners", "", have, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.CRLs) != 0 || len(snap.DeltaCRLs) != 1 || !snap.HaveDigests {
		t.Fatalf("snapshot since the base CRL: %d full CRLs, %d deltas, digests read %v; want 0, 1, true", len(snap.CRLs), len(snap.DeltaCRLs), snap.HaveDigests)
	}
	// The same number with another digest (a CRL of other content under
	// that number), or no digest: the full CRL.
	for what, h := range map[string]apiv1.HeldCRL{
		"another digest": {Number: baseCRL.Number.Int64(), Digest: apiv1.DigestCRL([]byte("another CRL"))},
		"no digest":      {Number: baseCRL.Number.Int64()},
	} {
		other, _, _, err := admin.WatchTrustStoreSnapshotSince(ctx, "partners", "", apiv1.HeldCRLs{baseKey: h}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(other.CRLs) != 1 || len(other.DeltaCRLs) != 0 || len(other.UnchangedCRLs) != 0 {
			t.Errorf("snapshot since the base CRL's number with %s: %d full CRLs, %d deltas, %d unchanged; want 1, 0, 0",
				what, len(other.CRLs), len(other.DeltaCRLs), len(other.UnchangedCRLs))
		}
	}
	delta, err := x509.ParseRevocationList(snap.DeltaCRLs[0])
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := x509.ParseCertificate(snap.CACertificates[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := delta.CheckSignatureFrom(issuer); err != nil {
		t.Fatalf("delta CRL signature: %v", err)
	}
	reasons := map[string]int{}
	for _, e := range delta.RevokedCertificateEntries {
		reasons[pki.SerialHex(e.SerialNumber)] = e.ReasonCode
	}
	if len(reasons) != 2 || reasons[doomedSerial] != 1 || reasons[heldSerial] != 8 {
		t.Errorf("delta CRL entries %v, want %s revoked (1) and %s removed (8)", reasons, doomedSerial, heldSerial)
	}

	// An outage, and a restart from the snapshot on disk.
	proxy.cut()
	stopGW()
	gw, _, stopGW = startGW(t)
	defer stopGW()
	check(t, gw, "restarted during an outage", map[string]bool{"good": true, "held": true, "doomed": false})
}

// readSnapshot reads the snapshot a gateway keeps in file.
func readSnapshot(t *testing.T, file string) *apiv1.TrustStoreSnapshot {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Content struct {
			Snapshot *apiv1.TrustStoreSnapshot `json:"snapshot"`
		} `json:"content"`
	}
	if err := json.Unmarshal(b, &f); err != nil || f.Content.Snapshot == nil {
		t.Fatalf("snapshot file: %v", err)
	}
	return f.Content.Snapshot
}
