package ring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmring/shmring/internal/ipctest"
)

// helperWindowLoop slides windows over c (windower) until it is parked or
// the producers are gone ("ready" then), saying on stdout "p <producer>
// <seq> <redelivered>" for each message it is handed, before its next
// call, and "r <k>" before each ReleaseFirst(k).
func helperWindowLoop(r *Ring, c *Consumer) int {
	w := newWindower(int64(os.Getpid()), 6)
	w.releasing = func(_ []Peeked, k int) error {
		_, err := fmt.Printf("r %d\n", k)
		return err
	}
	scratch := make([]byte, r.MaxMessage())
	for {
		took, err := w.step(context.Background(), c)
		if errors.Is(err, io.EOF) {
			return hang()
		}
		if err != nil {
			return helperFail("window", err)
		}
		for _, m := range took {
			id, seq, err := checkPayload(m.Type, m.Data, scratch)
			if err != nil {
				return helperFail("check", err)
			}
			if _, err := fmt.Printf("p %d %d %v\n", id, seq, m.Redelivered); err != nil {
				return helperFail("say", err)
			}
		}
	}
}

// TestWindowKilledClaiming: on an MPMC ring with a numbered stream going
// through it, a consumer process that slides windows while a consumer of
// this process claims and slides windows too, concurrently, and is
// SIGKILLed at a step of growing its claim at the head (window:narrowed,
// window:intent, window:grown) or of ReleaseFirst (window:released),
// leaves the survivors (the live consumer, and one that takes the dead
// one's line) every message it still held, each delivered once and
// flagged Redelivered, none it released, and the rest of the stream once
// each, unflagged: nothing lost, nothing twice, whatever the live one
// claimed meanwhile.
func TestWindowKilledClaiming(t *testing.T) {
	const maxCount = 1 << 17 // the stream's bound if the helper never parks
	for _, run := range []struct {
		mode Mode
		park string
	}{
		{SPMC, "window:narrowed"}, {SPMC, "window:intent"}, {SPMC, "window:grown"}, {SPMC, "window:released"},
		{MPMC, "window:narrowed"}, {MPMC, "window:intent"}, {MPMC, "window:grown"}, {MPMC, "window:released"},
	} {
		park := run.park
		t.Run("mode="+run.mode.String()+"/kill-at="+park, func(t *testing.T) {
			r := testRing(t, shm, &Options{Mode: run.mode, Slots: 16, MaxMessage: 64, MaxConsumers: 2})
			ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
			defer cancel()
			p, err := r.NewProducer()
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			survivors := newDeliveries(1, maxCount, false) // mu
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			survive := func(c *Consumer, seed int64) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					w := newWindower(seed, 6)
					scratch := make([]byte, 64)
					for {
						took, err := w.step(ctx, c)
						if errors.Is(err, io.EOF) {
							errs <- c.Close()
							return
						}
						if err != nil {
							errs <- fmt.Errorf("survivor %d: %w", seed, err)
							return
						}
						mu.Lock()
						for _, m := range took {
							if err = survivors.add(m, scratch); err != nil {
								break
							}
						}
						mu.Unlock()
						if err != nil {
							errs <- fmt.Errorf("survivor %d: %w", seed, err)
							return
						}
					}
				}()
			}
			survive(newConsumer(t, r), 1)
			var parked atomic.Bool
			var sent atomic.Int64
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 64)
				for extra := 200; extra > 0 && sent.Load() < maxCount; {
					if parked.Load() {
						extra-- // a few more after the kill, then the end
					}
					if err := p.Send(ctx, 1, payload(buf, 0, uint64(sent.Load()))); err != nil {
						errs <- fmt.Errorf("producer: %w", err)
						return
					}
					sent.Add(1)
				}
				errs <- p.Close()
			}()

			// The helper's deliveries, and its window when killed.
			got := map[uint64]bool{}
			var window, released []uint64
			said := func(line string) error {
				var id, seq uint64
				var flagged bool
				var k int
				if _, err := fmt.Sscanf(line, "p %d %d %t\n", &id, &seq, &flagged); err == nil {
					switch {
					case id != 0 || flagged:
						return fmt.Errorf("handed producer %d message %d, flagged %v", id, seq, flagged)
					case got[seq]:
						return fmt.Errorf("handed message %d twice", seq)
					}
					got[seq] = true
					window = append(window, seq)
					return nil
				}
				if _, err := fmt.Sscanf(line, "r %d\n", &k); err != nil || k > len(window) {
					return fmt.Errorf("said %q, holding %d", line, len(window))
				}
				released = append(released, window[:k]...)
				window = window[k:]
				return nil
			}
			if !parkAndKillSaying(t, "window-stage", park, said, nil, helperEnv(r, "RING_LOOP=1")...) {
				t.Fatalf("never reached %s", park)
			}
			parked.Store(true)
			// Another takes the dead one's line, once the live one is done
			// with it if it serves it first.
			c, err := r.NewConsumer()
			for errors.Is(err, ErrRoleTaken) && ctx.Err() == nil {
				time.Sleep(100 * time.Microsecond)
				c, err = r.NewConsumer()
			}
			if err != nil {
				t.Fatal(err)
			}
			survive(c, 2)
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}

			n := uint64(sent.Load())
			count, flags := survivors.count[0], survivors.flags[0]
			for _, seq := range released {
				if count[seq] != 0 {
					t.Fatalf("message %d, released by the killed consumer, delivered again (%d flagged of %d)", seq, flags[seq], count[seq])
				}
			}
			held := map[uint64]bool{}
			for _, seq := range window {
				held[seq] = true
				if count[seq] != 1 || flags[seq] != 1 {
					t.Fatalf("message %d, held by the killed consumer, delivered %d times, %d flagged; want once, flagged", seq, count[seq], flags[seq])
				}
			}
			for seq := uint64(0); seq < n; seq++ {
				switch {
				case held[seq]:
				case got[seq] && count[seq] != 0:
					t.Fatalf("message %d, handed to the killed consumer, delivered again", seq)
				case !got[seq] && (count[seq] != 1 || flags[seq] != 0):
					t.Fatalf("message %d delivered %d times, %d flagged; want once, unflagged", seq, count[seq], flags[seq])
				}
			}
			for seq := n; seq < maxCount; seq++ {
				if count[seq] != 0 {
					t.Fatalf("message %d delivered, of %d sent", seq, n)
				}
			}
			t.Logf("%d sent; the killed consumer was handed %d, released %d, held %d", n, len(got), len(released), len(window))
		})
	}
}
