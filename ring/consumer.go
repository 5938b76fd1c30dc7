package ring

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/shmring/shmring/internal/atomicx"
)

// Consumer receives messages from a ring. It holds one consumer role of the
// ring, taken by [Ring.NewConsumer], until Close.
//
// A Consumer belongs to one goroutine at a time; goroutines that receive
// concurrently need a Consumer each (and a ring of mode SPMC or MPMC). A
// Consumer must not be copied.
type Consumer struct {
	*handle
	multi bool

	// Single consumer: the next position; the ring's head is its copy. The
	// messages from head on are this consumer's without a claim.
	head uint64
	// redeliver is the position+1 that a dead single consumer was looking at
	// in place when it died: delivered again, and counted.
	redeliver uint64

	// Multi consumer: positions [next, end) are claimed by this consumer and
	// not yet delivered. The role line's claim names them. A message that
	// did not fit the caller's buffer waits here for the next call.
	next, end uint64
	// adopted says that [next, end) was taken over from another consumer's
	// line, and dead that that consumer died (its deliveries then count as
	// redeliveries) rather than closed.
	adopted, dead bool

	peeked  bool   // a Peek is outstanding
	peekPos uint64 // its position
}

// NewConsumer takes a consumer role of the ring. In the single-consumer
// modes (SPSC, MPSC) it fails with [ErrRoleTaken] while another live process
// holds the role. A role whose holder died is taken over: the new consumer
// goes on with the next message not yet consumed, and a message the dead one
// had taken but not finished is delivered again (see [Consumer.Peek]).
func (r *Ring) NewConsumer() (*Consumer, error) {
	h, err := r.acquire(consumerSide)
	if err != nil {
		return nil, err
	}
	c := &Consumer{handle: h, multi: r.g.mode.multiConsumer()}
	h.consumer = c
	if !c.multi {
		// Acquire: our predecessor's head. A single consumer frees slots by
		// moving the head after reading them, so everything from the head on
		// is still to be delivered.
		c.head = r.cons.pos.Load()
		if h.reclaimed && h.prev.claim.Load() == c.head+1 {
			c.redeliver = c.head + 1
		}
	} else {
		// Plain copies taken in acquire; nothing to order.
		c.adopt(h.prev.claim.Load(), h.prev.claimLen.Load(), h.reclaimed)
	}
	if err := r.track(c); err != nil {
		return nil, errors.Join(err, h.release(false))
	}
	return c, nil
}

// adopt takes over another consumer's unfinished claim [claim-1,
// claim-1+n): a dead one's (dead set) or a closed one's.
func (c *Consumer) adopt(claim, n uint64, dead bool) {
	if claim == 0 || n == 0 {
		return
	}
	// Release, SYNC(claim): our line names the adopted positions before we
	// deliver them, so that they are found again if we die too.
	atomicx.StoreRelease(&c.line.claimLen, n)
	atomicx.StoreRelease(&c.line.claim, claim)
	c.next, c.end, c.adopted, c.dead = claim-1, claim-1+n, true, dead
}

// adoptOrphans looks for the unfinished claim of a consumer that died or
// closed holding messages, and takes it over. Only the multi-consumer modes
// need it: a single consumer's successor finds everything at the head.
func (h *handle) adoptOrphans(deadToo bool) bool {
	r := h.r
	c := h.consumer
	if c == nil || !c.multi || c.next < c.end || c.peeked {
		return false
	}
	first, count := r.lines(consumerSide)
	for i := first; i < first+count; i++ {
		e := r.roles.At(uint64(i))
		// Acquire: the line's status, before its claim below.
		st := e.state.Load()
		// Only after a refresh are the semaphore values fresh enough to call
		// a holder dead; a closed line needs none.
		dead := deadToo && h.lineDead(i, st)
		if i == h.idx || !dead && st&0xff != roleClosed {
			continue
		}
		// Acquire: the gone consumer's last claim.
		claim, n := e.claim.Load(), e.claimLen.Load()
		if claim == 0 {
			continue
		}
		c.adopt(claim, n, dead)
		// Seq-cst CAS: only one adopter takes the claim.
		if e.claim.CompareAndSwap(claim, 0) {
			return true
		}
		c.drop()
	}
	return false
}

// drop forgets the held positions and clears the claim that names them.
func (c *Consumer) drop() {
	c.next, c.end, c.adopted, c.dead = 0, 0, false, false
	// Release, SYNC(claim): nothing held any more.
	atomicx.StoreRelease(&c.line.claim, 0)
}

// limit returns the largest message the i-th message of a call may be: the
// capacity of msgs[i].Data for a batch, else one.
func limit(i uint64, one int, msgs []Message) int {
	if msgs != nil {
		return cap(msgs[i].Data)
	}
	return one
}

// scan counts the published slots from pos that may be taken for k
// messages: it stops at the first slot not yet published or after the k-th
// message. Skipped slots are counted but are no message. With sizes set it
// also stops before a message too large for its buffer (see limit); if that
// is the first message, tooBig is its size. Only a single consumer may check
// sizes before taking the slots: in the multi modes a slot can be refilled
// for the next lap while an unsuccessful claimer looks at it.
func (c *Consumer) scan(pos, k uint64, sizes bool, one int, msgs []Message) (n uint64, tooBig int) {
	r := c.r
	for b := uint64(0); b < k; n++ {
		s := r.slots.At((pos + n) & r.mask)
		// Acquire, SYNC(slot-publish): pairs with the producer's release
		// store in publish; the slot's head and payload are visible.
		seq := s.seq.Load()
		if seq&^seqSkip != pos+n+1 {
			return n, 0
		}
		if seq&seqSkip != 0 {
			continue
		}
		if sizes {
			if size := c.size(pos + n); size > limit(b, one, msgs) {
				if b == 0 {
					return n, size
				}
				return n, 0
			}
		}
		b++
	}
	return n, 0
}

// fill makes sure that a multi consumer holds positions: if it holds none,
// it claims the slots of up to k messages at the head. It reports false when
// none is waiting.
func (c *Consumer) fill(k uint64) bool {
	if c.next < c.end {
		return true
	}
	r := c.r
	for {
		// Acquire: the head, then the slots after it.
		pos := r.cons.pos.Load()
		n, _ := c.scan(pos, k, false, 0, nil)
		if n == 0 {
			if seq := r.slots.At(pos&r.mask).seq.Load() &^ seqSkip; seq <= pos {
				// Nothing published at the head. A consumer that closed
				// holding messages left them on its line for another one:
				// take them, so that Try calls see them too.
				return c.adoptOrphans(false) && c.next < c.end
			}
			continue // another consumer took pos; read the head again
		}
		// Release, SYNC(claim): the claim is visible before the CAS that
		// makes it ours, for adopters (liveClaimCovers, adoptOrphans).
		atomicx.StoreRelease(&c.line.claimLen, n)
		atomicx.StoreRelease(&c.line.claim, pos+1)
		// Seq-cst CAS: claims [pos, pos+n).
		if r.cons.pos.CompareAndSwap(pos, pos+n) {
			c.next, c.end, c.adopted, c.dead = pos, pos+n, false, false
			return true
		}
	}
}

// front returns the first held position that holds a message, releasing
// skipped slots on the way, for a multi consumer. It reports false when no
// held position is left.
func (c *Consumer) front() (uint64, bool) {
	r := c.r
	for c.next < c.end {
		pos := c.next
		s := r.slots.At(pos & r.mask)
		// Acquire, SYNC(slot-publish): the slot's state and contents.
		seq := s.seq.Load()
		if c.adopted {
			// Adopted positions may have been finished by their first owner
			// (just before it died), or be named by a live consumer's stale
			// claim that won them after all. The head has passed pos, so a
			// live owner's claim, stored before its CAS, is visible here.
			if seq&^seqSkip != pos+1 || c.liveClaimCovers(consumerSide, pos, c.idx) {
				c.next++
				continue
			}
		}
		if seq&seqSkip == 0 {
			return pos, true
		}
		c.pop() // a slot skipped by recovery or Abort: pass it
	}
	if c.end != 0 {
		c.drop()
	}
	return 0, false
}

// pop finishes the front held position, giving its slot back to the
// producers. The caller wakes them (wakeProducers).
func (c *Consumer) pop() {
	r := c.r
	pos := c.next
	c.next++
	s := r.slots.At(pos & r.mask)
	if c.adopted {
		// Release, SYNC(slot-release), by CAS: after a chain of deaths a
		// second adopter may hold the same position.
		seq := s.seq.Load()
		if s.seq.CompareAndSwap(seq, pos+r.n) && c.dead && seq&seqSkip == 0 {
			// Relaxed would do: a statistics counter.
			r.ctrl.redelivered.Add(1)
		}
	} else {
		// Release, SYNC(slot-release): pairs with the producer's acquire
		// load in claim; our reads of the slot are done before it is
		// refilled.
		atomicx.StoreRelease(&s.seq, pos+r.n)
	}
	if c.next == c.end {
		c.drop()
	}
}

// skipped reports whether the slot of pos, which scan found published, was
// skipped by recovery or Abort rather than holding a message.
func (c *Consumer) skipped(pos uint64) bool {
	// Acquire: the value scan already saw; read again for its skip bit.
	return c.r.slots.At(pos&c.r.mask).seq.Load()&seqSkip != 0
}

// advance finishes the n positions from the head of a single consumer.
func (c *Consumer) advance(n uint64) {
	c.head += n
	// Release, SYNC(head-release): pairs with the producers' acquire load of
	// the head in claim; our reads of the slots are done before they are
	// refilled.
	atomicx.StoreRelease(&c.r.cons.pos, c.head)
}

// wakeProducers wakes producers sleeping for free slots, after n were freed.
func (c *Consumer) wakeProducers(n int) {
	c.r.wakePeers(&c.r.wait.producers, semSpace, uint32(min(n, 1<<31-1)))
}

// read copies the message at pos into buf.
func (c *Consumer) read(pos uint64, buf []byte) (typ int64, n int) {
	i := pos & c.r.mask
	n = copy(buf[:cap(buf)], c.r.slots.Tail(i)[:c.size(pos)])
	return c.r.slots.At(i).typ, n
}

// size returns the size of the message at pos, which this consumer holds,
// clamped to the slot: a corrupt or hostile peer cannot make a consumer read
// beyond it.
func (c *Consumer) size(pos uint64) int {
	return min(int(c.r.slots.At(pos&c.r.mask).size), c.r.g.maxMessage)
}

// counted notes the delivery of pos by a single consumer that took over
// from a dead one looking at it.
func (c *Consumer) counted(pos uint64) bool {
	if c.redeliver != 0 && pos+1 == c.redeliver {
		c.redeliver = 0
		// Relaxed would do: a statistics counter, ordering nothing.
		c.r.ctrl.redelivered.Add(1)
		return true
	}
	return false
}

func (c *Consumer) ready() error {
	switch {
	case c.closed:
		return os.ErrClosed
	case c.peeked:
		return ErrPending
	}
	return nil
}

// tryBatch delivers up to len(msgs) waiting messages into msgs, or reports
// why it delivered none: an empty ring (0, 0), or a first message larger
// than its buffer (0, its size). The message stays for a later call. It
// serves batches, and single messages of a multi consumer (tryOne has its
// own path for a single consumer).
func (c *Consumer) tryBatch(msgs []Message) (got int, tooBig int) {
	k := uint64(len(msgs))
	if !c.multi {
		for {
			n, big := c.scan(c.head, k, true, 0, msgs)
			if n == 0 {
				return 0, big
			}
			for i := uint64(0); i < n; i++ {
				pos := c.head + i
				if c.skipped(pos) {
					continue
				}
				typ, size := c.read(pos, msgs[got].Data)
				msgs[got].Type, msgs[got].Data = typ, msgs[got].Data[:size]
				c.counted(pos)
				got++
			}
			c.advance(n)
			c.wakeProducers(int(n))
			if got > 0 {
				return got, 0
			}
		}
	}
	freed := 0
	for got < len(msgs) && c.fill(k-uint64(got)) {
		pos, ok := c.front()
		if !ok {
			continue
		}
		if size := c.size(pos); size > cap(msgs[got].Data) {
			if got == 0 {
				tooBig = size
			}
			break
		}
		typ, size := c.read(pos, msgs[got].Data)
		msgs[got].Type, msgs[got].Data = typ, msgs[got].Data[:size]
		c.pop()
		got++
		freed++
	}
	if freed > 0 {
		c.wakeProducers(freed)
	}
	return got, tooBig
}

// tryOne is tryBatch for one message into buf, with a fast path for a
// single consumer.
func (c *Consumer) tryOne(buf []byte) (typ int64, n int, ok bool, tooBig int) {
	if !c.multi {
		r := c.r
		for {
			pos := c.head
			i := pos & r.mask
			s := r.slots.At(i)
			// Acquire, SYNC(slot-publish): pairs with the producer's release
			// store in publish; the slot's head and payload are visible.
			seq := s.seq.Load()
			if seq != pos+1 {
				if seq != (pos+1)|seqSkip {
					return 0, 0, false, 0 // not published yet: empty
				}
				c.advance(1) // a slot skipped by recovery or Abort: pass it
				c.wakeProducers(1)
				continue
			}
			size := c.size(pos)
			if size > cap(buf) {
				return 0, 0, false, size
			}
			n = copy(buf[:cap(buf)], r.slots.Tail(i)[:size])
			typ = s.typ
			if c.redeliver != 0 {
				c.counted(pos)
			}
			c.advance(1)
			c.wakeProducers(1)
			return typ, n, true, 0
		}
	}
	msgs := [1]Message{{Data: buf}}
	got, big := c.tryBatch(msgs[:])
	if got == 0 {
		return 0, 0, false, big
	}
	return msgs[0].Type, len(msgs[0].Data), true, 0
}

func tooLarge(size, buf int) error {
	return fmt.Errorf("%w: %d-byte message, %d-byte buffer", ErrTooLarge, size, buf)
}

// TryReceive copies the next message into buf and returns its type and
// length, or [ErrEmpty] if none is waiting. A message larger than cap(buf)
// gives [ErrTooLarge] and stays: the next receive of this consumer gets it
// (in the multi-consumer modes this consumer holds it; if it closes, another
// consumer gets it). It never blocks.
//
// Memory model: the Send that wrote the message synchronizes before the
// return of the call that delivers it.
func (c *Consumer) TryReceive(buf []byte) (typ int64, n int, err error) {
	if err := c.ready(); err != nil {
		return 0, 0, err
	}
	typ, n, ok, big := c.tryOne(buf)
	switch {
	case ok:
		return typ, n, nil
	case big > 0:
		return 0, 0, tooLarge(big, cap(buf))
	}
	return 0, 0, ErrEmpty
}

// Receive copies the next message into buf, waiting for one as the ring's
// wait strategy says, and returns its type and length. A message larger than
// cap(buf) gives [ErrTooLarge] and stays, as for TryReceive. When every
// producer has closed and the ring is empty it returns io.EOF; when no
// producer is left and one died, [ErrPeerDead] (after every message committed
// before the death); when ctx is done, ctx.Err(); when the ring is removed,
// [ErrRemoved]. Receive allocates nothing.
//
// Memory model: as for [Consumer.TryReceive].
func (c *Consumer) Receive(ctx context.Context, buf []byte) (typ int64, n int, err error) {
	if err := c.ready(); err != nil {
		return 0, 0, err
	}
	typ, n, ok, big := c.tryOne(buf)
	if !ok && big == 0 {
		err = c.waitFor(ctx, func() bool {
			typ, n, ok, big = c.tryOne(buf)
			return ok || big > 0
		})
		if err != nil {
			return 0, 0, err
		}
	}
	if !ok {
		return 0, 0, tooLarge(big, cap(buf))
	}
	return typ, n, nil
}

// TryReceiveBatch receives up to len(msgs) waiting messages, each copied
// into msgs[i].Data[:cap] with msgs[i].Type set and Data resliced, and
// returns how many. It wakes sleeping producers at most once. It returns
// [ErrEmpty] if none is waiting, and [ErrTooLarge] if the first does not fit
// its buffer.
func (c *Consumer) TryReceiveBatch(msgs []Message) (int, error) {
	if err := c.ready(); err != nil || len(msgs) == 0 {
		return 0, err
	}
	got, big := c.tryBatch(msgs)
	switch {
	case got > 0:
		return got, nil
	case big > 0:
		return 0, tooLarge(big, cap(msgs[0].Data))
	}
	return 0, ErrEmpty
}

// ReceiveBatch is [Consumer.TryReceiveBatch] that waits, as Receive does,
// until at least one message is there, and returns the errors of Receive.
func (c *Consumer) ReceiveBatch(ctx context.Context, msgs []Message) (int, error) {
	if err := c.ready(); err != nil || len(msgs) == 0 {
		return 0, err
	}
	got, big := c.tryBatch(msgs)
	if got == 0 && big == 0 {
		err := c.waitFor(ctx, func() bool {
			got, big = c.tryBatch(msgs)
			return got > 0 || big > 0
		})
		if err != nil {
			return 0, err
		}
	}
	if got == 0 {
		return 0, tooLarge(big, cap(msgs[0].Data))
	}
	return got, nil
}

// Peeked is a message looked at in place by [Consumer.Peek].
type Peeked struct {
	Type int64
	// Data is the message in the ring's shared memory. It is valid only
	// until Release or Close of the Consumer, and must not be written.
	Data []byte
	// Redelivered says that a consumer that died had already taken this
	// message: it may have acted on it (at-least-once delivery).
	Redelivered bool
}

// tryPeek takes the next message for in-place reading.
func (c *Consumer) tryPeek() (Peeked, bool) {
	if !c.multi {
		for {
			n, _ := c.scan(c.head, 1, false, 0, nil)
			if n == 0 {
				return Peeked{}, false
			}
			last := c.head + n - 1
			if c.skipped(last) {
				c.advance(n)
				continue
			}
			if n > 1 {
				c.advance(n - 1) // the skipped slots before the message
			}
			// Release, SYNC(claim): our line names the message we look at, so
			// that a successor delivers it again if we die.
			atomicx.StoreRelease(&c.line.claimLen, 1)
			atomicx.StoreRelease(&c.line.claim, last+1)
			c.peeked, c.peekPos = true, last
			return c.view(last, c.redeliver == last+1), true
		}
	}
	for c.fill(1) {
		if pos, ok := c.front(); ok {
			c.peeked, c.peekPos = true, pos
			return c.view(pos, c.adopted && c.dead), true
		}
	}
	return Peeked{}, false
}

func (c *Consumer) view(pos uint64, again bool) Peeked {
	i := pos & c.r.mask
	size := c.size(pos)
	return Peeked{Type: c.r.slots.At(i).typ, Data: c.r.slots.Tail(i)[:size:size], Redelivered: again}
}

// TryPeek is [Consumer.Peek] without waiting: [ErrEmpty] if no message is
// waiting.
func (c *Consumer) TryPeek() (Peeked, error) {
	if err := c.ready(); err != nil {
		return Peeked{}, err
	}
	if m, ok := c.tryPeek(); ok {
		return m, nil
	}
	return Peeked{}, ErrEmpty
}

// Peek waits for the next message, as Receive does, and returns it in place,
// without copying. The message stays taken by this consumer until
// [Consumer.Release]; only one may be outstanding. If this process dies
// before Release, the message is delivered again to the consumer that takes
// over the role (or, in the multi-consumer modes, to a live consumer that
// finds it), with Redelivered set: at-least-once delivery.
//
// Peeked.Data is the ring's shared memory: valid only until Release or
// Close, and never to be written.
func (c *Consumer) Peek(ctx context.Context) (Peeked, error) {
	if err := c.ready(); err != nil {
		return Peeked{}, err
	}
	m, ok := c.tryPeek()
	if !ok {
		if err := c.waitFor(ctx, func() bool { m, ok = c.tryPeek(); return ok }); err != nil {
			return Peeked{}, err
		}
	}
	return m, nil
}

// Release finishes the message returned by Peek, giving its slot back to the
// producers. The Peeked data must not be used afterwards.
func (c *Consumer) Release() error {
	if c.closed {
		return os.ErrClosed
	}
	if !c.peeked {
		return ErrNotReserved
	}
	c.peeked = false
	if c.multi {
		c.pop()
	} else {
		c.counted(c.peekPos)
		c.advance(1)
		// Release, SYNC(claim): done with the message.
		atomicx.StoreRelease(&c.line.claim, 0)
	}
	c.wakeProducers(1)
	return nil
}

// Close gives up the consumer role, releasing a message still peeked. The
// ring keeps its messages for the next consumer; in the multi-consumer modes
// a message this consumer held back (too large for the buffer it was given)
// goes to another consumer. Close is idempotent.
func (c *Consumer) Close() error {
	if c.closed {
		return nil
	}
	if c.peeked {
		c.Release()
	}
	c.closed = true
	c.r.untrack(c)
	err := c.release(c.multi && c.next < c.end)
	// Wake every sleeping producer, so that it can see the close, and
	// every sleeping consumer, one of which may take what we held.
	c.r.wakeSlow(&c.r.wait.producers, semSpace, 1<<31)
	c.r.wakeSlow(&c.r.wait.consumers, semData, 1<<31)
	return err
}
