//go:build (amd64 || arm64) && gc && !race

package atomicx

import (
	"sync/atomic"
	"unsafe"
)

// storeRelaxed is a plain store of the word: a machine word on these
// architectures, so it cannot tear, and no ordering is asked of it.
// atomic.Uint64 is the word alone (its other fields take no room).
func storeRelaxed(p *atomic.Uint64, v uint64) { *(*uint64)(unsafe.Pointer(p)) = v }

func addRelaxed(p *atomic.Uint64, v uint64) { *(*uint64)(unsafe.Pointer(p)) += v }

// The build fails if atomic.Uint64 or atomic.Uint32 is ever more than its
// word.
var (
	_ = [1]struct{}{}[unsafe.Sizeof(atomic.Uint64{})-8]
	_ = [1]struct{}{}[unsafe.Sizeof(atomic.Uint32{})-4]
)

// Implemented in order_$GOARCH.s: only where no store is ordered, so the
// busy path never pays an assembly call.

func fence()

func pause()
