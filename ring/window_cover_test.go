package ring

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/shmring/shmring/internal/ipctest"
)

// TestWindowClaimCover: a consumer that names more than its claim on its
// line for a moment (moving the claim's start up past what it released,
// growing the claim at the head, or closing and handing the rest back)
// never makes the consumer that serves a hand-back right after its claim
// pass a message of it over as the live one's: stopped there, live, it
// holds that consumer up (it cannot tell whose the positions are); killed
// there, it holds it up no more. Every message comes, once, in order
// within the hand-back, flagged exactly if a consumer that is gone held
// it.
func TestWindowClaimCover(t *testing.T) {
	for _, tc := range []struct {
		park string
		rel1 int      // the helper's first ReleaseFirst
		env  []string // more for the helper
	}{
		{"window:narrowed", 1, nil},
		{"window:intent", 0, nil},
		{"handback:start", 1, []string{"RING_CLOSE=1"}},
	} {
		t.Run(fmt.Sprintf("park=%s/released=%d", tc.park, tc.rel1), func(t *testing.T) {
			r := testRing(t, shm, &Options{Mode: MPMC, Slots: 8, MaxMessage: 64, MaxConsumers: 3})
			p, err := r.NewProducer()
			if err != nil {
				t.Fatal(err)
			}
			sendNumbered(t, p, 0, 8)
			// The helper receives 0, holds [1, 4), releases rel1 of them and
			// parks: its claim ends at 4.
			want := map[int]bool{6: false, 7: false} // what is to come: flagged?
			for i := 1 + tc.rel1; i < 4; i++ {
				want[i] = true
			}
			var s *Consumer
			next := 4 // of the hand-back [4, 6), the next to come
			got := func(m Peeked) {
				t.Helper()
				i := int(m.Data[0])
				switch flag, ok := want[i]; {
				case i == 4 || i == 5:
					if i != next || !m.Redelivered {
						t.Fatalf("message %d of the hand-back, redelivered %v; want %d, flagged", i, m.Redelivered, next)
					}
					next++
				case !ok || flag != m.Redelivered:
					t.Fatalf("message %d, redelivered %v; want one of %v", i, m.Redelivered, want)
				}
				delete(want, i)
				if err := s.Release(); err != nil {
					t.Fatal(err)
				}
			}
			parked := func() {
				d := newConsumer(t, r)
				held := make([]Peeked, 2)
				if n, err := d.TryPeekBatch(held); err != nil || n != 2 || held[0].Data[0] != 4 {
					t.Fatalf("peek batch after the parked claim: %d, %v", n, err)
				}
				if err := d.Close(); err != nil { // hands 4 and 5 back, held
					t.Fatal(err)
				}
				s = newConsumer(t, r)
				for i := 0; i < 100; i++ {
					m, err := s.TryPeek()
					if errors.Is(err, ErrEmpty) {
						continue
					}
					if err != nil {
						t.Fatal(err)
					}
					got(m)
				}
			}
			env := helperEnv(r, append([]string{fmt.Sprintf("RING_REL1=%d", tc.rel1)}, tc.env...)...)
			if !parkAndKillSaying(t, "window-stage", tc.park, nil, parked, env...) {
				t.Fatalf("never reached %s", tc.park)
			}
			ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
			defer cancel()
			for next < 6 || len(want) > 0 {
				m, err := s.Peek(ctx)
				if err != nil {
					t.Fatalf("waiting for %v and the hand-back from %d: %v", want, next, err)
				}
				got(m)
			}
			if m, err := s.TryPeek(); !errors.Is(err, ErrEmpty) {
				t.Fatalf("after the last: %d, %v", m.Data, err)
			}
		})
	}
}
