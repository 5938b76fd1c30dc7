package bridge

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shmring/shmring/ring"
)

// ackWait is the JetStream consumer's acknowledgement wait: how long after
// a bridge died the messages it had pulled and not acknowledged are
// delivered again. While a batch waits for room in a full ring, Inbound
// tells the server it is still at work on it every ackWait/3, so that a
// slow ring does not cause redeliveries.
const ackWait = 10 * time.Second

// Inbound sends what it receives from NATS into one ring: it holds a
// producer role of the ring. It belongs to one goroutine ([Inbound.Run]);
// [Inbound.Close] may be called from any.
type Inbound struct {
	cfg  InboundConfig
	ring *ring.Ring
	prod *ring.Producer
	nc   *nats.Conn
	m    *Metrics
	logf func(string, ...any)

	cons jetstream.Consumer // JetStream only
	gaps map[gapKey]uint64  // core only: the last Shmring-Count seen
}

// gapKey is one outbound bridge's numbering of one subject.
type gapKey struct{ session, subject string }

// NewInbound opens the ring cfg names, to wait on it as wait says, and
// takes a producer role of it.
// With cfg.JetStream it makes the stream unless it exists and creates or
// updates the durable consumer, waiting for the server until ctx is done.
func NewInbound(ctx context.Context, nc *nats.Conn, cfg InboundConfig, wait ring.Waiting, m *Metrics, logf func(string, ...any)) (*Inbound, error) {
	addr, err := ParseRingAddr(cfg.Ring)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	r, err := addr.Open(wait)
	if err != nil {
		return nil, fmt.Errorf("bridge: in ring %s: %w", cfg.Ring, err)
	}
	in := &Inbound{cfg: cfg, ring: r, nc: nc, m: m, logf: logf, gaps: map[gapKey]uint64{}}
	if cfg.JetStream {
		if in.cons, err = durableConsumer(ctx, nc, cfg); err != nil {
			r.Close()
			return nil, err
		}
	}
	if in.prod, err = r.NewProducer(); err != nil {
		r.Close()
		return nil, fmt.Errorf("bridge: in ring %s: %w", cfg.Ring, err)
	}
	return in, nil
}

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

// Run receives until ctx is done or the ring fails. A batch under way when
// ctx is done gets grace more to be committed and acknowledged; with
// JetStream, what is not acknowledged by then is delivered again, flagged,
// to the next bridge.
func (in *Inbound) Run(ctx context.Context, grace time.Duration) error {
	hctx, cancel := graceContext(ctx, grace)
	defer cancel()
	if in.cons != nil {
		return in.runJetStream(ctx, hctx)
	}
	return in.runCore(ctx, hctx)
}

// Close gives the producer role back and detaches the ring.
func (in *Inbound) Close() error {
	return errors.Join(in.prod.Close(), in.ring.Close())
}

// room is how many messages to pull now: as many as the ring has free
// slots, at least one (which then waits for a slot), at most a batch.
func (in *Inbound) room() int {
	free := in.ring.Slots() - in.ring.Stats().Depth
	return max(1, min(free, in.cfg.Batch))
}

// runJetStream pulls what the ring has room for, sends it and acknowledges
// each message once committed.
func (in *Inbound) runJetStream(ctx, hctx context.Context) error {
	fetched := make([]jetstream.Msg, 0, in.cfg.Batch)
	batch := make([]ring.Message, 0, in.cfg.Batch)
	source := make([]int, 0, in.cfg.Batch) // batch[i] is fetched[source[i]]
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
			if md, err := msg.Metadata(); err == nil && md.NumDelivered > 1 {
				redelivered = true
			}
			batch = append(batch, ring.Message{
				Type:        typ,
				Data:        msg.Data(),
				Origin:      messageOrigin(&nats.Msg{Subject: msg.Subject(), Header: msg.Headers()}),
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
		for _, i := range source[:sent] {
			fetched[i].Ack()
		}
		if err != nil {
			return in.stopped(err)
		}
	}
	return nil
}

// send commits batch to the ring, waiting for room, and returns how many
// it sent. Each time the wait has lasted a third of the ack wait, it calls
// stillWorking.
func (in *Inbound) send(ctx context.Context, batch []ring.Message, stillWorking func()) (int, error) {
	sent := 0
	for sent < len(batch) {
		sctx, cancel := context.WithTimeout(ctx, ackWait/3)
		n, err := in.prod.SendBatch(sctx, batch[sent:])
		cancel()
		sent += n
		if err == nil {
			continue
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			if stillWorking != nil {
				stillWorking()
			}
			continue
		}
		return sent, err
	}
	return sent, nil
}

// count adds committed messages to the metrics.
func (in *Inbound) count(sent []ring.Message) {
	for i := range sent {
		in.m.InBytes.Add(uint64(len(sent[i].Data)))
		if sent[i].Redelivered {
			in.m.InRedelivered.Add(1)
		}
	}
	in.m.InMessages.Add(uint64(len(sent)))
}

// stopped turns the error that ended a send into Run's result: none when
// the bridge is shutting down.
func (in *Inbound) stopped(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrClosed) {
		return nil
	}
	return fmt.Errorf("bridge: in ring %s: %w", in.cfg.Ring, err)
}

// runCore receives from a core NATS subscription into a buffer of
// cfg.Pending messages (beyond it NATS drops, counted) and sends each batch
// into the ring, waiting for room. When ctx is done it unsubscribes and
// sends what the buffer still holds, within the grace.
func (in *Inbound) runCore(ctx, hctx context.Context) error {
	ch := make(chan *nats.Msg, in.cfg.Pending)
	sub, err := in.nc.ChanSubscribe(in.cfg.Subject, ch)
	if err != nil {
		return fmt.Errorf("bridge: subscribe %s: %w", in.cfg.Subject, err)
	}
	batch := make([]ring.Message, 0, in.cfg.Batch)
	for {
		var first *nats.Msg
		select {
		case first = <-ch:
		case <-ctx.Done():
		}
		if first == nil {
			break
		}
		batch = in.collect(batch[:0], first, ch)
		sent, err := in.send(hctx, batch, nil)
		in.count(batch[:sent])
		if d, err := sub.Dropped(); err == nil {
			in.m.InDropped.Store(uint64(d))
		}
		if err != nil {
			sub.Unsubscribe()
			return in.stopped(err)
		}
	}
	sub.Unsubscribe()
	for len(ch) > 0 && hctx.Err() == nil {
		batch = in.collect(batch[:0], <-ch, ch)
		sent, err := in.send(hctx, batch, nil)
		in.count(batch[:sent])
		if err != nil {
			return in.stopped(err)
		}
	}
	return nil
}

// collect makes a batch of first and what else ch holds now.
func (in *Inbound) collect(batch []ring.Message, first *nats.Msg, ch chan *nats.Msg) []ring.Message {
	for m := first; ; {
		in.noteCount(m)
		if typ := messageType(m, in.cfg.DefaultType); typ == 0 || len(m.Data) > in.ring.MaxMessage() {
			in.m.InRefused.Add(1)
		} else {
			batch = append(batch, ring.Message{
				Type:        typ,
				Data:        m.Data,
				Origin:      messageOrigin(m),
				Redelivered: m.Header.Get(HeaderRedelivered) != "",
			})
		}
		if len(batch) == cap(batch) {
			return batch
		}
		if len(ch) == 0 {
			// Let the client's reader go on a moment: one wake-up of the
			// ring's consumer for many messages costs far less than one
			// each, and a yield costs far less than a wake-up.
			for yields := 0; len(ch) == 0 && yields < collectYields; yields++ {
				runtime.Gosched()
			}
			if len(ch) == 0 {
				return batch
			}
		}
		m = <-ch
	}
}

// collectYields is how often collect yields to the NATS client's reader
// for more messages before it sends a batch.
const collectYields = 4

// noteCount follows an outbound bridge's numbering of each subject and
// counts the numbers that never came as lost.
func (in *Inbound) noteCount(m *nats.Msg) {
	session, count := m.Header.Get(HeaderBridge), m.Header.Get(HeaderCount)
	if session == "" || count == "" {
		return
	}
	n, err := strconv.ParseUint(count, 10, 64)
	if err != nil {
		return
	}
	k := gapKey{session, m.Subject}
	last, seen := in.gaps[k]
	if seen && n > last+1 {
		in.m.InLost.Add(n - last - 1)
	}
	if n > last {
		if len(in.gaps) >= 1<<16 {
			clear(in.gaps)
		}
		in.gaps[k] = n
	}
}
