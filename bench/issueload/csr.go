package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"runtime"
	"sync"
)

type keyType string

const (
	keyECDSA keyType = "ecdsa-p256"
	keyRSA   keyType = "rsa-2048"
)

func parseKeyType(s string) (keyType, error) {
	switch s {
	case "ecdsa", "ec", "ecdsa-p256", "p256":
		return keyECDSA, nil
	case "rsa", "rsa-2048", "rsa2048":
		return keyRSA, nil
	}
	return "", fmt.Errorf("unknown key type %q (ecdsa | rsa)", s)
}

// keyTypeOf names the key type of a public key; only the two measured here.
func keyTypeOf(pub crypto.PublicKey) (keyType, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return keyECDSA, nil
		}
		return "", fmt.Errorf("ECDSA curve %s is not measured here (P-256 only)", k.Curve.Params().Name)
	case *rsa.PublicKey:
		if k.N.BitLen() == 2048 {
			return keyRSA, nil
		}
		return "", fmt.Errorf("RSA-%d is not measured here (RSA-2048 only)", k.N.BitLen())
	}
	return "", fmt.Errorf("key type %T is not measured here", pub)
}

func generateKey(kt keyType) (crypto.Signer, error) {
	if kt == keyRSA {
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// csr is one pre-made request of the pool.
type csr struct {
	name string // the CN and the one DNS SAN
	pem  []byte
	der  []byte
	req  *x509.CertificateRequest // parsed, for the raw measurement
	pub  crypto.PublicKey
}

// makePool makes n CSRs over nkeys key pairs (CSR i is signed by key i mod
// nkeys), each asking for its own name. The work is spread over all cores:
// it happens before anything is measured.
func makePool(kt keyType, n, nkeys int) ([]*csr, error) {
	nkeys = max(1, min(nkeys, n))
	signers := make([]crypto.Signer, nkeys)
	out := make([]*csr, n)
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	fail := func(err error) {
		errMu.Lock()
		if first == nil {
			first = err
		}
		errMu.Unlock()
	}
	parallel := func(count int, f func(i int) error) {
		next := make(chan int)
		for w := 0; w < runtime.GOMAXPROCS(0); w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					if err := f(i); err != nil {
						fail(err)
					}
				}
			}()
		}
		for i := 0; i < count; i++ {
			next <- i
		}
		close(next)
		wg.Wait()
	}
	parallel(nkeys, func(i int) (err error) {
		signers[i], err = generateKey(kt)
		return err
	})
	if first != nil {
		return nil, first
	}
	// A random tag keeps names distinct across runs against one server.
	tag := make([]byte, 4)
	if _, err := rand.Read(tag); err != nil {
		return nil, err
	}
	parallel(n, func(i int) error {
		name := fmt.Sprintf("bench-%x-%d.issue.internal", tag, i)
		key := signers[i%nkeys]
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
			Subject:  pkix.Name{CommonName: name},
			DNSNames: []string{name},
		}, key)
		if err != nil {
			return err
		}
		req, err := x509.ParseCertificateRequest(der)
		if err != nil {
			return err
		}
		out[i] = &csr{
			name: name, der: der, req: req, pub: key.Public(),
			pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
		}
		return nil
	})
	if first != nil {
		return nil, first
	}
	return out, nil
}
