package ring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"sync"
	"testing"
	"time"
)

// TestCloseWhileBusy closes a ring from one goroutine while others are in
// the middle of calls on it, busy rather than blocked: Try calls in a loop,
// batches, zero-copy reservations and peeks, and short blocking calls. No
// call may fault (the memory must stay mapped until the last call has
// left), each must end with os.ErrClosed once the ring is closed, and a
// slice that Peek or Reserve handed out must still be readable and
// writable after Close (it reads zeros).
func TestCloseWhileBusy(t *testing.T) {
	rounds := 300
	if testing.Short() {
		rounds = 60
	}
	for _, mem := range []memory{heap, shm} {
		t.Run("memory="+mem.String(), func(t *testing.T) {
			outstanding := 0
			for round := 0; round < rounds; round++ {
				mode := allModes[round%len(allModes)]
				n, err := closeWhileBusy(t, mem, mode, round)
				if err != nil {
					t.Fatalf("round %d, mode %v: %v", round, mode, err)
				}
				outstanding += n
			}
			t.Logf("%d rounds; %d zero-copy slices were outstanding at Close and used after it", rounds, outstanding)
		})
	}
}

func closeWhileBusy(t *testing.T, mem memory, mode Mode, round int) (int, error) {
	r := testRing(t, mem, &Options{Mode: mode, Slots: 8, MaxMessage: 200})
	p, c := pair(t, r)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	// busy runs f until it returns an error, with faults turned into
	// panics for this goroutine, and reports anything but os.ErrClosed.
	busy := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			debug.SetPanicOnFault(true)
			defer func() {
				if e := recover(); e != nil {
					errs <- fmt.Errorf("%s faulted: %v\n%s", name, e, debug.Stack())
				}
			}()
			for i := 0; ; i++ {
				if err := f(); err != nil {
					// A call that sees the other side close before its own
					// handle does ends with that side's verdict.
					if !errors.Is(err, os.ErrClosed) && !errors.Is(err, io.EOF) && !errors.Is(err, ErrNoConsumers) {
						errs <- fmt.Errorf("%s: %w", name, err)
					}
					return
				}
			}
		}()
	}
	var held [][]byte // zero-copy slices outstanding at Close
	var hmu sync.Mutex
	// done finishes a zero-copy call: a slice whose Commit or Release
	// failed because the handle closed was outstanding at Close.
	done := func(b []byte, err error) error {
		if errors.Is(err, os.ErrClosed) {
			hmu.Lock()
			held = append(held, b)
			hmu.Unlock()
		}
		return err
	}
	ctx := context.Background()
	busy("producer", func() error {
		buf := make([]byte, 150)
		switch round % 3 {
		case 0:
			err := p.TrySend(1, buf)
			if errors.Is(err, ErrFull) {
				return nil
			}
			return err
		case 1:
			_, err := p.TrySendBatch([]Message{{Type: 1, Data: buf[:10]}, {Type: 2, Data: buf}})
			if errors.Is(err, ErrFull) {
				return nil
			}
			return err
		}
		b, err := p.TryReserve()
		if errors.Is(err, ErrFull) {
			return nil
		}
		if err != nil {
			return err
		}
		for i := range b {
			b[i] = byte(i) // written in place
		}
		return done(b, p.Commit(3, len(b)))
	})
	busy("consumer", func() error {
		buf := make([]byte, 200)
		switch round % 4 {
		case 0:
			_, _, err := c.TryReceive(buf)
			if errors.Is(err, ErrEmpty) {
				return nil
			}
			return err
		case 1:
			_, err := c.TryReceiveBatch([]Message{{Data: buf}, {Data: make([]byte, 200)}})
			if errors.Is(err, ErrEmpty) {
				return nil
			}
			return err
		case 2:
			short, cancel := context.WithTimeout(ctx, time.Millisecond)
			defer cancel()
			_, _, err := c.Receive(short, buf)
			if errors.Is(err, context.DeadlineExceeded) {
				return nil
			}
			return err
		}
		pk, err := c.TryPeek()
		if errors.Is(err, ErrEmpty) {
			return nil
		}
		if err != nil {
			return err
		}
		sum := 0
		for _, b := range pk.Data {
			sum += int(b) // read in place
		}
		_ = sum
		return done(pk.Data, c.Release())
	})
	time.Sleep(time.Duration(200+rand.IntN(1800)) * time.Microsecond)
	if err := r.Close(); err != nil {
		return 0, fmt.Errorf("Close: %w", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return 0, err
	}
	// Slices handed out before the close are harmless now.
	debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(false)
	var fault error
	func() {
		defer func() {
			if e := recover(); e != nil {
				fault = fmt.Errorf("a zero-copy slice faulted after Close: %v", e)
			}
		}()
		hmu.Lock()
		defer hmu.Unlock()
		for _, b := range held {
			if len(b) > 0 {
				_ = b[0]
				b[len(b)-1] = 2
			}
		}
	}()
	return len(held), fault
}

// TestCloseHandleWhileBusy closes a Producer and a Consumer, not their
// Ring, from another goroutine while they are busy: the same promises.
func TestCloseHandleWhileBusy(t *testing.T) {
	forModes(t, small, func(t *testing.T, r *Ring) {
		for round := 0; round < 20; round++ {
			p, c := pair(t, r)
			var wg sync.WaitGroup
			wg.Add(2)
			var perr, cerr error
			go func() {
				defer wg.Done()
				for perr == nil || errors.Is(perr, ErrFull) {
					perr = p.TrySend(1, []byte("x"))
				}
			}()
			go func() {
				defer wg.Done()
				buf := make([]byte, 64)
				for cerr == nil || errors.Is(cerr, ErrEmpty) {
					_, _, cerr = c.TryReceive(buf)
				}
			}()
			time.Sleep(time.Duration(100+rand.IntN(900)) * time.Microsecond)
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			if !errors.Is(perr, os.ErrClosed) || !errors.Is(cerr, os.ErrClosed) {
				t.Fatalf("calls after Close: %v, %v", perr, cerr)
			}
			// Drain what is left for the next round.
			c2, err := r.NewConsumer()
			if err != nil {
				t.Fatal(err)
			}
			for {
				if _, _, err := c2.TryReceive(make([]byte, 64)); err != nil {
					break
				}
			}
			c2.Close()
		}
	})
}
