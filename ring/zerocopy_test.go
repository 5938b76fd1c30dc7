package ring

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

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
			"TrySendBatch": func() error { _, err := p.TrySendBatch([]Message{{Type: 1, Data: nil}}); return err },
			"SendBatch":    func() error { _, err := p.SendBatch(ctx, []Message{{Type: 1, Data: nil}}); return err },
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
		if err := p.Commit(1, -1); !errors.Is(err, ErrInvalid) || strings.Contains(err.Error(), "too large") {
			t.Fatalf("Commit of -1 bytes: %v, want ErrInvalid, not a size complaint", err)
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

// TestClosePeeked: a consumer that closes while it looks at a message in
// place, without Release, has not consumed it: the next consumer gets it,
// flagged, and nothing refills its slot meanwhile.
func TestClosePeeked(t *testing.T) {
	forModes(t, small, func(t *testing.T, r *Ring) {
		p, c := pair(t, r)
		for i := 0; i < 3; i++ {
			if err := p.TrySend(int64(i+1), msg(i)); err != nil {
				t.Fatal(err)
			}
		}
		pk, err := c.TryPeek()
		if err != nil || pk.Type != 1 {
			t.Fatalf("peek: %d %v", pk.Type, err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		// The ring is not full, and the peeked slot stays as it was.
		for p.TrySend(9, []byte("filler")) == nil {
		}
		if string(pk.Data) != string(msg(0)) {
			t.Fatalf("the peeked slot was refilled after Close: %q", pk.Data)
		}
		c2, err := r.NewConsumer()
		if err != nil {
			t.Fatal(err)
		}
		m, err := c2.TryPeek()
		if err != nil || m.Type != 1 || !bytes.Equal(m.Data, msg(0)) || !m.Redelivered {
			t.Fatalf("after the close: %d %q redelivered %v, %v", m.Type, m.Data, m.Redelivered, err)
		}
		c2.Release()
		expect(t, c2, 2, msg(1))
		if st := r.Stats(); st.Redelivered != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
}
