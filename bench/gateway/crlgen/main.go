// Command crlgen makes the large CRLs of bench/gateway/run.sh quickly, and
// measures what the gateway's trust store makes of them.
//
// Generate (the default): a CRL of -n random 128-bit serials (plus the
// serials of -revoke), signed by -ca-cert/-ca-key. x509.CreateRevocationList
// needs about 10 s and more than 1 GB for 1,000,000 entries, because every
// entry becomes a pkix structure and encoding/asn1 reflects over each;
// here crypto/x509 makes the CRL's header (an empty CRL: version, algorithm,
// issuer, dates, authority key identifier, CRL number), the entries are
// written straight as DER (35 bytes each) and spliced in, and the TBS is
// signed again. Memory is about the size of the entries (35 MB for 1M).
//
//	crlgen -ca-cert int.crt -ca-key int.key -n 1000000 -number 2 -revoke 1A2B... -out crl.der [-pem crl.pem]
//
// Measure (-measure): compiles a CRL the way the gateway does
// (internal/truststore/verify.CompileDER), and prints the compile time and
// the heap the compiled trust store keeps (after two GCs), and checks that
// -expect-revoked is refused with ClientCertCrlHit and -expect-ok accepted.
//
//	crlgen -measure -ca-file ca-bundle.crt -crl crl.der [-expect-revoked chain.pem] [-expect-ok chain.pem]
//
// It prints one JSON object.
package main

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/big"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/trustgate/trustgate/internal/truststore/verify"
)

var (
	caCert   = flag.String("ca-cert", "", "generate: issuer certificate (PEM)")
	caKey    = flag.String("ca-key", "", "generate: issuer private key (PEM: PKCS#8, SEC 1 or PKCS#1)")
	n        = flag.Int("n", 1000000, "generate: random serials to revoke")
	number   = flag.Int64("number", 1, "generate: cRLNumber")
	revoke   = flag.String("revoke", "", "generate: extra serials to revoke, hex, comma separated")
	validity = flag.Duration("validity", 7*24*time.Hour, "generate: nextUpdate - thisUpdate")
	out      = flag.String("out", "", "generate: DER output file")
	pemOut   = flag.String("pem", "", "generate: also write PEM here")

	measure  = flag.Bool("measure", false, "measure instead of generating")
	caFile   = flag.String("ca-file", "", "measure: the trust store's CA bundle (PEM)")
	crlFile  = flag.String("crl", "", "measure: the CRL (DER or PEM)")
	revoked  = flag.String("expect-revoked", "", "measure: a chain (PEM, leaf first) that must be refused as revoked")
	okChain  = flag.String("expect-ok", "", "measure: a chain (PEM, leaf first) that must be accepted")
	failFast = flag.Bool("strict", true, "measure: exit 1 when an expectation fails")
)

func main() {
	flag.Parse()
	var err error
	if *measure {
		err = doMeasure()
	} else {
		err = generate()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "crlgen:", err)
		os.Exit(1)
	}
}

func generate() error {
	if *caCert == "" || *caKey == "" || *out == "" {
		return errors.New("-ca-cert, -ca-key and -out are required")
	}
	t0 := time.Now()
	issuer, err := readCert(*caCert)
	if err != nil {
		return err
	}
	signer, err := readKey(*caKey)
	if err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Second)
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(*number),
		ThisUpdate: now.Add(-time.Hour),
		NextUpdate: now.Add(*validity),
	}
	// The header: an empty CRL from crypto/x509.
	skel, err := x509.CreateRevocationList(rand.Reader, tmpl, issuer, signer)
	if err != nil {
		return fmt.Errorf("CRL header: %w", err)
	}
	tbs, sigAlg, err := splitSigned(skel)
	if err != nil {
		return err
	}
	// TBSCertList's elements; revokedCertificates goes before the
	// [0] crlExtensions (RFC 5280 §5.1).
	var elems [][]byte
	for rest := tbs; len(rest) > 0; {
		var rv asn1.RawValue
		if rest, err = asn1.Unmarshal(rest, &rv); err != nil {
			return fmt.Errorf("CRL header: %w", err)
		}
		elems = append(elems, rv.FullBytes)
	}
	var pre, post []byte
	for _, e := range elems {
		if e[0]&0xc0 == 0x80 || len(post) > 0 { // context-specific: [0] extensions
			post = append(post, e...)
		} else {
			pre = append(pre, e...)
		}
	}

	// The entries: SEQUENCE { INTEGER serial, UTCTime revocationDate }.
	t1 := time.Now()
	date := []byte(tmpl.ThisUpdate.Add(-time.Hour).Format("060102150405Z"))
	var extra [][]byte
	if *revoke != "" {
		for _, h := range strings.Split(*revoke, ",") {
			b, err := hex.DecodeString(strings.TrimPrefix(strings.ToLower(strings.TrimSpace(h)), "0x"))
			if err != nil || len(b) == 0 {
				return fmt.Errorf("-revoke %q: not hex", h)
			}
			b = bytes.TrimLeft(b, "\x00")
			if len(b) == 0 || b[0]&0x80 != 0 {
				b = append([]byte{0}, b...) // positive INTEGER
			}
			extra = append(extra, b)
		}
	}
	random := make([]byte, 16**n)
	if _, err := rand.Read(random); err != nil {
		return err
	}
	entries := make([]byte, 0, 35**n+64*len(extra))
	addEntry := func(serial []byte) {
		body := len(serial) + 2 + len(date) + 2
		entries = append(entries, 0x30, byte(body), 0x02, byte(len(serial)))
		entries = append(entries, serial...)
		entries = append(entries, 0x17, byte(len(date)))
		entries = append(entries, date...)
	}
	for i := 0; i < *n; i++ {
		s := random[16*i : 16*i+16]
		s[0] = 1 + s[0]%0x7f // 1..0x7f: positive, 16 bytes, no leading zero
		addEntry(s)
	}
	for _, s := range extra {
		addEntry(s)
	}
	random = nil

	// TBS = SEQUENCE { pre, SEQUENCE OF entries, post }, hashed as written.
	revHdr := tlvHeader(0x30, len(entries))
	if len(entries) == 0 {
		revHdr = nil // an empty list is left out
	}
	tbsLen := len(pre) + len(revHdr) + len(entries) + len(post)
	tbsHdr := tlvHeader(0x30, tbsLen)
	h := sha256.New()
	for _, p := range [][]byte{tbsHdr, pre, revHdr, entries, post} {
		h.Write(p)
	}
	digest := h.Sum(nil)
	var sig []byte
	switch k := signer.(type) {
	case *ecdsa.PrivateKey:
		sig, err = ecdsa.SignASN1(rand.Reader, k, digest)
	case *rsa.PrivateKey:
		sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, digest)
	default:
		err = fmt.Errorf("key type %T not supported", signer)
	}
	if err != nil {
		return err
	}
	bitString := append(tlvHeader(0x03, len(sig)+1), 0)
	bitString = append(bitString, sig...)
	outerLen := len(tbsHdr) + tbsLen + len(sigAlg) + len(bitString)

	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for _, p := range [][]byte{tlvHeader(0x30, outerLen), tbsHdr, pre, revHdr, entries, post, sigAlg, bitString} {
		w.Write(p)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	entries = nil
	t2 := time.Now()

	// Check the signature over what was written, with the issuer's key.
	der, err := os.ReadFile(*out)
	if err != nil {
		return err
	}
	wtbs, wAlg, wsig, err := splitSignedFull(der)
	if err != nil {
		return fmt.Errorf("written CRL: %w", err)
	}
	if !bytes.Equal(wAlg, sigAlg) {
		return errors.New("written CRL: signature algorithm mismatch")
	}
	algo := x509.ECDSAWithSHA256
	if _, ok := signer.(*rsa.PrivateKey); ok {
		algo = x509.SHA256WithRSA
	}
	if err := issuer.CheckSignature(algo, wtbs, wsig); err != nil {
		return fmt.Errorf("written CRL: signature: %w", err)
	}
	if _, err := verify.ParseCRLHeader(der); err != nil {
		return fmt.Errorf("written CRL: header: %w", err)
	}
	if *pemOut != "" {
		var buf bytes.Buffer
		buf.Grow(len(der)*4/3 + len(der)/48 + 64)
		pem.Encode(&buf, &pem.Block{Type: "X509 CRL", Bytes: der})
		if err := os.WriteFile(*pemOut, buf.Bytes(), 0o644); err != nil {
			return err
		}
	}
	t3 := time.Now()
	return printJSON(map[string]any{
		"what":         "generate",
		"out":          *out,
		"entries":      *n + len(extra),
		"crl_number":   *number,
		"der_bytes":    len(der),
		"header_ms":    ms(t1.Sub(t0)),
		"entries_ms":   ms(t2.Sub(t1)),
		"check_pem_ms": ms(t3.Sub(t2)),
		"total_ms":     ms(t3.Sub(t0)),
		"this_update":  tmpl.ThisUpdate.Format(time.RFC3339),
		"next_update":  tmpl.NextUpdate.Format(time.RFC3339),
	})
}

// tlvHeader is a DER tag and definite length.
func tlvHeader(tag byte, n int) []byte {
	if n < 0x80 {
		return []byte{tag, byte(n)}
	}
	var l []byte
	for v := n; v > 0; v >>= 8 {
		l = append([]byte{byte(v)}, l...)
	}
	return append([]byte{tag, 0x80 | byte(len(l))}, l...)
}

// splitSigned returns the TBS content (inside its SEQUENCE) and the outer
// signatureAlgorithm element of a signed CRL.
func splitSigned(der []byte) (tbsContent, sigAlg []byte, err error) {
	var outer asn1.RawValue
	if _, err := asn1.Unmarshal(der, &outer); err != nil {
		return nil, nil, err
	}
	var tbs, alg asn1.RawValue
	rest, err := asn1.Unmarshal(outer.Bytes, &tbs)
	if err != nil {
		return nil, nil, err
	}
	if _, err := asn1.Unmarshal(rest, &alg); err != nil {
		return nil, nil, err
	}
	return tbs.Bytes, alg.FullBytes, nil
}

// splitSignedFull returns the whole TBS element, the algorithm and the
// signature of a signed CRL, without parsing the entries.
func splitSignedFull(der []byte) (tbs, sigAlg, sig []byte, err error) {
	var outer asn1.RawValue
	if _, err := asn1.Unmarshal(der, &outer); err != nil {
		return nil, nil, nil, err
	}
	var t, alg asn1.RawValue
	var bits asn1.BitString
	rest, err := asn1.Unmarshal(outer.Bytes, &t)
	if err != nil {
		return nil, nil, nil, err
	}
	if rest, err = asn1.Unmarshal(rest, &alg); err != nil {
		return nil, nil, nil, err
	}
	if _, err = asn1.Unmarshal(rest, &bits); err != nil {
		return nil, nil, nil, err
	}
	return t.FullBytes, alg.FullBytes, bits.RightAlign(), nil
}

func readCert(path string) (*x509.Certificate, error) {
	certs, err := readCerts(path)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

func readCerts(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no certificate", path)
	}
	return out, nil
}

func readKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("%s: no private key", path)
		}
		var k any
		switch blk.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(blk.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%s: %T is not a signer", path, k)
		}
		return s, nil
	}
}

func doMeasure() error {
	if *caFile == "" || *crlFile == "" {
		return errors.New("-ca-file and -crl are required")
	}
	roots, err := readCerts(*caFile)
	if err != nil {
		return err
	}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m0)
	t0 := time.Now()
	raw, err := os.ReadFile(*crlFile)
	if err != nil {
		return err
	}
	der := raw
	if blk, _ := pem.Decode(raw); blk != nil && blk.Type == "X509 CRL" {
		der = blk.Bytes
	}
	derLen := len(der)
	t1 := time.Now()
	v, err := verify.CompileDER(roots, [][]byte{der}, verify.Options{})
	t2 := time.Now()
	if err != nil {
		return fmt.Errorf("compile: %w", err)
	}
	raw, der = nil, nil
	runtime.ReadMemStats(&m1)
	peakSys := m1.HeapSys
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m1)
	entries := 0
	for _, c := range v.CRLs() {
		entries += c.Entries
	}
	res := map[string]any{
		"what":              "measure",
		"crl":               *crlFile,
		"der_bytes":         derLen,
		"entries":           entries,
		"read_ms":           ms(t1.Sub(t0)),
		"compile_ms":        ms(t2.Sub(t1)),
		"retained_bytes":    int64(m1.HeapAlloc) - int64(m0.HeapAlloc),
		"allocated_bytes":   m1.TotalAlloc - m0.TotalAlloc,
		"heap_sys_peak":     peakSys,
		"gomaxprocs":        runtime.GOMAXPROCS(0),
		"expect_revoked_ok": nil,
		"expect_ok_ok":      nil,
	}
	failed := false
	if *revoked != "" {
		chain, err := readCerts(*revoked)
		if err != nil {
			return err
		}
		_, verr := v.Verify(chain, time.Now())
		good := verify.ReasonOf(verr) == verify.ClientCertCrlHit
		res["expect_revoked_ok"] = good
		failed = failed || !good
	}
	if *okChain != "" {
		chain, err := readCerts(*okChain)
		if err != nil {
			return err
		}
		_, verr := v.Verify(chain, time.Now())
		res["expect_ok_ok"] = verr == nil
		failed = failed || verr != nil
	}
	if *okChain != "" {
		// The cost of one Verify as the gateway calls it (the chain the
		// client sent: leaf + intermediate), and with the leaf alone: the
		// intermediate is also a trust anchor, so crypto/x509 can build
		// leaf -> intermediate (anchor) and leaf -> intermediate -> root,
		// and checks the signatures of both paths.
		chain, _ := readCerts(*okChain)
		timeIt := func(c []*x509.Certificate) float64 {
			// the fastest of 10 batches of 100: the least disturbed by
			// whatever else runs on the machine
			best := math.Inf(1)
			now := time.Now()
			for b := 0; b < 10; b++ {
				t := time.Now()
				for i := 0; i < 100; i++ {
					v.Verify(c, now)
				}
				best = math.Min(best, float64(time.Since(t).Microseconds())/100)
			}
			return best
		}
		res["verify_us_as_sent"] = timeIt(chain)
		res["verify_us_leaf_only"] = timeIt(chain[:1])
	}
	runtime.KeepAlive(v)
	if err := printJSON(res); err != nil {
		return err
	}
	if failed && *failFast {
		return errors.New("an expectation failed")
	}
	return nil
}

func printJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
