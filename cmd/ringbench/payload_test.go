package main

import (
	"strings"
	"testing"
)

func TestPayloadRoundTrip(t *testing.T) {
	for _, size := range []int{8, 9, 15, 16, 64, 100, 4096} {
		p := newPayload(size)
		tr := newTracker(p, 2, true)
		b := make([]byte, size)
		for seq := uint64(0); seq < 100; seq++ {
			for sender := 0; sender < 2; sender++ {
				p.fill(b, seq, sender)
				if err := tr.accept(b, sender); err != nil {
					t.Fatalf("size %d: %v", size, err)
				}
			}
		}
	}
}

func TestPayloadDetects(t *testing.T) {
	const size = 37
	p := newPayload(size)
	b := make([]byte, size)
	fresh := func() *tracker { return newTracker(p, 2, true) }

	// Every flipped bit anywhere in the message.
	for i := 0; i < size*8; i++ {
		p.fill(b, 0, 0)
		b[i/8] ^= 1 << (i % 8)
		if err := fresh().accept(b, 0); err == nil {
			t.Errorf("bit %d flipped: accepted", i)
		}
	}
	// Two body words swapped.
	p.fill(b, 0, 0)
	for i := 0; i < 8; i++ {
		b[hdrLen+i], b[hdrLen+8+i] = b[hdrLen+8+i], b[hdrLen+i]
	}
	if err := fresh().accept(b, 0); err == nil {
		t.Error("swapped words: accepted")
	}
	// A message from the other sender, a skipped and a repeated message.
	p.fill(b, 0, 1)
	if err := fresh().accept(b, 0); err == nil {
		t.Error("wrong sender: accepted")
	}
	tr := fresh()
	p.fill(b, 0, 0)
	if err := tr.accept(b, 0); err != nil {
		t.Fatal(err)
	}
	if err := tr.accept(b, 0); err == nil || !strings.Contains(err.Error(), "sequence") {
		t.Errorf("repeated message: %v", err)
	}
	p.fill(b, 2, 0)
	if err := tr.accept(b, 0); err == nil {
		t.Error("skipped message: accepted")
	}
	// Without strict order a later message is fine, an earlier one is not.
	loose := newTracker(p, 1, false)
	p.fill(b, 5, 0)
	if err := loose.accept(b, 0); err != nil {
		t.Errorf("loose, later message: %v", err)
	}
	p.fill(b, 3, 0)
	if err := loose.accept(b, 0); err == nil {
		t.Error("loose, earlier message: accepted")
	}
	if err := loose.accept(b[:size-1], 0); err == nil {
		t.Error("short message: accepted")
	}
	if err := loose.accept(b, 1); err == nil {
		t.Error("unknown sender: accepted")
	}
}

func TestHotPathsAllocateNothing(t *testing.T) {
	p := newPayload(64)
	tr := newTracker(p, 1, true)
	b := make([]byte, 64)
	h := new(histogram)
	var seq uint64
	allocs := testing.AllocsPerRun(1000, func() {
		p.fill(b, seq, 0)
		if err := tr.accept(b, 0); err != nil {
			t.Fatal(err)
		}
		h.record(int64(seq * 37))
		seq++
	})
	if allocs != 0 {
		t.Errorf("%v allocations per message", allocs)
	}
}

func TestHistogram(t *testing.T) {
	h := new(histogram)
	for v := int64(1); v <= 10000; v++ {
		h.record(v)
	}
	for _, tc := range []struct {
		q    float64
		want int64
	}{{0.5, 5000}, {0.99, 9900}, {0.999, 9990}, {1, 10000}} {
		got := h.quantile(tc.q)
		if got < tc.want || float64(got) > float64(tc.want)*1.02 {
			t.Errorf("quantile %v = %d, want %d within 2%%", tc.q, got, tc.want)
		}
	}
	if h.max != 10000 || h.n != 10000 {
		t.Errorf("max %d, n %d", h.max, h.n)
	}
	// Every value falls in a bucket whose range holds it.
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 1<<40 - 1} {
		i := bucket(v)
		if upper(i) < int64(v) || (i > 0 && upper(i-1) >= int64(v)) {
			t.Errorf("value %d in bucket %d of upper %d (previous %d)", v, i, upper(i), upper(i-1))
		}
	}
	h.record(1 << 50) // beyond the last bucket: counted, and the max
	if h.quantile(1) != 1<<50 {
		t.Errorf("max quantile %d", h.quantile(1))
	}
}

func TestSummarize(t *testing.T) {
	s := summarize([]float64{3, 1, 2})
	if s.median != 2 || s.min != 1 || s.max != 3 || s.pct() != 100 {
		t.Errorf("%+v, %v%%", s, s.pct())
	}
	if s := summarize([]float64{4, 1, 2, 3}); s.median != 2.5 {
		t.Errorf("even median %v", s.median)
	}
}
