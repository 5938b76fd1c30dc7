package ring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

func fanOpts(m Mode, p Policy, slots int) *Options {
	return &Options{Mode: m, Fanout: true, Policy: p, Slots: slots, MaxMessage: 200, MaxConsumers: 8}
}

func TestFanoutOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"spsc", Options{Mode: SPSC, Fanout: true}},
		{"mpsc", Options{Mode: MPSC, Fanout: true}},
		{"selective", Options{Mode: SPMC, Fanout: true, Selective: true}},
		{"overwrite-mpmc", Options{Mode: MPMC, Fanout: true, Policy: Overwrite}},
		{"overwrite-evict", Options{Mode: SPMC, Fanout: true, Policy: Overwrite, EvictAfter: time.Second}},
		{"negative-evict", Options{Mode: SPMC, Fanout: true, EvictAfter: -1}},
		{"policy-without-fanout", Options{Mode: SPMC, Policy: Overwrite}},
		{"evict-without-fanout", Options{Mode: SPMC, EvictAfter: time.Second}},
		{"unknown-policy", Options{Mode: SPMC, Fanout: true, Policy: 9}},
	} {
		if g := tc.opts.geometry(); !errors.Is(g.check(), ErrInvalid) {
			t.Errorf("%s: check %v, want ErrInvalid", tc.name, g.check())
		}
	}
	r := testRing(t, heap, &Options{Mode: SPMC})
	if _, err := r.NewSubscriber(nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("NewSubscriber on a plain ring: %v", err)
	}
}

// TestFanoutHeader: the fan-out geometry survives the header, and a
// reopened ring has it.
func TestFanoutHeader(t *testing.T) {
	opts := &Options{Mode: MPMC, Fanout: true, EvictAfter: 3 * time.Second, Slots: 16, MaxConsumers: 4}
	r := testRing(t, shm, opts)
	o := reopen(t, r, Waiting{})
	if o.g != opts.geometry() || !o.g.fan.on || o.g.fan.evictAfter != 3*time.Second {
		t.Fatalf("reopened geometry %+v, want %+v", o.g, opts.geometry())
	}
	w := testRing(t, shm, &Options{Mode: SPMC, Fanout: true, Policy: Overwrite})
	if o := reopen(t, w, Waiting{}); o.g.fan.policy != Overwrite {
		t.Fatalf("policy %v", o.g.fan.policy)
	}
}

// TestFanoutEvery: every subscriber gets every message, in order, once,
// by each way of receiving.
func TestFanoutEvery(t *testing.T) {
	for _, m := range []Mode{SPMC, MPMC} {
		for _, mem := range []memory{heap, shm} {
			t.Run(fmt.Sprintf("mode=%v/memory=%v", m, mem), func(t *testing.T) {
				r := testRing(t, mem, fanOpts(m, PolicyBlock, 8))
				const count = 3000
				subs := subscribe(t, r, 4)
				p, err := r.NewProducer()
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				wait := receiveEach(ctx, subs, count, receiveAll)
				buf := make([]byte, 200)
				for seq := uint64(0); seq < count; seq++ {
					if err := p.Send(ctx, 1, payload(buf, 0, seq)); err != nil {
						t.Fatal(err)
					}
				}
				p.Close()
				for i, err := range wait() {
					if err != nil {
						t.Errorf("subscriber %d: %v", i, err)
					}
				}
				for _, ss := range r.Subscribers(nil) {
					if ss.Live && (ss.Received != count || ss.Lost != 0 || ss.Lag != 0) {
						t.Errorf("stats %+v", ss)
					}
				}
			})
		}
	}
}

// subscribe makes n anonymous subscribers of r, from the newest message.
func subscribe(t *testing.T, r *Ring, n int) []*Consumer {
	t.Helper()
	subs := make([]*Consumer, n)
	for i := range subs {
		c, err := r.NewSubscriber(nil)
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = c
	}
	return subs
}

// receiveEach runs receive for each subscriber (its index picks its way
// of receiving) in a goroutine of its own; wait waits for them all and
// returns their errors, by subscriber.
func receiveEach(ctx context.Context, subs []*Consumer, count int, receive func(ctx context.Context, c *Consumer, way, count int) error) (wait func() []error) {
	var wg sync.WaitGroup
	errs := make([]error, len(subs))
	for i, c := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = receive(ctx, c, i, count)
		}()
	}
	return func() []error { wg.Wait(); return errs }
}

// receiveAll receives count messages of producer 0 in order, with the
// way of receiving that way picks (receiveEachWay), then expects io.EOF.
func receiveAll(ctx context.Context, c *Consumer, way, count int) error {
	scratch := make([]byte, 200)
	want := uint64(0)
	return receiveEachWay(ctx, c, way, count, 200, func(typ int64, m []byte) error {
		_, seq, err := checkPayload(typ, m, scratch)
		if err != nil {
			return err
		}
		if seq != want {
			return fmt.Errorf("got message %d, want %d", seq, want)
		}
		want++
		return nil
	})
}

// receiveEachWay receives count messages of at most max bytes with the
// way of receiving that way picks (0 copy, 1 batch, 2 peek, 3 peek batch),
// each one whole (a peeked message's Data and Wrapped put together) given
// to check, then expects io.EOF.
func receiveEachWay(ctx context.Context, c *Consumer, way, count, max int, check func(typ int64, m []byte) error) error {
	buf := make([]byte, max)
	msgs := make([]Message, 5)
	for i := range msgs {
		msgs[i].Data = make([]byte, max)
	}
	held := make([]Peeked, 5)
	for got := 0; got < count; {
		switch way % 4 {
		case 0:
			n, typ, err := c.Receive(ctx, buf)
			if err != nil {
				return err
			}
			if err := check(typ, buf[:n]); err != nil {
				return err
			}
			got++
		case 1:
			n, err := c.ReceiveBatch(ctx, msgs)
			if err != nil {
				return err
			}
			for _, m := range msgs[:n] {
				if err := check(m.Type, m.Data); err != nil {
					return err
				}
			}
			got += n
		case 2, 3:
			var n int
			var err error
			if way%4 == 2 {
				held[0], err = c.Peek(ctx)
				n = 1
			} else {
				n, err = c.PeekBatch(ctx, held)
			}
			if err != nil {
				return err
			}
			for _, m := range held[:n] {
				data := m.Data
				if len(m.Wrapped) > 0 {
					data = append(append(buf[:0], m.Data...), m.Wrapped...)
				}
				if err := check(m.Type, data); err != nil {
					return err
				}
			}
			if err := c.Release(); err != nil {
				return err
			}
			got += n
		}
	}
	if _, _, err := c.Receive(ctx, buf); !errors.Is(err, io.EOF) {
		return fmt.Errorf("after the last message: %v, want EOF", err)
	}
	return nil
}

// TestFanoutOverwriteLap: a subscriber lapped under Overwrite learns how
// many it lost, exactly, and goes on at the oldest message still there.
func TestFanoutOverwriteLap(t *testing.T) {
	forMemories(t, fanOpts(SPMC, Overwrite, 8), func(t *testing.T, r *Ring) {
		c, err := r.NewSubscriber(nil)
		if err != nil {
			t.Fatal(err)
		}
		p, err := r.NewProducer()
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 20; i++ {
			if err := p.TrySend(1, msg(i)); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
		}
		buf := make([]byte, 200)
		_, _, err = c.TryReceive(buf)
		var le LapError
		if !errors.As(err, &le) || !errors.Is(err, ErrLapped) || le.Lost != 12 {
			t.Fatalf("first receive: %v, want 12 lost", err)
		}
		for i := 12; i < 20; i++ {
			expect(t, c, 1, msg(i))
		}
		if c.Lost() != 12 {
			t.Fatalf("Lost %d", c.Lost())
		}
		// Held in place, then overwritten: Release says so.
		if err := p.TrySend(1, msg(20)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.TryPeek(); err != nil {
			t.Fatal(err)
		}
		for i := 21; i < 30; i++ {
			p.TrySend(1, msg(i))
		}
		if err := c.Release(); !errors.Is(err, ErrOverwritten) {
			t.Fatalf("Release: %v, want ErrOverwritten", err)
		}
		if _, _, err := c.TryReceive(buf); !errors.Is(err, ErrLapped) {
			t.Fatalf("after the overwritten peek: %v", err)
		}
		expect(t, c, 1, msg(22))
		if ss := r.Subscribers(nil); len(ss) != 1 || ss[0].Lost != 12+1+1 || ss[0].Received != 8+1 {
			t.Fatalf("subscribers %+v", ss)
		}
	})
}

// TestFanoutFrom: Newest starts after what is there, Oldest with the
// oldest still in the ring.
func TestFanoutFrom(t *testing.T) {
	forMemories(t, fanOpts(SPMC, PolicyBlock, 8), func(t *testing.T, r *Ring) {
		p, err := r.NewProducer()
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 11; i++ {
			if err := p.TrySend(1, msg(i)); err != nil {
				t.Fatalf("send %d with no subscriber: %v", i, err)
			}
		}
		newest, err := r.NewSubscriber(&SubscribeOptions{From: Newest})
		if err != nil {
			t.Fatal(err)
		}
		oldest, err := r.NewSubscriber(&SubscribeOptions{From: Oldest})
		if err != nil {
			t.Fatal(err)
		}
		for i := 3; i < 11; i++ {
			expect(t, oldest, 1, msg(i))
		}
		if err := p.TrySend(1, msg(11)); err != nil {
			t.Fatal(err)
		}
		expect(t, newest, 1, msg(11))
		expect(t, oldest, 1, msg(11))
		// The ring is full for the slowest: a blocked send.
		for i := 12; i < 20; i++ {
			if err := p.TrySend(1, msg(i)); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
		}
		if err := p.TrySend(1, msg(20)); !errors.Is(err, ErrFull) {
			t.Fatalf("send past the slowest: %v", err)
		}
		st := r.Stats()
		if st.Depth != 8 || st.Received != 10 {
			t.Fatalf("depth %d received %d", st.Depth, st.Received)
		}
	})
}

// TestFanoutDurable: a named subscription resumes where it was, a message
// held in place when it closed comes again flagged, and a live holder of
// the name keeps it.
func TestFanoutDurable(t *testing.T) {
	forMemories(t, fanOpts(SPMC, PolicyBlock, 8), func(t *testing.T, r *Ring) {
		p, _ := r.NewProducer()
		a, err := r.NewSubscriber(&SubscribeOptions{Name: "audit"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.NewSubscriber(&SubscribeOptions{Name: "audit"}); !errors.Is(err, ErrRoleTaken) {
			t.Fatalf("second holder of the name: %v", err)
		}
		for i := 0; i < 4; i++ {
			p.TrySend(1, msg(i))
		}
		expect(t, a, 1, msg(0))
		if m, err := a.TryPeek(); err != nil || string(m.Data) != string(msg(1)) {
			t.Fatalf("peek %q %v", m.Data, err)
		}
		a.Close()
		p.TrySend(1, msg(4))
		other, _ := r.NewSubscriber(nil) // takes another line
		defer other.Close()
		b, err := r.NewSubscriber(&SubscribeOptions{Name: "audit"})
		if err != nil {
			t.Fatal(err)
		}
		m, err := b.TryPeek()
		if err != nil || string(m.Data) != string(msg(1)) || !m.Redelivered {
			t.Fatalf("resumed peek %q redelivered %v, %v", m.Data, m.Redelivered, err)
		}
		b.Release()
		for i := 2; i < 5; i++ {
			expect(t, b, 1, msg(i))
		}
		found := false
		for _, ss := range r.Subscribers(nil) {
			if ss.NameHash == NameHash("audit") {
				found = ss.Position == 5 && ss.Received == 5 && ss.Live
			}
		}
		if !found {
			t.Fatalf("subscribers %+v", r.Subscribers(nil))
		}
	})
}

// TestFanoutNoAlloc: the busy paths of a subscriber and its producer
// allocate nothing.
func TestFanoutNoAlloc(t *testing.T) {
	r := testRing(t, shm, fanOpts(SPMC, PolicyBlock, 64))
	c, _ := r.NewSubscriber(nil)
	p, _ := r.NewProducer()
	buf := make([]byte, 200)
	data := make([]byte, 64)
	ctx := context.Background()
	n := testing.AllocsPerRun(1000, func() {
		p.Send(ctx, 1, data)
		c.Receive(ctx, buf)
		p.TrySend(1, data)
		c.TryPeek()
		c.Release()
	})
	if n != 0 {
		t.Fatalf("%v allocations per round", n)
	}
}

// TestFanoutHostile: sequence words no producer writes are ErrCorrupt for
// a subscriber, never a hang or a jump past every message to come.
func TestFanoutHostile(t *testing.T) {
	for _, tc := range []struct {
		name string
		seq  func(pos, n uint64) uint64
	}{
		{"far-ahead", func(pos, n uint64) uint64 { return pos + 1 + n<<40 }},
		{"not-its-slot", func(pos, n uint64) uint64 { return pos + 3 }},
		{"held-bit", func(pos, n uint64) uint64 { return (pos + 1) | seqHeld }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := testRing(t, heap, fanOpts(SPMC, Overwrite, 8))
			c, _ := r.NewSubscriber(nil)
			p, _ := r.NewProducer()
			p.TrySend(1, msg(0))
			r.descs.At(0).seq.Store(tc.seq(0, r.n))
			buf := make([]byte, 200)
			if _, _, err := c.TryReceive(buf); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("receive: %v, want ErrCorrupt", err)
			}
		})
	}
	// A resumed subscription whose cursor is past the tail.
	r := testRing(t, heap, fanOpts(SPMC, PolicyBlock, 8))
	c, _ := r.NewSubscriber(&SubscribeOptions{Name: "x"})
	line := c.fan.line
	c.Close()
	line.cursor.Store(1 << 50)
	if _, err := r.NewSubscriber(&SubscribeOptions{Name: "x"}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("resume past the tail: %v", err)
	}
}
