package ring

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/shmring/shmring/internal/atomicx"
)

// Message is one message of a batch: its type and its bytes. On receive,
// Data is the caller's buffer: the message is copied into Data[:cap(Data)]
// and Data is resliced to its length.
type Message struct {
	Type int64
	Data []byte
}

// Producer sends messages into a ring. It holds one producer role of the
// ring, taken by [Ring.NewProducer], until Close.
//
// A Producer belongs to one goroutine at a time; goroutines that send
// concurrently need a Producer each (and a ring of mode MPSC or MPMC). A
// Producer must not be copied.
type Producer struct {
	*handle
	multi bool
	tail  uint64 // single producer: next position; the ring's tail is its copy
	head  uint64 // single consumer: the last head read (never ahead of the real one)

	reserved bool   // a Reserve is outstanding
	resPos   uint64 // its position
}

// NewProducer takes a producer role of the ring. In the single-producer
// modes (SPSC, SPMC) it fails with [ErrRoleTaken] while another live process
// holds the role; a role whose holder died is taken over, and the new
// producer goes on from where the dead one stopped.
func (r *Ring) NewProducer() (*Producer, error) {
	h, err := r.acquire(producerSide)
	if err != nil {
		return nil, err
	}
	p := &Producer{handle: h, multi: r.g.mode.multiProducer()}
	if h.reclaimed && p.multi {
		h.recoverProducerClaim(h.idx, h.prev.claim.Load(), h.prev.claimLen.Load())
	}
	if !p.multi {
		// Acquire: our predecessor's tail. It may have published slots after
		// its last tail store; step over them.
		p.tail = r.prod.pos.Load()
		for r.slots.At(p.tail&r.mask).seq.Load() == p.tail+1 {
			p.tail++
		}
		// Release: the tail is the producer's own; only Stats read it.
		atomicx.StoreRelease(&r.prod.pos, p.tail)
	}
	if err := r.track(p); err != nil {
		return nil, errors.Join(err, h.release(false))
	}
	return p, nil
}

// check validates a message before any slot is touched.
func (p *Producer) check(typ int64, n int) error {
	switch {
	case p.closed:
		return os.ErrClosed
	case p.reserved:
		return ErrPending
	case typ <= 0:
		return fmt.Errorf("%w: type %d", ErrBadType, typ)
	case n > p.r.g.maxMessage:
		return fmt.Errorf("%w: %d bytes, the ring's slots hold %d", ErrTooLarge, n, p.r.g.maxMessage)
	}
	return nil
}

// claim claims up to k free positions starting at the tail, and returns the
// first and how many (0 when the ring is full).
func (p *Producer) claim(k uint64) (uint64, uint64) {
	r := p.r
	if r.headIndexed {
		// One consumer: a position is free once the head has passed its
		// previous lap. The head is cached and read again only when the
		// cached value says full, so the consumer's line is rarely touched.
		for {
			pos := p.tail
			if p.multi {
				// Acquire: the shared tail.
				pos = r.prod.pos.Load()
			}
			if pos-p.head+k > r.n {
				// Acquire, SYNC(head-release): pairs with the consumer's release
				// store of the head in finish; its reads of the slots below the
				// head are done.
				p.head = r.cons.pos.Load()
				if p.head > pos {
					continue // pos is stale: the tail has moved on since
				}
			}
			n := min(k, p.head+r.n-pos)
			if pos-p.head >= r.n || n == 0 {
				return pos, 0
			}
			if !p.multi {
				return pos, n
			}
			if p.claimShared(pos, n) {
				return pos, n
			}
		}
	}
	if !p.multi {
		pos, n := p.tail, uint64(0)
		// Acquire, SYNC(slot-release): pairs with the consumer's release
		// store of seq in finish; its reads of the slot are done.
		for n < k && r.slots.At((pos+n)&r.mask).seq.Load() == pos+n {
			n++
		}
		return pos, n
	}
	for {
		// Acquire: the tail, then the slots after it.
		pos, n := r.prod.pos.Load(), uint64(0)
		// Acquire, SYNC(slot-release), as above.
		for n < k && r.slots.At((pos+n)&r.mask).seq.Load()&^seqSkip == pos+n {
			n++
		}
		if n == 0 {
			if seq := r.slots.At(pos&r.mask).seq.Load() &^ seqSkip; seq < pos {
				return pos, 0 // the slot still holds the message of pos-N: full
			}
			continue // another producer claimed pos; read the tail again
		}
		if p.claimShared(pos, n) {
			return pos, n
		}
	}
}

// claimOne claims one free position, with a fast path for the single
// producer of a single-consumer ring.
func (p *Producer) claimOne() (uint64, bool) {
	r := p.r
	if r.headIndexed && !p.multi {
		pos := p.tail
		if pos-p.head >= r.n {
			// Acquire, SYNC(head-release), as in claim.
			p.head = r.cons.pos.Load()
			if pos-p.head >= r.n {
				return pos, false
			}
		}
		return pos, true
	}
	pos, n := p.claim(1)
	return pos, n > 0
}

// claimShared claims [pos, pos+n) for this producer among many: it names
// the claim on its role line, then moves the tail by CAS. It reports whether
// the CAS succeeded.
func (p *Producer) claimShared(pos, n uint64) bool {
	// Release, SYNC(claim): the claim is visible before the CAS that makes
	// it ours, for recoverers (liveClaimCovers, recoverProducerClaim).
	atomicx.StoreRelease(&p.line.claimLen, n)
	atomicx.StoreRelease(&p.line.claim, pos+1)
	// Seq-cst CAS: claims [pos, pos+n).
	return p.r.prod.pos.CompareAndSwap(pos, pos+n)
}

// write fills the slot of position pos.
func (p *Producer) write(pos uint64, typ int64, data []byte) {
	i := pos & p.r.mask
	s := p.r.slots.At(i)
	s.size = uint32(len(data))
	s.flags = 0
	s.typ = typ
	copy(p.r.slots.Tail(i), data)
}

// publish commits the n positions from pos, which this producer claimed
// and wrote, and wakes sleeping consumers.
func (p *Producer) publish(pos, n uint64) {
	r := p.r
	for i := uint64(0); i < n; i++ {
		// Release, SYNC(slot-publish): pairs with the consumer's acquire load
		// of seq in scan, tryOne and fill; the slot's head and payload
		// written before are visible to it.
		atomicx.StoreRelease(&r.slots.At((pos+i)&r.mask).seq, pos+i+1)
	}
	if p.multi {
		// Release, SYNC(claim): the claim is finished, after its commits.
		atomicx.StoreRelease(&p.line.claim, 0)
	} else {
		p.tail = pos + n
		// Release: only Stats and a successor read the single tail.
		atomicx.StoreRelease(&r.prod.pos, p.tail)
	}
	r.wakePeers(&r.wait.consumers, semData, uint32(min(n, 1<<31)))
}

// TrySend sends one message of type typ (> 0) if a slot is free now, and
// returns [ErrFull] if none is. It never blocks and makes no system call
// unless a consumer sleeps.
//
// Memory model: the write of data synchronizes before the return of the
// Receive or Peek that delivers the message, in whichever process.
func (p *Producer) TrySend(typ int64, data []byte) error {
	if err := p.check(typ, len(data)); err != nil {
		return err
	}
	pos, ok := p.claimOne()
	if !ok {
		return ErrFull
	}
	p.write(pos, typ, data)
	p.publish(pos, 1)
	return nil
}

// Send sends one message of type typ (> 0), waiting for a free slot as the
// ring's wait strategy says. It returns ctx.Err() when ctx is done first,
// [ErrPeerDead] when the ring is full and every consumer died,
// [ErrNoConsumers] when it is full and every consumer closed, and
// [ErrRemoved] when the ring is removed. Send allocates nothing.
//
// Memory model: as for [Producer.TrySend].
func (p *Producer) Send(ctx context.Context, typ int64, data []byte) error {
	if err := p.check(typ, len(data)); err != nil {
		return err
	}
	pos, ok := p.claimOne()
	if !ok {
		if err := p.waitFor(ctx, func() bool { pos, ok = p.claimOne(); return ok }); err != nil {
			return err
		}
	}
	p.write(pos, typ, data)
	p.publish(pos, 1)
	return nil
}

// TrySendBatch sends as many of msgs as there are free slots for now, in
// order, and returns how many it sent, with at most one wake-up for all of
// them. It returns [ErrFull] if it sent none.
func (p *Producer) TrySendBatch(msgs []Message) (int, error) {
	if err := p.checkBatch(msgs); err != nil || len(msgs) == 0 {
		return 0, err
	}
	pos, n := p.claim(uint64(len(msgs)))
	if n == 0 {
		return 0, ErrFull
	}
	p.writeBatch(pos, msgs[:n])
	return int(n), nil
}

// SendBatch sends every message of msgs, in order, waiting for free slots as
// Send does. Each round fills as many slots as are free and wakes sleeping
// consumers at most once. It returns how many messages it sent and, if not
// all, why (the errors of Send).
func (p *Producer) SendBatch(ctx context.Context, msgs []Message) (int, error) {
	if err := p.checkBatch(msgs); err != nil {
		return 0, err
	}
	sent := 0
	for sent < len(msgs) {
		rest := uint64(len(msgs) - sent)
		pos, n := p.claim(rest)
		if n == 0 {
			if err := p.waitFor(ctx, func() bool { pos, n = p.claim(rest); return n > 0 }); err != nil {
				return sent, err
			}
		}
		p.writeBatch(pos, msgs[sent:sent+int(n)])
		sent += int(n)
	}
	return sent, nil
}

func (p *Producer) checkBatch(msgs []Message) error {
	for i := range msgs {
		if err := p.check(msgs[i].Type, len(msgs[i].Data)); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
	}
	return nil
}

func (p *Producer) writeBatch(pos uint64, msgs []Message) {
	for i := range msgs {
		p.write(pos+uint64(i), msgs[i].Type, msgs[i].Data)
	}
	p.publish(pos, uint64(len(msgs)))
}

// Reserve claims the next free slot, waiting as Send does, and returns its
// payload buffer (MaxMessage bytes) for the caller to fill in place; then
// [Producer.Commit] sends it or [Producer.Abort] gives it up. Only one
// reservation may be outstanding per Producer.
//
// The buffer is the ring's shared memory: it is valid only until Commit,
// Abort or Close, and must not be used after them.
func (p *Producer) Reserve(ctx context.Context) ([]byte, error) {
	if err := p.check(1, 0); err != nil {
		return nil, err
	}
	pos, n := p.claim(1)
	if n == 0 {
		if err := p.waitFor(ctx, func() bool { pos, n = p.claim(1); return n > 0 }); err != nil {
			return nil, err
		}
	}
	return p.reserve(pos), nil
}

// TryReserve is [Producer.Reserve] without waiting: [ErrFull] if no slot is
// free.
func (p *Producer) TryReserve() ([]byte, error) {
	if err := p.check(1, 0); err != nil {
		return nil, err
	}
	pos, n := p.claim(1)
	if n == 0 {
		return nil, ErrFull
	}
	return p.reserve(pos), nil
}

func (p *Producer) reserve(pos uint64) []byte {
	p.reserved, p.resPos = true, pos
	return p.r.slots.Tail(pos & p.r.mask)[:p.r.g.maxMessage]
}

// Commit sends the reserved slot as a message of type typ (> 0) made of the
// first n bytes of the reserved buffer.
func (p *Producer) Commit(typ int64, n int) error {
	switch {
	case p.closed:
		return os.ErrClosed
	case !p.reserved:
		return ErrNotReserved
	case typ <= 0:
		return fmt.Errorf("%w: type %d", ErrBadType, typ)
	case n < 0 || n > p.r.g.maxMessage:
		return fmt.Errorf("%w: %d bytes, the ring's slots hold %d", ErrTooLarge, n, p.r.g.maxMessage)
	}
	s := p.r.slots.At(p.resPos & p.r.mask)
	s.size, s.flags, s.typ = uint32(n), 0, typ
	p.reserved = false
	p.publish(p.resPos, 1)
	return nil
}

// Abort gives up the reservation. A single producer simply does not
// advance; in the multi modes the position is already claimed, so it is
// published as a skipped slot that consumers pass over.
func (p *Producer) Abort() error {
	if p.closed {
		return os.ErrClosed
	}
	if !p.reserved {
		return ErrNotReserved
	}
	p.reserved = false
	if !p.multi {
		return nil
	}
	r := p.r
	// Release, SYNC(slot-publish): a skip mark, as recoverProducerClaim makes.
	atomicx.StoreRelease(&r.slots.At(p.resPos&r.mask).seq, (p.resPos+1)|seqSkip)
	atomicx.StoreRelease(&p.line.claim, 0)
	r.wakePeers(&r.wait.consumers, semData, 1)
	return nil
}

// Close gives up the producer role, aborting an outstanding reservation.
// When every producer of the ring has closed, consumers receive what is left
// and then io.EOF. Close is idempotent.
func (p *Producer) Close() error {
	if p.closed {
		return nil
	}
	if p.reserved {
		p.Abort()
	}
	p.closed = true
	p.r.untrack(p)
	err := p.release(false)
	// Wake every sleeping consumer so that it can see the close.
	p.r.wakeSlow(&p.r.wait.consumers, semData, 1<<31)
	return err
}
