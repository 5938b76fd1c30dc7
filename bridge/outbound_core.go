package bridge

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/shmring/shmring/ring"
)

// runCore copies batches out of the ring and publishes them, at most once:
// a message is gone from the ring once copied. A publish that fails (the
// reconnect buffer is full) is tried again until the grace after ctx ends.
func (o *Outbound) runCore(ctx, hctx context.Context) error {
	batch := make([]ring.Message, o.cfg.Batch)
	for i := range batch {
		batch[i].Data = make([]byte, o.ring.MaxMessage())
	}
	for {
		n, err := o.cons.ReceiveBatch(ctx, batch)
		if err != nil {
			if done, err := o.idle(ctx, err); done {
				return err
			}
			continue
		}
		for i := range batch[:n] {
			b := &batch[i]
			if b.Origin != 0 && !o.cfg.ForwardBridged {
				o.m.OutSkipped.Add(1)
				continue
			}
			m := o.coreMessage(b.Type, b.Seq, b.Data, b.Redelivered)
			for {
				err := o.nc.PublishMsg(m)
				if err == nil {
					break
				}
				if errors.Is(err, nats.ErrConnectionClosed) || !sleepCtx(hctx, 20*time.Millisecond) {
					return nil // lost: at most once
				}
			}
			o.m.OutMessages.Add(1)
			o.m.OutBytes.Add(uint64(len(b.Data)))
		}
	}
}
