//go:build linux

package ca

// Issuance benchmarks: the whole in-process pipeline (CSR check, profile,
// names, lint, sign, durable SQLite record, chain) from concurrent callers,
// beside the machine's raw cost of one certificate measured in the same
// benchmark: one CSR CheckSignature plus one x509.CreateCertificate with a CA
// key of the same type, on one goroutine. The metrics:
//
//	certs/s      issued certificates per second of wall time (all cores)
//	cpu-us/cert  process CPU (user+system, every thread) per certificate
//	raw-us/cert  process CPU per certificate of the raw loop
//	x_raw_cost   cpu-us/cert ÷ raw-us/cert: how many raw certificates'
//	             worth of CPU one issued certificate costs (1 is the floor)
//	others-cores CPU cores other processes on the machine kept busy during
//	             the parallel run (from /proc/stat): noise on a shared machine
//
//	go test ./internal/ca -run '^$' -bench Issue -benchtime 3s -count 3

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/keystore"
	"github.com/trustgate/trustgate/internal/pki"
	"github.com/trustgate/trustgate/internal/store/sqlite"
)

func BenchmarkIssueECDSA(b *testing.B) { benchmarkIssue(b, "ec-p256", false) }
func BenchmarkIssueRSA(b *testing.B)   { benchmarkIssue(b, "rsa-2048", false) }

// BenchmarkIssueECDSAFreshKeys issues every certificate for a key not seen
// before (a pool of freshPoolSize), so that no lint verdict cached by
// subject key is reused: the cost of first issuance for a new key, where
// the other benchmarks cycle over 256 keys as renewals would.
func BenchmarkIssueECDSAFreshKeys(b *testing.B) { benchmarkIssue(b, "ec-p256", true) }

// freshPoolSize is more certificates than a 3 s run issues.
const freshPoolSize = 1 << 14

// benchCallersPerProc × GOMAXPROCS goroutines issue at once: 8 on two cores,
// as many as the HTTP benchmark's workers.
const benchCallersPerProc = 4

type benchCSR struct {
	name string
	pem  []byte
	req  *x509.CertificateRequest
}

// benchPools caches the CSR pool of each key type across the benchmark's
// rounds: RSA keys take tens of milliseconds each to make.
var benchPools sync.Map // key type -> []benchCSR

func benchKey(keyType string) crypto.Signer {
	var (
		k   crypto.Signer
		err error
	)
	if keyType == "rsa-2048" {
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		panic(err)
	}
	return k
}

// benchPool returns 256 CSRs with distinct names over 256 ECDSA or 16 RSA
// keys, or with fresh, freshPoolSize CSRs each with its own key.
func benchPool(b *testing.B, keyType string, fresh bool) []benchCSR {
	poolKey := fmt.Sprintf("%s/%v", keyType, fresh)
	if p, ok := benchPools.Load(poolKey); ok {
		return p.([]benchCSR)
	}
	n := 256
	nkeys := n
	switch {
	case fresh:
		n, nkeys = freshPoolSize, freshPoolSize
	case keyType == "rsa-2048":
		nkeys = 16
	}
	keys := make([]crypto.Signer, nkeys)
	for i := range keys {
		keys[i] = benchKey(keyType)
	}
	pool := make([]benchCSR, n)
	for i := range pool {
		name := fmt.Sprintf("bench-%d.issue.internal", i)
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
			Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		}, keys[i%nkeys])
		if err != nil {
			b.Fatal(err)
		}
		req, err := x509.ParseCertificateRequest(der)
		if err != nil {
			b.Fatal(err)
		}
		pool[i] = benchCSR{name: name, req: req, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})}
	}
	benchPools.Store(poolKey, pool)
	return pool
}

// machineBusy is the non-idle CPU time of the whole machine so far, from
// /proc/stat (user nice system idle iowait irq softirq steal, in USER_HZ
// ticks of 10 ms), or -1 if it cannot be read.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return -1
	}
	var busy uint64
	for i, v := range f[1:9] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return -1
		}
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return time.Duration(busy) * 10 * time.Millisecond
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rawCPUPerCert measures the floor: CheckSignature of a CSR plus
// CreateCertificate of a leaf signed by a fresh CA key of keyType, on this
// goroutine, for about d. It returns process CPU per certificate.
func rawCPUPerCert(b *testing.B, keyType string, pool []benchCSR, d time.Duration) time.Duration {
	caKey := benchKey(keyType)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "raw-cost CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		b.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		b.Fatal(err)
	}
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	one := func(c benchCSR) {
		if err := c.req.CheckSignature(); err != nil {
			b.Fatal(err)
		}
		serial, err := rand.Int(rand.Reader, limit)
		if err != nil {
			b.Fatal(err)
		}
		t := time.Now()
		if _, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
			SerialNumber: serial.Add(serial, big.NewInt(1)), Subject: c.req.Subject, DNSNames: c.req.DNSNames,
			NotBefore: t.Add(-time.Minute), NotAfter: t.Add(24 * time.Hour),
			KeyUsage:              x509.KeyUsageDigitalSignature,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			BasicConstraintsValid: true,
		}, caCert, c.req.PublicKey, caKey); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < 5; i++ {
		one(pool[i%len(pool)])
	}
	c0, start := processCPU(), time.Now()
	n := 0
	for ; n < 10 || time.Since(start) < d; n++ {
		one(pool[n%len(pool)])
	}
	return (processCPU() - c0) / time.Duration(n)
}

func benchmarkIssue(b *testing.B, keyType string, fresh bool) {
	ctx := context.Background()
	db, err := sqlite.Open(filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	master := make([]byte, keystore.MasterKeySize)
	if _, err := rand.Read(master); err != nil {
		b.Fatal(err)
	}
	sealer, err := keystore.New(master)
	if err != nil {
		b.Fatal(err)
	}
	linter, err := pki.NewLinter()
	if err != nil {
		b.Fatal(err)
	}
	// The same shape as `trustgate dev`: leaves carry AIA and CRL DP URLs.
	svc, err := New(Config{Store: db, Sealer: sealer, Linter: linter, PublicBaseURL: "http://127.0.0.1:9080"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := svc.CreateCA(ctx, CreateRequest{Name: "bench-root", KeyType: keyType}); err != nil {
		b.Fatal(err)
	}
	if _, err := svc.CreateCA(ctx, CreateRequest{Name: "bench-issuing", Parent: "bench-root", KeyType: keyType}); err != nil {
		b.Fatal(err)
	}
	pool := benchPool(b, keyType, fresh)
	issue := func(c benchCSR) error {
		_, err := svc.Issue(ctx, IssueRequest{
			CA: "bench-issuing", Profile: "server", CSR: c.pem, DNS: []string{c.name},
			Validity: "24h", Requester: "bench",
		})
		return err
	}
	// One issuance outside the clock: unseals and caches the CA key, as a
	// running server would have.
	if err := issue(pool[0]); err != nil {
		b.Fatal(err)
	}
	raw := rawCPUPerCert(b, keyType, pool, 200*time.Millisecond)

	var next atomic.Int64
	b.SetParallelism(benchCallersPerProc)
	b.ReportAllocs()
	b.ResetTimer()
	m0, c0, start := machineBusy(), processCPU(), time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c := pool[int(next.Add(1))%len(pool)]
			if err := issue(c); err != nil {
				b.Error(err)
				return
			}
		}
	})
	cpu, wall, m1 := processCPU()-c0, time.Since(start), machineBusy()
	b.StopTimer()

	cpuPer := cpu / time.Duration(b.N)
	b.ReportMetric(float64(b.N)/wall.Seconds(), "certs/s")
	b.ReportMetric(float64(cpuPer.Nanoseconds())/1e3, "cpu-us/cert")
	b.ReportMetric(float64(raw.Nanoseconds())/1e3, "raw-us/cert")
	b.ReportMetric(float64(cpuPer)/float64(raw), "x_raw_cost")
	if m0 >= 0 && m1 >= 0 {
		b.ReportMetric(max(0, (m1-m0-cpu).Seconds()/wall.Seconds()), "others-cores")
	}
}
