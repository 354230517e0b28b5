package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/trustgate/trustgate/internal/api/client"
	"github.com/trustgate/trustgate/internal/apiv1"
	"github.com/trustgate/trustgate/internal/ca"
	"github.com/trustgate/trustgate/internal/fault"
	"github.com/trustgate/trustgate/internal/pki"
)

// TestCARotation rotates the demo intermediate through the API over TLS
// and checks what a rotation promises: issuance through the old name
// chains to the successor, a trust store holding the old CA holds both,
// openssl verifies a leaf of each generation against the store's bundle,
// and the old CA's CRL and OCSP still answer for its certificates.
func TestCARotation(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not found")
	}
	s, files := prepareTestDev(t, "", nil)
	ctx := context.Background()
	if _, err := s.TrustStores.Create(ctx, apiv1.CreateTrustStoreRequest{Name: "partners", CAs: []string{DemoIntermediate}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TrustStores.Create(ctx, apiv1.CreateTrustStoreRequest{Name: "roots-only", CAs: []string{DemoRoot}}); err != nil {
		t.Fatal(err)
	}
	old, err := s.CA.GetCA(ctx, DemoIntermediate)
	if err != nil {
		t.Fatal(err)
	}
	leafOld, err := s.CA.Issue(ctx, ca.IssueRequest{CA: DemoIntermediate, Profile: "client", CommonName: "gen-1", Validity: "1d", Requester: "test"})
	if err != nil {
		t.Fatal(err)
	}

	// The control plane, and the operator's client over TLS.
	cpCtx, stopCP := context.WithCancel(ctx)
	apiAddr := make(chan string, 1)
	cpDone := make(chan error, 1)
	go func() { cpDone <- s.Run(cpCtx, func(api, _ string) { apiAddr <- api }) }()
	t.Cleanup(func() { stopCP(); <-cpDone })
	var addr string
	select {
	case addr = <-apiAddr:
	case err := <-cpDone:
		t.Fatalf("control plane: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the control plane did not start")
	}
	tok, err := os.ReadFile(files.Token)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(client.Config{Addr: "https://" + addr, Token: strings.TrimSpace(string(tok)), CACertFile: files.Root})
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, ca string
		req      apiv1.RotateCARequest
		status   int
		msg      string
	}{
		{"fail/root", DemoRoot, apiv1.RotateCARequest{}, 400, "is a root"},
		{"fail/unknown", "nope", apiv1.RotateCARequest{}, 404, "does not exist"},
		{"fail/bad-name", DemoIntermediate, apiv1.RotateCARequest{Name: "Bad Name"}, 400, "is invalid"},
		{"fail/bad-validity", DemoIntermediate, apiv1.RotateCARequest{Validity: "forever"}, 400, "validity"},
		{"fail/past-parent", DemoIntermediate, apiv1.RotateCARequest{Validity: "100y"}, 400, "after the parent CA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cl.RotateCA(ctx, tc.ca, tc.req)
			var ae *client.Error
			if !errors.As(err, &ae) || ae.Status != tc.status || !strings.Contains(ae.Message, tc.msg) {
				t.Errorf("RotateCA = %v, want HTTP %d mentioning %q", err, tc.status, tc.msg)
			}
		})
	}

	rot, err := cl.RotateCA(ctx, DemoIntermediate, apiv1.RotateCARequest{})
	if err != nil {
		t.Fatal(err)
	}
	if rot.Generation != 2 || rot.Successor.Name != DemoIntermediate+"-g2" || rot.Old.Successor != rot.Successor.Name ||
		rot.Successor.Predecessor != DemoIntermediate || rot.Successor.Parent != DemoRoot {
		t.Errorf("rotation: %+v", rot)
	}
	if !strings.Contains(rot.Successor.Subject, "Trustgate Demo Intermediate CA G2") || rot.Successor.Serial == rot.Old.Serial {
		t.Errorf("successor subject %q serial %s", rot.Successor.Subject, rot.Successor.Serial)
	}
	if len(rot.TrustStores) != 1 || rot.TrustStores[0] != "partners" || rot.Warning != "" {
		t.Errorf("trust stores changed %v, warning %q; want [partners]", rot.TrustStores, rot.Warning)
	}

	// New issuance through the old name chains to the successor.
	leafNew, err := s.CA.Issue(ctx, ca.IssueRequest{CA: DemoIntermediate, Profile: "client", CommonName: "gen-2", Validity: "1d", Requester: "test"})
	if err != nil {
		t.Fatal(err)
	}
	succCert, err := x509.ParseCertificate(leafNew.Chain[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := leafNew.Cert.CheckSignatureFrom(succCert); err != nil || !strings.HasSuffix(succCert.Subject.CommonName, " G2") {
		t.Errorf("a leaf issued after rotation is not signed by the successor (%s): %v", succCert.Subject, err)
	}
	if got := leafNew.Cert.CRLDistributionPoints; len(got) != 1 || !strings.Contains(got[0], DemoIntermediate+"-g2") {
		t.Errorf("the new leaf's CRL URL %v does not name the successor", got)
	}

	// The trust store holds both generations, the other store neither.
	ts, err := cl.GetTrustStore(ctx, "partners")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range ts.CAs {
		names = append(names, c.Ref)
	}
	if len(names) != 2 || ts.Version != 2 {
		t.Errorf("trust store partners: CAs %v version %d, want both generations at version 2", names, ts.Version)
	}
	if ts, _ := cl.GetTrustStore(ctx, "roots-only"); ts == nil || len(ts.CAs) != 1 || ts.Version != 1 {
		t.Errorf("trust store roots-only changed: %+v", ts)
	}

	// openssl verifies a leaf of each generation against the bundle.
	bundle, err := s.TrustStores.Bundle(ctx, "partners")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	bundleFile := filepath.Join(work, "bundle.pem")
	writeFile(t, bundleFile, bundle)
	for _, l := range []struct {
		name string
		der  []byte
	}{{"gen-1", leafOld.Cert.Raw}, {"gen-2", leafNew.Cert.Raw}} {
		f := filepath.Join(work, l.name+".pem")
		writeFile(t, f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: l.der}))
		// The bundle holds the intermediates (a gateway's trust anchors),
		// not the root: -partial_chain lets them anchor.
		out, err := exec.Command("openssl", "verify", "-partial_chain", "-purpose", "sslclient", "-CAfile", bundleFile, f).CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte(": OK")) {
			t.Errorf("openssl verify %s: %v\n%s", l.name, err, out)
		}
	}

	// The old CA still answers CRL and OCSP for its certificates.
	oldSerial := pki.SerialHex(leafOld.Cert.SerialNumber)
	if _, err := cl.Revoke(ctx, oldSerial, "keyCompromise"); err != nil {
		t.Fatal(err)
	}
	// CRLs and OCSP are served on the API listener too.
	rootPEM, err := os.ReadFile(files.Root)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"}}}
	base := "https://" + addr
	oldCert, err := x509.ParseCertificate(old.CertDER)
	if err != nil {
		t.Fatal(err)
	}
	var crl *x509.RevocationList
	waitFor(t, 10*time.Second, "the old CA's CRL to list the revoked leaf", func() bool {
		der := get(t, hc, base+"/crl/"+DemoIntermediate+".crl")
		if crl, err = x509.ParseRevocationList(der); err != nil {
			return false
		}
		for _, e := range crl.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(leafOld.Cert.SerialNumber) == 0 {
				return true
			}
		}
		return false
	})
	if err := crl.CheckSignatureFrom(oldCert); err != nil {
		t.Errorf("the old CA's CRL is not signed by it: %v", err)
	}
	req, err := ocsp.CreateRequest(leafOld.Cert, oldCert, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Post(base+"/ocsp/"+DemoIntermediate, "application/ocsp-request", bytes.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	or, err := ocsp.ParseResponseForCert(body, leafOld.Cert, oldCert)
	if err != nil || or.Status != ocsp.Revoked {
		t.Errorf("OCSP of the old CA for its revoked leaf: %v, status %v", err, or)
	}

	// The successor keeps the constraints of its predecessor.
	pl := 0
	if _, err := s.CA.CreateCA(ctx, ca.CreateRequest{Name: "partner", Parent: DemoRoot, PathLen: &pl, CRLPartitions: 4,
		NameConstraints: pki.NameConstraintsInput{PermittedDNS: []string{"partner.example"}}}); err != nil {
		t.Fatal(err)
	}
	prot, err := cl.RotateCA(ctx, "partner", apiv1.RotateCARequest{Name: "partner-2027"})
	if err != nil {
		t.Fatal(err)
	}
	if prot.Successor.Name != "partner-2027" || prot.Successor.CRLPartitions != 4 || prot.Successor.PathLen == nil || *prot.Successor.PathLen != 0 ||
		prot.Successor.NameConstraints == nil || len(prot.Successor.NameConstraints.PermittedDNS) != 1 {
		t.Errorf("the successor lost constraints: %+v", prot.Successor)
	}
	if _, err := s.CA.Issue(ctx, ca.IssueRequest{CA: "partner", Profile: "server", CommonName: "x.other.example", Requester: "test"}); !fault.Is(err, fault.Denied) {
		t.Errorf("issuance outside the successor's name constraints: %v", err)
	}

	// A second rotation through the first name rotates the newest.
	rot3, err := cl.RotateCA(ctx, DemoIntermediate, apiv1.RotateCARequest{})
	if err != nil {
		t.Fatal(err)
	}
	if rot3.Generation != 3 || rot3.Old.Name != DemoIntermediate+"-g2" || rot3.Successor.Name != DemoIntermediate+"-g3" {
		t.Errorf("second rotation: generation %d, %s -> %s", rot3.Generation, rot3.Old.Name, rot3.Successor.Name)
	}
	if ts, _ := cl.GetTrustStore(ctx, "partners"); ts == nil || len(ts.CAs) != 3 {
		t.Errorf("after two rotations partners holds %+v, want three generations", ts)
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, hc *http.Client, url string) []byte {
	t.Helper()
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
