// Package atomicx is the one place where shared memory becomes atomics. It
// gives bounds- and alignment-checked views of fixed-layout structs inside
// a []byte ([At], [NewArray]), the cache-line size of the shared format
// ([LineSize]), the orderings Go's sync/atomic does not offer
// ([StoreRelease], [Fence], and the asymmetric barriers built on
// membarrier(2): [Barrier] across processes, [ProcessBarrier] within one),
// and the CPU's pause instruction for spinning ([Pause]). It exports only
// what the ring uses.
//
// Go's sync/atomic operations are sequentially consistent. That is more than
// a ring needs to publish a slot and costs a full fence per store on amd64
// (XCHG). [StoreRelease] is a plain, inlined store on amd64 (whose memory
// model makes every store a release; order_amd64.go says why the compiler
// keeps it in place) and sync/atomic's STLR on arm64. Under the race
// detector, which cannot see those orderings, it falls back to
// atomic.Uint64.Store so that -race still sees the happens-before edge.
package atomicx
