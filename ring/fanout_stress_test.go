package ring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/shmring/shmring/internal/ipctest"
)

// TestFanoutStress runs a Block fan-out ring of several producers and
// subscribers as goroutines, with subscribers joining and leaving all the
// time, one closed from another goroutine while it waits: over a heap ring
// under -race, and over a segment. The subscribers that stay receive every
// message exactly once, in each producer's order; those that come and go
// receive each producer's messages in order. With slot=64 most messages
// span slots (up to four).
func TestFanoutStress(t *testing.T) {
	const producers, stayers = 3, 3
	count := 20000
	if testing.Short() {
		count = 3000
	}
	for _, w := range []WaitStrategy{Adaptive, Block} {
		for _, mem := range []memory{heap, shm} {
			for _, slot := range []int{0, 64} {
				t.Run(fmt.Sprintf("wait=%v/memory=%v/slot=%d", w, mem, slot), func(t *testing.T) {
					opts := fanOpts(MPMC, PolicyBlock, 16)
					opts.Wait = Waiting{Strategy: w}
					opts.SlotSize = slot
					r := testRing(t, mem, opts)
					ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
					defer cancel()
					var subs []*Consumer
					for i := 0; i < stayers; i++ {
						c, err := r.NewSubscriber(&SubscribeOptions{Name: fmt.Sprint("stay", i)})
						if err != nil {
							t.Fatal(err)
						}
						subs = append(subs, c)
					}
					var prods []*Producer
					for i := 0; i < producers; i++ {
						p, err := r.NewProducer()
						if err != nil {
							t.Fatal(err)
						}
						prods = append(prods, p)
					}
					var wg sync.WaitGroup
					errs := make(chan error, 100)
					for i, c := range subs {
						wg.Add(1)
						go func() {
							defer wg.Done()
							got, err := receiveOrdered(ctx, c, producers, true)
							if err == nil && got != producers*count {
								err = fmt.Errorf("received %d of %d", got, producers*count)
							}
							if err != nil {
								errs <- fmt.Errorf("subscriber %d: %w", i, err)
							}
						}()
					}
					stop := make(chan struct{})
					var churn sync.WaitGroup
					churn.Add(1)
					go func() { // subscribers that come and go
						defer churn.Done()
						for n := 0; ; n++ {
							select {
							case <-stop:
								return
							default:
							}
							c, err := r.NewSubscriber(nil)
							if errors.Is(err, ErrRoleTaken) {
								continue
							}
							if err != nil {
								errs <- fmt.Errorf("churn subscribe: %w", err)
								return
							}
							if n%3 == 0 {
								// Closed from another goroutine while it waits or
								// receives.
								go func() { time.Sleep(time.Millisecond); c.Close() }()
							}
							cctx, ccancel := context.WithTimeout(ctx, 2*time.Millisecond)
							_, err = receiveOrdered(cctx, c, producers, false)
							ccancel()
							if err != nil && !errors.Is(err, os.ErrClosed) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, io.EOF) {
								errs <- fmt.Errorf("churn: %w", err)
							}
							c.Close()
						}
					}()
					for i, p := range prods {
						wg.Add(1)
						go func() {
							defer wg.Done()
							buf := make([]byte, 200)
							for seq := uint64(0); seq < uint64(count); seq++ {
								if err := p.Send(ctx, int64(i+1), payload(buf, uint64(i), seq)); err != nil {
									errs <- fmt.Errorf("producer %d: %w", i, err)
									return
								}
							}
							p.Close()
						}()
					}
					wg.Wait()
					close(stop)
					churn.Wait()
					close(errs)
					for err := range errs {
						t.Error(err)
					}
				})
			}
		}
	}
}

// receiveOrdered receives until an error, checking each message and that
// each producer's come in order (strict: with none missing) and returns
// how many it received; io.EOF ends it with a nil error.
func receiveOrdered(ctx context.Context, c *Consumer, producers int, strict bool) (int, error) {
	next := make([]uint64, producers)
	seen := make([]bool, producers)
	buf := make([]byte, 200)
	scratch := make([]byte, 200)
	got := 0
	for {
		n, typ, err := c.Receive(ctx, buf)
		if errors.Is(err, io.EOF) {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		id, seq, err := checkPayload(typ, buf[:n], scratch)
		if err != nil {
			return got, err
		}
		if id >= uint64(producers) || (strict || seen[id]) && seq != next[id] || seq < next[id] {
			return got, fmt.Errorf("producer %d: message %d, want %d", id, seq, next[id])
		}
		next[id], seen[id] = seq+1, true
		got++
	}
}
