// Command report turns the raw JSON lines of bench/gateway/run.sh into the
// markdown report: one row per server and mode with medians over the
// repeats, trustgate/peer ratios, the CRL figures, and each target of the
// gateway benchmark marked met or missed.
//
//	report [-machine machine.txt] raw.jsonl
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
)

// line is any JSON line of raw.jsonl; kind tells which fields are set.
type line struct {
	Kind string `json:"kind"`

	// kind=load (mtlsload's line plus run.sh's fields)
	Label       string  `json:"label"`
	Target      string  `json:"target"`
	Mode        string  `json:"mode"`
	Rep         int     `json:"rep"`
	Tag         string  `json:"tag"`
	Workers     int     `json:"c"`
	Ops         int     `json:"ops"`
	OpsPerS     float64 `json:"ops_per_s"`
	Errors      int     `json:"errors"`
	ErrorsTotal int     `json:"errors_total"`
	P50         float64 `json:"p50_ms"`
	P99         float64 `json:"p99_ms"`
	ClientUsOp  float64 `json:"client_cpu_us_per_op"`
	Loadavg     float64 `json:"loadavg1"`
	OtherCores  float64 `json:"other_cores"`
	Cipher      string  `json:"cipher"`
	Group       string  `json:"group"`
	TLSVersion  string  `json:"tls_version"`
	Watch       map[string]struct {
		UsPerOp float64 `json:"cpu_us_per_op"`
		Cores   float64 `json:"cores"`
	} `json:"watch"`

	// kind=heap
	When      string  `json:"when"`
	HeapInuse float64 `json:"heap_inuse"`
	NextGC    float64 `json:"next_gc"`
	RSS       float64 `json:"rss"`

	// kind=reload, startup, rss, crlgen, crlfile, crlmeasure, logsize
	N            int             `json:"n"`
	UnderLoad    bool            `json:"under_load"`
	OK           bool            `json:"ok"`
	FileToSwapMs float64         `json:"file_to_swap_ms"`
	HupToSwapMs  float64         `json:"hup_to_swap_ms"`
	MsStartup    float64         `json:"ms"`
	KB           float64         `json:"kb"`
	BaseKB       float64         `json:"base_kb"`
	HWMKB        float64         `json:"hwm_kb"`
	Small        bool            `json:"small"`
	Env          string          `json:"env"`
	Cached       bool            `json:"cached"`
	Name         string          `json:"name"`
	Result       json.RawMessage `json:"result"`
	DERBytes     float64         `json:"der_bytes"`
	PEMBytes     float64         `json:"pem_bytes"`
	Entries      int             `json:"entries"`
	Connections  float64         `json:"connections"`
	Access       float64         `json:"access"`
}

func main() {
	machine := flag.String("machine", "", "machine.txt written by run.sh")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: report [-machine FILE] raw.jsonl")
		os.Exit(2)
	}
	f, err := os.Open(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var lines []line
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			fmt.Fprintf(os.Stderr, "skipping a line: %v\n", err)
			continue
		}
		if l.Kind == "" && l.Label != "" {
			l.Kind = "load"
		}
		lines = append(lines, l)
	}
	r := &report{lines: lines}
	if *machine != "" {
		if b, err := os.ReadFile(*machine); err == nil {
			r.machine = strings.TrimSpace(string(b))
		}
	}
	r.print()
}

type report struct {
	lines   []line
	machine string
	verdict []string
}

func (r *report) loads(target, mode string) []line {
	var out []line
	for _, l := range r.lines {
		if l.Kind == "load" && l.Target == target && l.Mode == mode && l.Tag == "" {
			out = append(out, l)
		}
	}
	return out
}

func (r *report) tagged(tag, target string) []line {
	var out []line
	for _, l := range r.lines {
		if l.Kind == "load" && l.Tag == tag && l.Target == target {
			out = append(out, l)
		}
	}
	return out
}

func joinR(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%.3f", x)
	}
	return strings.Join(s, ", ")
}

func (r *report) of(kind string) []line {
	var out []line
	for _, l := range r.lines {
		if l.Kind == kind {
			out = append(out, l)
		}
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func pick(ls []line, f func(line) float64) []float64 {
	out := make([]float64, len(ls))
	for i, l := range ls {
		out[i] = f(l)
	}
	return out
}

type row struct {
	n                                int
	ops, lo, hi, p50, p99, srv, core float64
	backend, client, other           float64
	errs                             int
}

func summarize(ls []line) (row, bool) {
	if len(ls) == 0 {
		return row{}, false
	}
	ops := pick(ls, func(l line) float64 { return l.OpsPerS })
	s := row{n: len(ls), ops: median(ops), lo: slicesMin(ops), hi: slicesMax(ops)}
	s.p50 = median(pick(ls, func(l line) float64 { return l.P50 }))
	s.p99 = median(pick(ls, func(l line) float64 { return l.P99 }))
	s.srv = median(pick(ls, func(l line) float64 { return l.Watch["server"].UsPerOp }))
	s.core = median(pick(ls, func(l line) float64 { return l.Watch["server"].Cores }))
	s.backend = median(pick(ls, func(l line) float64 { return l.Watch["backend"].UsPerOp }))
	s.client = median(pick(ls, func(l line) float64 { return l.ClientUsOp }))
	s.other = median(pick(ls, func(l line) float64 { return l.OtherCores }))
	for _, l := range ls {
		s.errs += l.ErrorsTotal
	}
	return s, true
}

func slicesMin(v []float64) float64 {
	m := math.Inf(1)
	for _, x := range v {
		m = math.Min(m, x)
	}
	return m
}

func slicesMax(v []float64) float64 {
	m := math.Inf(-1)
	for _, x := range v {
		m = math.Max(m, x)
	}
	return m
}

var names = map[string]string{
	"trustgate":        "trustgate",
	"trustgate-crl":    "trustgate, 1M CRL",
	"trustgate-logs":   "trustgate, logs to a file",
	"trustgate-reload": "trustgate, 1M CRL, 3 reloads",
	"nginx":            "nginx",
	"haproxy":          "HAProxy",
	"nginx-crl":        "nginx, 1M CRL",
	"haproxy-crl":      "HAProxy, 1M CRL",
}

func name(t string) string {
	if n, ok := names[t]; ok {
		return n
	}
	return t
}

func (r *report) print() {
	fmt.Println("## Gateway benchmark: trustgate vs nginx and HAProxy")
	fmt.Println()
	if r.machine != "" {
		fmt.Println("```")
		fmt.Println(r.machine)
		fmt.Println("```")
		fmt.Println()
	}
	var first line
	for _, l := range r.of("load") {
		first = l
		break
	}
	if first.TLSVersion != "" {
		fmt.Printf("Negotiated: %s, %s, key exchange %s. ", first.TLSVersion, first.Cipher, first.Group)
	}
	fmt.Println("Ops/s is the median of the runs (min–max in brackets); p50/p99 are medians of the runs' percentiles; CPU is µs per operation over the measured window (from /proc/PID/stat), \"server cores\" the server's average CPU use, \"other work\" the CPU that processes outside the benchmark took from the machine meanwhile (/proc/stat, in cores).")
	fmt.Println()
	fmt.Println("| server | mode | runs | ops/s | p50 ms | p99 ms | server CPU µs/op | server cores | backend µs/op | client µs/op | other work, cores | errors |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|")
	order := []struct{ t, m string }{
		{"trustgate", "handshake"}, {"nginx", "handshake"}, {"haproxy", "handshake"},
		{"trustgate-crl", "handshake"}, {"nginx-crl", "handshake"}, {"haproxy-crl", "handshake"},
		{"trustgate-logs", "handshake"}, {"trustgate-reload", "handshake"},
		{"trustgate", "request"}, {"nginx", "request"}, {"haproxy", "request"}, {"trustgate-logs", "request"},
	}
	sum := map[string]row{}
	for _, o := range order {
		s, ok := summarize(r.loads(o.t, o.m))
		if !ok {
			continue
		}
		sum[o.t+"/"+o.m] = s
		rng := ""
		if s.n > 1 {
			rng = fmt.Sprintf(" (%s–%s)", num(s.lo), num(s.hi))
		}
		mode := "full handshake + 1 GET"
		if o.m == "request" {
			mode = "keep-alive GET"
		}
		fmt.Printf("| %s | %s | %d | **%s**%s | %.2f | %.2f | %s | %.2f | %s | %s | %.2f | %d |\n",
			name(o.t), mode, s.n, num(s.ops), rng, s.p50, s.p99, num(s.srv), s.core, num(s.backend), num(s.client), s.other, s.errs)
	}
	fmt.Println()

	// Ratios.
	fmt.Println("### trustgate / peers (same run)")
	fmt.Println()
	fmt.Println("| figure | trustgate | nginx | HAProxy | trustgate/nginx | trustgate/HAProxy |")
	fmt.Println("|---|---|---|---|---|---|")
	ratioRow := func(label, key string, f func(row) float64, inverse bool) (float64, bool) {
		tg, ok := sum["trustgate/"+key]
		if !ok {
			return 0, false
		}
		ng, okN := sum["nginx/"+key]
		hp, okH := sum["haproxy/"+key]
		cell := func(s row, ok bool) string {
			if !ok {
				return "–"
			}
			return num(f(s))
		}
		ratio := func(s row, ok bool) (string, float64) {
			if !ok || f(s) == 0 || f(tg) == 0 {
				return "–", 0
			}
			v := f(tg) / f(s)
			if inverse {
				v = f(s) / f(tg)
			}
			return fmt.Sprintf("**%.2f×**", v), v
		}
		rn, vn := ratio(ng, okN)
		rh, _ := ratio(hp, okH)
		fmt.Printf("| %s | %s | %s | %s | %s | %s |\n", label, num(f(tg)), cell(ng, okN), cell(hp, okH), rn, rh)
		return vn, okN
	}
	ops := func(s row) float64 { return s.ops }
	srv := func(s row) float64 { return s.srv }
	p99 := func(s row) float64 { return s.p99 }
	hsRatio, hsOK := ratioRow("full mTLS handshakes/s", "handshake", ops, false)
	ratioRow("server CPU per handshake, µs (ratio: peer/trustgate, >1 = trustgate cheaper)", "handshake", srv, true)
	kaRatio, kaOK := ratioRow("keep-alive requests/s", "request", ops, false)
	ratioRow("keep-alive p99, ms (ratio: peer/trustgate, >1 = trustgate faster)", "request", p99, true)
	ratioRow("server CPU per request, µs (ratio: peer/trustgate)", "request", srv, true)
	fmt.Println()
	if hsOK {
		r.target("handshakes/s ≥ 1.5× nginx", hsRatio >= 1.5, fmt.Sprintf("%.2f×", hsRatio))
	}
	if kaOK {
		r.target("keep-alive requests/s ≥ 0.8× nginx", kaRatio >= 0.8, fmt.Sprintf("%.2f×", kaRatio))
	}

	r.printCRL(sum)
	r.printLogs(sum)

	fmt.Println("### Targets")
	fmt.Println()
	fmt.Println("| target | measured | |")
	fmt.Println("|---|---|---|")
	for _, v := range r.verdict {
		fmt.Println(v)
	}
	fmt.Println()
}

func (r *report) target(what string, met bool, measured string) {
	mark := "**met**"
	if !met {
		mark = "**missed**"
	}
	r.verdict = append(r.verdict, fmt.Sprintf("| %s | %s | %s |", what, measured, mark))
}

func (r *report) printCRL(sum map[string]row) {
	tg, ok1 := sum["trustgate/handshake"]
	tc, ok2 := sum["trustgate-crl/handshake"]
	if !ok1 || !ok2 {
		return
	}
	fmt.Println("### The 1,000,000-entry CRL")
	fmt.Println()
	fmt.Println("| figure | value |")
	fmt.Println("|---|---|")
	ratio := tc.ops / tg.ops
	// Paired by repeat: the two runs of a round are minutes apart at most.
	var paired []string
	var pairedV []float64
	for _, a := range r.loads("trustgate", "handshake") {
		for _, b := range r.loads("trustgate-crl", "handshake") {
			if a.Rep == b.Rep && a.OpsPerS > 0 {
				pairedV = append(pairedV, b.OpsPerS/a.OpsPerS)
				paired = append(paired, fmt.Sprintf("%.3f", b.OpsPerS/a.OpsPerS))
			}
		}
	}
	fmt.Printf("| handshakes/s with / without the CRL (medians) | **%.3f** (%s / %s); per round: %s (median %.3f) |\n",
		ratio, num(tc.ops), num(tg.ops), strings.Join(paired, ", "), median(pairedV))
	fmt.Printf("| server CPU per handshake with / without (sequential runs) | %s / %s µs (%+.1f%%) |\n", num(tc.srv), num(tg.srv), 100*(tc.srv/tg.srv-1))
	// A/B: both gateways under load at the same time.
	var abR, abCPU []float64
	var abS []string
	for _, a := range r.tagged("ab", "trustgate") {
		for _, b := range r.tagged("ab", "trustgate-crl") {
			if a.Rep == b.Rep && a.OpsPerS > 0 && a.Watch["server"].UsPerOp > 0 {
				abR = append(abR, b.OpsPerS/a.OpsPerS)
				abCPU = append(abCPU, b.Watch["server"].UsPerOp/a.Watch["server"].UsPerOp)
				abS = append(abS, fmt.Sprintf("%s/%s", num(b.OpsPerS), num(a.OpsPerS)))
			}
		}
	}
	if len(abR) > 0 {
		fmt.Printf("| A/B, both loaded at once (%d workers each): handshakes/s with / without, per round | %s → ratios %s; **median %.3f** |\n",
			r.tagged("ab", "trustgate")[0].Workers, strings.Join(abS, ", "), joinR(abR), median(abR))
		fmt.Printf("| A/B: server CPU per handshake with / without | ratios %s; median %+.1f%% |\n", joinR(abCPU), 100*(median(abCPU)-1))
		r.target("handshakes/s with the 1M CRL within 3% of without (A/B at once)", median(abR) >= 0.97,
			fmt.Sprintf("%.3f× (CPU/handshake %+.1f%%); sequential medians %.3f×", median(abR), 100*(median(abCPU)-1), ratio))
	} else {
		r.target("handshakes/s with the 1M CRL within 3% of without", ratio >= 0.97,
			fmt.Sprintf("%.3f× (CPU/handshake %+.1f%%)", ratio, 100*(tc.srv/tg.srv-1)))
	}
	for _, l := range r.of("crlfile") {
		fmt.Printf("| CRL size (%d entries) | %.1f MB DER, %.1f MB PEM |\n", l.Entries, l.DERBytes/1e6, l.PEMBytes/1e6)
	}
	for _, l := range r.of("crlgen") {
		if !strings.HasPrefix(l.Name, "int-big") {
			continue
		}
		var g map[string]any
		json.Unmarshal(l.Result, &g)
		if g == nil {
			continue
		}
		when := ""
		if l.Cached {
			when = " (cached: made by an earlier run)"
		}
		fmt.Printf("| generating %s with bench/gateway/crlgen%s | %.0f ms (entries %v ms, signature check + PEM %v ms) |\n", l.Name, when, toF(g["wall_ms"]), g["entries_ms"], g["check_pem_ms"])
	}
	var big, small map[string]any
	for _, l := range r.of("crlmeasure") {
		var g map[string]any
		json.Unmarshal(l.Result, &g)
		if l.Small {
			small = g
			continue
		}
		big = g
		fmt.Printf("| verify.CompileDER of it, alone (crlgen -measure) | %v ms; keeps %.1f MB of heap after GC; allocates %.1f MB while compiling |\n",
			g["compile_ms"], toF(g["retained_bytes"])/1e6, toF(g["allocated_bytes"])/1e6)
	}
	if big != nil && small != nil {
		fmt.Printf("| Verifier.Verify of the client's chain (leaf + intermediate), 1M-entry vs 1-entry CRL (crlgen -measure, fastest of 10×100) | %.0f vs %.0f µs; the leaf alone: %.0f vs %.0f µs |\n",
			toF(big["verify_us_as_sent"]), toF(small["verify_us_as_sent"]), toF(big["verify_us_leaf_only"]), toF(small["verify_us_leaf_only"]))
	}
	heaps := map[string][]line{}
	for _, h := range r.of("heap") {
		heaps[h.Target+"/"+h.When] = append(heaps[h.Target+"/"+h.When], h)
	}
	medHeap := func(key string, f func(line) float64) float64 {
		return median(pick(heaps[key], f))
	}
	inuse := func(l line) float64 { return l.HeapInuse }
	nextgc := func(l line) float64 { return l.NextGC }
	rss := func(l line) float64 { return l.RSS }
	if len(heaps["trustgate/after-handshake"]) > 0 && len(heaps["trustgate-crl/after-handshake"]) > 0 {
		a, b := medHeap("trustgate/after-handshake", inuse), medHeap("trustgate-crl/after-handshake", inuse)
		fmt.Printf("| gateway heap_inuse after the handshake runs, without / with the CRL | %.1f / %.1f MB (+%.1f MB); next_gc %.1f / %.1f MB; RSS %.1f / %.1f MB |\n",
			a/1e6, b/1e6, (b-a)/1e6, medHeap("trustgate/after-handshake", nextgc)/1e6, medHeap("trustgate-crl/after-handshake", nextgc)/1e6,
			medHeap("trustgate/after-handshake", rss)/1e6, medHeap("trustgate-crl/after-handshake", rss)/1e6)
	}
	before, after := heaps["trustgate-reload/before-crl"], heaps["trustgate-reload/after-reloads"]
	if len(before) > 0 && len(after) > 0 {
		b, a := before[0], after[0]
		idle := heaps["trustgate-reload/after-crl-idle"]
		idleS := ""
		if len(idle) > 0 {
			idleS = fmt.Sprintf("; right after the first (idle) load, before any GC: %.1f MB", idle[0].HeapInuse/1e6)
		}
		fmt.Printf("| reload gateway heap_inuse: 1-entry CRL → 1M CRL (after the reload run) | %.1f → %.1f MB (+%.1f MB); RSS %.1f → %.1f MB%s |\n",
			b.HeapInuse/1e6, a.HeapInuse/1e6, (a.HeapInuse-b.HeapInuse)/1e6, b.RSS/1e6, a.RSS/1e6, idleS)
		grow := a.HeapInuse - b.HeapInuse
		how := "reload gateway, 1-entry → 1M CRL"
		if len(heaps["trustgate/after-handshake"]) > 0 && len(heaps["trustgate-crl/after-handshake"]) > 0 {
			d := medHeap("trustgate-crl/after-handshake", inuse) - medHeap("trustgate/after-handshake", inuse)
			if d > grow {
				grow, how = d, "gateway with the CRL − without, after the handshake runs"
			}
		}
		r.target("memory of the 1M CRL in the gateway < 100 MB", grow < 100e6,
			fmt.Sprintf("+%.1f MB heap_inuse (the larger of the two measures: %s)", grow/1e6, how))
	}
	for _, h := range r.of("hwm") {
		fmt.Printf("| reload gateway peak RSS (VmHWM) after the first, idle load | %.1f MB |\n", h.KB/1024)
	}
	for _, p := range r.of("reloadpeak") {
		fmt.Printf("| peak during the reloads under load | heap_inuse %.1f MB (sampled every 250 ms); peak RSS (VmHWM) %.1f MB |\n", p.HeapInuse/1e6, p.HWMKB/1024)
	}
	var idle, loaded []float64
	var hup []string
	failedReloads := 0
	for _, l := range r.of("reload") {
		if !l.OK {
			failedReloads++
			continue
		}
		if l.UnderLoad {
			loaded = append(loaded, l.FileToSwapMs)
			hup = append(hup, fmt.Sprintf("%.0f", l.HupToSwapMs))
		} else {
			idle = append(idle, l.FileToSwapMs)
		}
	}
	if len(idle) > 0 {
		fmt.Printf("| reload, idle gateway: file replaced + SIGHUP → new trust store in use | %.0f ms |\n", idle[0])
	}
	rl, haveRL := sum["trustgate-reload/handshake"]
	if len(loaded) > 0 || failedReloads > 0 {
		fmt.Printf("| reloads under handshake load: file replaced + SIGHUP → in use | %s ms (gateway log, SIGHUP → swap: %s ms); %d reload(s) not seen |\n",
			joinF(loaded), strings.Join(hup, ", "), failedReloads)
		failed := -1
		if haveRL {
			failed = rl.errs
			fmt.Printf("| failed handshakes during the reload run | %d of %d ops (%s handshakes/s while reloading) |\n", rl.errs, int(rl.ops*float64(rlWindow(r))), num(rl.ops))
		}
		worst := slicesMax(loaded)
		r.target("CRL reload under load < 2 s with no failed handshake",
			failedReloads == 0 && len(loaded) > 0 && worst < 2000 && failed == 0,
			fmt.Sprintf("worst %.0f ms, %d failed handshakes", worst, failed))
	}
	for _, p := range []string{"nginx", "haproxy"} {
		var st []line
		for _, s := range r.of("startup") {
			if s.Target == p+"-crl" {
				st = append(st, s)
			}
		}
		var rs []line
		for _, s := range r.of("rss") {
			if s.Target == p+"-crl" {
				rs = append(rs, s)
			}
		}
		if len(st) > 0 {
			extra := ""
			if len(rs) > 0 {
				extra = fmt.Sprintf("; RSS of all its processes %.0f MB (without the CRL: %.0f MB)", rs[0].KB/1024, rs[0].BaseKB/1024)
			}
			fmt.Printf("| %s start with the 1M CRL (until its port opens) | %.0f ms%s |\n", name(p), st[0].MsStartup, extra)
		}
	}
	for _, s := range r.of("startup") {
		if s.Target == "trustgate-crl" {
			fmt.Printf("| trustgate start with the 1M CRL (until its port opens) | %.0f ms |\n", s.MsStartup)
		}
	}
	fmt.Println()
}

func rlWindow(r *report) float64 {
	for _, l := range r.loads("trustgate-reload", "handshake") {
		if l.OpsPerS > 0 {
			return float64(l.Ops) / l.OpsPerS
		}
	}
	return 0
}

func (r *report) printLogs(sum map[string]row) {
	r.printAB("logab", "trustgate-logs", "Cost of trustgate's logs: connection + access log to a file vs `off` (A/B, both loaded at once)",
		"logs off", "logs to a file")
	env := "GC_AB_ENV"
	for _, l := range r.of("gcab") {
		env = l.Env
	}
	r.printAB("gcab", "trustgate-gc", "The garbage collector's share: trustgate as is vs with "+env+" (A/B, both loaded at once)",
		"as is", env)
}

func (r *report) printAB(tag, other, title, offName, onName string) {
	type pair struct{ off, on line }
	byMode := map[string][]pair{}
	for _, a := range r.tagged(tag, "trustgate") {
		for _, b := range r.tagged(tag, other) {
			if a.Rep == b.Rep && a.Mode == b.Mode {
				byMode[a.Mode] = append(byMode[a.Mode], pair{a, b})
			}
		}
	}
	if len(byMode) == 0 {
		return
	}
	fmt.Println("### " + title)
	fmt.Println()
	fmt.Printf("| mode | %s: ops/s, server µs/op | %s: ops/s, server µs/op | ops/s ratio (per round) | CPU per op, median difference |\n", offName, onName)
	fmt.Println("|---|---|---|---|---|")
	for _, mode := range []string{"handshake", "request"} {
		ps := byMode[mode]
		if len(ps) == 0 {
			continue
		}
		var offO, onO, offC, onC, ratio, diff []float64
		for _, p := range ps {
			offO = append(offO, p.off.OpsPerS)
			onO = append(onO, p.on.OpsPerS)
			offC = append(offC, p.off.Watch["server"].UsPerOp)
			onC = append(onC, p.on.Watch["server"].UsPerOp)
			ratio = append(ratio, p.on.OpsPerS/p.off.OpsPerS)
			diff = append(diff, p.on.Watch["server"].UsPerOp-p.off.Watch["server"].UsPerOp)
		}
		fmt.Printf("| %s | %s, %s | %s, %s | %s | %+.1f µs/op (%+.1f%%) |\n", mode, num(median(offO)), num(median(offC)),
			num(median(onO)), num(median(onC)), joinR(ratio), median(diff), 100*median(diff)/median(offC))
	}
	if tag == "logab" {
		for _, l := range r.of("logsize") {
			fmt.Printf("\nLog volume written by those runs: connection log %.1f MB, access log %.1f MB.\n", l.Connections/1e6, l.Access/1e6)
		}
	}
	fmt.Println()
}

func joinF(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(s, ", ")
}

func toF(v any) float64 {
	f, _ := v.(float64)
	return f
}

// num formats a figure with a thousands separator and no more precision
// than it has.
func num(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	if v >= 100 {
		s := fmt.Sprintf("%.0f", v)
		var b strings.Builder
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		return b.String()
	}
	return fmt.Sprintf("%.1f", v)
}
