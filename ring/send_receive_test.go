package ring

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestSendReceive(t *testing.T) {
	forModes(t, small, func(t *testing.T, r *Ring) {
		p, c := pair(t, r)
		ctx := context.Background()
		buf := make([]byte, 64)
		if _, _, err := c.TryReceive(buf); !errors.Is(err, ErrEmpty) {
			t.Fatalf("empty ring: %v", err)
		}
		for round := 0; round < 5; round++ {
			for i := 0; i < 8; i++ {
				if err := p.Send(ctx, int64(i+1), []byte(fmt.Sprint("msg", round, i))); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.TrySend(1, nil); !errors.Is(err, ErrFull) {
				t.Fatalf("full ring: %v", err)
			}
			for i := 0; i < 8; i++ {
				n, typ, err := c.Receive(ctx, buf)
				if err != nil {
					t.Fatal(err)
				}
				if want := fmt.Sprint("msg", round, i); typ != int64(i+1) || string(buf[:n]) != want {
					t.Fatalf("got type %d %q, want %d %q", typ, buf[:n], i+1, want)
				}
			}
		}
		st := r.Stats()
		if st.Sent != 40 || st.Received != 40 || st.Depth != 0 || st.Producers != 1 || st.Consumers != 1 {
			t.Fatalf("stats %+v", st)
		}
		if err := p.Send(ctx, 9, []byte("last")); err != nil {
			t.Fatal(err)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if n, typ, err := c.Receive(ctx, buf); err != nil || typ != 9 || string(buf[:n]) != "last" {
			t.Fatalf("after close: %d %q %v", typ, buf[:n], err)
		}
		if _, _, err := c.Receive(ctx, buf); !errors.Is(err, io.EOF) {
			t.Fatalf("drained and closed: %v, want io.EOF", err)
		}
	})
}

// TestSizes sends every size from 0 to MaxMessage, across the boundary
// between messages kept in the descriptor and in the payload area.
func TestSizes(t *testing.T) {
	for _, max := range []int{8, InlineCap, InlineCap + 1, 300} {
		t.Run(fmt.Sprint("max=", max), func(t *testing.T) {
			forMemories(t, &Options{Slots: 4, MaxMessage: max}, func(t *testing.T, r *Ring) {
				p, c := pair(t, r)
				buf := make([]byte, max)
				for n := 0; n <= max; n++ {
					data := bytes.Repeat([]byte{byte(n)}, n)
					if err := p.TrySend(int64(n+1), data); err != nil {
						t.Fatal(n, err)
					}
					got, typ, err := c.TryReceive(buf)
					if err != nil || typ != int64(n+1) || !bytes.Equal(buf[:got], data) {
						t.Fatalf("size %d: got %d bytes type %d, %v", n, got, typ, err)
					}
				}
				if err := p.TrySend(1, make([]byte, max+1)); !errors.Is(err, ErrTooLarge) {
					t.Fatalf("too large: %v", err)
				}
			})
		})
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
			"TrySend": func() error { return p.TrySend(1, big) },
			"Send":    func() error { return p.Send(ctx, 1, big) },
			"TrySendBatch": func() error {
				_, err := p.TrySendBatch([]Message{{Type: 1, Data: nil}, {Type: 1, Data: big}})
				return err
			},
			"SendBatch": func() error {
				_, err := p.SendBatch(ctx, []Message{{Type: 1, Data: nil}, {Type: 1, Data: big}})
				return err
			},
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
		if st := r.Stats(); !r.Mode().multiConsumer() && st.Depth != 1 || r.Mode().multiConsumer() && (held(c) != 1 || st.Depth != 0) {
			t.Fatalf("refused message left the ring: %+v (held %d)", st, held(c))
		}
		// The room is the buffer's capacity, not its length.
		roomy := make([]byte, 0, 50)
		n, typ, err := c.TryReceive(roomy)
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
			if n, err := p.TrySendBatch([]Message{{Type: 1, Data: nil}, {Type: typ, Data: nil}}); n != 0 || !errors.Is(err, ErrBadType) {
				t.Fatalf("TrySendBatch with type %d: %d %v", typ, n, err)
			}
			if n, err := p.SendBatch(ctx, []Message{{Type: typ, Data: nil}}); n != 0 || !errors.Is(err, ErrBadType) {
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

// held returns how many positions a consumer of a multi-consumer ring
// holds and has not delivered.
func held(c *Consumer) uint64 {
	if m, ok := c.d.(*multiReceiver); ok {
		return m.end - m.at
	}
	return 0
}
