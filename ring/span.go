package ring

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/shmring/shmring/internal/atomicx"
)

// Messages spanning slots.
//
// A ring created with Options.SlotSize below MaxMessage (featureSpanning)
// carries a message larger than a slot's payload in k = ⌈size/SlotSize⌉
// consecutive positions, p to p+k-1, claimed together (all or nothing),
// published together and consumed together:
//
//	position   descriptor                                   payload area
//	p          typ, size = whole message, flags descSpan    from slot(p)'s part on, contiguous,
//	p+i        typ word = contMark|i (a continuation)       wrapping at the area's end to slot 0
//
// The payload is one run of bytes from slot(p)'s part of the payload area:
// since k ≤ N/2 and the area holds exactly N parts, the run wraps at most
// once, where the slot index wraps, and is read in place as one slice, or
// two at the wrap (Peeked.Wrapped).
//
// Order. The producer writes every descriptor and the payload, then
// publishes the continuations (release stores of their seq, last first)
// and the head last, so a consumer that sees the head published sees every
// continuation published too. Consumers free the head first and the
// continuations after it; where more than one process may free a
// continuation (a selective ring, or a consumer serving another's claim),
// each continuation is freed by CAS, so that it is freed once.
//
// Holes. A continuation is never delivered: it is read with its head. One
// whose head will never be delivered is an orphan, skipped like a slot
// given up: that is what a producer killed between publishing the
// continuations and the head leaves, once its claim is recovered (the head,
// unpublished, is marked skipped) or, for the only producer, once its
// successor finds the continuations after the tail (tailAfter). So a
// message is received whole or not at all. A consumer tells an orphan by
// where it finds it: the only consumer at its head, and a consumer among
// many in its own claim, find a continuation before its head only if the
// head was skipped (a claim at the head takes whole spans, see claimHead);
// a consumer serving another's claim, and a selective one, look at the head
// (headGone).
//
// Crashes on the consuming side change nothing: the head stays published
// until it is freed, so a consumer that dies while copying or looking at
// a span leaves it whole for its successor, and one that dies after
// freeing the head leaves only orphans.

// Descriptor flags of spanning messages.
const (
	descSpan = 4 // the head of a message spanning slots: size is the whole message
	descCont = 8 // a continuation: its typ word is contMark | its distance from the head
)

// contMark in a continuation's typ word: no message type has the top bit.
const contMark = 1 << 63

// errSpanning is message's report of a slot that is part of a spanning
// message, for the caller's span path; never returned to a caller of the
// package.
var errSpanning = errors.New("ring: spanning message")

// spanning reports whether the ring may hold messages spanning slots.
func (r *Ring) spanning() bool { return r.g.slot != 0 }

// oneSlot is the largest message that fits one slot.
func (g geometry) oneSlot() int {
	if g.slot == 0 {
		return g.maxMessage
	}
	return max(g.slot, InlineCap)
}

// spanOf is the number of slots a message of n bytes takes.
func (r *Ring) spanOf(n int) uint64 {
	if r.g.slot == 0 || n <= r.g.oneSlot() {
		return 1
	}
	return uint64((n + r.slot - 1) / r.slot)
}

// maxSpan is the most slots a message of this ring spans.
func (r *Ring) maxSpan() uint64 { return r.spanOf(r.g.maxMessage) }

// writeSpan fills the k slots from pos with one message spanning them. It
// writes plain memory and relaxed typ words; publishSpan publishes them.
func (r *Ring) writeSpan(pos, k uint64, typ int64, data []byte, origin uint64, resent bool) {
	off := int(pos&r.mask) * r.slot
	n := copy(r.payload[off:], data)
	copy(r.payload, data[n:])
	for i := uint64(1); i < k; i++ {
		d := r.descs.At((pos + i) & r.mask)
		// Relaxed: published by the release store of seq, like the rest.
		atomicx.StoreRelaxed(&d.typ, contMark|i)
		d.size, d.flags, d.origin = 0, descCont, 0
	}
	d := r.descs.At(pos & r.mask)
	// Relaxed: as above.
	atomicx.StoreRelaxed(&d.typ, uint64(typ))
	d.size, d.flags, d.origin = uint32(len(data)), descSpan, origin
	if resent {
		d.flags |= descRedelivered
	}
}

// publishSpanSlots publishes the continuations of the span of k slots at
// pos, last first; the caller publishes the head after them.
func (r *Ring) publishSpanSlots(pos, k uint64) {
	for i := k - 1; i >= 1; i-- {
		// Release, SYNC(span-publish): pairs with the acquire load of the
		// continuation's seq in spanAt; its descriptor is visible, and the
		// head's release store, after this one, orders it before the head.
		atomicx.StoreRelease(&r.descs.At((pos+i)&r.mask).seq, pos+i+1)
	}
}

// spanAt reads the message of the spanning ring at pos, whose slot message
// found to be part of a span: a head, whose whole message it returns in
// one or two parts with the number of slots it spans, or a continuation
// whose head the caller has passed, an orphan, for which k is 0. Every
// word is checked: a size, a flag or a continuation no producer writes is
// ErrCorrupt, and no slice reaches outside the payload area.
func (r *Ring) spanAt(pos uint64) (typ int64, a, b []byte, k uint64, err error) {
	i := pos & r.mask
	d := r.descs.At(i)
	// Plain load on amd64, relaxed would do: the slot is ours, after the
	// acquire of its seq.
	t := d.typ.Load()
	if t&contMark != 0 {
		if back := t &^ contMark; back == 0 || back >= r.maxSpan() {
			return 0, nil, nil, 0, fmt.Errorf("%w: slot %d is a continuation %d slots after its head, messages span at most %d", ErrCorrupt, i, back, r.maxSpan())
		}
		return 0, nil, nil, 0, nil
	}
	size, flags := int(d.size), d.flags
	switch {
	case int64(t) <= 0:
		return 0, nil, nil, 0, fmt.Errorf("%w: slot %d holds a message of type %d", ErrCorrupt, i, int64(t))
	case flags&^descRedelivered != descSpan || size <= r.g.oneSlot() || size > r.g.maxMessage:
		return 0, nil, nil, 0, fmt.Errorf("%w: slot %d holds a %d-byte span with flags %#x, spans hold %d to %d bytes", ErrCorrupt, i, size, flags, r.g.oneSlot()+1, r.g.maxMessage)
	}
	// The head's publication orders the continuations' before it, and
	// nothing here depends on them: the payload's place and length come
	// from the head alone, within the payload area whatever they say. So
	// only the last continuation is looked at, a check of the span's
	// extent that costs one line, not one per slot.
	k = r.spanOf(size)
	j := k - 1
	c := r.descs.At((pos + j) & r.mask)
	// Acquire, SYNC(span-publish): pairs with the release store in
	// publishSpanSlots; the continuation is the head's, published with it.
	if seq := c.seq.Load(); seq != pos+j+1 {
		return 0, nil, nil, 0, fmt.Errorf("%w: continuation %d of the span at position %d has sequence %#x", ErrCorrupt, j, pos, seq)
	}
	// Relaxed would do: ordered by the acquire above.
	if ct := c.typ.Load(); ct != contMark|j {
		return 0, nil, nil, 0, fmt.Errorf("%w: slot %d of the span at position %d has type word %#x, not continuation %d", ErrCorrupt, (pos+j)&r.mask, pos, ct, j)
	}
	off, area := int(i)*r.slot, len(r.payload)
	if end := off + size; end <= area {
		return int64(t), r.payload[off:end:end], nil, k, nil
	}
	rest := off + size - area
	return int64(t), r.payload[off:area:area], r.payload[:rest:rest], k, nil
}

// headGone reports, for a published continuation at pos whose typ word was
// t, whether its head will never be delivered (skipped, or consumed: then
// the continuation is an orphan), and whether it is not published yet (its
// producer is between the two, or died there and its recoverer has not
// come by). Only for the many-consumer disciplines, whose consumers mark
// a consumed slot in its seq.
func (r *Ring) headGone(pos, t uint64) (gone, inFlight bool) {
	h := pos - t&^contMark
	// Acquire, SYNC(slot-publish): what the head's producer, or a consumer
	// after it, left there.
	seq := r.descs.At(h & r.mask).seq.Load()
	base := seq &^ (seqSkip | seqHeld)
	return base == h+1 && seq&seqSkip != 0 || base >= h+r.n, base <= h
}

// spanReceiver is what a consumer discipline does for spanning messages.
type spanReceiver interface {
	// takeSpan finishes the k slots from pos, a span whose message the
	// caller has copied out, head first; false as for take.
	takeSpan(pos, k uint64) bool
	// holdSpan extends the hold of pos, which hold marked, to its span.
	holdSpan(pos, k uint64)
	// releaseSpan finishes a span that hold and holdSpan marked.
	releaseSpan(pos, k uint64)
}

// errNoSpans is a discipline's refusal of a spanning message.
func errNoSpans(d receiver) error {
	return fmt.Errorf("%w: consumers of this kind (%T) do not receive messages spanning slots", ErrInvalid, d)
}

// receiveSpan is receiveOne's path for a slot that is part of a span:
// it delivers the span at pos into buf, or passes an orphan (pass).
func receiveSpan(d receiver, r *Ring, pos uint64, buf []byte) (n int, typ int64, ok, pass bool, err error) {
	sd, isSpan := d.(spanReceiver)
	if !isSpan {
		return 0, 0, false, false, errNoSpans(d)
	}
	typ, a, b, k, err := r.spanAt(pos)
	switch {
	case err != nil:
		return 0, 0, false, false, err
	case k == 0:
		d.take(pos) // an orphan: given back unread
		d.done(0, 0)
		return 0, 0, false, true, nil
	case len(a)+len(b) > cap(buf):
		return 0, 0, false, false, tooLarge(len(a)+len(b), cap(buf))
	}
	n = copy(buf[:cap(buf)], a)
	n += copy(buf[n:cap(buf)], b)
	step("span:copied")
	if !sd.takeSpan(pos, k) {
		return 0, 0, false, true, nil
	}
	d.redelivered(pos)
	d.done(1, n)
	return n, typ, true, false, nil
}

// batchSpan is tryBatch's path for a slot that is part of a span: the span
// at pos copied into m, or an orphan passed (pass).
func (c *Consumer) batchSpan(pos uint64, m *Message) (ok, pass bool, err error) {
	r := c.h.r
	sd, isSpan := c.d.(spanReceiver)
	if !isSpan {
		return false, false, errNoSpans(c.d)
	}
	typ, a, b, k, err := r.spanAt(pos)
	switch {
	case err != nil:
		return false, false, err
	case k == 0:
		c.d.take(pos)
		c.d.done(0, 0)
		return false, true, nil
	case len(a)+len(b) > cap(m.Data):
		return false, false, tooLarge(len(a)+len(b), cap(m.Data))
	}
	n := copy(m.Data[:cap(m.Data)], a)
	n += copy(m.Data[n:cap(m.Data)], b)
	origin, resent := r.meta(pos)
	if !sd.takeSpan(pos, k) {
		return false, true, nil
	}
	m.Redelivered = c.d.redelivered(pos) || resent
	m.Type, m.Data, m.Origin, m.Seq = typ, m.Data[:n], origin, pos
	return true, false, nil
}

// peekSpan is tryPeek's path for a slot that is part of a span, which hold
// has marked: the span at pos held in place, or an orphan passed (pass).
func (c *Consumer) peekSpan(pos uint64) (p Peeked, ok, pass bool, err error) {
	r := c.h.r
	sd, isSpan := c.d.(spanReceiver)
	if !isSpan {
		c.d.release(pos)
		c.d.done(0, 0)
		return Peeked{}, false, false, errNoSpans(c.d)
	}
	typ, a, b, k, err := r.spanAt(pos)
	if err != nil || k == 0 {
		c.d.release(pos) // an orphan, given back unread; or an error
		c.d.done(0, 0)
		return Peeked{}, false, err == nil, err
	}
	sd.holdSpan(pos, k)
	c.peeked, c.peekPos, c.peekCount, c.peekLen, c.peekSlots = true, pos, 1, len(a)+len(b), k
	p = c.peekedAt(pos, typ, a)
	p.Wrapped = b
	return p, true, false, nil
}

// releaseSpan is releasePeeked for a held span.
func (c *Consumer) releaseSpan() {
	c.d.(spanReceiver).releaseSpan(c.peekPos, c.peekSlots)
	c.peekSlots = 0
	c.d.done(1, c.peekLen)
}

// The disciplines' span steps.

func (s *singleReceiver) takeSpan(pos, k uint64) bool {
	s.head = pos + k
	return true
}

func (s *singleReceiver) holdSpan(pos, k uint64) { s.holdTo(pos, pos+k) }

func (s *singleReceiver) releaseSpan(pos, k uint64) { s.head = pos + k }

func (m *multiReceiver) takeSpan(pos, k uint64) bool {
	if m.checked && m.curSeq&seqHeld != 0 && !m.acquireSlot(pos) {
		return false // a live consumer took it over meanwhile: try again
	}
	m.noteSeen(pos)
	ok := m.free(pos, m.curSeq)
	if m.checked {
		m.releaseSlot(pos)
	}
	if ok {
		m.freeRest(pos, k)
	}
	m.finishAt(pos + k)
	return ok
}

func (m *multiReceiver) holdSpan(pos, k uint64) {
	if !m.checked {
		m.holdTo(pos, pos+k)
	}
}

func (m *multiReceiver) releaseSpan(pos, k uint64) {
	s := m.r.descs.At(pos & m.r.mask)
	// Release, SYNC(slot-release): the head is ours alone (claimed at the
	// head, or held by its owner word), as in release.
	atomicx.StoreRelease(&s.seq, pos+m.r.n)
	m.freed++
	if m.checked {
		m.releaseSlot(pos)
	}
	m.freeRest(pos, k)
	if !m.checked && m.peekSet && pos+k >= m.peekEnd {
		// Release, SYNC(claim): finished, the last of what the line names,
		// after the slots.
		atomicx.StoreRelease(&m.src.peek, 0)
		m.peekSet = false
	}
	m.finishAt(pos + k)
}

// freeRest frees the continuations of the span at pos, after its head: by
// CAS when serving another's claim, where an orphan-looking continuation
// (its head freed) may be freed by another consumer too.
func (m *multiReceiver) freeRest(pos, k uint64) {
	for j := uint64(1); j < k; j++ {
		m.free(pos+j, pos+j+1)
	}
}

// finishAt moves the claim we serve past end, and lets it go once done.
func (m *multiReceiver) finishAt(end uint64) {
	if m.at < end {
		m.at = end
	}
	if m.at >= m.end {
		m.letGo()
	}
}

// spanEnd extends a claim of the n published positions from pos over the
// continuations that follow it: those of a span whose head is in the
// claim (published with it, so published now), or orphans. A claim at the
// head thus never splits a span.
func (r *Ring) spanEnd(pos, n uint64) uint64 {
	for limit := n + r.maxSpan(); n < limit && n < r.n; n++ {
		d := r.descs.At((pos + n) & r.mask)
		// Acquire, SYNC(span-publish): pairs with the release store in
		// publishSpanSlots. The typ word is the continuation's: its slot
		// cannot be refilled before the head, which is at or behind pos,
		// moves past it (the caller's CAS of the head checks that).
		if d.seq.Load() != pos+n+1 || d.typ.Load()&contMark == 0 {
			break
		}
	}
	return n
}

// spanCover is ours' verdict on a continuation at pos of another's claim,
// whose seq says it is published: a continuation of a head that is still
// to be delivered is not ours to touch (owned; its head's consumer frees
// it), nor one whose head is not yet published (unsure); an orphan is
// decided like any position.
func (m *multiReceiver) spanCover(pos uint64) (cover, bool) {
	// Relaxed would do: after the acquire of seq in front.
	t := m.r.descs.At(pos & m.r.mask).typ.Load()
	if t&contMark == 0 {
		return notCovered, false
	}
	gone, inFlight := m.r.headGone(pos, t)
	switch {
	case inFlight:
		return unsure, true
	case !gone:
		return owned, true
	}
	return notCovered, false
}

func (s *selectReceiver) takeSpan(pos, k uint64) bool {
	s.finish(pos)
	s.freeRest(pos, k)
	return true
}

func (s *selectReceiver) holdSpan(uint64, uint64) {}

func (s *selectReceiver) releaseSpan(pos, k uint64) {
	s.finish(pos)
	s.freeRest(pos, k)
}

// freeRest frees the continuations of the span at pos, whose head finish
// has freed: by CAS, since a scan that finds them first frees them as
// orphans.
func (s *selectReceiver) freeRest(pos, k uint64) {
	r := s.r
	for j := uint64(1); j < k; j++ {
		// Release by CAS, SYNC(slot-release): freed once, by us or a scan.
		if r.descs.At((pos+j)&r.mask).seq.CompareAndSwap(pos+j+1, pos+j+r.n) {
			s.freed++
		}
	}
}

// scanSpan is find's look at a published slot of a spanning ring whose typ
// word t marks a continuation: an orphan is freed, by CAS (a consumer
// finishing its span may free it too); one whose head is to be delivered
// is left to that head's consumer. It reports whether the head is not
// published yet: a message claimed before the scan and still in flight.
func (s *selectReceiver) scanSpan(p, sq, t uint64) (inFlight bool) {
	r := s.r
	gone, inFlight := r.headGone(p, t)
	if gone {
		// Release by CAS, SYNC(slot-release): freed once.
		if r.descs.At(p&r.mask).seq.CompareAndSwap(sq, p+r.n) {
			s.freed++
		}
	}
	return inFlight
}

// The producers' span steps.

// spanSender is what a producer discipline does for spanning messages.
type spanSender interface {
	// claimAll claims k ≥ 1 consecutive free positions, all or none: pos
	// and true, or false if k are not free now. No system call.
	claimAll(k uint64) (pos uint64, ok bool, err error)
	// publishSpan publishes the span of k positions at pos, which claimAll
	// returned and writeSpan filled, continuations first, and wakes
	// consumers that sleep. The claim had skipped more positions after
	// them (a Commit shorter than its ReserveSpan), which it gives up
	// after the head (giveUpRest).
	publishSpan(pos, k, skipped uint64, bytes int)
}

func (s *singleSender) claimAll(k uint64) (uint64, bool, error) {
	pos, n, err := s.claim(k)
	return pos, n == k && err == nil, err // a single producer's claim takes nothing
}

func (s *singleSender) publishSpan(pos, k, skipped uint64, bytes int) {
	r := s.r
	r.publishSpanSlots(pos, k)
	step("span:continued")
	// Release, SYNC(slot-publish): as in publish, after the continuations.
	atomicx.StoreRelease(&r.descs.At(pos&r.mask).seq, pos+1)
	r.giveUpRest(pos+k, skipped)
	s.advance(k+skipped, bytes)
	if r.maySleep(consumerSide) {
		r.wakePublished(pos, 1) // one message: the head's type for selectors
	}
}

func (s *multiSender) claimAll(k uint64) (uint64, bool, error) {
	pos, n, named, err := s.tryClaim(k, true)
	if named && n == 0 {
		// Release, SYNC(claim): as in claim, nothing claimed after all.
		atomicx.StoreRelease(&s.line.claim, 0)
	}
	return pos, n == k && err == nil, err
}

func (s *multiSender) publishSpan(pos, k, skipped uint64, bytes int) {
	r := s.r
	r.publishSpanSlots(pos, k)
	step("span:continued")
	// Release, SYNC(slot-publish): as in publish, after the continuations.
	atomicx.StoreRelease(&r.descs.At(pos&r.mask).seq, pos+1)
	r.giveUpRest(pos+k, skipped)
	// Release, SYNC(claim): the claim is finished, after its commits.
	atomicx.StoreRelease(&s.line.claim, 0)
	s.line.count(1, bytes)
	if r.maySleep(consumerSide) {
		r.wakePublished(pos, 1)
	}
}

// spanSender returns the producer's discipline for spans.
func (p *Producer) spanSender() (spanSender, error) {
	if d, ok := p.d.(spanSender); ok {
		return d, nil
	}
	return nil, fmt.Errorf("%w: producers of this kind (%T) do not send messages spanning slots", ErrInvalid, p.d)
}

// trySpan sends a message that spans slots, with a batch send's origin
// tag and flag, if its slots are free now.
func (p *Producer) trySpan(typ int64, data []byte, origin uint64, resent bool) (bool, error) {
	d, err := p.spanSender()
	if err != nil {
		return false, err
	}
	r := p.h.r
	k := r.spanOf(len(data))
	pos, ok, err := d.claimAll(k)
	if !ok || err != nil {
		return false, err
	}
	step("span:claimed")
	r.writeSpan(pos, k, typ, data, origin, resent)
	d.publishSpan(pos, k, 0, len(data))
	return true, nil
}

// sentOrFull is TrySend's error for trySpan's result.
func sentOrFull(ok bool, err error) error {
	if !ok && err == nil {
		return ErrFull
	}
	return err
}

// sendSpan sends a message that spans slots, waiting for its slots to be
// free as Send waits for one.
func (p *Producer) sendSpan(ctx context.Context, typ int64, data []byte, origin uint64, resent bool) error {
	ok, err := p.trySpan(typ, data, origin, resent)
	if ok || err != nil {
		return err
	}
	werr := p.h.waitFor(ctx, func() bool {
		ok, err = p.trySpan(typ, data, origin, resent)
		return ok || err != nil
	})
	if werr != nil {
		return werr
	}
	return err
}

// singleRun is the number of messages from msgs[0] on that fit one slot
// each.
func (p *Producer) singleRun(msgs []Message) int {
	n := 0
	for n < len(msgs) && uint(len(msgs[n].Data)) <= uint(p.one) {
		n++
	}
	return n
}

// trySpanBatch is TrySendBatch for a batch with messages spanning slots:
// each run of messages that fit a slot is claimed and published at once,
// each spanning message on its own.
func (p *Producer) trySpanBatch(msgs []Message) (int, error) {
	sent := 0
	for sent < len(msgs) {
		if run := p.singleRun(msgs[sent:]); run > 0 {
			pos, n, err := p.d.claim(uint64(run))
			if err != nil || n == 0 {
				return batchSentOrFull(sent, err)
			}
			p.writeBatch(pos, msgs[sent:sent+int(n)])
			sent += int(n)
			continue
		}
		m := &msgs[sent]
		ok, err := p.trySpan(m.Type, m.Data, m.Origin, m.Redelivered)
		if !ok || err != nil {
			return batchSentOrFull(sent, err)
		}
		sent++
	}
	return sent, nil
}

// batchSentOrFull is TrySendBatch's result after sent messages.
func batchSentOrFull(sent int, err error) (int, error) {
	if sent == 0 && err == nil {
		return 0, ErrFull
	}
	return sent, err
}

// sendSpanBatch is SendBatch for a batch with messages spanning slots.
func (p *Producer) sendSpanBatch(ctx context.Context, msgs []Message) (int, error) {
	sent := 0
	for sent < len(msgs) {
		if run := p.singleRun(msgs[sent:]); run > 0 {
			pos, n, err := p.claimWait(ctx, uint64(run))
			if err != nil {
				return sent, err
			}
			p.writeBatch(pos, msgs[sent:sent+int(n)])
			sent += int(n)
			continue
		}
		m := &msgs[sent]
		if err := p.sendSpan(ctx, m.Type, m.Data, m.Origin, m.Redelivered); err != nil {
			return sent, err
		}
		sent++
	}
	return sent, nil
}

// ReserveSpan claims the slots a message of n bytes takes, waiting as Send
// does, and returns their room in place: first, then rest where the room
// wraps around the end of the ring's memory (nil otherwise), n bytes in
// all; the caller writes the message into first and then rest, and
// [Producer.Commit] sends it (its length may be less than n) or
// [Producer.Abort] gives it up. On a ring without spanning slots, or for n
// that fits one slot, it is [Producer.Reserve] with the room cut to n.
// Only one reservation may be outstanding per Producer.
//
// Both slices are the ring's shared memory, valid only until Commit, Abort
// or Close, as for Reserve.
func (p *Producer) ReserveSpan(ctx context.Context, n int) (first, rest []byte, err error) {
	entered := p.h.g.enter()
	defer p.h.g.leave()
	if !entered {
		return nil, nil, os.ErrClosed
	}
	if err := p.check(1, n); err != nil {
		return nil, nil, err
	}
	if n < 0 {
		return nil, nil, fmt.Errorf("%w: negative length %d", ErrInvalid, n)
	}
	r := p.h.r
	k := uint64(1) // the slots whose room n bytes need
	if r.spanning() && n > r.slot {
		k = uint64((n + r.slot - 1) / r.slot)
	}
	if k == 1 {
		pos, _, err := p.claimWait(ctx, 1)
		if err != nil {
			return nil, nil, err
		}
		p.reserved, p.resPos, p.resSpan = true, pos, 0
		return p.h.r.reserveBuf(pos)[:n:n], nil, nil
	}
	d, err := p.spanSender()
	if err != nil {
		return nil, nil, err
	}
	var pos uint64
	ok, err := false, error(nil)
	if pos, ok, err = d.claimAll(k); !ok && err == nil {
		werr := p.h.waitFor(ctx, func() bool {
			pos, ok, err = d.claimAll(k)
			return ok || err != nil
		})
		if werr != nil {
			return nil, nil, werr
		}
	}
	if err != nil {
		return nil, nil, err
	}
	p.reserved, p.resPos, p.resSpan, p.resLen = true, pos, k, n
	first, rest = p.h.r.spanRoom(pos, n)
	return first, rest, nil
}

// spanRoom is the payload room of n bytes from the slot of pos on, in one
// or two parts.
func (r *Ring) spanRoom(pos uint64, n int) (first, rest []byte) {
	off, area := int(pos&r.mask)*r.slot, len(r.payload)
	if end := off + n; end <= area {
		return r.payload[off:end:end], nil
	}
	m := off + n - area
	return r.payload[off:area:area], r.payload[:m:m]
}

// commitSpan is Commit of a ReserveSpan, with n bytes written. A message
// shorter than the reservation takes fewer slots; publishSpan gives up
// the slots it does not take after publishing it (giveUpRest).
func (p *Producer) commitSpan(typ int64, n int) error {
	r := p.h.r
	if n > p.resLen {
		return fmt.Errorf("%w: %d bytes, %d reserved", ErrTooLarge, n, p.resLen)
	}
	pos, k := p.resPos, p.resSpan
	km := r.spanOf(n) // the slots the message takes, ≤ k
	for i := uint64(1); i < km; i++ {
		d := r.descs.At((pos + i) & r.mask)
		// Relaxed: published by the release store of seq, like the rest.
		atomicx.StoreRelaxed(&d.typ, contMark|i)
		d.size, d.flags, d.origin = 0, descCont, 0
	}
	d := r.descs.At(pos & r.mask)
	switch {
	case r.spanOf(n) > 1:
		// Relaxed: as above.
		atomicx.StoreRelaxed(&d.typ, uint64(typ))
		d.size, d.flags, d.origin = uint32(n), descSpan, 0
	case n > r.slot:
		// Fits the descriptor, not the slot: moved there, from the room
		// (which may wrap).
		first, rest := r.spanRoom(pos, n)
		copy(d.inline[copy(d.inline[:], first):], rest)
		// Relaxed: as above.
		atomicx.StoreRelaxed(&d.typ, uint64(typ))
		d.size, d.flags, d.origin = uint32(n), descInline, 0
	default:
		r.setSlot(pos, typ, n) // in the slot's payload room, where it was written
	}
	p.reserved, p.resSpan = false, 0
	p.spanDiscipline().publishSpan(pos, km, k-km, n)
	return nil
}

// giveUpRest gives up the n positions from pos on that a Commit shorter
// than its ReserveSpan did not take, as Abort gives up a reservation: a
// selective ring's slots free again, others skipped. publishSpan calls it
// after the message's head, before the tail or the claim moves past them,
// so that a producer killed before or among these stores leaves its
// successor a tail it can continue from: the message published and the
// positions after it either given up already or the tail's to fill
// (tailAfter), or, with many producers, its claim to recover.
func (r *Ring) giveUpRest(pos, n uint64) {
	step("span:trimming")
	for c := pos; c < pos+n; c++ {
		if r.g.selective {
			// Release, SYNC(slot-release): free, as abort makes it.
			atomicx.StoreRelease(&r.descs.At(c&r.mask).seq, c+r.n)
		} else {
			// Release, SYNC(slot-publish): a skip mark, as abort makes.
			atomicx.StoreRelease(&r.descs.At(c&r.mask).seq, (c+1)|seqSkip)
		}
	}
}

// spanDiscipline is spanSender for a discipline that ReserveSpan already
// found to have it.
func (p *Producer) spanDiscipline() spanSender { return p.d.(spanSender) }

// abortSpan gives up the span that ReserveSpan claimed: a single producer's
// tail did not move; many producers mark each position skipped (or, on a
// selective ring, free again), then clear their claim; a fan-out ring's
// producers do the same (fanoutSender.abortSpan).
func (p *Producer) abortSpan() {
	pos, k := p.resPos, p.resSpan
	p.resSpan = 0
	switch s := p.d.(type) {
	case *multiSender:
		s.abortSpan(pos, k)
	case *fanoutSender:
		s.abortSpan(pos, k)
	}
}

func (s *multiSender) abortSpan(pos, k uint64) {
	r := s.r
	for i := uint64(0); i < k; i++ {
		d := r.descs.At((pos + i) & r.mask)
		if r.g.selective {
			// Release, SYNC(slot-release): free again, as abort does.
			atomicx.StoreRelease(&d.seq, pos+i+r.n)
		} else {
			// Release, SYNC(slot-publish): a skip mark, as abort makes.
			atomicx.StoreRelease(&d.seq, (pos+i+1)|seqSkip)
		}
	}
	// Release, SYNC(claim): finished, after every mark.
	atomicx.StoreRelease(&s.line.claim, 0)
	if r.g.selective {
		r.wakeProducers(uint32(k))
	} else if r.maySleep(consumerSide) {
		r.wakeFenced(consumerSide, 1)
	}
}
