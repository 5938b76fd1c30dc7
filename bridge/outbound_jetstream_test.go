package bridge

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// fakeAck is a PubAckFuture the test resolves.
type fakeAck struct {
	ok  chan *jetstream.PubAck
	err chan error
}

func newFakeAck() *fakeAck {
	return &fakeAck{ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
}

func (f *fakeAck) Ok() <-chan *jetstream.PubAck { return f.ok }
func (f *fakeAck) Err() <-chan error            { return f.err }
func (f *fakeAck) Msg() *nats.Msg               { return nil }

// TestAckedRun: acknowledgements that come in any order release only the
// run of them from the oldest; a message not to be published counts as
// acknowledged; a failure stops the run and leaves the message to be
// published again; the pending gauge follows.
func TestAckedRun(t *testing.T) {
	o := &Outbound{m: &Metrics{}}
	w := &outWindow{f: make([]flight, 8), head: 6} // wraps around
	acks := make([]*fakeAck, 6)
	for i := range acks {
		acks[i] = newFakeAck()
		f := w.at(w.n)
		w.n++
		*f = flight{msg: &nats.Msg{}, ack: acks[i]}
		o.m.OutAcksPending.Add(1)
	}
	w.at(2).msg, w.at(2).ack = nil, nil // skipped: never published
	o.m.OutAcksPending.Add(-1)
	acks[1].ok <- &jetstream.PubAck{}
	acks[3].ok <- &jetstream.PubAck{}
	if k := o.ackedRun(w); k != 0 {
		t.Fatalf("oldest not acknowledged: run of %d", k)
	}
	acks[0].ok <- &jetstream.PubAck{}
	if k := o.ackedRun(w); k != 4 {
		t.Fatalf("run of %d, want 4", k)
	}
	acks[4].err <- errors.New("lost")
	acks[5].ok <- &jetstream.PubAck{}
	if k := o.ackedRun(w); k != 4 || w.at(4).ack != nil {
		t.Fatalf("after a failure: run of %d, failed one's future %v", k, w.at(4).ack)
	}
	if p := o.m.OutAcksPending.Load(); p != 1 {
		t.Fatalf("acks pending %d, want 1 (the last, not yet looked at)", p)
	}
}
