package ring

import (
	"context"
	"errors"
	"io"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/shmring/shmring/internal/atomicx"
	"github.com/shmring/shmring/semaphore"
)

// checkEvery is how often a waiting side checks its peers' liveness (one
// semctl) and its context: the bound on how late it notices a dead peer, a
// removed ring or a cancelled context while asleep.
const checkEvery = 25 * time.Millisecond

// absorbWait bounds the wait for a wake-up unit that a waker owes a sleeper
// which has left (see sleep).
const absorbWait = 10 * time.Millisecond

// spinCheck is how many spin rounds pass between looks at the clock.
const spinCheck = 64

// waitFor waits until try succeeds, following the ring's wait strategy. try
// is called again after every wake-up; it must be cheap and make no system
// call. waitFor returns ctx.Err() when ctx is done, and the errors of
// idleCheck.
func (h *handle) waitFor(ctx context.Context, try func() bool) error {
	// Process-local count, not shared memory: Remove waits for it to drop.
	h.r.blocked.Add(1)
	defer h.r.blocked.Add(-1)
	w := h.r.waiting
	if w.Strategy != Block {
		var spinUntil time.Time
		if w.Strategy == Adaptive {
			spinUntil = time.Now().Add(w.spin())
		}
		for i := 1; ; i++ {
			if try() {
				return nil
			}
			atomicx.Pause()
			if i%spinCheck != 0 {
				continue
			}
			now := time.Now()
			if w.Strategy == Adaptive && now.After(spinUntil) {
				break
			}
			if w.Strategy == Spin {
				if now.Sub(h.lastCheck) >= checkEvery {
					if _, err := h.idleCheck(ctx, true); err != nil {
						return settle(err, try)
					}
				}
				if i%(spinCheck*16) == 0 {
					// Let other goroutines of this process run now and then:
					// with more spinners than CPUs they would otherwise wait
					// for preemption.
					runtime.Gosched()
				}
			}
		}
	}
	return h.sleep(ctx, try)
}

// sleep waits on the side's semaphore until try succeeds. Protocol, with the
// publisher's half in wakePeers:
//
//	sleeper                           publisher
//	waiters++        (seq-cst RMW)    slot.seq = p+1   (release)
//	Barrier()        (heavy)          [Fence() unless light]
//	try()            (re-check)       waiters != 0 ?   (load)
//	sem wait                          → waiters -= k, sem += k
//
// Every unit posted answers one announcement taken, and every sleeper
// leaves with exactly one of them: its own announcement, withdrawn, or a
// unit, consumed by its wait or absorbed when it leaves. So the semaphore
// never holds more units than there are sleepers.
//
// The barrier pair forbids the outcome where the sleeper's re-check misses
// the message and the publisher's load misses the sleeper, so a sleeper with
// work waiting is always woken. Waits are sliced (checkEvery) so that a
// sleeper also notices a cancelled context, a removed ring and dead peers.
func (h *handle) sleep(ctx context.Context, try func() bool) error {
	r := h.r
	waiters, num, sleeps := &r.wait.consumers, semData, &r.ctrl.consumerSleeps
	if h.side == producerSide {
		waiters, num, sleeps = &r.wait.producers, semSpace, &r.ctrl.producerSleeps
	}
	registered := false
	defer func() {
		if registered && !unregister(waiters) {
			// A waker took our announcement and posts a unit for it: take
			// the unit, or it would wake a later sleeper for nothing, and
			// such units would pile up. The post follows the waker's CAS at
			// once; the bound only covers a waker that died in between.
			_ = r.sems.WaitTimeout(num, absorbWait)
		}
	}()
	for {
		if !registered {
			// Seq-cst RMW, SYNC(dekker): announces the sleeper before the
			// re-check below; the publisher reads it in wakePeers.
			waiters.Add(1)
			registered = true
			// Heavy half of SYNC(dekker): orders the announcement before the
			// re-check on this CPU, and the publishers' seq stores before their
			// waiter loads on theirs.
			atomicx.Barrier()
		}
		if try() {
			return nil
		}
		progress, err := h.idleCheck(ctx, time.Since(h.lastCheck) >= checkEvery)
		if err != nil {
			return settle(err, try)
		}
		if progress {
			continue
		}
		// Relaxed would do: a statistics counter.
		sleeps.Add(1)
		slice := checkEvery
		if d, ok := ctx.Deadline(); ok {
			slice = min(slice, max(time.Until(d), time.Microsecond))
		}
		err = r.sems.WaitTimeout(num, slice)
		switch {
		case err == nil:
			// A waker took our registration along with the post. Look before
			// announcing again: the wake-up is usually for a message that is
			// there, and finding it now saves the barrier.
			registered = false
			if try() {
				return nil
			}
		case errors.Is(err, semaphore.ErrTimeout):
		default:
			return r.semError(err)
		}
	}
}

// settle decides a wait that idleCheck ended with err. A peer's close or
// death is read after the messages it published, so one more try finds any
// of them that arrived after the last; only when that fails does err stand.
func settle(err error, try func() bool) error {
	if errors.Is(err, io.EOF) || errors.Is(err, ErrPeerDead) || errors.Is(err, ErrNoConsumers) {
		if try() {
			return nil
		}
	}
	return err
}

// unregister withdraws one sleeper's announcement. It reports false when
// there was none left: a waker took it, and a post is on its way.
func unregister(waiters *atomic.Uint32) bool {
	for {
		// Seq-cst load and CAS: part of SYNC(dekker) bookkeeping.
		w := waiters.Load()
		if w == 0 {
			return false
		}
		if waiters.CompareAndSwap(w, w-1) {
			return true
		}
	}
}

// wakePeers is the publisher's half of the wake-up protocol, called after a
// publication of k messages (or k free slots) for sleepers counted in
// waiters, which sleep on semaphore num. It is small enough to inline: the
// busy path is one load and one branch.
func (r *Ring) wakePeers(waiters *atomic.Uint32, num int, k uint32) {
	// Seq-cst load, SYNC(dekker): pairs with the sleeper's waiters.Add and
	// Barrier in sleep. (Without membarrier, wakeFenced orders it first.)
	if !r.light || waiters.Load() != 0 {
		r.wakeFenced(waiters, num, k)
	}
}

// wakeFenced is wakePeers for a process that is not a membarrier target
// or has sleepers to wake.
func (r *Ring) wakeFenced(waiters *atomic.Uint32, num int, k uint32) {
	if !r.light {
		// SYNC(dekker) without membarrier: order our seq stores before the
		// waiter load ourselves.
		atomicx.Fence()
	}
	// Seq-cst load, SYNC(dekker), as above.
	if waiters.Load() != 0 {
		r.wakeSlow(waiters, num, k)
	}
}

// wakeSlow takes up to k announcements and posts as many units.
func (r *Ring) wakeSlow(waiters *atomic.Uint32, num int, k uint32) {
	for {
		w := waiters.Load()
		if w == 0 {
			return
		}
		n := min(w, k)
		// Seq-cst CAS, SYNC(dekker): takes n sleepers' announcements; each of
		// them gets one unit.
		if waiters.CompareAndSwap(w, w-n) {
			// An error means the set was removed: the sleepers wake anyway.
			_ = r.sems.Add(num, int(n))
			// Relaxed would do: a statistics counter.
			r.ctrl.wakeups.Add(1)
			return
		}
	}
}

// idleCheck runs when try failed and the handle is about to sleep (or, for
// the Spin strategy, every checkEvery). With full set it also reads the
// semaphore values to find dead peers and recovers what they left. It
// returns progress when it recovered something try may now find, and the
// error that should end the wait: ctx.Err(), ErrRemoved, os.ErrClosed (the
// Ring is closing), io.EOF (consumers,
// every producer closed), ErrNoConsumers (producers) or ErrPeerDead.
func (h *handle) idleCheck(ctx context.Context, full bool) (progress bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	r := h.r
	// Acquire: the removal flag; nothing is ordered by it.
	if r.ctrl.flags.Load()&flagRemoved != 0 {
		return false, ErrRemoved
	}
	if r.closing.Load() {
		return false, os.ErrClosed
	}
	if full {
		if err := h.refresh(); err != nil {
			return false, err
		}
		if h.side == consumerSide && (h.recoverDeadProducers() > 0 || h.adoptOrphans(true)) {
			return true, nil
		}
	}
	p := h.peers(full)
	switch {
	case p.alive > 0:
		return false, nil
	case p.dead > 0:
		return false, ErrPeerDead
	case p.closed > 0 && h.side == consumerSide:
		return false, io.EOF
	case p.closed > 0:
		return false, ErrNoConsumers
	}
	return false, nil
}
