package ring

import (
	"sync/atomic"
	"time"

	"github.com/shmring/shmring/internal/atomicx"
)

// guard lets Close, from any goroutine, wait for the call in flight on a
// handle and keep any later call out, so that the ring's memory is
// unmapped only after the last call that might touch it has left.
//
// The goroutine using the handle marks itself busy on entry and idle on
// exit; Close sets closing and then waits for idle. Entry is a store of
// busy followed by a load of closing, and Close a store of closing
// followed by a load of busy, so one of them must see the other (Dekker).
// The entry's store-load order would need a fence on every call; instead
// Close, which is rare, runs a process-wide membarrier between its store
// and its load, which orders the entry's store before its load on every
// thread that was running (atomicx.ProcessBarrier). Where the kernel
// cannot do that, entries fence.
//
// A guard is part of one handle and must not be copied.
type guard struct {
	busy    atomic.Uint32 // 1 while the handle's goroutine is inside a call
	closing atomic.Uint32 // 1 once Close has begun; never cleared
}

// fenceEntry says that entries must fence: there is no process barrier for
// Close to order them with.
var fenceEntry = !atomicx.RegisterProcessBarrier()

// enter marks the start of a call, which leave must end whatever enter
// returns. It reports false, and the call must return os.ErrClosed without
// touching the ring, once Close has begun. It is one call, to inline:
//
//	entered := g.enter()
//	defer g.leave()
//	if !entered {
//		return os.ErrClosed
//	}
//
// The calls whose whole work is a few nanoseconds (TrySend, TryReceive,
// TryPeek, Release, TryReserve, Commit) call leave directly instead of
// deferring it: the deferred call cost as much as the rest of the guard
// (BENCHMARKS.md). Between their enter and leave runs only code that
// returns an error for any content of the segment (the fuzz and scribble
// tests hold it to that), never one that panics, so leave is always reached.
func (g *guard) enter() bool {
	// Release store of busy, SYNC(close-guard): pairs with the load of busy
	// in shut; a shut that misses it has its closing store seen by the load
	// of closing here, which pairs with that store.
	return atomicx.StoreLoad32(&g.busy, 1, &g.closing, fenceEntry) == 0
}

// leave marks the end of a call.
func (g *guard) leave() {
	// Release, SYNC(close-guard): pairs with the load of busy in shut; the
	// call's last access to the ring happens before shut sees it idle.
	atomicx.StoreRelease32(&g.busy, 0)
}

// closed reports whether Close has begun. The goroutine inside a call
// checks it while it waits.
func (g *guard) closed() bool {
	// Acquire: a plain look at the flag that shut sets.
	return g.closing.Load() != 0
}

// shut keeps new calls out and waits for the one in flight, calling
// interrupt now and then to wake it if it sleeps. Every caller waits; when
// shut returns, no call is in flight and none can start.
func (g *guard) shut(interrupt func()) {
	// Seq-cst, SYNC(close-guard): the store that entries load.
	g.closing.Store(1)
	// Heavy half of SYNC(close-guard): orders every running entry's busy
	// store before its closing load. Every shut runs it, not only the first:
	// a second shut must not trust a barrier that may still be running.
	atomicx.ProcessBarrier()
	// Acquire, SYNC(close-guard): pairs with the stores of busy in enter and
	// leave. Every call ends by itself (a sleeping one once interrupted),
	// so the wait is bounded by the longest call.
	for delay := time.Microsecond; g.busy.Load() != 0; delay = min(2*delay, time.Millisecond) {
		interrupt()
		time.Sleep(delay)
	}
}
