package pki_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	_ "crypto/md5" // registers MD5 for the weak-signature case
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha1" // registers SHA-1 for the weak-signature case
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"testing"

	"github.com/trustgate/trustgate/internal/pki"
)

func makeCSR(tb testing.TB, key crypto.Signer, alg x509.SignatureAlgorithm) []byte {
	tb.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:            pkix.Name{CommonName: "csr.example"},
		DNSNames:           []string{"csr.example"},
		SignatureAlgorithm: alg,
	}, key)
	if err != nil {
		tb.Fatalf("CreateCertificateRequest: %v", err)
	}
	return der
}

func csrPEM(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// resignCSR re-signs a CSR's to-be-signed part with an RSA key and a hash
// Go refuses to sign CSRs with (SHA-1, MD5), to build the weak-signature
// cases without depending on openssl.
func resignCSR(tb testing.TB, der []byte, key *rsa.PrivateKey, h crypto.Hash, oid asn1.ObjectIdentifier) []byte {
	tb.Helper()
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		tb.Fatal(err)
	}
	hh := h.New()
	hh.Write(csr.RawTBSCertificateRequest)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, h, hh.Sum(nil))
	if err != nil {
		tb.Fatalf("sign with %v: %v", h, err)
	}
	out, err := asn1.Marshal(struct {
		TBS    asn1.RawValue
		SigAlg pkix.AlgorithmIdentifier
		Sig    asn1.BitString
	}{
		TBS:    asn1.RawValue{FullBytes: csr.RawTBSCertificateRequest},
		SigAlg: pkix.AlgorithmIdentifier{Algorithm: oid, Parameters: asn1.NullRawValue},
		Sig:    asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func TestParseCSR(t *testing.T) {
	ec := makeCSR(t, testKey(t, pki.ECP256, 0), 0)
	rsaKey := testKey(t, pki.RSA2048, 0).(*rsa.PrivateKey)
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(ec)
	flipped[len(flipped)-1] ^= 0x01
	cert := testCertDER(t)

	tests := map[string]struct {
		in   []byte
		kind error
		err  string
	}{
		"ok/pem":                      {in: csrPEM("CERTIFICATE REQUEST", ec)},
		"ok/new certificate request":  {in: csrPEM("NEW CERTIFICATE REQUEST", ec)},
		"ok/der":                      {in: ec},
		"ok/pem with surrounding ws":  {in: append(append([]byte("\n\n  "), csrPEM("CERTIFICATE REQUEST", ec)...), "\n\n"...)},
		"ok/ec-p384":                  {in: makeCSR(t, testKey(t, pki.ECP384, 0), 0)},
		"ok/ec-p256 sha512":           {in: makeCSR(t, testKey(t, pki.ECP256, 0), x509.ECDSAWithSHA512)},
		"ok/rsa-2048":                 {in: makeCSR(t, rsaKey, 0)},
		"ok/rsa-pss":                  {in: makeCSR(t, rsaKey, x509.SHA256WithRSAPSS)},
		"ok/ed25519":                  {in: makeCSR(t, testKey(t, pki.Ed25519, 0), 0)},
		"fail/empty":                  {in: nil, kind: pki.ErrInvalid, err: "pki: CSR is empty"},
		"fail/whitespace":             {in: []byte(" \n"), kind: pki.ErrInvalid, err: "CSR is empty"},
		"fail/garbage":                {in: []byte("hello, world"), kind: pki.ErrInvalid, err: "pki: CSR is neither PEM nor DER"},
		"fail/garbage der":            {in: []byte{0x30, 0x03, 0x02, 0x01, 0x00}, kind: pki.ErrInvalid, err: "pki: CSR cannot be parsed"},
		"fail/truncated der":          {in: ec[:len(ec)-10], kind: pki.ErrInvalid, err: "CSR cannot be parsed"},
		"fail/flipped signature byte": {in: flipped, kind: pki.ErrInvalid, err: "pki: CSR signature does not verify"},
		"fail/rsa-1024":               {in: makeCSR(t, rsa1024, 0), kind: pki.ErrInvalid, err: "pki: CSR public key is not accepted: RSA key of 1024 bits is too small (minimum 2048)"},
		"fail/ec-p521":                {in: makeCSR(t, p521, 0), kind: pki.ErrInvalid, err: "CSR public key is not accepted: ECDSA curve P-521 is not accepted (use P-256 or P-384)"},
		"fail/sha1":                   {in: resignCSR(t, makeCSR(t, rsaKey, 0), rsaKey, crypto.SHA1, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}), kind: pki.ErrInvalid, err: "pki: CSR is signed with SHA1-RSA, which is not accepted"},
		"fail/md5":                    {in: resignCSR(t, makeCSR(t, rsaKey, 0), rsaKey, crypto.MD5, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 4}), kind: pki.ErrInvalid, err: "CSR is signed with MD5-RSA, which is not accepted"},
		"fail/too large":              {in: bytes.Repeat([]byte{'A'}, pki.MaxCSRSize+1), kind: pki.ErrTooLarge, err: "pki: CSR of 32769 bytes exceeds the limit of 32768 bytes"},
		"fail/too large pem":          {in: append(csrPEM("CERTIFICATE REQUEST", ec), bytes.Repeat([]byte{'\n'}, pki.MaxCSRSize)...), kind: pki.ErrTooLarge, err: "exceeds the limit"},
		"fail/trailing der":           {in: append(bytes.Clone(ec), 0x00), kind: pki.ErrInvalid, err: "pki: CSR has trailing data after its DER encoding"},
		"fail/trailing pem":           {in: append(csrPEM("CERTIFICATE REQUEST", ec), "junk"...), kind: pki.ErrInvalid, err: "pki: CSR has data after the PEM block"},
		"fail/two pem blocks":         {in: append(csrPEM("CERTIFICATE REQUEST", ec), csrPEM("CERTIFICATE REQUEST", ec)...), kind: pki.ErrInvalid, err: "CSR has data after the PEM block"},
		"fail/text before pem":        {in: append([]byte("Certificate Request:\n"), csrPEM("CERTIFICATE REQUEST", ec)...), kind: pki.ErrInvalid, err: "pki: CSR has data before the PEM block"},
		"fail/certificate pem":        {in: csrPEM("CERTIFICATE", cert), kind: pki.ErrInvalid, err: `PEM block is of type "CERTIFICATE", not "CERTIFICATE REQUEST"`},
		"fail/certificate der":        {in: cert, kind: pki.ErrInvalid, err: "CSR cannot be parsed"},
		"fail/pem headers":            {in: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: ec}), kind: pki.ErrInvalid, err: "CSR PEM block has headers"},
		"fail/broken pem":             {in: []byte("-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n"), kind: pki.ErrInvalid, err: "CSR PEM block is malformed"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			csr, err := pki.ParseCSR(tt.in)
			wantErr(t, err, tt.kind, tt.err)
			if tt.err == "" && csr.CheckSignature() != nil {
				t.Errorf("accepted CSR does not verify")
			}
		})
	}
}

// testCertDER returns a certificate, to feed where a CSR belongs.
func testCertDER(tb testing.TB) []byte {
	tb.Helper()
	return newChain(tb, pki.ECP256).root.Raw
}

func TestCreateCSR(t *testing.T) {
	for _, kt := range pki.KeyTypes() {
		t.Run("ok/"+string(kt), func(t *testing.T) {
			key := testKey(t, kt, 0)
			der, err := pki.CreateCSR(pkix.Name{CommonName: "Issuing CA", Organization: []string{"Acme"}}, key)
			if err != nil {
				t.Fatal(err)
			}
			csr, err := pki.ParseCSR(der)
			if err != nil {
				t.Fatalf("ParseCSR(CreateCSR()) = %v", err)
			}
			if csr.Subject.CommonName != "Issuing CA" || csr.SignatureAlgorithm != wantSigAlg(kt) {
				t.Errorf("CSR subject %q algorithm %v", csr.Subject, csr.SignatureAlgorithm)
			}
		})
	}
	t.Run("fail/p-521 key", func(t *testing.T) {
		k, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
		_, err := pki.CreateCSR(pkix.Name{CommonName: "x"}, k)
		wantErr(t, err, pki.ErrInvalid, "ECDSA curve P-521 is not accepted")
	})
	t.Run("fail/nil key", func(t *testing.T) {
		_, err := pki.CreateCSR(pkix.Name{CommonName: "x"}, nil)
		wantErr(t, err, pki.ErrInvalid, "CSR signing key is missing")
	})
}

// FuzzParseCSR checks that whatever ParseCSR accepts is within the size
// limit, carries a valid signature by an accepted key with an accepted
// algorithm, and re-parses from its Raw bytes to the same request.
func FuzzParseCSR(f *testing.F) {
	ec := makeCSR(f, testKey(f, pki.ECP256, 0), 0)
	rsaKey := testKey(f, pki.RSA2048, 0).(*rsa.PrivateKey)
	f.Add(ec)
	f.Add(csrPEM("CERTIFICATE REQUEST", ec))
	f.Add(csrPEM("NEW CERTIFICATE REQUEST", makeCSR(f, testKey(f, pki.Ed25519, 0), 0)))
	f.Add(makeCSR(f, rsaKey, x509.SHA256WithRSAPSS))
	f.Add(resignCSR(f, makeCSR(f, rsaKey, 0), rsaKey, crypto.SHA1, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		csr, err := pki.ParseCSR(data)
		if err != nil {
			if !errors.Is(err, pki.ErrInvalid) && !errors.Is(err, pki.ErrTooLarge) {
				t.Fatalf("error wraps neither ErrInvalid nor ErrTooLarge: %v", err)
			}
			return
		}
		if len(data) > pki.MaxCSRSize {
			t.Fatalf("accepted %d bytes, over MaxCSRSize", len(data))
		}
		if err := csr.CheckSignature(); err != nil {
			t.Fatalf("accepted CSR with a bad signature: %v", err)
		}
		if _, err := pki.KeyTypeOf(csr.PublicKey); err != nil {
			t.Fatalf("accepted CSR with a rejected key: %v", err)
		}
		switch csr.SignatureAlgorithm {
		case x509.MD2WithRSA, x509.MD5WithRSA, x509.SHA1WithRSA, x509.ECDSAWithSHA1, x509.DSAWithSHA1, x509.UnknownSignatureAlgorithm:
			t.Fatalf("accepted CSR signed with %v", csr.SignatureAlgorithm)
		}
		again, err := pki.ParseCSR(csr.Raw)
		if err != nil {
			t.Fatalf("csr.Raw does not re-parse: %v", err)
		}
		if !bytes.Equal(again.Raw, csr.Raw) {
			t.Fatal("re-parse of csr.Raw gives different Raw")
		}
	})
}
