package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/msgq"
)

// Message types on a msgq ping-pong queue. In throughput runs the type is
// the sender's index + 1, and an empty message of any type is the end
// marker the parent sends once every sender is done.
const (
	msgqRequest = 1
	msgqReply   = 2
)

// setupMsgq creates the queue of a run and sets its byte limit to the
// ring's capacity, slots × size, so that both hold as many messages. Above
// msgmnb that takes CAP_SYS_RESOURCE; without it the queue keeps its limit
// and the result says so.
func setupMsgq(cfg *config, c benchCase) (*runPlan, error) {
	plan := &runPlan{}
	q, err := msgq.Create(ipc.Private, nil)
	if err != nil {
		return plan, err
	}
	plan.own(q.Remove, ipcID{"msg", q.ID()})
	want := cfg.slots * c.size
	serr := q.SetMaxBytes(want)
	if serr != nil && !errors.Is(serr, fs.ErrPermission) {
		return plan, serr
	}
	info, err := q.Stat()
	if err != nil {
		return plan, err
	}
	plan.queueBytes = int(info.MaxBytes)
	if serr != nil {
		debugf("msgq %d: %v", q.ID(), serr)
		why := "the kernel refused"
		if lim, err := msgq.SystemLimits(); err == nil && want > lim.MaxQueueBytes {
			why = fmt.Sprintf("above msgmnb (%d B) that needs CAP_SYS_RESOURCE, which ringbench lacks", lim.MaxQueueBytes)
		}
		plan.note = fmt.Sprintf("ran with a queue byte limit of %d B (%d messages), not the ring's %d B (%d slots × %d B): %s",
			info.MaxBytes, int(info.MaxBytes)/c.size, want, cfg.slots, c.size, why)
	}

	spec := childSpec{Transport: "msgq", Size: c.size, Producers: c.producers, Consumers: c.consumers, Queue: q.ID()}
	if c.mode == modeThroughput {
		for i := 0; i < c.producers; i++ {
			s := spec
			s.Role, s.Index = roleSend, i
			plan.children = append(plan.children, childPlan{spec: s})
		}
		for i := 0; i < c.consumers; i++ {
			s := spec
			s.Role, s.Index = roleRecv, i
			plan.children = append(plan.children, childPlan{spec: s})
		}
		consumers := c.consumers
		plan.afterSenders = func(ctx context.Context) error {
			for i := 0; i < consumers; i++ {
				if err := q.Send(ctx, 1, nil, 0); err != nil {
					return fmt.Errorf("msgq: end marker: %w", err)
				}
			}
			return nil
		}
	} else {
		ping, pong := spec, spec
		ping.Role, pong.Role = rolePing, rolePong
		plan.children = append(plan.children, childPlan{spec: ping}, childPlan{spec: pong})
	}
	pinChildren(cfg, plan.children)
	return plan, nil
}

// msgqChild runs one side of a msgq run. Each side keeps its msgq.Message
// and sends and receives it in place: the kernel's copies are the only
// ones.
func msgqChild(s *childSpec, ses *session) (*childReport, error) {
	q, err := msgq.OpenID(s.Queue)
	if err != nil {
		return nil, err
	}
	pl := newPayload(s.Size)
	switch s.Role {
	case roleSend:
		return msgqSend(s, ses, q, pl)
	case roleRecv:
		return msgqReceive(s, ses, q, pl)
	case rolePing:
		return msgqPing(s, ses, q, pl)
	case rolePong:
		return msgqPong(s, ses, q, pl)
	}
	return nil, fmt.Errorf("msgq: unknown role %q", s.Role)
}

// The contexts below have no Done channel, so msgq makes one plain
// blocking system call per message.
//
// The throughput sides look at the clock every tickEvery messages, as the
// ring's do, and not after every message: a look costs a few percent of a
// message's time (see BenchmarkMsgqLoop), which would come off msgq's rate
// as ringbench's own cost. Unlike a ring side, a msgq side cannot tell
// that it is about to wait without a system call of its own, so it takes
// no look then. A sender thus stops within tickEvery messages after the
// end. A receiver closes the interval at its first look after the end, or,
// if the end marker comes first, at the marker: with one sender and one
// receiver the counts at which they look line up, so the receiver looks at
// the sender's last message; with several they need not. Either way the
// interval's time and count are read together.

func msgqSend(s *childSpec, ses *session, q *msgq.Queue, pl *payload) (*childReport, error) {
	msg := msgq.NewMessage(s.Size)
	msg.SetType(int64(s.Index + 1))
	text := msg.Resize(s.Size)
	m, err := ses.start()
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	var seq uint64
	next := uint64(tickEvery)
	for {
		pl.fill(text, seq, s.Index)
		if err := q.SendMessage(ctx, msg, 0); err != nil {
			return nil, fmt.Errorf("send %d: %w", seq, err)
		}
		if seq++; seq == next {
			next += tickEvery
			if m.tick(seq) {
				break
			}
		}
	}
	return m.report(seq), nil
}

func msgqReceive(s *childSpec, ses *session, q *msgq.Queue, pl *payload) (*childReport, error) {
	msg := msgq.NewMessage(s.Size)
	m, err := ses.start()
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	tr := newTracker(pl, s.Producers, s.Consumers == 1)
	var got uint64
	next := uint64(tickEvery)
	for {
		if err := q.ReceiveMessage(ctx, msg, msgq.Any(), 0); err != nil {
			return nil, fmt.Errorf("receive: %w", err)
		}
		text := msg.Text()
		if len(text) == 0 {
			break
		}
		if err := tr.accept(text, int(msg.Type()-1)); err != nil {
			return nil, err
		}
		if got++; got == next {
			next += tickEvery
			m.tick(got)
		}
	}
	m.stop(got)
	return m.report(got), nil
}

func msgqPing(s *childSpec, ses *session, q *msgq.Queue, pl *payload) (*childReport, error) {
	req := msgq.NewMessage(s.Size)
	req.SetType(msgqRequest)
	text := req.Resize(s.Size)
	reply := msgq.NewMessage(s.Size)
	m, err := ses.start()
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	tr := newTracker(pl, 2, true)
	h := new(histogram)
	var seq uint64
	for {
		t0 := m.now()
		pl.fill(text, seq, 0)
		if err := q.SendMessage(ctx, req, 0); err != nil {
			return nil, fmt.Errorf("send request %d: %w", seq, err)
		}
		if err := q.ReceiveMessage(ctx, reply, msgq.Type(msgqReply), 0); err != nil {
			return nil, fmt.Errorf("receive reply %d: %w", seq, err)
		}
		if err := tr.accept(reply.Text(), 1); err != nil {
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
	req.Resize(0)
	if err := q.SendMessage(ctx, req, 0); err != nil {
		return nil, fmt.Errorf("send end: %w", err)
	}
	rep := m.report(seq)
	rep.RTT = h.summary()
	return rep, nil
}

func msgqPong(s *childSpec, ses *session, q *msgq.Queue, pl *payload) (*childReport, error) {
	req := msgq.NewMessage(s.Size)
	reply := msgq.NewMessage(s.Size)
	reply.SetType(msgqReply)
	text := reply.Resize(s.Size)
	m, err := ses.start()
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	tr := newTracker(pl, 2, true)
	var seq uint64
	for {
		if err := q.ReceiveMessage(ctx, req, msgq.Type(msgqRequest), 0); err != nil {
			return nil, fmt.Errorf("receive request %d: %w", seq, err)
		}
		if len(req.Text()) == 0 {
			break
		}
		if err := tr.accept(req.Text(), 0); err != nil {
			return nil, err
		}
		pl.fill(text, seq, 1)
		if err := q.SendMessage(ctx, reply, 0); err != nil {
			return nil, fmt.Errorf("send reply %d: %w", seq, err)
		}
		seq++
		m.tick(seq)
	}
	m.stop(seq)
	return m.report(seq), nil
}
