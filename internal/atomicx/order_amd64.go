//go:build amd64 && gc && !race

package atomicx

import (
	"sync/atomic"
	"unsafe"
)

// On amd64 every store is a release store in the hardware (TSO: stores are
// not reordered with earlier loads or stores), so a release store is a
// plain MOV. What remains is the compiler, which must not move the store
// above an earlier access; gc cannot: its SSA form threads every store of
// a function through one chain of memory states, never lets two of them be
// live at once (so a load of the state before a store is scheduled before
// the store), and treats every call as a use and a store of memory. A plain
// Go store thus stays after everything the goroutine did before it, as an
// assembly MOV would, and inlines, which a call into assembly (ABI0, its
// arguments through the stack) cannot: that call cost about as much as the
// rest of a message's busy path (see BENCHMARKS.md). Other compilers, and
// the race detector, which must see the ordering, get sync/atomic
// (order_generic.go).

func storeRelease(p *atomic.Uint64, v uint64) { *(*uint64)(unsafe.Pointer(p)) = v }

func storeRelease32(p *atomic.Uint32, v uint32) { *(*uint32)(unsafe.Pointer(p)) = v }

func storeLoad32(p *atomic.Uint32, v uint32, q *atomic.Uint32, withFence bool) uint32 {
	*(*uint32)(unsafe.Pointer(p)) = v
	if withFence {
		fence()
	}
	return q.Load() // a plain MOV too, and an acquire
}
