package ring

import (
	"fmt"
	"math/bits"

	"github.com/shmring/shmring/internal/atomicx"
)

// fanoutReceiver is the discipline of a subscriber of a fan-out ring
// (fanout.go). It owns its cursor, on its own role line: the messages from
// the cursor on are its own to read, with no claim, and it never writes a
// slot. It finishes them by moving the cursor, with one release store per
// call however many it finished (SYNC(fanout-cursor)); under the Block
// policy producers wait for that store.
//
// Every read is checked after the copy, as the reader's half of a sequence
// lock: the slot's seq is loaded again after a load-load barrier, and a
// message whose seq changed is not delivered (SYNC(fanout-overwrite)); the
// next look finds the lap. A message held in place (Peek) is checked at
// Release, which reports ErrOverwritten for it.
//
// A message spanning slots (span.go) is read with its head: the head's
// descriptor says how many slots it takes, and after the copy every one
// of them is checked, continuations first and the head last, so that a
// span of which any slot was marked busy meanwhile is not delivered
// (spanMoved). A continuation found where a head is expected is passed
// over: where the cursor was put by a lap, a join or a resume, it belongs
// to a message whose head is gone, and pastContinuations passes it with
// the lap (counted lost) or the join (not counted); anywhere else it is
// an orphan of a dead producer's hole (span.go), passed like the hole.
//
// Lost counts positions: a message of one slot counts one, a lost span
// of k slots counts k. On a ring whose messages take one slot each that
// is the number of messages; on a spanning ring it is the number of
// slots, exact as long as no producer dies (the positions of a dead
// producer's hole are holes, not losses; a hole whose continuations the
// cursor was put on by a lap count as lost).
//
// The cursor moves only after a message is finished, so a durable
// subscriber that resumes after its death starts where the dead one
// stopped and delivers again what it was reading or looking at in place;
// the latter is named on the line (peek, peekEnd), and flagged.
type fanoutReceiver struct {
	r    *Ring
	h    *handle
	line *roleLine

	gen       uint64 // our line's generation: an evict word equal to it evicts us
	cur       uint64 // next position
	published uint64 // the cursor as last stored
	seq       uint64 // the seq word of the message next returned, as it saw it
	block     bool   // PolicyBlock: producers may sleep on our cursor
	fresh     bool   // a new subscription from the newest message: joined moves it to the tail
	evicted   bool
	pending   uint64 // lost messages not yet reported (LapError)
	overwrote uint64 // held messages that Release found overwritten, since the last done
	overSlots uint64 // their positions
	heldK     uint64 // the slots of the span held in place (Peek), if it spans; else 0
	relErr    bool   // the last Release found one
	flagPos   uint64 // position+1 of the first message a dead predecessor held in place
	flagEnd   uint64 // the end of those
	named     bool   // our line's peek names a position
}

// newFanoutReceiver prepares line h.line, whose lock we hold and whose
// previous state was prev, for a subscriber: resuming the subscription of
// name if the line holds it, or starting a new one.
func newFanoutReceiver(h *handle, prev uint64, name uint64, from From) (*fanoutReceiver, error) {
	r, e := h.r, h.line
	f := &fanoutReceiver{r: r, h: h, line: e, block: r.g.fan.policy == PolicyBlock}
	tail, err := r.fanoutTail()
	if err != nil {
		return nil, err
	}
	// Acquire: what the line's previous holder left; we hold its lock, so
	// it cannot change under us.
	resume := name != 0 && e.name.Load() == name && status(prev) != roleFree
	var cur uint64
	switch {
	case resume:
		// Acquire: the dead or closed holder's cursor; it finished
		// everything below it.
		cur = e.cursor.Load()
		if cur > tail {
			return nil, fmt.Errorf("%w: subscriber line %d is at position %d, past the tail %d", ErrCorrupt, h.local, cur, tail)
		}
		if peek := e.peek.Load(); peek != 0 && peek-1 <= cur && cur < heldEnd(r, e, peek-1) {
			// A run held in place from peek on, of which those below the
			// cursor were released (Consumer.ReleaseFirst).
			f.flagPos, f.flagEnd, f.named = cur+1, heldEnd(r, e, peek-1), true
		} else if peek != 0 {
			// Release: stale (released before its holder left); not ours.
			atomicx.StoreRelease(&e.peek, 0)
		}
		if cur+r.n < tail {
			// Overwritten while nobody held the subscription: lost, with
			// the rest of a span whose head was.
			old := r.pastContinuations(r.oldest(tail))
			f.pending += old - cur
			atomicx.AddRelaxed(&e.lost, old-cur)
			cur = old
		}
	case from == Oldest:
		cur = r.pastContinuations(r.oldest(tail))
	default:
		cur, f.fresh = tail, true
	}
	if !resume {
		// Acquire: the name the line's last subscription had; we hold the
		// line's lock, so nobody else changes it meanwhile.
		old := e.name.Load()
		// Seq-cst store, SYNC(fanout-name): the name, before the look at
		// the other lines (Ring.nameTaken); put back if a live process
		// takes the name elsewhere.
		e.name.Store(name)
		if name != 0 {
			if err := r.nameTaken(h.idx, name); err != nil {
				// Seq-cst store: the closed subscription keeps its name.
				e.name.Store(old)
				return nil, err
			}
		}
		// A new subscription: the line's counters are its own from now on.
		// Relaxed would do: published by the release store of state.
		e.msgs.Store(0)
		e.bytes.Store(0)
		e.lost.Store(0)
		// Release: nothing held in place; the end of a batch an earlier
		// subscription of the line held is not ours (a single Peek names
		// only its position, and a resumed subscription would flag up to
		// that end).
		atomicx.StoreRelease(&e.peekEnd, 0)
		atomicx.StoreRelease(&e.peek, 0)
	}
	// Relaxed would do for both: published by the release store of state
	// in takeLine, before which no producer counts the line.
	e.evict.Store(0)
	atomicx.StoreRelease(&e.cursor, cur)
	f.cur, f.published = cur, cur
	step("fanout:recovered")
	return f, nil
}

// joined finishes the subscription once the line is active: the join
// barrier, then, for a new subscription from the newest message, the
// tail again, since a producer that missed the line may have overwritten
// what was published before it.
func (f *fanoutReceiver) joined() error {
	f.gen = f.h.state >> 8
	joinFence()
	f.r.announceJoin()
	if !f.fresh {
		return nil
	}
	tail, err := f.r.fanoutTail()
	if err != nil {
		return err
	}
	if tail > f.cur {
		f.cur = tail
		f.publish()
	}
	return nil
}

// check reports what a call must say before it looks at the ring: evicted
// (sticky), or lapped since the last report.
func (f *fanoutReceiver) check() error {
	// Acquire, SYNC(fanout-evict): pairs with the producers' CAS in
	// evictAt; loaded once per call, from our own line.
	if f.evicted || f.line.evict.Load() == f.gen {
		f.evicted = true
		return ErrEvicted
	}
	if f.pending > 0 {
		lost := f.pending
		f.pending = 0
		return LapError{Lost: lost}
	}
	return nil
}

func (f *fanoutReceiver) next(uint64) (uint64, bool, error) {
	if err := f.check(); err != nil {
		return 0, false, err
	}
	r := f.r
	start := f.cur
	for k := uint64(0); k <= r.n; k++ {
		c := f.cur
		// Acquire, SYNC(slot-publish): pairs with the producers' release
		// store of seq in publish; the slot's descriptor and payload are
		// visible, until a producer marks it busy again.
		seq := r.descs.At(c & r.mask).seq.Load()
		v := seq &^ seqSkip
		switch {
		case seq == c+1:
			f.seq = seq
			if f.cur != start {
				f.publish() // the holes passed: producers may wait for them
			}
			return c, true, nil
		case seq&seqHeld != 0 || (v-c)&r.mask > 1:
			return 0, false, fmt.Errorf("%w: slot of position %d has sequence %#x", ErrCorrupt, c, seq)
		case v == c+1:
			f.cur++ // a hole: its producer died before filling it
		case v <= c:
			if f.cur != start {
				f.publish()
			}
			return 0, false, nil // not published yet
		default:
			return 0, false, f.lapped(c, v)
		}
	}
	return 0, false, fmt.Errorf("%w: more than %d holes in a row", ErrCorrupt, r.n)
}

// lapped moves the cursor, at c, past the messages that producers
// overwrote: the slot of c holds (or is being written for) the position
// v-1 (or v), so every position up to N before that is gone, and the
// others may still be there. On a spanning ring the rest of a span whose
// head is gone goes with it; if a slot of that rest is being overwritten
// meanwhile, the lap goes on from there, so that a report counts the
// slots of whole messages. It counts them lost and returns the report.
func (f *fanoutReceiver) lapped(c, v uint64) error {
	r := f.r
	next, err := f.lapEnd(c, v)
	for i := uint64(0); err == nil && r.spanning() && i < r.n; i++ {
		p := r.pastContinuations(next)
		// Acquire, SYNC(slot-publish): what the slot where the look
		// stopped holds: a head, a slot not yet published, or one lapped
		// again (each lap moves p on, so the loop ends by the tail).
		seq := r.descs.At(p & r.mask).seq.Load()
		w := seq &^ seqSkip
		if seq&seqHeld != 0 || w <= p+1 || (w-p)&r.mask > 1 {
			next = p
			break
		}
		next, err = f.lapEnd(p, w)
	}
	if err != nil {
		return err
	}
	lost := next - c
	f.cur = next
	// Relaxed, one writer: our line's counter, for Stats.
	atomicx.AddRelaxed(&f.line.lost, lost)
	f.publish()
	f.pending += lost
	step("fanout:lapped")
	return f.check()
}

// lapEnd is the oldest position that may still be in the ring, for a
// subscriber at c that finds in c's slot the seq v of a later lap.
func (f *fanoutReceiver) lapEnd(c, v uint64) (uint64, error) {
	q := v - 1 // published for v-1
	if (v-c)&f.r.mask == 0 {
		q = v // being written for v
	}
	next := q - f.r.n + 1
	tail, err := f.r.fanoutTail()
	switch {
	case err != nil:
		return 0, err
	case q > tail+f.r.n:
		// No producer got there: a scribbled sequence word, which must not
		// move our cursor past every message to come.
		return 0, fmt.Errorf("%w: slot of position %d has sequence %#x, past the tail %d", ErrCorrupt, c, v, tail)
	case tail > next+f.r.n:
		next = tail - f.r.n // lapped further since: the oldest the tail leaves
	}
	return next, nil
}

// moved reports whether the slot of pos no longer holds what next saw:
// the reader's half of the sequence lock.
func (f *fanoutReceiver) moved(pos uint64) bool {
	// SYNC(fanout-overwrite): the barrier orders our reads of the message
	// before the load of seq; pairs with the producers' mark and
	// store-store barrier in fanoutSender.mark.
	atomicx.LoadLoad()
	// Acquire: the seq word again.
	return f.r.descs.At(pos&f.r.mask).seq.Load() != f.seq
}

func (f *fanoutReceiver) take(pos uint64) bool {
	if f.moved(pos) {
		return false // overwritten while we copied it: the next look finds the lap
	}
	f.cur = pos + 1
	return true
}

func (f *fanoutReceiver) hold(pos uint64) bool {
	// Release, SYNC(claim): our line names the message we look at before
	// we hand it out, so that our subscription, resumed, delivers it again.
	atomicx.StoreRelease(&f.line.peek, pos+1)
	f.named = true
	step("fanout:held")
	return true
}

func (f *fanoutReceiver) following(first, k uint64) uint64 {
	if f.heldK != 0 {
		return 0 // a span is held alone
	}
	return publishedAfter(f.r, first, min(k, f.r.n-1))
}

func (f *fanoutReceiver) holdTo(_, end uint64) {
	// Release, SYNC(claim): as hold, for the rest of a batch; never short
	// of what a resumed subscription still owes flagged (flagEnd), which a
	// batch shorter than the dead or closed holder's would otherwise stop
	// naming, as singleReceiver.holdTo.
	atomicx.StoreRelease(&f.line.peekEnd, max(end, f.flagEnd))
}

func (f *fanoutReceiver) release(pos uint64) {
	f.seq = pos + 1 // what a held message's slot holds
	if f.heldK != 0 {
		f.releaseSpan(pos)
		return
	}
	if f.moved(pos) {
		f.overwrote++
		f.overSlots++
	}
	f.cur = pos + 1
}

func (f *fanoutReceiver) done(n uint64, bytes int) {
	f.relErr = f.overwrote > 0
	if f.overwrote > 0 {
		n -= min(f.overwrote, n)
		// Relaxed, one writer: our line's counter, in positions.
		atomicx.AddRelaxed(&f.line.lost, f.overSlots)
		f.overwrote, f.overSlots = 0, 0
	}
	f.publish()
	f.line.count(n, bytes)
	if f.named {
		f.clearNamed()
	}
}

// clearNamed stops our line from naming what we held in place once the
// cursor has passed all of it; a run released in part stays named.
func (f *fanoutReceiver) clearNamed() {
	// Acquire above would do: our own line's peek.
	if peek := f.line.peek.Load(); peek == 0 || f.cur >= heldEnd(f.r, f.line, peek-1) {
		// Release, SYNC(claim): the messages it names are finished, after
		// the cursor.
		atomicx.StoreRelease(&f.line.peek, 0)
		f.named = false
	}
}

// publish stores the cursor if it moved, and wakes producers that sleep
// on it (Block).
func (f *fanoutReceiver) publish() {
	freed := f.cur - f.published
	if freed == 0 {
		return
	}
	f.published = f.cur
	// Release, SYNC(fanout-cursor): pairs with the producers' acquire load
	// of the cursor in refresh; our reads of the slots below it are done
	// before they are refilled.
	atomicx.StoreRelease(&f.line.cursor, f.cur)
	if f.block && f.r.maySleep(producerSide) { // the busy test inline
		f.wakeProducers(f.cur-freed, f.cur)
	}
}

// wakeProducers wakes the sleeping producers that our move of the cursor
// from old to cur may unblock: those whose line names no position they
// wait for (many producers), and those that wait for every subscriber to
// reach a position we have just reached: a producer blocked by the slowest
// subscriber is not woken by every move of the others.
func (f *fanoutReceiver) wakeProducers(old, cur uint64) {
	r := f.r
	sl := r.sleepers[producerSide]
	// Acquire, SYNC(fence-agreement), as in wakeFenced.
	if !r.light || sl.flags.Load() != 0 {
		atomicx.Fence() // SYNC(dekker): our cursor before our loads of the masks
	}
	first, _ := r.lines(producerSide)
	k := cur - old // a slot freed wakes one producer at most, as wakeFenced does
	for w := 0; w < r.words(producerSide) && k > 0; w++ {
		// Seq-cst load, SYNC(dekker): pairs with the CAS in announce.
		for m := sl.masks[w].Load() & r.lineBits(producerSide, w); m != 0 && k > 0; m &= m - 1 {
			local := 64*w + bits.TrailingZeros64(m)
			// Acquire, SYNC(fanout-want): pairs with the release store in
			// fanoutSender.want, made before the sleeper announced itself.
			// A sleeper's want is at most one past the cursor of every
			// subscriber that moves (it is the gate it read, +1), so a
			// move from below it reaches it; a want further on is a
			// scribble, and wakes the sleeper rather than leave it asleep.
			if want := r.roles.At(uint64(first + local)).cursor.Load(); want != 0 && old >= want {
				continue // we were past what it waits for already
			}
			if r.wakeLine(producerSide, local) {
				k--
			}
		}
	}
}

func (f *fanoutReceiver) redelivered(pos uint64) bool {
	if f.flagPos == 0 || pos+1 < f.flagPos || pos >= f.flagEnd {
		return false
	}
	if pos+1 >= f.flagEnd {
		f.flagPos = 0
	}
	f.r.ctrl.redelivered.Add(1) // relaxed would do: a statistics counter
	return true
}

// receiveOne is next, the copy, its check, and done for one message.
func (f *fanoutReceiver) receiveOne(buf []byte) (int, int64, bool, error) {
	passed := uint64(0)
	for attempt := 0; attempt < takeAttempts; attempt++ {
		pos, ok, err := f.next(1)
		if err != nil || !ok {
			return 0, 0, false, err
		}
		typ, msg, err := f.r.message(pos)
		switch {
		case err != nil && f.moved(pos):
			continue // a descriptor torn by an overwrite: the next look laps
		case err == errSpanning:
			n, typ, ok, pass, err := f.receiveSpan(pos, buf)
			if pass && passed < f.r.n {
				passed++ // an orphan, or a span torn by an overwrite
				attempt--
				continue
			}
			return n, typ, ok, err
		case err != nil:
			return 0, 0, false, err
		case len(msg) > cap(buf):
			if f.moved(pos) {
				continue
			}
			return 0, 0, false, tooLarge(len(msg), cap(buf))
		}
		n := copy(buf[:cap(buf)], msg)
		if !f.take(pos) {
			continue
		}
		if f.flagPos != 0 {
			f.redelivered(pos)
		}
		f.done(1, n)
		return n, typ, true, nil
	}
	return 0, 0, false, nil
}

// close has nothing to hand back: the cursor is on the line, where a
// resumed subscription finds it.
func (f *fanoutReceiver) close() {}

// releaseErr is what Release says after done: ErrOverwritten if a held
// message was overwritten before it.
func (f *fanoutReceiver) releaseErr() error {
	if f.relErr {
		f.relErr = false
		return ErrOverwritten
	}
	return nil
}

// fanoutBatch is Consumer.tryBatch for a subscriber: the same loop, with
// the check after each copy, and a lap that ends the batch reported by the
// next call.
func (c *Consumer) fanoutBatch(msgs []Message) (got int, err error) {
	f, r := c.fan, c.h.r
	bytes, passed := 0, uint64(0)
	for attempt := 0; got < len(msgs) && attempt < len(msgs)+takeAttempts; attempt++ {
		pos, ok, nerr := f.next(uint64(len(msgs) - got))
		if nerr != nil || !ok {
			err = nerr
			break
		}
		typ, msg, merr := r.message(pos)
		if merr != nil {
			if f.moved(pos) {
				continue
			}
			if merr == errSpanning {
				ok, pass, serr := f.batchSpan(pos, &msgs[got])
				switch {
				case ok:
					bytes += len(msgs[got].Data)
					got++
					continue
				case pass && passed < r.n:
					passed++ // an orphan, or a span torn by an overwrite
					attempt--
					continue
				}
				err = serr // reported if first, as below
				break
			}
			err = merr
			break
		}
		if len(msg) > cap(msgs[got].Data) {
			if f.moved(pos) {
				continue
			}
			if got == 0 {
				err = tooLarge(len(msg), cap(msgs[got].Data))
			}
			break
		}
		n := copy(msgs[got].Data[:cap(msgs[got].Data)], msg)
		origin, resent := r.meta(pos)
		if !f.take(pos) {
			continue
		}
		msgs[got].Redelivered = f.redelivered(pos) || resent
		msgs[got].Type, msgs[got].Data = typ, msgs[got].Data[:n]
		msgs[got].Origin, msgs[got].Seq = origin, pos
		bytes += n
		got++
	}
	if got > 0 {
		f.done(uint64(got), bytes)
		if le, ok := err.(LapError); ok {
			f.pending += le.Lost // reported by the next call
		}
		return got, nil
	}
	return 0, err
}

// fanoutPeek is Consumer.tryPeek for a subscriber: the message is named on
// the line before it is checked, and checked again after.
func (c *Consumer) fanoutPeek(k uint64) (Peeked, bool, error) {
	f, r := c.fan, c.h.r
	passed := uint64(0)
	for attempt := 0; attempt < takeAttempts; attempt++ {
		pos, ok, err := f.next(k)
		if err != nil || !ok {
			return Peeked{}, false, err
		}
		f.hold(pos)
		typ, msg, err := r.message(pos)
		if err == errSpanning && !f.moved(pos) {
			p, ok, pass, err := c.fanoutPeekSpan(pos)
			if pass && passed < r.n {
				passed++ // an orphan, or a span torn by an overwrite
				attempt--
				continue
			}
			return p, ok, err
		}
		if f.moved(pos) {
			// Overwritten already: not held after all.
			// Release, SYNC(claim): nothing named.
			atomicx.StoreRelease(&f.line.peek, 0)
			f.named = false
			continue
		}
		if err != nil {
			atomicx.StoreRelease(&f.line.peek, 0) // Release, SYNC(claim): nothing named
			f.named = false
			return Peeked{}, false, err
		}
		c.peeked, c.peekPos, c.peekCount, c.peekLen = true, pos, 1, len(msg)
		return c.peekedAt(pos, typ, msg), true, nil
	}
	return Peeked{}, false, nil
}

// Lost returns how many messages this subscriber lost to producers that
// lapped it (or overwrote what it held in place), over the life of its
// subscription, in slots on a ring whose messages span slots (as
// [LapError].Lost); 0 for a consumer of another kind of ring.
func (c *Consumer) Lost() uint64 {
	if c.fan == nil {
		return 0
	}
	// Relaxed would do: our own line's counter.
	return c.fan.line.lost.Load()
}

// Messages spanning slots (span.go), as a subscriber reads them.

// spanAt reads the span whose head next found published at pos: its type,
// its payload in one part or two, the slots it takes, and the type word
// of its last continuation, read now and checked by spanMoved once the
// reads are known to be whole. k is 0 for a continuation: an orphan, or
// the rest of a span whose head the cursor did not see. Every word is
// checked as spanAt checks it (span.go), so that no slice reaches outside
// the payload area whatever the slot holds; a word torn by an overwrite
// may fail a check, which the caller then finds moved.
func (f *fanoutReceiver) spanAt(pos uint64) (typ int64, a, b []byte, k, last uint64, err error) {
	r := f.r
	i := pos & r.mask
	d := r.descs.At(i)
	// Relaxed would do: after the acquire of seq in next; checked after.
	t := d.typ.Load()
	if t&contMark != 0 {
		if back := t &^ contMark; back == 0 || back >= r.maxSpan() {
			return 0, nil, nil, 0, 0, fmt.Errorf("%w: slot %d is a continuation %d slots after its head, messages span at most %d", ErrCorrupt, i, back, r.maxSpan())
		}
		return 0, nil, nil, 0, 0, nil
	}
	size, flags := int(d.size), d.flags
	switch {
	case int64(t) <= 0:
		return 0, nil, nil, 0, 0, fmt.Errorf("%w: slot %d holds a message of type %d", ErrCorrupt, i, int64(t))
	case flags&^descRedelivered != descSpan || size <= r.g.oneSlot() || size > r.g.maxMessage:
		return 0, nil, nil, 0, 0, fmt.Errorf("%w: slot %d holds a %d-byte span with flags %#x, spans hold %d to %d bytes", ErrCorrupt, i, size, flags, r.g.oneSlot()+1, r.g.maxMessage)
	}
	k = r.spanOf(size)
	// Relaxed: the last continuation's type word, checked by spanMoved
	// after its seq says the slot still holds it.
	last = r.descs.At((pos + k - 1) & r.mask).typ.Load()
	off, area := int(i)*r.slot, len(r.payload)
	if end := off + size; end <= area {
		return int64(t), r.payload[off:end:end], nil, k, last, nil
	}
	rest := off + size - area
	return int64(t), r.payload[off:area:area], r.payload[:rest:rest], k, last, nil
}

// spanMoved is moved for the span of k slots at pos, whose last
// continuation's type word spanAt read as last: the reader's half of the
// sequence lock over every slot of the span. It reports whether any slot
// no longer holds what it held (a producer marked it busy, or published
// it, for a later lap), in which case nothing read may be delivered; a
// slot that holds what no producer writes is ErrCorrupt.
func (f *fanoutReceiver) spanMoved(pos, k, last uint64) (bool, error) {
	r := f.r
	// SYNC(fanout-overwrite): the barrier orders our reads of the span
	// before the loads of seq; pairs with the producers' marks and
	// store-store barrier in fanoutSender.mark.
	atomicx.LoadLoad()
	lapped, bad, badSeq := false, false, uint64(0)
	for j := k - 1; j >= 1; j-- {
		p := pos + j
		// Acquire, SYNC(span-publish): pairs with the release store in
		// publishSpanSlots; published for p before the head, so at least
		// p+1 while the head holds pos.
		seq := r.descs.At(p & r.mask).seq.Load()
		switch {
		case seq == p+1:
		case seq&seqHeld == 0 && seq&^seqSkip >= p+r.n:
			lapped = true // marked, or refilled, for a later lap
		default:
			bad, badSeq = true, seq
		}
	}
	// Acquire, last: the head, whose mark precedes every mark of a
	// continuation of the same lap (one producer claims in order) or, with
	// many producers, is behind the gate with them.
	if r.descs.At(pos&r.mask).seq.Load() != f.seq {
		return true, nil // the head moved: whatever we read is torn
	}
	switch {
	case bad:
		return false, fmt.Errorf("%w: a continuation of the span at position %d has sequence %#x", ErrCorrupt, pos, badSeq)
	case lapped:
		return true, nil
	case last != contMark|(k-1):
		return false, fmt.Errorf("%w: slot %d of the span at position %d has type word %#x, not continuation %d", ErrCorrupt, (pos+k-1)&r.mask, pos, last, k-1)
	}
	return false, nil
}

// passOrphan moves the cursor past the continuation at pos, which the
// receive calls found where a head is expected: its head was a hole. A
// slot that no longer holds what next saw is not passed: its type word
// may be a later lap's, written over a head (the next look finds the lap,
// which counts that message lost).
func (f *fanoutReceiver) passOrphan(pos uint64) {
	if f.moved(pos) {
		return
	}
	f.cur = pos + 1
	f.publish()
}

// receiveSpan is receiveOne's path for the span at pos: delivered into
// buf, or passed (pass: an orphan, or a span torn by an overwrite, which
// the next look finds lapped).
func (f *fanoutReceiver) receiveSpan(pos uint64, buf []byte) (n int, typ int64, ok, pass bool, err error) {
	typ, a, b, k, last, err := f.spanAt(pos)
	switch {
	case err != nil:
		moved := f.moved(pos)
		return 0, 0, false, moved, orNil(err, !moved)
	case k == 0:
		f.passOrphan(pos)
		return 0, 0, false, true, nil
	case len(a)+len(b) > cap(buf):
		if moved, err := f.spanMoved(pos, k, last); moved || err != nil {
			return 0, 0, false, moved, err
		}
		return 0, 0, false, false, tooLarge(len(a)+len(b), cap(buf))
	}
	n = copy(buf[:cap(buf)], a)
	n += copy(buf[n:cap(buf)], b)
	step("span:copied")
	if moved, err := f.spanMoved(pos, k, last); moved || err != nil {
		return 0, 0, false, moved, err
	}
	f.cur = pos + k
	if f.flagPos != 0 {
		f.redelivered(pos)
	}
	f.done(1, n)
	return n, typ, true, false, nil
}

// orNil is err if keep, nil otherwise.
func orNil(err error, keep bool) error {
	if keep {
		return err
	}
	return nil
}

// batchSpan is fanoutBatch's path for the span at pos: copied into m, or
// passed as receiveSpan passes it.
func (f *fanoutReceiver) batchSpan(pos uint64, m *Message) (ok, pass bool, err error) {
	r := f.r
	typ, a, b, k, last, err := f.spanAt(pos)
	switch {
	case err != nil:
		moved := f.moved(pos)
		return false, moved, orNil(err, !moved)
	case k == 0:
		f.passOrphan(pos)
		return false, true, nil
	case len(a)+len(b) > cap(m.Data):
		if moved, err := f.spanMoved(pos, k, last); moved || err != nil {
			return false, moved, err
		}
		return false, false, tooLarge(len(a)+len(b), cap(m.Data))
	}
	n := copy(m.Data[:cap(m.Data)], a)
	n += copy(m.Data[n:cap(m.Data)], b)
	origin, resent := r.meta(pos)
	if moved, err := f.spanMoved(pos, k, last); moved || err != nil {
		return false, moved, err
	}
	f.cur = pos + k
	m.Redelivered = f.redelivered(pos) || resent
	m.Type, m.Data, m.Origin, m.Seq = typ, m.Data[:n], origin, pos
	return true, false, nil
}

// fanoutPeekSpan is fanoutPeek's path for the span at pos, which hold has
// named on our line: held in place, or passed as receiveSpan passes it
// (and then not named any more).
func (c *Consumer) fanoutPeekSpan(pos uint64) (p Peeked, ok, pass bool, err error) {
	f := c.fan
	typ, a, b, k, last, err := f.spanAt(pos)
	moved := false
	switch {
	case err != nil:
		moved = f.moved(pos)
		err = orNil(err, !moved)
	case k != 0:
		moved, err = f.spanMoved(pos, k, last)
	}
	if err != nil || moved || k == 0 {
		// Release, SYNC(claim): nothing named.
		atomicx.StoreRelease(&f.line.peek, 0)
		f.named = false
		if k == 0 && err == nil {
			f.passOrphan(pos)
			return Peeked{}, false, true, nil
		}
		return Peeked{}, false, moved, err
	}
	f.heldK = k
	step("span:held")
	c.peeked, c.peekPos, c.peekCount, c.peekLen = true, pos, 1, len(a)+len(b)
	p = c.peekedAt(pos, typ, a)
	p.Wrapped = b
	return p, true, false, nil
}

// releaseSpan is release for a span held in place: checked once more,
// every slot, so that Release reports ErrOverwritten for a span of which
// any slot was overwritten while the caller read it.
func (f *fanoutReceiver) releaseSpan(pos uint64) {
	k := f.heldK
	f.heldK = 0
	// The type word of the last continuation, as spanMoved wants it: it
	// was checked at the Peek, and a slot refilled since fails the seq
	// check before the type word is looked at.
	last := contMark | (k - 1)
	if moved, err := f.spanMoved(pos, k, last); moved || err != nil {
		f.overwrote++
		f.overSlots += k
	}
	f.cur = pos + k
}

// pastContinuations returns the first position from from on that is not
// a published continuation of a span whose head is before from: where a
// subscriber put at from (by a lap, a join from the oldest message, or a
// resume) goes on, the rest of a message whose head it never saw being
// passed with it. At most maxSpan-1 positions are passed; each slot's
// type word is read between two loads of its seq, so a slot refilled
// meanwhile ends the look (the next look finds the lap).
func (r *Ring) pastContinuations(from uint64) uint64 {
	if !r.spanning() {
		return from
	}
	p := from
	for limit := from + r.maxSpan() - 1; p < limit; p++ {
		d := r.descs.At(p & r.mask)
		// Acquire, SYNC(span-publish): pairs with the release store in
		// publishSpanSlots; the type word is the continuation's.
		seq := d.seq.Load()
		if seq != p+1 {
			break
		}
		// Relaxed: checked by the load of seq again below.
		t := d.typ.Load()
		// SYNC(fanout-overwrite): the type word before the second load of
		// seq; pairs with the producers' mark and barrier.
		atomicx.LoadLoad()
		// Acquire: the slot still holds what it held.
		if d.seq.Load() != seq {
			break
		}
		if back := t &^ contMark; t&contMark == 0 || back >= r.maxSpan() || back <= p-from {
			break // a head, a scribble (the receive reports it), or one of a head at or after from
		}
	}
	return p
}
