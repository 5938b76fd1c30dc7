package atomicx

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

func TestStoreRelease(t *testing.T) {
	var u atomic.Uint64
	StoreRelease(&u, 42)
	if u.Load() != 42 {
		t.Fatal(u.Load())
	}
	StoreRelaxed(&u, 1<<63|5)
	if u.Load() != 1<<63|5 {
		t.Fatal(u.Load())
	}
	AddRelaxed(&u, 3)
	if u.Load() != 1<<63|8 {
		t.Fatal(u.Load())
	}
	var w atomic.Uint32
	StoreRelease32(&w, 7)
	if w.Load() != 7 {
		t.Fatal(w.Load())
	}
}

// TestMessagePassing hands a plain payload from one goroutine to another
// through StoreRelease and an acquiring Load, many times; under -race the
// detector checks the handover, and without it the payload check does.
func TestMessagePassing(t *testing.T) {
	const n = 100000
	var flag atomic.Uint64
	var payload [4]uint64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := uint64(1); i <= n; i++ {
			for flag.Load() != 2*i-1 { // Acquire: pairs with the consumer's release below.
				Pause()
			}
			for j := range payload {
				payload[j] = i * uint64(j+1)
			}
			StoreRelease(&flag, 2*i) // Release: publishes payload.
		}
	}()
	for i := uint64(1); i <= n; i++ {
		StoreRelease(&flag, 2*i-1) // Release: hands the payload back to the writer.
		for flag.Load() != 2*i {   // Acquire: pairs with the writer's release.
			Pause()
		}
		for j, v := range payload {
			if v != i*uint64(j+1) {
				t.Fatalf("round %d word %d: %d", i, j, v)
			}
		}
	}
	wg.Wait()
}

// TestDekker runs the store-then-load pattern of the wake-up protocol from
// two goroutines: with a fence on each side, both may not miss each other.
func TestDekker(t *testing.T) {
	for _, heavy := range []bool{false, true} {
		var a, b atomic.Uint64
		var missed int
		for round := uint64(1); round <= 20000; round++ {
			var rb uint64
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				StoreRelease(&b, round)
				Fence()
				rb = a.Load()
			}()
			StoreRelease(&a, round)
			if heavy {
				Barrier()
			} else {
				Fence()
			}
			ra := b.Load()
			wg.Wait()
			if ra != round && rb != round {
				missed++
			}
		}
		if missed != 0 {
			t.Errorf("heavy=%v: both sides missed each other %d times", heavy, missed)
		}
	}
}

func TestBarrier(t *testing.T) {
	ok := RegisterBarrier()
	t.Logf("membarrier global expedited supported: %v", ok)
	if Barrier() != ok {
		t.Fatal("Barrier and RegisterBarrier disagree")
	}
	ok = RegisterProcessBarrier()
	t.Logf("membarrier private expedited supported: %v", ok)
	if ProcessBarrier() != ok {
		t.Fatal("ProcessBarrier and RegisterProcessBarrier disagree")
	}
}

// TestProcessBarrierDekker runs the close guard's pattern: one side stores
// with StoreRelease and loads with no fence, the other stores, runs
// ProcessBarrier and loads. They may not both miss each other.
func TestProcessBarrierDekker(t *testing.T) {
	if !RegisterProcessBarrier() {
		t.Skip("membarrier private expedited is not available")
	}
	var a, b atomic.Uint64
	missed := 0
	for round := uint64(1); round <= 2000; round++ {
		var rb uint64
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			StoreRelease(&b, round)
			rb = a.Load()
		}()
		a.Store(round)
		ProcessBarrier()
		ra := b.Load()
		wg.Wait()
		if ra != round && rb != round {
			missed++
		}
	}
	if missed != 0 {
		t.Errorf("both sides missed each other %d times", missed)
	}
}

// TestStoreLoad32Dekker runs the close guard's entry as it is written:
// StoreLoad32 on one side, against a store, ProcessBarrier and a load on
// the other (and, as a process without the barrier would, StoreLoad32 with
// its fence against a seq-cst store and load).
func TestStoreLoad32Dekker(t *testing.T) {
	for _, fence := range []bool{false, true} {
		if !fence && !RegisterProcessBarrier() {
			t.Log("membarrier private expedited is not available")
			continue
		}
		var a, b atomic.Uint32
		missed := 0
		for round := uint32(1); round <= 2000; round++ {
			var rb uint32
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				rb = StoreLoad32(&b, round, &a, fence)
			}()
			a.Store(round)
			if !fence {
				ProcessBarrier()
			}
			ra := b.Load()
			wg.Wait()
			if ra != round && rb != round {
				missed++
			}
		}
		if missed != 0 {
			t.Errorf("fence=%v: both sides missed each other %d times", fence, missed)
		}
	}
}

type testLine struct {
	seq  atomic.Uint64
	size uint32
	_    [LineSize - 12]byte
}

func TestAtAndArray(t *testing.T) {
	b := AlignedBuffer(8 * LineSize)
	h, err := At[testLine](b, LineSize)
	if err != nil {
		t.Fatal(err)
	}
	h.seq.Store(9)
	if b[LineSize] != 9 {
		t.Fatal("At does not alias the buffer")
	}
	for _, off := range []int{-LineSize, 8, 7*LineSize + 1, 8 * LineSize} {
		if _, err := At[testLine](b, off); !errors.Is(err, ErrView) {
			t.Errorf("At(%d): %v, want ErrView", off, err)
		}
	}
	a, err := NewArray[testLine](b, 2*LineSize, 2*LineSize, 3)
	if err != nil {
		t.Fatal(err)
	}
	if a.Len() != 3 {
		t.Fatal(a.Len())
	}
	a.At(2).size = 5
	tail := a.Tail(2)
	if len(tail) != LineSize {
		t.Fatalf("tail %d bytes", len(tail))
	}
	tail[len(tail)-1] = 1
	if b[len(b)-1] != 1 || b[6*LineSize+8] != 5 {
		t.Fatal("Array does not alias the buffer")
	}
	for _, tc := range []struct{ off, stride, n int }{
		{2 * LineSize, 2 * LineSize, 4}, {0, LineSize / 2, 2}, {0, 0, 1}, {0, LineSize, 0},
		{8, LineSize, 1}, {-LineSize, LineSize, 1}, {0, LineSize, 1 << 60},
	} {
		if _, err := NewArray[testLine](b, tc.off, tc.stride, tc.n); !errors.Is(err, ErrView) {
			t.Errorf("NewArray(%+v): %v, want ErrView", tc, err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("At out of range did not panic")
		}
	}()
	a.At(3)
}
