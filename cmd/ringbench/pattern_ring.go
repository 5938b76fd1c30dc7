package main

import (
	"context"
	"errors"
	"fmt"
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
		rep, err = chatFirst(ps, s, ses)
	case s.Role == roleChat && s.Index == 1:
		rep, err = chatSecond(ps, s, ses)
	case s.Role == roleServer:
		rep, err = ps.server(s, ses)
	case s.Role == roleClient:
		rep, err = patternClient(ps, s, ses)
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
// operations if this side reports them. It and the three methods after it
// make a ringPatternSide a patternPort.
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

func (ps *ringPatternSide) sendBuf() []byte { return ps.sbuf }

func (ps *ringPatternSide) send(ctx context.Context, typ int64, b []byte) error {
	return ps.p.Send(ctx, typ, b)
}

func (ps *ringPatternSide) receive(ctx context.Context, sel ipc.Selector) ([]byte, int64, error) {
	n, typ, err := ps.c.ReceiveSelect(ctx, ps.rbuf, sel)
	return ps.rbuf[:n], typ, err
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
