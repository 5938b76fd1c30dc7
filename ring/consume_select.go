package ring

import (
	"fmt"

	"github.com/shmring/shmring/internal/atomicx"
	"github.com/shmring/shmring/ipc"
)

// selectReceiver is the discipline of a consumer of a ring created for
// selective receive (Options.Selective, SPMC or MPMC). Each call carries a
// selector with msgrcv's meaning, and the consumer takes the oldest message
// in the ring that the selector matches (for UpTo, the oldest of the lowest
// matching type), wherever it is: messages no consumer selects stay, as in
// a kernel message queue.
//
// A consumer owns one slot at a time, by the slot's owner word: it finds a
// published message whose owner word is 0 and whose type matches, takes the
// word from 0 to its token by CAS, and then checks that the slot still
// holds the position it looked at (seq == p+1; a slot's seq only grows, so
// an unchanged seq means an unchanged message). Only the owner of a slot
// consumes it, so each message goes to one consumer. It names the position
// on its role line (peek) before it hands the message out, finishes it by
// storing seq = p+N (for which the producer of p+N waits), and then gives
// the owner word back. The head only hints where to start looking: any
// consumer moves it past consumed slots.
//
// A kill at any step leaves a state that the dead consumer's recoverer (a
// peer's scan, or the consumer that takes over its line) finishes: it
// gives back every owner word that holds the dead token, and flags the
// message as redelivered if the dead one had named it (it may have been
// delivered): after the CAS and before the name, the message was never
// handed out; after seq's store, it was finished, and the slot may hold a
// later message the dead one never saw. The line's claim word is 1 while
// its holder may own a slot, and is cleared by whoever gave back what it
// owned, so that each dead line is cleaned once.
type selectReceiver struct {
	h   *handle
	r   *Ring
	own *roleLine

	sel     ipc.Selector // the selector of the call in progress
	lineSel uint64       // encodeSelector(sel), as last stored on our line

	cur     uint64 // position+1 of the slot we own and have not finished; 0: none
	curSeq  uint64 // its sequence word
	flagged bool   // cur was flagged redelivered by the recoverer of a dead consumer
	freed   uint64 // slots freed since the last done
}

// selectAttempts bounds a scan's claims lost to other consumers: past it,
// a call reports nothing found now, and a blocking one waits and looks
// again, watching its context.
const selectAttempts = 64

// descRedelivered in slotDesc.flags: the recoverer of a dead consumer that
// had named this message gave it back, or its sender said that it may
// have been delivered before (Message.Redelivered); whoever delivers it
// next flags it.
const descRedelivered = 2

func newSelectReceiver(h *handle, prev uint64) (*selectReceiver, error) {
	s := &selectReceiver{h: h, r: h.r, own: h.line, lineSel: ^uint64(0)}
	// Whatever the line's previous holder owned, if it died owning it.
	if h.line.claim.Load() != 0 {
		s.r.giveBack(h.idx, prev)
	}
	// Release, SYNC(claim): from now on we may own a slot; a recoverer
	// after our death looks for our token.
	atomicx.StoreRelease(&h.line.claim, 1)
	return s, nil
}

// setSelector is the selector of the next calls. It is stored on our line,
// before any sleep of those calls announces us (the announcing CAS orders
// it), so that publishers wake us only for messages it could match.
func (s *selectReceiver) setSelector(sel ipc.Selector) {
	s.sel = sel
	if v := encodeSelector(sel); v != s.lineSel {
		// Release: read by publishers after they see our sleep bit.
		atomicx.StoreRelease(&s.own.selector, v)
		s.lineSel = v
	}
}

func (s *selectReceiver) next(uint64) (pos uint64, ok bool, err error) {
	r := s.r
	if s.cur != 0 {
		// A message we own and did not deliver (too large for the last
		// buffer): ours again if this selector wants it, else back to all.
		pos := s.cur - 1
		// Relaxed would do: we own the slot, so nobody writes its type.
		if s.sel.Matches(int64(r.descs.At(pos & r.mask).typ.Load())) {
			return pos, true, nil
		}
		s.disown(pos)
	}
	for attempt := 0; attempt < selectAttempts; attempt++ {
		pos1, seq, found, err := s.find()
		if err != nil || !found {
			s.freedDone() // skipped slots freed on the way: no done follows
			return 0, false, err
		}
		if s.own1(pos1, seq) {
			return pos1 - 1, true, nil
		}
	}
	s.freedDone()
	return 0, false, nil
}

// find scans the ring from the head for the message the selector takes,
// freeing the skipped slots it passes, and returns its position+1 and
// sequence word. It reads only atomic words.
func (s *selectReceiver) find() (pos1, seq uint64, found bool, err error) {
	r := s.r
	s.advanceHead() // past slots consumed since, so that the scan covers the whole ring
	// Acquire: where to start; every position below it is consumed.
	head := r.cons.pos.Load()
	// Acquire: the producers' claims, or a single producer's tail, which
	// may lag: slots published after it are found by their seq.
	tail := r.prod.pos.Load()
	best, bestSeq, bestTyp := uint64(0), uint64(0), int64(0)
	upTo := s.sel.Kind() == ipc.SelectUpTo
	// passed: the scan went past a position claimed before it began and not
	// published yet. A message claimed after the scan began (at or past
	// tail) may then come from the same producer, after the one not yet
	// published: taking it would deliver that producer's messages out of
	// order, so the scan ends there, and the next one starts afresh.
	passed := false
	for p := head; p < head+r.n; p++ {
		if passed && p >= tail {
			break
		}
		d := r.descs.At(p & r.mask)
		// Acquire, SYNC(slot-publish): pairs with the producers' release
		// store of seq; the type read after it is the message's, unless
		// the slot moves on meanwhile, which own1 finds out.
		sq := d.seq.Load()
		switch {
		case sq == p+1:
		case sq == (p+1)|seqSkip:
			// Release by CAS, SYNC(slot-release): a skipped slot is freed
			// once, by whoever gets there first.
			if d.seq.CompareAndSwap(sq, p+r.n) {
				s.freed++
			}
			continue
		case sq&^seqSkip >= p+r.n:
			continue // consumed (and maybe refilled for a later lap)
		case sq&^seqSkip <= p:
			if p >= tail {
				return best, bestSeq, best != 0, nil // nothing published from here on
			}
			passed = true
			continue // a producer's claim, not written yet
		default:
			return 0, 0, false, fmt.Errorf("%w: slot of position %d has sequence %#x", ErrCorrupt, p, sq)
		}
		// Acquire, SYNC(slot-owner): a slot a consumer owns is not for us.
		if d.owner.Load() != 0 {
			continue
		}
		// Relaxed would do: ordered after the seq load above by its
		// acquire; a type of a later lap is caught by own1's second look.
		t := d.typ.Load()
		if t&contMark != 0 && r.spanning() {
			passed = s.scanSpan(p, sq, t) || passed // a continuation, never taken alone (span.go)
			continue
		}
		typ := int64(t)
		if !s.sel.Matches(typ) {
			continue
		}
		if !upTo {
			return p + 1, sq, true, nil
		}
		if best == 0 || typ < bestTyp {
			best, bestSeq, bestTyp = p+1, sq, typ
		}
	}
	return best, bestSeq, best != 0, nil
}

// own1 takes the slot of position pos1-1, whose sequence word was seq,
// and reports whether we own it now with that message in it.
func (s *selectReceiver) own1(pos1, seq uint64) bool {
	r := s.r
	pos := pos1 - 1
	d := r.descs.At(pos & r.mask)
	// Seq-cst CAS, SYNC(slot-owner): pairs with the loads of the owner word
	// in find and giveBack; only the owner consumes the slot.
	if !d.owner.CompareAndSwap(0, s.h.token) {
		return false
	}
	step("select:owned")
	// Acquire, SYNC(slot-publish): the slot still holds pos.
	if d.seq.Load() != seq {
		// It moved on (consumed and refilled) between our looks: what it
		// holds now was hidden from others while we owned it.
		s.disown(pos)
		return false
	}
	// Release, SYNC(claim): named before it is handed out, so that our
	// recoverer flags it if we die.
	atomicx.StoreRelease(&s.own.peek, pos1)
	// flags is plain memory: it was written before the release of seq (by
	// its producer) or before the release of the owner word (by a
	// recoverer, see giveBack), and we own the slot now.
	s.cur, s.curSeq, s.flagged = pos1, seq, d.flags&descRedelivered != 0
	step("select:named")
	return true
}

// disown gives the slot of pos back to all without consuming it, and wakes
// a sleeper its message may be for.
func (s *selectReceiver) disown(pos uint64) {
	r := s.r
	d := r.descs.At(pos & r.mask)
	if s.cur == pos+1 {
		s.cur = 0
	}
	// Release, SYNC(slot-owner): pairs with the loads in find.
	atomicx.StoreRelease(&d.owner, 0)
	if r.maySleep(consumerSide) {
		var ts typeSet
		ts.add(int64(d.typ.Load())) // relaxed would do: a hint for whom to wake
		r.wakeSelective(ts, 1)
	}
}

func (s *selectReceiver) take(pos uint64) bool {
	s.finish(pos)
	return true
}

func (s *selectReceiver) hold(uint64) bool { return true } // named already, in own1

// following is zero: a selective consumer holds one message at a time,
// named by its slot's owner word.
func (s *selectReceiver) following(uint64, uint64) uint64 { return 0 }

func (s *selectReceiver) holdTo(uint64, uint64) {}

// more is zero, as following is.
func (s *selectReceiver) more(uint64, uint64, uint64) uint64 { return 0 }

func (s *selectReceiver) slide(uint64, uint64) {}

func (s *selectReceiver) release(pos uint64) { s.finish(pos) }

// finish consumes the slot of pos, which we own.
func (s *selectReceiver) finish(pos uint64) {
	r := s.r
	d := r.descs.At(pos & r.mask)
	// Release, SYNC(slot-release): pairs with the producers' acquire load
	// of seq; our reads of the slot are done before it is refilled.
	atomicx.StoreRelease(&d.seq, pos+r.n)
	step("select:finished")
	// Release, SYNC(slot-owner): after seq, so that nobody takes the
	// message again.
	atomicx.StoreRelease(&d.owner, 0)
	s.cur = 0
	s.freed++
}

// advanceHead moves the shared head past the consumed slots at it, at most
// N of them, before a scan. Producers do not need the head (they wait for
// a slot's seq); scans start there and look N positions on. Any value
// below which every position is consumed is a right one, and a position
// once consumed stays so, so consumers store it plainly, no CAS: one that
// stores an older value than another's only makes the next scans start
// earlier, and the next advanceHead moves it on again.
func (s *selectReceiver) advanceHead() {
	r := s.r
	// Acquire: the head, then its slots.
	head := r.cons.pos.Load()
	h := head
	for ; h < head+r.n; h++ {
		// Acquire, SYNC(slot-release): a consumed slot has seq ≥ p+N.
		if sq := r.descs.At(h & r.mask).seq.Load(); sq&^seqSkip < h+r.n {
			break
		}
	}
	if h != head {
		// Release: a hint for scans; see above.
		atomicx.StoreRelease(&r.cons.pos, h)
	}
}

func (s *selectReceiver) done(n uint64, bytes int) {
	s.own.count(n, bytes)
	s.freedDone()
}

// freedDone wakes producers for the slots freed since the last done:
// every sleeping one. Slots are freed out of order here, so one freed slot
// may be the last that held up many (those after it were free already),
// and producers sleep in order of nothing: waking as many as were freed
// could leave asleep one that could go on.
func (s *selectReceiver) freedDone() {
	if s.freed > 0 {
		if s.r.maySleep(producerSide) {
			s.r.wakeAll(producerSide)
		}
		s.freed = 0
	}
}

func (s *selectReceiver) redelivered(uint64) bool {
	if !s.flagged {
		return false
	}
	s.flagged = false
	s.r.ctrl.redelivered.Add(1) // relaxed would do: a statistics counter
	return true
}

func (s *selectReceiver) receiveOne(buf []byte) (int, int64, bool, error) {
	return receiveOne(s, s.r, buf)
}

// close gives back a message we own and did not deliver. One looked at in
// place and not released (Consumer.closeLocal says so by flagging it
// first) is flagged for its next consumer. Then the line owns nothing.
func (s *selectReceiver) close() {
	if s.cur != 0 {
		s.disown(s.cur - 1)
	}
	// Release, SYNC(claim): nothing named, nothing owned.
	atomicx.StoreRelease(&s.own.peek, 0)
	atomicx.StoreRelease(&s.own.claim, 0)
}

// abandonPeek marks the message we look at in place as seen, before close
// gives it back: the caller may have acted on it.
func (s *selectReceiver) abandonPeek(pos uint64) {
	d := s.r.descs.At(pos & s.r.mask)
	d.flags |= descRedelivered // we own the slot: plain memory is ours
}

// recoverPeers is the scan's clean-up for a selective consumer: the dead
// are marked and dead producers' claims recovered, and what dead
// consumers owned is given back.
func (s *selectReceiver) recoverPeers(views []lineView) (bool, error) {
	progress, err := s.h.reapDead(views)
	if err != nil {
		return progress, err
	}
	r := s.r
	first, count := r.lines(consumerSide)
	for j := first; j < first+count; j++ {
		v := views[j]
		if j == s.h.idx || v.claim == 0 || !v.dead() {
			continue
		}
		if r.lock(j) != nil {
			continue // another consumer is at it, or took the line
		}
		e := r.roles.At(uint64(j))
		// Acquire: the line as its dead holder, or a reaper, left it; we
		// hold its lock.
		st := e.state.Load()
		if e.claim.Load() != 0 && status(st) != roleFree && status(st) != roleClosed {
			if status(st) == roleActive {
				// Release: peers see a death, not a live holder.
				st = next(st, roleDead)
				atomicx.StoreRelease(&e.state, st)
				r.ctrl.reaped.Add(1) // relaxed would do: a statistics counter
			}
			r.giveBack(j, st)
			progress = true
		}
		r.unlock(j)
	}
	if progress {
		r.wakeAll(consumerSide)
	}
	return progress, nil
}

// giveBack gives back every slot that the dead holder of line i owned, and
// clears the line's claim. st is the line's state: the holder's own
// (roleActive) or the one a reaper made of it (roleDead, one generation
// on). The caller holds the line's lock.
func (r *Ring) giveBack(i int, st uint64) {
	e := r.roles.At(uint64(i))
	token := tokenFor(i, st)
	if status(st) == roleDead {
		token = tokenFor(i, st-1<<8) // its holder's generation: one before the reaper's mark
	}
	// Acquire: the position it named, if any.
	named := e.peek.Load()
	for k := uint64(0); k < r.n; k++ {
		d := r.descs.At(k)
		// Acquire, SYNC(slot-owner): pairs with the CAS in own1.
		if d.owner.Load() != token {
			continue
		}
		// Acquire, SYNC(slot-publish): still the message it named?
		if sq := d.seq.Load(); named != 0 && sq == named && (named-1)&r.mask == k {
			d.flags |= descRedelivered // owned by the dead: nobody else writes it
		}
		step("giveback:flagged")
		// Seq-cst CAS, SYNC(slot-owner): only from the dead token; a live
		// consumer cannot hold it.
		d.owner.CompareAndSwap(token, 0)
	}
	// Release, SYNC(claim): cleaned; nobody need look again.
	atomicx.StoreRelease(&e.peek, 0)
	atomicx.StoreRelease(&e.claim, 0)
	step("giveback:done")
}

// encodeSelector packs a selector into one word for its wakers: the kind
// in the top two bits, the type below. A type too large for 62 bits is
// encoded as Any: a sleeper woken in vain looks and sleeps again, whereas
// one not woken would miss its message.
func encodeSelector(sel ipc.Selector) uint64 {
	t := sel.Type()
	if sel.Kind() == ipc.SelectAny || t <= 0 || t >= 1<<62 {
		return 0
	}
	return uint64(sel.Kind())<<62 | uint64(t)
}

// typeSet summarizes the types of the messages of one publication for the
// wake-up of selective consumers: a sleeper is woken if its selector may
// match one of them. False positives cost a wake-up in vain, never a lost
// one.
type typeSet struct {
	min, max int64
	bloom    uint64 // bit t%64 for each type t
	n        int
}

func (t *typeSet) add(typ int64) {
	if t.n == 0 || typ < t.min {
		t.min = typ
	}
	if t.n == 0 || typ > t.max {
		t.max = typ
	}
	t.bloom |= 1 << (uint64(typ) % 64)
	t.n++
}

// mayMatch reports whether a sleeper with encoded selector v may want one
// of the messages.
func (t typeSet) mayMatch(v uint64) bool {
	if t.n == 0 {
		return false
	}
	typ := int64(v & (1<<62 - 1))
	switch ipc.SelectorKind(v >> 62) {
	case ipc.SelectType:
		return typ >= t.min && typ <= t.max && t.bloom&(1<<(uint64(typ)%64)) != 0
	case ipc.SelectUpTo:
		return t.min <= typ
	case ipc.SelectExcept:
		return t.min != typ || t.max != typ
	}
	return true
}

// selectiveDepth counts the messages published and not consumed in the N
// positions from the head: on a selective ring, consumers finish slots in
// any order, so the cursors do not say it.
func (r *Ring) selectiveDepth(head uint64) int {
	n := 0
	for p := head; p < head+r.n; p++ {
		// Acquire would do; a count for display.
		if r.descs.At(p&r.mask).seq.Load() == p+1 {
			n++
		}
	}
	return n
}
