package ring

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

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
// 1 byte to len(b) (len(b) every 7th), its bytes derived from id and seq.
func fanSpanMsg(b []byte, id, seq uint64) []byte {
	n := len(b)
	if seq%7 != 3 {
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
// way of receiving that way picks (0 copy, 1 batch, 2 peek, 3 peek batch,
// as receiveAll does), each producer's in order and intact, then expects
// io.EOF.
func receiveFanSpans(ctx context.Context, c *Consumer, way, count, producers int, max int) error {
	next := make([]uint64, producers)
	scratch := make([]byte, max)
	got := 0
	check := func(typ int64, m []byte) error {
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
	}
	buf := make([]byte, max)
	msgs := make([]Message, 5)
	for i := range msgs {
		msgs[i].Data = make([]byte, max)
	}
	held := make([]Peeked, 5)
	for got < count*producers {
		switch way % 4 {
		case 0:
			n, typ, err := c.Receive(ctx, buf)
			if err != nil {
				return err
			}
			if err := check(typ, buf[:n]); err != nil {
				return err
			}
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
		case 2, 3:
			h := held[:1] // a Peek
			if way%4 == 3 {
				h = held
			}
			n, err := c.PeekBatch(ctx, h)
			if err != nil {
				return err
			}
			for _, m := range held[:n] {
				if err := check(m.Type, append(append(buf[:0], m.Data...), m.Wrapped...)); err != nil {
					return err
				}
			}
			if err := c.Release(); err != nil {
				return err
			}
		}
	}
	if _, _, err := c.Receive(ctx, buf); !errors.Is(err, io.EOF) {
		return fmt.Errorf("after the last message: %v, want EOF", err)
	}
	return nil
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
