package ring

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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
