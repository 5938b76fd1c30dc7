package ring

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// Message is one message of a batch: its type and its bytes. On receive,
// Data is the caller's buffer: the message is copied into Data[:cap(Data)]
// and Data is resliced to its length.
type Message struct {
	Type int64
	Data []byte
	// Redelivered is set on receive when a consumer that died was looking
	// at this message in place (Peek) when it died: it may have acted on it
	// (see Peeked.Redelivered). A batch send passes it on: a sender that
	// forwards a message it may have forwarded before (a bridge restarted
	// between its send and its upstream acknowledgement) sets it, and the
	// receiver sees it set.
	Redelivered bool
	// Origin is a tag of the sender's choosing, carried with the message:
	// a batch send stores it (Send and Commit store 0) and every receive
	// that returns a Message or a Peeked gives it back. The ring gives it
	// no meaning; a bridge marks with it the messages it brought in from
	// elsewhere, so that it does not send them back.
	Origin uint64
	// Seq is set on receive to the message's position in the ring: it
	// grows by one with each slot producers claim, in claim order, and is
	// never reused by the same ring, so that the ring's
	// Header().InstanceID and Seq name a message for deduplication across
	// restarts of its consumers. Sends ignore it.
	Seq uint64
}

// Producer sends messages into a ring. It holds one producer role of the
// ring, taken by [Ring.NewProducer], until Close.
//
// A Producer belongs to one goroutine at a time; goroutines that send
// concurrently need a Producer each (and a ring of mode MPSC or MPMC). Its
// Close, and the Ring's, may be called from any goroutine while a call is
// in flight: that call then returns os.ErrClosed, or completes if it was
// already publishing. A Producer must not be copied.
type Producer struct {
	h *handle
	d sender

	max      uint32 // the ring's MaxMessage
	one      uint32 // the largest message that fits one slot: larger ones span slots (span.go)
	reserved bool   // a Reserve is outstanding
	resPos   uint64 // its position
	resSpan  uint64 // ReserveSpan: the slots reserved, > 1; 0 for a Reserve of one slot
	resLen   int    // ReserveSpan: the bytes reserved
}

// sender is a producer discipline: how one producer claims free positions
// and publishes them. It is chosen once, by NewProducer: produce_single.go
// for the only producer of a ring, produce_multi.go for one of many.
type sender interface {
	// claim claims up to k ≥ 1 free positions and returns the first and
	// how many; n is 0 if none is free now. It makes no system call.
	claim(k uint64) (pos, n uint64, err error)
	// publish commits the n positions from pos, which claim returned and
	// the caller filled, with bytes bytes of payload in all, and wakes
	// consumers that sleep.
	publish(pos, n uint64, bytes int)
	// abort gives up the one position pos that claim returned unfilled.
	abort(pos uint64)
	// sendOne claims, fills and publishes one position if one is free
	// now: the busy path of Send in one call.
	sendOne(typ int64, data []byte) (bool, error)
}

// NewProducer takes a producer role of the ring. In the single-producer
// modes (SPSC, SPMC) it fails with [ErrRoleTaken] while another live process
// holds the role; a role whose holder died is taken over, and the new
// producer goes on from where the dead one stopped.
func (r *Ring) NewProducer() (*Producer, error) {
	p := &Producer{max: r.maxSize, one: uint32(r.g.oneSlot())}
	h, err := r.take(producerSide, func(h *handle, prev uint64) error {
		var err error
		if r.g.fan.on {
			p.d, err = newFanoutSender(h) // produce_fanout.go
		} else if r.g.mode.multiProducer() {
			p.d, err = newMultiSender(h)
		} else {
			p.d, err = newSingleSender(h)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	p.h = h
	h.recoverPeers = h.reapDead
	if fs, ok := p.d.(*fanoutSender); ok {
		h.recoverPeers = fs.recoverPeers
	}
	h.closer = p.closeLocal
	if err := r.register(h); err != nil {
		return nil, errors.Join(err, h.close())
	}
	// Deaths before ours are not posted to us: look once.
	h.scanCheck()
	return p, nil
}

// check validates a message before any slot is touched.
func (p *Producer) check(typ int64, n int) error {
	if !p.reserved && typ > 0 && uint(n) <= uint(p.max) {
		return nil
	}
	return p.refuse(typ, n)
}

// refuse is check's error.
func (p *Producer) refuse(typ int64, n int) error {
	switch {
	case p.reserved:
		return ErrPending
	case typ <= 0:
		return fmt.Errorf("%w: type %d", ErrBadType, typ)
	case n > p.h.r.g.maxMessage:
		return fmt.Errorf("%w: %d bytes, the ring's messages hold %d", ErrTooLarge, n, p.h.r.g.maxMessage)
	}
	return nil
}

// claimWait claims up to k positions, waiting for at least one.
func (p *Producer) claimWait(ctx context.Context, k uint64) (pos, n uint64, err error) {
	if pos, n, err = p.d.claim(k); n > 0 || err != nil {
		return pos, n, err
	}
	werr := p.h.waitFor(ctx, func() bool {
		pos, n, err = p.d.claim(k)
		return n > 0 || err != nil
	})
	if werr != nil {
		return 0, 0, werr
	}
	return pos, n, err
}

// TrySend sends one message of type typ (> 0) if a slot is free now, and
// returns [ErrFull] if none is. It never blocks and makes no system call
// unless a consumer sleeps.
//
// Memory model: the write of data synchronizes before the return of the
// Receive or Peek that delivers the message, in whichever process.
func (p *Producer) TrySend(typ int64, data []byte) error {
	// No defer: see guard.
	if !p.h.g.enter() {
		p.h.g.leave()
		return os.ErrClosed
	}
	if err := p.check(typ, len(data)); err != nil {
		p.h.g.leave()
		return err
	}
	if uint(len(data)) > uint(p.one) {
		ok, err := p.trySpan(typ, data, 0, false)
		p.h.g.leave()
		return sentOrFull(ok, err)
	}
	ok, err := p.d.sendOne(typ, data)
	p.h.g.leave()
	switch {
	case err != nil:
		return err
	case !ok:
		return ErrFull
	}
	return nil
}

// Send sends one message of type typ (> 0), waiting for a free slot as the
// ring's wait strategy says. It returns ctx.Err() when ctx is done first,
// [ErrPeerDead] when the ring is full and every consumer died,
// [ErrNoConsumers] when it is full and every consumer closed, [ErrRemoved]
// when the ring is removed, and os.ErrClosed when the Producer or its Ring
// is closed meanwhile. Send allocates nothing.
//
// Memory model: as for [Producer.TrySend].
func (p *Producer) Send(ctx context.Context, typ int64, data []byte) error {
	entered := p.h.g.enter()
	defer p.h.g.leave()
	if !entered {
		return os.ErrClosed
	}
	if err := p.check(typ, len(data)); err != nil {
		return err
	}
	if uint(len(data)) > uint(p.one) {
		return p.sendSpan(ctx, typ, data, 0, false)
	}
	if ok, err := p.d.sendOne(typ, data); ok || err != nil {
		return err
	}
	pos, _, err := p.claimWait(ctx, 1)
	if err != nil {
		return err
	}
	p.h.r.writeSlot(pos, typ, data)
	p.d.publish(pos, 1, len(data))
	return nil
}

// TrySendBatch sends as many of msgs as there are free slots for now, in
// order, and returns how many it sent, with at most one wake-up for all of
// them. It returns [ErrFull] if it sent none.
func (p *Producer) TrySendBatch(msgs []Message) (int, error) {
	entered := p.h.g.enter()
	defer p.h.g.leave()
	if !entered {
		return 0, os.ErrClosed
	}
	spans, err := p.checkBatch(msgs)
	if err != nil || len(msgs) == 0 {
		return 0, err
	}
	if spans {
		return p.trySpanBatch(msgs)
	}
	pos, n, err := p.d.claim(uint64(len(msgs)))
	switch {
	case err != nil:
		return 0, err
	case n == 0:
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
	entered := p.h.g.enter()
	defer p.h.g.leave()
	if !entered {
		return 0, os.ErrClosed
	}
	spans, err := p.checkBatch(msgs)
	if err != nil {
		return 0, err
	}
	if spans {
		return p.sendSpanBatch(ctx, msgs)
	}
	sent := 0
	for sent < len(msgs) {
		pos, n, err := p.claimWait(ctx, uint64(len(msgs)-sent))
		if err != nil {
			return sent, err
		}
		p.writeBatch(pos, msgs[sent:sent+int(n)])
		sent += int(n)
	}
	return sent, nil
}

// checkBatch checks every message of a batch, and reports whether one of
// them spans slots.
func (p *Producer) checkBatch(msgs []Message) (spans bool, err error) {
	for i := range msgs {
		if err := p.check(msgs[i].Type, len(msgs[i].Data)); err != nil {
			return false, fmt.Errorf("message %d: %w", i, err)
		}
		spans = spans || uint(len(msgs[i].Data)) > uint(p.one)
	}
	return spans, nil
}

func (p *Producer) writeBatch(pos uint64, msgs []Message) {
	bytes := 0
	for i := range msgs {
		p.h.r.writeSlot(pos+uint64(i), msgs[i].Type, msgs[i].Data)
		if msgs[i].Origin != 0 || msgs[i].Redelivered {
			p.h.r.stamp(pos+uint64(i), msgs[i].Origin, msgs[i].Redelivered)
		}
		bytes += len(msgs[i].Data)
	}
	p.d.publish(pos, uint64(len(msgs)), bytes)
}

// Reserve claims the next free slot, waiting as Send does, and returns its
// buffer (MaxMessage bytes, or, on a ring whose messages may span slots,
// the bytes of one slot: SlotSize, or MaxMessage if smaller; the room of a
// larger message comes from [Producer.ReserveSpan]) for the caller to fill
// in place; then
// [Producer.Commit] sends it or [Producer.Abort] gives it up. Only one
// reservation may be outstanding per Producer.
//
// The buffer is the ring's shared memory: it is valid only until Commit,
// Abort or Close, and must not be used after them. (After Close, using it
// does not fault, but what is written goes nowhere.)
func (p *Producer) Reserve(ctx context.Context) ([]byte, error) {
	entered := p.h.g.enter()
	defer p.h.g.leave()
	if !entered {
		return nil, os.ErrClosed
	}
	if p.reserved {
		return nil, ErrPending
	}
	pos, _, err := p.claimWait(ctx, 1)
	if err != nil {
		return nil, err
	}
	p.reserved, p.resPos = true, pos
	return p.h.r.reserveBuf(pos), nil
}

// TryReserve is [Producer.Reserve] without waiting: [ErrFull] if no slot is
// free.
func (p *Producer) TryReserve() ([]byte, error) {
	// No defer: see guard.
	if !p.h.g.enter() {
		p.h.g.leave()
		return nil, os.ErrClosed
	}
	b, err := p.reserveNow()
	p.h.g.leave()
	return b, err
}

// reserveNow is TryReserve inside the guard.
func (p *Producer) reserveNow() ([]byte, error) {
	if p.reserved {
		return nil, ErrPending
	}
	pos, n, err := p.d.claim(1)
	switch {
	case err != nil:
		return nil, err
	case n == 0:
		return nil, ErrFull
	}
	p.reserved, p.resPos = true, pos
	return p.h.r.reserveBuf(pos), nil
}

// Commit sends the reserved slot as a message of type typ (> 0) made of the
// first n bytes of the reserved buffer.
func (p *Producer) Commit(typ int64, n int) error {
	// No defer: see guard.
	if !p.h.g.enter() {
		p.h.g.leave()
		return os.ErrClosed
	}
	err := p.commitReserved(typ, n)
	p.h.g.leave()
	return err
}

// commitReserved is Commit inside the guard.
func (p *Producer) commitReserved(typ int64, n int) error {
	switch {
	case !p.reserved:
		return ErrNotReserved
	case typ <= 0:
		return fmt.Errorf("%w: type %d", ErrBadType, typ)
	case n < 0:
		return fmt.Errorf("%w: negative length %d", ErrInvalid, n)
	case n > p.h.r.g.maxMessage:
		return fmt.Errorf("%w: %d bytes, the ring's messages hold %d", ErrTooLarge, n, p.h.r.g.maxMessage)
	case p.resSpan != 0:
		return p.commitSpan(typ, n)
	case p.h.r.spanning() && n > p.h.r.slot:
		return fmt.Errorf("%w: %d bytes, a reserved slot holds %d", ErrTooLarge, n, p.h.r.slot)
	}
	p.h.r.setSlot(p.resPos, typ, n)
	p.reserved = false
	p.d.publish(p.resPos, 1, n)
	return nil
}

// Abort gives up the reservation. A single producer simply does not
// advance; with many producers the position is already claimed, so it is
// published as a skipped slot that consumers pass over.
func (p *Producer) Abort() error {
	entered := p.h.g.enter()
	defer p.h.g.leave()
	if !entered {
		return os.ErrClosed
	}
	if !p.reserved {
		return ErrNotReserved
	}
	p.reserved = false
	p.abortReserved()
	return nil
}

// abortReserved gives up the reservation, of one slot or a span.
func (p *Producer) abortReserved() {
	if p.resSpan != 0 {
		p.abortSpan()
		return
	}
	p.d.abort(p.resPos)
}

// Close gives up the producer role, aborting an outstanding reservation.
// When every producer of the ring has closed, consumers receive what is
// left and then io.EOF (see [Consumer.Receive] for what io.EOF means with
// many producers). Close may be called from any goroutine, also while a
// call of this Producer is in flight; it is idempotent.
func (p *Producer) Close() error { return p.h.close() }

// closeLocal is the producer's part of Close, once no call is in flight.
func (p *Producer) closeLocal() (zeroCopyOut bool) {
	if p.reserved {
		p.reserved = false
		p.abortReserved()
		return true
	}
	return false
}
