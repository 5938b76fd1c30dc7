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

// StoreLoad32 stores v into *p with release ordering, then loads *q with
// acquire ordering and returns it: in one call, the light half of a
// store-load handshake whose heavy half is [ProcessBarrier] (or [Barrier]).
// Unless fence is true, the load may be taken before the store is visible;
// the heavy half, run by the other side between its own store and load, is
// what orders them. With fence, a full barrier between the two orders them
// for a caller that has no heavy half to rely on.
func StoreLoad32(p *atomic.Uint32, v uint32, q *atomic.Uint32, fence bool) uint32 {
	return storeLoad32(p, v, q, fence)
}

// StoreRelaxed stores v into *p with no ordering at all: for words that
// readers take only as a display (a counter) or as a hint they check
// against words published in order (a position they verify slot by slot).
// Readers still see each store whole: Go promises that a racing read of a
// location no larger than a machine word observes some write to it, and
// the store is one aligned machine store. It costs a plain store, inline.
func StoreRelaxed(p *atomic.Uint64, v uint64) { storeRelaxed(p, v) }

// AddRelaxed adds v to *p with no ordering and no atomicity against other
// writers: for a word that only the caller writes (a counter of its own),
// which others read whole, as for [StoreRelaxed]. It costs a plain
// read-modify-write, one store, inline.
func AddRelaxed(p *atomic.Uint64, v uint64) { addRelaxed(p, v) }

// Fence is a full memory barrier: every load and store before it is ordered
// before every load and store after it. It is what the store-load
// ("Dekker") step of a wake-up protocol needs.
func Fence() { fence() }
