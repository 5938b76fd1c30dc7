package ring

import (
	"context"
	"errors"
	"io"
	"os"
	"runtime"
	"syscall"
	"time"

	"github.com/shmring/shmring/internal/atomicx"
	"github.com/shmring/shmring/semaphore"
)

// checkEvery is how often a spinning handle (the Spin strategy, or a Try
// call that finds the ring stuck) reads its peers' locks to find the dead.
// A sleeping handle needs no such period: deaths wake it.
const checkEvery = 25 * time.Millisecond

// spinCheck is how many spin rounds pass between looks at the clock.
const spinCheck = 64

// spinLook is how often a spinning handle looks at the context and at its
// peers' states. Those states share lines with words a busy peer writes
// for every message (its counters, its claims), so looking at them much
// more often would cost that peer a cache miss per look.
const spinLook = 100 * time.Microsecond

// stuckEvery is how many Try calls that find nothing pass between looks at
// the clock for a scan (see stuck).
const stuckEvery = 16

// recheckSlice is how soon a handle looks again when a recovery or a
// takeover waits for a live peer to settle a claim it is making.
const recheckSlice = time.Millisecond

// yieldCPU lets another thread of this CPU run, if one is waiting for it,
// and returns how many spin rounds should pass before the next yield:
// spinCheck if the CPU came straight back, contendedGap if another thread
// ran meanwhile. An Adaptive spinner yields at its looks at the clock, and
// more often while others want its CPU, so that spinning sides leave the
// CPUs to the sides that have work where processes outnumber CPUs (a
// server and its clients on two CPUs), and still see a publication within
// a system call's time when nobody else wants the CPU. The call is raw:
// sched_yield(2) does not block, so the Go scheduler need not hear of it.
func yieldCPU() int {
	t0 := time.Now()
	syscall.RawSyscall(syscall.SYS_SCHED_YIELD, 0, 0, 0)
	if time.Since(t0) > yieldedAfter {
		return contendedGap
	}
	return spinCheck
}

// A yield that takes longer than yieldedAfter gave the CPU to another
// thread: a bare sched_yield(2) takes well under a microsecond here.
// Then the spinner yields every contendedGap rounds: measured on two vCPUs
// shared by five processes, every 8 rounds served a server and its four
// clients twice as fast as every 64 (BENCHMARKS.md).
const (
	yieldedAfter = 2 * time.Microsecond
	contendedGap = 8
)

// errNeedScan is the verdict of a check made from the states alone that
// only a scan of the locks can settle: a peer may have died.
var errNeedScan = errors.New("ring: peers must be scanned")

// waitFor waits until try succeeds, following the ring's wait strategy. try
// is called again after every wake-up; it must be cheap and make no system
// call. waitFor returns ctx.Err() when ctx is done, os.ErrClosed when the
// handle is closed meanwhile, ErrRemoved, and the verdicts of check
// (io.EOF, ErrNoConsumers, ErrPeerDead).
func (h *handle) waitFor(ctx context.Context, try func() bool) error {
	w := h.r.waiting
	if w.Strategy != Block {
		var spinUntil time.Time
		lastLook := time.Now()
		if w.Strategy == Adaptive {
			spinUntil = lastLook.Add(w.spin())
		}
		yieldGap := h.yieldGap
		if yieldGap == 0 {
			yieldGap = spinCheck
		}
		defer func() { h.yieldGap = yieldGap }()
		for i := 1; ; i++ {
			if try() {
				return nil
			}
			atomicx.Pause()
			if w.Strategy == Adaptive && i%yieldGap == 0 && i%spinCheck != 0 {
				yieldGap = yieldCPU()
			}
			if i%spinCheck != 0 {
				continue
			}
			now := time.Now()
			if w.Strategy == Adaptive && now.After(spinUntil) {
				break // sleep, which looks first
			}
			if w.Strategy == Adaptive {
				yieldGap = yieldCPU()
			}
			if i%(spinCheck*16) == 0 {
				// Let other goroutines of this process run now and then:
				// with more spinners than CPUs they would otherwise wait for
				// preemption.
				runtime.Gosched()
			}
			if now.Sub(lastLook) < spinLook && !h.g.closed() {
				continue
			}
			lastLook = now
			err := h.check(ctx)
			needScan := errors.Is(err, errNeedScan)
			if needScan {
				err = nil // spin on; scan now and then
			}
			every := checkEvery
			if h.recheck {
				every = recheckSlice
			}
			if err == nil && (needScan || w.Strategy == Spin || h.recheck) && now.Sub(h.lastCheck) >= every {
				var progress bool
				if progress, err = h.scanCheck(); progress {
					continue
				}
			}
			if err != nil {
				return settle(err, try)
			}
		}
	}
	return h.sleep(ctx, try)
}

// sleep waits on the handle's own semaphore until try succeeds; see
// wake.go for the protocol. It makes no periodic system call: a
// publication, a peer's death, a cancelled context and Close each wake it.
func (h *handle) sleep(ctx context.Context, try func() bool) error {
	r := h.r
	var stopCancel func() bool
	defer func() {
		// A cancel that has started wakes us with the ring's memory: let it
		// finish before the call returns, and Close can unmap.
		if stopCancel != nil && !stopCancel() {
			// Acquire, SYNC(cancel-done): pairs with the store in cancelWake.
			for h.cancelled.Load() == 0 {
				runtime.Gosched()
			}
		}
		// Relaxed would do: only this goroutine reads it next.
		h.cancelled.Store(0)
	}()
	// scan: a unit came from no publisher, so a peer may have died.
	// scanned: a scan since the last wake-up found no verdict (a peer's
	// line was locked); the next wake-up, which the locker owes us, says
	// when to look again.
	scan, scanned := false, false
	for {
		h.announce()
		if try() {
			h.leave()
			return nil
		}
		err := h.check(ctx)
		if errors.Is(err, errNeedScan) && scanned {
			err = nil
		}
		if err == nil && scan || errors.Is(err, errNeedScan) {
			// Withdraw first: a scan may wake sleepers, and we are not one
			// while we look.
			h.leave()
			if scan {
				// Not announced, so no waker owes us a unit: whatever is
				// in our semaphore came from deaths, one scan serves them
				// all.
				r.drain(h.wakeNum())
			}
			progress, err := h.scanCheck()
			if err != nil {
				return settle(err, try)
			}
			// A scan that recovered something changed what the next look
			// sees (a line reaped is dead now): let it scan again.
			scan, scanned = false, !progress
			continue
		}
		if err != nil {
			h.leave()
			return settle(err, try)
		}
		if stopCancel == nil && ctx.Done() != nil {
			stopCancel = context.AfterFunc(ctx, h.cancelWake)
		}
		h.countSleep()
		recheck := h.recheck
		h.recheck = false // the next try or scan says it again if need be
		err = r.sems.WaitTimeout(h.wakeNum(), h.sleepFor(ctx, recheck))
		switch {
		case err == nil:
			scanned = false
			if !h.withdraw() {
				// Our bit was still set: no publisher woke us, so this unit
				// came from a peer's death (or a stray): look at the peers.
				scan = true
			}
			if try() {
				return nil
			}
		case errors.Is(err, semaphore.ErrTimeout):
			h.leave()
			scan = scan || recheck
		default:
			h.leave()
			return r.semError(err)
		}
	}
}

// leave withdraws h's announcement, taking the unit a waker owes it if it
// was woken meanwhile.
func (h *handle) leave() {
	if h.withdraw() {
		h.absorb()
	}
}

// sleepFor returns how long one wait may last: until ctx's deadline, or a
// short slice while the fence agreement settles; otherwise as long as it
// takes (a publication, a death, a cancel or a close ends it).
func (h *handle) sleepFor(ctx context.Context, recheck bool) time.Duration {
	d := time.Duration(1<<63 - 1)
	if dl, ok := ctx.Deadline(); ok {
		d = max(time.Until(dl), time.Microsecond)
	}
	if h.r.settling(h.side) {
		d = min(d, settleSlice)
	}
	if recheck {
		d = min(d, recheckSlice)
	}
	if !h.wakeBy.IsZero() {
		d = min(d, max(time.Until(h.wakeBy), time.Microsecond))
	}
	return d
}

func (h *handle) countSleep() {
	// Relaxed would do: statistics counters.
	if h.side == producerSide {
		h.r.ctrl.producerSleeps.Add(1)
	} else {
		h.r.ctrl.consumerSleeps.Add(1)
	}
}

// settle decides a wait that a check ended with err. A peer's close or
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

// check is what a waiting handle looks at cheaply, with no system call:
// Close, removal, its context, and the other side's states. It returns
// errNeedScan where only the peers' locks can tell whether one has died.
func (h *handle) check(ctx context.Context) error {
	r := h.r
	// Acquire: the removal flag; nothing is ordered by it. (Before the
	// close: Remove sets it, then closes.)
	if r.ctrl.flags.Load()&flagRemoved != 0 {
		return ErrRemoved
	}
	if h.g.closed() {
		return os.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p := r.count(h.side.other(), nil)
	if p.live == 0 && h.side == consumerSide && r.g.mode.multiConsumer() && r.claimsLeft(h.idx) {
		// No producer is left, but another consumer's line holds messages:
		// a scan takes them over (or finds who serves them) before any
		// verdict.
		return errNeedScan
	}
	return h.verdict(p, false)
}

// claimsLeft reports whether a consumer line other than skip names a
// claim. Whether its holder will deliver it (a live one) or it is left for
// us (a closed or dead one, maybe not yet found dead), only a scan can say.
func (r *Ring) claimsLeft(skip int) bool {
	first, count := r.lines(consumerSide)
	for i := first; i < first+count; i++ {
		// Acquire: a line's claim, for a verdict.
		if i != skip && r.roles.At(uint64(i)).claim.Load() != 0 {
			return true
		}
	}
	return false
}

// scanCheck reads the peers' locks, cleans up after dead peers (progress:
// try again), and gives the verdict on the other side.
func (h *handle) scanCheck() (progress bool, err error) {
	h.recheck = false
	views, err := h.scanLines()
	if err != nil {
		return false, err
	}
	if progress, err = h.recoverPeers(views); progress || err != nil {
		return progress, err
	}
	return false, h.verdict(h.r.count(h.side.other(), views), true)
}

// verdict says whether a handle whose try failed should go on waiting
// (nil) or give up, from a count of the other side: while any peer is live
// (or being taken over), wait; with none, ErrPeerDead if one died, io.EOF
// (consumers) or ErrNoConsumers (producers) if one closed. Deaths are
// final only from a scan.
func (h *handle) verdict(p peers, scanned bool) error {
	switch {
	case p.live > 0:
		return nil
	case p.dead > 0 && !scanned:
		return errNeedScan
	case p.dead > 0:
		return ErrPeerDead
	case p.closed > 0 && h.side == consumerSide:
		return io.EOF
	case p.closed > 0:
		return ErrNoConsumers
	}
	return nil
}

// stuck runs a scan for a Try call that found nothing while the ring says
// there is something (a producer mid-write, or one that died there), at
// most every checkEvery, and reports whether it recovered anything. It
// reads the clock only every stuckEvery calls: a Try that polls an empty
// ring pays no more than an increment.
func (h *handle) stuck() bool {
	h.tries++
	if h.tries%stuckEvery != 0 {
		return false
	}
	every := checkEvery
	if h.recheck {
		every = recheckSlice
	}
	if time.Since(h.lastCheck) < every {
		return false
	}
	h.recheck = false
	views, err := h.scanLines()
	if err != nil {
		return false
	}
	progress, _ := h.recoverPeers(views)
	return progress
}

// cancelWake is what a cancelled context does to a sleeping handle: wake
// it, and say so when done.
func (h *handle) cancelWake() {
	h.interrupt()
	// Release, SYNC(cancel-done): pairs with the load in sleep.
	h.cancelled.Store(1)
}
