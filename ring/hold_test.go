package ring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"sync"
	"testing"

	"github.com/shmring/shmring/internal/ipctest"
)

// windowCase is a kind of consumer a window test runs on: a mode, or a
// fan-out subscriber.
type windowCase struct {
	name string
	opts func() *Options
	sub  bool // a durable fan-out subscriber
}

func windowCases(slots int) []windowCase {
	var cs []windowCase
	for _, mode := range allModes {
		cs = append(cs, windowCase{name: "mode=" + mode.String(), opts: func() *Options {
			return &Options{Mode: mode, Slots: slots, MaxMessage: 200}
		}})
	}
	cs = append(cs, windowCase{name: "fanout", sub: true, opts: func() *Options { return fanOpts(MPMC, PolicyBlock, slots) }})
	return cs
}

func (wc windowCase) consumer(t testing.TB, r *Ring) *Consumer {
	t.Helper()
	var c *Consumer
	var err error
	if wc.sub {
		c, err = r.NewSubscriber(&SubscribeOptions{Name: "window", From: Oldest})
	} else {
		c, err = r.NewConsumer()
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkHeld verifies that held are the messages from seq on, intact and
// not flagged.
func checkHeld(t testing.TB, held []Peeked, seq uint64) {
	t.Helper()
	scratch := make([]byte, 200)
	for i, m := range held {
		_, got, err := checkPayload(m.Type, m.Data, scratch)
		switch {
		case err != nil:
			t.Fatalf("held %d: %v", i, err)
		case got != seq+uint64(i):
			t.Fatalf("held %d is message %d, want %d", i, got, seq+uint64(i))
		case m.Redelivered:
			t.Fatalf("message %d flagged redelivered", got)
		}
	}
}

// TestWindowSlides: a consumer that holds a window of messages, grows it
// with TryPeekMore and finishes its oldest with ReleaseFirst, in random
// steps interleaved with sends, sees every message once, in order, intact
// while held (also after the release of those before it), in every mode
// and for a fan-out subscriber, over both kinds of memory; and the window
// does grow, beyond a claim too.
func TestWindowSlides(t *testing.T) {
	for _, mem := range []memory{heap, shm} {
		for _, wc := range windowCases(16) {
			t.Run(fmt.Sprintf("%v/%s", mem, wc.name), func(t *testing.T) {
				r := testRing(t, mem, wc.opts())
				p, err := r.NewProducer()
				if err != nil {
					t.Fatal(err)
				}
				c := wc.consumer(t, r)
				buf := make([]byte, 200)
				if _, err := c.TryPeekMore(make([]Peeked, 1)); !errors.Is(err, ErrNotReserved) {
					t.Fatalf("TryPeekMore with nothing held: %v, want ErrNotReserved", err)
				}
				if err := c.ReleaseFirst(1); !errors.Is(err, ErrNotReserved) {
					t.Fatalf("ReleaseFirst with nothing held: %v, want ErrNotReserved", err)
				}
				rng := rand.New(rand.NewSource(1))
				var window []Peeked                // what c holds, oldest first
				sent, next := uint64(0), uint64(0) // next: the first message not yet held
				grown, partial := 0, 0
				scratch := make([]Peeked, 16)
				for step := 0; step < 4000; step++ {
					for k := rng.Intn(6); k > 0; k-- {
						if err := p.TrySend(1, payload(buf, 0, sent)); err != nil {
							if !errors.Is(err, ErrFull) {
								t.Fatal(err)
							}
							break
						}
						sent++
					}
					switch op := rng.Intn(10); {
					case len(window) == 0:
						n, err := c.TryPeekBatch(scratch[:1+rng.Intn(len(scratch))])
						if errors.Is(err, ErrEmpty) {
							if next != sent {
								t.Fatalf("step %d: empty with %d of %d held", step, next, sent)
							}
							continue
						}
						if err != nil {
							t.Fatal(err)
						}
						checkHeld(t, scratch[:n], next)
						window = append(window, scratch[:n]...)
						next += uint64(n)
					case op < 5:
						n, err := c.TryPeekMore(scratch[:1+rng.Intn(len(scratch))])
						if errors.Is(err, ErrEmpty) {
							continue
						}
						if err != nil {
							t.Fatal(err)
						}
						checkHeld(t, scratch[:n], next)
						window = append(window, scratch[:n]...)
						next += uint64(n)
						grown++
					case op < 9:
						k := rng.Intn(len(window) + 1)
						if err := c.ReleaseFirst(k); err != nil {
							t.Fatal(err)
						}
						if k > 0 && k < len(window) {
							partial++
						}
						window = window[k:]
						checkHeld(t, window, next-uint64(len(window)))
					default:
						if err := c.ReleaseFirst(len(window) + 1); !errors.Is(err, ErrInvalid) {
							t.Fatalf("ReleaseFirst(%d) of %d: %v, want ErrInvalid", len(window)+1, len(window), err)
						}
						if err := c.ReleaseFirst(-1); !errors.Is(err, ErrInvalid) {
							t.Fatalf("ReleaseFirst(-1): %v, want ErrInvalid", err)
						}
						if err := c.Release(); err != nil {
							t.Fatal(err)
						}
						window = window[:0]
					}
				}
				if grown == 0 || partial == 0 {
					t.Fatalf("window grown %d times, released in part %d times", grown, partial)
				}
				if next < 1000 {
					t.Fatalf("only %d messages held", next)
				}
				if st := r.Stats(); st.Redelivered != 0 {
					t.Fatalf("%d redelivered", st.Redelivered)
				}
			})
		}
	}
}

// TestWindowClose: a consumer that closes holding a window of which it
// released a part leaves the rest to the next consumer, flagged, and never
// the released part.
func TestWindowClose(t *testing.T) {
	for _, wc := range windowCases(8) {
		t.Run(wc.name, func(t *testing.T) {
			r := testRing(t, heap, wc.opts())
			p, err := r.NewProducer()
			if err != nil {
				t.Fatal(err)
			}
			sendNumbered(t, p, 0, 8)
			c := wc.consumer(t, r)
			held := make([]Peeked, 3)
			if n, err := c.TryPeekBatch(held); err != nil || n != 3 {
				t.Fatalf("peek batch: %d, %v", n, err)
			}
			if err := c.ReleaseFirst(1); err != nil { // 0
				t.Fatal(err)
			}
			if n, err := c.TryPeekMore(held); err != nil || n != 3 || held[0].Data[0] != 3 {
				t.Fatalf("peek more: %d, %v", n, err) // 3, 4, 5: beyond the claim too
			}
			if err := c.ReleaseFirst(2); err != nil { // 1, 2
				t.Fatal(err)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			sendNumbered(t, p, 8, 11)
			checkRun(t, wc.consumer(t, r), 3, 11, 3, 6)
		})
	}
}

// TestWindowLimits: where a run cannot grow, TryPeekMore says ErrEmpty and
// holds nothing: past a claim another consumer claimed behind, on a
// selective ring, after a message spanning slots; and a full ring's worth
// is the most a run holds.
func TestWindowLimits(t *testing.T) {
	t.Run("claimed-behind", func(t *testing.T) {
		r := testRing(t, heap, &Options{Mode: MPMC, Slots: 8, MaxMessage: 64})
		p, _ := r.NewProducer()
		a, b := newConsumer(t, r), newConsumer(t, r)
		sendNumbered(t, p, 0, 2)
		held := make([]Peeked, 4)
		if n, err := a.TryPeekBatch(held); err != nil || n != 2 {
			t.Fatalf("a: %d, %v", n, err)
		}
		sendNumbered(t, p, 2, 4)
		if n, err := b.TryPeekBatch(held[:1]); err != nil || n != 1 || held[0].Data[0] != 2 {
			t.Fatalf("b: %d, %v", n, err)
		}
		if n, err := a.TryPeekMore(held); !errors.Is(err, ErrEmpty) {
			t.Fatalf("a grows past b's claim: %d, %v", n, err)
		}
		if err := a.ReleaseFirst(2); err != nil {
			t.Fatal(err)
		}
		if err := b.ReleaseFirst(1); err != nil {
			t.Fatal(err)
		}
		checkRun(t, b, 3, 4, 0, 0)
	})
	t.Run("selective", func(t *testing.T) {
		r := testRing(t, heap, &Options{Mode: SPMC, Slots: 8, MaxMessage: 64, MaxConsumers: 1, Selective: true})
		p, _ := r.NewProducer()
		c := newConsumer(t, r)
		sendNumbered(t, p, 0, 4)
		held := make([]Peeked, 4)
		if n, err := c.TryPeekBatch(held); err != nil || n != 1 {
			t.Fatalf("peek batch: %d, %v", n, err)
		}
		if n, err := c.TryPeekMore(held); !errors.Is(err, ErrEmpty) {
			t.Fatalf("peek more: %d, %v", n, err)
		}
		if err := c.ReleaseFirst(1); err != nil {
			t.Fatal(err)
		}
		checkRun(t, c, 1, 4, 0, 0)
	})
	t.Run("span", func(t *testing.T) {
		r := testRing(t, heap, &Options{Mode: SPSC, Slots: 8, SlotSize: 64, MaxMessage: 200})
		p, _ := r.NewProducer()
		c := newConsumer(t, r)
		big := make([]byte, 150)
		for i := 0; i < 2; i++ {
			big[len(big)-1] = byte(i)
			if err := p.TrySend(1, big); err != nil {
				t.Fatal(err)
			}
		}
		held := make([]Peeked, 4)
		if n, err := c.TryPeekBatch(held); err != nil || n != 1 {
			t.Fatalf("peek batch: %d, %v", n, err)
		}
		if n, err := c.TryPeekMore(held); !errors.Is(err, ErrEmpty) {
			t.Fatalf("peek more after a span: %d, %v", n, err)
		}
		if err := c.Release(); err != nil {
			t.Fatal(err)
		}
		// A run of small messages stops before a span.
		if err := p.TrySend(1, []byte{7}); err != nil {
			t.Fatal(err)
		}
		if n, err := c.TryPeekBatch(held[:1]); err != nil || n != 1 || held[0].Data[len(held[0].Data)-1] != 1 {
			t.Fatalf("second span: %d, %v", n, err)
		}
		if err := c.Release(); err != nil {
			t.Fatal(err)
		}
		if n, err := c.TryPeekBatch(held[:1]); err != nil || n != 1 {
			t.Fatalf("small: %d, %v", n, err)
		}
		if err := p.TrySend(1, big); err != nil {
			t.Fatal(err)
		}
		if n, err := c.TryPeekMore(held); !errors.Is(err, ErrEmpty) {
			t.Fatalf("peek more before a span: %d, %v", n, err)
		}
		if err := c.ReleaseFirst(1); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ring-size", func(t *testing.T) {
		r := testRing(t, heap, &Options{Mode: SPSC, Slots: 8, MaxMessage: 64})
		p, _ := r.NewProducer()
		c := newConsumer(t, r)
		sendNumbered(t, p, 0, 8)
		held := make([]Peeked, 8)
		if n, err := c.TryPeekBatch(held[:5]); err != nil || n != 5 {
			t.Fatalf("peek batch: %d, %v", n, err)
		}
		if n, err := c.TryPeekMore(held); err != nil || n != 3 {
			t.Fatalf("peek more: %d, %v", n, err)
		}
		if n, err := c.TryPeekMore(held); !errors.Is(err, ErrEmpty) {
			t.Fatalf("peek more of a full ring: %d, %v", n, err)
		}
		if err := c.ReleaseFirst(2); err != nil {
			t.Fatal(err)
		}
		sendNumbered(t, p, 8, 10)
		if n, err := c.TryPeekMore(held); err != nil || n != 2 || held[1].Data[0] != 9 {
			t.Fatalf("peek more after a release: %d, %v", n, err)
		}
		if err := c.Release(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		r := testRing(t, heap, &Options{Mode: SPSC, Slots: 8, MaxMessage: 64})
		c := newConsumer(t, r)
		c.Close()
		if _, err := c.TryPeekMore(make([]Peeked, 1)); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("TryPeekMore after Close: %v", err)
		}
		if err := c.ReleaseFirst(0); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("ReleaseFirst after Close: %v", err)
		}
	})
}

// TestWindowStress runs producers and consumers that hold sliding windows
// as goroutines over one ring, in every mode, over plain memory (under
// -race) and a segment: every message is delivered exactly once, in each
// producer's order for each consumer, and none flagged.
func TestWindowStress(t *testing.T) {
	count := 20000
	if testing.Short() {
		count = 3000
	}
	for _, mem := range []memory{heap, shm} {
		for _, mode := range allModes {
			t.Run(fmt.Sprintf("%v/mode=%v", mem, mode), func(t *testing.T) {
				producers, consumers := 1, 1
				if mode.multiProducer() {
					producers = 2
				}
				if mode.multiConsumer() {
					consumers = 3
				}
				r := testRing(t, mem, &Options{Mode: mode, Slots: 32, MaxMessage: 200, MaxProducers: producers, MaxConsumers: consumers})
				ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
				defer cancel()
				var wg sync.WaitGroup
				errs := make(chan error, producers+consumers)
				seen := make([][]bool, producers)
				var mu sync.Mutex
				for i := range seen {
					seen[i] = make([]bool, count)
				}
				var prods []*Producer
				for i := 0; i < producers; i++ {
					p, err := r.NewProducer()
					if err != nil {
						t.Fatal(err)
					}
					prods = append(prods, p)
				}
				for i := 0; i < consumers; i++ {
					c := newConsumer(t, r)
					wg.Add(1)
					go func(seed int64) {
						defer wg.Done()
						errs <- windowConsumer(ctx, c, seed, producers, func(id, seq uint64) error {
							mu.Lock()
							defer mu.Unlock()
							if seen[id][seq] {
								return fmt.Errorf("producer %d message %d delivered twice", id, seq)
							}
							seen[id][seq] = true
							return nil
						})
					}(int64(i))
				}
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
						errs <- p.Close()
					}()
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						t.Fatal(err)
					}
				}
				for id := range seen {
					for seq, ok := range seen[id] {
						if !ok {
							t.Fatalf("producer %d message %d never delivered", id, seq)
						}
					}
				}
			})
		}
	}
}

// windowConsumer holds windows of c's messages until io.EOF: PeekBatch
// when it holds none, TryPeekMore and ReleaseFirst of random sizes
// otherwise, checking each message and the order of each producer's.
func windowConsumer(ctx context.Context, c *Consumer, seed int64, producers int, deliver func(id, seq uint64) error) error {
	rng := rand.New(rand.NewSource(seed))
	scratch := make([]byte, 200)
	last := make([]int64, producers)
	for i := range last {
		last[i] = -1
	}
	buf := make([]Peeked, 16)
	var window []Peeked
	take := func(held []Peeked) error {
		for _, m := range held {
			id, seq, err := checkPayload(m.Type, m.Data, scratch)
			switch {
			case err != nil:
				return err
			case id >= uint64(producers) || int64(seq) <= last[id]:
				return fmt.Errorf("producer %d message %d after %d", id, seq, last[id])
			case m.Redelivered:
				return fmt.Errorf("producer %d message %d flagged", id, seq)
			}
			last[id] = int64(seq)
			if err := deliver(id, seq); err != nil {
				return err
			}
		}
		window = append(window, held...)
		return nil
	}
	for {
		if len(window) == 0 {
			n, err := c.PeekBatch(ctx, buf[:1+rng.Intn(len(buf))])
			if err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
			if err := take(buf[:n]); err != nil {
				return err
			}
			continue
		}
		n, err := c.TryPeekMore(buf[:1+rng.Intn(len(buf))])
		switch {
		case err == nil:
			if err := take(buf[:n]); err != nil {
				return err
			}
		case !errors.Is(err, ErrEmpty):
			return err
		}
		// Those still held are intact.
		for _, m := range window {
			if _, _, err := checkPayload(m.Type, m.Data, scratch); err != nil {
				return fmt.Errorf("held: %w", err)
			}
		}
		k := rng.Intn(len(window) + 1)
		if err != nil {
			k = len(window) // nothing more now: let go of all, and wait in PeekBatch
		}
		if err := c.ReleaseFirst(k); err != nil {
			return err
		}
		window = window[k:]
	}
}

func init() {
	helpers["window-stage"] = helperWindowStage
}

// helperWindowStage receives one message, then holds a window and slides
// it: PeekBatch of 3, ReleaseFirst(RING_REL1), TryPeekMore of 3,
// ReleaseFirst(2); then says "ready" and waits to be killed. With
// SHMRING_PARK it stops at that step instead, the first time it gets
// there. With RING_NAME it is a durable fan-out subscriber of that name.
// With RING_CLOSE it closes after the first ReleaseFirst instead of going
// on. With RING_LOOP it slides windows of random sizes instead, from the
// first message on, until it is parked (helperWindowLoop).
func helperWindowStage() int {
	r, _ := helperOpen()
	var c *Consumer
	var err error
	if name := os.Getenv("RING_NAME"); name != "" {
		c, err = r.NewSubscriber(&SubscribeOptions{Name: name, From: Oldest})
	} else {
		c, err = r.NewConsumer()
	}
	if err != nil {
		return helperFail("new consumer", err)
	}
	if os.Getenv("RING_LOOP") != "" {
		return helperWindowLoop(r, c)
	}
	ctx := context.Background()
	if _, _, err := c.Receive(ctx, make([]byte, r.MaxMessage())); err != nil {
		return helperFail("receive", err)
	}
	held := make([]Peeked, 3)
	if n, err := c.PeekBatch(ctx, held); err != nil || n != 3 {
		return helperFail(fmt.Sprintf("peek batch: %d", n), err)
	}
	if err := c.ReleaseFirst(ipctest.GetenvInt("RING_REL1")); err != nil {
		return helperFail("release first", err)
	}
	if os.Getenv("RING_CLOSE") != "" {
		if err := c.Close(); err != nil {
			return helperFail("close", err)
		}
		return hang()
	}
	if n, err := c.TryPeekMore(held); err != nil || n != 3 {
		return helperFail(fmt.Sprintf("peek more: %d", n), err)
	}
	if err := c.ReleaseFirst(2); err != nil {
		return helperFail("release first", err)
	}
	return hang()
}

// TestWindowKilled: a consumer killed while it slides a window, at every
// step of ReleaseFirst and of a TryPeekMore that grows a claim, and after
// both, leaves every message it still held to its successor, flagged, and
// none it released; the rest come unflagged.
func TestWindowKilled(t *testing.T) {
	type stage struct {
		park  string // "": killed after the last step
		rel1  int    // the first ReleaseFirst
		first int    // the first message the successor gets
		flag  int    // the end of those it flags (from first on)
		multi bool   // a step of the many-consumer modes only
	}
	stages := []stage{
		{park: "", rel1: 1, first: 4, flag: 7},
		{park: "window:released", rel1: 1, first: 2, flag: 4},
		{park: "window:released", rel1: 0, first: 3, flag: 7},
		{park: "window:narrowed", rel1: 1, first: 2, flag: 4, multi: true},
		{park: "window:intent", rel1: 1, first: 2, flag: 4, multi: true},
		{park: "window:intent", rel1: 0, first: 1, flag: 4, multi: true},
		{park: "window:grown", rel1: 1, first: 2, flag: 4, multi: true},
	}
	for i := 0; i <= len(allModes); i++ {
		fan := i == len(allModes) // a fan-out subscriber
		mode, name := MPMC, "fanout"
		if !fan {
			mode = allModes[i]
			name = "mode=" + mode.String()
		}
		for _, st := range stages {
			if st.multi && (fan || !mode.multiConsumer()) {
				continue
			}
			park := st.park
			if park == "" {
				park = "end"
			}
			t.Run(fmt.Sprintf("%s/kill-at=%s/released=%d", name, park, st.rel1), func(t *testing.T) {
				opts := &Options{Mode: mode, Slots: 8, MaxMessage: 64}
				env := []string{"RING_REL1=" + fmt.Sprint(st.rel1)}
				if fan {
					opts = fanOpts(MPMC, PolicyBlock, 8)
					env = append(env, "RING_NAME=window")
				}
				r := testRing(t, shm, opts)
				p, err := r.NewProducer()
				if err != nil {
					t.Fatal(err)
				}
				sendNumbered(t, p, 0, 8)
				if st.park == "" {
					kill(t, startHelper(t, "window-stage", helperEnv(r, env...)...))
				} else if !parkAndKill(t, "window-stage", st.park, helperEnv(r, env...)...) {
					t.Fatalf("never reached %s", st.park)
				}
				var c *Consumer
				if fan {
					c, err = r.NewSubscriber(&SubscribeOptions{Name: "window"})
					if err != nil {
						t.Fatal(err)
					}
				} else {
					c = newConsumer(t, r)
				}
				// Fill the slots the helper gave back.
				sendNumbered(t, p, 8, 8+st.first-1)
				checkRun(t, c, st.first, 8+st.first-1, st.first, st.flag)
				if _, err := c.TryPeek(); !errors.Is(err, ErrEmpty) {
					t.Fatalf("after the last: %v", err)
				}
			})
		}
	}
}
