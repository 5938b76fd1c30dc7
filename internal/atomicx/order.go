package atomicx

import "sync/atomic"

// StoreRelease stores v into *p with release ordering: every memory access
// the calling goroutine made before the call is visible to any goroutine or
// process that observes v through an acquiring load (atomic.Uint64.Load).
// Unlike atomic.Uint64.Store it does not order the store before later loads;
// use [Fence] (or [Barrier]) where that is needed.
func StoreRelease(p *atomic.Uint64, v uint64) { storeRelease(p, v) }

// StoreRelease32 is [StoreRelease] for a 32-bit word.
func StoreRelease32(p *atomic.Uint32, v uint32) { storeRelease32(p, v) }

// Fence is a full memory barrier: every load and store before it is ordered
// before every load and store after it. It is what the store-load
// ("Dekker") step of a wake-up protocol needs.
func Fence() { fence() }
