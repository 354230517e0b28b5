package main

import (
	"bytes"
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clkTck is the unit of the times in /proc/PID/stat and /proc/stat
// (sysconf(_SC_CLK_TCK), USER_HZ): 100 on every Linux architecture Go
// supports.
const clkTck = 100

// procTicks is utime+stime of one process (all its threads), in ticks.
func procTicks(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// Field 2, the command, is in parentheses and may hold anything; the
	// fields after the last ')' start with field 3 (state).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64) // field 14
	st, err2 := strconv.ParseUint(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime or stime", pid)
	}
	return ut + st, nil
}

// children lists the child processes of pid (of all its threads).
func children(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// treeTicks is the CPU ticks of pid and its descendants alive now (nginx
// and `openssl ocsp -multi` serve from child processes).
func treeTicks(pid int) (uint64, error) {
	sum, err := procTicks(pid)
	if err != nil {
		return 0, err
	}
	for _, c := range children(pid) {
		if t, err := treeTicks(c); err == nil {
			sum += t
		}
	}
	return sum, nil
}

// selfCPU is this process's CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineTicks is the time of all CPUs so far, from the first line of
// /proc/stat: user, nice, system, idle, iowait, irq, softirq, steal.
type machineTicks [8]uint64

func readMachineTicks() machineTicks {
	var m machineTicks
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return m
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return m
	}
	for i := range m {
		m[i], _ = strconv.ParseUint(f[i+1], 10, 64)
	}
	return m
}

// busy is user + nice + system + irq + softirq + steal.
func (m machineTicks) busy() uint64 { return m[0] + m[1] + m[2] + m[5] + m[6] + m[7] }

// allProcs reads the CPU ticks and command name of every process visible
// in /proc (those of the PID namespace this runs in).
func allProcs() map[int]procCPU {
	out := map[int]procCPU{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i, j := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if i < 0 || j < i {
			continue
		}
		f := strings.Fields(string(b[j+1:]))
		if len(f) < 20 {
			continue
		}
		ut, _ := strconv.ParseUint(f[11], 10, 64)                                  // field 14
		st, _ := strconv.ParseUint(f[12], 10, 64)                                  // field 15
		out[pid] = procCPU{comm: string(b[i+1 : j]), start: f[19], ticks: ut + st} // field 22: starttime
	}
	return out
}

type procCPU struct {
	comm  string // kernel workers rename themselves: not an identity
	start string // start time since boot: with the PID, the identity
	ticks uint64
}

// watched is a process whose CPU use a run reports.
type watched struct {
	name string
	pid  int
}

// watchFlag parses repeated -watch name=pid.
type watchFlag []watched

func (w *watchFlag) String() string { return fmt.Sprint(*w) }
func (w *watchFlag) Set(s string) error {
	name, p, ok := strings.Cut(s, "=")
	pid, err := strconv.Atoi(p)
	if !ok || err != nil || pid <= 0 || name == "" {
		return fmt.Errorf("want name=pid, got %q", s)
	}
	*w = append(*w, watched{name, pid})
	return nil
}

// cpuSnap is the CPU counters at one instant.
type cpuSnap struct {
	at      time.Time
	watched []uint64 // ticks, per watched process tree
	self    time.Duration
	machine machineTicks
	procs   map[int]procCPU
}

func snapshot(ws []watched) (cpuSnap, error) {
	s := cpuSnap{at: time.Now(), self: selfCPU(), machine: readMachineTicks()}
	for _, w := range ws {
		t, err := treeTicks(w.pid)
		if err != nil {
			return s, fmt.Errorf("watch %s (pid %d): %w", w.name, w.pid, err)
		}
		s.watched = append(s.watched, t)
	}
	s.procs = allProcs()
	return s, nil
}

// others lists the processes, outside the watched trees and this one, that
// used the most CPU between s0 and s1, as "name:cores". Processes that
// ended during the window are not seen.
func others(s0, s1 cpuSnap, ws []watched, window float64, top int) []string {
	skip := map[int]bool{os.Getpid(): true}
	var mark func(int)
	mark = func(pid int) {
		skip[pid] = true
		for _, c := range children(pid) {
			mark(c)
		}
	}
	for _, w := range ws {
		mark(w.pid)
	}
	type use struct {
		name  string
		cores float64
	}
	var us []use
	for pid, p1 := range s1.procs {
		if skip[pid] {
			continue
		}
		p0, ok := s0.procs[pid]
		if !ok || p0.start != p1.start {
			p0 = procCPU{} // started during the window
		}
		if p1.ticks <= p0.ticks {
			continue
		}
		us = append(us, use{p1.comm, ticksToSeconds(p1.ticks-p0.ticks) / window})
	}
	slices.SortFunc(us, func(a, b use) int { return cmp.Compare(b.cores, a.cores) })
	var out []string
	for _, u := range us[:min(top, len(us))] {
		if u.cores >= 0.01 {
			out = append(out, fmt.Sprintf("%s:%.2f", u.name, u.cores))
		}
	}
	return out
}

func ticksToSeconds(t uint64) float64 { return float64(t) / clkTck }
