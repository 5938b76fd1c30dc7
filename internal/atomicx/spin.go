package atomicx

import "runtime"

// Pause hints to the CPU that the caller is spinning (PAUSE on amd64, YIELD
// on arm64), which saves power and lets a sibling hyper-thread run. It does
// not yield the goroutine.
func Pause() { pause() }

// Spinner spins with exponential back-off: each call to [Spinner.Spin] pauses
// the CPU a few times more than the last, up to a cap, and then yields the
// processor to other goroutines. The zero value is ready to use. A Spinner
// belongs to one goroutine.
type Spinner struct {
	n uint32 // number of Spin calls so far, saturating
}

// spinCap bounds the pauses per Spin call: 2^6 PAUSEs are about 1-2 µs on
// recent x86 cores, where PAUSE takes tens to ~140 cycles.
const spinCap = 6

// Spin waits a little, longer on each call, and yields to the Go scheduler
// once the pauses reach their cap.
func (s *Spinner) Spin() {
	k := s.n
	if k < spinCap {
		s.n++
	}
	for i := 0; i < 1<<k; i++ {
		pause()
	}
	if k >= spinCap {
		runtime.Gosched()
	}
}

// Reset starts the back-off again, for the next wait.
func (s *Spinner) Reset() { s.n = 0 }
