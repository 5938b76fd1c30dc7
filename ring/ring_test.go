package ring

import (
	"context"
	"errors"
	"os"
	"runtime/debug"
	"testing"
	"time"

	"github.com/shmring/shmring/internal/ipctest"
	"github.com/shmring/shmring/ipc"
)

func TestUseAfterClose(t *testing.T) {
	forModes(t, small, func(t *testing.T, r *Ring) {
		p, c := pair(t, r)
		ctx := context.Background()
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		for name, call := range map[string]func() error{
			"TrySend":         func() error { return p.TrySend(1, nil) },
			"Send":            func() error { return p.Send(ctx, 1, nil) },
			"TrySendBatch":    func() error { _, err := p.TrySendBatch([]Message{{Type: 1, Data: nil}}); return err },
			"SendBatch":       func() error { _, err := p.SendBatch(ctx, []Message{{Type: 1, Data: nil}}); return err },
			"Reserve":         func() error { _, err := p.Reserve(ctx); return err },
			"TryReserve":      func() error { _, err := p.TryReserve(); return err },
			"Commit":          func() error { return p.Commit(1, 0) },
			"TryReceive":      func() error { _, _, err := c.TryReceive(make([]byte, 8)); return err },
			"Receive":         func() error { _, _, err := c.Receive(ctx, make([]byte, 8)); return err },
			"TryReceiveBatch": func() error { _, err := c.TryReceiveBatch([]Message{{Data: make([]byte, 8)}}); return err },
			"ReceiveBatch":    func() error { _, err := c.ReceiveBatch(ctx, []Message{{Data: make([]byte, 8)}}); return err },
			"Peek":            func() error { _, err := c.Peek(ctx); return err },
			"TryPeek":         func() error { _, err := c.TryPeek(); return err },
		} {
			if err := call(); !errors.Is(err, os.ErrClosed) {
				t.Errorf("%s after Close: %v, want os.ErrClosed", name, err)
			}
		}
		if err := p.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if st := r.Stats(); st.Producers != 0 || st.Consumers != 0 {
			t.Fatalf("roles held after Close: %+v", st)
		}
	})
}

func TestRingClose(t *testing.T) {
	forModes(t, small, func(t *testing.T, r *Ring) {
		other := reopen(t, r, Waiting{})
		p, c := pair(t, other)
		if err := p.TrySend(1, []byte("kept")); err != nil {
			t.Fatal(err)
		}
		if err := other.Close(); err != nil {
			t.Fatal(err)
		}
		if err := other.Close(); err != nil {
			t.Fatalf("second Ring.Close: %v", err)
		}
		if err := p.TrySend(1, nil); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("producer of a closed Ring: %v, want os.ErrClosed", err)
		}
		if _, _, err := c.TryReceive(make([]byte, 64)); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("consumer of a closed Ring: %v, want os.ErrClosed", err)
		}
		if st := r.Stats(); st.Producers != 0 || st.Consumers != 0 || st.Depth != 1 {
			t.Fatalf("after Ring.Close: %+v", st)
		}
		// The closed Ring makes no new handles, though the roles are free.
		noFault(t, "NewProducer on a closed Ring", func() {
			if _, err := other.NewProducer(); !errors.Is(err, os.ErrClosed) {
				t.Errorf("NewProducer on a closed Ring: %v, want os.ErrClosed", err)
			}
		})
		noFault(t, "NewConsumer on a closed Ring", func() {
			if _, err := other.NewConsumer(); !errors.Is(err, os.ErrClosed) {
				t.Errorf("NewConsumer on a closed Ring: %v, want os.ErrClosed", err)
			}
		})
		if st := r.Stats(); st.Producers != 0 || st.Consumers != 0 {
			t.Fatalf("a closed Ring took roles: %+v", st)
		}
		_, c2 := pair(t, r)
		expect(t, c2, 1, []byte("kept"))
	})
}

func TestRemoveAfterClose(t *testing.T) {
	forMemories(t, small(SPSC), func(t *testing.T, r *Ring) {
		semID, segID := r.SemaphoreID(), r.SegmentID()
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		noFault(t, "Remove after Close", func() {
			r.Remove()
		})
		if ipctest.Exists(ipctest.Sem, semID) || segID >= 0 && ipctest.Exists(ipctest.Shm, segID) {
			t.Errorf("Remove after Close left semaphores %v, segment %v", ipctest.Exists(ipctest.Sem, semID), ipctest.Exists(ipctest.Shm, segID))
		}
	})
}

func TestRemoveWhileBlocked(t *testing.T) {
	for _, w := range allWaits {
		t.Run("wait="+w.String(), func(t *testing.T) {
			forMemories(t, &Options{Slots: 4, MaxMessage: 16, Wait: Waiting{Strategy: w}}, func(t *testing.T, r *Ring) {
				c, err := r.NewConsumer()
				if err != nil {
					t.Fatal(err)
				}
				before := r.Stats()
				done := make(chan error, 1)
				go func() {
					var err error
					defer func() { done <- err }()
					noFault(t, "Receive during Remove", func() {
						_, _, err = c.Receive(context.Background(), make([]byte, 16))
					})
				}()
				blockedUntil(t, r, consumerSide, before)
				if err := r.Remove(); err != nil {
					t.Errorf("Remove: %v", err)
				}
				select {
				case err := <-done:
					if !errors.Is(err, ErrRemoved) || !errors.Is(err, ipc.ErrRemoved) {
						t.Fatalf("Receive on a removed ring: %v, want ErrRemoved", err)
					}
				case <-time.After(ipctest.Deadline):
					t.Fatalf("Receive still blocked %v after Remove", ipctest.Deadline)
				}
				if ipctest.Exists(ipctest.Sem, r.SemaphoreID()) {
					t.Fatal("Remove left the semaphore set")
				}
			})
		})
	}
}

func TestCloseWhileBlocked(t *testing.T) {
	for _, mem := range []memory{heap, shm} {
		t.Run("memory="+mem.String(), func(t *testing.T) {
			rings := make([]*Ring, len(allWaits))
			done := make([]chan error, len(allWaits))
			for i, w := range allWaits {
				r := testRing(t, mem, &Options{Slots: 4, MaxMessage: 16, Wait: Waiting{Strategy: w}})
				c, err := r.NewConsumer()
				if err != nil {
					t.Fatal(err)
				}
				rings[i], done[i] = r, make(chan error, 1)
				before := r.Stats()
				go func() {
					var err error
					defer func() { done[i] <- err }()
					noFault(t, "Receive during Close, wait="+w.String(), func() {
						_, _, err = c.Receive(context.Background(), make([]byte, 16))
					})
				}()
				blockedUntil(t, r, consumerSide, before)
			}
			for i, r := range rings {
				if err := r.Close(); err != nil {
					t.Errorf("wait=%v: Close: %v", allWaits[i], err)
				}
			}
			deadline := time.After(ipctest.Deadline)
			for i := range rings {
				select {
				case err := <-done[i]:
					if !errors.Is(err, os.ErrClosed) {
						t.Errorf("wait=%v: Receive on a closed Ring: %v, want os.ErrClosed", allWaits[i], err)
					}
				case <-deadline:
					t.Fatalf("wait=%v: Receive still blocked %v after Close", allWaits[i], ipctest.Deadline)
				}
			}
		})
	}
}

// noFault runs f with faults turned into panics, and fails the test
// instead of crashing the test binary if f touches memory that is no
// longer mapped.
func noFault(t *testing.T, what string, f func()) {
	t.Helper()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if e := recover(); e != nil {
			t.Errorf("%s: %v\n%s", what, e, debug.Stack())
		}
	}()
	f()
}
