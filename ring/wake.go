package ring

import (
	"context"
	"errors"
	"math/bits"
	"sync/atomic"
	"time"

	"github.com/shmring/shmring/internal/atomicx"
	"github.com/shmring/shmring/semaphore"
)

// The wake-up protocol. Each role line has a wake-up semaphore of its own
// and a bit in its side's sleep line. A handle about to sleep sets its bit
// and orders that before its last look at the ring; a publisher stores its
// publication and then reads the sleep line; a bit it finds it clears, and
// for each bit it cleared it posts that line's semaphore once:
//
//	sleeper                              publisher
//	bit |= mine    (seq-cst CAS)         slot.seq = p+1   (release)
//	membarrier, or nothing (see below)   fence, or nothing (see below)
//	look at the ring                     mask != 0 ?      (load)
//	wait on my semaphore                 → clear bit (CAS), post its semaphore
//
// This is a store-then-load on each side (Dekker): each side's store must
// be ordered before its load. The sleeper's CAS orders its own. The
// publisher's store-load order is bought either by the sleeper, with
// membarrier(2), which runs a barrier on the publishers' CPUs and costs
// only the sleeper (it is about to sleep anyway), or by the publisher, with
// a fence on every publication. Which one is an agreement recorded in the
// ring per side: once a process whose sleepers cannot or will not run
// membarrier takes a role of that side, it sets sleepFenced there, and
// every publisher to that side fences from then on. Until the agreement is
// old enough for every publication that started before it to have
// finished (fenceSettle), such a sleeper sleeps in short slices.
//
// Units are accounted per line: a unit in a line's semaphore was posted by
// a waker that cleared that line's bit, or by the kernel for a peer's
// death (see Ring.arm), or by this process to interrupt its own sleep. A
// sleeper that wakes and finds its bit cleared was woken by a publication;
// one that finds its bit still set was woken by a death or an interrupt,
// and checks its peers. A sleeper that leaves without waiting while a
// waker has cleared its bit takes the unit that waker owes it. So no unit
// is lost and none piles up, and a unit left by a dead sleeper in its
// line's semaphore is drained by the line's next holder.

// fenceSettle is how long after sleepFenced is set a sleeper of that side
// that does not run membarrier sleeps only in slices of settleSlice:
// publications that read the flag before it was set have long finished by
// then.
const (
	fenceSettle = 50 * time.Millisecond
	settleSlice = time.Millisecond
)

// absorbWait bounds the wait for the unit that a waker which has cleared a
// leaving sleeper's bit is about to post; it only matters if the waker died
// between the two.
const absorbWait = 10 * time.Millisecond

// words returns the sleep mask words in use for side s.
func (r *Ring) words(s side) int {
	_, count := r.lines(s)
	return (count + 63) / 64
}

// lineBits returns the bits of sleep mask word w that stand for lines of
// side s.
func (r *Ring) lineBits(s side, w int) uint64 {
	_, count := r.lines(s)
	if n := count - 64*w; n < 64 {
		return 1<<n - 1
	}
	return ^uint64(0)
}

// wakePublished is the slow half of a producer's wake-up, after maySleep, for one that
// published [pos, pos+n): on a selective ring it wakes only the sleepers
// whose selectors may match those messages. The types are read after the
// publication: a slot refilled meanwhile held a message that was consumed
// already, which needs no wake-up.
func (r *Ring) wakePublished(pos, n uint64) {
	if !r.g.selective {
		r.wakeFenced(consumerSide, uint32(min(n, 1<<31)))
		return
	}
	var ts typeSet
	for i := uint64(0); i < n && i < r.n; i++ {
		// Relaxed would do: a hint for whom to wake.
		ts.add(int64(r.descs.At((pos + i) & r.mask).typ.Load()))
	}
	r.wakeSelective(ts, uint32(min(n, 1<<31)))
}

// wakeProducers is the publisher's half of the protocol for a consumer
// that freed k slots: it wakes up to k sleeping producers. The busy path is
// maySleep: two loads of a line that stays in the publisher's cache and one
// branch. (Producers run the same test inline, then wakePublished.)
func (r *Ring) wakeProducers(k uint32) {
	if r.maySleep(producerSide) {
		r.wakeFenced(producerSide, k)
	}
}

// maySleep is the busy path's look at the sleepers of side s: false if
// none sleeps and none can without the publisher fencing. It inlines.
func (r *Ring) maySleep(s side) bool {
	sl := r.sleepers[s]
	// Acquire, SYNC(fence-agreement): pairs with the CAS of flags in
	// agreeFor; read after the publication, so that a publication that
	// misses the flag is older than the flag. Seq-cst load of the mask,
	// SYNC(dekker): pairs with the CAS of the sleeper's bit in announce,
	// ordered for us by its membarrier (quiet: this process is a membarrier
	// target, and the side's lines fit one mask word).
	return uint64(sl.flags.Load())|sl.masks[0].Load() != 0 || !r.quiet[s]
}

// wakeFenced is wake for a publication that must fence, or that found a
// sleeper.
func (r *Ring) wakeFenced(s side, k uint32) {
	sl := r.sleepers[s]
	// Acquire, SYNC(fence-agreement), as in wake.
	if !r.light || sl.flags.Load() != 0 {
		// SYNC(dekker): our publication before our loads of the masks.
		atomicx.Fence()
	}
	for w := 0; w < r.words(s) && k > 0; w++ {
		// Seq-cst load, SYNC(dekker): pairs with the CAS in announce. Bits
		// beyond the side's lines are a scribbler's: ignored.
		for m := sl.masks[w].Load() & r.lineBits(s, w); m != 0 && k > 0; m &= m - 1 {
			if r.wakeLine(s, 64*w+bits.TrailingZeros64(m)) {
				k--
			}
		}
	}
}

// wakeSelective is wakeFenced for the consumers of a selective ring: it
// wakes up to k sleeping consumers whose selector, on their line, may match
// one of the messages ts summarizes, and leaves the others asleep. A
// sleeper stores its selector before the CAS that announces it, so the
// selector read after its bit is the one it sleeps with (or a newer one).
func (r *Ring) wakeSelective(ts typeSet, k uint32) {
	const s = consumerSide
	sl := r.sleepers[s]
	// Acquire, SYNC(fence-agreement), as in wake.
	if !r.light || sl.flags.Load() != 0 {
		// SYNC(dekker): our publication before our loads of the masks.
		atomicx.Fence()
	}
	first, _ := r.lines(s)
	for w := 0; w < r.words(s) && k > 0; w++ {
		// Seq-cst load, SYNC(dekker): pairs with the CAS in announce.
		for m := sl.masks[w].Load() & r.lineBits(s, w); m != 0 && k > 0; m &= m - 1 {
			local := 64*w + bits.TrailingZeros64(m)
			// Acquire: the sleeper's selector, stored before its bit.
			if !ts.mayMatch(r.roles.At(uint64(first + local)).selector.Load()) {
				continue
			}
			if r.wakeLine(s, local) {
				k--
			}
		}
	}
}

// wakeAll wakes every sleeper of side s: for a close, or a verdict that
// they must see.
func (r *Ring) wakeAll(s side) {
	atomicx.Fence() // SYNC(dekker): whatever we published before the loads
	sl := r.sleepers[s]
	for w := 0; w < r.words(s); w++ {
		// Seq-cst load, SYNC(dekker): pairs with the CAS in announce.
		for m := sl.masks[w].Load() & r.lineBits(s, w); m != 0; m &= m - 1 {
			r.wakeLine(s, 64*w+bits.TrailingZeros64(m))
		}
	}
}

// wakeLine wakes the sleeper of line local of side s, if its bit is set:
// it clears the bit and posts the line's semaphore. It reports whether it
// did.
func (r *Ring) wakeLine(s side, local int) bool {
	if !clearBit(&r.sleepers[s].masks[local/64], uint64(1)<<(local%64)) {
		return false
	}
	first, _ := r.lines(s)
	err := r.sems.Post(semWakes(r.g.roles()) + first + local)
	switch {
	case err == nil:
		r.ctrl.wakeups.Add(1) // relaxed would do: a statistics counter
	case errors.Is(err, semaphore.ErrRange):
		// The line's semaphore is at its maximum: its sleeper has units
		// to wake with, so no wake-up is lost. (Only stray units, left by
		// many deaths on a line nobody took, can fill it.)
	default:
		// The set was removed, and every sleeper wakes with ErrRemoved.
	}
	return true
}

// setBit sets bit in *w and reports whether it was clear. It is a CAS even
// when the bit is set already, so that it is always a seq-cst write.
func setBit(w *atomic.Uint64, bit uint64) bool {
	for {
		// Seq-cst load and CAS, SYNC(dekker): the sleeper's store.
		old := w.Load()
		if w.CompareAndSwap(old, old|bit) {
			return old&bit == 0
		}
	}
}

// clearBit clears bit in *w and reports whether it was set: whoever clears
// a sleeper's bit owes it one unit.
func clearBit(w *atomic.Uint64, bit uint64) bool {
	for {
		// Seq-cst load and CAS, SYNC(dekker): takes the sleeper's
		// announcement.
		old := w.Load()
		if old&bit == 0 {
			return false
		}
		if w.CompareAndSwap(old, old&^bit) {
			return true
		}
	}
}

// announce sets h's bit, ordered before the look at the ring that follows.
func (h *handle) announce() {
	r := h.r
	setBit(&r.sleepers[h.side].masks[h.local/64], uint64(1)<<(h.local%64))
	if r.light && r.needsBarrier(h.side) {
		// Heavy half of SYNC(dekker): orders the publishers' stores before
		// their loads of the mask, on their CPUs.
		atomicx.Barrier()
	}
}

// needsBarrier reports whether a sleeper of side s must run membarrier:
// unless the side's publishers fence, and have fenced for long enough.
func (r *Ring) needsBarrier(s side) bool {
	sl := r.sleepers[s]
	// Acquire, SYNC(fence-agreement): the flag and its time, set in
	// agreeFor.
	return sl.flags.Load()&sleepFenced == 0 || time.Now().UnixNano()-sl.fenced.Load() < int64(fenceSettle)
}

// settling reports whether a sleeper of side s, in a process that cannot
// run membarrier, must sleep in slices: the agreement is still young.
func (r *Ring) settling(s side) bool {
	// Acquire, SYNC(fence-agreement), as in needsBarrier.
	return !r.light && time.Now().UnixNano()-r.sleepers[s].fenced.Load() < int64(fenceSettle)
}

// withdraw clears h's bit, when it leaves without having been woken, and
// reports whether a waker had cleared it first: then a unit is on its way,
// and the caller takes it (absorb).
func (h *handle) withdraw() (taken bool) {
	return !clearBit(&h.r.sleepers[h.side].masks[h.local/64], uint64(1)<<(h.local%64))
}

// absorb takes the unit that a waker owes h, so that it does not wake h's
// next sleep for nothing.
func (h *handle) absorb() {
	num := h.wakeNum()
	if h.r.sems.TryWait(num) == nil {
		return
	}
	_ = h.r.sems.WaitTimeout(num, absorbWait)
}

func (h *handle) wakeNum() int { return semWakes(h.r.g.roles()) + h.idx }

// drain takes every unit left in semaphore num; the caller knows that no
// waker owes one to a sleeper there (it holds the line, and is not
// announced).
func (r *Ring) drain(num int) error {
	v, err := r.sems.Value(num)
	if err != nil || v == 0 {
		return err
	}
	err = r.sems.Do(context.Background(), semaphore.Op{Num: uint16(num), Delta: int16(-min(v, semaphore.MaxValue)), Flags: semaphore.NoWait})
	if err != nil && !errors.Is(err, semaphore.ErrWouldBlock) {
		return err
	}
	return nil
}

// resetWake prepares a line just taken for sleeping: a bit left set by a
// holder that died asleep is cleared, and units left in its semaphore (by
// wakers of the dead sleeper, or by deaths posted while nobody held the
// line) are drained. We hold the line's lock, so nobody sleeps on it.
func (h *handle) resetWake() error {
	h.withdraw()
	if err := h.r.drain(h.wakeNum()); err != nil {
		return h.r.semError(err)
	}
	return nil
}

// interrupt wakes h if it sleeps, from another goroutine of this process:
// for Close and for a cancelled context. It posts h's semaphore even if h's
// bit is not set (h is between sleeps, or a scribbler cleared the bit): a
// unit no waker owes is harmless, since a sleeper that finds its bit still
// set looks around and drains it.
func (h *handle) interrupt() {
	if !h.r.wakeLine(h.side, h.local) {
		h.r.sems.Post(h.wakeNum())
	}
}
