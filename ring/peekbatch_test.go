package ring

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/shmring/shmring/internal/ipctest"
)

// TestPeekBatch: PeekBatch holds runs of messages in place, in order, with
// their sequence numbers, origins and flags; one Release finishes them
// all, and the ring goes on, in every mode, across the wrap.
func TestPeekBatch(t *testing.T) {
	for _, mem := range []memory{heap, shm} {
		for _, mode := range []Mode{SPSC, MPSC, SPMC, MPMC} {
			t.Run(fmt.Sprintf("%v/mode=%v", mem, mode), func(t *testing.T) {
				r := testRing(t, mem, &Options{Mode: mode, Slots: 16, MaxMessage: 200})
				p, err := r.NewProducer()
				if err != nil {
					t.Fatal(err)
				}
				c, err := r.NewConsumer()
				if err != nil {
					t.Fatal(err)
				}
				held := make([]Peeked, 5)
				if _, err := c.TryPeekBatch(held); !errors.Is(err, ErrEmpty) {
					t.Fatalf("empty ring: %v, want ErrEmpty", err)
				}
				buf := make([]byte, 200)
				next, want := uint64(0), uint64(0) // next to send, next to see
				lastSeq, longest := uint64(0), 0
				for round := 0; round < 12; round++ {
					// Up to 16 messages, of both sizes, some with an origin
					// and the sender's redelivery flag.
					batch := make([]Message, 3+round%9)
					for i := range batch {
						// Inline and in the payload area, by payload's sizes.
						batch[i] = Message{Type: 1, Data: append([]byte(nil), payload(buf, 0, next)...),
							Origin: next * 7, Redelivered: next%4 == 0}
						next++
					}
					if n, err := p.TrySendBatch(batch); err != nil || n != len(batch) {
						t.Fatalf("send: %d, %v", n, err)
					}
					for want < next {
						ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
						n, err := c.PeekBatch(ctx, held)
						cancel()
						if err != nil || n < 1 || n > len(held) {
							t.Fatalf("peek batch: %d, %v", n, err)
						}
						longest = max(longest, n)
						if _, err := c.TryPeek(); !errors.Is(err, ErrPending) {
							t.Fatalf("peek while a batch is held: %v, want ErrPending", err)
						}
						if _, err := c.TryPeekBatch(held); !errors.Is(err, ErrPending) {
							t.Fatalf("second batch: %v, want ErrPending", err)
						}
						for i, m := range held[:n] {
							_, seq, err := checkPayload(m.Type, m.Data, make([]byte, 200))
							switch {
							case err != nil:
								t.Fatal(err)
							case seq != want:
								t.Fatalf("message %d of the batch is %d, want %d", i, seq, want)
							case m.Origin != seq*7 || m.Redelivered != (seq%4 == 0):
								t.Fatalf("message %d: type %d origin %d redelivered %v", seq, m.Type, m.Origin, m.Redelivered)
							case seq > 0 && m.Seq <= lastSeq:
								t.Fatalf("message %d: Seq %d after %d", seq, m.Seq, lastSeq)
							}
							lastSeq = m.Seq
							want++
						}
						if err := c.Release(); err != nil {
							t.Fatal(err)
						}
						if err := c.Release(); !errors.Is(err, ErrNotReserved) {
							t.Fatalf("second release: %v", err)
						}
					}
				}
				if longest != len(held) {
					t.Fatalf("the longest batch held %d messages, want %d", longest, len(held))
				}
				if st := r.Stats(); st.Depth != 0 || st.Received != next || st.Redelivered != 0 {
					t.Fatalf("stats after %d messages: %+v", next, st)
				}
				// A batch is one wrap's worth at most: a full ring is one batch
				// (for a single consumer) or one claim's worth.
				for i := 0; i < 16; i++ {
					if err := p.TrySend(1, []byte("x")); err != nil {
						t.Fatal(err)
					}
				}
				got := 0
				for got < 16 {
					n, err := c.TryPeekBatch(make([]Peeked, 64))
					if err != nil {
						t.Fatalf("after %d: %v", got, err)
					}
					got += n
					if err := c.Release(); err != nil {
						t.Fatal(err)
					}
				}
				if got != 16 {
					t.Fatalf("received %d of 16", got)
				}
			})
		}
	}
}

// TestPeekBatchSeqMatches: the Seq of a message is the same whichever call
// delivers it: ReceiveBatch gives what PeekBatch would have.
func TestPeekBatchSeqMatches(t *testing.T) {
	r := testRing(t, heap, &Options{Mode: MPMC, Slots: 8, MaxMessage: 64})
	p, _ := r.NewProducer()
	c, _ := r.NewConsumer()
	for i := 0; i < 20; i++ {
		if err := p.TrySend(1, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		var got uint64
		if i%2 == 0 {
			held := []Peeked{{}}
			if n, err := c.TryPeekBatch(held); err != nil || n != 1 {
				t.Fatal(n, err)
			}
			got = held[0].Seq
			if err := c.Release(); err != nil {
				t.Fatal(err)
			}
		} else {
			msgs := []Message{{Data: make([]byte, 8)}}
			if n, err := c.TryReceiveBatch(msgs); err != nil || n != 1 {
				t.Fatal(n, err)
			}
			got = msgs[0].Seq
		}
		if got != uint64(i) {
			t.Fatalf("message %d has Seq %d", i, got)
		}
	}
}

// TestPeekBatchStopsAtHole: a batch ends before a slot its producer gave
// up; the next batch starts after it.
func TestPeekBatchStopsAtHole(t *testing.T) {
	r := testRing(t, heap, &Options{Mode: MPSC, Slots: 16, MaxMessage: 64})
	p, _ := r.NewProducer()
	c, _ := r.NewConsumer()
	for i := 0; i < 3; i++ {
		if err := p.TrySend(1, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.TryReserve(); err != nil {
		t.Fatal(err)
	}
	if err := p.Abort(); err != nil {
		t.Fatal(err)
	}
	for i := 3; i < 6; i++ {
		if err := p.TrySend(1, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	held := make([]Peeked, 16)
	for _, want := range [][]byte{{0, 1, 2}, {3, 4, 5}} {
		n, err := c.TryPeekBatch(held)
		if err != nil || n != len(want) {
			t.Fatalf("batch of %d (%v), want %d", n, err, len(want))
		}
		for i := range want {
			if held[i].Data[0] != want[i] {
				t.Fatalf("message %d is %d", i, held[i].Data[0])
			}
		}
		if err := c.Release(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPeekBatchSelective: on a selective ring a batch holds one message.
func TestPeekBatchSelective(t *testing.T) {
	r := testRing(t, heap, &Options{Mode: MPMC, Selective: true, Slots: 8, MaxMessage: 64})
	p, _ := r.NewProducer()
	c, _ := r.NewConsumer()
	for i := 0; i < 3; i++ {
		if err := p.TrySend(int64(i+1), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 3; i++ {
		held := make([]Peeked, 4)
		n, err := c.TryPeekBatch(held)
		if err != nil || n != 1 || held[0].Data[0] != byte(i) || held[0].Seq != uint64(i) {
			t.Fatalf("batch %d: %d messages, %v, %+v", i, n, err, held[0])
		}
		if err := c.Release(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestClosePeekBatch: a consumer that closes holding a batch leaves every
// message of it to be delivered again, flagged, and nothing after it.
func TestClosePeekBatch(t *testing.T) {
	for _, mode := range []Mode{SPSC, MPMC} {
		t.Run("mode="+mode.String(), func(t *testing.T) {
			r := testRing(t, heap, &Options{Mode: mode, Slots: 16, MaxMessage: 64})
			p, _ := r.NewProducer()
			for i := 0; i < 10; i++ {
				if err := p.TrySend(1, []byte{byte(i)}); err != nil {
					t.Fatal(err)
				}
			}
			c, _ := r.NewConsumer()
			if _, _, err := c.TryReceive(make([]byte, 64)); err != nil {
				t.Fatal(err)
			}
			if n, err := c.TryPeekBatch(make([]Peeked, 4)); err != nil || n != 4 {
				t.Fatalf("batch: %d, %v", n, err)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			c2, err := r.NewConsumer()
			if err != nil {
				t.Fatal(err)
			}
			checkRedeliveredRun(t, c2, 1, 10, 1, 5)
		})
	}
}

// checkRedeliveredRun peeks messages from..to-1 (each one byte, its
// number) one at a time from c and checks that exactly those in
// [flagFrom, flagTo) are flagged as redelivered.
func checkRedeliveredRun(t *testing.T, c *Consumer, from, to, flagFrom, flagTo int) {
	t.Helper()
	for want := from; want < to; want++ {
		ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
		m, err := c.Peek(ctx)
		cancel()
		if err != nil {
			t.Fatalf("message %d: %v", want, err)
		}
		if int(m.Data[len(m.Data)-1]) != want {
			t.Fatalf("message %d is %d", want, m.Data[len(m.Data)-1])
		}
		if flagged := want >= flagFrom && want < flagTo; m.Redelivered != flagged {
			t.Fatalf("message %d: redelivered %v, want %v", want, m.Redelivered, flagged)
		}
		if err := c.Release(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.TryPeek(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("after message %d: %v", to-1, err)
	}
}

// TestKilledBatchRedelivered: a consumer killed holding a batch in place
// leaves every message of it to be delivered again, flagged, and the
// messages after it unflagged: to its successor (single) or to a live
// consumer (multi).
func TestKilledBatchRedelivered(t *testing.T) {
	for _, mode := range []Mode{SPSC, MPSC, SPMC, MPMC} {
		t.Run("mode="+mode.String(), func(t *testing.T) {
			r := testRing(t, shm, &Options{Mode: mode, Slots: 16, MaxMessage: 64})
			p, err := r.NewProducer()
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 10; i++ {
				if err := p.TrySend(1, []byte{byte(i)}); err != nil {
					t.Fatal(err)
				}
			}
			// The helper receives message 0, holds 1..4 and dies.
			cmd := startHelper(t, "hang-consumer", helperEnv(r, "RING_COUNT=1", "RING_PEEK=4")...)
			var c *Consumer
			if mode.multiConsumer() {
				if c, err = r.NewConsumer(); err != nil {
					t.Fatal(err)
				}
				kill(t, cmd)
			} else {
				kill(t, cmd)
				if c, err = r.NewConsumer(); err != nil {
					t.Fatal(err)
				}
			}
			checkRedeliveredRun(t, c, 1, 10, 1, 5)
			if st := r.Stats(); st.Redelivered != 4 {
				t.Fatalf("stats count %d redeliveries, want 4", st.Redelivered)
			}
		})
	}
}
