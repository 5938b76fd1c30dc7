package ring

import (
	"errors"
	"testing"
)

// TestFanoutStalePeekEnd: a new subscription From Oldest on a line
// that an earlier subscription (further on) used to hold a batch in place,
// closed while it looks at one message, leaves only that message flagged
// for its resumed subscription: the earlier subscription's batch end is
// not its own.
func TestFanoutStalePeekEnd(t *testing.T) {
	opts := fanOpts(SPMC, PolicyBlock, 16)
	opts.MaxConsumers = 1
	r := testRing(t, heap, opts)
	p, err := r.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	sendNumbered(t, p, 0, 8)
	// An anonymous subscriber from the oldest holds messages 4..7 in place
	// and releases them.
	a, err := r.NewSubscriber(&SubscribeOptions{From: Oldest})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 200)
	for i := 0; i < 4; i++ {
		if _, _, err := a.TryReceive(buf); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := a.TryPeekBatch(make([]Peeked, 4)); err != nil || n != 4 {
		t.Fatalf("batch: %d, %v", n, err)
	}
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	a.Close()
	// A durable subscription from the oldest takes the same line, looks
	// at message 0 in place and closes without releasing it.
	b, err := r.NewSubscriber(&SubscribeOptions{Name: "b", From: Oldest})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := b.TryPeek(); err != nil || m.Data[0] != 0 || m.Redelivered {
		t.Fatalf("peek: %v %v", m, err)
	}
	b.Close()
	c, err := r.NewSubscriber(&SubscribeOptions{Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	checkRun(t, c, 0, 8, 0, 1)
	if _, err := c.TryPeek(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("after the last: %v", err)
	}
}

// TestFanoutTornOrphan: under Overwrite, a subscriber that found a
// span's head published at its cursor, and whose look at the head's type
// word then finds a continuation because the producer overwrote the slot
// meanwhile (here, with a span of the next lap whose continuation lands
// there), must not pass it as an orphan: the message is lost to the lap,
// and reported so. Each way of receiving (copy, batch, peek) is driven to
// that instant by its span step, called as the receive calls call it
// after next and message found the head.
func TestFanoutTornOrphan(t *testing.T) {
	for _, way := range []string{"receive", "batch", "peek"} {
		t.Run(way, func(t *testing.T) {
			r := testRing(t, heap, fanSpanOpts(SPMC, Overwrite))
			p, err := r.NewProducer()
			if err != nil {
				t.Fatal(err)
			}
			c, err := r.NewSubscriber(nil)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, r.MaxMessage())
			send := func(typ int64, n int) {
				t.Helper()
				if err := p.TrySend(typ, spanData(buf, int(typ), n)); err != nil {
					t.Fatal(err)
				}
			}
			send(1, 150) // positions 0..2
			for i := 0; i < 12; i++ {
				send(2, 8) // positions 3..14
			}
			f := c.fan
			pos, ok, err := f.next(1)
			if err != nil || !ok || pos != 0 {
				t.Fatalf("next: %d %v %v", pos, ok, err)
			}
			if _, _, err := r.message(pos); err != errSpanning {
				t.Fatalf("message: %v", err)
			}
			// The producer laps the head's slot now, with the
			// continuation of a span at positions 15 and 16.
			send(3, 100)
			switch way {
			case "receive":
				_, _, ok, _, err = f.receiveSpan(pos, buf)
			case "batch":
				ok, _, err = f.batchSpan(pos, &Message{Data: buf})
			case "peek":
				f.hold(pos)
				_, ok, _, err = c.fanoutPeekSpan(pos)
			}
			if ok || err != nil {
				t.Fatalf("span step: %v %v", ok, err)
			}
			var le LapError
			if _, _, err := c.TryReceive(buf); !errors.As(err, &le) || le.Lost != 3 {
				t.Fatalf("after the overwrite: %v, want a lap of the 3 slots of the message lost", err)
			}
			for i := 0; i < 12; i++ {
				if _, typ, err := c.TryReceive(buf); err != nil || typ != 2 {
					t.Fatalf("message %d: type %d, %v", i, typ, err)
				}
			}
			if n, typ, err := c.TryReceive(buf); err != nil || typ != 3 || n != 100 {
				t.Fatalf("the span of the next lap: %d bytes of type %d, %v", n, typ, err)
			}
			if c.Lost() != 3 {
				t.Fatalf("lost %d, want 3", c.Lost())
			}
		})
	}
}

// TestFanoutResumedShorterBatch: a durable subscription that closes
// holding a batch of four, resumed, holds a shorter batch of two (both
// flagged) and closes again; resumed once more, it gets all four flagged:
// the shorter batch must not stop its line naming the two it owed.
func TestFanoutResumedShorterBatch(t *testing.T) {
	opts := fanOpts(SPMC, PolicyBlock, 16)
	r := testRing(t, heap, opts)
	p, err := r.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	sub := func() *Consumer {
		c, err := r.NewSubscriber(&SubscribeOptions{Name: "s", From: Oldest})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := sub()
	sendNumbered(t, p, 0, 6)
	held := make([]Peeked, 4)
	if n, err := a.TryPeekBatch(held); err != nil || n != 4 {
		t.Fatalf("batch: %d, %v", n, err)
	}
	a.Close()
	b := sub()
	if n, err := b.TryPeekBatch(held[:2]); err != nil || n != 2 || !held[0].Redelivered || !held[1].Redelivered {
		t.Fatalf("resumed batch: %d, %v, %+v", n, err, held[:2])
	}
	b.Close()
	c := sub()
	checkRun(t, c, 0, 6, 0, 4)
}
