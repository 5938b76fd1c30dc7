package ring

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/shmring/shmring/internal/ipctest"
)

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
					n, typ, err := c.Receive(ctx, buf)
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
