package bridge

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shmring/shmring/ring"
)

// durableConsumer makes the stream if need be and the pull consumer. Each
// message is acknowledged on its own (an acknowledgement of all up to one
// would also acknowledge what a bridge that died had pulled and never
// committed), and at most a batch may await its acknowledgement: so after
// a bridge dies, its successor gets nothing until the dead one's batch
// comes again, first and in order.
func durableConsumer(ctx context.Context, nc *nats.Conn, cfg InboundConfig) (jetstream.Consumer, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	if err := ensureStream(ctx, js, cfg.Stream, []string{cfg.Subject}, DefaultDuplicates); err != nil {
		return nil, err
	}
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		cons, err := js.CreateOrUpdateConsumer(cctx, cfg.Stream, jetstream.ConsumerConfig{
			Durable:       cfg.Durable,
			FilterSubject: cfg.Subject,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       ackWait,
			MaxAckPending: cfg.Batch,
			DeliverPolicy: jetstream.DeliverAllPolicy,
		})
		cancel()
		if err == nil {
			return cons, nil
		}
		if !sleepCtx(ctx, 250*time.Millisecond) {
			return nil, fmt.Errorf("bridge: consumer %s on %s: %w", cfg.Durable, cfg.Stream, err)
		}
	}
}

// runJetStream pulls what the ring has room for, sends it and acknowledges
// each message once committed.
func (in *Inbound) runJetStream(ctx, hctx context.Context) error {
	fetched := make([]jetstream.Msg, 0, in.cfg.Batch)
	batch := make([]ring.Message, 0, in.cfg.Batch)
	source := make([]int, 0, in.cfg.Batch)    // batch[i] is fetched[source[i]]
	streamSeq := make([]uint64, in.cfg.Batch) // and has stream sequence streamSeq[i]
	idle := true
	for ctx.Err() == nil {
		// A fetch returns once it has all it asked for or its wait is
		// over: while messages flow, take what is there now; when none
		// was, wait for the next one alone.
		var b jetstream.MessageBatch
		var err error
		if idle {
			b, err = in.cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
		} else {
			b, err = in.cons.FetchNoWait(in.room())
		}
		if err != nil {
			idle = true
			sleepCtx(ctx, 100*time.Millisecond)
			continue
		}
		fetched, batch, source = fetched[:0], batch[:0], source[:0]
		for msg := range b.Messages() {
			fetched = append(fetched, msg)
		}
		if idle = len(fetched) == 0; idle {
			continue
		}
		for i, msg := range fetched {
			typ := messageType(&nats.Msg{Subject: msg.Subject(), Header: msg.Headers()}, in.cfg.DefaultType)
			if typ == 0 || len(msg.Data()) > in.ring.MaxMessage() {
				in.m.InRefused.Add(1)
				msg.Term()
				continue
			}
			redelivered := msg.Headers().Get(HeaderRedelivered) != ""
			streamSeq[len(batch)] = 0
			if md, err := msg.Metadata(); err == nil {
				// A server that died may come back with its consumer's
				// state older than what this bridge committed, and deliver
				// that again as new: what is not past the highest stream
				// sequence committed is a redelivery too.
				if md.NumDelivered > 1 || md.Sequence.Stream <= in.committed {
					redelivered = true
				}
				streamSeq[len(batch)] = md.Sequence.Stream
			}
			batch = append(batch, ring.Message{
				Type:        typ,
				Data:        msg.Data(),
				Origin:      in.origins.of(msg.Subject(), msg.Headers()),
				Redelivered: redelivered,
			})
			source = append(source, i)
		}
		sent, err := in.send(hctx, batch, func() {
			for _, msg := range fetched {
				msg.InProgress()
			}
		})
		in.count(batch[:sent])
		for j, i := range source[:sent] {
			fetched[i].Ack()
			in.committed = max(in.committed, streamSeq[j])
		}
		if err != nil {
			return in.stopped(err)
		}
	}
	return nil
}
