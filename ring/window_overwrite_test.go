package ring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"testing"
	"time"

	"github.com/shmring/shmring/internal/ipctest"
)

// windowLossy receives the messages of fanSpanMsg (producer 0) until
// io.EOF through a sliding window (PeekBatch, TryPeekMore, ReleaseFirst
// of random lengths), checking each finished message that its release did
// not report overwritten, and accounting in slots for every one lost.
func windowLossy(ctx context.Context, c *Consumer, seed int64) (received, lost uint64, err error) {
	r := c.h.r
	rng := rand.New(rand.NewSource(seed))
	scratch, buf := make([]byte, r.MaxMessage()), make([]byte, r.MaxMessage())
	slots := func(seq uint64) uint64 { return r.spanOf(len(fanSpanMsg(scratch, 0, seq))) }
	next, lostSlots := uint64(0), uint64(0)
	var log []string
	note := func(format string, args ...any) {
		log = append(log, fmt.Sprintf("next %d: ", next)+fmt.Sprintf(format, args...))
		if len(log) > 12 {
			log = log[1:]
		}
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, fmt.Sprint(log))
		}
	}()
	lose := func(n uint64) error {
		note("lose %d", n)
		lostSlots += n
		for n > 0 {
			k := slots(next)
			if k > n {
				return fmt.Errorf("%d positions lost, not whole messages from %d (%d slots)", n, next, k)
			}
			n -= k
			next++
			lost++
		}
		return nil
	}
	held := make([]Peeked, 12)
	var window []Peeked
	for {
		if len(window) == 0 {
			n, err := c.PeekBatch(ctx, held[:1+rng.Intn(4)])
			var le LapError
			switch {
			case errors.As(err, &le):
				if err := lose(le.Lost); err != nil {
					return received, lost, err
				}
				continue
			case errors.Is(err, io.EOF):
				if got := c.Lost(); got != lostSlots {
					return received, lost, fmt.Errorf("reports said %d positions lost, Lost says %d", lostSlots, got)
				}
				return received, lost, nil
			case err != nil:
				return received, lost, err
			}
			window = append(window[:0], held[:n]...)
			note("peekbatch %d from seq %d", n, held[0].Seq)
		}
		if rng.Intn(3) > 0 {
			more := held[:1+rng.Intn(6)]
			n, err := c.TryPeekMore(more)
			switch {
			case err == nil:
				window = append(window, more[:n]...)
				note("more %d", n)
			case !errors.Is(err, ErrEmpty):
				return received, lost, fmt.Errorf("peek more: %w", err)
			}
		}
		if rng.Intn(8) == 0 {
			time.Sleep(50 * time.Microsecond)
		}
		k := 1 + rng.Intn(len(window))
		// Copies made before the release, valid if it says so.
		var copies [][]byte
		var types []int64
		for _, m := range window[:k] {
			copies = append(copies, append(append([]byte(nil), m.Data...), m.Wrapped...))
			types = append(types, m.Type)
		}
		l0 := c.Lost()
		err := c.ReleaseFirst(k)
		d := uint64(0)
		note("releasefirst %d of %d: %v (lost %d)", k, len(window), err, c.Lost()-l0)
		switch {
		case errors.Is(err, ErrOverwritten):
			d = c.Lost() - l0
			if d == 0 {
				return received, lost, fmt.Errorf("ErrOverwritten with nothing counted lost")
			}
		case err != nil:
			return received, lost, fmt.Errorf("release first %d of %d: %w", k, len(window), err)
		}
		// The overwritten ones are the oldest (one producer overwrites in
		// order); a held span is held alone.
		skip := 0
		for d > 0 {
			if skip >= k {
				return received, lost, fmt.Errorf("%d more slots lost than the %d released", d, k)
			}
			s := slots(next)
			if s > d {
				return received, lost, fmt.Errorf("overwritten %d slots, not whole messages", d)
			}
			d -= s
			lostSlots += s
			next++
			lost++
			skip++
		}
		for i := skip; i < k; i++ {
			buf = buf[:0]
			if err := checkFanSpan(types[i], copies[i], scratch, next); err != nil {
				return received, lost, fmt.Errorf("released intact, but after %d received, %d lost: %w", received, lost, err)
			}
			if window[i].Seq != window[0].Seq+uint64(i) && k > 1 {
				return received, lost, fmt.Errorf("window not consecutive")
			}
			next++
			received++
		}
		window = window[k:]
	}
}

// TestWindowOverwrite: subscribers that hold sliding windows of
// spanning messages under Overwrite, lapped by a fast producer, never
// finish a torn message unreported and account for every one.
func TestWindowOverwrite(t *testing.T) {
	count := uint64(20000)
	r := testRing(t, shm, fanSpanOpts(SPMC, Overwrite))
	ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
	defer cancel()
	subs := subscribe(t, r, 3)
	recv, lost := make([]uint64, len(subs)), make([]uint64, len(subs))
	wait := receiveEach(ctx, subs, 0, func(ctx context.Context, c *Consumer, way, _ int) error {
		var err error
		recv[way], lost[way], err = windowLossy(ctx, c, int64(way))
		return err
	})
	p, err := r.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, r.MaxMessage())
	for seq := uint64(0); seq < count; seq++ {
		if err := p.TrySend(1, fanSpanMsg(buf, 0, seq)); err != nil {
			t.Fatalf("send %d: %v", seq, err)
		}
		if seq%8 == 0 {
			time.Sleep(20 * time.Microsecond)
		}
	}
	p.Close()
	for i, err := range wait() {
		if err != nil {
			t.Errorf("subscriber %d: %v", i, err)
		}
		if recv[i]+lost[i] != count {
			t.Errorf("subscriber %d: received %d + lost %d != %d", i, recv[i], lost[i], count)
		}
		t.Logf("subscriber %d: received %d, lost %d", i, recv[i], lost[i])
	}
}
