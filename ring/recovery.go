package ring

import (
	"fmt"

	"github.com/shmring/shmring/internal/atomicx"
)

// Recovery and takeover.
//
// Every role line has a lock, a semaphore that the process working on the
// line holds at 1 with SEM_UNDO. Taking the lock is one semop (wait for
// zero without sleeping, then raise), so two processes cannot hold it, and
// the kernel drops it when the holder dies, at whatever instruction. So a
// line's contents are never written by two processes at once, and whatever
// a dead process left on a line stays there, under a free lock, for the
// next process to find. Every step below is written so that the next
// process, finding the line as a kill left it, finishes the work: nothing
// is ever moved off a line before the work it records is done.
//
// Taking a role (takeLine), for each line whose lock is free:
//
//	step            writes                                  a kill here leaves          the next taker
//	take:armed      undo +1 on the peers' wake-ups           nothing; peers woken once   finds the line as it was
//	take:locked     the line's lock                          lock dropped by the kernel  finds the line as it was
//	take:marked     state = dead (was active: holder died)   a dead line, work intact    sees dead, goes on
//	recover:*       see below, per discipline                partial work, idempotent    redoes the rest
//	take:active     pid, start, state = active               a live holder, or its death the line of a dead holder
//
// What recover does, by discipline:
//
//   - Many producers: the dead holder's claim names positions it may have
//     claimed and not committed. Each such position that is behind the
//     tail, not yet published and claimed by no live producer is published
//     as skipped, by CAS (recover:skipped), so consumers pass over it; then
//     the claim is cleared (recover:cleared). A kill in between leaves the
//     claim, and positions already skipped are seen as published.
//   - Single producer: the holder stores the tail after publishing, so the
//     messages it published after its last tail store are found by looking
//     from the tail for slots published or already consumed for their
//     position (recover:tail); nothing is written before the new tail.
//   - Single consumer: the head is the consumer's only state and is moved
//     only after a message is finished, so the taker starts at the head. A
//     message the dead holder was looking at in place (Peek) is named by
//     peek, and is delivered again with Redelivered set; peek stays until
//     then.
//   - Many consumers: the claim names positions the holder took and did not
//     finish, or, if it died before its claiming CAS, positions it never
//     owned. The taker keeps the claim on the line and serves it as its own,
//     position by position: only positions behind the head, still published
//     for their own position, and claimed by no live consumer are delivered,
//     and each is finished by CAS, so a position is delivered once even if
//     two lines name it. The claim is cleared only once served.
//
// A consumer that finds a dead producer line (its lock free, its state
// active or dead, a claim on it) takes the line's lock for a moment and does
// the many-producer recovery above, without taking the role (reap). A
// consumer of a many-consumer ring that finds a dead or closed consumer line
// with a claim takes that line's lock and serves the claim from there
// (adopt), exactly as a taker would, and drops the lock when the claim is
// served or when it closes; a kill leaves the claim on the line it belongs
// to. Both wake the consumers afterwards, since a verdict (io.EOF,
// ErrPeerDead) is held back while a line is locked.

// recoverProducerClaim skips the positions of line i's claim that a dead
// producer claimed and never committed. The caller holds line i's lock.
func (h *handle) recoverProducerClaim(i int) error {
	r := h.r
	e := r.roles.At(uint64(i))
	// Acquire: the claim, which only the holder of the lock writes; that is
	// us now, and before us a process that has died.
	claim, n := e.claim.Load(), e.claimLen.Load()&^claimIntent
	if claim == 0 {
		return nil
	}
	if n > r.n {
		return fmt.Errorf("%w: producer line %d claims %d positions of a ring of %d", ErrCorrupt, i, n, r.n)
	}
	step("recover:start")
	// Acquire: the tail before the scan, so that every live producer that
	// moved it past a position has its claim visible to the scan.
	tail := r.prod.pos.Load()
	views, err := h.scanLines()
	if err != nil {
		return err
	}
	live := h.liveLines(views, producerSide, i)
	skipped, deferred := 0, false
	for pos := claim - 1; pos < claim-1+n; pos++ {
		if pos >= tail {
			continue // never claimed
		}
		switch r.coveredByLive(live, pos) {
		case owned:
			continue // a live producer's
		case unsure:
			deferred = true // a live producer's, maybe: next time
			continue
		}
		s := r.descs.At(pos & r.mask)
		// Acquire, SYNC(slot-publish): pairs with the release store of seq in
		// publish; below pos+1 the slot has not been published for pos.
		seq := s.seq.Load()
		if seq&^seqSkip >= pos+1 {
			continue
		}
		// Release, SYNC(slot-publish): the skip mark is a publication; CAS so
		// that it cannot overwrite a commit or another recoverer's mark.
		if s.seq.CompareAndSwap(seq, (pos+1)|seqSkip) {
			r.ctrl.recovered.Add(1) // relaxed would do: a statistics counter
			skipped++
			step("recover:skipped")
		}
	}
	if deferred {
		// The claim stays for the next look, soon.
		h.recheck = true
		return nil
	}
	// Release, SYNC(claim): done; a recoverer after us finds nothing to do.
	atomicx.StoreRelease(&e.claim, 0)
	step("recover:cleared")
	return nil
}

// cover is what a recoverer learns of a position from the claims of live
// lines.
type cover int

const (
	notCovered cover = iota // no live line claims it: the recoverer may
	owned                   // a live line's confirmed claim covers it (or it is done)
	unsure                  // a live line's intent covers it: look again soon
)

// coveredByLive reads afresh the claims of the given lines (live when the
// caller scanned) and says whether one of them covers pos. Positions behind
// the scan's head were claimed before the scan, so a line taken after it
// claims none of them. A claim is read start, length, start: a claim that
// changes meanwhile counts as unsure.
func (r *Ring) coveredByLive(lines []int, pos uint64) cover {
	for _, i := range lines {
		e := r.roles.At(uint64(i))
		// Acquire, SYNC(claim): pairs with the release stores of claim and
		// claimLen in the claiming code (produce_multi.go, consume_multi.go).
		c, n := e.claim.Load(), e.claimLen.Load()
		if c == 0 || pos < c-1 || pos-(c-1) >= min(n&^claimIntent, r.n) {
			continue
		}
		// Acquire: the start again; a claim rewritten meanwhile is unsure.
		if n&claimIntent != 0 || e.claim.Load() != c {
			return unsure
		}
		return owned
	}
	return notCovered
}

// liveLines returns the lines of side s other than skip that were live in
// the scan.
func (h *handle) liveLines(views []lineView, s side, skip int) []int {
	h.scan.live = h.scan.live[:0]
	first, count := h.r.lines(s)
	for i := first; i < first+count; i++ {
		if i != skip && views[i].live() {
			h.scan.live = append(h.scan.live, i)
		}
	}
	return h.scan.live
}

// strayLimit is how many units may sit in the wake-up semaphore of a line
// that nobody holds before a scan drains them.
const strayLimit = 16

// reapDead cleans up after the dead holders a scan found: each line of a
// dead holder that is still marked active is marked dead, so that checks
// made from the states alone see the death, and a consumer recovers the
// claims of dead producers of a many-producer ring. Each line is locked
// for the moment it takes. It reports whether it skipped any position.
// Sleepers of both sides are woken afterwards, since they hold back their
// verdicts while a line is locked.
func (h *handle) reapDead(views []lineView) (progress bool, err error) {
	r := h.r
	reaped := false
	for i := range views {
		v := views[i]
		if i != h.idx && !v.locked && status(v.state) != roleActive && h.scan.vals[semWakes(r.g.roles())+i] > strayLimit {
			// Deaths post every line of a side, held or not: drain a line
			// nobody holds before its units pile up.
			if r.lock(i) == nil {
				r.drain(semWakes(r.g.roles()) + i)
				r.unlock(i)
			}
		}
		if i == h.idx || !v.dead() {
			continue
		}
		producerLine := i < r.g.maxProducers
		recoverClaim := h.side == consumerSide && producerLine && r.g.mode.multiProducer() && v.claim != 0
		if status(v.state) != roleActive && !recoverClaim {
			continue
		}
		if r.lock(i) != nil {
			continue // someone else is at it, or took the role
		}
		e := r.roles.At(uint64(i))
		// Acquire: the line as its dead holder, or a reaper before us, left
		// it; with the lock it cannot change under us.
		if st := e.state.Load(); status(st) == roleActive {
			// Release: peers see a death, not a live holder.
			atomicx.StoreRelease(&e.state, next(st, roleDead))
			r.ctrl.reaped.Add(1) // relaxed would do: a statistics counter
			step("reap:marked")
		}
		if recoverClaim {
			if err = h.recoverProducerClaim(i); err == nil {
				progress = true
			}
		}
		r.unlock(i)
		reaped = true
		if err != nil {
			break
		}
	}
	if reaped {
		r.wakeAll(producerSide)
		r.wakeAll(consumerSide)
	}
	return progress, err
}

// tailAfter returns the first position from tail on that holds neither a
// message published for it nor one published and consumed: where a single
// producer that took over from a dead one goes on. consumedSeq says how a
// consumed slot looks: with many consumers its seq is p+N; with one, the
// consumer does not write the slot, so seq stays p+1. It fails with
// ErrCorrupt if more than N positions seem published, which no producer
// can do.
func (r *Ring) tailAfter(tail uint64) (uint64, error) {
	pos, ok := r.publishedFrom(tail)
	if !ok {
		return 0, fmt.Errorf("%w: more than %d slots published after the tail %d", ErrCorrupt, r.n, tail)
	}
	if r.spanning() {
		pos = r.skipOrphans(pos)
	}
	step("recover:tail")
	return pos, nil
}

// skipOrphans is tailAfter's look past pos, the first position its
// predecessor did not publish: if that producer died between publishing
// the continuations of a span at pos and its head (span.go), the
// continuations are there, published; the head is marked skipped, so that
// consumers pass over the whole span, and the tail goes on after it.
func (r *Ring) skipOrphans(pos uint64) uint64 {
	m := uint64(1)
	for ; m < r.maxSpan(); m++ {
		d := r.descs.At((pos + m) & r.mask)
		// Acquire, SYNC(span-publish): a continuation published for its
		// position, of a span at pos.
		if d.seq.Load() != pos+m+1 || d.typ.Load() != contMark|m {
			break
		}
	}
	if m == 1 {
		return pos
	}
	// Release, SYNC(slot-publish): a skip mark, as recoverProducerClaim
	// makes; the slot is ours, the dead producer's claim.
	atomicx.StoreRelease(&r.descs.At(pos&r.mask).seq, (pos+1)|seqSkip)
	r.ctrl.recovered.Add(1) // relaxed would do: a statistics counter
	return pos + m
}

// publishedFrom is tailAfter's scan, which Stats makes too: ok is false if
// more than N positions seem published.
func (r *Ring) publishedFrom(tail uint64) (pos uint64, ok bool) {
	multiConsumer := r.g.mode.multiConsumer()
	for k := uint64(0); k <= r.n; k++ {
		pos := tail + k
		// Acquire, SYNC(slot-publish): what the producer, and a consumer
		// after it, left in the slot.
		seq := r.descs.At(pos & r.mask).seq.Load()
		published := seq&^(seqSkip|seqHeld) == pos+1
		consumed := multiConsumer && seq == pos+r.n
		if !published && !consumed {
			return pos, true
		}
	}
	return 0, false
}
