package ring

import (
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/shmring/shmring/internal/ipctest"
)

func init() {
	helpers["sleeper"] = helperSleeper
	if os.Getenv("SHMRING_FENCED") != "" && os.Getenv(ipctest.HelperEnv) != "" {
		fencedForTest = true
	}
}

// helperSleeper takes the role RING_ROLE and sleeps in a blocking call
// (Receive on an empty ring, Send on a full one) after saying "ready".
func helperSleeper() int {
	r, _ := helperOpen()
	ctx := context.Background()
	if os.Getenv("RING_ROLE") == "producer" {
		p, err := r.NewProducer()
		if err != nil {
			return helperFail("new producer", err)
		}
		for p.TrySend(1, nil) == nil {
		}
		hangIn(func() { p.Send(ctx, 1, nil) })
	}
	c, err := r.NewConsumer()
	if err != nil {
		return helperFail("new consumer", err)
	}
	hangIn(func() { c.Receive(ctx, make([]byte, r.MaxMessage())) })
	return 3
}

// hangIn says "ready" once f has had the time to start sleeping, and
// hangs in f.
func hangIn(f func()) {
	go func() {
		time.Sleep(5 * time.Millisecond)
		os.Stdout.WriteString("ready\n")
	}()
	f()
	time.Sleep(10 * ipctest.Deadline)
}

// TestKillStorm kills sleepers on both sides of a ring again and again:
// each dies announced, its line's semaphore may hold units its wakers
// posted, and every death posts the wake-up semaphores of the lines that
// must react. Units must not pile up: after the storm, with every side
// idle, each line's semaphore stays far from SEMVMX (at most strayLimit
// plus a few), and the ring still works. SHMRING_KILLS sets the number of
// kills (default 200).
func TestKillStorm(t *testing.T) {
	kills := 200
	if s := os.Getenv("SHMRING_KILLS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		kills = n
	}
	if testing.Short() {
		kills = 40
	}
	r := testRing(t, shm, &Options{Mode: MPMC, Slots: 4, MaxMessage: 16, MaxProducers: 4, MaxConsumers: 4,
		Wait: Waiting{Strategy: Block}})
	// A live producer and consumer, idle, whose lines get a death's units
	// while they are busy doing nothing.
	p, c := pair(t, r)
	for i := 0; i < kills; i++ {
		role := "consumer"
		if i%3 == 2 {
			role = "producer"
		}
		if role == "producer" {
			// The ring must be full for a producer to sleep; a consumer, empty.
			for p.TrySend(1, nil) == nil {
			}
		} else {
			for {
				if _, _, err := c.TryReceive(make([]byte, 16)); err != nil {
					break
				}
			}
		}
		kill(t, startHelper(t, "sleeper", helperEnv(r, "RING_ROLE="+role)...))
	}
	// Units wait on the lines of live holders that did not sleep during
	// the storm, at most one per death; each holder's next sleep drains
	// them.
	before := wakeUnits(t, r)
	if m := maxUnits(before); m > uint16(kills) {
		t.Fatalf("after %d kills a line's semaphore holds %d units", kills, m)
	}
	// Let every side go idle through one sleep each: a producer on a full
	// ring, a consumer on an empty one.
	for p.TrySend(1, nil) == nil {
	}
	for _, f := range []func(ctx context.Context) error{
		func(ctx context.Context) error { return p.Send(ctx, 1, nil) },
		func(ctx context.Context) error {
			for {
				if _, _, err := c.TryReceive(make([]byte, 16)); err != nil {
					break
				}
			}
			_, _, err := c.Receive(ctx, make([]byte, 16))
			return err
		},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		if err := f(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatal(err)
		}
		cancel()
	}
	units := wakeUnits(t, r)
	st := r.Stats()
	t.Logf("%d kills: wake-up units per line %v before the sleeps, %v after; stats %+v", kills, before, units, st)
	if m := maxUnits(units); m > strayLimit+4 {
		t.Fatalf("after %d kills a line's semaphore holds %d units: they pile up", kills, m)
	}
	// And the ring works, its sleepers woken as before.
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
		defer cancel()
		_, _, err := c.Receive(ctx, make([]byte, 16))
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	if err := p.TrySend(1, []byte("after")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestFenceAgreement: a process whose sleepers cannot run membarrier (as
// under a seccomp filter that forbids it) records that in the ring, and
// from then on every publisher to its side fences, so that no wake-up is
// lost whichever process publishes. The test bounces messages between
// such a process and this one, under the Block strategy, so that nearly
// every wait sleeps: a lost wake-up would hang it (the ring makes no
// periodic check any more).
func TestFenceAgreement(t *testing.T) {
	rounds := 20000
	if testing.Short() {
		rounds = 2000
	}
	opts := &Options{Slots: 16, MaxMessage: 64, Wait: Waiting{Strategy: Adaptive}}
	req, resp := testRing(t, shm, opts), testRing(t, shm, opts)
	if req.sleepers[consumerSide].flags.Load() != 0 {
		t.Fatal("a new ring asks publishers to fence")
	}
	cmd := ipctest.Command(t, "echo", append(helperEnv(req, "RING_REPLY="+strconv.Itoa(resp.SegmentID())), "SHMRING_FENCED=1",
		"RING_WAIT=block")...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	p, err := req.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	c, err := resp.NewConsumer()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
	defer cancel()
	buf := make([]byte, 64)
	for i := 0; i < rounds; i++ {
		if err := p.Send(ctx, 1, msg(i)); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if _, _, err := c.Receive(ctx, buf); err != nil {
			t.Fatalf("round %d: %v (stats %+v, %+v)", i, err, req.Stats(), resp.Stats())
		}
	}
	// The echo's consumer side asked our publications to fence.
	if req.sleepers[consumerSide].flags.Load()&sleepFenced == 0 {
		t.Fatal("the fenced process did not record the agreement")
	}
	p.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Receive(ctx, buf); !errors.Is(err, io.EOF) {
		t.Fatalf("after the echo exited: %v", err)
	}
	t.Logf("%d round trips; stats %+v / %+v", rounds, req.Stats(), resp.Stats())
}
