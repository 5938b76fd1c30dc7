package ring

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/shmring/shmring/ipc"
)

// Consumer receives messages from a ring. It holds one consumer role of the
// ring, taken by [Ring.NewConsumer], until Close.
//
// A Consumer belongs to one goroutine at a time; goroutines that receive
// concurrently need a Consumer each (and a ring of mode SPMC or MPMC). Its
// Close, and the Ring's, may be called from any goroutine while a call is
// in flight: that call then returns os.ErrClosed, or completes if it was
// already delivering. A Consumer must not be copied.
//
// # End of stream
//
// Receive returns io.EOF when the ring is empty for this consumer and no
// producer holds a role, and at least one has closed (none died: then it
// is [ErrPeerDead]). With many producers that may come and go, io.EOF
// therefore means "every producer that was attached has closed, and all
// they sent has been received", at the moment of the call; it is not
// final: a producer that attaches later can send more, and the next
// Receive waits for it. A producer that is taking its role at that moment
// does not hold it yet.
type Consumer struct {
	h *handle
	d receiver

	sel       *selectReceiver // d, on a ring created for selective receive; nil otherwise
	fan       *fanoutReceiver // d, on a fan-out ring (a subscriber); nil otherwise
	peeked    bool            // a Peek or PeekBatch is outstanding
	peekPos   uint64          // its first position
	peekCount uint64          // how many positions from there it holds
	peekLen   int             // their bytes
	peekSlots uint64          // the slots of the message held, if it spans slots (span.go); 0 otherwise
}

// receiver is a consumer discipline: how one consumer finds the messages it
// may deliver and gives their slots back. It is chosen once, by
// NewConsumer: consume_single.go for the only consumer of a ring,
// consume_multi.go for one of many.
type receiver interface {
	// next returns the next position this consumer may deliver, claiming
	// up to k ≥ 1 positions if it holds none; ok is false if there is
	// none now. Skipped slots are passed over. It makes no system call
	// unless it takes over another consumer's claim.
	next(k uint64) (pos uint64, ok bool, err error)
	// take finishes pos, whose message the caller has copied out. It
	// reports false if the message was not this consumer's after all
	// (another consumer serving the same claim delivered it): the copy
	// must be dropped.
	take(pos uint64) bool
	// hold marks pos as looked at in place, so that a consumer that takes
	// over if this one dies delivers it again; false as for take.
	hold(pos uint64) bool
	// following returns how many of the k positions after first, which
	// hold marked, this consumer may hold with it: published messages of
	// the claim first is of, none skipped. It is zero where this
	// discipline holds one message at a time.
	following(first, k uint64) uint64
	// holdTo extends the hold of first to the positions before end, which
	// following allowed.
	holdTo(first, end uint64)
	// more returns how many of the k positions from end on this consumer
	// may hold after the run [first, end) that hold and holdTo marked:
	// published messages, none skipped, that follow it (hold.go). It may
	// claim them first. It is zero where this discipline cannot extend a
	// run.
	more(first, end, k uint64) uint64
	// release finishes a position that hold or holdTo marked; those of
	// one run are released in order.
	release(pos uint64)
	// slide names first as the start of the run [first, end) still held,
	// after release and done finished the positions before it.
	slide(first, end uint64)
	// done publishes the n messages of bytes bytes that take and release
	// finished since the last done, and wakes producers that sleep.
	done(n uint64, bytes int)
	// redelivered reports whether the message at pos may have been seen
	// already by a consumer that died, and counts it if so.
	redelivered(pos uint64) bool
	// receiveOne delivers the next message into buf, if there is one now:
	// the busy path of Receive in one call.
	receiveOne(buf []byte) (n int, typ int64, ok bool, err error)
	// close hands back what the consumer holds and has not delivered, for
	// another consumer, once no call is in flight.
	close()
}

// takeAttempts bounds the messages a call passes over because another
// consumer serving the same claim delivered them first.
const takeAttempts = 64

// NewConsumer takes a consumer role of the ring. In the single-consumer
// modes (SPSC, MPSC) it fails with [ErrRoleTaken] while another live process
// holds the role. A role whose holder died is taken over: the new consumer
// goes on with the next message not yet consumed, and a message the dead one
// was looking at in place is delivered again (see [Consumer.Peek]).
func (r *Ring) NewConsumer() (*Consumer, error) {
	if r.g.fan.on {
		return r.NewSubscriber(nil) // fanout.go
	}
	c := &Consumer{}
	h, err := r.take(consumerSide, func(h *handle, prev uint64) error {
		var err error
		switch {
		case r.g.selective:
			c.sel, err = newSelectReceiver(h, prev)
			c.d = c.sel
		case r.g.mode.multiConsumer():
			c.d, err = newMultiReceiver(h)
		default:
			c.d, err = newSingleReceiver(h)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	c.h = h
	switch d := c.d.(type) {
	case *multiReceiver:
		h.recoverPeers = d.recoverPeers
	case *selectReceiver:
		h.recoverPeers = d.recoverPeers
	default:
		h.recoverPeers = h.reapDead
	}
	h.closer = c.closeLocal
	if err := r.register(h); err != nil {
		return nil, errors.Join(err, h.close())
	}
	// Deaths before ours are not posted to us: look once.
	h.scanCheck()
	return c, nil
}

// selecting makes sel the selector of the call in progress (inside the
// guard: it writes our role line).
func (c *Consumer) selecting(sel ipc.Selector) error {
	if c.sel == nil && sel.Kind() == ipc.SelectAny {
		return nil // a plain call on a plain ring: one inlined test
	}
	return c.selectingSlow(sel)
}

func (c *Consumer) selectingSlow(sel ipc.Selector) error {
	if c.sel == nil {
		if sel.Kind() != ipc.SelectAny {
			return fmt.Errorf("%w: selector %v", ErrNotSelective, sel)
		}
		return nil
	}
	if !sel.Valid() {
		return fmt.Errorf("%w: selector %v", ErrBadType, sel)
	}
	c.sel.setSelector(sel)
	return nil
}

func tooLarge(size, buf int) error {
	return fmt.Errorf("%w: %d-byte message, %d-byte buffer", ErrTooLarge, size, buf)
}

// tryOne delivers the next message into buf, if there is one now.
func (c *Consumer) tryOne(buf []byte) (n int, typ int64, ok bool, err error) {
	return c.d.receiveOne(buf)
}

// receiveOne is receiver.receiveOne made of the discipline's steps.
func receiveOne(d receiver, r *Ring, buf []byte) (n int, typ int64, ok bool, err error) {
	passed := uint64(0)
	for attempt := 0; attempt < takeAttempts; attempt++ {
		pos, ok, err := d.next(1)
		if err != nil || !ok {
			return 0, 0, false, err
		}
		typ, msg, err := r.message(pos)
		if err != nil {
			if err != errSpanning {
				return 0, 0, false, err
			}
			n, typ, ok, pass, err := receiveSpan(d, r, pos, buf)
			if pass && err == nil && passed < r.n {
				passed++ // an orphan continuation, or a span another delivered
				attempt--
				continue
			}
			return n, typ, ok, err
		}
		if len(msg) > cap(buf) {
			return 0, 0, false, tooLarge(len(msg), cap(buf))
		}
		n := copy(buf[:cap(buf)], msg)
		if !d.take(pos) {
			continue
		}
		d.redelivered(pos)
		d.done(1, n)
		return n, typ, true, nil
	}
	return 0, 0, false, nil
}

// tryBatch delivers up to len(msgs) waiting messages into msgs. A message
// too large for its buffer ends the batch; if it is the first, the error
// says so and the message stays for a later call.
func (c *Consumer) tryBatch(msgs []Message) (got int, err error) {
	if c.fan != nil {
		return c.fanoutBatch(msgs) // consume_fanout.go
	}
	r := c.h.r
	bytes, passed := 0, uint64(0)
	for attempt := 0; got < len(msgs) && attempt < len(msgs)+takeAttempts; attempt++ {
		pos, ok, nerr := c.d.next(uint64(len(msgs) - got))
		if nerr != nil || !ok {
			err = nerr
			break
		}
		typ, msg, merr := r.message(pos)
		if merr != nil && merr == errSpanning {
			ok, pass, serr := c.batchSpan(pos, &msgs[got])
			switch {
			case ok:
				bytes += len(msgs[got].Data)
				got++
				continue
			case pass && serr == nil && passed < r.n:
				passed++ // an orphan continuation, or a span another delivered
				attempt--
				continue
			}
			err = serr // reported if first, as below
			break
		}
		if merr != nil {
			err = merr
			break
		}
		if len(msg) > cap(msgs[got].Data) {
			if got == 0 {
				err = tooLarge(len(msg), cap(msgs[got].Data))
			}
			break
		}
		n := copy(msgs[got].Data[:cap(msgs[got].Data)], msg)
		origin, resent := r.meta(pos) // before take gives the slot back
		if !c.d.take(pos) {
			continue
		}
		msgs[got].Redelivered = c.d.redelivered(pos) || resent
		msgs[got].Type, msgs[got].Data = typ, msgs[got].Data[:n]
		msgs[got].Origin, msgs[got].Seq = origin, pos
		bytes += n
		got++
	}
	if got > 0 {
		c.d.done(uint64(got), bytes)
		return got, nil // an error behind them comes again with the next call
	}
	return 0, err
}

// TryReceive copies the next message into buf and returns its length and
// type, or [ErrEmpty] if none is waiting. (Whether a message is a
// redelivery, Receive cannot say: [Consumer.Peek] and the batch calls can,
// and [Stats].Redelivered counts them all.) A message larger than cap(buf)
// gives [ErrTooLarge] and stays: the next receive of this consumer gets it
// (in the multi-consumer modes this consumer holds it; if it closes,
// another consumer gets it). It never blocks.
//
// Memory model: the Send that wrote the message synchronizes before the
// return of the call that delivers it.
func (c *Consumer) TryReceive(buf []byte) (n int, typ int64, err error) {
	return c.tryReceive(buf, ipc.Selector{})
}

// TryReceiveSelect is [Consumer.TryReceive] for the message sel selects,
// on a ring created for selective receive (see [Consumer.ReceiveSelect]).
func (c *Consumer) TryReceiveSelect(buf []byte, sel ipc.Selector) (n int, typ int64, err error) {
	return c.tryReceive(buf, sel)
}

func (c *Consumer) tryReceive(buf []byte, sel ipc.Selector) (n int, typ int64, err error) {
	// No defer: see guard.
	if !c.h.g.enter() {
		c.h.g.leave()
		return 0, 0, os.ErrClosed
	}
	if c.peeked {
		c.h.g.leave()
		return 0, 0, ErrPending
	}
	if err := c.selecting(sel); err != nil {
		c.h.g.leave()
		return 0, 0, err
	}
	n, typ, ok, err := c.tryOne(buf)
	if !ok && err == nil && c.h.stuck() {
		n, typ, ok, err = c.tryOne(buf)
	}
	c.h.g.leave()
	switch {
	case err != nil:
		return 0, 0, err
	case !ok:
		return 0, 0, ErrEmpty
	}
	return n, typ, nil
}

// Receive copies the next message into buf, waiting for one as the ring's
// wait strategy says, and returns its length and type. A message larger
// than cap(buf) gives [ErrTooLarge] and stays, as for TryReceive. When
// every producer has closed and the ring is empty it returns io.EOF (see
// [Consumer] for what that means with many producers); when no producer is
// left and one died, [ErrPeerDead] (after every message committed before
// the death); when ctx is done, ctx.Err(); when the ring is removed,
// [ErrRemoved]; when the Consumer or its Ring is closed meanwhile,
// os.ErrClosed. Receive allocates nothing.
//
// Memory model: as for [Consumer.TryReceive].
func (c *Consumer) Receive(ctx context.Context, buf []byte) (n int, typ int64, err error) {
	return c.receive(ctx, buf, ipc.Selector{})
}

// ReceiveSelect is [Consumer.Receive] for the message sel selects, with
// msgrcv's meaning: [ipc.AnyType], the oldest message; [ipc.OfType](t),
// the oldest of type t; [ipc.UpToType](t), the oldest of the lowest type
// at most t; [ipc.ExceptType](t), the oldest of another type. It needs a
// ring created with Options.Selective (otherwise only AnyType is allowed,
// and anything else gives [ErrNotSelective]); a selector with a type
// below 1 gives [ErrBadType].
//
// Messages no selector takes stay in the ring, as in a message queue, so
// a ring can fill with types nobody receives ([Stats].Depth shows it). A
// sleeping consumer is woken only by messages its selector may match. When
// every producer has closed and no message matches, it returns io.EOF,
// even if messages of other types remain.
func (c *Consumer) ReceiveSelect(ctx context.Context, buf []byte, sel ipc.Selector) (n int, typ int64, err error) {
	return c.receive(ctx, buf, sel)
}

func (c *Consumer) receive(ctx context.Context, buf []byte, sel ipc.Selector) (n int, typ int64, err error) {
	entered := c.h.g.enter()
	defer c.h.g.leave()
	if !entered {
		return 0, 0, os.ErrClosed
	}
	if c.peeked {
		return 0, 0, ErrPending
	}
	if err := c.selecting(sel); err != nil {
		return 0, 0, err
	}
	n, typ, ok, err := c.tryOne(buf)
	if !ok && err == nil {
		werr := c.h.waitFor(ctx, func() bool {
			n, typ, ok, err = c.tryOne(buf)
			return ok || err != nil
		})
		if werr != nil {
			return 0, 0, werr
		}
	}
	if err != nil {
		return 0, 0, err
	}
	return n, typ, nil
}

// TryReceiveBatch receives up to len(msgs) waiting messages, each copied
// into msgs[i].Data[:cap] with msgs[i].Type set and Data resliced, and
// returns how many. It wakes sleeping producers at most once. It returns
// [ErrEmpty] if none is waiting, and [ErrTooLarge] if the first does not fit
// its buffer.
func (c *Consumer) TryReceiveBatch(msgs []Message) (int, error) {
	return c.tryReceiveBatch(msgs, ipc.Selector{})
}

// TryReceiveBatchSelect is [Consumer.TryReceiveBatch] for the messages sel
// selects (see [Consumer.ReceiveSelect]), in the order it selects them.
func (c *Consumer) TryReceiveBatchSelect(msgs []Message, sel ipc.Selector) (int, error) {
	return c.tryReceiveBatch(msgs, sel)
}

func (c *Consumer) tryReceiveBatch(msgs []Message, sel ipc.Selector) (int, error) {
	entered := c.h.g.enter()
	defer c.h.g.leave()
	if !entered {
		return 0, os.ErrClosed
	}
	if c.peeked {
		return 0, ErrPending
	}
	if err := c.selecting(sel); err != nil {
		return 0, err
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	got, err := c.tryBatch(msgs)
	if got == 0 && err == nil && c.h.stuck() {
		got, err = c.tryBatch(msgs)
	}
	switch {
	case err != nil:
		return 0, err
	case got == 0:
		return 0, ErrEmpty
	}
	return got, nil
}

// ReceiveBatch is [Consumer.TryReceiveBatch] that waits, as Receive does,
// until at least one message is there, and returns the errors of Receive.
func (c *Consumer) ReceiveBatch(ctx context.Context, msgs []Message) (int, error) {
	return c.receiveBatch(ctx, msgs, ipc.Selector{})
}

// ReceiveBatchSelect is [Consumer.ReceiveBatch] for the messages sel
// selects (see [Consumer.ReceiveSelect]).
func (c *Consumer) ReceiveBatchSelect(ctx context.Context, msgs []Message, sel ipc.Selector) (int, error) {
	return c.receiveBatch(ctx, msgs, sel)
}

func (c *Consumer) receiveBatch(ctx context.Context, msgs []Message, sel ipc.Selector) (int, error) {
	entered := c.h.g.enter()
	defer c.h.g.leave()
	if !entered {
		return 0, os.ErrClosed
	}
	if c.peeked {
		return 0, ErrPending
	}
	if err := c.selecting(sel); err != nil {
		return 0, err
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	got, err := c.tryBatch(msgs)
	if got == 0 && err == nil {
		werr := c.h.waitFor(ctx, func() bool {
			got, err = c.tryBatch(msgs)
			return got > 0 || err != nil
		})
		if werr != nil {
			return 0, werr
		}
	}
	if err != nil {
		return 0, err
	}
	return got, nil
}

// Peeked is a message looked at in place by [Consumer.Peek].
type Peeked struct {
	Type int64
	// Data is the message in the ring's shared memory. It is valid only
	// until Release or Close of the Consumer, and must not be written.
	// (After Close, reading it does not fault, but it reads zeros.)
	Data []byte
	// Wrapped is the rest of a message that spans slots (Options.SlotSize)
	// and wraps at the end of the ring's payload area: the message is Data
	// followed by Wrapped. It is nil for every other message, and like
	// Data it is the ring's shared memory, valid until Release or Close.
	Wrapped []byte
	// Redelivered says that a consumer that died was looking at this
	// message in place when it died: it may have acted on it
	// (at-least-once delivery); or that its sender said it may have been
	// delivered before (see Message.Redelivered).
	Redelivered bool
	// Origin is the sender's tag (see Message.Origin).
	Origin uint64
	// Seq is the message's position in the ring (see Message.Seq).
	Seq uint64
}

// tryPeek takes the next message for in-place reading, claiming up to k
// positions if this consumer holds none (a batch holds the rest).
func (c *Consumer) tryPeek(k uint64) (Peeked, bool, error) {
	if c.fan != nil {
		return c.fanoutPeek(k) // consume_fanout.go
	}
	r := c.h.r
	passed := uint64(0)
	for attempt := 0; attempt < takeAttempts; attempt++ {
		pos, ok, err := c.d.next(k)
		if err != nil || !ok {
			return Peeked{}, false, err
		}
		if !c.d.hold(pos) {
			continue
		}
		typ, msg, err := r.message(pos)
		if err != nil && err == errSpanning {
			p, ok, pass, err := c.peekSpan(pos)
			if pass && passed < r.n {
				passed++ // an orphan continuation
				attempt--
				continue
			}
			return p, ok, err
		}
		if err != nil {
			c.d.release(pos)
			c.d.done(0, 0)
			return Peeked{}, false, err
		}
		c.peeked, c.peekPos, c.peekCount, c.peekLen = true, pos, 1, len(msg)
		return c.peekedAt(pos, typ, msg), true, nil
	}
	return Peeked{}, false, nil
}

// peekedAt is the Peeked of the message at pos, held by this consumer.
func (c *Consumer) peekedAt(pos uint64, typ int64, msg []byte) Peeked {
	origin, resent := c.h.r.meta(pos)
	return Peeked{Type: typ, Data: msg, Redelivered: c.d.redelivered(pos) || resent, Origin: origin, Seq: pos}
}

// tryPeekBatch holds the next messages in place, up to len(held): the one
// tryPeek holds, and those that follow it which the discipline can hold
// with it. A message that fails the checks after the first ends the batch
// (the next call reports it).
func (c *Consumer) tryPeekBatch(held []Peeked) (int, bool, error) {
	first, ok, err := c.tryPeek(uint64(len(held)))
	if !ok || err != nil {
		return 0, ok, err
	}
	held[0] = first
	if len(held) == 1 || c.peekSlots != 0 { // a span is held alone
		return 1, true, nil
	}
	r := c.h.r
	more := c.d.following(c.peekPos, uint64(len(held)-1))
	n := uint64(1)
	for ; n <= more; n++ {
		pos := c.peekPos + n
		typ, msg, err := r.message(pos)
		if err != nil {
			break // not held: the next call reports it
		}
		held[n] = c.peekedAt(pos, typ, msg)
		c.peekLen += len(msg)
	}
	if n > 1 {
		c.d.holdTo(c.peekPos, c.peekPos+n)
		c.peekCount = n
	}
	return int(n), true, nil
}

// TryPeekBatch is [Consumer.PeekBatch] without waiting: [ErrEmpty] if no
// message is waiting.
func (c *Consumer) TryPeekBatch(held []Peeked) (int, error) {
	if len(held) == 0 {
		return 0, nil
	}
	// No defer: see guard.
	if !c.h.g.enter() {
		c.h.g.leave()
		return 0, os.ErrClosed
	}
	n, err := c.peekBatchNow(held)
	c.h.g.leave()
	return n, err
}

// peekBatchNow is TryPeekBatch inside the guard.
func (c *Consumer) peekBatchNow(held []Peeked) (int, error) {
	if c.peeked {
		return 0, ErrPending
	}
	if err := c.selecting(ipc.Selector{}); err != nil {
		return 0, err
	}
	n, ok, err := c.tryPeekBatch(held)
	if !ok && err == nil && c.h.stuck() {
		n, ok, err = c.tryPeekBatch(held)
	}
	switch {
	case err != nil:
		return 0, err
	case !ok:
		return 0, ErrEmpty
	}
	return n, nil
}

// PeekBatch waits for the next message, as Peek does, and holds it in
// place with the messages waiting behind it, up to len(held) of them, in
// held[:n]; one [Consumer.Release] then finishes them all. It is for a
// consumer that hands messages on and may let each go only once the next
// stage has acknowledged it, with many in flight at once (a bridge to
// another transport, say). Only one Peek or PeekBatch may be outstanding.
// If this process dies before Release, every message of the batch is
// delivered again, flagged, as for Peek.
//
// A batch holds messages that follow one another in the ring, so it may
// be shorter than what is waiting: it ends before a slot a dead producer
// left empty, at the end of another consumer's claim that this one serves
// after it died, and, on a selective ring, after the first message (use
// PeekSelect there). Each held Data stays valid until Release or Close.
// [Consumer.TryPeekMore] holds more after the batch, and
// [Consumer.ReleaseFirst] finishes its oldest while the rest stay held: a
// window that slides along the ring.
func (c *Consumer) PeekBatch(ctx context.Context, held []Peeked) (int, error) {
	if len(held) == 0 {
		return 0, nil
	}
	entered := c.h.g.enter()
	defer c.h.g.leave()
	if !entered {
		return 0, os.ErrClosed
	}
	if c.peeked {
		return 0, ErrPending
	}
	if err := c.selecting(ipc.Selector{}); err != nil {
		return 0, err
	}
	n, ok, err := c.tryPeekBatch(held)
	if !ok && err == nil {
		werr := c.h.waitFor(ctx, func() bool {
			n, ok, err = c.tryPeekBatch(held)
			return ok || err != nil
		})
		if werr != nil {
			return 0, werr
		}
	}
	if err != nil {
		return 0, err
	}
	return n, nil
}

// TryPeek is [Consumer.Peek] without waiting: [ErrEmpty] if no message is
// waiting.
func (c *Consumer) TryPeek() (Peeked, error) { return c.tryPeekSel(ipc.Selector{}) }

// TryPeekSelect is [Consumer.TryPeek] for the message sel selects (see
// [Consumer.ReceiveSelect]).
func (c *Consumer) TryPeekSelect(sel ipc.Selector) (Peeked, error) { return c.tryPeekSel(sel) }

func (c *Consumer) tryPeekSel(sel ipc.Selector) (Peeked, error) {
	// No defer: see guard.
	if !c.h.g.enter() {
		c.h.g.leave()
		return Peeked{}, os.ErrClosed
	}
	m, err := c.peekNow(sel)
	c.h.g.leave()
	return m, err
}

// peekNow is TryPeek inside the guard.
func (c *Consumer) peekNow(sel ipc.Selector) (Peeked, error) {
	if c.peeked {
		return Peeked{}, ErrPending
	}
	if err := c.selecting(sel); err != nil {
		return Peeked{}, err
	}
	m, ok, err := c.tryPeek(1)
	if !ok && err == nil && c.h.stuck() {
		m, ok, err = c.tryPeek(1)
	}
	switch {
	case err != nil:
		return Peeked{}, err
	case !ok:
		return Peeked{}, ErrEmpty
	}
	return m, nil
}

// Peek waits for the next message, as Receive does, and returns it in place,
// without copying. The message stays taken by this consumer until
// [Consumer.Release]; only one may be outstanding. If this process dies
// before Release, the message is delivered again to the consumer that takes
// over the role (or, in the multi-consumer modes, to a live consumer that
// finds it), with Redelivered set: at-least-once delivery.
//
// Peeked.Data (and Peeked.Wrapped, the rest of a message spanning slots
// that wraps around the end of the ring) is the ring's shared memory:
// valid only until Release or Close, and never to be written.
func (c *Consumer) Peek(ctx context.Context) (Peeked, error) {
	return c.peek(ctx, ipc.Selector{})
}

// PeekSelect is [Consumer.Peek] for the message sel selects (see
// [Consumer.ReceiveSelect]).
func (c *Consumer) PeekSelect(ctx context.Context, sel ipc.Selector) (Peeked, error) {
	return c.peek(ctx, sel)
}

func (c *Consumer) peek(ctx context.Context, sel ipc.Selector) (Peeked, error) {
	entered := c.h.g.enter()
	defer c.h.g.leave()
	if !entered {
		return Peeked{}, os.ErrClosed
	}
	if c.peeked {
		return Peeked{}, ErrPending
	}
	if err := c.selecting(sel); err != nil {
		return Peeked{}, err
	}
	m, ok, err := c.tryPeek(1)
	if !ok && err == nil {
		werr := c.h.waitFor(ctx, func() bool {
			m, ok, err = c.tryPeek(1)
			return ok || err != nil
		})
		if werr != nil {
			return Peeked{}, werr
		}
	}
	if err != nil {
		return Peeked{}, err
	}
	return m, nil
}

// Release finishes the message returned by Peek, or all those PeekBatch
// and TryPeekMore returned and ReleaseFirst did not finish, giving their
// slots back to the producers. The Peeked data must not be used afterwards.
func (c *Consumer) Release() error {
	// No defer: see guard.
	if !c.h.g.enter() {
		c.h.g.leave()
		return os.ErrClosed
	}
	err := c.releasePeeked()
	c.h.g.leave()
	return err
}

// releasePeeked is Release inside the guard.
func (c *Consumer) releasePeeked() error {
	if !c.peeked {
		return ErrNotReserved
	}
	c.peeked = false
	if c.peekSlots != 0 {
		c.releaseSpan()
		return nil
	}
	for i := uint64(0); i < c.peekCount; i++ {
		c.d.release(c.peekPos + i)
	}
	c.d.done(c.peekCount, c.peekLen)
	if c.fan != nil {
		return c.fan.releaseErr() // ErrOverwritten
	}
	return nil
}

// Close gives up the consumer role. The ring keeps its messages for the
// next consumer; in the multi-consumer modes messages this consumer held
// and had not delivered (one too large for the buffer it was given, say) go
// to another consumer. A message still looked at in place (Peek without
// Release) is not consumed: it is delivered again, with Redelivered set,
// since the caller may have acted on it. Close may be called from any
// goroutine, also while a call of this Consumer is in flight; it is
// idempotent.
func (c *Consumer) Close() error { return c.h.close() }

// closeLocal is the consumer's part of Close, once no call is in flight. A
// message looked at in place and not released stays held, as if this
// consumer had died: whoever serves what it leaves delivers it again,
// flagged, and nobody refills its slot while the caller may still read it.
func (c *Consumer) closeLocal() (zeroCopyOut bool) {
	zeroCopyOut = c.peeked
	if c.peeked && c.sel != nil {
		c.sel.abandonPeek(c.peekPos)
	}
	c.peeked = false
	c.d.close()
	return zeroCopyOut
}
