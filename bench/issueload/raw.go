package main

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"time"
)

// rawCost is the machine's floor for issuing one certificate from a CSR:
// check the CSR's signature, then x509.CreateCertificate a leaf with a CA
// key (Go's CreateCertificate also verifies the signature it made).
type rawCost struct {
	iters        int
	usPerCert    float64 // wall time on one goroutine
	cpuUsPerCert float64 // process CPU over the same loop (includes the GC's share)
}

var serialLimit = new(big.Int).Lsh(big.NewInt(1), 128)

// measureRaw runs the loop for about d on the calling goroutine after a
// short warmup, with a fresh CA key of type caKT.
func measureRaw(caKT keyType, csrs []*csr, d time.Duration) (rawCost, error) {
	caKey, err := generateKey(caKT)
	if err != nil {
		return rawCost{}, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "issueload raw-cost CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return rawCost{}, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return rawCost{}, err
	}
	ku := x509.KeyUsageDigitalSignature
	if caKT == keyRSA {
		ku |= x509.KeyUsageKeyEncipherment
	}
	one := func(c *csr) error {
		if err := c.req.CheckSignature(); err != nil {
			return err
		}
		serial, err := rand.Int(rand.Reader, serialLimit)
		if err != nil {
			return err
		}
		t := time.Now()
		_, err = x509.CreateCertificate(rand.Reader, &x509.Certificate{
			SerialNumber:          serial.Add(serial, big.NewInt(1)),
			Subject:               c.req.Subject,
			DNSNames:              c.req.DNSNames,
			NotBefore:             t.Add(-time.Minute),
			NotAfter:              t.Add(24 * time.Hour),
			KeyUsage:              ku,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			BasicConstraintsValid: true,
		}, caCert, c.req.PublicKey, caKey)
		return err
	}
	if len(csrs) == 0 {
		return rawCost{}, errors.New("no CSRs")
	}
	// Warmup: a tenth of d, at least a few iterations.
	warmEnd := time.Now().Add(d / 10)
	for i := 0; i < 5 || time.Now().Before(warmEnd); i++ {
		if err := one(csrs[i%len(csrs)]); err != nil {
			return rawCost{}, err
		}
	}
	cpu0 := processCPU()
	start := time.Now()
	end := start.Add(d)
	n := 0
	for ; n < 10 || time.Now().Before(end); n++ {
		if err := one(csrs[n%len(csrs)]); err != nil {
			return rawCost{}, err
		}
	}
	wall := time.Since(start)
	cpu := processCPU() - cpu0
	return rawCost{
		iters:        n,
		usPerCert:    float64(wall.Nanoseconds()) / 1e3 / float64(n),
		cpuUsPerCert: float64(cpu.Nanoseconds()) / 1e3 / float64(n),
	}, nil
}
