package ring

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/shmring/shmring/internal/ipctest"
)

func init() {
	helpers["span-producer"] = helperSpanProducer
	helpers["span-consumer"] = helperSpanConsumer
	helpers["span-reserver"] = helperSpanReserver
}

// spanPayload is message seq of producer id for the spanning tests: 100
// bytes or more (a span of 64-byte slots), up to len(b), checked by
// checkSpanPayload.
func spanPayload(b []byte, id, seq uint64) []byte {
	b = b[:100+int((seq*97+id*31)%uint64(len(b)-99))]
	binary.LittleEndian.PutUint64(b, id)
	binary.LittleEndian.PutUint64(b[8:], seq)
	x := uint32(id*2654435761) ^ uint32(seq)*40503 | 1
	for i := 16; i < len(b); i++ {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

func checkSpanPayload(typ int64, m, scratch []byte) (id, seq uint64, err error) {
	if len(m) < 16 {
		return 0, 0, fmt.Errorf("message of %d bytes", len(m))
	}
	id, seq = binary.LittleEndian.Uint64(m), binary.LittleEndian.Uint64(m[8:])
	if want := spanPayload(scratch, id, seq); typ != int64(id+1) || string(want) != string(m) {
		return id, seq, fmt.Errorf("producer %d seq %d: type %d, %d bytes, want %d", id, seq, typ, len(m), len(want))
	}
	return id, seq, nil
}

// spanHelperStart is the start of the spanning producer helpers: a
// producer of the helper's ring, which sends RING_COUNT spanning messages
// as producer RING_ID with the step hook off; fail is the helper's exit
// status if that failed.
func spanHelperStart() (r *Ring, p *Producer, id uint64, buf []byte, n uint64, fail int) {
	r, _ = helperOpen()
	p, err := r.NewProducer()
	if err != nil {
		return nil, nil, 0, nil, 0, helperFail("new producer", err)
	}
	id = uint64(ipctest.GetenvInt("RING_ID"))
	buf = make([]byte, r.MaxMessage())
	n = uint64(ipctest.GetenvInt("RING_COUNT"))
	hook := stepHook
	stepHook = nil
	for seq := uint64(0); seq < n; seq++ {
		if err := p.Send(context.Background(), int64(id+1), spanPayload(buf, id, seq)); err != nil {
			return nil, nil, 0, nil, 0, helperFail("send", err)
		}
	}
	stepHook = hook
	return r, p, id, buf, n, 0
}

// helperSpanProducer sends RING_COUNT spanning messages as producer RING_ID
// with the step hook off, then one more with it on: with SHMRING_PARK at
// a step of the span send (span:claimed, span:continued) it stops there,
// for the parent to kill it.
func helperSpanProducer() int {
	_, p, id, buf, n, fail := spanHelperStart()
	if fail != 0 {
		return fail
	}
	if err := p.Send(context.Background(), int64(id+1), spanPayload(buf, id, n)); err != nil {
		return helperFail("send", err)
	}
	return hang()
}

// helperSpanReserver sends RING_COUNT spanning messages as producer
// RING_ID, then writes one more in place with ReserveSpan: it parks at
// span:reserved with half of the message written, and otherwise commits
// it, whole or (RING_SHORT=1) shorter than reserved, to park at a step of
// the commit (span:continued, span:trimming).
func helperSpanReserver() int {
	r, p, id, buf, n, fail := spanHelperStart()
	if fail != 0 {
		return fail
	}
	m := spanPayload(buf, id, n)
	room := len(m)
	if ipctest.GetenvInt("RING_SHORT") == 1 {
		room = r.MaxMessage() // more than the message: the commit trims it
	}
	first, rest, err := p.ReserveSpan(context.Background(), room)
	if err != nil {
		return helperFail("reserve span", err)
	}
	copy(first, m[:len(m)/2])
	step("span:reserved")
	copy(rest, m[copy(first, m):])
	if err := p.Commit(int64(id+1), len(m)); err != nil {
		return helperFail("commit", err)
	}
	return hang()
}

// helperSpanConsumer receives until it is parked (SHMRING_PARK=span:copied:
// in the middle of its first spanning message, copied and not finished).
func helperSpanConsumer() int {
	r, _ := helperOpen()
	c, err := r.NewConsumer()
	if err != nil {
		return helperFail("new consumer", err)
	}
	buf := make([]byte, r.MaxMessage())
	for {
		if _, _, err := c.Receive(context.Background(), buf); err != nil {
			return helperFail("receive", err)
		}
	}
}

// TestSpanProcesses runs producers and consumers in processes over a ring
// of 64-byte slots whose messages, of 16 to 1024 bytes, mostly span
// slots: every message arrives once, whole, in its producer's order.
func TestSpanProcesses(t *testing.T) {
	count := 5000
	if testing.Short() {
		count = 1000
	}
	for _, tc := range []struct {
		mode                        Mode
		producers, consumers, batch int
	}{{SPSC, 1, 1, 1}, {MPSC, 2, 1, 1}, {SPMC, 1, 2, 4}, {MPMC, 2, 2, 1}, {MPMC, 2, 2, 8}} {
		t.Run(fmt.Sprintf("mode=%v/p=%d/c=%d/batch=%d", tc.mode, tc.producers, tc.consumers, tc.batch), func(t *testing.T) {
			r := testRing(t, shm, &Options{Mode: tc.mode, Slots: 64, SlotSize: 64, MaxMessage: 1024})
			runProcesses(t, r, tc.producers, tc.consumers, tc.batch, count)
		})
	}
}

// receiveSpans receives messages until none is left, checking each, and
// returns their sequence numbers by producer.
func receiveSpans(t *testing.T, c *Consumer, r *Ring, want int) (seqs map[uint64][]uint64, redelivered int) {
	t.Helper()
	seqs = map[uint64][]uint64{}
	scratch := make([]byte, r.MaxMessage())
	ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
	defer cancel()
	for got := 0; got < want; got++ {
		pk, err := c.Peek(ctx)
		if err != nil {
			t.Fatalf("after %d messages (%v): %v\n%s", got, seqs, err, dump(r))
		}
		m := append(append([]byte(nil), pk.Data...), pk.Wrapped...)
		id, seq, err := checkSpanPayload(pk.Type, m, scratch)
		if err != nil {
			t.Fatalf("message %d: %v", got, err)
		}
		if pk.Redelivered {
			redelivered++
		}
		seqs[id] = append(seqs[id], seq)
		if err := c.Release(); err != nil {
			t.Fatal(err)
		}
	}
	if pk, err := c.TryPeek(); err == nil || !errors.Is(err, ErrEmpty) && !errors.Is(err, io.EOF) && !errors.Is(err, ErrPeerDead) {
		t.Fatalf("after the last message: %+v, %v", pk, err)
	}
	return seqs, redelivered
}

// TestSpanProducerKilled kills a producer in the middle of a spanning
// message, after claiming its slots and after publishing its
// continuations (not its head): consumers skip the hole whole, receive
// every message before and after it, and nothing of the dead message.
func TestSpanProducerKilled(t *testing.T) {
	for _, sm := range spanModes {
		for _, st := range []string{"span:claimed", "span:continued"} {
			t.Run(spanName(sm.mode, sm.selective)+"/kill-at="+st, func(t *testing.T) {
				opts := spanOpts(sm.mode, sm.selective)
				opts.Slots = 32 // room for all the test's messages
				r := testRing(t, shm, opts)
				if !parkAndKill(t, "span-producer", st, helperEnv(r, "RING_ID=0", "RING_COUNT=2")...) {
					t.Fatalf("the producer never reached %s", st)
				}
				p, err := r.NewProducer() // the dead one's successor, or another producer
				if err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, r.MaxMessage())
				ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
				defer cancel()
				c, err := r.NewConsumer()
				if err != nil {
					t.Fatal(err)
				}
				for seq := uint64(0); seq < 3; seq++ {
					if err := p.Send(ctx, 2, spanPayload(buf, 1, seq)); err != nil {
						t.Fatalf("send %d: %v\n%s", seq, err, dump(r))
					}
				}
				p.Close()
				seqs, _ := receiveSpans(t, c, r, 5)
				if fmt.Sprint(seqs) != "map[0:[0 1] 1:[0 1 2]]" {
					t.Fatalf("received %v", seqs)
				}
				// A single producer's claim is its own tail, which its
				// successor simply fills: a hole only once continuations
				// were published.
				hole := sm.mode.multiProducer() || st == "span:continued"
				if stats := r.Stats(); hole != (stats.Recovered > 0) {
					t.Errorf("hole %v, recovered %d: %+v", hole, stats.Recovered, stats)
				}
			})
		}
	}
}

// TestSpanConsumerKilled kills a consumer in the middle of a spanning
// message, copied and not finished, and one holding a spanning message in
// place (Peek): the next consumer receives every message whole, the one
// peeked flagged as redelivered.
func TestSpanConsumerKilled(t *testing.T) {
	for _, sm := range spanModes {
		for _, how := range []string{"copy", "peek"} {
			t.Run(spanName(sm.mode, sm.selective)+"/killed-in="+how, func(t *testing.T) {
				r := testRing(t, shm, spanOpts(sm.mode, sm.selective))
				p, err := r.NewProducer()
				if err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, r.MaxMessage())
				for seq := uint64(0); seq < 3; seq++ {
					if err := p.TrySend(1, spanPayload(buf, 0, seq)); err != nil {
						t.Fatalf("send %d: %v", seq, err)
					}
				}
				want, flagged := "map[0:[0 1 2]]", 0
				if how == "copy" {
					if !parkAndKill(t, "span-consumer", "span:copied", helperEnv(r)...) {
						t.Fatal("the consumer never reached span:copied")
					}
				} else {
					cmd := startHelper(t, "hang-consumer", helperEnv(r, "RING_COUNT=1", "RING_PEEK=1")...)
					kill(t, cmd)
					want, flagged = "map[0:[1 2]]", 1
				}
				c, err := r.NewConsumer()
				if err != nil {
					t.Fatal(err)
				}
				// The dead consumer's line is found when the ring looks stuck;
				// give the new consumer time to look.
				time.Sleep(10 * time.Millisecond)
				seqs, redelivered := receiveSpans(t, c, r, 3-flagged)
				if fmt.Sprint(seqs) != want {
					t.Fatalf("received %v, want %s", seqs, want)
				}
				if how == "peek" && redelivered != 1 {
					t.Fatalf("%d redelivered, want the one peeked", redelivered)
				}
			})
		}
	}
}

// TestSpanReserveKilled kills a producer writing a spanning message in
// place: after ReserveSpan with half of it written, and in Commit after
// publishing the continuations (all of the reservation's, or of a message
// shorter than reserved) and after publishing the message, before giving
// up the reserved slots it does not take. Consumers receive every message
// before and after it, and the dead one whole if its head was published,
// nothing of it otherwise; the slots it had reserved carry the messages
// that follow.
func TestSpanReserveKilled(t *testing.T) {
	type ring struct {
		name string
		opts *Options
	}
	var rings []ring
	for _, sm := range spanModes {
		rings = append(rings, ring{spanName(sm.mode, sm.selective), spanOpts(sm.mode, sm.selective)})
	}
	for _, m := range []Mode{SPMC, MPMC} {
		rings = append(rings, ring{"mode=" + m.String() + "-fanout", fanSpanOpts(m, PolicyBlock)})
	}
	for _, rc := range rings {
		for _, tc := range []struct {
			step, short string
			published   bool // the dead message's head
		}{
			{"span:reserved", "0", false}, {"span:continued", "0", false},
			{"span:continued", "1", false}, {"span:trimming", "1", true},
		} {
			t.Run(rc.name+"/kill-at="+tc.step+"/short="+tc.short, func(t *testing.T) {
				opts := *rc.opts
				opts.Slots = 32 // room for the dead producer's messages
				r := testRing(t, shm, &opts)
				var c *Consumer
				var err error
				if opts.Fanout { // subscribed before the messages
					c, err = r.NewSubscriber(&SubscribeOptions{Name: "reader"})
					if err != nil {
						t.Fatal(err)
					}
				}
				if !parkAndKill(t, "span-reserver", tc.step, helperEnv(r, "RING_ID=0", "RING_COUNT=2", "RING_SHORT="+tc.short)...) {
					t.Fatalf("the producer never reached %s", tc.step)
				}
				p, err := r.NewProducer()
				if err != nil {
					t.Fatal(err)
				}
				if c == nil {
					if c, err = r.NewConsumer(); err != nil {
						t.Fatal(err)
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
				defer cancel()
				buf := make([]byte, r.MaxMessage())
				for seq := uint64(0); seq < 3; seq++ {
					if err := p.Send(ctx, 2, spanPayload(buf, 1, seq)); err != nil {
						t.Fatalf("send %d: %v\n%s", seq, err, dump(r))
					}
				}
				want, n := "map[0:[0 1] 1:[0 1 2]]", 5
				if tc.published {
					want, n = "map[0:[0 1 2] 1:[0 1 2]]", 6
				}
				if seqs, _ := receiveSpans(t, c, r, n); fmt.Sprint(seqs) != want {
					t.Fatalf("received %v, want %s", seqs, want)
				}
				// Then through the dead message's slots more than once.
				scratch := make([]byte, r.MaxMessage())
				for seq := uint64(3); seq < 3+2*uint64(opts.Slots); seq++ {
					if err := p.Send(ctx, 2, spanPayload(buf, 1, seq)); err != nil {
						t.Fatalf("send %d: %v\n%s", seq, err, dump(r))
					}
					n, typ, err := c.Receive(ctx, buf)
					if err != nil {
						t.Fatalf("receive %d: %v\n%s", seq, err, dump(r))
					}
					if id, got, err := checkSpanPayload(typ, buf[:n], scratch); err != nil || id != 1 || got != seq {
						t.Fatalf("received producer %d seq %d (%v), want 1 %d", id, got, err, seq)
					}
				}
			})
		}
	}
}
