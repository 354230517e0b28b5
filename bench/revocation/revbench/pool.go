package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/trustgate/trustgate/internal/apiv1"
)

// pool is a set of certificates of one issuer and the OCSP request for
// each (one SHA-1 CertID, no nonce: what RFC 5019 clients send).
type pool struct {
	IssuerDER []byte      `json:"issuer_der"`
	Entries   []poolEntry `json:"entries"`

	issuer *x509.Certificate
}

type poolEntry struct {
	Serial  string `json:"serial"` // lower-case hex, as the API shows it
	CertDER []byte `json:"cert_der"`
	ReqDER  []byte `json:"request_der"`

	cert   *x509.Certificate
	serial []byte // DER INTEGER content octets
}

func (p *pool) save(path string) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func loadPool(path string) (*pool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var p pool
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if p.issuer, err = x509.ParseCertificate(p.IssuerDER); err != nil {
		return nil, fmt.Errorf("%s: issuer: %w", path, err)
	}
	if len(p.Entries) == 0 {
		return nil, fmt.Errorf("%s: no entries", path)
	}
	for i := range p.Entries {
		e := &p.Entries[i]
		if e.cert, err = x509.ParseCertificate(e.CertDER); err != nil {
			return nil, fmt.Errorf("%s: entry %d: %w", path, i, err)
		}
		e.serial = serialContent(e.cert.SerialNumber)
	}
	return &p, nil
}

// addEntry appends cert with its OCSP request.
func (p *pool) addEntry(cert *x509.Certificate) error {
	req, err := ocsp.CreateRequest(cert, p.issuer, nil) // SHA-1 CertID, no nonce
	if err != nil {
		return err
	}
	p.Entries = append(p.Entries, poolEntry{Serial: cert.SerialNumber.Text(16), CertDER: cert.Raw, ReqDER: req, cert: cert})
	return nil
}

// firstCert parses the first PEM certificate in s.
func firstCert(s string) (*x509.Certificate, error) {
	b, _ := pem.Decode([]byte(s))
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}

// cmdIssue issues certificates through Trustgate's API (server-generated
// keys; the keys are not kept) and writes them as a pool.
func cmdIssue(args []string) error {
	fs := flag.NewFlagSet("issue", flag.ExitOnError)
	addr := fs.String("addr", "", "API address (default $TRUSTGATE_ADDR)")
	token := fs.String("token", "", "API token (default $TRUSTGATE_TOKEN)")
	cacert := fs.String("cacert", "", "PEM roots for the API (default $TRUSTGATE_CACERT)")
	ca := fs.String("ca", "demo-intermediate", "issuing CA")
	profile := fs.String("profile", "client", "certificate profile")
	prefix := fs.String("prefix", "ocsp-bench", "common name prefix")
	n := fs.Int("n", 200, "certificates to issue")
	c := fs.Int("c", 4, "concurrent requests")
	out := fs.String("out", "pool.json", "pool file to write")
	fs.Parse(args)
	api, err := newAPIClient(*addr, *token, *cacert)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	certs := make([]*x509.Certificate, *n)
	var issuer atomic.Pointer[x509.Certificate]
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, *c)
	start := time.Now()
	for range *c {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= *n {
					return
				}
				var resp apiv1.IssueResponse
				req := apiv1.IssueRequest{CA: *ca, Profile: *profile, CommonName: *prefix + "-" + strconv.Itoa(i)}
				if err := api.do(ctx, "POST", "/v1/certificates", req, &resp); err != nil {
					errs <- err
					cancel()
					return
				}
				cert, err := firstCert(resp.CertificatePEM)
				if err == nil && issuer.Load() == nil {
					var is *x509.Certificate
					if is, err = firstCert(resp.ChainPEM); err == nil {
						issuer.CompareAndSwap(nil, is)
					}
				}
				if err != nil {
					errs <- fmt.Errorf("certificate %d: %w", i, err)
					cancel()
					return
				}
				certs[i] = cert
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	p := &pool{issuer: issuer.Load()}
	p.IssuerDER = p.issuer.Raw
	for _, cert := range certs {
		if err := cert.CheckSignatureFrom(p.issuer); err != nil {
			return fmt.Errorf("certificate %s not signed by %s: %w", cert.SerialNumber.Text(16), p.issuer.Subject, err)
		}
		if err := p.addEntry(cert); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "issued %d certificates from %s in %s\n", *n, *ca, time.Since(start).Round(time.Millisecond))
	return p.save(*out)
}

// oidOCSPNoCheck is id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1).
var oidOCSPNoCheck = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}

// cmdMkPKI makes what OpenSSL's responder needs for a like-for-like peer of
// Trustgate's demo-intermediate: an ECDSA P-256 CA, a delegated responder
// certificate (P-256, EKU OCSPSigning, ocsp-nocheck, 48 hours, as
// Trustgate's), n certificates with 20-octet random serials, the
// index.txt listing them as valid, and the pool file.
func cmdMkPKI(args []string) error {
	fs := flag.NewFlagSet("mkpki", flag.ExitOnError)
	n := fs.Int("n", 200, "certificates")
	dir := fs.String("dir", ".", "output directory: ca.pem, rsigner.pem, rsigner.key, index.txt, pool.json")
	fs.Parse(args)
	now := time.Now().Truncate(time.Second)
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          randSerial(),
		Subject:               pkix.Name{Organization: []string{"Bench"}, CommonName: "OpenSSL responder bench CA"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	rKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	null, _ := asn1.Marshal(asn1.NullRawValue)
	rDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber:    randSerial(),
		Subject:         pkix.Name{CommonName: "OpenSSL bench OCSP responder"},
		NotBefore:       now.Add(-time.Minute),
		NotAfter:        now.Add(48 * time.Hour),
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning},
		ExtraExtensions: []pkix.Extension{{Id: oidOCSPNoCheck, Value: null}},
	}, caCert, rKey.Public(), caKey)
	if err != nil {
		return err
	}
	rKeyDER, err := x509.MarshalPKCS8PrivateKey(rKey)
	if err != nil {
		return err
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	p := &pool{IssuerDER: caDER, issuer: caCert}
	var index strings.Builder
	for i := range *n {
		notAfter := now.Add(30 * 24 * time.Hour)
		der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
			SerialNumber: randSerial(),
			Subject:      pkix.Name{CommonName: "ocsp-bench-openssl-" + strconv.Itoa(i)},
			NotBefore:    now.Add(-time.Minute), NotAfter: notAfter,
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}, caCert, leafKey.Public(), caKey)
		if err != nil {
			return err
		}
		cert, _ := x509.ParseCertificate(der)
		if err := p.addEntry(cert); err != nil {
			return err
		}
		// index.txt (openssl ca's database): status, expiry (UTCTime),
		// revocation time (empty), serial in upper-case hex of whole
		// octets (BN_bn2hex), file name, subject.
		fmt.Fprintf(&index, "V\t%s\t\t%X\tunknown\t/CN=%s\n", notAfter.UTC().Format("060102150405Z"), cert.SerialNumber.Bytes(), cert.Subject.CommonName)
	}
	files := map[string][]byte{
		"ca.pem":      pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		"rsigner.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rDER}),
		"rsigner.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: rKeyDER}),
		"index.txt":   []byte(index.String()),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(*dir, name), b, 0o600); err != nil {
			return err
		}
	}
	return p.save(filepath.Join(*dir, "pool.json"))
}

// randSerial is a positive 20-octet serial whose first octet is neither 0
// nor has the top bit set, so its DER and hex forms have exactly 20 octets.
func randSerial() *big.Int {
	b := make([]byte, 20)
	rand.Read(b)
	b[0] = b[0]&0x7f | 0x01
	return new(big.Int).SetBytes(b)
}

// ocspURL is the RFC 5019 GET URL of entry e under base (the responder's
// URL without a trailing slash).
func ocspURL(base string, e *poolEntry) string {
	return strings.TrimRight(base, "/") + "/" + escapeB64(base64.StdEncoding.EncodeToString(e.ReqDER))
}

// cmdPrefetch GETs the answer for every pool entry from a responder,
// checks it in full and writes it to DIR/<index>.der for a static server.
func cmdPrefetch(args []string) error {
	fs := flag.NewFlagSet("prefetch", flag.ExitOnError)
	poolPath := fs.String("pool", "pool.json", "pool file")
	base := fs.String("url", "", "responder URL, e.g. http://127.0.0.1:9080/ocsp/demo-intermediate")
	dir := fs.String("dir", ".", "where to write <index>.der")
	fs.Parse(args)
	p, err := loadPool(*poolPath)
	if err != nil {
		return err
	}
	for i := range p.Entries {
		e := &p.Entries[i]
		body, err := fetchVerified(ocspURL(*base, e), e, p.issuer)
		if err != nil {
			return fmt.Errorf("entry %d (serial %s): %w", i, e.Serial, err)
		}
		if err := os.WriteFile(filepath.Join(*dir, strconv.Itoa(i)+".der"), body, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "prefetched and verified %d answers into %s\n", len(p.Entries), *dir)
	return nil
}

// fetchVerified GETs rawURL and checks the answer in full for e: HTTP 200,
// signature, status good.
func fetchVerified(rawURL string, e *poolEntry, issuer *x509.Certificate) ([]byte, error) {
	addr, req, err := getRequest(rawURL)
	if err != nil {
		return nil, err
	}
	k := newRawConn(addr, 5*time.Second)
	defer k.close()
	code, body, err := k.do(req)
	if err != nil {
		return nil, err
	}
	if code != 200 {
		return nil, fmt.Errorf("HTTP %d", code)
	}
	r, err := fullCheck(body, e.cert, issuer, time.Now())
	if err != nil {
		return nil, err
	}
	if r.Status != ocsp.Good {
		return nil, fmt.Errorf("status %d, want good", r.Status)
	}
	return append([]byte(nil), body...), nil
}
