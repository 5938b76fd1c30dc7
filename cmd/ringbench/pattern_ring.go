package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/ring"
)

// setupRingPattern creates the ring of a pattern run: one selective MPMC
// ring of cfg.slots slots of the message size, with a producer and a
// consumer line for every process of the run.
func setupRingPattern(cfg *config, c benchCase) (*runPlan, error) {
	plan := &runPlan{slots: cfg.slots}
	roles := patternRoles(c.pattern, c.clients)
	r, err := ring.Create(ipc.Private, &ring.Options{
		Mode:         ring.MPMC,
		Selective:    true,
		MaxMessage:   c.size,
		Slots:        cfg.slots,
		MaxProducers: roles,
		MaxConsumers: roles,
	})
	if err != nil {
		return plan, err
	}
	plan.own(r.Remove, ipcID{"shm", r.SegmentID()}, ipcID{"sem", r.SemaphoreID()})
	spec := childSpec{
		Transport: "ring", Pattern: c.pattern, Clients: c.clients, Size: c.size,
		Producers: roles, Consumers: roles, Wait: cfg.wait.String(), Spin: cfg.spin,
		Rings: []int{r.SegmentID()},
	}
	plan.children = patternChildren(spec, c)
	pinChildren(cfg, plan.children)
	return plan, nil
}

// ringPatternChild runs one process of a ring pattern run: it takes a
// producer and a consumer role of the ring, as every process of the
// pattern both sends and receives.
func ringPatternChild(s *childSpec, ses *session) (*childReport, error) {
	w, err := ring.ParseWaitStrategy(s.Wait)
	if err != nil {
		return nil, err
	}
	if len(s.Rings) != 1 {
		return nil, fmt.Errorf("ring %s: %d rings, want 1", s.Pattern, len(s.Rings))
	}
	r, err := ring.OpenID(s.Rings[0], &ring.OpenOptions{Wait: ring.Waiting{Strategy: w, Spin: s.Spin}})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	p, err := r.NewProducer()
	if err != nil {
		return nil, err
	}
	defer p.Close()
	c, err := r.NewConsumer()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ps := &ringPatternSide{r: r, p: p, c: c, sbuf: make([]byte, s.Size), rbuf: make([]byte, s.Size)}
	var rep *childReport
	switch {
	case s.Role == roleChat && s.Index == 0:
		rep, err = ps.chatFirst(s, ses)
	case s.Role == roleChat && s.Index == 1:
		rep, err = ps.chatSecond(s, ses)
	case s.Role == roleServer:
		rep, err = ps.server(s, ses)
	case s.Role == roleClient:
		rep, err = ps.client(s, ses)
	default:
		return nil, fmt.Errorf("ring %s: role %q index %d", s.Pattern, s.Role, s.Index)
	}
	if err != nil {
		return nil, err
	}
	if err := errors.Join(p.Close(), c.Close()); err != nil {
		return nil, fmt.Errorf("close: %w", err)
	}
	return rep, nil
}

// ringPatternSide is one process of a ring pattern run.
type ringPatternSide struct {
	r          *ring.Ring
	p          *ring.Producer
	c          *ring.Consumer
	sbuf, rbuf []byte
}

// start waits for the start and has the meter count the ring's semaphore
// operations if this side reports them.
func (ps *ringPatternSide) start(s *childSpec, ses *session) (*meter, error) {
	m, err := ses.start()
	if err != nil {
		return nil, err
	}
	if s.Stats {
		m.semOps = func() uint64 { return ps.r.Stats().SemOps() }
	}
	return m, nil
}

// chatFirst is chat side 0: it sends a message of its type, receives the
// answer of side 1's type, and times the round trip.
func (ps *ringPatternSide) chatFirst(s *childSpec, ses *session) (*childReport, error) {
	pl := newPayload(s.Size)
	tr := newTracker(pl, 2, true)
	h := new(histogram)
	self, peer := int64(chatType), ipc.OfType(chatType+1)
	m, err := ps.start(s, ses)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	var seq uint64
	for {
		t0 := m.now()
		pl.fill(ps.sbuf, seq, 0)
		if err := ps.p.Send(ctx, self, ps.sbuf); err != nil {
			return nil, fmt.Errorf("send %d: %w", seq, err)
		}
		n, typ, err := ps.c.ReceiveSelect(ctx, ps.rbuf, peer)
		if err != nil {
			return nil, fmt.Errorf("receive answer %d: %w", seq, err)
		}
		if typ != chatType+1 {
			return nil, fmt.Errorf("chat side 0 received type %d with %v", typ, peer)
		}
		if err := tr.accept(ps.rbuf[:n], 1); err != nil {
			return nil, err
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
	if err := ps.p.Send(ctx, self, nil); err != nil {
		return nil, fmt.Errorf("send end: %w", err)
	}
	rep := m.report(seq)
	rep.RTT = h.summary()
	return rep, nil
}

// chatSecond is chat side 1: it answers every message of side 0's type
// with one of its own type until side 0's empty end message.
func (ps *ringPatternSide) chatSecond(s *childSpec, ses *session) (*childReport, error) {
	pl := newPayload(s.Size)
	tr := newTracker(pl, 2, true)
	self, peer := int64(chatType+1), ipc.OfType(chatType)
	m, err := ps.start(s, ses)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	var seq uint64
	next := uint64(tickEvery)
	for {
		n, typ, err := ps.c.ReceiveSelect(ctx, ps.rbuf, peer)
		if err != nil {
			return nil, fmt.Errorf("receive %d: %w", seq, err)
		}
		if typ != chatType {
			return nil, fmt.Errorf("chat side 1 received type %d with %v", typ, peer)
		}
		if n == 0 {
			break
		}
		if err := tr.accept(ps.rbuf[:n], 0); err != nil {
			return nil, err
		}
		pl.fill(ps.sbuf, seq, 1)
		if err := ps.p.Send(ctx, self, ps.sbuf); err != nil {
			return nil, fmt.Errorf("send answer %d: %w", seq, err)
		}
		if seq++; seq == next {
			next += tickEvery
			m.tick(seq)
		}
	}
	m.stop(seq)
	return m.report(seq), nil
}

// server answers every request (type 1) with a reply of the type the
// request carries, until every client has sent its end. It tries without
// waiting first and looks at the clock before it waits, so that its
// measured interval ends on time.
func (ps *ringPatternSide) server(s *childSpec, ses *session) (*childReport, error) {
	sb := newServerBook(s.Size, s.Clients)
	sel := ipc.OfType(requestType)
	m, err := ps.start(s, ses)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	var served uint64
	next := uint64(tickEvery)
	// The server never waits to send while a request may wait for it: on
	// one ring, the slot its reply needs may hold a request only it takes
	// (a message holds its slot until it is taken). A reply that finds the
	// ring full waits in pending, at most one per client, while the
	// server goes on receiving.
	var pending []pendingReply
	for !sb.done() || len(pending) > 0 {
		for len(pending) > 0 {
			pr := pending[0]
			err := ps.p.TrySend(pr.typ, pr.data)
			if errors.Is(err, ring.ErrFull) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("send reply: %w", err)
			}
			pending = pending[1:]
			if served++; served == next {
				next += tickEvery
				m.tick(served)
			}
		}
		if sb.done() {
			runtime.Gosched() // only replies are left: their clients free the ring
			continue
		}
		n, typ, err := ps.c.TryReceiveSelect(ps.rbuf, sel)
		if errors.Is(err, ring.ErrEmpty) {
			m.tick(served)
			if len(pending) > 0 {
				runtime.Gosched() // a reply waits for room; look for requests again
				continue
			}
			n, typ, err = ps.c.ReceiveSelect(ctx, ps.rbuf, sel)
		}
		if err != nil {
			return nil, fmt.Errorf("receive request: %w", err)
		}
		index, seq, end, err := sb.request(ps.rbuf[:n], typ)
		if err != nil {
			return nil, err
		}
		if end {
			continue
		}
		typ = sb.reply(ps.sbuf, index, seq)
		if len(pending) == 0 {
			err := ps.p.TrySend(typ, ps.sbuf)
			if err == nil {
				if served++; served == next {
					next += tickEvery
					m.tick(served)
				}
				continue
			}
			if !errors.Is(err, ring.ErrFull) {
				return nil, fmt.Errorf("send reply %d to client %d: %w", seq, index, err)
			}
		}
		pending = append(pending, pendingReply{typ, append([]byte(nil), ps.sbuf...)})
	}
	m.stop(served)
	return m.report(served), nil
}

// pendingReply is a reply the server could not send yet.
type pendingReply struct {
	typ  int64
	data []byte
}

// client sends requests of type 1 that carry its pid and receives the
// replies of that type, one at a time, timing each round trip, until the
// measured interval ends; then it sends its end.
func (ps *ringPatternSide) client(s *childSpec, ses *session) (*childReport, error) {
	cb := newClientBook(s.Size, os.Getpid(), s.Index)
	sel := ipc.OfType(cb.replyType())
	h := new(histogram)
	m, err := ps.start(s, ses)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	var seq uint64
	for {
		t0 := m.now()
		cb.fillRequest(ps.sbuf, seq)
		if err := ps.p.Send(ctx, requestType, ps.sbuf); err != nil {
			return nil, fmt.Errorf("send request %d: %w", seq, err)
		}
		n, typ, err := ps.c.ReceiveSelect(ctx, ps.rbuf, sel)
		if err != nil {
			return nil, fmt.Errorf("receive reply %d: %w", seq, err)
		}
		if err := cb.checkReply(ps.rbuf[:n], typ); err != nil {
			return nil, err
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
	if err := ps.p.Send(ctx, requestType, cb.endMarker(ps.sbuf)); err != nil {
		return nil, fmt.Errorf("send end: %w", err)
	}
	rep := m.report(seq)
	rep.RTT = h.summary()
	rep.Hist = h.buckets()
	return rep, nil
}
