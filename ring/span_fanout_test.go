package ring

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/shmring/shmring/internal/ipctest"
)

// fanSpanOpts is a fan-out ring of 16 slots of 64 bytes whose messages
// span up to 8 of them (spanOpts), for 4 subscribers.
func fanSpanOpts(m Mode, p Policy) *Options {
	o := spanOpts(m, false)
	o.Fanout, o.Policy, o.MaxConsumers = true, p, 5
	return o
}

// fanSpanMsg is message seq of producer id in the fan-out spanning tests:
// 1 byte to len(b) (len(b) every 7th, the first among them), its bytes
// derived from id and seq.
func fanSpanMsg(b []byte, id, seq uint64) []byte {
	n := len(b)
	if seq%7 != 0 {
		n = 1 + int((seq*2654435761+id*40503)%uint64(len(b)))
	}
	return spanData(b, int(seq*16+id), n)
}

// checkFanSpan checks that m, of type typ, is message seq of its producer
// (typ-1), made by fanSpanMsg.
func checkFanSpan(typ int64, m, scratch []byte, seq uint64) error {
	if typ < 1 {
		return fmt.Errorf("type %d", typ)
	}
	if want := fanSpanMsg(scratch, uint64(typ-1), seq); !bytes.Equal(m, want) {
		return fmt.Errorf("producer %d message %d: %d bytes, want %d, or bytes differ", typ-1, seq, len(m), len(want))
	}
	return nil
}

// receiveFanSpans receives count messages of each of producers, by the
// way of receiving that way picks (receiveEachWay), each producer's in
// order and intact, then expects io.EOF.
func receiveFanSpans(ctx context.Context, c *Consumer, way, count, producers int, max int) error {
	next := make([]uint64, producers)
	scratch := make([]byte, max)
	got := 0
	return receiveEachWay(ctx, c, way, count*producers, max, func(typ int64, m []byte) error {
		if typ < 1 || int(typ) > producers {
			return fmt.Errorf("type %d", typ)
		}
		id := typ - 1
		if err := checkFanSpan(typ, m, scratch, next[id]); err != nil {
			return fmt.Errorf("after %d messages: %w", got, err)
		}
		next[id]++
		got++
		return nil
	})
}

// TestSpanFanout: on a Block fan-out ring, every subscriber of 1 and of 4
// receives every message of random sizes from 1 byte to the limit, most
// spanning slots and many wrapping around the payload area, exactly once,
// in each producer's order, by every way of receiving; with one producer
// and with three, over a heap ring (under -race) and over a segment.
func TestSpanFanout(t *testing.T) {
	count := 3000
	if testing.Short() {
		count = 500
	}
	for _, tc := range []struct {
		mode            Mode
		producers, subs int
	}{{SPMC, 1, 1}, {SPMC, 1, 4}, {MPMC, 3, 1}, {MPMC, 3, 4}} {
		for _, mem := range []memory{heap, shm} {
			t.Run(fmt.Sprintf("mode=%v/p=%d/subs=%d/memory=%v", tc.mode, tc.producers, tc.subs, mem), func(t *testing.T) {
				r := testRing(t, mem, fanSpanOpts(tc.mode, PolicyBlock))
				ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
				defer cancel()
				subs := subscribe(t, r, tc.subs)
				wait := receiveEach(ctx, subs, count, func(ctx context.Context, c *Consumer, way, count int) error {
					return receiveFanSpans(ctx, c, way, count, tc.producers, r.MaxMessage())
				})
				errs := make(chan error, tc.producers)
				for id := 0; id < tc.producers; id++ {
					p, err := r.NewProducer()
					if err != nil {
						t.Fatal(err)
					}
					go func() {
						defer p.Close()
						buf := make([]byte, r.MaxMessage())
						for seq := uint64(0); seq < uint64(count); seq++ {
							m := fanSpanMsg(buf, uint64(id), seq)
							var err error
							switch seq % 3 {
							case 0:
								err = p.Send(ctx, int64(id+1), m)
							case 1:
								_, err = p.SendBatch(ctx, []Message{{Type: int64(id + 1), Data: m}})
							default:
								err = reserveSpanSend(ctx, p, int64(id+1), m)
							}
							if err != nil {
								errs <- fmt.Errorf("producer %d, message %d: %w", id, seq, err)
								return
							}
						}
						errs <- nil
					}()
				}
				for range tc.producers {
					if err := <-errs; err != nil {
						t.Error(err)
					}
				}
				for i, err := range wait() {
					if err != nil {
						t.Errorf("subscriber %d: %v\n%s%s", i, err, dump(r), fanDump(r))
					}
				}
			})
		}
	}
}

// reserveSpanSend sends m with ReserveSpan and Commit, in place.
func reserveSpanSend(ctx context.Context, p *Producer, typ int64, m []byte) error {
	first, rest, err := p.ReserveSpan(ctx, len(m))
	if err != nil {
		return err
	}
	copy(rest, m[copy(first, m):])
	return p.Commit(typ, len(m))
}

// spanLoss is what a subscriber of a fan-out ring of spanning messages
// accounts for, by receiveSpansLossy.
type spanLoss struct {
	received, lostMsgs, lostSlots uint64
}

// receiveSpansLossy receives the messages of producer 0, made by fanSpanMsg,
// until io.EOF, by the way of receiving that way picks (as receiveAll),
// sleeping a millisecond every slow messages if slow > 0. Every message
// delivered must be the next one and intact. A LapError must report lost
// positions that are exactly the slots of whole messages (each message
// counts its slots), and a Release that returns ErrOverwritten must have
// counted, in Lost, exactly the slots of the messages it held that were
// overwritten (the first of them: a producer overwrites in order); their
// bytes may be torn. With strict, nothing may be lost. At the end, the
// losses the calls reported must be what Lost says.
func receiveSpansLossy(ctx context.Context, c *Consumer, way, slow int, strict bool) (spanLoss, error) {
	r := c.h.r
	max := r.MaxMessage()
	scratch, buf := make([]byte, max), make([]byte, max)
	msgs := make([]Message, 5)
	for i := range msgs {
		msgs[i].Data = make([]byte, max)
	}
	held := make([]Peeked, 5)
	var acc spanLoss
	next := uint64(0)
	slots := func(seq uint64) uint64 { return r.spanOf(len(fanSpanMsg(scratch, 0, seq))) }
	deliver := func(typ int64, m []byte, redelivered bool) error {
		if redelivered && next > 0 && checkFanSpan(typ, m, scratch, next-1) == nil {
			return nil // again, flagged: seen before
		}
		if err := checkFanSpan(typ, m, scratch, next); err != nil {
			return fmt.Errorf("torn or out of order after %d received, %d lost: %w", acc.received, acc.lostMsgs, err)
		}
		next++
		acc.received++
		if slow > 0 && acc.received%uint64(slow) == 0 {
			time.Sleep(time.Millisecond)
		}
		return nil
	}
	// lose accounts for lost positions, whole messages from next on.
	lose := func(lost uint64) error {
		if strict {
			return fmt.Errorf("%d positions lost", lost)
		}
		acc.lostSlots += lost
		for lost > 0 {
			k := slots(next)
			if k > lost {
				return fmt.Errorf("%d positions lost, not whole messages from message %d (%d slots)", lost, next, k)
			}
			lost -= k
			next++
			acc.lostMsgs++
		}
		return nil
	}
	for i := 0; ; i++ {
		w := way
		if way < 0 {
			w = i
		}
		var err error
		switch w % 4 {
		case 0:
			var n int
			var typ int64
			if n, typ, err = c.Receive(ctx, buf); err == nil {
				err = deliver(typ, buf[:n], false)
			}
		case 1:
			var n int
			if n, err = c.ReceiveBatch(ctx, msgs); err == nil {
				for _, m := range msgs[:n] {
					if err = deliver(m.Type, m.Data, m.Redelivered); err != nil {
						break
					}
				}
			}
		default:
			h := held[:1] // a Peek
			if w%4 == 3 {
				h = held
			}
			var n int
			if n, err = c.PeekBatch(ctx, h); err != nil {
				break
			}
			from, l0 := next, c.Lost()
			var derr error
			for _, m := range h[:n] {
				if derr = deliver(m.Type, append(append(buf[:0], m.Data...), m.Wrapped...), m.Redelivered); derr != nil {
					break
				}
			}
			err = c.Release()
			if !errors.Is(err, ErrOverwritten) {
				if err == nil {
					err = derr
				}
				break
			}
			// The first messages held were overwritten: undo what deliver
			// counted of the batch, lose them, and deliver the rest.
			acc.received -= next - from
			next = from
			lostSlots := c.Lost() - l0
			if err = lose(lostSlots); err != nil {
				break
			}
			for ; next < from+uint64(n); next++ {
				acc.received++
			}
		}
		var le LapError
		switch {
		case err == nil:
		case errors.As(err, &le):
			if err := lose(le.Lost); err != nil {
				return acc, err
			}
		case errors.Is(err, io.EOF):
			if got := c.Lost(); got != acc.lostSlots {
				return acc, fmt.Errorf("reports said %d positions lost, Lost says %d", acc.lostSlots, got)
			}
			return acc, nil
		default:
			return acc, err
		}
	}
}

// sendFanSpans sends messages [from, to) of producer 0 made by fanSpanMsg,
// with TrySend (the Overwrite policy never says full), pausing every 256.
func sendFanSpans(t *testing.T, p *Producer, from, to uint64) {
	t.Helper()
	buf := make([]byte, p.h.r.MaxMessage())
	for seq := from; seq < to; seq++ {
		if err := p.TrySend(1, fanSpanMsg(buf, 0, seq)); err != nil {
			t.Fatalf("send %d: %v", seq, err)
		}
		if seq%256 == 0 {
			time.Sleep(100 * time.Microsecond)
		}
	}
}

// TestSpanFanoutOverwrite: under Overwrite, subscribers of spanning
// messages, slow ones among them, never receive a torn message, and
// account for every message sent: received or lost, the lost counted in
// whole messages' slots by their lap reports and overwritten releases.
func TestSpanFanoutOverwrite(t *testing.T) {
	count := uint64(20000)
	if testing.Short() {
		count = 3000
	}
	// Shared memory only: an Overwrite reader's copy races with the
	// overwrite by design (it is then discarded), which the race detector
	// would report over a heap ring.
	for _, mem := range []memory{shm} {
		t.Run("memory="+mem.String(), func(t *testing.T) {
			r := testRing(t, mem, fanSpanOpts(SPMC, Overwrite))
			ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
			defer cancel()
			subs := subscribe(t, r, 4)
			accs := make([]spanLoss, len(subs))
			slow := []int{0, 16, 64, 8}
			wait := receiveEach(ctx, subs, 0, func(ctx context.Context, c *Consumer, way, _ int) error {
				var err error
				accs[way], err = receiveSpansLossy(ctx, c, way, slow[way], false)
				return err
			})
			p, err := r.NewProducer()
			if err != nil {
				t.Fatal(err)
			}
			sendFanSpans(t, p, 0, count)
			p.Close()
			lostSome := false
			for i, err := range wait() {
				if err != nil {
					t.Errorf("subscriber %d: %v", i, err)
				}
				if accs[i].received+accs[i].lostMsgs != count {
					t.Errorf("subscriber %d: received %d + lost %d != sent %d", i, accs[i].received, accs[i].lostMsgs, count)
				}
				lostSome = lostSome || accs[i].lostMsgs > 0
			}
			if !lostSome {
				t.Log("no subscriber was lapped this time")
			}
		})
	}
}

// TestSpanFanoutProcesses: 1 and 4 subscriber processes of a Block ring
// each receive every spanning message, in order, exactly once, intact,
// by every way of receiving, with one producer and with the discipline of
// many.
func TestSpanFanoutProcesses(t *testing.T) {
	count := uint64(10000)
	if testing.Short() {
		count = 2000
	}
	for _, tc := range []struct {
		mode Mode
		subs int
	}{{SPMC, 1}, {SPMC, 4}, {MPMC, 1}, {MPMC, 4}} {
		t.Run(fmt.Sprintf("mode=%v/subs=%d", tc.mode, tc.subs), func(t *testing.T) {
			r := testRing(t, shm, fanSpanOpts(tc.mode, PolicyBlock))
			ways := []string{"copy", "batch", "peek", "peekbatch", "mixed"}
			var subs []*fanSub
			for i := 0; i < tc.subs; i++ {
				subs = append(subs, startFanSub(t, r, "RING_SPAN=1", "RING_STRICT=1", "RING_WAY="+ways[(i+tc.subs)%len(ways)]))
			}
			p, err := r.NewProducer()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
			defer cancel()
			buf := make([]byte, r.MaxMessage())
			for seq := uint64(0); seq < count; seq++ {
				if err := p.Send(ctx, 1, fanSpanMsg(buf, 0, seq)); err != nil {
					t.Fatalf("send %d: %v\n%s%s", seq, err, dump(r), fanDump(r))
				}
			}
			p.Close()
			for i, s := range subs {
				if got := s.wait(t); got != fmt.Sprintf("done %d 0 0", count) {
					t.Errorf("subscriber %d: %q", i, got)
				}
			}
		})
	}
}

// TestSpanFanoutOverwriteProcesses: under Overwrite, subscriber processes
// of spanning messages, slow ones among them, never receive a torn
// message and account for every message sent: received + lost, the lost
// counted in the slots of whole messages.
func TestSpanFanoutOverwriteProcesses(t *testing.T) {
	const count = 20000
	r := testRing(t, shm, fanSpanOpts(SPMC, Overwrite))
	subs := []*fanSub{
		startFanSub(t, r, "RING_SPAN=1", "RING_WAY=copy"),
		startFanSub(t, r, "RING_SPAN=1", "RING_WAY=peek", "RING_SLOW=16"),
		startFanSub(t, r, "RING_SPAN=1", "RING_WAY=batch", "RING_SLOW=64"),
		startFanSub(t, r, "RING_SPAN=1", "RING_WAY=mixed", "RING_SLOW=8"),
	}
	p, err := r.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	sendFanSpans(t, p, 0, count)
	p.Close()
	for i, s := range subs {
		var got, slots, lost uint64
		if _, err := fmt.Sscanf(s.wait(t), "done %d %d %d", &got, &slots, &lost); err != nil {
			t.Fatalf("subscriber %d: %q", i, s.last())
		}
		if got+lost != count || lost > slots {
			t.Errorf("subscriber %d: received %d + lost %d (%d slots) != sent %d", i, got, lost, slots, count)
		}
	}
}

// TestSpanFanoutProducerKilled: a producer SIGKILLed in the middle of a
// spanning message, after claiming its slots or after publishing its
// continuations, leaves a hole that every subscriber passes whole: they
// receive every message before and after it and nothing of it. With many
// producers the hole is the dead one's claim, recovered; with one, its
// successor's.
func TestSpanFanoutProducerKilled(t *testing.T) {
	for _, m := range []Mode{MPMC, SPMC} {
		for _, st := range []string{"span:claimed", "span:continued"} {
			t.Run(fmt.Sprintf("mode=%v/kill-at=%s", m, st), func(t *testing.T) {
				opts := fanSpanOpts(m, PolicyBlock)
				opts.Slots = 64 // room for all the test's messages
				r := testRing(t, shm, opts)
				subs := subscribe(t, r, 3)
				if !parkAndKill(t, "span-producer", st, helperEnv(r, "RING_ID=0", "RING_COUNT=2")...) {
					t.Fatalf("the producer never reached %s", st)
				}
				p, err := r.NewProducer() // another producer, or the dead one's successor
				if err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, r.MaxMessage())
				ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
				defer cancel()
				for seq := uint64(0); seq < 3; seq++ {
					if err := p.Send(ctx, 2, spanPayload(buf, 1, seq)); err != nil {
						t.Fatalf("send %d: %v\n%s", seq, err, dump(r))
					}
				}
				p.Close()
				for i, c := range subs {
					seqs, _ := receiveSpans(t, c, r, 5)
					if fmt.Sprint(seqs) != "map[0:[0 1] 1:[0 1 2]]" {
						t.Fatalf("subscriber %d received %v", i, seqs)
					}
				}
				hole := m.multiProducer() || st == "span:continued"
				if stats := r.Stats(); hole != (stats.Recovered > 0) {
					t.Errorf("hole %v, recovered %d: %+v", hole, stats.Recovered, stats)
				}
			})
		}
	}
}

// TestSpanFanoutPeekKilled: a durable subscriber SIGKILLed while it holds
// a spanning message in place gets it again, whole and flagged, when it
// resumes by name, and goes on with the rest.
func TestSpanFanoutPeekKilled(t *testing.T) {
	opts := fanSpanOpts(SPMC, PolicyBlock)
	opts.Slots = 32 // room for the test's messages: a closed subscription does not hold the gate
	r := testRing(t, shm, opts)
	p, err := r.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.NewSubscriber(&SubscribeOptions{Name: "held"}) // the subscription exists before the messages
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	sendFanSpans(t, p, 0, 3)
	if !parkAndKill(t, "fan-subscriber", "span:held", helperEnv(r, "RING_SPAN=1", "RING_NAME=held", "RING_WAY=peek")...) {
		t.Fatal("the subscriber never held a spanning message")
	}
	c, err = r.NewSubscriber(&SubscribeOptions{Name: "held"})
	if err != nil {
		t.Fatal(err)
	}
	scratch, buf := make([]byte, r.MaxMessage()), make([]byte, r.MaxMessage())
	for seq := uint64(0); seq < 3; seq++ {
		m, err := c.TryPeek()
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		if err := checkFanSpan(m.Type, append(append(buf[:0], m.Data...), m.Wrapped...), scratch, seq); err != nil || m.Redelivered != (seq == 0) {
			t.Fatalf("resumed: message %d: %v, redelivered %v", seq, err, m.Redelivered)
		}
		if err := c.Release(); err != nil {
			t.Fatal(err)
		}
	}
	if st := r.Stats(); st.Redelivered != 1 || c.Lost() != 0 {
		t.Fatalf("stats %+v, lost %d", st, c.Lost())
	}
}
