package main

import (
	"context"
	"fmt"
	"os"

	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/msgq"
)

// setupMsgqPattern creates the queue of a pattern run. It keeps the
// kernel's byte limit unless that cannot hold every message the run may
// have in the queue at once (one per client: a request, a reply or its
// end): then it raises it, since a full queue of requests would stop the
// server from sending its replies.
func setupMsgqPattern(cfg *config, c benchCase) (*runPlan, error) {
	plan := &runPlan{}
	q, err := msgq.Create(ipc.Private, nil)
	if err != nil {
		return plan, err
	}
	plan.own(q.Remove, ipcID{"msg", q.ID()})
	info, err := q.Stat()
	if err != nil {
		return plan, err
	}
	need := patternRoles(c.pattern, c.clients) * c.size
	if int(info.MaxBytes) < need {
		if err := q.SetMaxBytes(need); err != nil {
			return plan, fmt.Errorf("msgq %s with %d clients of %d B: the queue's byte limit of %d B is too small, and raising it to %d B failed: %w",
				c.pattern, c.clients, c.size, info.MaxBytes, need, err)
		}
		if info, err = q.Stat(); err != nil {
			return plan, err
		}
	}
	plan.queueBytes = int(info.MaxBytes)
	roles := patternRoles(c.pattern, c.clients)
	spec := childSpec{
		Transport: "msgq", Pattern: c.pattern, Clients: c.clients, Size: c.size,
		Producers: roles, Consumers: roles, Queue: q.ID(),
	}
	plan.children = patternChildren(spec, c)
	pinChildren(cfg, plan.children)
	return plan, nil
}

// msgqPatternChild runs one process of a msgq pattern run. Each keeps its
// msgq.Messages and sends and receives them in place; the contexts have no
// Done channel, so every send and receive is one plain system call. The
// sides that answer look at the clock every tickEvery messages, as the
// ring's do and as the throughput sides do (see msgq.go); the timing sides
// read it for every round trip anyway.
func msgqPatternChild(s *childSpec, ses *session) (*childReport, error) {
	q, err := msgq.OpenID(s.Queue)
	if err != nil {
		return nil, err
	}
	ms := &msgqPatternSide{q: q, out: msgq.NewMessage(s.Size), in: msgq.NewMessage(s.Size)}
	switch {
	case s.Role == roleChat && s.Index == 0:
		return ms.chatFirst(s, ses)
	case s.Role == roleChat && s.Index == 1:
		return ms.chatSecond(s, ses)
	case s.Role == roleServer:
		return ms.server(s, ses)
	case s.Role == roleClient:
		return ms.client(s, ses)
	}
	return nil, fmt.Errorf("msgq %s: role %q index %d", s.Pattern, s.Role, s.Index)
}

// msgqPatternSide is one process of a msgq pattern run.
type msgqPatternSide struct {
	q       *msgq.Queue
	out, in *msgq.Message
}

// chatFirst is chat side 0: it sends a message of its type, receives the
// answer of side 1's type, and times the round trip.
func (ms *msgqPatternSide) chatFirst(s *childSpec, ses *session) (*childReport, error) {
	pl := newPayload(s.Size)
	tr := newTracker(pl, 2, true)
	h := new(histogram)
	ms.out.SetType(chatType)
	text := ms.out.Resize(s.Size)
	peer := msgq.Type(chatType + 1)
	m, err := ses.start()
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	var seq uint64
	for {
		t0 := m.now()
		pl.fill(text, seq, 0)
		if err := ms.q.SendMessage(ctx, ms.out, 0); err != nil {
			return nil, fmt.Errorf("send %d: %w", seq, err)
		}
		if err := ms.q.ReceiveMessage(ctx, ms.in, peer, 0); err != nil {
			return nil, fmt.Errorf("receive answer %d: %w", seq, err)
		}
		if typ := ms.in.Type(); typ != chatType+1 {
			return nil, fmt.Errorf("chat side 0 received type %d with %v", typ, peer)
		}
		if err := tr.accept(ms.in.Text(), 1); err != nil {
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
	ms.out.Resize(0)
	if err := ms.q.SendMessage(ctx, ms.out, 0); err != nil {
		return nil, fmt.Errorf("send end: %w", err)
	}
	rep := m.report(seq)
	rep.RTT = h.summary()
	return rep, nil
}

// chatSecond is chat side 1: it answers every message of side 0's type
// with one of its own type until side 0's empty end message.
func (ms *msgqPatternSide) chatSecond(s *childSpec, ses *session) (*childReport, error) {
	pl := newPayload(s.Size)
	tr := newTracker(pl, 2, true)
	ms.out.SetType(chatType + 1)
	text := ms.out.Resize(s.Size)
	peer := msgq.Type(chatType)
	m, err := ses.start()
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	var seq uint64
	next := uint64(tickEvery)
	for {
		if err := ms.q.ReceiveMessage(ctx, ms.in, peer, 0); err != nil {
			return nil, fmt.Errorf("receive %d: %w", seq, err)
		}
		if typ := ms.in.Type(); typ != chatType {
			return nil, fmt.Errorf("chat side 1 received type %d with %v", typ, peer)
		}
		if len(ms.in.Text()) == 0 {
			break
		}
		if err := tr.accept(ms.in.Text(), 0); err != nil {
			return nil, err
		}
		pl.fill(text, seq, 1)
		if err := ms.q.SendMessage(ctx, ms.out, 0); err != nil {
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
// request carries, until every client has sent its end.
func (ms *msgqPatternSide) server(s *childSpec, ses *session) (*childReport, error) {
	sb := newServerBook(s.Size, s.Clients)
	text := ms.out.Resize(s.Size)
	sel := msgq.Type(requestType)
	m, err := ses.start()
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	var served uint64
	next := uint64(tickEvery)
	for !sb.done() {
		if err := ms.q.ReceiveMessage(ctx, ms.in, sel, 0); err != nil {
			return nil, fmt.Errorf("receive request: %w", err)
		}
		index, seq, end, err := sb.request(ms.in.Text(), ms.in.Type())
		if err != nil {
			return nil, err
		}
		if end {
			continue
		}
		ms.out.SetType(sb.reply(text, index, seq))
		if err := ms.q.SendMessage(ctx, ms.out, 0); err != nil {
			return nil, fmt.Errorf("send reply %d to client %d: %w", seq, index, err)
		}
		if served++; served == next {
			next += tickEvery
			m.tick(served)
		}
	}
	m.stop(served)
	return m.report(served), nil
}

// client sends requests of type 1 that carry its pid and receives the
// replies of that type, one at a time, timing each round trip, until the
// measured interval ends; then it sends its end.
func (ms *msgqPatternSide) client(s *childSpec, ses *session) (*childReport, error) {
	cb := newClientBook(s.Size, os.Getpid(), s.Index)
	ms.out.SetType(requestType)
	text := ms.out.Resize(s.Size)
	sel := msgq.Type(cb.replyType())
	h := new(histogram)
	m, err := ses.start()
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	var seq uint64
	for {
		t0 := m.now()
		cb.fillRequest(text, seq)
		if err := ms.q.SendMessage(ctx, ms.out, 0); err != nil {
			return nil, fmt.Errorf("send request %d: %w", seq, err)
		}
		if err := ms.q.ReceiveMessage(ctx, ms.in, sel, 0); err != nil {
			return nil, fmt.Errorf("receive reply %d: %w", seq, err)
		}
		if err := cb.checkReply(ms.in.Text(), ms.in.Type()); err != nil {
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
	cb.endMarker(ms.out.Resize(trailerLen))
	if err := ms.q.SendMessage(ctx, ms.out, 0); err != nil {
		return nil, fmt.Errorf("send end: %w", err)
	}
	rep := m.report(seq)
	rep.RTT = h.summary()
	rep.Hist = h.buckets()
	return rep, nil
}
