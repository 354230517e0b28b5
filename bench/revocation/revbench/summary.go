package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// cmdSummary turns the JSON lines of run.sh (load and propagation
// records) and the output of the CRL benchmark into Markdown.
func cmdSummary(args []string) error {
	fs := flag.NewFlagSet("summary", flag.ExitOnError)
	raw := fs.String("raw", "raw.jsonl", "JSON lines of load and propagate")
	crlBench := fs.String("crlbench", "", "output of go test -bench BenchmarkCRL1M (optional)")
	crlRSS := fs.String("crlrss", "", "file holding the benchmark process's peak RSS in KiB (optional)")
	base := fs.String("base", "trustgate", "the load target the others are compared with")
	target := fs.Float64("target-rps", 20000, "responses/s target of the base")
	fs.Parse(args)
	f, err := os.Open(*raw)
	if err != nil {
		return err
	}
	defer f.Close()
	var loads []loadResult
	var props []propResult
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var k struct{ Kind string }
		if json.Unmarshal(line, &k) != nil {
			continue
		}
		switch k.Kind {
		case "load":
			var r loadResult
			if err := json.Unmarshal(line, &r); err == nil {
				loads = append(loads, r)
			}
		case "propagation":
			var r propResult
			if err := json.Unmarshal(line, &r); err == nil {
				props = append(props, r)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	if len(loads) > 0 {
		writeLoad(w, loads, *base, *target)
	}
	for _, p := range props {
		writeProp(w, p)
	}
	if *crlBench != "" {
		if err := writeCRL(w, *crlBench, *crlRSS); err != nil {
			return err
		}
	}
	return nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func writeLoad(w io.Writer, loads []loadResult, base string, target float64) {
	fmt.Fprintf(w, "### (a) OCSP GET from the cache: runs in order\n\n")
	fmt.Fprintf(w, "C=%d keep-alive connections, pool of %d certificates, %.0f s window after %.0f s warmup, load generator on the same machine.\n\n",
		loads[0].C, loads[0].Pool, loads[0].WindowS, loads[0].WarmupS)
	fmt.Fprintln(w, "| # | server | responses/s | p50 ms | p99 ms | p99.9 ms | max ms | server CPU µs/resp | server cores | loadgen cores | other processes, cores | body B | errors |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	var order []string
	by := map[string][]loadResult{}
	for i, r := range loads {
		if _, ok := by[r.Label]; !ok {
			order = append(order, r.Label)
		}
		by[r.Label] = append(by[r.Label], r)
		fmt.Fprintf(w, "| %d | %s | %.0f | %.3f | %.3f | %.3f | %.2f | %.1f | %.2f | %.2f | %.2f | %.0f | %d |\n",
			i+1, r.Label, r.RPS, r.P50ms, r.P99ms, r.P999ms, r.MaxMs, r.ServerUsPerResp, r.ServerCores, r.ClientCores, r.OtherCores, r.MeanBytes, r.Errors)
	}
	fmt.Fprintln(w)
	for i, r := range loads {
		fmt.Fprintf(w, "Run %d: machine busy %.2f cores (system %.2f, softirq %.2f, steal %.2f)", i+1, r.BusyCores, r.SystemCores, r.SoftirqCores, r.StealCores)
		if len(r.TopOthers) > 0 {
			fmt.Fprintf(w, "; busiest other processes (cores): %s", strings.Join(r.TopOthers, ", "))
		}
		fmt.Fprintf(w, "; %d connections opened, %d answers verified in full (warmup and window).  \n", r.Dials, r.Verified)
	}
	type agg struct{ rps, p50, p99, us float64 }
	med := map[string]agg{}
	for _, l := range order {
		var rps, p50, p99, us []float64
		for _, r := range by[l] {
			rps, p50, p99, us = append(rps, r.RPS), append(p50, r.P50ms), append(p99, r.P99ms), append(us, r.ServerUsPerResp)
		}
		med[l] = agg{median(rps), median(p50), median(p99), median(us)}
	}
	fmt.Fprintf(w, "\n### (a) Medians per server, and %s against each\n\n", base)
	fmt.Fprintf(w, "| server | runs | responses/s | p50 ms | p99 ms | server CPU µs/resp | %s ÷ server, responses/s (same C) | server ÷ %s, CPU µs/resp (same C) |\n", base, base)
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|")
	b, haveBase := med[base]
	for _, l := range order {
		m := med[l]
		ratio, cpu := "", ""
		// A run at another concurrency (label suffix -cN) is compared
		// with the base's run at the same one.
		bl := base
		if i := strings.LastIndex(l, "-c"); i > 0 {
			if _, err := strconv.Atoi(l[i+2:]); err == nil {
				bl = base + l[i:]
			}
		}
		if b, ok := med[bl]; ok && m.rps > 0 && b.us > 0 {
			ratio = fmt.Sprintf("%.2f×", b.rps/m.rps)
			cpu = fmt.Sprintf("%.2f×", m.us/b.us)
		}
		fmt.Fprintf(w, "| %s | %d | %.0f | %.3f | %.3f | %.1f | %s | %s |\n", l, len(by[l]), m.rps, m.p50, m.p99, m.us, ratio, cpu)
	}
	if haveBase {
		verdict := "met"
		if b.rps < target {
			verdict = "NOT met"
		}
		fmt.Fprintf(w, "\nTarget: %s ≥ %.0f responses/s (median of its runs): %.0f, **%s**.\n\n", base, target, b.rps, verdict)
	}
}

func writeProp(w io.Writer, p propResult) {
	fmt.Fprintf(w, "### (b) Revoke → new OCSP answer and new CRL served (%s)\n\n", p.Label)
	fmt.Fprintf(w, "%d revocations (reason %s) one after another; client time from sending the revoke request until a poll (every %.0f ms) sees it. Failures: %d.\n\n",
		p.N, p.Reason, p.PollMs, p.Timeouts)
	fmt.Fprintln(w, "| measured by the client | n | min ms | p50 ms | p90 ms | p99 ms | max ms | mean ms |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|")
	row := func(name string, s latStats) {
		fmt.Fprintf(w, "| %s | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |\n", name, s.N, s.MinMs, s.P50ms, s.P90ms, s.P99ms, s.MaxMs, s.MeanMs)
	}
	row("API revoke call (answer received)", p.API)
	row("OCSP (POST) answers revoked", p.OCSP)
	row("CRL lists the serial", p.CRL)
	row("both", p.Both)
	fmt.Fprintf(w, "\nPolls: %d OCSP, %d CRL (%d downloads, the rest 304); last CRL %d bytes, CRL number %s.\n\n", p.OCSPPolls, p.CRLPolls, p.CRLFetch, p.CRLBytes, p.CRLNumber)
	fmt.Fprintln(w, "| server histogram `trustgate_revocation_propagation_seconds` (this run's observations) | count | mean ms | p50 ms | p90 ms | p99 ms | ≤ 100 ms | ≤ 200 ms | ≤ 1 s |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, k := range []string{"ocsp", "crl"} {
		s, ok := p.Server[k]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "| kind=%q | %.0f | %.1f | %.1f | %.1f | %.1f | %.0f | %.0f | %.0f |\n", k, s.Count, s.MeanMs, s.P50ms, s.P90ms, s.P99ms, s.Le100ms, s.Le200ms, s.Le1s)
	}
	verdict := "met"
	if p.Timeouts > 0 || p.Both.P99ms >= 1000 {
		verdict = "NOT met"
	}
	fmt.Fprintf(w, "\nServer quantiles are interpolated inside the histogram's buckets (0.1, 0.2, 0.3 s ...), as histogram_quantile does. Target: p99 of both < 1 s: %.1f ms, **%s**.\n\n", p.Both.P99ms, verdict)
}

func writeCRL(w io.Writer, path, rssPath string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "### (c) CRL of 1,000,000 revoked certificates (in-package benchmark)\n\n")
	fmt.Fprintln(w, "| benchmark | iterations | time/op s | DER MB | entries | allocated MB/op | allocs/op |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
	var worst float64
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		vals := map[string]float64{}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err == nil {
				vals[f[i+1]] = v
			}
		}
		worst = max(worst, vals["ns/op"]/1e9)
		fmt.Fprintf(w, "| %s | %s | %.3f | %.1f | %.0f | %.1f | %.0f |\n", f[0], f[1], vals["ns/op"]/1e9, vals["DER-bytes"]/1e6, vals["entries"], vals["B/op"]/1e6, vals["allocs/op"])
	}
	if rssPath != "" {
		if r, err := os.ReadFile(rssPath); err == nil {
			if kb, err := strconv.ParseFloat(strings.TrimSpace(string(r)), 64); err == nil {
				fmt.Fprintf(w, "\nPeak RSS of the benchmark process: %.0f MB (includes the fake store's 1,000,000 serial strings).\n", kb/1024)
			}
		}
	}
	verdict := "met"
	if worst >= 3 || worst == 0 {
		verdict = "NOT met"
	}
	fmt.Fprintf(w, "\nTarget: < 3 s per CRL: slowest %.3f s, **%s**.\n\n", worst, verdict)
	return nil
}
