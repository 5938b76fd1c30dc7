package ring

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmring/shmring/internal/ipctest"
	"github.com/shmring/shmring/ipc"
)

var allModes = []Mode{SPSC, MPSC, SPMC, MPMC}

var allWaits = []WaitStrategy{Adaptive, Spin, Block}

// apiRing makes a ring over a heap buffer or in shared memory. Unlike
// newTestRing it lets the test Close or Remove the ring itself: the
// cleanup only closes it (which may be repeated) and removes its objects
// by id.
func apiRing(t *testing.T, shm bool, opts *Options) *Ring {
	t.Helper()
	if !shm {
		return newMemRing(t, opts)
	}
	r, err := Create(ipc.Private, opts)
	if err != nil {
		t.Fatal(err)
	}
	removeIDs(t, r.SegmentID(), r.SemaphoreID())
	t.Cleanup(func() { r.Close() })
	return r
}

// forMemories runs f over a heap ring and over a shared-memory ring.
func forMemories(t *testing.T, opts *Options, f func(t *testing.T, r *Ring)) {
	t.Run("memory=heap", func(t *testing.T) { f(t, apiRing(t, false, opts)) })
	t.Run("memory=shm", func(t *testing.T) { f(t, apiRing(t, true, opts)) })
}

// forModes runs f for every mode over both memories, with the options
// that opts returns for the mode.
func forModes(t *testing.T, opts func(m Mode) *Options, f func(t *testing.T, r *Ring)) {
	for _, m := range allModes {
		t.Run("mode="+m.String(), func(t *testing.T) { forMemories(t, opts(m), f) })
	}
}

func small(m Mode) *Options { return &Options{Mode: m, Slots: 8, MaxMessage: 64} }

func pair(t *testing.T, r *Ring) (*Producer, *Consumer) {
	t.Helper()
	p, err := r.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.NewConsumer()
	if err != nil {
		t.Fatal(err)
	}
	return p, c
}

// noFault runs f with faults turned into panics, and fails the test
// instead of crashing the test binary if f touches memory that is no
// longer mapped.
func noFault(t *testing.T, what string, f func()) {
	t.Helper()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if e := recover(); e != nil {
			t.Errorf("%s: %v\n%s", what, e, debug.Stack())
		}
	}()
	f()
}

func msg(i int) []byte { return []byte(fmt.Sprintf("message %d", i)) }

func expect(t *testing.T, c *Consumer, typ int64, data []byte) {
	t.Helper()
	buf := make([]byte, c.r.MaxMessage())
	gt, n, err := c.TryReceive(buf)
	if err != nil || gt != typ || !bytes.Equal(buf[:n], data) {
		t.Fatalf("received %d %q %v, want %d %q", gt, buf[:n], err, typ, data)
	}
}

func TestFullAndEmpty(t *testing.T) {
	forModes(t, small, func(t *testing.T, r *Ring) {
		p, c := pair(t, r)
		buf := make([]byte, 64)
		if _, _, err := c.TryReceive(buf); !errors.Is(err, ErrEmpty) {
			t.Fatalf("TryReceive on an empty ring: %v", err)
		}
		if _, err := c.TryReceiveBatch([]Message{{Data: buf}}); !errors.Is(err, ErrEmpty) {
			t.Fatalf("TryReceiveBatch on an empty ring: %v", err)
		}
		if _, err := c.TryPeek(); !errors.Is(err, ErrEmpty) {
			t.Fatalf("TryPeek on an empty ring: %v", err)
		}
		for lap := 0; lap < 3; lap++ {
			for i := 0; i < r.Slots(); i++ {
				if err := p.TrySend(int64(i+1), msg(i)); err != nil {
					t.Fatalf("lap %d, message %d: %v", lap, i, err)
				}
			}
			if err := p.TrySend(1, nil); !errors.Is(err, ErrFull) {
				t.Fatalf("TrySend on a full ring: %v", err)
			}
			if _, err := p.TrySendBatch([]Message{{Type: 1}}); !errors.Is(err, ErrFull) {
				t.Fatalf("TrySendBatch on a full ring: %v", err)
			}
			if _, err := p.TryReserve(); !errors.Is(err, ErrFull) {
				t.Fatalf("TryReserve on a full ring: %v", err)
			}
			if st := r.Stats(); st.Depth != r.Slots() || st.Capacity != r.Slots() {
				t.Fatalf("full ring: stats %+v", st)
			}
			for i := 0; i < r.Slots(); i++ {
				expect(t, c, int64(i+1), msg(i))
			}
			if _, _, err := c.TryReceive(buf); !errors.Is(err, ErrEmpty) {
				t.Fatalf("TryReceive on a drained ring: %v", err)
			}
		}
	})
}

func TestTooLarge(t *testing.T) {
	forModes(t, small, func(t *testing.T, r *Ring) {
		p, c := pair(t, r)
		ctx := context.Background()
		big := make([]byte, 65)
		for name, send := range map[string]func() error{
			"TrySend":      func() error { return p.TrySend(1, big) },
			"Send":         func() error { return p.Send(ctx, 1, big) },
			"TrySendBatch": func() error { _, err := p.TrySendBatch([]Message{{1, nil}, {1, big}}); return err },
			"SendBatch":    func() error { _, err := p.SendBatch(ctx, []Message{{1, nil}, {1, big}}); return err },
		} {
			err := send()
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("%s of 65 bytes into 64-byte slots: %v, want ErrTooLarge", name, err)
			}
			if !strings.Contains(err.Error(), "65") || !strings.Contains(err.Error(), "64") {
				t.Errorf("%s: %q does not give both sizes", name, err)
			}
		}
		if st := r.Stats(); st.Sent != 0 {
			t.Fatalf("refused sends moved the tail: %+v", st)
		}

		// The largest message fits; an empty one too.
		if err := p.TrySend(3, bytes.Repeat([]byte{'x'}, 64)); err != nil {
			t.Fatal(err)
		}
		if err := p.TrySend(4, nil); err != nil {
			t.Fatal(err)
		}
		expect(t, c, 3, bytes.Repeat([]byte{'x'}, 64))
		expect(t, c, 4, []byte{})

		// A buffer too small for the message: refused, and the message
		// stays for a larger buffer.
		want := bytes.Repeat([]byte{'y'}, 50)
		if err := p.TrySend(5, want); err != nil {
			t.Fatal(err)
		}
		smallBuf := make([]byte, 64)[:10:10]
		for name, recv := range map[string]func() error{
			"TryReceive": func() error { _, _, err := c.TryReceive(smallBuf); return err },
			"Receive":    func() error { _, _, err := c.Receive(ctx, smallBuf); return err },
			"TryReceiveBatch": func() error {
				_, err := c.TryReceiveBatch([]Message{{Data: smallBuf}, {Data: make([]byte, 64)}})
				return err
			},
			"ReceiveBatch": func() error {
				_, err := c.ReceiveBatch(ctx, []Message{{Data: smallBuf}, {Data: make([]byte, 64)}})
				return err
			},
		} {
			err := recv()
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("%s of 50 bytes into 10: %v, want ErrTooLarge", name, err)
			}
			if !strings.Contains(err.Error(), "50") || !strings.Contains(err.Error(), "10") {
				t.Errorf("%s: %q does not give both sizes", name, err)
			}
		}
		// A single consumer leaves the refused message at the head; one of
		// many has claimed it and holds it back for its next call.
		if st := r.Stats(); !r.Mode().multiConsumer() && st.Depth != 1 || r.Mode().multiConsumer() && (c.end-c.next != 1 || st.Depth != 0) {
			t.Fatalf("refused message left the ring: %+v (held %d)", st, c.end-c.next)
		}
		// The room is the buffer's capacity, not its length.
		roomy := make([]byte, 0, 50)
		typ, n, err := c.TryReceive(roomy)
		if err != nil || typ != 5 || !bytes.Equal(roomy[:n], want) {
			t.Fatalf("received %d %q %v after the refusals", typ, roomy[:n], err)
		}
	})
}

func TestBadType(t *testing.T) {
	forModes(t, small, func(t *testing.T, r *Ring) {
		p, c := pair(t, r)
		ctx := context.Background()
		for _, typ := range []int64{0, -1, -1 << 63} {
			if err := p.TrySend(typ, nil); !errors.Is(err, ErrBadType) {
				t.Fatalf("TrySend type %d: %v", typ, err)
			}
			if err := p.Send(ctx, typ, []byte("x")); !errors.Is(err, ErrBadType) {
				t.Fatalf("Send type %d: %v", typ, err)
			}
			if n, err := p.TrySendBatch([]Message{{1, nil}, {typ, nil}}); n != 0 || !errors.Is(err, ErrBadType) {
				t.Fatalf("TrySendBatch with type %d: %d %v", typ, n, err)
			}
			if n, err := p.SendBatch(ctx, []Message{{typ, nil}}); n != 0 || !errors.Is(err, ErrBadType) {
				t.Fatalf("SendBatch with type %d: %d %v", typ, n, err)
			}
			if _, err := p.TryReserve(); err != nil {
				t.Fatal(err)
			}
			if err := p.Commit(typ, 0); !errors.Is(err, ErrBadType) {
				t.Fatalf("Commit type %d: %v", typ, err)
			}
			if err := p.Abort(); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.TrySend(1<<62, []byte("big type")); err != nil {
			t.Fatal(err)
		}
		expect(t, c, 1<<62, []byte("big type"))
		if _, _, err := c.TryReceive(make([]byte, 64)); !errors.Is(err, ErrEmpty) {
			t.Fatalf("a refused send left something: %v", err)
		}
	})
}

func TestBatches(t *testing.T) {
	t.Run("partial", func(t *testing.T) {
		forModes(t, small, func(t *testing.T, r *Ring) {
			p, c := pair(t, r)
			for i := 0; i < 6; i++ {
				if err := p.TrySend(1, msg(i)); err != nil {
					t.Fatal(err)
				}
			}
			batch := make([]Message, 5)
			for i := range batch {
				batch[i] = Message{Type: 2, Data: msg(6 + i)}
			}
			if n, err := p.TrySendBatch(batch); n != 2 || err != nil {
				t.Fatalf("TrySendBatch of 5 with 2 free: %d %v", n, err)
			}
			if n, err := p.TrySendBatch(batch[2:]); n != 0 || !errors.Is(err, ErrFull) {
				t.Fatalf("TrySendBatch on a full ring: %d %v", n, err)
			}
			if n, err := p.TrySendBatch(nil); n != 0 || err != nil {
				t.Fatalf("TrySendBatch of none: %d %v", n, err)
			}
			for i := 0; i < 8; i++ {
				typ := int64(1)
				if i >= 6 {
					typ = 2
				}
				expect(t, c, typ, msg(i))
			}
		})
	})

	t.Run("beyond-capacity", func(t *testing.T) {
		forModes(t, small, func(t *testing.T, r *Ring) {
			p, c := pair(t, r)
			const total = 50
			ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				buf := make([]byte, 64)
				for i := 0; i < total; i++ {
					typ, n, err := c.Receive(ctx, buf)
					if err != nil || typ != int64(i+1) || !bytes.Equal(buf[:n], msg(i)) {
						done <- fmt.Errorf("message %d: %d %q %v", i, typ, buf[:n], err)
						return
					}
				}
				done <- nil
			}()
			batch := make([]Message, total)
			for i := range batch {
				batch[i] = Message{Type: int64(i + 1), Data: msg(i)}
			}
			if n, err := p.SendBatch(ctx, batch); n != total || err != nil {
				t.Fatalf("SendBatch of %d into %d slots: %d %v", total, r.Slots(), n, err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	})

	t.Run("mixed-buffers", func(t *testing.T) {
		forModes(t, small, func(t *testing.T, r *Ring) {
			p, c := pair(t, r)
			ctx := context.Background()
			sizes := []int{10, 60, 5, 30, 1}
			for i, n := range sizes {
				if err := p.TrySend(int64(i+1), bytes.Repeat([]byte{byte('a' + i)}, n)); err != nil {
					t.Fatal(err)
				}
			}
			// 10 ≤ 16, 60 ≤ 64, 5 ≤ 8, then 30 > 8: three messages.
			msgs := []Message{{Data: make([]byte, 16)}, {Data: make([]byte, 64)}, {Data: make([]byte, 8)}, {Data: make([]byte, 8)}}
			n, err := c.ReceiveBatch(ctx, msgs)
			if err != nil || n != 3 {
				t.Fatalf("ReceiveBatch: %d %v, want 3", n, err)
			}
			for i := 0; i < n; i++ {
				if msgs[i].Type != int64(i+1) || !bytes.Equal(msgs[i].Data, bytes.Repeat([]byte{byte('a' + i)}, sizes[i])) {
					t.Fatalf("message %d: %d %q", i, msgs[i].Type, msgs[i].Data)
				}
			}
			if _, err := c.ReceiveBatch(ctx, []Message{{Data: make([]byte, 8)}}); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("30 bytes into 8: %v", err)
			}
			msgs = []Message{{Data: make([]byte, 30)}, {Data: make([]byte, 0, 1)}, {Data: make([]byte, 64)}}
			n, err = c.TryReceiveBatch(msgs)
			if err != nil || n != 2 || string(msgs[0].Data) != strings.Repeat("d", 30) || string(msgs[1].Data) != "e" {
				t.Fatalf("TryReceiveBatch: %d %v %q %q", n, err, msgs[0].Data, msgs[1].Data)
			}
			if n, err := c.ReceiveBatch(ctx, nil); n != 0 || err != nil {
				t.Fatalf("ReceiveBatch of none: %d %v", n, err)
			}
		})
	})
}

// TestBatchAfterAbort receives, in one batch, a message that follows a slot
// given up by a multi producer's Abort. The batch's buffers differ in size:
// the message must be measured against the buffer it goes into.
func TestBatchAfterAbort(t *testing.T) {
	for _, mode := range []Mode{MPSC, MPMC} {
		t.Run("mode="+mode.String(), func(t *testing.T) {
			forMemories(t, small(mode), func(t *testing.T, r *Ring) {
				p, c := pair(t, r)
				if _, err := p.TryReserve(); err != nil {
					t.Fatal(err)
				}
				if err := p.Abort(); err != nil {
					t.Fatal(err)
				}
				want := bytes.Repeat([]byte{'m'}, 48)
				if err := p.TrySend(9, want); err != nil {
					t.Fatal(err)
				}
				msgs := []Message{{Data: make([]byte, 4)}, {Data: make([]byte, 48)}}
				n, err := c.TryReceiveBatch(msgs)
				if !errors.Is(err, ErrTooLarge) {
					t.Errorf("a 48-byte message, batch buffers of 4 and 48 bytes: got %d (%d %q), %v; want ErrTooLarge",
						n, msgs[0].Type, msgs[0].Data, err)
				}
				if err == nil {
					return
				}
				expect(t, c, 9, want)
			})
		})
	}
}

// TestHeldBack: in the multi-consumer modes a consumer that refuses a
// message for its buffer's size keeps it for its own next call; other
// consumers go on with the messages after it, and get it once the first
// consumer closes.
func TestHeldBack(t *testing.T) {
	for _, mode := range []Mode{SPMC, MPMC} {
		t.Run("mode="+mode.String(), func(t *testing.T) {
			forMemories(t, &Options{Mode: mode, Slots: 8, MaxMessage: 64, MaxConsumers: 2}, func(t *testing.T, r *Ring) {
				p, c1 := pair(t, r)
				c2, err := r.NewConsumer()
				if err != nil {
					t.Fatal(err)
				}
				big := bytes.Repeat([]byte{'b'}, 50)
				if err := p.TrySend(1, big); err != nil {
					t.Fatal(err)
				}
				if err := p.TrySend(2, []byte("small")); err != nil {
					t.Fatal(err)
				}
				if _, _, err := c1.TryReceive(make([]byte, 10)); !errors.Is(err, ErrTooLarge) {
					t.Fatalf("50 bytes into 10: %v", err)
				}
				expect(t, c2, 2, []byte("small"))
				if _, _, err := c2.TryReceive(make([]byte, 64)); !errors.Is(err, ErrEmpty) {
					t.Fatalf("the other consumer got the held message: %v", err)
				}
				// The holder gets it with a larger buffer...
				expect(t, c1, 1, big)
				// ...or, if it closes first, another consumer does, once.
				if err := p.TrySend(3, big); err != nil {
					t.Fatal(err)
				}
				if _, err := c1.TryReceiveBatch([]Message{{Data: make([]byte, 8)}}); !errors.Is(err, ErrTooLarge) {
					t.Fatalf("batch, 50 bytes into 8: %v", err)
				}
				if err := c1.Close(); err != nil {
					t.Fatal(err)
				}
				// It is waiting for the other consumer: a Try call gets it...
				pk, err := c2.TryPeek()
				if err != nil {
					t.Errorf("TryPeek of the message the closed consumer held: %v", err)
					// ...as a blocking call does.
					ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
					defer cancel()
					pk, err = c2.Peek(ctx)
				}
				if err != nil || pk.Type != 3 || !bytes.Equal(pk.Data, big) || pk.Redelivered {
					t.Fatalf("after the holder closed: %d %q %v %v", pk.Type, pk.Data, pk.Redelivered, err)
				}
				if err := c2.Release(); err != nil {
					t.Fatal(err)
				}
				if _, _, err := c2.TryReceive(make([]byte, 64)); !errors.Is(err, ErrEmpty) {
					t.Fatalf("a held message delivered twice: %v", err)
				}
				if st := r.Stats(); st.Depth != 0 || st.Redelivered != 0 {
					t.Fatalf("stats %+v", st)
				}
			})
		})
	}
}

func TestZeroCopy(t *testing.T) {
	forModes(t, small, func(t *testing.T, r *Ring) {
		p, c := pair(t, r)
		ctx := context.Background()

		// Reserve, fill in place, Commit.
		buf, err := p.Reserve(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(buf) != r.MaxMessage() {
			t.Fatalf("reserved %d bytes, want %d", len(buf), r.MaxMessage())
		}
		n := copy(buf, "written in place")
		// Nothing is visible before the commit.
		if _, _, err := c.TryReceive(make([]byte, 64)); !errors.Is(err, ErrEmpty) {
			t.Fatalf("TryReceive during a reservation: %v", err)
		}
		// Every other producer call waits for the commit.
		for name, call := range map[string]func() error{
			"TrySend":      func() error { return p.TrySend(1, nil) },
			"Send":         func() error { return p.Send(ctx, 1, nil) },
			"TrySendBatch": func() error { _, err := p.TrySendBatch([]Message{{1, nil}}); return err },
			"SendBatch":    func() error { _, err := p.SendBatch(ctx, []Message{{1, nil}}); return err },
			"Reserve":      func() error { _, err := p.Reserve(ctx); return err },
			"TryReserve":   func() error { _, err := p.TryReserve(); return err },
		} {
			if err := call(); !errors.Is(err, ErrPending) {
				t.Fatalf("%s during a reservation: %v, want ErrPending", name, err)
			}
		}
		if err := p.Commit(1, 65); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Commit of 65 bytes: %v", err)
		}
		if err := p.Commit(1, -1); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Commit of -1 bytes: %v", err)
		}
		if err := p.Commit(7, n); err != nil {
			t.Fatalf("Commit after refused commits: %v", err)
		}
		if err := p.Commit(7, n); !errors.Is(err, ErrNotReserved) {
			t.Fatalf("second Commit: %v", err)
		}
		if err := p.Abort(); !errors.Is(err, ErrNotReserved) {
			t.Fatalf("Abort without a reservation: %v", err)
		}

		// Peek returns the committed bytes in place: the very memory the
		// producer wrote (this process maps the ring once).
		pk, err := c.Peek(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if pk.Type != 7 || string(pk.Data) != "written in place" || pk.Redelivered {
			t.Fatalf("peeked %d %q %v", pk.Type, pk.Data, pk.Redelivered)
		}
		if &pk.Data[0] != &buf[0] {
			t.Fatal("Peek copied the message: its data is not the reserved slot")
		}
		if cap(pk.Data) != len(pk.Data) {
			t.Fatalf("peeked data has capacity %d beyond its %d bytes: an append would write the ring", cap(pk.Data), len(pk.Data))
		}
		for name, call := range map[string]func() error{
			"TryReceive":      func() error { _, _, err := c.TryReceive(make([]byte, 64)); return err },
			"Receive":         func() error { _, _, err := c.Receive(ctx, make([]byte, 64)); return err },
			"TryReceiveBatch": func() error { _, err := c.TryReceiveBatch([]Message{{Data: make([]byte, 64)}}); return err },
			"ReceiveBatch":    func() error { _, err := c.ReceiveBatch(ctx, []Message{{Data: make([]byte, 64)}}); return err },
			"Peek":            func() error { _, err := c.Peek(ctx); return err },
			"TryPeek":         func() error { _, err := c.TryPeek(); return err },
		} {
			if err := call(); !errors.Is(err, ErrPending) {
				t.Fatalf("%s during a peek: %v, want ErrPending", name, err)
			}
		}
		// The peeked slot is not free until Release.
		for i := 0; i < r.Slots()-1; i++ {
			if err := p.TrySend(2, msg(i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.TrySend(2, nil); !errors.Is(err, ErrFull) {
			t.Fatalf("TrySend while the peeked message fills the last slot: %v", err)
		}
		if err := c.Release(); err != nil {
			t.Fatal(err)
		}
		if err := c.Release(); !errors.Is(err, ErrNotReserved) {
			t.Fatalf("second Release: %v", err)
		}
		if err := p.TrySend(2, msg(99)); err != nil {
			t.Fatalf("TrySend after Release: %v", err)
		}
		for i := 0; i < r.Slots()-1; i++ {
			pk, err := c.TryPeek()
			if err != nil || pk.Type != 2 || !bytes.Equal(pk.Data, msg(i)) {
				t.Fatalf("TryPeek %d: %d %q %v", i, pk.Type, pk.Data, err)
			}
			if err := c.Release(); err != nil {
				t.Fatal(err)
			}
		}
		expect(t, c, 2, msg(99))
		if _, err := c.TryPeek(); !errors.Is(err, ErrEmpty) {
			t.Fatalf("TryPeek on an empty ring: %v", err)
		}

		// Reserve and Abort: nothing is delivered, and the ring goes on.
		for i := 0; i < 3; i++ {
			b, err := p.TryReserve()
			if err != nil {
				t.Fatal(err)
			}
			copy(b, "never sent")
			if err := p.Abort(); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := c.TryReceive(make([]byte, 64)); !errors.Is(err, ErrEmpty) {
			t.Fatalf("TryReceive after aborts: %v", err)
		}
		if err := p.TrySend(3, []byte("after the aborts")); err != nil {
			t.Fatal(err)
		}
		if _, err := p.TryReserve(); err != nil {
			t.Fatal(err)
		}
		if err := p.Abort(); err != nil {
			t.Fatal(err)
		}
		if err := p.TrySend(4, []byte("after another")); err != nil {
			t.Fatal(err)
		}
		expect(t, c, 3, []byte("after the aborts"))
		pk, err = c.Peek(ctx)
		if err != nil || pk.Type != 4 || string(pk.Data) != "after another" {
			t.Fatalf("Peek past an aborted slot: %d %q %v", pk.Type, pk.Data, err)
		}
		if err := c.Release(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.TryReceive(make([]byte, 64)); !errors.Is(err, ErrEmpty) {
			t.Fatalf("an aborted slot was delivered: %v", err)
		}
		st := r.Stats()
		if st.Depth != 0 || st.Sent != st.Received {
			t.Fatalf("stats after the aborts: %+v", st)
		}
		// Closing with a reservation outstanding aborts it.
		if _, err := p.TryReserve(); err != nil {
			t.Fatal(err)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Receive(ctx, make([]byte, 64)); !errors.Is(err, io.EOF) {
			t.Fatalf("Receive after a close with a reservation: %v, want io.EOF", err)
		}
	})
}

// blockedUntil waits until the wait of side s shows up in the ring's sleep
// counters (Adaptive and Block), or a short while (Spin, which never
// sleeps). It only makes the tests exercise the blocked path more often;
// the results do not depend on it.
func blockedUntil(t *testing.T, r *Ring, s side, before Stats) {
	t.Helper()
	if r.waiting.Strategy == Spin {
		time.Sleep(20 * time.Millisecond)
		return
	}
	for deadline := time.Now().Add(ipctest.Deadline); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		st := r.Stats()
		if s == consumerSide && st.ConsumerSleeps > before.ConsumerSleeps || s == producerSide && st.ProducerSleeps > before.ProducerSleeps {
			return
		}
	}
	t.Fatalf("the %s never slept", s)
}

// TestCancel cancels the context of every blocking call while it waits,
// under every wait strategy, and checks that the call returns ctx.Err().
func TestCancel(t *testing.T) {
	type op struct {
		name string
		side side
		call func(ctx context.Context, p *Producer, c *Consumer) error
	}
	ops := []op{
		{"Receive", consumerSide, func(ctx context.Context, p *Producer, c *Consumer) error {
			_, _, err := c.Receive(ctx, make([]byte, 64))
			return err
		}},
		{"ReceiveBatch", consumerSide, func(ctx context.Context, p *Producer, c *Consumer) error {
			_, err := c.ReceiveBatch(ctx, []Message{{Data: make([]byte, 64)}})
			return err
		}},
		{"Peek", consumerSide, func(ctx context.Context, p *Producer, c *Consumer) error {
			_, err := c.Peek(ctx)
			return err
		}},
		{"Send", producerSide, func(ctx context.Context, p *Producer, c *Consumer) error {
			return p.Send(ctx, 1, []byte("no room"))
		}},
		{"SendBatch", producerSide, func(ctx context.Context, p *Producer, c *Consumer) error {
			_, err := p.SendBatch(ctx, []Message{{1, nil}, {2, nil}})
			return err
		}},
		{"Reserve", producerSide, func(ctx context.Context, p *Producer, c *Consumer) error {
			_, err := p.Reserve(ctx)
			return err
		}},
	}
	for _, w := range allWaits {
		t.Run("wait="+w.String(), func(t *testing.T) {
			for _, o := range ops {
				t.Run("op="+o.name, func(t *testing.T) {
					opts := &Options{Mode: MPMC, Slots: 4, MaxMessage: 64, Wait: Waiting{Strategy: w}}
					forMemories(t, opts, func(t *testing.T, r *Ring) {
						p, c := pair(t, r)
						if o.side == producerSide {
							for p.TrySend(1, nil) == nil {
							}
						}
						for _, timeout := range []bool{false, true} {
							var ctx context.Context
							var cancel context.CancelFunc
							want := context.Canceled
							if timeout {
								ctx, cancel = context.WithTimeout(context.Background(), 30*time.Millisecond)
								want = context.DeadlineExceeded
							} else {
								ctx, cancel = context.WithCancel(context.Background())
							}
							before := r.Stats()
							done := make(chan error, 1)
							go func() { done <- o.call(ctx, p, c) }()
							if !timeout {
								blockedUntil(t, r, o.side, before)
								cancel()
							}
							select {
							case err := <-done:
								if !errors.Is(err, want) {
									t.Fatalf("timeout %v: %v, want %v", timeout, err, want)
								}
							case <-time.After(ipctest.Deadline):
								t.Fatalf("timeout %v: still blocked %v after the context ended", timeout, ipctest.Deadline)
							}
							cancel()
						}
						// The handles still work after a cancelled wait.
						if o.side == producerSide {
							if _, _, err := c.TryReceive(make([]byte, 64)); err != nil {
								t.Fatal(err)
							}
							if err := p.TrySend(5, []byte("after")); err != nil {
								t.Fatal(err)
							}
						} else {
							if err := p.TrySend(5, []byte("after")); err != nil {
								t.Fatal(err)
							}
							expect(t, c, 5, []byte("after"))
						}
					})
				})
			}
		})
	}
}

// TestWakeUp checks that a blocked call is woken by the other side under
// every wait strategy.
func TestWakeUp(t *testing.T) {
	for _, w := range allWaits {
		t.Run("wait="+w.String(), func(t *testing.T) {
			forMemories(t, &Options{Slots: 2, MaxMessage: 8, Wait: Waiting{Strategy: w}}, func(t *testing.T, r *Ring) {
				p, c := pair(t, r)
				ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
				defer cancel()
				got := make(chan string, 1)
				before := r.Stats()
				go func() {
					buf := make([]byte, 8)
					_, n, err := c.Receive(ctx, buf)
					if err != nil {
						got <- err.Error()
						return
					}
					got <- string(buf[:n])
				}()
				blockedUntil(t, r, consumerSide, before)
				if err := p.Send(ctx, 1, []byte("wake")); err != nil {
					t.Fatal(err)
				}
				if s := <-got; s != "wake" {
					t.Fatalf("blocked Receive: %s", s)
				}

				// And a producer blocked on a full ring.
				for p.TrySend(1, []byte("fill")) == nil {
				}
				before = r.Stats()
				sent := make(chan error, 1)
				go func() { sent <- p.Send(ctx, 2, []byte("late")) }()
				blockedUntil(t, r, producerSide, before)
				expect(t, c, 1, []byte("fill"))
				if err := <-sent; err != nil {
					t.Fatalf("blocked Send: %v", err)
				}
				expect(t, c, 1, []byte("fill"))
				expect(t, c, 2, []byte("late"))
			})
		})
	}
}

func TestRoles(t *testing.T) {
	for _, tc := range []struct {
		mode                 Mode
		producers, consumers int // role lines
		opts                 Options
	}{
		{SPSC, 1, 1, Options{}},
		{MPSC, 3, 1, Options{MaxProducers: 3}},
		{SPMC, 1, 2, Options{MaxConsumers: 2}},
		{MPMC, 2, 3, Options{MaxProducers: 2, MaxConsumers: 3}},
	} {
		t.Run("mode="+tc.mode.String(), func(t *testing.T) {
			opts := tc.opts
			opts.Mode, opts.Slots, opts.MaxMessage = tc.mode, 4, 16
			forMemories(t, &opts, func(t *testing.T, r *Ring) {
				// A second view of the same ring, as another attachment in
				// this process would have: roles belong to the ring.
				var view *Ring
				if r.SegmentID() >= 0 {
					v, err := OpenID(r.SegmentID(), nil)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { v.Close() })
					view = v
				} else {
					view = openMem(t, r, Waiting{})
				}
				var ps []*Producer
				var cs []*Consumer
				for i := 0; i < tc.producers; i++ {
					from := r
					if i%2 == 1 {
						from = view
					}
					p, err := from.NewProducer()
					if err != nil {
						t.Fatalf("producer %d of %d: %v", i+1, tc.producers, err)
					}
					ps = append(ps, p)
				}
				for i := 0; i < tc.consumers; i++ {
					c, err := view.NewConsumer()
					if err != nil {
						t.Fatalf("consumer %d of %d: %v", i+1, tc.consumers, err)
					}
					cs = append(cs, c)
				}
				for _, v := range []*Ring{r, view} {
					if _, err := v.NewProducer(); !errors.Is(err, ErrRoleTaken) {
						t.Fatalf("producer %d of %d: %v, want ErrRoleTaken", tc.producers+1, tc.producers, err)
					}
					if _, err := v.NewConsumer(); !errors.Is(err, ErrRoleTaken) {
						t.Fatalf("consumer %d of %d: %v, want ErrRoleTaken", tc.consumers+1, tc.consumers, err)
					}
				}
				if st := r.Stats(); st.Producers != tc.producers || st.Consumers != tc.consumers {
					t.Fatalf("stats with every role held: %+v", st)
				}
				// A closed role can be taken again, from either view.
				if err := ps[0].Close(); err != nil {
					t.Fatal(err)
				}
				if err := ps[0].Close(); err != nil {
					t.Fatalf("second Close: %v", err)
				}
				if err := cs[len(cs)-1].Close(); err != nil {
					t.Fatal(err)
				}
				if st := r.Stats(); st.Producers != tc.producers-1 || st.Consumers != tc.consumers-1 {
					t.Fatalf("stats after a close on each side: %+v", st)
				}
				p, err := view.NewProducer()
				if err != nil {
					t.Fatalf("producer role after a close: %v", err)
				}
				c, err := r.NewConsumer()
				if err != nil {
					t.Fatalf("consumer role after a close: %v", err)
				}
				if err := p.TrySend(3, []byte("new holders")); err != nil {
					t.Fatal(err)
				}
				expect(t, c, 3, []byte("new holders"))
				if _, err := r.NewProducer(); !errors.Is(err, ErrRoleTaken) {
					t.Fatalf("producer beyond the roles again: %v", err)
				}
			})
		})
	}
}

// TestCloseEOF: when every producer has closed, consumers get what is left
// and then io.EOF; a new producer can then attach and messages flow again.
// When every consumer has closed, a producer blocked on a full ring gets
// ErrNoConsumers.
func TestCloseEOF(t *testing.T) {
	for _, w := range allWaits {
		t.Run("wait="+w.String(), func(t *testing.T) {
			forModes(t, func(m Mode) *Options {
				opts := &Options{Mode: m, Slots: 4, MaxMessage: 32, Wait: Waiting{Strategy: w}}
				if m.multiProducer() {
					opts.MaxProducers = 2
				}
				return opts
			}, func(t *testing.T, r *Ring) {
				ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
				defer cancel()
				p, c := pair(t, r)
				var p2 *Producer
				if r.Mode().multiProducer() {
					var err error
					if p2, err = r.NewProducer(); err != nil {
						t.Fatal(err)
					}
				}
				buf := make([]byte, 32)
				for round := 0; round < 2; round++ {
					for i := 0; i < 3; i++ {
						if err := p.Send(ctx, int64(i+1), msg(i)); err != nil {
							t.Fatal(err)
						}
					}
					if err := p.Close(); err != nil {
						t.Fatal(err)
					}
					if p2 != nil {
						// Another producer is still attached: no EOF yet.
						for i := 0; i < 3; i++ {
							expect(t, c, int64(i+1), msg(i))
						}
						short, stop := context.WithTimeout(ctx, 30*time.Millisecond)
						_, _, err := c.Receive(short, buf)
						stop()
						if !errors.Is(err, context.DeadlineExceeded) {
							t.Fatalf("Receive with a producer still attached: %v, want DeadlineExceeded", err)
						}
						if err := p2.Send(ctx, 9, []byte("last")); err != nil {
							t.Fatal(err)
						}
						if err := p2.Close(); err != nil {
							t.Fatal(err)
						}
						expect(t, c, 9, []byte("last"))
					} else {
						for i := 0; i < 3; i++ {
							typ, n, err := c.Receive(ctx, buf)
							if err != nil || typ != int64(i+1) || !bytes.Equal(buf[:n], msg(i)) {
								t.Fatalf("after the close, message %d: %d %q %v", i, typ, buf[:n], err)
							}
						}
					}
					if _, _, err := c.Receive(ctx, buf); !errors.Is(err, io.EOF) {
						t.Fatalf("Receive, drained with every producer closed: %v, want io.EOF", err)
					}
					if _, err := c.ReceiveBatch(ctx, []Message{{Data: buf}}); !errors.Is(err, io.EOF) {
						t.Fatalf("ReceiveBatch, drained and closed: %v, want io.EOF", err)
					}
					if _, err := c.Peek(ctx); !errors.Is(err, io.EOF) {
						t.Fatalf("Peek, drained and closed: %v, want io.EOF", err)
					}
					if _, _, err := c.TryReceive(buf); !errors.Is(err, ErrEmpty) {
						t.Fatalf("TryReceive, drained and closed: %v, want ErrEmpty", err)
					}
					// A new producer attaches and messages flow again.
					var err error
					if p, err = r.NewProducer(); err != nil {
						t.Fatalf("producer after the close: %v", err)
					}
					if p2 != nil {
						if p2, err = r.NewProducer(); err != nil {
							t.Fatal(err)
						}
					}
				}

				// Now the consumers go: a producer blocked on a full ring is
				// told nobody will ever make room.
				for p.TrySend(1, nil) == nil {
				}
				if err := c.Close(); err != nil {
					t.Fatal(err)
				}
				if err := p.Send(ctx, 1, nil); !errors.Is(err, ErrNoConsumers) {
					t.Fatalf("Send on a full ring with every consumer closed: %v, want ErrNoConsumers", err)
				}
				if err := p.TrySend(1, nil); !errors.Is(err, ErrFull) {
					t.Fatalf("TrySend on a full ring with every consumer closed: %v, want ErrFull", err)
				}
				// The messages stay for the next consumer.
				c, err := r.NewConsumer()
				if err != nil {
					t.Fatal(err)
				}
				if st := r.Stats(); st.Depth != r.Slots() {
					t.Fatalf("messages lost with the consumer: %+v", st)
				}
				if _, _, err := c.Receive(ctx, buf); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestUseAfterClose: every call on a closed handle says os.ErrClosed.
func TestUseAfterClose(t *testing.T) {
	forModes(t, small, func(t *testing.T, r *Ring) {
		p, c := pair(t, r)
		ctx := context.Background()
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		for name, call := range map[string]func() error{
			"TrySend":         func() error { return p.TrySend(1, nil) },
			"Send":            func() error { return p.Send(ctx, 1, nil) },
			"TrySendBatch":    func() error { _, err := p.TrySendBatch([]Message{{1, nil}}); return err },
			"SendBatch":       func() error { _, err := p.SendBatch(ctx, []Message{{1, nil}}); return err },
			"Reserve":         func() error { _, err := p.Reserve(ctx); return err },
			"TryReserve":      func() error { _, err := p.TryReserve(); return err },
			"Commit":          func() error { return p.Commit(1, 0) },
			"TryReceive":      func() error { _, _, err := c.TryReceive(make([]byte, 8)); return err },
			"Receive":         func() error { _, _, err := c.Receive(ctx, make([]byte, 8)); return err },
			"TryReceiveBatch": func() error { _, err := c.TryReceiveBatch([]Message{{Data: make([]byte, 8)}}); return err },
			"ReceiveBatch":    func() error { _, err := c.ReceiveBatch(ctx, []Message{{Data: make([]byte, 8)}}); return err },
			"Peek":            func() error { _, err := c.Peek(ctx); return err },
			"TryPeek":         func() error { _, err := c.TryPeek(); return err },
		} {
			if err := call(); !errors.Is(err, os.ErrClosed) {
				t.Errorf("%s after Close: %v, want os.ErrClosed", name, err)
			}
		}
		if err := p.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if st := r.Stats(); st.Producers != 0 || st.Consumers != 0 {
			t.Fatalf("roles held after Close: %+v", st)
		}
	})
}

// TestRingClose: closing a Ring closes the handles made from it, gives up
// their roles, and leaves the ring and its messages for others.
func TestRingClose(t *testing.T) {
	forModes(t, small, func(t *testing.T, r *Ring) {
		var other *Ring
		if r.SegmentID() >= 0 {
			o, err := OpenID(r.SegmentID(), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { o.Close() })
			other = o
		} else {
			other = openMem(t, r, Waiting{})
		}
		p, c := pair(t, other)
		if err := p.TrySend(1, []byte("kept")); err != nil {
			t.Fatal(err)
		}
		if err := other.Close(); err != nil {
			t.Fatal(err)
		}
		if err := other.Close(); err != nil {
			t.Fatalf("second Ring.Close: %v", err)
		}
		if err := p.TrySend(1, nil); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("producer of a closed Ring: %v, want os.ErrClosed", err)
		}
		if _, _, err := c.TryReceive(make([]byte, 64)); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("consumer of a closed Ring: %v, want os.ErrClosed", err)
		}
		if st := r.Stats(); st.Producers != 0 || st.Consumers != 0 || st.Depth != 1 {
			t.Fatalf("after Ring.Close: %+v", st)
		}
		// The closed Ring makes no new handles, though the roles are free.
		noFault(t, "NewProducer on a closed Ring", func() {
			if _, err := other.NewProducer(); !errors.Is(err, os.ErrClosed) {
				t.Errorf("NewProducer on a closed Ring: %v, want os.ErrClosed", err)
			}
		})
		noFault(t, "NewConsumer on a closed Ring", func() {
			if _, err := other.NewConsumer(); !errors.Is(err, os.ErrClosed) {
				t.Errorf("NewConsumer on a closed Ring: %v, want os.ErrClosed", err)
			}
		})
		if st := r.Stats(); st.Producers != 0 || st.Consumers != 0 {
			t.Fatalf("a closed Ring took roles: %+v", st)
		}
		_, c2 := pair(t, r)
		expect(t, c2, 1, []byte("kept"))
	})
}

// TestRemoveAfterClose removes a ring through a Ring that was closed first:
// the objects go, and nothing touches the detached memory.
func TestRemoveAfterClose(t *testing.T) {
	forMemories(t, small(SPSC), func(t *testing.T, r *Ring) {
		semID, segID := r.SemaphoreID(), r.SegmentID()
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		noFault(t, "Remove after Close", func() {
			r.Remove()
		})
		if ipctest.Exists(ipctest.Sem, semID) || segID >= 0 && ipctest.Exists(ipctest.Shm, segID) {
			t.Errorf("Remove after Close left semaphores %v, segment %v", ipctest.Exists(ipctest.Sem, semID), ipctest.Exists(ipctest.Shm, segID))
		}
	})
}

func TestStats(t *testing.T) {
	forModes(t, small, func(t *testing.T, r *Ring) {
		if st := r.Stats(); st != (Stats{Capacity: 8}) {
			t.Fatalf("new ring: %+v", st)
		}
		p, c := pair(t, r)
		for i := 0; i < 5; i++ {
			if err := p.TrySend(1, msg(i)); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 2; i++ {
			expect(t, c, 1, msg(i))
		}
		st := r.Stats()
		if st.Sent != 5 || st.Received != 2 || st.Depth != 3 || st.Producers != 1 || st.Consumers != 1 || st.Capacity != 8 {
			t.Fatalf("after 5 sent and 2 received: %+v", st)
		}
		if st.SemOps() != st.ConsumerSleeps+st.ProducerSleeps+st.Wakeups || st.Recovered != 0 || st.Redelivered != 0 {
			t.Fatalf("counters: %+v", st)
		}
		if _, err := c.TryPeek(); err != nil {
			t.Fatal(err)
		}
		if err := c.Release(); err != nil {
			t.Fatal(err)
		}
		p.Close()
		c.Close()
		if st := r.Stats(); st.Producers != 0 || st.Consumers != 0 || st.Sent != 5 || st.Received != 3 {
			t.Fatalf("after both closed: %+v", st)
		}
	})
}

// TestRemoveWhileBlocked removes a ring while a goroutine of this process
// waits in Receive on it: the wait ends with ErrRemoved.
func TestRemoveWhileBlocked(t *testing.T) {
	for _, w := range allWaits {
		t.Run("wait="+w.String(), func(t *testing.T) {
			forMemories(t, &Options{Slots: 4, MaxMessage: 16, Wait: Waiting{Strategy: w}}, func(t *testing.T, r *Ring) {
				c, err := r.NewConsumer()
				if err != nil {
					t.Fatal(err)
				}
				before := r.Stats()
				done := make(chan error, 1)
				go func() {
					var err error
					defer func() { done <- err }()
					noFault(t, "Receive during Remove", func() {
						_, _, err = c.Receive(context.Background(), make([]byte, 16))
					})
				}()
				blockedUntil(t, r, consumerSide, before)
				if err := r.Remove(); err != nil {
					t.Errorf("Remove: %v", err)
				}
				select {
				case err := <-done:
					if !errors.Is(err, ErrRemoved) || !errors.Is(err, ipc.ErrRemoved) {
						t.Fatalf("Receive on a removed ring: %v, want ErrRemoved", err)
					}
				case <-time.After(ipctest.Deadline):
					t.Fatalf("Receive still blocked %v after Remove", ipctest.Deadline)
				}
				if ipctest.Exists(ipctest.Sem, r.SemaphoreID()) {
					t.Fatal("Remove left the semaphore set")
				}
			})
		})
	}
}

// TestCloseWhileBlocked closes a Ring while a goroutine of this process
// waits in Receive on a consumer made from it, as one closes a file to end
// a blocked read: the wait ends with os.ErrClosed, and nothing touches the
// memory after Close detaches it. The three wait strategies run at once, so
// that a wait that Close does not end costs the deadline only once.
func TestCloseWhileBlocked(t *testing.T) {
	for _, shm := range []bool{false, true} {
		t.Run(map[bool]string{false: "memory=heap", true: "memory=shm"}[shm], func(t *testing.T) {
			rings := make([]*Ring, len(allWaits))
			done := make([]chan error, len(allWaits))
			for i, w := range allWaits {
				r := apiRing(t, shm, &Options{Slots: 4, MaxMessage: 16, Wait: Waiting{Strategy: w}})
				c, err := r.NewConsumer()
				if err != nil {
					t.Fatal(err)
				}
				rings[i], done[i] = r, make(chan error, 1)
				before := r.Stats()
				go func() {
					var err error
					defer func() { done[i] <- err }()
					noFault(t, "Receive during Close, wait="+w.String(), func() {
						_, _, err = c.Receive(context.Background(), make([]byte, 16))
					})
				}()
				blockedUntil(t, r, consumerSide, before)
			}
			for i, r := range rings {
				if err := r.Close(); err != nil {
					t.Errorf("wait=%v: Close: %v", allWaits[i], err)
				}
			}
			deadline := time.After(ipctest.Deadline)
			for i := range rings {
				select {
				case err := <-done[i]:
					if !errors.Is(err, os.ErrClosed) {
						t.Errorf("wait=%v: Receive on a closed Ring: %v, want os.ErrClosed", allWaits[i], err)
					}
				case <-deadline:
					t.Fatalf("wait=%v: Receive still blocked %v after Close", allWaits[i], ipctest.Deadline)
				}
			}
		})
	}
}

// TestRemoveByKey: after Remove, the key names nothing.
func TestRemoveByKey(t *testing.T) {
	key := freshKey(t)
	r, err := Create(key, &Options{Slots: 2, MaxMessage: 8, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	removeIDs(t, r.SegmentID(), r.SemaphoreID())
	segID, semID := r.SegmentID(), r.SemaphoreID()
	if err := r.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(key, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open after Remove: %v, want fs.ErrNotExist", err)
	}
	if ipctest.Exists(ipctest.Shm, segID) || ipctest.Exists(ipctest.Sem, semID) {
		t.Fatalf("Remove left segment %v, semaphores %v", ipctest.Exists(ipctest.Shm, segID), ipctest.Exists(ipctest.Sem, semID))
	}
	// The key is free for a new ring.
	r2, err := Create(key, &Options{Slots: 2, MaxMessage: 8, Exclusive: true})
	if err != nil {
		t.Fatalf("Create after Remove: %v", err)
	}
	removeIDs(t, r2.SegmentID(), r2.SemaphoreID())
	t.Cleanup(func() { r2.Close() })
	if r2.InstanceID() == [16]byte{} {
		t.Fatal("no instance id")
	}
}

// Exit statuses of the try-role helpers.
const (
	tryRoleGot   = 0
	tryRoleTaken = 3
)

func init() {
	helpers["try-producer"] = func() int { return helperTryRole(producerSide) }
	helpers["try-consumer"] = func() int { return helperTryRole(consumerSide) }
}

// helperTryRole opens ring RING_SEG and tries to take a role of side s: it
// exits with tryRoleTaken on ErrRoleTaken, and with tryRoleGot once it has
// taken the role, sent (or received) one message and closed.
func helperTryRole(s side) int {
	r, err := OpenID(ipctest.GetenvInt("RING_SEG"), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "try-role: open:", err)
		return 1
	}
	defer r.Close()
	if s == producerSide {
		p, err := r.NewProducer()
		if errors.Is(err, ErrRoleTaken) {
			return tryRoleTaken
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "try-role: producer:", err)
			return 1
		}
		if err := p.Send(context.Background(), 42, []byte("from the child")); err != nil {
			fmt.Fprintln(os.Stderr, "try-role: send:", err)
			return 1
		}
		if err := p.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "try-role: close:", err)
			return 1
		}
		return tryRoleGot
	}
	c, err := r.NewConsumer()
	if errors.Is(err, ErrRoleTaken) {
		return tryRoleTaken
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "try-role: consumer:", err)
		return 1
	}
	buf := make([]byte, r.MaxMessage())
	if typ, n, err := c.Receive(context.Background(), buf); err != nil || typ != 43 || string(buf[:n]) != "from the parent" {
		fmt.Fprintf(os.Stderr, "try-role: received %d %q %v\n", typ, buf[:n], err)
		return 1
	}
	if err := c.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "try-role: close:", err)
		return 1
	}
	return tryRoleGot
}

func exitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.ExitCode()
	}
	t.Fatal(err)
	return -1
}

// TestRolesAcrossProcesses: a role held in this process is refused to a
// child process, and given to it once released.
func TestRolesAcrossProcesses(t *testing.T) {
	for _, mode := range []Mode{SPSC, MPSC, SPMC} {
		t.Run("mode="+mode.String(), func(t *testing.T) {
			r := newTestRing(t, &Options{Mode: mode, Slots: 4, MaxMessage: 32, MaxProducers: 1 + boolInt(mode.multiProducer()),
				MaxConsumers: 1 + boolInt(mode.multiConsumer())})
			env := "RING_SEG=" + strconv.Itoa(r.SegmentID())
			// Hold every role of each side.
			var ps []*Producer
			var cs []*Consumer
			for {
				p, err := r.NewProducer()
				if errors.Is(err, ErrRoleTaken) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				ps = append(ps, p)
			}
			for {
				c, err := r.NewConsumer()
				if errors.Is(err, ErrRoleTaken) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				cs = append(cs, c)
			}
			if got := exitCode(t, ipctest.Command(t, "try-producer", env)); got != tryRoleTaken {
				t.Fatalf("child producer with every producer role held here: exit %d, want %d (ErrRoleTaken)", got, tryRoleTaken)
			}
			if got := exitCode(t, ipctest.Command(t, "try-consumer", env)); got != tryRoleTaken {
				t.Fatalf("child consumer with every consumer role held here: exit %d, want %d (ErrRoleTaken)", got, tryRoleTaken)
			}
			// Release one role of each side: the child gets it.
			if err := ps[0].Close(); err != nil {
				t.Fatal(err)
			}
			if got := exitCode(t, ipctest.Command(t, "try-producer", env)); got != tryRoleGot {
				t.Fatalf("child producer with a role free: exit %d", got)
			}
			expect(t, cs[0], 42, []byte("from the child"))
			if err := cs[0].Close(); err != nil {
				t.Fatal(err)
			}
			sender := ps[len(ps)-1]
			if len(ps) == 1 {
				var err error
				if sender, err = r.NewProducer(); err != nil {
					t.Fatal(err)
				}
			}
			if err := sender.TrySend(43, []byte("from the parent")); err != nil {
				t.Fatal(err)
			}
			if got := exitCode(t, ipctest.Command(t, "try-consumer", env)); got != tryRoleGot {
				t.Fatalf("child consumer with a role free: exit %d", got)
			}
		})
	}
}
