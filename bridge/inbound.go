package bridge

import (
	"context"
	"errors"
	"fmt"
	"os"
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

	cons      jetstream.Consumer // JetStream only
	committed uint64             // JetStream only: the highest stream sequence committed to the ring
	gaps      map[gapKey]uint64  // core only: the last Shmring-Count seen
	origins   origins
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
