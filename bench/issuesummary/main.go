// Command issuesummary turns the JSON lines of bench/issueload runs into a
// markdown table: one row per (CA key type, adapter), medians over the runs,
// and the ratio of Trustgate's median certificates/s to cfssl's for the same
// key type.
//
//	issuesummary raw.jsonl > summary.md
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

type run struct {
	Label         string   `json:"label"`
	Adapter       string   `json:"adapter"`
	KeyType       string   `json:"key_type"`
	CAKey         string   `json:"ca_key"`
	Workers       int      `json:"c"`
	Ops           int64    `json:"ops"`
	Errors        int64    `json:"errors"`
	OpsPerS       float64  `json:"ops_per_s"`
	P50Ms         float64  `json:"p50_ms"`
	P99Ms         float64  `json:"p99_ms"`
	ClientUsOp    float64  `json:"client_cpu_us_per_op"`
	ServerUsOp    *float64 `json:"server_cpu_us_per_op"`
	ServerCores   *float64 `json:"server_cores_used"`
	RawUsPerCert  float64  `json:"raw_us_per_cert"`
	RawCertsPerS  float64  `json:"raw_certs_per_s_per_core"`
	LeafSigAlg    string   `json:"leaf_sig_alg"`
	DurationS     float64  `json:"duration_s"`
	Verified      bool     `json:"verified_against_issuer"`
	FirstError    string   `json:"first_error"`
	ServerOverRaw float64  `json:"server_us_over_raw_us"`
	OtherCores    float64  `json:"other_cores"`
}

type group struct {
	caKey, adapter string
	runs           []run
}

func main() {
	var in io.Reader = os.Stdin
	if len(os.Args) > 1 {
		f, err := os.Open(os.Args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, "issuesummary:", err)
			os.Exit(2)
		}
		defer f.Close()
		in = f
	}
	var groups []*group
	find := func(caKey, adapter string) *group {
		for _, g := range groups {
			if g.caKey == caKey && g.adapter == adapter {
				return g
			}
		}
		g := &group{caKey: caKey, adapter: adapter}
		groups = append(groups, g)
		return g
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var r run
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			fmt.Fprintf(os.Stderr, "issuesummary: line %d: %v\n", n, err)
			os.Exit(2)
		}
		g := find(r.CAKey, r.Adapter)
		g.runs = append(g.runs, r)
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "issuesummary:", err)
		os.Exit(2)
	}
	// Key types in order of appearance; cfssl before trustgate within each.
	slices.SortStableFunc(groups, func(a, b *group) int {
		return strings.Compare(a.adapter, b.adapter)
	})
	var keys []string
	for _, g := range groups {
		if !slices.Contains(keys, g.caKey) {
			keys = append(keys, g.caKey)
		}
	}
	slices.Sort(keys) // ecdsa-p256 before rsa-2048

	fmt.Println("| CA key | server | runs | certs/s median (min–max) | trustgate / cfssl | p50 ms | p99 ms | server CPU µs/cert | server cores busy | client CPU µs/cert | raw µs/cert (certs/s/core) | server µs ÷ raw µs | other procs' cores | errors |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, k := range keys {
		var cfssl float64
		for _, g := range groups {
			if g.caKey == k && g.adapter == "cfssl" {
				cfssl = median(g, func(r run) float64 { return r.OpsPerS })
			}
		}
		for _, g := range groups {
			if g.caKey != k {
				continue
			}
			ops := median(g, func(r run) float64 { return r.OpsPerS })
			lo, hi := minmax(g, func(r run) float64 { return r.OpsPerS })
			ratio := "–"
			if g.adapter == "trustgate" && cfssl > 0 {
				ratio = fmt.Sprintf("**%.2f**", ops/cfssl)
			}
			var errs int64
			for _, r := range g.runs {
				errs += r.Errors
			}
			srv := median(g, func(r run) float64 { return deref(r.ServerUsOp) })
			raw := median(g, func(r run) float64 { return r.RawUsPerCert })
			fmt.Printf("| %s | %s | %d | **%.0f** (%.0f–%.0f) | %s | %.2f | %.2f | %.0f | %.2f | %.0f | %.0f (%.0f) | %.1f | %.2f | %d |\n",
				k, g.adapter, len(g.runs), ops, lo, hi, ratio,
				median(g, func(r run) float64 { return r.P50Ms }),
				median(g, func(r run) float64 { return r.P99Ms }),
				srv,
				median(g, func(r run) float64 { return deref(r.ServerCores) }),
				median(g, func(r run) float64 { return r.ClientUsOp }),
				raw, median(g, func(r run) float64 { return r.RawCertsPerS }),
				srv/raw, median(g, func(r run) float64 { return r.OtherCores }), errs)
		}
	}
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

func values(g *group, f func(run) float64) []float64 {
	v := make([]float64, 0, len(g.runs))
	for _, r := range g.runs {
		v = append(v, f(r))
	}
	slices.Sort(v)
	return v
}

// median of an even count is the mean of the two middle values.
func median(g *group, f func(run) float64) float64 {
	v := values(g, f)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func minmax(g *group, f func(run) float64) (float64, float64) {
	v := values(g, f)
	if len(v) == 0 {
		return 0, 0
	}
	return v[0], v[len(v)-1]
}
