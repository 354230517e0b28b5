package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// loadResult is the JSON line of one load run.
type loadResult struct {
	Kind       string  `json:"kind"` // "load"
	Label      string  `json:"label"`
	Target     string  `json:"target"`
	Mode       string  `json:"mode"` // "get" (RFC 5019 GET) or "static" (pre-fetched files)
	C          int     `json:"c"`
	Pool       int     `json:"pool"`
	WarmupS    float64 `json:"warmup_s"`
	WindowS    float64 `json:"window_s"`
	Responses  int64   `json:"responses"`
	RPS        float64 `json:"rps"`
	P50ms      float64 `json:"p50_ms"`
	P90ms      float64 `json:"p90_ms"`
	P99ms      float64 `json:"p99_ms"`
	P999ms     float64 `json:"p999_ms"`
	MaxMs      float64 `json:"max_ms"`
	MeanMs     float64 `json:"mean_ms"`
	MeanBytes  float64 `json:"mean_body_bytes"`
	Errors     int64   `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	Dials      int     `json:"dials"`
	// PreVerified answers were checked in full (signature, signer, status)
	// before the load, one per pool entry; Verified more during it.
	PreVerified int `json:"pre_verified"`
	Verified    int `json:"verified"`
	// CPU over the window: the server's (process tree) per response and in
	// cores, the load generator's, all processes' and the difference
	// (other processes on the machine).
	ServerUsPerResp float64 `json:"server_cpu_us_per_resp"`
	ServerCores     float64 `json:"server_cores"`
	ClientUsPerResp float64 `json:"client_cpu_us_per_resp"`
	ClientCores     float64 `json:"client_cores"`
	BusyCores       float64 `json:"machine_busy_cores"`
	OtherCores      float64 `json:"other_cores"`
	// Of the machine's busy time: system, softirq and steal, in cores
	// (softirq, where loopback TCP is processed, is counted in no process
	// when the kernel accounts IRQ time apart).
	SystemCores  float64  `json:"machine_system_cores"`
	SoftirqCores float64  `json:"machine_softirq_cores"`
	StealCores   float64  `json:"machine_steal_cores"`
	TopOthers    []string `json:"top_other_processes,omitempty"`
	NumCPU       int      `json:"ncpu"`
	ClientProcs  int      `json:"client_gomaxprocs"`
}

type workerOut struct {
	lat      []time.Duration // of responses that completed in the window
	bytes    int64
	errs     int64
	firstErr error
	verified int
	dials    int
}

func cmdLoad(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	label := fs.String("label", "", "name of the run in the results")
	poolPath := fs.String("pool", "pool.json", "pool file")
	base := fs.String("url", "", "responder URL for RFC 5019 GETs: GET URL/<urlencoded base64 request>")
	static := fs.String("static", "", "instead of -url: base URL of pre-fetched answers, GET URL/<index>.der")
	c := fs.Int("c", 16, "concurrent keep-alive connections (one worker each)")
	d := fs.Duration("d", 10*time.Second, "measured window")
	warm := fs.Duration("warmup", time.Second, "warmup before the window")
	timeout := fs.Duration("timeout", 5*time.Second, "I/O timeout of one request")
	every := fs.Int("verify-every", 1000, "check every Nth answer of each worker in full (signature); 0: none")
	var watch watchFlag
	fs.Var(&watch, "watch", "name=pid of the server (its child processes count too); the first is the server")
	fs.Parse(args)
	if (*base == "") == (*static == "") {
		return errors.New("exactly one of -url and -static is required")
	}
	if len(watch) == 0 {
		return errors.New("-watch name=pid of the server is required")
	}
	p, err := loadPool(*poolPath)
	if err != nil {
		return err
	}
	mode, target := "get", *base
	if *static != "" {
		mode, target = "static", *static
	}
	addr := ""
	reqs := make([][]byte, len(p.Entries))
	for i := range p.Entries {
		u := ocspURL(*base, &p.Entries[i])
		if mode == "static" {
			u = strings.TrimRight(*static, "/") + "/" + strconv.Itoa(i) + ".der"
		}
		a, r, err := getRequest(u)
		if err != nil {
			return err
		}
		addr, reqs[i] = a, r
	}

	// Every answer checked in full once before the load.
	pre := newRawConn(addr, *timeout)
	for i := range p.Entries {
		e := &p.Entries[i]
		code, body, err := pre.do(reqs[i])
		if err == nil && code != 200 {
			err = fmt.Errorf("HTTP %d", code)
		}
		if err == nil {
			_, err = fullCheck(body, e.cert, p.issuer, time.Now())
		}
		if err == nil {
			var st int
			if st, err = quickCheck(body, e.serial); err == nil && st != stGood {
				err = fmt.Errorf("status %s, want good", statusNames[st])
			}
		}
		if err != nil {
			pre.close()
			return fmt.Errorf("pre-check of entry %d (serial %s) at %s: %w", i, e.Serial, target, err)
		}
	}
	pre.close()

	start := time.Now()
	t0 := start.Add(*warm)
	t1 := t0.Add(*d)
	outs := make([]workerOut, *c)
	var wg sync.WaitGroup
	for w := range *c {
		wg.Go(func() {
			o := &outs[w]
			o.lat = make([]time.Duration, 0, 1<<16)
			k := newRawConn(addr, *timeout)
			defer k.close()
			n := len(reqs)
			i := w * n / *c // workers start spread over the pool
			count := 0
			fail := func(err error) {
				o.errs++
				if o.firstErr == nil {
					o.firstErr = err
				}
				time.Sleep(10 * time.Millisecond) // do not spin on a dead server
			}
			for {
				e := &p.Entries[i]
				begin := time.Now()
				if !begin.Before(t1) {
					break
				}
				code, body, err := k.do(reqs[i])
				end := time.Now()
				i++
				if i == n {
					i = 0
				}
				if err != nil {
					fail(err)
					continue
				}
				if code != 200 {
					fail(fmt.Errorf("HTTP %d", code))
					continue
				}
				st, err := quickCheck(body, e.serial)
				if err == nil && st != stGood {
					err = fmt.Errorf("status %s, want good", statusNames[st])
				}
				if err != nil {
					fail(fmt.Errorf("serial %s: %w", e.Serial, err))
					continue
				}
				if !end.Before(t0) && end.Before(t1) {
					o.lat = append(o.lat, end.Sub(begin))
					o.bytes += int64(len(body))
				}
				count++
				if *every > 0 && count%*every == 0 {
					if _, err := fullCheck(body, e.cert, p.issuer, end); err != nil {
						fail(fmt.Errorf("serial %s: full check: %w", e.Serial, err))
						continue
					}
					o.verified++
				}
			}
			o.dials = k.dials
		})
	}
	time.Sleep(time.Until(t0))
	s0, err := snapshot(watch)
	if err != nil {
		return err
	}
	time.Sleep(time.Until(t1))
	s1, err := snapshot(watch)
	if err != nil {
		return err
	}
	wg.Wait()

	var lat []time.Duration
	res := loadResult{Kind: "load", Label: *label, Target: target, Mode: mode, C: *c, Pool: len(reqs),
		WarmupS: warm.Seconds(), PreVerified: len(reqs), NumCPU: runtime.NumCPU(), ClientProcs: runtime.GOMAXPROCS(0)}
	var bytes int64
	for _, o := range outs {
		lat = append(lat, o.lat...)
		bytes += o.bytes
		res.Errors += o.errs
		res.Verified += o.verified
		res.Dials += o.dials
		if o.firstErr != nil && res.FirstError == "" {
			res.FirstError = o.firstErr.Error()
		}
	}
	window := s1.at.Sub(s0.at).Seconds()
	res.WindowS = round(window, 3)
	res.Responses = int64(len(lat))
	res.RPS = round(float64(len(lat))/d.Seconds(), 1)
	if len(lat) > 0 {
		slices.Sort(lat)
		var sum time.Duration
		for _, l := range lat {
			sum += l
		}
		q := func(f float64) float64 { return ms(lat[min(len(lat)-1, int(math.Ceil(f*float64(len(lat))))-1)]) }
		res.P50ms, res.P90ms, res.P99ms, res.P999ms = q(0.5), q(0.9), q(0.99), q(0.999)
		res.MaxMs = ms(lat[len(lat)-1])
		res.MeanMs = ms(sum / time.Duration(len(lat)))
		res.MeanBytes = round(float64(bytes)/float64(len(lat)), 1)
	}
	server := ticksToSeconds(s1.watched[0] - s0.watched[0])
	var watchedAll float64
	for i := range watch {
		watchedAll += ticksToSeconds(s1.watched[i] - s0.watched[i])
	}
	client := (s1.self - s0.self).Seconds()
	busy := ticksToSeconds(s1.machine.busy() - s0.machine.busy())
	res.SystemCores = round(ticksToSeconds(s1.machine[2]-s0.machine[2])/window, 3)
	res.SoftirqCores = round(ticksToSeconds(s1.machine[6]-s0.machine[6])/window, 3)
	res.StealCores = round(ticksToSeconds(s1.machine[7]-s0.machine[7])/window, 3)
	res.TopOthers = others(s0, s1, watch, window, 4)
	res.ServerCores = round(server/window, 3)
	res.ClientCores = round(client/window, 3)
	res.BusyCores = round(busy/window, 3)
	res.OtherCores = round((busy-watchedAll-client)/window, 3)
	if len(lat) > 0 {
		// CPU of the window over the responses of the window.
		perResp := window / d.Seconds() * float64(len(lat))
		res.ServerUsPerResp = round(server/perResp*1e6, 2)
		res.ClientUsPerResp = round(client/perResp*1e6, 2)
	}
	line, _ := json.Marshal(res)
	fmt.Println(string(line))
	fmt.Fprintf(os.Stderr, "%s: %.0f responses/s, p50 %.3f ms, p99 %.3f ms, server %.1f µs/response (%.2f cores), client %.2f cores, others %.2f cores, errors %d, dials %d\n",
		*label, res.RPS, res.P50ms, res.P99ms, res.ServerUsPerResp, res.ServerCores, res.ClientCores, res.OtherCores, res.Errors, res.Dials)
	if res.Errors > 0 {
		return fmt.Errorf("%d errors, first: %s", res.Errors, res.FirstError)
	}
	if res.Responses == 0 {
		return errors.New("no responses in the window")
	}
	return nil
}

func ms(d time.Duration) float64 { return round(float64(d)/1e6, 3) }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
