package main

import (
	"math"
	"math/bits"
	"slices"
)

// The round-trip histogram is log-linear, in the manner of HDR histograms:
// values below histSub nanoseconds have a bucket each, and every power of two
// above is cut into histHalf buckets, so a bucket is never wider than 1/64
// of its values (a relative error under 1.6%). Values from 2^histMaxBits ns
// (about 18 minutes) up share the last bucket.
const (
	histSubBits  = 7
	histSub      = 1 << histSubBits // 128
	histHalf     = histSub / 2      // 64
	histMaxBits  = 40
	histBuckets  = (histMaxBits-histSubBits+1)*histHalf + histHalf
	histLastSlot = histBuckets - 1
)

// histogram records round-trip times in nanoseconds. Recording allocates
// nothing; make the histogram before the loop.
type histogram struct {
	counts [histBuckets]uint64
	n      uint64
	max    int64
}

// bucket returns the index of the bucket that holds v.
func bucket(v uint64) int {
	if v < histSub {
		return int(v)
	}
	e := bits.Len64(v) - histSubBits // ≥ 1
	i := e*histHalf + int(v>>uint(e))
	return min(i, histLastSlot)
}

// upper returns the largest value bucket i holds.
func upper(i int) int64 {
	if i < histSub {
		return int64(i)
	}
	e := i/histHalf - 1
	m := i - e*histHalf
	return int64(m+1)<<uint(e) - 1
}

// record adds one value.
func (h *histogram) record(ns int64) {
	if ns < 0 {
		ns = 0
	}
	h.counts[bucket(uint64(ns))]++
	h.n++
	if ns > h.max {
		h.max = ns
	}
}

// quantile returns the value at quantile q (0 < q ≤ 1): the upper end of
// the bucket that holds it, but no more than the largest value recorded.
func (h *histogram) quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			if i == histLastSlot {
				return h.max // the overflow bucket has no upper end
			}
			return min(upper(i), h.max)
		}
	}
	return h.max
}

// rttSummary is what a ping-pong initiator reports of its histogram.
type rttSummary struct {
	P50  int64  `json:"p50"`
	P99  int64  `json:"p99"`
	P999 int64  `json:"p999"`
	Max  int64  `json:"max"`
	N    uint64 `json:"n"`
}

func (h *histogram) summary() *rttSummary {
	return &rttSummary{P50: h.quantile(0.50), P99: h.quantile(0.99), P999: h.quantile(0.999), Max: h.max, N: h.n}
}

// spread summarizes repeated measurements of one quantity.
type spread struct {
	median, min, max float64
}

// summarize returns the median, minimum and maximum of xs (not empty).
func summarize(xs []float64) spread {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return spread{median: med, min: s[0], max: s[n-1]}
}

// pct returns (max−min)/median in percent, 0 for a single value.
func (s spread) pct() float64 {
	if s.median == 0 {
		return 0
	}
	return (s.max - s.min) / s.median * 100
}
