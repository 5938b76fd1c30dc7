package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/ring"
)

// ringMode is the ring mode for p producers and c consumers.
func ringMode(p, c int) ring.Mode {
	switch {
	case p > 1 && c > 1:
		return ring.MPMC
	case p > 1:
		return ring.MPSC
	case c > 1:
		return ring.SPMC
	}
	return ring.SPSC
}

// spanGeometry is the slots of a ring for messages of size bytes through
// slots of slot bytes (-slot): with slot 0 or no smaller than size, slots
// slots of the message's size (slotSize 0); otherwise as many slots of
// slot bytes, which each message spans, as hold slots messages.
func spanGeometry(slots, size, slot int) (slotSize, n int) {
	if slot == 0 || size <= slot {
		return 0, slots
	}
	return slot, slots << bits.Len(uint((size+slot-1)/slot-1))
}

// setupRing creates the rings of a run: one for throughput, one per
// direction for ping-pong, each of cfg.slots slots of the message size.
func setupRing(cfg *config, c benchCase) (*runPlan, error) {
	plan := &runPlan{slots: cfg.slots}
	slotSize, slots := spanGeometry(cfg.slots, c.size, c.slot)
	plan.slots = slots
	create := func(p, n int) (*ring.Ring, error) {
		r, err := ring.Create(ipc.Private, &ring.Options{
			Mode:         ringMode(p, n),
			MaxMessage:   c.size,
			Slots:        slots,
			SlotSize:     slotSize,
			MaxProducers: p,
			MaxConsumers: n,
		})
		if err != nil {
			return nil, err
		}
		plan.own(r.Remove, ipcID{"shm", r.SegmentID()}, ipcID{"sem", r.SemaphoreID()})
		return r, nil
	}
	spec := childSpec{
		Transport: "ring", Size: c.size, Producers: c.producers, Consumers: c.consumers,
		Wait: cfg.wait.String(), Spin: cfg.spin, Batch: cfg.batch, ZeroCopy: cfg.zeroCopy, Spanning: slotSize > 0,
	}
	if c.mode == modeThroughput {
		r, err := create(c.producers, c.consumers)
		if err != nil {
			return plan, err
		}
		spec.Rings = []int{r.SegmentID()}
		for i := 0; i < c.producers; i++ {
			s := spec
			s.Role, s.Index = roleSend, i
			plan.children = append(plan.children, childPlan{spec: s})
		}
		for i := 0; i < c.consumers; i++ {
			s := spec
			s.Role, s.Index, s.Stats = roleRecv, i, i == 0
			plan.children = append(plan.children, childPlan{spec: s})
		}
	} else {
		there, err := create(1, 1)
		if err != nil {
			return plan, err
		}
		back, err := create(1, 1)
		if err != nil {
			return plan, err
		}
		spec.Rings = []int{there.SegmentID(), back.SegmentID()}
		ping, pong := spec, spec
		ping.Role, ping.Stats = rolePing, true
		pong.Role = rolePong
		plan.children = append(plan.children, childPlan{spec: ping}, childPlan{spec: pong})
	}
	pinChildren(cfg, plan.children)
	return plan, nil
}

// ringChild runs one side of a ring run.
func ringChild(s *childSpec, ses *session) (*childReport, error) {
	w, err := ring.ParseWaitStrategy(s.Wait)
	if err != nil {
		return nil, err
	}
	opts := &ring.OpenOptions{Wait: ring.Waiting{Strategy: w, Spin: s.Spin}}
	var rings []*ring.Ring
	defer func() {
		for _, r := range rings {
			r.Close()
		}
	}()
	for _, id := range s.Rings {
		r, err := ring.OpenID(id, opts)
		if err != nil {
			return nil, err
		}
		rings = append(rings, r)
	}
	pl := newPayload(s.Size)
	switch {
	case s.Role == roleSend && len(rings) == 1:
		return ringSend(s, ses, rings[0], pl)
	case s.Role == roleRecv && len(rings) == 1:
		return ringReceive(s, ses, rings[0], pl)
	case s.Role == rolePing && len(rings) == 2:
		return ringPing(s, ses, rings[0], rings[1], pl)
	case s.Role == rolePong && len(rings) == 2:
		return ringPong(s, ses, rings[0], rings[1], pl)
	}
	return nil, fmt.Errorf("ring: role %q with %d rings", s.Role, len(rings))
}

// ringSend sends as fast as it can until the measured interval ends, then
// closes its producer, which lets the consumers drain the ring and see
// io.EOF. It tries without waiting first and looks at the clock before it
// waits, so that a blocked producer still notices the end.
func ringSend(s *childSpec, ses *session, r *ring.Ring, pl *payload) (*childReport, error) {
	p, err := r.NewProducer()
	if err != nil {
		return nil, err
	}
	defer p.Close()
	m, err := ses.start()
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	typ := int64(s.Index + 1)
	var seq uint64
	next := uint64(tickEvery)
	switch {
	case s.ZeroCopy && s.Spanning: // the room of a message spanning slots, in one or two parts
		for {
			first, rest, err := p.ReserveSpan(ctx, s.Size)
			if err != nil {
				return nil, fmt.Errorf("reserve: %w", err)
			}
			pl.fillParts(first, rest, seq, s.Index)
			if err := p.Commit(typ, pl.size); err != nil {
				return nil, fmt.Errorf("commit: %w", err)
			}
			if seq++; seq == next {
				next += tickEvery
				if m.tick(seq) {
					break
				}
			}
		}
	case s.ZeroCopy:
		for {
			b, err := p.TryReserve()
			if errors.Is(err, ring.ErrFull) {
				if m.tick(seq) {
					break
				}
				b, err = p.Reserve(ctx)
			}
			if err != nil {
				return nil, fmt.Errorf("reserve: %w", err)
			}
			pl.fill(b, seq, s.Index)
			if err := p.Commit(typ, pl.size); err != nil {
				return nil, fmt.Errorf("commit: %w", err)
			}
			if seq++; seq == next {
				next += tickEvery
				if m.tick(seq) {
					break
				}
			}
		}
	case s.Batch > 1:
		msgs := make([]ring.Message, s.Batch)
		for i := range msgs {
			msgs[i] = ring.Message{Type: typ, Data: make([]byte, s.Size)}
		}
		for {
			for i := range msgs {
				pl.fill(msgs[i].Data, seq+uint64(i), s.Index)
			}
			k, err := p.TrySendBatch(msgs)
			if err != nil && !errors.Is(err, ring.ErrFull) {
				return nil, fmt.Errorf("send batch: %w", err)
			}
			if k < len(msgs) {
				if m.tick(seq + uint64(k)) {
					seq += uint64(k)
					break
				}
				if _, err := p.SendBatch(ctx, msgs[k:]); err != nil {
					return nil, fmt.Errorf("send batch: %w", err)
				}
			}
			if seq += uint64(len(msgs)); seq >= next {
				next = seq + tickEvery
				if m.tick(seq) {
					break
				}
			}
		}
	default:
		buf := make([]byte, s.Size)
		for {
			pl.fill(buf, seq, s.Index)
			err := p.TrySend(typ, buf)
			if errors.Is(err, ring.ErrFull) {
				if m.tick(seq) {
					break
				}
				err = p.Send(ctx, typ, buf)
			}
			if err != nil {
				return nil, fmt.Errorf("send: %w", err)
			}
			if seq++; seq == next {
				next += tickEvery
				if m.tick(seq) {
					break
				}
			}
		}
	}
	m.stop(seq)
	if err := p.Close(); err != nil {
		return nil, fmt.Errorf("close producer: %w", err)
	}
	return m.report(seq), nil
}

// ringReceive receives and checks until every producer has closed and the
// ring is drained.
func ringReceive(s *childSpec, ses *session, r *ring.Ring, pl *payload) (*childReport, error) {
	c, err := r.NewConsumer()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	m, err := ses.start()
	if err != nil {
		return nil, err
	}
	if s.Stats {
		m.semOps = func() uint64 { return r.Stats().SemOps() }
	}
	ctx := context.Background()
	tr := newTracker(pl, s.Producers, s.Consumers == 1)
	var got uint64
	next := uint64(tickEvery)
	switch {
	case s.ZeroCopy:
		for {
			pk, err := c.TryPeek()
			if errors.Is(err, ring.ErrEmpty) {
				m.tick(got)
				pk, err = c.Peek(ctx)
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, fmt.Errorf("receive: %w", err)
			}
			if err := tr.acceptParts(pk.Data, pk.Wrapped, int(pk.Type-1)); err != nil {
				return nil, err
			}
			if err := c.Release(); err != nil {
				return nil, fmt.Errorf("release: %w", err)
			}
			if got++; got == next {
				next += tickEvery
				m.tick(got)
			}
		}
	case s.Batch > 1:
		msgs := make([]ring.Message, s.Batch)
		for i := range msgs {
			msgs[i].Data = make([]byte, s.Size)
		}
		for {
			k, err := c.TryReceiveBatch(msgs)
			if errors.Is(err, ring.ErrEmpty) {
				m.tick(got)
				k, err = c.ReceiveBatch(ctx, msgs)
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, fmt.Errorf("receive: %w", err)
			}
			for i := range msgs[:k] {
				if err := tr.accept(msgs[i].Data, int(msgs[i].Type-1)); err != nil {
					return nil, err
				}
			}
			if got += uint64(k); got >= next {
				next = got + tickEvery
				m.tick(got)
			}
		}
	default:
		buf := make([]byte, s.Size)
		for {
			n, typ, err := c.TryReceive(buf)
			if errors.Is(err, ring.ErrEmpty) {
				m.tick(got)
				n, typ, err = c.Receive(ctx, buf)
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, fmt.Errorf("receive: %w", err)
			}
			if err := tr.accept(buf[:n], int(typ-1)); err != nil {
				return nil, err
			}
			if got++; got == next {
				next += tickEvery
				m.tick(got)
			}
		}
	}
	m.stop(got)
	return m.report(got), nil
}

// ringPair sends and receives one message at a time, copying or in place.
type ringPair struct {
	p    *ring.Producer
	c    *ring.Consumer
	pl   *payload
	zc   bool
	span bool // the ring's messages span slots: reserved with ReserveSpan
	sbuf []byte
	rbuf []byte
}

func newRingPair(s *childSpec, out, in *ring.Ring, pl *payload) (*ringPair, error) {
	p, err := out.NewProducer()
	if err != nil {
		return nil, err
	}
	c, err := in.NewConsumer()
	if err != nil {
		p.Close()
		return nil, err
	}
	return &ringPair{p: p, c: c, pl: pl, zc: s.ZeroCopy, span: s.Spanning, sbuf: make([]byte, s.Size), rbuf: make([]byte, s.Size)}, nil
}

func (rp *ringPair) close() error {
	return errors.Join(rp.p.Close(), rp.c.Close())
}

// send writes and sends message seq of sender.
func (rp *ringPair) send(ctx context.Context, seq uint64, sender int) error {
	if rp.zc && rp.span {
		first, rest, err := rp.p.ReserveSpan(ctx, rp.pl.size)
		if err != nil {
			return fmt.Errorf("reserve: %w", err)
		}
		rp.pl.fillParts(first, rest, seq, sender)
		return rp.p.Commit(1, rp.pl.size)
	}
	if rp.zc {
		b, err := rp.p.Reserve(ctx)
		if err != nil {
			return fmt.Errorf("reserve: %w", err)
		}
		rp.pl.fill(b, seq, sender)
		return rp.p.Commit(1, rp.pl.size)
	}
	rp.pl.fill(rp.sbuf, seq, sender)
	return rp.p.Send(ctx, 1, rp.sbuf)
}

// receive receives the next message and checks it as one from sender.
func (rp *ringPair) receive(ctx context.Context, tr *tracker, sender int) error {
	if rp.zc {
		pk, err := rp.c.Peek(ctx)
		if err != nil {
			return err
		}
		if err := tr.acceptParts(pk.Data, pk.Wrapped, sender); err != nil {
			return err
		}
		return rp.c.Release()
	}
	n, _, err := rp.c.Receive(ctx, rp.rbuf)
	if err != nil {
		return err
	}
	return tr.accept(rp.rbuf[:n], sender)
}

// ringPing is the initiator of a ring ping-pong: it sends on there,
// receives on back, and times each round trip.
func ringPing(s *childSpec, ses *session, there, back *ring.Ring, pl *payload) (*childReport, error) {
	rp, err := newRingPair(s, there, back, pl)
	if err != nil {
		return nil, err
	}
	defer rp.close()
	m, err := ses.start()
	if err != nil {
		return nil, err
	}
	if s.Stats {
		m.semOps = func() uint64 { return there.Stats().SemOps() + back.Stats().SemOps() }
	}
	ctx := context.Background()
	tr := newTracker(pl, 2, true)
	h := new(histogram)
	var seq uint64
	for {
		t0 := m.now()
		if err := rp.send(ctx, seq, 0); err != nil {
			return nil, fmt.Errorf("send request %d: %w", seq, err)
		}
		if err := rp.receive(ctx, tr, 1); err != nil {
			return nil, fmt.Errorf("receive reply %d: %w", seq, err)
		}
		t1 := m.now()
		measuring := m.measuring()
		seq++
		done := m.tickAt(t1, seq)
		if measuring {
			h.record(int64(t1 - t0))
		}
		if done {
			break
		}
	}
	if err := rp.close(); err != nil {
		return nil, err
	}
	rep := m.report(seq)
	rep.RTT = h.summary()
	return rep, nil
}

// ringPong is the responder of a ring ping-pong: it answers every request
// on there with a reply on back until the initiator closes.
func ringPong(s *childSpec, ses *session, there, back *ring.Ring, pl *payload) (*childReport, error) {
	rp, err := newRingPair(s, back, there, pl)
	if err != nil {
		return nil, err
	}
	defer rp.close()
	m, err := ses.start()
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	tr := newTracker(pl, 2, true)
	var seq uint64
	next := uint64(tickEvery)
	for {
		if err := rp.receive(ctx, tr, 0); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("receive request %d: %w", seq, err)
		}
		if err := rp.send(ctx, seq, 1); err != nil {
			return nil, fmt.Errorf("send reply %d: %w", seq, err)
		}
		if seq++; seq == next {
			next += tickEvery
			m.tick(seq)
		}
	}
	m.stop(seq)
	return m.report(seq), nil
}
