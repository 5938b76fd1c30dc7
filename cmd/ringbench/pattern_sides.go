package main

import (
	"context"
	"fmt"
	"os"

	"github.com/shmring/shmring/ipc"
)

// patternPort is how one process of a pattern run sends and receives, over
// the ring or over the queue: the sides that time round trips (both chat
// sides and the clients) are written once, over a port. The servers differ
// by transport, and are written for each (pattern_ring.go, pattern_msgq.go).
type patternPort interface {
	// start waits for the start of the run and returns its meter.
	start(s *childSpec, ses *session) (*meter, error)
	// sendBuf returns the buffer the next message is written in, of the
	// run's message size.
	sendBuf() []byte
	// send sends b, a prefix of sendBuf, as a message of type typ.
	send(ctx context.Context, typ int64, b []byte) error
	// receive waits for the message sel selects and returns it, valid until
	// the next receive.
	receive(ctx context.Context, sel ipc.Selector) ([]byte, int64, error)
}

// timedLoop runs round trips until the measured interval ends, timing each
// while the run measures, and returns how many it made.
func timedLoop(m *meter, h *histogram, roundTrip func(seq uint64) error) (uint64, error) {
	var seq uint64
	for {
		t0 := m.now()
		if err := roundTrip(seq); err != nil {
			return seq, err
		}
		t1 := m.now()
		measuring := m.measuring()
		seq++
		done := m.tickAt(t1, seq)
		if measuring {
			h.record(int64(t1 - t0))
		}
		if done {
			return seq, nil
		}
	}
}

// chatFirst is chat side 0: it sends a message of its type, receives the
// answer of side 1's type, and times the round trip; at the end it sends
// an empty message.
func chatFirst(pt patternPort, s *childSpec, ses *session) (*childReport, error) {
	pl := newPayload(s.Size)
	tr := newTracker(pl, 2, true)
	h := new(histogram)
	self, peer := int64(chatType), ipc.OfType(chatType+1)
	buf := pt.sendBuf()
	m, err := pt.start(s, ses)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	seq, err := timedLoop(m, h, func(seq uint64) error {
		pl.fill(buf, seq, 0)
		if err := pt.send(ctx, self, buf); err != nil {
			return fmt.Errorf("send %d: %w", seq, err)
		}
		b, typ, err := pt.receive(ctx, peer)
		if err != nil {
			return fmt.Errorf("receive answer %d: %w", seq, err)
		}
		if typ != chatType+1 {
			return fmt.Errorf("chat side 0 received type %d with %v", typ, peer)
		}
		return tr.accept(b, 1)
	})
	if err != nil {
		return nil, err
	}
	if err := pt.send(ctx, self, buf[:0]); err != nil {
		return nil, fmt.Errorf("send end: %w", err)
	}
	rep := m.report(seq)
	rep.RTT = h.summary()
	return rep, nil
}

// chatSecond is chat side 1: it answers every message of side 0's type
// with one of its own type until side 0's empty end message.
func chatSecond(pt patternPort, s *childSpec, ses *session) (*childReport, error) {
	pl := newPayload(s.Size)
	tr := newTracker(pl, 2, true)
	self, peer := int64(chatType+1), ipc.OfType(chatType)
	buf := pt.sendBuf()
	m, err := pt.start(s, ses)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	var seq uint64
	next := uint64(tickEvery)
	for {
		b, typ, err := pt.receive(ctx, peer)
		if err != nil {
			return nil, fmt.Errorf("receive %d: %w", seq, err)
		}
		if typ != chatType {
			return nil, fmt.Errorf("chat side 1 received type %d with %v", typ, peer)
		}
		if len(b) == 0 {
			break
		}
		if err := tr.accept(b, 0); err != nil {
			return nil, err
		}
		pl.fill(buf, seq, 1)
		if err := pt.send(ctx, self, buf); err != nil {
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

// patternClient sends requests of type 1 that carry its pid and receives
// the replies of that type, one at a time, timing each round trip, until
// the measured interval ends; then it sends its end.
func patternClient(pt patternPort, s *childSpec, ses *session) (*childReport, error) {
	cb := newClientBook(s.Size, os.Getpid(), s.Index)
	sel := ipc.OfType(cb.replyType())
	h := new(histogram)
	buf := pt.sendBuf()
	m, err := pt.start(s, ses)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	seq, err := timedLoop(m, h, func(seq uint64) error {
		cb.fillRequest(buf, seq)
		if err := pt.send(ctx, requestType, buf); err != nil {
			return fmt.Errorf("send request %d: %w", seq, err)
		}
		b, typ, err := pt.receive(ctx, sel)
		if err != nil {
			return fmt.Errorf("receive reply %d: %w", seq, err)
		}
		return cb.checkReply(b, typ)
	})
	if err != nil {
		return nil, err
	}
	if err := pt.send(ctx, requestType, cb.endMarker(buf)); err != nil {
		return nil, fmt.Errorf("send end: %w", err)
	}
	rep := m.report(seq)
	rep.RTT = h.summary()
	rep.Hist = h.buckets()
	return rep, nil
}
