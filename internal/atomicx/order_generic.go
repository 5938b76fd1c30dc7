//go:build !(amd64 || arm64) || race

package atomicx

import (
	"runtime"
	"sync/atomic"
)

// Without assembly, or under the race detector (which cannot see orderings
// made in assembly), the sequentially consistent operations of sync/atomic
// give at least the promised orderings.

func storeRelease(p *atomic.Uint64, v uint64) { p.Store(v) }

func storeRelease32(p *atomic.Uint32, v uint32) { p.Store(v) }

// fenceWord is the target of the read-modify-write that serves as a fence.
var fenceWord atomic.Uint64

func fence() { fenceWord.Add(0) }

func pause() { runtime.Gosched() }
