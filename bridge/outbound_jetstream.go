package bridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shmring/shmring/ring"
)

// flight is one ring message held in place on its way to JetStream.
type flight struct {
	msg   *nats.Msg              // nil: not published (a bridged message, skipped)
	ack   jetstream.PubAckFuture // nil: to be published (again)
	acked bool
	bytes int
}

// outWindow is what the ring → JetStream direction holds: the ring's held
// run, oldest first, in a circular buffer as long as the most it may hold.
type outWindow struct {
	f       []flight
	head, n int
	tries   int // rounds of republishing since the oldest last moved
}

func (w *outWindow) at(i int) *flight { return &w.f[(w.head+i)%len(w.f)] }

// chunk is the least room worth holding more for: the window grows by runs
// of at least a quarter of itself, which nats.go writes to the server in
// few large writes, rather than by one message per acknowledgement.
func (w *outWindow) chunk() int { return max(1, len(w.f)/4) }

// runJetStream streams the ring to JetStream: it keeps up to cfg.Batch
// messages held in place and published, holds more after them
// (Consumer.TryPeekMore) as their acknowledgements come, and releases the
// acknowledged run from the oldest (Consumer.ReleaseFirst): a message
// leaves the ring only once JetStream has it, and the round trip is paid
// once, not once per batch. Acknowledgements may come in any order; only a
// run of them from the oldest releases anything. With nothing held it
// waits for the ring in PeekBatch. When ctx is done it holds no more and
// waits, until hctx is done, for what is in flight; what is still held
// then stays in the ring, which delivers it again, flagged, to the next
// consumer (JetStream drops the duplicates by their Nats-Msg-Id).
func (o *Outbound) runJetStream(ctx, hctx context.Context) error {
	w := &outWindow{f: make([]flight, o.cfg.Batch)}
	held := make([]ring.Peeked, o.cfg.Batch)
	defer o.abandon(w)
	for {
		progress := false
		switch {
		case w.n == 0:
			if ctx.Err() != nil {
				return nil // everything held was acknowledged and released
			}
			n, err := o.cons.PeekBatch(ctx, held)
			if err != nil {
				if done, err := o.idle(ctx, err); done {
					return err
				}
				continue
			}
			o.hold(w, held[:n])
			progress = true
		case w.n <= len(w.f)-w.chunk() && ctx.Err() == nil:
			n, err := o.cons.TryPeekMore(held[:len(w.f)-w.n])
			switch {
			case err == nil:
				o.hold(w, held[:n])
				progress = true
			case !errors.Is(err, ring.ErrEmpty):
				_, err := o.idle(ctx, err) // closed, or the ring failed
				return err
			}
		}
		if k := o.ackedRun(w); k > 0 {
			if err := o.release(w, k); err != nil {
				return err
			}
			progress = true
		}
		if progress {
			continue
		}
		if err := o.await(hctx, w); err != nil {
			// Not acknowledged in time: what is held stays, and Close
			// leaves it to be delivered again.
			return nil
		}
	}
}

// hold adds the messages just held to the window and publishes them.
func (o *Outbound) hold(w *outWindow, held []ring.Peeked) {
	for i := range held {
		p := &held[i]
		f := w.at(w.n)
		w.n++
		*f = flight{}
		if p.Origin != 0 && !o.cfg.ForwardBridged {
			o.m.OutSkipped.Add(1)
		} else {
			f.msg = o.message(p.Type, p.Seq, p.Data, p.Redelivered)
			f.bytes = len(p.Data)
			o.publish(f)
		}
		*p = ring.Peeked{} // the window keeps what it needs
	}
}

// publish publishes f's message asynchronously; f.ack stays nil if it
// could not be (awaitOldest publishes it again).
func (o *Outbound) publish(f *flight) {
	a, err := o.js.PublishMsgAsync(f.msg)
	if err != nil {
		return
	}
	f.ack = a
	o.m.OutAcksPending.Add(1)
}

// settled looks, without waiting, whether f's acknowledgement (or its
// failure) has come, and records it.
func (o *Outbound) settled(f *flight) {
	if f.ack == nil || f.acked {
		return
	}
	select {
	case <-f.ack.Ok():
		f.acked = true
	case <-f.ack.Err():
		f.ack = nil
	default:
		return
	}
	o.m.OutAcksPending.Add(-1)
}

// ackedRun is how many messages from the oldest on are finished with:
// acknowledged, or not to be published.
func (o *Outbound) ackedRun(w *outWindow) int {
	k := 0
	for ; k < w.n; k++ {
		f := w.at(k)
		o.settled(f)
		if f.msg != nil && !f.acked {
			break
		}
	}
	return k
}

// release gives the k oldest messages of the window back to the ring.
func (o *Outbound) release(w *outWindow, k int) error {
	var msgs, bytes uint64
	for i := 0; i < k; i++ {
		f := w.at(i)
		if f.msg != nil {
			msgs++
			bytes += uint64(f.bytes)
		}
		*f = flight{} // its Data is the ring's, which the release gives back
	}
	w.head, w.n, w.tries = (w.head+k)%len(w.f), w.n-k, 0
	if err := o.cons.ReleaseFirst(k); err != nil {
		return fmt.Errorf("bridge: out ring %s: release: %w", o.cfg.Ring, err)
	}
	o.m.OutMessages.Add(msgs)
	o.m.OutBytes.Add(bytes)
	return nil
}

// await waits until the message of the window whose acknowledgement makes
// a chunk's room is acknowledged or fails (the oldest, if the window has
// the room already), or until ctx is done (then it returns ctx.Err()).
// Acknowledgements come in order but for failures, so the run before it is
// acknowledged too, mostly. If the oldest failed, or could not be
// published, it is published again, with the same Nats-Msg-Id and flagged,
// after a pause that grows with each round, together with every other one
// of the window that failed.
func (o *Outbound) await(ctx context.Context, w *outWindow) error {
	f := w.at(0)
	if i := w.chunk() - (len(w.f) - w.n) - 1; f.ack != nil && i > 0 {
		if g := w.at(min(i, w.n-1)); g.ack != nil && !g.acked {
			f = g
		}
	}
	if f.ack != nil {
		select {
		case <-f.ack.Ok():
			f.acked = true
		case <-f.ack.Err():
			f.ack = nil
		case <-ctx.Done():
			return ctx.Err()
		}
		o.m.OutAcksPending.Add(-1)
		if f.acked || f != w.at(0) {
			return nil // a later one that failed is published again once it is the oldest
		}
	}
	w.tries++
	if !sleepCtx(ctx, min(time.Duration(w.tries)*100*time.Millisecond, time.Second)) {
		return ctx.Err()
	}
	for i := 0; i < w.n; i++ {
		f := w.at(i)
		if o.settled(f); f.msg == nil || f.ack != nil {
			continue
		}
		f.msg.Header[HeaderRedelivered] = one
		o.m.OutRepublished.Add(1)
		o.publish(f)
	}
	return nil
}

// abandon stops counting the acknowledgements still awaited when Run
// returns; the messages stay held, for the next consumer.
func (o *Outbound) abandon(w *outWindow) {
	for i := 0; i < w.n; i++ {
		if f := w.at(i); f.ack != nil && !f.acked {
			o.m.OutAcksPending.Add(-1)
		}
	}
}
