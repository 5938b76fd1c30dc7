package ring

import (
	"fmt"

	"github.com/shmring/shmring/internal/atomicx"
)

// singleReceiver is the discipline of the only consumer of a ring (SPSC,
// MPSC). It owns the head: the messages from the head on are its own with
// no claim, and it frees slots by moving the head past them, with one
// release store per call however many it finished. It never writes a
// slot, which spares producers a cache-line transfer per message.
//
// The head moves only after a message is finished, so a successor that
// takes over from a dead consumer starts at the head and delivers again
// the message the dead one was reading (which it never returned) or
// looking at in place; the latter is named on the role line (peek), so that
// it is flagged as redelivered.
type singleReceiver struct {
	r         *Ring
	line      *roleLine
	head      uint64 // next position; the ring's head is its copy after done
	published uint64 // the head as last stored
	flagPos   uint64 // position+1 of the first message a dead predecessor was looking at in place
	flagEnd   uint64 // the end of those messages (PeekBatch held several)
	named     bool   // our line's peek names a position
}

func newSingleReceiver(h *handle) (*singleReceiver, error) {
	r := h.r
	// Acquire: our predecessor's head, its counters and what it was looking
	// at; it finished everything below the head.
	head := r.cons.pos.Load()
	s := &singleReceiver{r: r, line: h.line, head: head, published: head}
	if peek := h.line.peek.Load(); peek != 0 && peek-1 <= head && head < heldEnd(r, h.line, peek-1) {
		s.flagPos, s.flagEnd, s.named = head+1, heldEnd(r, h.line, peek-1), true
	} else if peek != 0 {
		// Release: stale (released before its holder died); not ours.
		atomicx.StoreRelease(&h.line.peek, 0)
	}
	return s, nil
}

func (s *singleReceiver) next(uint64) (uint64, bool, error) {
	r := s.r
	start := s.head
	for k := uint64(0); k <= r.n; k++ {
		pos := s.head
		// Acquire, SYNC(slot-publish): pairs with the producer's release
		// store of seq in publish; the slot's descriptor and payload are
		// visible.
		seq := r.descs.At(pos & r.mask).seq.Load()
		switch {
		case seq == pos+1:
			if s.head != start {
				s.done(0, 0) // give the skipped slots back now: the caller may not finish this one
			}
			return pos, true, nil
		case seq == (pos+1)|seqSkip:
			s.head++ // given up by its producer, or by a recoverer: pass it
		case seq&^seqSkip > pos+1:
			return 0, false, fmt.Errorf("%w: slot of position %d has sequence %#x, ahead of the head", ErrCorrupt, pos, seq)
		default:
			if s.head != start {
				s.done(0, 0) // give the skipped slots back now: producers may wait for them
			}
			return 0, false, nil // not published yet
		}
	}
	return 0, false, fmt.Errorf("%w: more than %d skipped slots in a row", ErrCorrupt, r.n)
}

func (s *singleReceiver) take(pos uint64) bool {
	s.head = pos + 1
	return true
}

func (s *singleReceiver) hold(pos uint64) bool {
	// Release, SYNC(claim): our line names the message we look at before we
	// hand it out, so that a successor delivers it again if we die.
	atomicx.StoreRelease(&s.line.peek, pos+1)
	s.named = true
	return true
}

func (s *singleReceiver) following(first, k uint64) uint64 {
	return publishedAfter(s.r, first, min(k, s.r.n-1))
}

func (s *singleReceiver) holdTo(_, end uint64) {
	// Release, SYNC(claim): our line names the messages we look at before
	// we hand them out, as hold does for the first.
	atomicx.StoreRelease(&s.line.peekEnd, max(end, s.flagEnd))
}

func (s *singleReceiver) more(_, end, k uint64) uint64 {
	// The head is ours: every published message after the run may join it.
	return publishedAfter(s.r, end-1, k)
}

func (s *singleReceiver) slide(first, _ uint64) {
	// Release, SYNC(claim): our line names the first message we still
	// look at, after done stored the head past those before it. A
	// successor that finds the old name instead still flags from the
	// head: it is behind the head and its run's end beyond it.
	atomicx.StoreRelease(&s.line.peek, first+1)
	s.named = true
}

func (s *singleReceiver) release(pos uint64) {
	s.head = pos + 1
}

func (s *singleReceiver) done(n uint64, bytes int) {
	r := s.r
	freed := s.head - s.published
	s.published = s.head
	// Release, SYNC(head-release): pairs with the producers' acquire load of
	// the head in claim; our reads of the slots below it are done before
	// they are refilled.
	atomicx.StoreRelease(&r.cons.pos, s.head)
	s.line.count(n, bytes)
	if s.named {
		s.clearNamed()
	}
	if freed > 0 {
		if r.maySleep(producerSide) { // wakeProducers, inline
			r.wakeFenced(producerSide, uint32(min(freed, 1<<31)))
		}
	}
}

// clearNamed stops our line from naming what we looked at in place, or a
// dead predecessor did, once the head has passed all of it: a run whose
// first messages were delivered but not its last stays named, so that a
// successor still flags the rest if we die too.
func (s *singleReceiver) clearNamed() {
	// Acquire: our own line's peek (only we write it).
	if peek := s.line.peek.Load(); peek == 0 || s.head >= heldEnd(s.r, s.line, peek-1) {
		// Release, SYNC(claim): the messages it names are finished, after
		// the head.
		atomicx.StoreRelease(&s.line.peek, 0)
		s.named = false
	}
}

// receiveOne is next, take and done for one message, in one call.
func (s *singleReceiver) receiveOne(buf []byte) (int, int64, bool, error) {
	pos, ok, err := s.next(1)
	if err != nil || !ok {
		return 0, 0, false, err
	}
	typ, msg, err := s.r.message(pos)
	switch {
	case err != nil && err == errSpanning:
		return receiveOne(s, s.r, buf) // span.go: from the same position
	case err != nil:
		return 0, 0, false, err
	case len(msg) > cap(buf):
		return 0, 0, false, tooLarge(len(msg), cap(buf))
	}
	n := copy(buf[:cap(buf)], msg)
	s.head = pos + 1
	if s.flagPos != 0 {
		s.redelivered(pos)
	}
	s.done(1, n)
	return n, typ, true, nil
}

func (s *singleReceiver) redelivered(pos uint64) bool {
	if s.flagPos == 0 || pos+1 < s.flagPos || pos >= s.flagEnd {
		return false
	}
	if pos+1 >= s.flagEnd {
		s.flagPos = 0
	}
	s.r.ctrl.redelivered.Add(1) // relaxed would do: a statistics counter
	return true
}

// close has nothing to hand back: everything from the head on stays for
// the next consumer.
func (s *singleReceiver) close() {}

// heldEnd is the end of the positions a dead holder of line e was looking
// at in place, from first on (its peek): the line's peekEnd if PeekBatch
// held several, else first+1. A value no holder could have written counts
// as first's alone: it decides only which deliveries are flagged.
func heldEnd(r *Ring, e *roleLine, first uint64) uint64 {
	// Acquire: the holder stored it before it handed the messages out.
	end := e.peekEnd.Load()
	if end <= first+1 || end-first > r.n {
		return first + 1
	}
	return end
}

// publishedAfter counts the positions after first, up to k of them, whose
// slots hold published messages, up to the first that does not.
func publishedAfter(r *Ring, first, k uint64) uint64 {
	n := uint64(0)
	for ; n < k; n++ {
		pos := first + 1 + n
		// Acquire, SYNC(slot-publish): pairs with the producer's release
		// store of seq in publish; the slot's descriptor and payload are
		// visible.
		if r.descs.At(pos&r.mask).seq.Load() != pos+1 {
			break
		}
	}
	return n
}
