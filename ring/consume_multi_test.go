package ring

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/shmring/shmring/internal/ipctest"
)

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
