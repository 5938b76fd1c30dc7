package ring

import (
	"fmt"
	"time"

	"github.com/shmring/shmring/internal/atomicx"
)

// fanoutSender is the discipline of a producer of a fan-out ring (fanout.go),
// one of many (MPMC, Block policy) or the only one (SPMC). Many producers
// claim positions by moving the shared tail with a CAS, naming the claim on
// their line first, exactly as multiSender does, so that a dead producer's
// claim becomes a hole subscribers skip (recovery.go); the only producer
// owns the tail, as singleSender does, and stores it now and then.
//
// Whether position p may be written is the gate's business, not the
// slot's: under the Block policy p is free once p < gate+N, where the gate
// is the lowest cursor of the live, unevicted subscribers (SYNC(fanout-cursor))
// or, with none, the tail as read before them; the producer caches it and
// reads the subscribers' lines again only when the cache says full. With
// many producers, the slot must also have been published for p-N (a
// producer stopped between its claim and its write could otherwise still
// write it): its seq is then p-N+1 (or a hole's). Under Overwrite every
// position is free.
//
// Every claimed slot is marked busy (seq = p) before it is written, with a
// store-store barrier after the mark: the writer's half of the sequence
// lock subscribers check (SYNC(fanout-overwrite)). A message spanning
// slots claims its k positions all or none (claimAll), marks them all
// busy, and publishes them as span.go frames them, continuations first.
//
// Eviction (Block, EvictAfter): while the gate holds the ring full, the
// producer watches it; when the gate has stayed at the same position for
// EvictAfter, every subscriber whose cursor is there is evicted: the
// producer stores that subscriber's line generation in the line's evict
// word (the one word of a line that others write, by CAS), and the gate
// passes it by from then on. Its sleeps meanwhile end by the deadline
// (handle.wakeBy), since a stopped subscriber wakes nobody.
type fanoutSender struct {
	r     *Ring
	h     *handle
	line  *roleLine
	multi bool
	block bool // PolicyBlock

	tail     uint64 // the only producer: next position to fill
	tailMask uint64 // the only producer: ^(positions between stores of the tail - 1)
	gate     uint64 // Block: the last gate read, never above the real one
	joins    uint64 // Block: the ring's joins counter as the last refresh read it
	watch    evictWatch
}

func newFanoutSender(h *handle) (*fanoutSender, error) {
	r := h.r
	s := &fanoutSender{r: r, h: h, line: h.line, multi: r.g.mode.multiProducer(), block: r.g.fan.policy == PolicyBlock,
		tailMask: ^(max(1, min(tailEvery, r.n/2)) - 1)}
	if s.multi {
		if err := h.recoverProducerClaim(h.idx); err != nil {
			return nil, err
		}
	} else {
		// Acquire: our predecessor's tail, then the slots it published
		// after storing it (a slot it marked busy and never published is
		// ours to fill again).
		tail, err := r.tailAfter(r.prod.pos.Load())
		if err != nil {
			return nil, err
		}
		// Release: the tail is ours; Stats, joiners and a successor read it.
		atomicx.StoreRelease(&r.prod.pos, tail)
		s.tail = tail
	}
	if s.block {
		s.refresh()
	}
	return s, nil
}

// refresh reads the gate again: the tail, then the cursor of every live,
// unevicted subscriber line.
func (s *fanoutSender) refresh() {
	r := s.r
	// SYNC(fanout-join): a full barrier, pairs with joinFence: our
	// publications before our look at the lines, so that a subscriber
	// joining meanwhile either is seen or sees them.
	atomicx.Fence()
	// Acquire: the joins counter, before the lines (see room).
	s.joins = r.prod.joins.Load()
	g := s.tail
	if s.multi {
		// Acquire: the shared tail, before the lines (see joinFence).
		g = r.prod.pos.Load()
	}
	first, count := r.lines(consumerSide)
	for i := first; i < first+count; i++ {
		e := r.roles.At(uint64(i))
		// Acquire, SYNC(role-state): whether the line holds a subscriber.
		st := e.state.Load()
		if status(st) != roleActive {
			continue
		}
		// Acquire, SYNC(fanout-evict): an evicted subscriber is out.
		if e.evict.Load() == st>>8 {
			continue
		}
		// Acquire, SYNC(fanout-cursor): pairs with the subscriber's release
		// store of its cursor; its reads of the slots below are done.
		if c := e.cursor.Load(); c < g {
			g = c
		}
	}
	s.gate = g
}

// room returns how many of k positions from pos the gate lets us write,
// reading it again if the cached one does not allow all k.
func (s *fanoutSender) room(pos, k uint64) uint64 {
	if !s.block {
		return min(k, s.r.n)
	}
	n := s.r.n
	// Acquire, SYNC(fanout-joins): pairs with the add in announceJoin; a
	// subscriber joined since our last look at the gate.
	if pos+k > s.gate+n || s.r.prod.joins.Load() != s.joins {
		s.refresh()
	}
	if pos >= s.gate+n {
		return 0
	}
	return min(k, s.gate+n-pos)
}

func (s *fanoutSender) claim(k uint64) (pos, n uint64, err error) {
	return s.claimUpTo(k, 1)
}

// claimUpTo claims up to k positions, and at least need (1, or k for a
// span: all or none); n is 0 if fewer than need are free now.
func (s *fanoutSender) claimUpTo(k, need uint64) (pos, n uint64, err error) {
	if !s.multi {
		pos = s.tail
		if n = s.room(pos, k); n < need && (!s.full() || s.room(pos, k) < need) {
			s.want(pos + need - 1)
			return pos, 0, nil
		}
		n = s.room(pos, k)
	} else {
		var named bool
		pos, n, named, err = s.claimShared(k, need)
		if named && n == 0 {
			// Release, SYNC(claim): our line names a claim whose CAS failed.
			atomicx.StoreRelease(&s.line.claim, 0)
		}
		if n == 0 || err != nil {
			return pos, 0, err
		}
	}
	if s.watch.at != 0 {
		s.watch.at = 0
		s.h.wakeBy = time.Time{}
	}
	s.mark(pos, n)
	return pos, n, nil
}

// want records on our line, for the only producer of a Block ring, the
// position every subscriber must pass before we can claim pos (the last
// position of a span we claim whole), so that a
// subscriber wakes us only when its progress crosses it (consume_fanout.go,
// wakeProducers); 0 says nothing. It is stored when a claim finds the ring
// full, before any sleep announces us, and stays the same while we are
// blocked at pos (only we move the tail).
func (s *fanoutSender) want(pos uint64) {
	if !s.block || s.multi || pos < s.r.n {
		return
	}
	// Release, SYNC(fanout-want): pairs with the subscribers' acquire load
	// in wakeProducers, made after they see our sleep bit, which the
	// announcing CAS sets after this store.
	if w := pos - s.r.n + 1; s.line.cursor.Load() != w {
		atomicx.StoreRelease(&s.line.cursor, w)
	}
}

// mark marks the n slots from pos busy before they are written.
func (s *fanoutSender) mark(pos, n uint64) {
	r := s.r
	for i := uint64(0); i < n; i++ {
		// Release, SYNC(fanout-overwrite): seq = p says "being written for
		// p" to a subscriber that copies the message of p-N; the
		// store-store barrier below orders the mark before the writes.
		atomicx.StoreRelease(&r.descs.At((pos+i)&r.mask).seq, pos+i)
	}
	// SYNC(fanout-overwrite): the mark before the payload stores (barrier).
	atomicx.StoreStore()
}

// claimShared is claimUpTo for one of many producers; it reports named if
// it left an intent on our line.
func (s *fanoutSender) claimShared(k, need uint64) (pos, n uint64, named bool, err error) {
	r := s.r
	for attempt := 0; attempt < casAttempts; attempt++ {
		// Acquire: the shared tail.
		pos = r.prod.pos.Load()
		if n = s.room(pos, k); n < need {
			if s.full() {
				continue // evicted: the gate moved
			}
			return pos, 0, named, nil
		}
		// The slots must hold what was published for p-N (or a hole).
		m, first := uint64(0), uint64(0)
		for ; m < n; m++ {
			p := pos + m
			// Acquire, SYNC(slot-publish): pairs with the release store of
			// seq in publish; the writer of p-N is done with the slot.
			seq := r.descs.At(p&r.mask).seq.Load() &^ seqSkip
			if p < r.n && seq == p || p >= r.n && seq == p-r.n+1 {
				continue
			}
			if m == 0 {
				first = seq
			}
			break
		}
		if m == 0 {
			// Acquire: the tail again. It moved: another producer claimed
			// pos (our look at the tail is old). It did not: the writer of
			// pos-N has not finished, or the slot is ahead of a tail that
			// has not passed it, which no producer does.
			if r.prod.pos.Load() != pos {
				continue
			}
			if first > pos+1 {
				return 0, 0, named, fmt.Errorf("%w: slot of position %d has sequence %#x, and the tail has not passed it", ErrCorrupt, pos, first)
			}
			return pos, 0, named, nil
		}
		if m < need {
			return pos, 0, named, nil // a span's last slots are not free yet
		}
		n = m
		// Release, SYNC(claim): the intent, before the CAS that makes it
		// ours, as in multiSender.tryClaim.
		atomicx.StoreRelease(&s.line.claimLen, n|claimIntent)
		atomicx.StoreRelease(&s.line.claim, pos+1)
		named = true
		// Seq-cst CAS: claims [pos, pos+n).
		if r.prod.pos.CompareAndSwap(pos, pos+n) {
			// Release, SYNC(claim): confirmed.
			atomicx.StoreRelease(&s.line.claimLen, n)
			step("fanout:claimed")
			return pos, n, named, nil
		}
	}
	return 0, 0, named, nil
}

// full is the Block policy's look at a gate that holds the ring full: it
// watches the gate, and evicts the subscribers that have held it there
// for EvictAfter. It reports whether it evicted any (then the gate has
// been read again, and the claim tries again at once: the subscribers
// left may all be asleep, waiting for us).
func (s *fanoutSender) full() bool {
	after := s.r.g.fan.evictAfter
	if !s.block || after <= 0 {
		return false
	}
	now := time.Now()
	if s.watch.at != s.gate+1 {
		s.watch = evictWatch{at: s.gate + 1, since: now}
		s.h.wakeBy = now.Add(after)
		return false
	}
	if now.Sub(s.watch.since) < after {
		return false
	}
	s.evictAt(s.gate)
	s.watch.at = 0
	s.h.wakeBy = time.Time{}
	s.refresh()
	return true
}

// evictAt evicts every live subscriber whose cursor is at or below pos.
func (s *fanoutSender) evictAt(pos uint64) {
	r := s.r
	first, count := r.lines(consumerSide)
	for i := first; i < first+count; i++ {
		e := r.roles.At(uint64(i))
		// Acquire, SYNC(role-state): the holder's generation.
		st := e.state.Load()
		if status(st) != roleActive {
			continue
		}
		// Acquire, SYNC(fanout-cursor): where it is.
		if e.cursor.Load() > pos {
			continue
		}
		// Acquire: a previous value (an older holder's eviction, or ours).
		old := e.evict.Load()
		// Seq-cst CAS, SYNC(fanout-evict): pairs with the subscriber's load
		// of its evict word in next, and with the loads in refresh; before
		// any write into a slot it may be reading.
		if old != st>>8 && e.evict.CompareAndSwap(old, st>>8) {
			step("fanout:evicted")
			trace("fanout: evicted subscriber line %d at position %d", i-first, pos)
			r.wakeLine(consumerSide, i-first) // if it sleeps, it has its verdict
		}
	}
}

// sendOne is claim, write and publish for one message.
func (s *fanoutSender) sendOne(typ int64, data []byte) (bool, error) {
	pos, n, err := s.claim(1)
	if n == 0 || err != nil {
		return false, err
	}
	s.r.writeSlot(pos, typ, data)
	s.publish(pos, 1, len(data))
	return true, nil
}

func (s *fanoutSender) publish(pos, n uint64, bytes int) {
	r := s.r
	for i := uint64(0); i < n; i++ {
		// Release, SYNC(slot-publish): pairs with the subscribers' acquire
		// load of seq; the slot's descriptor and payload are visible.
		atomicx.StoreRelease(&r.descs.At((pos+i)&r.mask).seq, pos+i+1)
	}
	s.finish(n, n, bytes)
}

// finish ends a claim whose slots are published: it clears our line's
// claim (many producers) or moves the tail past the claim's positions
// (the only producer), counts msgs messages, and wakes subscribers.
func (s *fanoutSender) finish(positions, msgs uint64, bytes int) {
	r := s.r
	if s.multi {
		// Release, SYNC(claim): the claim is finished, after its commits.
		atomicx.StoreRelease(&s.line.claim, 0)
	} else {
		if (s.tail+positions)&s.tailMask != s.tail&s.tailMask {
			// Relaxed: readers take the tail only as a start and check the
			// slots from there (Ring.publishedFrom).
			atomicx.StoreRelaxed(&r.prod.pos, s.tail+positions)
		}
		s.tail += positions
	}
	s.line.count(msgs, bytes)
	if r.maySleep(consumerSide) { // every subscriber wants every message: wake them all
		r.wakeFenced(consumerSide, 1<<31)
	}
}

// claimAll claims the k consecutive positions of a span, all or none
// (span.go): the gate must let us write all k, and with many producers
// each slot must have been published for its position of the lap before.
func (s *fanoutSender) claimAll(k uint64) (uint64, bool, error) {
	pos, n, err := s.claimUpTo(k, k)
	return pos, n == k && err == nil, err
}

// publishSpan publishes the span of k positions at pos, which claimAll
// marked busy and writeSpan filled: the continuations, last first, then
// the head, so that a subscriber that sees the head published sees the
// whole message (SYNC(span-publish)); then skipped more positions after
// them are given up, by skip marks (a Commit shorter than its
// ReserveSpan: giveUpRest).
func (s *fanoutSender) publishSpan(pos, k, skipped uint64, bytes int) {
	r := s.r
	r.publishSpanSlots(pos, k)
	step("span:continued")
	// Release, SYNC(slot-publish): as in publish, after the continuations.
	atomicx.StoreRelease(&r.descs.At(pos&r.mask).seq, pos+1)
	r.giveUpRest(pos+k, skipped)
	s.finish(k+skipped, 1, bytes)
}

// abortSpan gives up the span of k positions at pos that claimAll
// returned: the only producer fills them again with its next claim (they
// stay marked busy until then); one of many publishes each as a hole,
// then clears its claim.
func (s *fanoutSender) abortSpan(pos, k uint64) {
	if !s.multi {
		return
	}
	r := s.r
	for i := uint64(0); i < k; i++ {
		// Release, SYNC(slot-publish): a skip mark, as abort makes.
		atomicx.StoreRelease(&r.descs.At((pos+i)&r.mask).seq, (pos+i+1)|seqSkip)
	}
	// Release, SYNC(claim): finished, after every mark.
	atomicx.StoreRelease(&s.line.claim, 0)
	if r.maySleep(consumerSide) {
		r.wakeFenced(consumerSide, 1<<31)
	}
}

// abort gives up the one position pos that claim returned unfilled. The
// only producer fills it with its next claim (its slot stays marked busy
// until then); one of many publishes it as a hole.
func (s *fanoutSender) abort(pos uint64) {
	if !s.multi {
		return
	}
	r := s.r
	// Release, SYNC(slot-publish): a skip mark, as recoverProducerClaim
	// makes.
	atomicx.StoreRelease(&r.descs.At(pos&r.mask).seq, (pos+1)|seqSkip)
	// Release, SYNC(claim): finished.
	atomicx.StoreRelease(&s.line.claim, 0)
	if r.maySleep(consumerSide) {
		r.wakeFenced(consumerSide, 1<<31)
	}
}

// recoverPeers is a fan-out producer's part of a scan: it marks dead
// subscribers dead, which takes them out of the gate, and reports progress
// if it found any, so that the claim is tried again at once.
func (s *fanoutSender) recoverPeers(views []lineView) (progress bool, err error) {
	first, count := s.r.lines(consumerSide)
	for i := first; i < first+count; i++ {
		if views[i].dead() && status(views[i].state) == roleActive {
			progress = true
		}
	}
	if _, err = s.h.reapDead(views); err != nil {
		return false, err
	}
	return progress, nil
}
