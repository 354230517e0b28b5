package main

import (
	"math"
	"slices"
	"time"
)

type latencies struct{ p50, p90, p99, max, mean float64 } // milliseconds

// percentiles uses the nearest-rank method: the p-th percentile is the
// smallest sample with at least p% of the samples at or below it.
func percentiles(d []time.Duration) latencies {
	if len(d) == 0 {
		return latencies{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	rank := func(p float64) time.Duration {
		i := int(math.Ceil(p/100*float64(len(s)))) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	var sum time.Duration
	for _, v := range s {
		sum += v
	}
	ms := func(v time.Duration) float64 { return round(float64(v.Nanoseconds())/1e6, 3) }
	return latencies{
		p50: ms(rank(50)), p90: ms(rank(90)), p99: ms(rank(99)), max: ms(s[len(s)-1]),
		mean: ms(sum / time.Duration(len(s))),
	}
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
