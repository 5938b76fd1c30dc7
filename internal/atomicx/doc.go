// Package atomicx is the one place where shared memory becomes atomics. It
// gives bounds- and alignment-checked views of 32- and 64-bit atomic words
// inside a []byte ([Uint64At], [Uint32At]), the cache-line size of the
// shared format ([LineSize]), the orderings Go's sync/atomic does not offer
// ([StoreRelease], [Fence], and the asymmetric [Barrier] built on
// membarrier(2)), and a bounded spin helper ([Spinner]) that uses the CPU's
// pause instruction.
//
// Go's sync/atomic operations are sequentially consistent. That is more than
// a ring needs to publish a slot and costs a full fence per store on amd64
// (XCHG). [StoreRelease] is a plain store on amd64 (whose memory model makes
// every store a release) and STLR on arm64. Under the race detector, which
// cannot see orderings made in assembly, it falls back to atomic.Uint64.Store
// so that -race still sees the happens-before edge.
package atomicx
