package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// histogram is one Prometheus histogram series: cumulative bucket counts
// by upper bound (+Inf last), sum and count.
type histogram struct {
	les    []float64
	counts []float64
	sum    float64
	count  float64
}

// scrapeHistograms reads the text exposition at url and returns the
// series of histogram name by the value of label.
func scrapeHistograms(url, name, label string) (map[string]*histogram, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	return parseHistograms(resp.Body, name, label)
}

func parseHistograms(r io.Reader, name, label string) (map[string]*histogram, error) {
	out := map[string]*histogram{}
	get := func(labels string) *histogram {
		v := labelValue(labels, label)
		h := out[v]
		if h == nil {
			h = &histogram{}
			out[v] = h
		}
		return h
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"_") {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		value, _, _ = strings.Cut(value, " ") // a timestamp may follow
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		metric, labels, _ := strings.Cut(series, "{")
		labels = strings.TrimSuffix(labels, "}")
		switch metric {
		case name + "_bucket":
			le, err := strconv.ParseFloat(labelValue(labels, "le"), 64) // "+Inf" parses
			if err != nil {
				return nil, fmt.Errorf("metrics line %q: le: %w", line, err)
			}
			h := get(labels)
			h.les = append(h.les, le)
			h.counts = append(h.counts, v)
		case name + "_sum":
			get(labels).sum = v
		case name + "_count":
			get(labels).count = v
		}
	}
	return out, sc.Err()
}

// labelValue returns the value of label k in a Prometheus label set
// (k1="v1",k2="v2"); values here hold no escaped quotes.
func labelValue(labels, k string) string {
	for _, kv := range strings.Split(labels, ",") {
		key, v, ok := strings.Cut(kv, "=")
		if ok && key == k {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// minus returns h - before (both cumulative, same buckets).
func (h *histogram) minus(before *histogram) *histogram {
	d := &histogram{les: h.les, counts: slices.Clone(h.counts), sum: h.sum, count: h.count}
	if before == nil {
		return d
	}
	for i := range d.counts {
		if i < len(before.counts) {
			d.counts[i] -= before.counts[i]
		}
	}
	d.sum -= before.sum
	d.count -= before.count
	return d
}

// quantile estimates the q-quantile as Prometheus' histogram_quantile does:
// linear interpolation inside the bucket that holds it; a quantile in the
// +Inf bucket is the largest finite bound.
func (h *histogram) quantile(q float64) float64 {
	if h.count == 0 || len(h.les) == 0 {
		return math.NaN()
	}
	rank := q * h.count
	lower, below := 0.0, 0.0
	for i, le := range h.les {
		if h.counts[i] >= rank {
			if math.IsInf(le, 1) {
				return lower
			}
			in := h.counts[i] - below
			if in <= 0 {
				return le
			}
			return lower + (le-lower)*(rank-below)/in
		}
		lower, below = le, h.counts[i]
	}
	return lower
}
