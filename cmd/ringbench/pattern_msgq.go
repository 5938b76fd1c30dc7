package main

import (
	"context"
	"fmt"

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
	ms.buf = ms.out.Resize(s.Size)
	switch {
	case s.Role == roleChat && s.Index == 0:
		return chatFirst(ms, s, ses)
	case s.Role == roleChat && s.Index == 1:
		return chatSecond(ms, s, ses)
	case s.Role == roleServer:
		return ms.server(s, ses)
	case s.Role == roleClient:
		return patternClient(ms, s, ses)
	}
	return nil, fmt.Errorf("msgq %s: role %q index %d", s.Pattern, s.Role, s.Index)
}

// msgqPatternSide is one process of a msgq pattern run. Its methods but
// server make it a patternPort.
type msgqPatternSide struct {
	q       *msgq.Queue
	out, in *msgq.Message
	buf     []byte // out's text, at the run's message size
}

func (ms *msgqPatternSide) start(_ *childSpec, ses *session) (*meter, error) { return ses.start() }

func (ms *msgqPatternSide) sendBuf() []byte { return ms.buf }

// send sends b, which is out's text (a prefix of buf), in place.
func (ms *msgqPatternSide) send(ctx context.Context, typ int64, b []byte) error {
	ms.out.SetType(typ)
	ms.out.Resize(len(b))
	return ms.q.SendMessage(ctx, ms.out, 0)
}

func (ms *msgqPatternSide) receive(ctx context.Context, sel ipc.Selector) ([]byte, int64, error) {
	err := ms.q.ReceiveMessage(ctx, ms.in, sel, 0)
	return ms.in.Text(), ms.in.Type(), err
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
