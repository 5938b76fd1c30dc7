package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shmring/shmring/ring"
)

// idlePoll is how often Outbound looks again at a ring that has no
// producer left (io.EOF, ring.ErrPeerDead): a producer may attach later.
const idlePoll = 50 * time.Millisecond

// Outbound drains one ring into NATS: it holds a consumer role of the ring
// and publishes every message to <prefix>.<type>. It belongs to one
// goroutine ([Outbound.Run]); [Outbound.Close] may be called from any.
type Outbound struct {
	cfg      OutboundConfig
	ring     *ring.Ring
	cons     *ring.Consumer
	nc       *nats.Conn
	js       jetstream.JetStream // nil for core NATS
	m        *Metrics
	logf     func(string, ...any)
	subjects *subjects
	ringID   []string // the Shmring-Ring header's value
	idPrefix string   // "<ring uuid>-", the start of every Nats-Msg-Id

	session []string          // core NATS: the Shmring-Bridge header's value
	counts  map[string]uint64 // core NATS: messages published per subject
}

// NewOutbound opens the ring cfg names, to wait on it as wait says, and
// takes a consumer role of it. With cfg.JetStream it makes the stream unless
// it exists, waiting for the server until ctx is done.
func NewOutbound(ctx context.Context, nc *nats.Conn, cfg OutboundConfig, wait ring.Waiting, m *Metrics, logf func(string, ...any)) (*Outbound, error) {
	addr, err := ParseRingAddr(cfg.Ring)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	r, err := addr.Open(wait)
	if err != nil {
		return nil, fmt.Errorf("bridge: out ring %s: %w", cfg.Ring, err)
	}
	o := &Outbound{
		cfg: cfg, ring: r, nc: nc, m: m, logf: logf,
		subjects: newSubjects(cfg.Prefix),
		ringID:   []string{r.Header().InstanceID.String()},
		session:  []string{uuid.NewString()},
		counts:   map[string]uint64{},
	}
	o.idPrefix = o.ringID[0] + "-"
	if cfg.JetStream {
		o.js, err = jetstream.New(nc,
			jetstream.WithPublishAsyncMaxPending(2*cfg.Batch),
			jetstream.WithPublishAsyncTimeout(time.Duration(cfg.AckTimeout)))
		if err == nil {
			err = ensureStream(ctx, o.js, cfg.Stream, []string{cfg.Prefix + ".>"}, time.Duration(cfg.Duplicates))
		}
		if err != nil {
			r.Close()
			return nil, err
		}
	}
	if o.cons, err = r.NewConsumer(); err != nil {
		r.Close()
		return nil, fmt.Errorf("bridge: out ring %s: %w", cfg.Ring, err)
	}
	return o, nil
}

// Run publishes the ring's messages until ctx is done or the ring fails
// (it is removed, say). What it holds when ctx is done gets grace more to
// be published and acknowledged; what is still held after that stays in
// the ring, which delivers it again, flagged, to the next consumer.
func (o *Outbound) Run(ctx context.Context, grace time.Duration) error {
	hctx, cancel := graceContext(ctx, grace)
	defer cancel()
	if o.js != nil {
		return o.runJetStream(ctx, hctx)
	}
	return o.runCore(ctx, hctx)
}

// Close gives the consumer role back and detaches the ring. Messages held
// and not released are delivered again, flagged.
func (o *Outbound) Close() error {
	return errors.Join(o.cons.Close(), o.ring.Close())
}

// idle reports whether err says only that the ring has no producer now,
// after waiting a little for one; done reports whether Run should return.
func (o *Outbound) idle(ctx context.Context, err error) (done bool, _ error) {
	switch {
	case ctx.Err() != nil, errors.Is(err, os.ErrClosed):
		return true, nil
	case errors.Is(err, io.EOF), errors.Is(err, ring.ErrPeerDead):
		return !sleepCtx(ctx, idlePoll), nil
	}
	return true, fmt.Errorf("bridge: out ring %s: %w", o.cfg.Ring, err)
}

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

// one is the value of a header that says yes.
var one = []string{"1"}

// message makes the NATS message of a ring message. data is not copied:
// nats.go copies it into its buffer as it publishes.
func (o *Outbound) message(typ int64, seq uint64, data []byte, redelivered, jetStream bool) *nats.Msg {
	subject := o.subjects.of(typ)
	h := make(nats.Header, 6)
	h[HeaderRing] = o.ringID
	s := strconv.FormatUint(seq, 10)
	h[HeaderSeq] = []string{s}
	if redelivered {
		h[HeaderRedelivered] = one
	}
	if jetStream {
		h[jetstream.MsgIDHeader] = []string{o.idPrefix + s}
	} else {
		o.counts[subject]++
		h[HeaderBridge] = o.session
		h[HeaderCount] = []string{strconv.FormatUint(o.counts[subject], 10)}
	}
	return &nats.Msg{Subject: subject, Header: h, Data: data}
}

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
			m := o.message(b.Type, b.Seq, b.Data, b.Redelivered, false)
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
