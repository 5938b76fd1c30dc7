package semaphore

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/shmring/shmring/internal/ipctest"
)

// storm sends SIGURG to every thread of this process until the test ends,
// and returns once the storm has made the package retry at least n
// interrupted system calls.
func storm(t *testing.T, n uint64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sent := make(chan int, 1)
	go func() { sent <- ipctest.SignalStorm(ctx, os.Getpid()) }()
	t.Cleanup(func() {
		cancel()
		t.Logf("%d signals sent", <-sent)
	})
	awaitInterrupts(t, interrupted.Load()+n)
}

// awaitInterrupts returns once the package has retried n interrupted calls
// in all, failing the test after ipctest.Deadline.
func awaitInterrupts(t *testing.T, n uint64) {
	t.Helper()
	deadline := time.Now().Add(ipctest.Deadline)
	for interrupted.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d interrupted calls retried after %v, want %d", interrupted.Load(), ipctest.Deadline, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSignalStorm: waiters sleeping while signals land on every thread
// return the right result, never EINTR.
func TestSignalStorm(t *testing.T) {
	s := newSet(t, 4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	waits := []func() error{
		func() error { return s.Wait(context.Background(), 0) },
		func() error { return s.WaitTimeout(1, ipctest.Deadline) },
		func() error { return s.Wait(ctx, 2) },
		func() error { return s.DoTimeout(ipctest.Deadline, Op{Num: 3, Delta: -1}) },
	}
	errs := make(chan error, len(waits))
	for _, wait := range waits {
		go func() { errs <- wait() }()
	}
	for num := range waits {
		awaitWaiters(t, s, num, 1, false)
	}

	before := interrupted.Load()
	storm(t, 200)
	t.Logf("%d interrupted calls retried", interrupted.Load()-before)
	for num := range waits {
		if err := s.Post(num); err != nil {
			t.Fatal(err)
		}
	}
	for range waits {
		if err := result(t, errs); err != nil {
			t.Errorf("waiter returned %v during a signal storm, want nil", err)
		}
	}
	if v := values(t, s); v[0]+v[1]+v[2]+v[3] != 0 {
		t.Errorf("values after the waits = %v, want all 0", v)
	}

	// Signals neither end a timed wait early nor stretch it.
	for _, wait := range []func() error{
		func() error { return s.WaitTimeout(0, 200*time.Millisecond) },
		func() error { return s.DoTimeout(200*time.Millisecond, Op{Num: 0, Delta: -1}) },
	} {
		before := interrupted.Load()
		start := time.Now()
		err := wait()
		elapsed := time.Since(start)
		if err != ErrTimeout {
			t.Fatalf("timed wait on 0 during a signal storm = %v, want ErrTimeout", err)
		}
		if elapsed < 200*time.Millisecond || elapsed > 10*time.Second {
			t.Errorf("200ms timed wait took %v", elapsed)
		}
		t.Logf("200ms timed wait: %v, %d interrupted calls retried", elapsed, interrupted.Load()-before)
	}

	// A cancelled wait still returns ctx.Err().
	go func() { errs <- s.Wait(ctx, 0) }()
	awaitInterrupts(t, interrupted.Load()+20)
	cancel()
	if err := result(t, errs); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Wait during a signal storm = %v", err)
	}
}
