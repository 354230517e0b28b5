// Command issueload measures end-to-end certificate issuance over a CA's HTTP
// API: C workers, each on its own keep-alive connection, send one CSR after
// another for a fixed duration after a warmup. Every answer is checked (HTTP
// status, the certificate parses, carries the CSR's key and the requested
// name, and verifies against the issuing CA given by -issuer).
//
// Before the load, in the same process, it measures what one certificate
// costs this machine at the least: one x509.CreateCertificate (a leaf signed
// by a CA key of the issuer's type) plus one CSR CheckSignature, on one
// goroutine. That is printed beside the load figures so a run carries its
// own yardstick.
//
// It prints one JSON line on stdout. Examples:
//
//	issueload -adapter trustgate -url https://127.0.0.1:9443 -token-file DIR/dev/admin.token \
//	    -cacert DIR/dev/root.pem -ca demo-intermediate -issuer int.pem -watch PID
//	issueload -adapter cfssl -url http://127.0.0.1:8888 -issuer int.pem -watch PID
//
// The exit status is 0 when the measured window had operations and no errors,
// 1 otherwise (the JSON line is printed either way), 2 on a usage or setup error.
package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// report is the JSON line issueload prints.
type report struct {
	Label   string `json:"label"`
	Adapter string `json:"adapter"`
	URL     string `json:"url"`
	KeyType string `json:"key_type"`
	CAKey   string `json:"ca_key"`
	Workers int    `json:"c"`

	WarmupS   float64 `json:"warmup_s"`
	DurationS float64 `json:"duration_s"` // the measured window, as it really was

	Ops          int64   `json:"ops"`
	Errors       int64   `json:"errors"`
	WarmupErrors int64   `json:"warmup_errors"`
	OpsPerS      float64 `json:"ops_per_s"`
	P50Ms        float64 `json:"p50_ms"`
	P90Ms        float64 `json:"p90_ms"`
	P99Ms        float64 `json:"p99_ms"`
	MaxMs        float64 `json:"max_ms"`
	MeanMs       float64 `json:"mean_ms"`

	ClientCPUS      float64  `json:"client_cpu_s"`
	ClientCPUUsOp   float64  `json:"client_cpu_us_per_op"`
	ServerPIDs      []int    `json:"server_pids,omitempty"`
	ServerCPUS      *float64 `json:"server_cpu_s,omitempty"`
	ServerCPUUsOp   *float64 `json:"server_cpu_us_per_op,omitempty"`
	ServerCPUCoresU *float64 `json:"server_cores_used,omitempty"`

	MachineBusyCores float64 `json:"machine_busy_cores"`
	OtherCores       float64 `json:"other_cores"` // busy cores not used by the server or this client: other processes

	// The raw cost is CPU time (getrusage) of the single-goroutine loop, so
	// other processes on the machine do not inflate it; the wall-clock
	// figure is beside it.
	RawUsPerCert       float64 `json:"raw_us_per_cert"`
	RawCertsPerSPerCPU float64 `json:"raw_certs_per_s_per_core"`
	RawWallUsPerCert   float64 `json:"raw_wall_us_per_cert"`
	RawIters           int     `json:"raw_iters"`
	ServerOverRaw      float64 `json:"server_us_over_raw_us,omitempty"`

	PoolSize   int    `json:"csr_pool"`
	Verified   bool   `json:"verified_against_issuer"`
	LeafSigAlg string `json:"leaf_sig_alg,omitempty"`
	LeafBytes  int    `json:"leaf_der_bytes,omitempty"`
	FirstError string `json:"first_error,omitempty"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	NumCPU     int    `json:"num_cpu"`
	Go         string `json:"go"`
	StartedAt  string `json:"started_at"`
}

func main() {
	os.Exit(run())
}

func run() int {
	var (
		label     = flag.String("label", "", "label copied into the JSON line")
		adapter   = flag.String("adapter", "trustgate", "API: trustgate | cfssl")
		baseURL   = flag.String("url", "", "base URL of the CA (https://HOST:PORT for trustgate, http://HOST:PORT for cfssl); several, comma separated, spread the workers over them (nodes of one control plane)")
		token     = flag.String("token", "", "trustgate: bearer token (prefer -token-file or $TRUSTGATE_TOKEN)")
		tokenFile = flag.String("token-file", "", "trustgate: file holding the bearer token")
		caFile    = flag.String("cacert", "", "PEM file that verifies the server's TLS certificate (https only)")
		caName    = flag.String("ca", "demo-intermediate", "trustgate: issuing CA name")
		profile   = flag.String("profile", "server", "trustgate: issuance profile")
		cfProfile = flag.String("cfssl-profile", "", "cfssl: signing profile (empty: the default profile)")
		validity  = flag.String("validity", "24h", "trustgate: validity of each certificate")
		issuer    = flag.String("issuer", "", "PEM certificate of the issuing CA: every leaf must verify against it (required)")
		keyType   = flag.String("key", "ecdsa", "key type of the CSRs: ecdsa (P-256) | rsa (RSA-2048)")
		pool      = flag.Int("pool", 256, "number of distinct CSRs (each with its own name)")
		keys      = flag.Int("keys", 0, "distinct key pairs behind the CSRs (0: = pool for ecdsa, 16 for rsa, whose keys are slow to make)")
		workers   = flag.Int("c", 8, "concurrent workers, one keep-alive connection each")
		dur       = flag.Duration("d", 10*time.Second, "measured duration")
		warmup    = flag.Duration("warmup", time.Second, "warmup before the measured window (connections open, nothing counted)")
		timeout   = flag.Duration("timeout", 10*time.Second, "per-request timeout")
		rawDur    = flag.Duration("raw", time.Second, "how long to measure the raw CreateCertificate+CheckSignature cost (0: skip)")
		watch     = flag.String("watch", "", "server PID(s), comma separated: CPU (utime+stime) sampled from /proc over the measured window")
	)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: issueload -adapter trustgate|cfssl -url URL -issuer FILE [flags]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		return usageErr("unexpected arguments %q", flag.Args())
	}
	if *baseURL == "" {
		return usageErr("-url is required")
	}
	bases := strings.Split(*baseURL, ",")
	for i, b := range bases {
		bases[i] = strings.TrimRight(strings.TrimSpace(b), "/")
		if bases[i] == "" {
			return usageErr("-url %q: an empty URL in the list", *baseURL)
		}
	}
	if *issuer == "" {
		return usageErr("-issuer is required: every certificate is verified against it")
	}
	if *workers < 1 || *pool < 1 || *dur <= 0 || *warmup < 0 || *timeout <= 0 {
		return usageErr("-c, -pool, -d and -timeout must be positive, -warmup not negative")
	}
	kt, err := parseKeyType(*keyType)
	if err != nil {
		return usageErr("%v", err)
	}
	issuerCert, err := readCert(*issuer)
	if err != nil {
		return usageErr("-issuer: %v", err)
	}
	caKT, err := keyTypeOf(issuerCert.PublicKey)
	if err != nil {
		return usageErr("-issuer: %v", err)
	}
	pids, err := parsePIDs(*watch)
	if err != nil {
		return usageErr("-watch: %v", err)
	}

	var ad Adapter
	switch *adapter {
	case "trustgate":
		tok := *token
		if *tokenFile != "" {
			b, err := os.ReadFile(*tokenFile)
			if err != nil {
				return usageErr("-token-file: %v", err)
			}
			tok = strings.TrimSpace(string(b))
		}
		if tok == "" {
			tok = os.Getenv("TRUSTGATE_TOKEN")
		}
		if tok == "" {
			return usageErr("trustgate needs a token: -token-file, -token or $TRUSTGATE_TOKEN")
		}
		ad = &trustgateAdapter{url: bases[0] + "/v1/certificates", token: tok,
			ca: *caName, profile: *profile, validity: *validity}
	case "cfssl":
		ad = &cfsslAdapter{url: bases[0] + "/api/v1/cfssl/sign", profile: *cfProfile}
	default:
		return usageErr("unknown -adapter %q (trustgate | cfssl)", *adapter)
	}
	var roots *x509.CertPool
	if *caFile != "" {
		b, err := os.ReadFile(*caFile)
		if err != nil {
			return usageErr("-cacert: %v", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(b) {
			return usageErr("-cacert: no PEM certificate in %s", *caFile)
		}
	}

	nkeys := *keys
	if nkeys <= 0 {
		nkeys = *pool
		if kt == keyRSA {
			nkeys = min(*pool, 16)
		}
	}
	csrs, err := makePool(kt, *pool, nkeys)
	if err != nil {
		return setupErr("CSR pool: %v", err)
	}

	rep := report{
		Label: *label, Adapter: *adapter, URL: *baseURL, KeyType: string(kt), CAKey: string(caKT),
		Workers: *workers, WarmupS: warmup.Seconds(), PoolSize: len(csrs), Verified: true,
		ServerPIDs: pids, GOMAXPROCS: runtime.GOMAXPROCS(0), NumCPU: runtime.NumCPU(),
		Go: runtime.Version(), StartedAt: time.Now().UTC().Format(time.RFC3339),
	}

	// The yardstick first, while nothing else runs in this process.
	if *rawDur > 0 {
		rc, err := measureRaw(caKT, csrs, *rawDur)
		if err != nil {
			return setupErr("raw cost: %v", err)
		}
		rep.RawUsPerCert = round(rc.cpuUsPerCert, 1)
		rep.RawWallUsPerCert = round(rc.usPerCert, 1)
		rep.RawCertsPerSPerCPU = round(1e6/rc.cpuUsPerCert, 0)
		rep.RawIters = rc.iters
	}

	ld := &load{
		bases: bases, base: bases[0],
		adapter: ad, csrs: csrs, issuer: issuerCert, workers: *workers,
		warmup: *warmup, dur: *dur, timeout: *timeout, roots: roots, pids: pids,
	}
	res, err := ld.run(context.Background())
	if err != nil {
		return setupErr("%v", err)
	}
	rep.DurationS = round(res.window.Seconds(), 3)
	rep.Ops, rep.Errors, rep.WarmupErrors = res.ops, res.errors, res.warmupErrors
	if res.window > 0 {
		rep.OpsPerS = round(float64(res.ops)/res.window.Seconds(), 1)
	}
	p := percentiles(res.lat)
	rep.P50Ms, rep.P90Ms, rep.P99Ms, rep.MaxMs, rep.MeanMs = p.p50, p.p90, p.p99, p.max, p.mean
	rep.ClientCPUS = round(res.clientCPU.Seconds(), 3)
	if res.ops > 0 {
		rep.ClientCPUUsOp = round(float64(res.clientCPU.Microseconds())/float64(res.ops), 1)
	}
	if len(pids) > 0 {
		s := round(res.serverCPU.Seconds(), 3)
		rep.ServerCPUS = &s
		cores := round(res.serverCPU.Seconds()/res.window.Seconds(), 2)
		rep.ServerCPUCoresU = &cores
		if res.ops > 0 {
			us := round(float64(res.serverCPU.Microseconds())/float64(res.ops), 1)
			rep.ServerCPUUsOp = &us
			if rep.RawUsPerCert > 0 {
				rep.ServerOverRaw = round(us/rep.RawUsPerCert, 2)
			}
		}
	}
	if w := res.window.Seconds(); w > 0 {
		rep.MachineBusyCores = round(res.machineBusy.Seconds()/w, 2)
		rep.OtherCores = round((res.machineBusy-res.clientCPU-res.serverCPU).Seconds()/w, 2)
	}
	rep.LeafSigAlg, rep.LeafBytes = res.leafSigAlg, res.leafBytes
	if res.firstErr != nil {
		rep.FirstError = res.firstErr.Error()
	}

	out, err := json.Marshal(rep)
	if err != nil {
		return setupErr("encode report: %v", err)
	}
	fmt.Println(string(out))
	if rep.Ops == 0 || rep.Errors > 0 {
		fmt.Fprintf(os.Stderr, "issueload: %d ops, %d errors; first error: %s\n", rep.Ops, rep.Errors, rep.FirstError)
		return 1
	}
	return 0
}

func usageErr(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "issueload: "+format+"\n", args...)
	return 2
}

func setupErr(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "issueload: "+format+"\n", args...)
	return 2
}

func readCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return x509.ParseCertificate(blk.Bytes)
}

func parsePIDs(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad PID %q", f)
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/stat", n)); err != nil {
			return nil, fmt.Errorf("PID %d: %v", n, err)
		}
		out = append(out, n)
	}
	return out, nil
}
