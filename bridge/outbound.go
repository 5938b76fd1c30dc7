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
	core    coreMsg           // core NATS: the message runCore publishes, made again for each
}

// coreMsg is one NATS message that core publishing fills again for every
// ring message: nats.go encodes a message into its buffer as PublishMsg
// runs and keeps nothing of it, so one message, header map and value
// slices serve them all, and only the numbers' strings are made anew.
type coreMsg struct {
	msg        nats.Msg
	seq, count []string
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

// one is the value of a header that says yes.
var one = []string{"1"}

// coreMessage is the core NATS message of a ring message, in o.core:
// valid until the next call.
func (o *Outbound) coreMessage(typ int64, seq uint64, data []byte, redelivered bool) *nats.Msg {
	c := &o.core
	if c.msg.Header == nil {
		c.seq, c.count = make([]string, 1), make([]string, 1)
		c.msg.Header = nats.Header{HeaderRing: o.ringID, HeaderBridge: o.session, HeaderSeq: c.seq, HeaderCount: c.count}
	}
	subject := o.subjects.of(typ)
	o.counts[subject]++
	c.seq[0] = strconv.FormatUint(seq, 10)
	c.count[0] = strconv.FormatUint(o.counts[subject], 10)
	if redelivered {
		c.msg.Header[HeaderRedelivered] = one
	} else {
		delete(c.msg.Header, HeaderRedelivered)
	}
	c.msg.Subject, c.msg.Data = subject, data
	return &c.msg
}

// message makes the JetStream message of a ring message, with its
// Nats-Msg-Id. data is not copied: nats.go copies it into its buffer as it
// publishes.
func (o *Outbound) message(typ int64, seq uint64, data []byte, redelivered bool) *nats.Msg {
	h := make(nats.Header, 4)
	h[HeaderRing] = o.ringID
	s := strconv.FormatUint(seq, 10)
	h[HeaderSeq] = []string{s}
	if redelivered {
		h[HeaderRedelivered] = one
	}
	h[jetstream.MsgIDHeader] = []string{o.idPrefix + s}
	return &nats.Msg{Subject: o.subjects.of(typ), Header: h, Data: data}
}
