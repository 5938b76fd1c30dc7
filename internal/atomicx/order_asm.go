//go:build (amd64 || arm64) && !race

package atomicx

import (
	"sync/atomic"
	"unsafe"
)

// storeRelaxed is a plain store of the word: a machine word on these
// architectures, so it cannot tear, and no ordering is asked of it.
// atomic.Uint64 is the word alone (its other fields take no room).
func storeRelaxed(p *atomic.Uint64, v uint64) { *(*uint64)(unsafe.Pointer(p)) = v }

// The build fails if atomic.Uint64 is ever more than its word.
var _ = [1]struct{}{}[unsafe.Sizeof(atomic.Uint64{})-8]

// Implemented in order_$GOARCH.s.

//go:noescape
func storeRelease(p *atomic.Uint64, v uint64)

//go:noescape
func storeRelease32(p *atomic.Uint32, v uint32)

//go:noescape
func storeLoad32(p *atomic.Uint32, v uint32, q *atomic.Uint32, fence bool) uint32

func fence()

func pause()
