package ring

import (
	"errors"
	"testing"
)

// TestAttackFanoutStalePeekEnd: a new subscription From Oldest on a line
// that an earlier subscription (further on) used to hold a batch in place,
// closed while it looks at one message, leaves only that message flagged
// for its resumed subscription: the earlier subscription's batch end is
// not its own.
func TestAttackFanoutStalePeekEnd(t *testing.T) {
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
