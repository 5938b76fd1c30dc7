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
	head  uint64 // single consumer: next position; the ring's head is its copy

	peeked  bool   // a Peek is outstanding
	peekPos uint64 // its position
	peekAdo bool   // it is an adopted message

	// Positions [adoptNext, adoptEnd) were claimed by a consumer that died
	// before finishing them; this one delivers them before anything else.
	adoptNext, adoptEnd uint64
	// redeliver is the position+1 that a dead single consumer was looking at
	// in place when it died: delivered again, and counted.
	redeliver uint64
}

// NewConsumer takes a consumer role of the ring. In the single-consumer
// modes (SPSC, MPSC) it fails with [ErrRoleTaken] while another live process
// holds the role. A role whose holder died is taken over: the new consumer
// goes on with the next message not yet consumed, and a message the dead one
// was still looking at in place ([Consumer.Peek]) is delivered again.
func (r *Ring) NewConsumer() (*Consumer, error) {
	h, err := r.acquire(consumerSide)
	if err != nil {
		return nil, err
	}
	c := &Consumer{handle: h, multi: r.g.mode.multiConsumer()}
	h.consumer = c
	if !c.multi {
		// Acquire: our predecessor's head. It may have released slots after
		// its last head store; step over them.
		// It released nothing beyond it: a single consumer releases slots by
		// moving the head, after reading them.
		c.head = r.cons.pos.Load()
		if h.reclaimed && h.dead.claim.Load() == c.head+1 {
			c.redeliver = c.head + 1
		}
	} else if h.reclaimed {
		c.adopt(h.dead.claim.Load(), h.dead.claimLen.Load())
	}
	if err := r.track(c); err != nil {
		return nil, errors.Join(err, h.release())
	}
	return c, nil
}

// adopt takes over a dead consumer's unfinished claim [claim-1, claim-1+n).
func (c *Consumer) adopt(claim, n uint64) {
	if claim == 0 || n == 0 {
		return
	}
	// Release, SYNC(claim): our line names the adopted positions before we
	// deliver them, so that they are found again if we die too.
	atomicx.StoreRelease(&c.line.claimLen, n)
	atomicx.StoreRelease(&c.line.claim, claim)
	c.adoptNext, c.adoptEnd = claim-1, claim-1+n
}

// adoptDeadConsumers looks for a dead consumer's unfinished claim and adopts
// it. Only multi-consumer rings need it: a single consumer's successor finds
// the dead one's message at the head.
func (h *handle) adoptDeadConsumers() bool {
	r := h.r
	if !r.g.mode.multiConsumer() {
		return false
	}
	c := h.consumer
	if c == nil || c.adoptNext < c.adoptEnd || c.peeked {
		return false
	}
	first, count := r.lines(consumerSide)
	for i := first; i < first+count; i++ {
		e := r.roles.At(uint64(i))
		if i == h.idx || !h.lineDead(i, e.state.Load()) {
			continue
		}
		// Acquire: the dead consumer's last claim.
		claim, n := e.claim.Load(), e.claimLen.Load()
		if claim == 0 {
			continue
		}
		c.adopt(claim, n)
		// Seq-cst CAS: only one adopter takes the claim.
		if e.claim.CompareAndSwap(claim, 0) {
			return true
		}
		c.adoptNext, c.adoptEnd = 0, 0
		atomicx.StoreRelease(&c.line.claim, 0)
	}
	return false
}

// nextAdopted returns the next adopted position that still holds its
// message, if any, clearing the adoption when none is left.
func (c *Consumer) nextAdopted() (uint64, bool) {
	r := c.r
	for c.adoptNext < c.adoptEnd {
		pos := c.adoptNext
		c.adoptNext++
		// Acquire: the head has passed pos (the dead consumer claimed it), so
		// the claim of any live consumer of pos is visible below.
		if r.cons.pos.Load() <= pos || c.liveClaimCovers(consumerSide, pos, c.idx) {
			continue
		}
		// Acquire, SYNC(slot-publish): the message is still there.
		if r.slots.At(pos&r.mask).seq.Load() == pos+1 {
			return pos, true
		}
	}
	if c.adoptEnd != 0 {
		c.adoptNext, c.adoptEnd = 0, 0
		atomicx.StoreRelease(&c.line.claim, 0)
	}
	return 0, false
}

// limit returns the largest message the i-th claimed slot may hold: the
// capacity of msgs[i].Data for a batch, else one.
func limit(i uint64, one int, msgs []Message) int {
	if msgs != nil {
		return cap(msgs[i].Data)
	}
	return one
}

// scan counts the published slots from pos that this consumer may take for
// k messages: it stops at the first slot not yet published, after the k-th
// message, or before a message too large for its buffer (see limit). Skipped
// slots are counted but use no buffer. If the first message is too large,
// tooBig is its size.
func (c *Consumer) scan(pos, k uint64, one int, msgs []Message) (n uint64, tooBig int) {
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
		if int(s.size) > limit(b, one, msgs) {
			if b == 0 {
				return n, int(s.size)
			}
			return n, 0
		}
		b++
	}
	return n, 0
}

// claim claims the slots that scan finds at the head, and returns the first
// position and how many (0: none waiting, or the first message does not fit
// its buffer: then tooBig is its size). The slots may include skipped ones,
// and hold at most k messages.
func (c *Consumer) claim(k uint64, one int, msgs []Message) (pos, n uint64, tooBig int) {
	r := c.r
	if !c.multi {
		pos = c.head
		n, tooBig = c.scan(pos, k, one, msgs)
		return pos, n, tooBig
	}
	for {
		// Acquire: the head, then the slots after it.
		pos = r.cons.pos.Load()
		n, tooBig = c.scan(pos, k, one, msgs)
		if n == 0 {
			// Acquire: is pos still the head? Only then is the refusal, or the
			// emptiness, ours to report.
			if r.cons.pos.Load() != pos {
				continue
			}
			if tooBig > 0 {
				return pos, 0, tooBig
			}
			if seq := r.slots.At(pos&r.mask).seq.Load() &^ seqSkip; seq <= pos {
				return pos, 0, 0 // nothing published at the head: empty
			}
			continue // another consumer took pos; read the head again
		}
		// Release, SYNC(claim): the claim is visible before the CAS that
		// makes it ours, for adopters (liveClaimCovers, adoptDeadConsumers).
		atomicx.StoreRelease(&c.line.claimLen, n)
		atomicx.StoreRelease(&c.line.claim, pos+1)
		// Seq-cst CAS: claims [pos, pos+n).
		if r.cons.pos.CompareAndSwap(pos, pos+n) {
			return pos, n, 0
		}
	}
}

// skipped reports whether the slot of pos, claimed by this consumer, was
// skipped by recovery or Abort.
func (c *Consumer) skipped(pos uint64) bool {
	// Acquire: already ordered by the load in scan; this reads it again.
	return c.r.slots.At(pos&c.r.mask).seq.Load()&seqSkip != 0
}

// finish releases the n positions from pos, which this consumer claimed and
// read, to the producers, and wakes sleeping producers.
func (c *Consumer) finish(pos, n uint64) {
	r := c.r
	if r.headIndexed {
		c.head = pos + n
		// Release, SYNC(head-release): pairs with the producers' acquire
		// load of the head in claim; our reads of the slots are done before
		// they are refilled.
		atomicx.StoreRelease(&r.cons.pos, c.head)
	} else {
		for i := uint64(0); i < n; i++ {
			// Release, SYNC(slot-release): pairs with the producer's acquire
			// load in claim; our reads of the slot are done before it is
			// refilled.
			atomicx.StoreRelease(&r.slots.At((pos+i)&r.mask).seq, pos+i+r.n)
		}
		// Release, SYNC(claim): finished, after the releases above.
		atomicx.StoreRelease(&c.line.claim, 0)
	}
	r.wakePeers(&r.wait.producers, semSpace, uint32(min(n, 1<<31)))
}

// finishAdopted releases an adopted position. A CAS, because a second
// adopter (after a chain of deaths) may have released it already.
func (c *Consumer) finishAdopted(pos uint64) {
	r := c.r
	// Release, SYNC(slot-release), as in finish.
	if r.slots.At(pos&r.mask).seq.CompareAndSwap(pos+1, pos+r.n) {
		r.ctrl.redelivered.Add(1)
	}
	r.wakePeers(&r.wait.producers, semSpace, 1)
}

// read copies the message at pos into buf.
func (c *Consumer) read(pos uint64, buf []byte) (typ int64, n int) {
	i := pos & c.r.mask
	s := c.r.slots.At(i)
	n = copy(buf[:cap(buf)], c.r.slots.Tail(i)[:s.size])
	return s.typ, n
}

// counted notes the delivery of pos by a single consumer that took over
// from a dead one looking at it.
func (c *Consumer) counted(pos uint64) {
	if c.redeliver != 0 && pos+1 == c.redeliver {
		c.redeliver = 0
		c.r.ctrl.redelivered.Add(1)
	}
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

// tryOne delivers one message into buf, or reports why not: (false, 0)
// for an empty ring, (false, size) for a message larger than buf.
func (c *Consumer) tryOne(buf []byte) (typ int64, n int, ok bool, tooBig int) {
	if c.adoptEnd != 0 {
		if pos, found := c.nextAdopted(); found {
			s := c.r.slots.At(pos & c.r.mask)
			if int(s.size) > cap(buf) {
				c.adoptNext-- // keep it for a larger buffer
				return 0, 0, false, int(s.size)
			}
			typ, n = c.read(pos, buf)
			c.finishAdopted(pos)
			return typ, n, true, 0
		}
	}
	for {
		pos, k, big := c.claim(1, cap(buf), nil)
		if k == 0 {
			return 0, 0, false, big
		}
		// The message, if any, is in the last slot claimed; the others were
		// skipped.
		last := pos + k - 1
		if c.skipped(last) {
			c.finish(pos, k)
			continue
		}
		typ, n = c.read(last, buf)
		c.counted(last)
		c.finish(pos, k)
		return typ, n, true, 0
	}
}

// TryReceive copies the next message into buf and returns its type and
// length, or [ErrEmpty] if none is waiting. A message larger than cap(buf)
// gives [ErrTooLarge] and stays in the ring. It never blocks.
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
		return 0, 0, fmt.Errorf("%w: %d-byte message, %d-byte buffer", ErrTooLarge, big, cap(buf))
	}
	return 0, 0, ErrEmpty
}

// Receive copies the next message into buf, waiting for one as the ring's
// wait strategy says, and returns its type and length. A message larger than
// cap(buf) gives [ErrTooLarge] and stays in the ring. When every producer has
// closed and the ring is empty it returns io.EOF; when no producer is left
// and one died, [ErrPeerDead] (after every message committed before the
// death); when ctx is done, ctx.Err(); when the ring is removed,
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
		return 0, 0, fmt.Errorf("%w: %d-byte message, %d-byte buffer", ErrTooLarge, big, cap(buf))
	}
	return typ, n, nil
}

// tryBatch delivers up to len(msgs) waiting messages into msgs.
func (c *Consumer) tryBatch(msgs []Message) (got int, tooBig int) {
	for got < len(msgs) && c.adoptEnd != 0 {
		typ, n, ok, big := c.tryOne(msgs[got].Data)
		if !ok {
			if big > 0 && got == 0 {
				return 0, big
			}
			break
		}
		msgs[got].Type, msgs[got].Data = typ, msgs[got].Data[:n]
		got++
	}
	for got < len(msgs) {
		rest := msgs[got:]
		pos, k, big := c.claim(uint64(len(rest)), 0, rest)
		if k == 0 {
			if got == 0 {
				return 0, big
			}
			return got, 0
		}
		j := 0
		for i := uint64(0); i < k; i++ {
			if c.skipped(pos + i) {
				continue
			}
			typ, n := c.read(pos+i, rest[j].Data)
			rest[j].Type, rest[j].Data = typ, rest[j].Data[:n]
			c.counted(pos + i)
			j++
		}
		c.finish(pos, k)
		got += j
		if j == 0 {
			continue // only skipped slots: look again
		}
		return got, 0
	}
	return got, 0
}

// TryReceiveBatch receives up to len(msgs) waiting messages, each copied
// into msgs[i].Data[:cap] with msgs[i].Type set and Data resliced, and
// returns how many. It wakes sleeping producers at most once per run of
// slots. It returns [ErrEmpty] if none is waiting, and [ErrTooLarge] if the
// first does not fit its buffer.
func (c *Consumer) TryReceiveBatch(msgs []Message) (int, error) {
	if err := c.ready(); err != nil || len(msgs) == 0 {
		return 0, err
	}
	got, big := c.tryBatch(msgs)
	switch {
	case got > 0:
		return got, nil
	case big > 0:
		return 0, fmt.Errorf("%w: %d-byte message, %d-byte buffer", ErrTooLarge, big, cap(msgs[0].Data))
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
		return 0, fmt.Errorf("%w: %d-byte message, %d-byte buffer", ErrTooLarge, big, cap(msgs[0].Data))
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

// tryPeek claims the next message for in-place reading.
func (c *Consumer) tryPeek() (Peeked, bool) {
	if c.adoptEnd != 0 {
		if pos, ok := c.nextAdopted(); ok {
			c.peeked, c.peekPos, c.peekAdo = true, pos, true
			return c.view(pos, true), true
		}
	}
	for {
		pos, k, _ := c.claim(1, int(^uint(0)>>1), nil)
		if k == 0 {
			return Peeked{}, false
		}
		last := pos + k - 1
		if c.skipped(last) {
			c.finish(pos, k)
			continue
		}
		if k > 1 {
			c.finish(pos, k-1) // the skipped slots before the message
		}
		// Release, SYNC(claim): our line names the message we look at, so
		// that a successor or an adopter delivers it again if we die.
		atomicx.StoreRelease(&c.line.claimLen, 1)
		atomicx.StoreRelease(&c.line.claim, last+1)
		c.peeked, c.peekPos, c.peekAdo = true, last, false
		again := c.redeliver == last+1
		return c.view(last, again), true
	}
}

func (c *Consumer) view(pos uint64, again bool) Peeked {
	i := pos & c.r.mask
	s := c.r.slots.At(i)
	return Peeked{Type: s.typ, Data: c.r.slots.Tail(i)[:s.size:s.size], Redelivered: again}
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
// without copying. The message stays claimed by this consumer until
// [Consumer.Release]; only one may be outstanding. If this process dies
// before Release, the message is delivered again to the consumer that takes
// over the role (or, in the multi-consumer modes, adopts it), with
// Redelivered set: at-least-once delivery.
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
	if !c.peeked {
		return ErrNotReserved
	}
	c.peeked = false
	if c.peekAdo {
		c.finishAdopted(c.peekPos)
		return nil
	}
	c.counted(c.peekPos)
	c.finish(c.peekPos, 1)
	if !c.multi {
		atomicx.StoreRelease(&c.line.claim, 0)
	}
	return nil
}

// Close gives up the consumer role, releasing a message still peeked. The
// ring keeps its messages for the next consumer. Close is idempotent.
func (c *Consumer) Close() error {
	if c.closed {
		return nil
	}
	if c.peeked {
		c.Release()
	}
	c.closed = true
	c.r.untrack(c)
	err := c.release()
	// Wake every sleeping producer so that it can see the close.
	c.r.wakeSlow(&c.r.wait.producers, semSpace, 1<<31)
	return err
}
