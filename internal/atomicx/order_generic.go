//go:build !((amd64 || arm64) && gc) || race

package atomicx

import (
	"runtime"
	"sync/atomic"
)

// With another compiler or architecture, or under the race detector (which
// cannot see the orderings of plain stores or of assembly), the
// sequentially consistent operations of sync/atomic give at least the
// promised orderings.

func storeRelease(p *atomic.Uint64, v uint64) { p.Store(v) }

func storeRelease32(p *atomic.Uint32, v uint32) { p.Store(v) }

// Seq-cst operations order the load after the store whatever fence says.
func storeLoad32(p *atomic.Uint32, v uint32, q *atomic.Uint32, _ bool) uint32 {
	p.Store(v)
	return q.Load()
}

// Where a 64-bit word is not a machine word, or under the race detector,
// which would report the plain store it cannot tell from a bug.
func storeRelaxed(p *atomic.Uint64, v uint64) { p.Store(v) }

func addRelaxed(p *atomic.Uint64, v uint64) { p.Store(p.Load() + v) }

// fenceWord is the target of the read-modify-write that serves as a fence.
var fenceWord atomic.Uint64

func fence() { fenceWord.Add(0) }

func pause() { runtime.Gosched() }
