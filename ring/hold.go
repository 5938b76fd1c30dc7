package ring

import (
	"fmt"
	"os"

	"github.com/shmring/shmring/internal/atomicx"
)

// A sliding window of messages held in place: PeekBatch holds a run of
// messages, TryPeekMore holds more after its end, ReleaseFirst finishes
// the oldest of them while the rest stay held. The run is always
// [peekPos, peekPos+peekCount), named on the role line by peek (its first
// position, +1) and peekEnd (its end), which a successor reads to flag what
// it delivers again. The order of the stores keeps every instant of both
// calls a state that a successor finishes correctly:
//
//	call          stores, in order                       a kill after each leaves
//	TryPeekMore   [claim grown, multi: see grow]         the run, named as before (new positions unnamed, not handed out)
//	              peekEnd = new end                      the longer run named; none of it handed out yet
//	ReleaseFirst  the head or cursor (single, fan-out),  the released ones finished; peek still names the old first,
//	              or each slot's seq (multi)             which is finished, and peekEnd the run's end: the rest is flagged
//	              peek = new first                       the rest named, from its first
//
// A successor flags a position if it lies in [peek-1, peekEnd) and is not
// finished, so released messages never come back, and held ones come back
// flagged. peekEnd-(peek-1) never exceeds the ring's size, since the window
// is held in at most N slots and peek moves up with every ReleaseFirst.

// TryPeekMore holds up to len(held) further messages in place, those that
// directly follow the ones a [Consumer.PeekBatch] (or Peek, or an earlier
// TryPeekMore) holds and that are waiting now, in held[:n]. It never
// blocks. The messages of the whole run, the old and the new, are then
// finished, oldest first, by [Consumer.ReleaseFirst] (or all at once by
// [Consumer.Release]); each held Data stays valid until the call that
// finishes its message, or Close. If this process dies or closes, every
// message still held is delivered again, flagged, as for PeekBatch.
//
// It returns [ErrNotReserved] if nothing is held (call PeekBatch then), and
// [ErrEmpty] if no message can join the run now: none is waiting after it,
// or the next one cannot be held with it. A run grows by messages that
// follow one another in the ring, up to the ring's slot count, and stops
// as PeekBatch's does: before a slot a dead producer left empty, and
// before a message spanning slots. Whether it can grow depends on the
// mode:
//
//   - SPSC, MPSC (the only consumer) and fan-out subscribers: by every
//     message published after it.
//   - SPMC, MPMC (one consumer among many): by the messages of its claim
//     and, once the run reaches the claim's end, by claiming more at the
//     head, as long as no other consumer has claimed after it. A run of a
//     claim taken over from a consumer that died or closed, a run on a
//     ring whose messages may span slots that has reached its claim's end,
//     and a run whose claim another consumer has claimed behind do not
//     grow: ErrEmpty.
//   - A selective ring, and a message spanning slots held alone: never.
//
// ErrEmpty is therefore no sign that the ring is empty: a caller that
// waits for more releases what it holds and calls PeekBatch.
func (c *Consumer) TryPeekMore(held []Peeked) (int, error) {
	if len(held) == 0 {
		return 0, nil
	}
	// No defer: see guard.
	if !c.h.g.enter() {
		c.h.g.leave()
		return 0, os.ErrClosed
	}
	n, err := c.peekMore(held)
	c.h.g.leave()
	return n, err
}

// peekMore is TryPeekMore inside the guard.
func (c *Consumer) peekMore(held []Peeked) (int, error) {
	if !c.peeked {
		return 0, ErrNotReserved
	}
	r := c.h.r
	if c.peekSlots != 0 || c.peekCount >= r.n {
		return 0, ErrEmpty // a span is held alone; a full ring's worth is the most
	}
	end := c.peekPos + c.peekCount
	more := c.d.more(c.peekPos, end, min(uint64(len(held)), r.n-c.peekCount))
	n := uint64(0)
	for ; n < more; n++ {
		pos := end + n
		typ, msg, err := r.message(pos)
		if err != nil {
			break // not held: the call after the run's release reports it
		}
		held[n] = c.peekedAt(pos, typ, msg)
		c.peekLen += len(msg)
	}
	if n == 0 {
		return 0, ErrEmpty
	}
	c.d.holdTo(c.peekPos, end+n)
	c.peekCount += n
	return int(n), nil
}

// ReleaseFirst finishes the n oldest messages the consumer holds in place
// (those PeekBatch returned first, then those of each TryPeekMore, in
// order), giving their slots back to the producers; the others stay held,
// their Data valid. ReleaseFirst of all of them is Release. The Peeked data
// of the finished ones must not be used afterwards. A message finished so
// is never delivered again, even if this process dies at once; those still
// held are, flagged.
//
// It returns [ErrNotReserved] if nothing is held, and [ErrInvalid] for an
// n below zero or above what is held; n = 0 does nothing. On a fan-out
// ring it returns [ErrOverwritten] if one of the finished messages was
// overwritten while held, as Release does.
func (c *Consumer) ReleaseFirst(n int) error {
	// No defer: see guard.
	if !c.h.g.enter() {
		c.h.g.leave()
		return os.ErrClosed
	}
	err := c.releaseFirst(n)
	c.h.g.leave()
	return err
}

// releaseFirst is ReleaseFirst inside the guard.
func (c *Consumer) releaseFirst(n int) error {
	switch {
	case !c.peeked:
		return ErrNotReserved
	case n < 0 || uint64(n) > c.peekCount:
		return fmt.Errorf("%w: release of the first %d of %d held messages", ErrInvalid, n, c.peekCount)
	case n == 0:
		return nil
	case uint64(n) == c.peekCount:
		return c.releasePeeked()
	}
	// Several held: no span among them (a span is held alone).
	r, k := c.h.r, uint64(n)
	bytes := 0
	for i := uint64(0); i < k; i++ {
		pos := c.peekPos + i
		if _, msg, err := r.message(pos); err == nil {
			bytes += len(msg) // for the counters: read before the slot goes back
		}
		c.d.release(pos)
	}
	bytes = min(bytes, c.peekLen)
	c.d.done(k, bytes)
	step("window:released")
	c.peekPos += k
	c.peekCount -= k
	c.peekLen -= bytes
	c.d.slide(c.peekPos, c.peekPos+c.peekCount)
	if c.fan != nil {
		return c.fan.releaseErr() // ErrOverwritten
	}
	return nil
}

// more, for a subscriber: the cursor is ours, as a single consumer's head
// is, so every published message after the run may join it.
func (f *fanoutReceiver) more(_, end, k uint64) uint64 {
	return publishedAfter(f.r, end-1, k)
}

func (f *fanoutReceiver) slide(first, _ uint64) {
	// Release, SYNC(claim): our line names the first message we still
	// hold, after done stored the cursor past those before it; a resumed
	// subscription that finds the old name still flags from the cursor.
	atomicx.StoreRelease(&f.line.peek, first+1)
	f.named = true
}
