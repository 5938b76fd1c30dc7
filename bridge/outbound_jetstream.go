package bridge

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shmring/shmring/ring"
)

// runJetStream holds a batch in place, publishes it, waits for every
// acknowledgement and only then releases it.
func (o *Outbound) runJetStream(ctx, hctx context.Context) error {
	held := make([]ring.Peeked, o.cfg.Batch)
	msgs := make([]*nats.Msg, 0, o.cfg.Batch)
	futures := make([]jetstream.PubAckFuture, o.cfg.Batch)
	for {
		n, err := o.cons.PeekBatch(ctx, held)
		if err != nil {
			if done, err := o.idle(ctx, err); done {
				return err
			}
			continue
		}
		msgs = msgs[:0]
		var bytes uint64
		for i := range held[:n] {
			p := &held[i]
			if p.Origin != 0 && !o.cfg.ForwardBridged {
				o.m.OutSkipped.Add(1)
				continue
			}
			msgs = append(msgs, o.message(p.Type, p.Seq, p.Data, p.Redelivered, true))
			bytes += uint64(len(p.Data))
		}
		if err := o.publishAcked(hctx, msgs, futures); err != nil {
			// Not acknowledged in time: the batch stays held, and Close
			// leaves it to be delivered again.
			return nil
		}
		clear(held[:n])
		if err := o.cons.Release(); err != nil {
			return fmt.Errorf("bridge: out ring %s: release: %w", o.cfg.Ring, err)
		}
		o.m.OutMessages.Add(uint64(len(msgs)))
		o.m.OutBytes.Add(bytes)
	}
}

// publishAcked publishes msgs asynchronously and waits until JetStream has
// acknowledged each; those that fail or time out are published again, with
// the same Nats-Msg-Id and flagged, until ctx is done.
func (o *Outbound) publishAcked(ctx context.Context, msgs []*nats.Msg, futures []jetstream.PubAckFuture) error {
	pending := msgs
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt > 0 {
			o.m.OutRepublished.Add(uint64(len(pending)))
			if !sleepCtx(ctx, min(time.Duration(attempt)*100*time.Millisecond, time.Second)) {
				return ctx.Err()
			}
		}
		futures = futures[:len(pending)]
		for i, m := range pending {
			if attempt > 0 {
				m.Header[HeaderRedelivered] = one
			}
			f, err := o.js.PublishMsgAsync(m)
			if err != nil {
				futures[i] = nil
				continue
			}
			futures[i] = f
			o.m.OutAcksPending.Add(1)
		}
		failed := pending[:0]
		for i, f := range futures {
			if f == nil {
				failed = append(failed, pending[i])
				continue
			}
			select {
			case <-f.Ok():
			case <-f.Err():
				failed = append(failed, pending[i])
			case <-ctx.Done():
				for _, f := range futures[i:] {
					if f != nil {
						o.m.OutAcksPending.Add(-1)
					}
				}
				return ctx.Err()
			}
			o.m.OutAcksPending.Add(-1)
		}
		pending = failed
	}
	return nil
}
