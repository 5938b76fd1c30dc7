package ring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
)

func bothMemories(t *testing.T, opts *Options, f func(t *testing.T, r *Ring)) {
	t.Run("memory=heap", func(t *testing.T) { f(t, newMemRing(t, opts)) })
	t.Run("memory=shm", func(t *testing.T) { f(t, newTestRing(t, opts)) })
}

func TestSendReceive(t *testing.T) {
	for _, mode := range []Mode{SPSC, MPSC, SPMC, MPMC} {
		t.Run("mode="+mode.String(), func(t *testing.T) {
			bothMemories(t, &Options{Mode: mode, Slots: 8, MaxMessage: 64}, func(t *testing.T, r *Ring) {
				p, err := r.NewProducer()
				if err != nil {
					t.Fatal(err)
				}
				c, err := r.NewConsumer()
				if err != nil {
					t.Fatal(err)
				}
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
						typ, n, err := c.Receive(ctx, buf)
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
				if typ, n, err := c.Receive(ctx, buf); err != nil || typ != 9 || string(buf[:n]) != "last" {
					t.Fatalf("after close: %d %q %v", typ, buf[:n], err)
				}
				if _, _, err := c.Receive(ctx, buf); !errors.Is(err, io.EOF) {
					t.Fatalf("drained and closed: %v, want io.EOF", err)
				}
			})
		})
	}
}
