package ring

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/shmring/shmring/internal/ipctest"
	"github.com/shmring/shmring/ipc"
)

// spanOpts is a ring of 16 slots of 64 bytes whose messages span up to 8
// of them (512 bytes, half the payload area).
func spanOpts(m Mode, selective bool) *Options {
	o := &Options{Mode: m, Slots: 16, SlotSize: 64, MaxMessage: 512, Selective: selective}
	if m.multiProducer() {
		o.MaxProducers = 3
	}
	if m.multiConsumer() {
		o.MaxConsumers = 3
	}
	return o
}

// spanData is message seq of a test, n bytes that tell where they belong.
func spanData(b []byte, seq, n int) []byte {
	b = b[:n]
	x := uint32(seq)*2654435761 + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// spanModes are the disciplines spanning messages go through.
var spanModes = []struct {
	mode      Mode
	selective bool
}{{SPSC, false}, {MPSC, false}, {SPMC, false}, {MPMC, false}, {SPMC, true}, {MPMC, true}}

func spanName(m Mode, selective bool) string {
	if selective {
		return "mode=" + m.String() + "-selective"
	}
	return "mode=" + m.String()
}

// TestSpanRoundTrip sends messages of random sizes, 1 byte to the limit,
// through every discipline and receive call, one at a time and in
// batches, so that spans wrap around the payload area many times, and
// checks every byte.
func TestSpanRoundTrip(t *testing.T) {
	for _, sm := range spanModes {
		t.Run(spanName(sm.mode, sm.selective), func(t *testing.T) {
			forMemories(t, spanOpts(sm.mode, sm.selective), func(t *testing.T, r *Ring) {
				p, err := r.NewProducer()
				if err != nil {
					t.Fatal(err)
				}
				c, err := r.NewConsumer()
				if err != nil {
					t.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(1, uint64(sm.mode)))
				ctx := context.Background()
				send, want, got := make([]byte, 512), make([]byte, 512), make([]byte, 512)
				wrapped := 0
				for seq := 0; seq < 600; seq++ {
					n := 1 + rng.IntN(512)
					if seq%7 == 0 {
						n = 512
					}
					typ := int64(1 + seq%3)
					data := spanData(send, seq, n)
					if seq%4 == 3 {
						if k, err := p.SendBatch(ctx, []Message{{Type: typ, Data: data, Origin: 7}}); err != nil || k != 1 {
							t.Fatalf("send batch %d: %d, %v", seq, k, err)
						}
					} else if err := p.Send(ctx, typ, data); err != nil {
						t.Fatalf("send %d (%d bytes): %v", seq, n, err)
					}
					spanData(want, seq, n)
					var m []byte
					var mt int64
					switch seq % 3 {
					case 0:
						k, ty, err := c.Receive(ctx, got)
						if err != nil {
							t.Fatalf("receive %d: %v", seq, err)
						}
						m, mt = got[:k], ty
					case 1:
						msgs := []Message{{Data: got}}
						if k, err := c.ReceiveBatch(ctx, msgs); err != nil || k != 1 {
							t.Fatalf("receive batch %d: %d, %v", seq, k, err)
						}
						m, mt = msgs[0].Data, msgs[0].Type
					case 2:
						pk, err := c.Peek(ctx)
						if err != nil {
							t.Fatalf("peek %d: %v", seq, err)
						}
						if pk.Wrapped != nil {
							wrapped++
						}
						m = append(append(got[:0], pk.Data...), pk.Wrapped...)
						mt = pk.Type
						if err := c.Release(); err != nil {
							t.Fatal(err)
						}
					}
					if mt != typ || !bytes.Equal(m, want[:n]) {
						t.Fatalf("message %d: type %d, %d bytes, want type %d, %d bytes", seq, mt, len(m), typ, n)
					}
				}
				if wrapped == 0 {
					t.Error("no peeked message wrapped around the payload area")
				}
				if _, err := c.TryPeek(); !errors.Is(err, ErrEmpty) {
					t.Fatalf("ring not empty at the end: %v", err)
				}
				if st := r.Stats(); st.Depth != 0 {
					t.Fatalf("stats %+v", st)
				}
			})
		})
	}
}

// TestSpanFull fills a ring with spans and checks that a span that does
// not fit is refused whole, then goes once room is made, and that batches
// mix spans with messages of one slot.
func TestSpanFull(t *testing.T) {
	for _, sm := range spanModes {
		t.Run(spanName(sm.mode, sm.selective), func(t *testing.T) {
			r := testRing(t, heap, spanOpts(sm.mode, sm.selective))
			p, _ := r.NewProducer()
			c, _ := r.NewConsumer()
			big := bytes.Repeat([]byte{'x'}, 300) // 5 slots
			for i := 0; i < 3; i++ {
				if err := p.TrySend(1, big); err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
			}
			if err := p.TrySend(1, big); !errors.Is(err, ErrFull) {
				t.Fatalf("a fourth 5-slot span in 16 slots: %v", err)
			}
			if err := p.TrySend(2, []byte("small")); err != nil {
				t.Fatalf("one slot left: %v", err)
			}
			buf := make([]byte, 512)
			if n, typ, err := c.TryReceive(make([]byte, 100)); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("span into a short buffer: %d, %d, %v", n, typ, err)
			}
			for i := 0; i < 3; i++ {
				if n, _, err := c.TryReceive(buf); err != nil || n != 300 {
					t.Fatalf("receive %d: %d, %v", i, n, err)
				}
			}
			msgs := []Message{{Type: 1, Data: big}, {Type: 2, Data: []byte("a")}, {Type: 3, Data: big[:100]}, {Type: 2, Data: []byte("b")}}
			if n, err := p.TrySendBatch(msgs); err != nil || n != 4 {
				t.Fatalf("batch: %d, %v", n, err)
			}
			in := make([]Message, 8)
			for i := range in {
				in[i].Data = make([]byte, 512)
			}
			var types []int64
			for len(types) < 5 {
				n, err := c.TryReceiveBatch(in)
				if err != nil {
					t.Fatalf("receive batch after %v: %v", types, err)
				}
				for _, m := range in[:n] {
					types = append(types, m.Type)
				}
			}
			if fmt.Sprint(types) != "[2 1 2 3 2]" {
				t.Fatalf("types %v", types)
			}
		})
	}
}

// TestSpanStress runs the stress test's producers and consumers with
// messages of 16 to 512 bytes through 64-byte slots.
func TestSpanStress(t *testing.T) {
	for _, kind := range []string{stressSingle, stressBatch, stressZeroCopy} {
		for _, tc := range []stressCase{
			{SPSC, 1, 1, 16, Adaptive, kind},
			{MPSC, 3, 1, 16, Adaptive, kind},
			{SPMC, 1, 3, 16, Block, kind},
			{MPMC, 3, 3, 32, Adaptive, kind},
		} {
			t.Run(fmt.Sprintf("mode=%v/kind=%s", tc.mode, kind), func(t *testing.T) {
				per := 400
				if testing.Short() {
					per = 100
				}
				runStressWith(t, tc, per, 512, 64)
			})
		}
	}
}

// TestSpanSelective runs two selective consumers, each taking its own
// type, over spans of random sizes from two producers.
func TestSpanSelective(t *testing.T) {
	r := testRing(t, heap, spanOpts(MPMC, true))
	ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
	defer cancel()
	const per = 300
	errs := make(chan error, 4)
	for id := 0; id < 2; id++ {
		p, err := r.NewProducer()
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			defer p.Close()
			rng := rand.New(rand.NewPCG(uint64(id), 9))
			buf := make([]byte, 512)
			for seq := 0; seq < per; seq++ {
				if err := p.Send(ctx, int64(1+id), spanData(buf, seq, 1+rng.IntN(512))); err != nil {
					errs <- fmt.Errorf("producer %d: %w", id, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for id := 0; id < 2; id++ {
		c, err := r.NewConsumer()
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			defer c.Close()
			rng := rand.New(rand.NewPCG(uint64(id), 9))
			buf, want := make([]byte, 512), make([]byte, 512)
			for seq := 0; seq < per; seq++ {
				n, typ, err := c.ReceiveSelect(ctx, buf, ipc.OfType(int64(1+id)))
				if err != nil {
					errs <- fmt.Errorf("consumer %d at %d: %w", id, seq, err)
					return
				}
				if w := spanData(want, seq, 1+rng.IntN(512)); typ != int64(1+id) || !bytes.Equal(buf[:n], w) {
					match := -1
					for j := max(0, seq-10); j < seq+10; j++ {
						if bytes.Equal(spanData(make([]byte, 512), j, n), buf[:n]) {
							match = j
						}
					}
					errs <- fmt.Errorf("consumer %d: message %d of type %d, %d bytes, want %d (it is message %d)\n%s", id, seq, typ, n, len(w), match, dump(r))
					return
				}
			}
			_, _, err := c.TryReceiveSelect(buf, ipc.OfType(int64(1+id)))
			if !errors.Is(err, ErrEmpty) && !errors.Is(err, io.EOF) {
				err = fmt.Errorf("consumer %d: after the last: %v", id, err)
			} else {
				err = nil
			}
			errs <- err
		}()
	}
	for i := 0; i < 4; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestSpanOptions checks the limits of Options.SlotSize, and that Open
// learns the slot size from the header.
func TestSpanOptions(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		ok   bool
	}{
		{Options{Slots: 16, SlotSize: 64, MaxMessage: 512}, true},
		{Options{Slots: 16, SlotSize: 64, MaxMessage: 513}, false}, // more than half the area
		{Options{Slots: 16, SlotSize: -1, MaxMessage: 512}, false},
		{Options{Slots: 16, SlotSize: 1024, MaxMessage: 512}, true}, // not below: no spanning
		{Options{Slots: 16, SlotSize: 1, MaxMessage: 80}, true},     // every message inline
	} {
		g := tc.opts.geometry()
		if err := g.check(); (err == nil) != tc.ok {
			t.Errorf("%+v: %v", tc.opts, err)
		}
	}
	if g := (&Options{Slots: 16, SlotSize: 1024, MaxMessage: 512}).geometry(); g != (&Options{Slots: 16, MaxMessage: 512}).geometry() {
		t.Errorf("a slot size not below the largest message changes the geometry: %+v", g)
	}
	r := testRing(t, shm, &Options{Slots: 16, SlotSize: 100, MaxMessage: 1024})
	o, err := OpenID(r.SegmentID(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if h := o.Header(); h.SlotSize != 128 || h.MaxMessage != 1024 {
		t.Fatalf("header %+v", h)
	}
	p, _ := r.NewProducer()
	if _, err := p.TryReserve(); err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(1, 129); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("commit of more than a slot: %v", err)
	}
	if err := p.Commit(1, 128); err != nil {
		t.Fatal(err)
	}
	c, _ := o.NewConsumer()
	buf := make([]byte, 1024)
	if n, _, err := c.TryReceive(buf); err != nil || n != 128 {
		t.Fatalf("%d, %v", n, err)
	}
	msg := bytes.Repeat([]byte("0123456789"), 100)
	if err := p.TrySend(5, msg); err != nil {
		t.Fatal(err)
	}
	if n, typ, err := c.TryReceive(buf); err != nil || typ != 5 || !bytes.Equal(buf[:n], msg) {
		t.Fatalf("%d, %d, %v", n, typ, err)
	}
}

// TestSpanReserve writes messages in place with ReserveSpan, of random
// room and random committed length (the whole room, fewer slots' worth,
// one slot's, a descriptor's), gives some up with Abort, and checks that
// the consumer receives exactly the committed ones, whole, in order.
func TestSpanReserve(t *testing.T) {
	for _, sm := range spanModes {
		t.Run(spanName(sm.mode, sm.selective), func(t *testing.T) {
			r := testRing(t, heap, spanOpts(sm.mode, sm.selective))
			p, _ := r.NewProducer()
			c, _ := r.NewConsumer()
			ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
			defer cancel()
			type sent struct{ seq, m int }
			committed := make(chan sent, 1000)
			perr := make(chan error, 1)
			go func() {
				defer close(committed)
				defer p.Close()
				rng := rand.New(rand.NewPCG(3, uint64(sm.mode)))
				buf := make([]byte, 512)
				for seq := 0; seq < 500; seq++ {
					n := 1 + rng.IntN(512)
					first, rest, err := p.ReserveSpan(ctx, n)
					if err != nil {
						perr <- fmt.Errorf("reserve %d: %w", n, err)
						return
					}
					if len(first)+len(rest) != n {
						perr <- fmt.Errorf("reserve %d: room %d+%d", n, len(first), len(rest))
						return
					}
					m := n
					switch rng.IntN(5) {
					case 0:
						if err := p.Abort(); err != nil {
							perr <- err
							return
						}
						continue
					case 1:
						m = rng.IntN(n + 1)
					case 2:
						m = min(n, 1+rng.IntN(InlineCap))
					}
					data := spanData(buf, seq, m)
					copy(rest, data[copy(first, data):])
					committed <- sent{seq, m}
					if err := p.Commit(int64(1+seq%5), m); err != nil {
						perr <- fmt.Errorf("commit %d of %d: %w", m, n, err)
						return
					}
				}
				perr <- p.Close() // the consumer sees io.EOF once it has all
			}()
			want, got := make([]byte, 512), make([]byte, 512)
			for i := 0; ; i++ {
				var k int
				var typ int64
				var err error
				if i%2 == 0 {
					k, typ, err = c.Receive(ctx, got)
				} else {
					var pk Peeked
					pk, err = c.Peek(ctx)
					k = copy(got, pk.Data)
					k += copy(got[k:], pk.Wrapped)
					typ = pk.Type
					if err == nil {
						err = c.Release()
					}
				}
				if errors.Is(err, io.EOF) {
					break
				}
				e, ok := <-committed
				if !ok {
					t.Fatalf("message %d: more than was committed: %d bytes, %v", i, k, err)
				}
				if data := spanData(want, e.seq, e.m); err != nil || typ != int64(1+e.seq%5) || !bytes.Equal(got[:k], data) {
					t.Fatalf("message %d (%d bytes): type %d, %d bytes, %v\n%s", e.seq, e.m, typ, k, err, dump(r))
				}
			}
			if err := <-perr; err != nil {
				t.Fatal(err)
			}
			if _, err := c.TryPeek(); !errors.Is(err, ErrEmpty) {
				t.Fatalf("at the end: %v", err)
			}
		})
	}
}

// TestSpanningFanout: a fan-out ring takes slots smaller than its largest
// message, and every subscriber receives a message spanning them whole,
// held in place too, wrapped around the end of the payload area.
func TestSpanningFanout(t *testing.T) {
	r := testRing(t, shm, &Options{Mode: SPMC, Fanout: true, MaxMessage: 4096, SlotSize: 256, Slots: 64})
	subs := subscribe(t, r, 2)
	p, err := r.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	send, got := make([]byte, 4096), make([]byte, 4096)
	wrapped := 0
	for seq := 0; seq < 40; seq++ { // 12 slots each: round the ring 7 times
		if err := p.TrySend(1, spanData(send, seq, 3000)); err != nil {
			t.Fatalf("send %d: %v", seq, err)
		}
		n, _, err := subs[0].Receive(context.Background(), got)
		if err != nil || !bytes.Equal(got[:n], send[:3000]) {
			t.Fatalf("receive %d: %d bytes, %v", seq, n, err)
		}
		pk, err := subs[1].TryPeek()
		if err != nil {
			t.Fatalf("peek %d: %v", seq, err)
		}
		if m := append(append(got[:0], pk.Data...), pk.Wrapped...); !bytes.Equal(m, send[:3000]) {
			t.Fatalf("peek %d: %d bytes", seq, len(m))
		}
		if pk.Wrapped != nil {
			wrapped++
		}
		if err := subs[1].Release(); err != nil {
			t.Fatal(err)
		}
	}
	if wrapped == 0 {
		t.Error("no peeked message wrapped around the payload area")
	}
}
