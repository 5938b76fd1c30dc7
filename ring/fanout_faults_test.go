package ring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmring/shmring/internal/ipctest"
)

func init() {
	helpers["fan-hold"] = helperFanHold
}

// helperFanHold subscribes (RING_NAME), receives RING_COUNT messages,
// then holds RING_PEEK of them in place (PeekBatch, or Peek for 1),
// prints "ready" and hangs, to be killed.
func helperFanHold() int {
	r, _ := helperOpen()
	c, err := r.NewSubscriber(&SubscribeOptions{Name: os.Getenv("RING_NAME")})
	if err != nil {
		return helperFail("subscribe", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
	defer cancel()
	buf := make([]byte, r.MaxMessage())
	for i := 0; i < ipctest.GetenvInt("RING_COUNT"); i++ {
		if _, _, err := c.Receive(ctx, buf); err != nil {
			return helperFail("receive", err)
		}
	}
	k, _ := strconv.Atoi(os.Getenv("RING_PEEK"))
	switch {
	case k == 1:
		if _, err := c.Peek(ctx); err != nil {
			return helperFail("peek", err)
		}
	case k > 1:
		if n, err := c.PeekBatch(ctx, make([]Peeked, k)); err != nil || n != k {
			return helperFail(fmt.Sprintf("peek batch: %d of %d", n, k), err)
		}
	}
	return hang()
}

// recvSeq receives one message without waiting and returns its sequence
// number and whether it was flagged redelivered (by PeekBatch of one).
func recvSeq(t *testing.T, c *Consumer) (uint64, bool) {
	t.Helper()
	held := make([]Peeked, 1)
	n, err := c.TryPeekBatch(held)
	if err != nil || n != 1 {
		t.Fatalf("peek: %d, %v\n%s", n, err, fanDump(c.h.r))
	}
	_, seq, err := checkPayload(held[0].Type, held[0].Data, make([]byte, 200))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Release(); err != nil {
		t.Fatalf("release: %v", err)
	}
	return seq, held[0].Redelivered
}

// TestFanoutNameWhileJoining: while one subscriber is taking a durable
// subscription (it holds the line's lock, and is not yet active), another
// that asks for the same name is refused: one live subscriber at a time
// holds a name, and a peer taking a role is live.
func TestFanoutNameWhileJoining(t *testing.T) {
	for _, resume := range []bool{false, true} {
		t.Run(fmt.Sprintf("resume=%v", resume), func(t *testing.T) {
			r := testRing(t, shm, fanOpts(SPMC, PolicyBlock, 8))
			p, err := r.NewProducer()
			if err != nil {
				t.Fatal(err)
			}
			if resume {
				a, err := r.NewSubscriber(&SubscribeOptions{Name: "x"})
				if err != nil {
					t.Fatal(err)
				}
				sendSeq(t, context.Background(), p, 0, 3)
				recvSeq(t, a)
				a.Close()
			}
			parked, unpark := make(chan struct{}), make(chan struct{})
			var first1 atomic.Bool
			stepHook = func(name string) {
				if name == "fanout:recovered" && first1.CompareAndSwap(false, true) {
					close(parked)
					<-unpark
				}
			}
			defer func() { stepHook = nil }()
			type result struct {
				c   *Consumer
				err error
			}
			first := make(chan result, 1)
			go func() {
				c, err := r.NewSubscriber(&SubscribeOptions{Name: "x"})
				first <- result{c, err}
			}()
			<-parked
			second, err := r.NewSubscriber(&SubscribeOptions{Name: "x"})
			close(unpark)
			res := <-first
			if res.err != nil {
				t.Fatal(res.err)
			}
			defer res.c.Close()
			if err == nil {
				defer second.Close()
				named := 0
				for _, ss := range r.Subscribers(nil) {
					if ss.NameHash == NameHash("x") && ss.Live {
						named++
					}
				}
				t.Fatalf("a second subscriber took the name while the first was joining: %d live subscribers hold it\n%s", named, fanDump(r))
			}
			if !errors.Is(err, ErrRoleTaken) {
				t.Fatalf("second subscriber: %v, want ErrRoleTaken", err)
			}
		})
	}
}

// TestFanoutNameRace: subscribers that ask for one name at once, from
// many goroutines: never two live holders of it.
func TestFanoutNameRace(t *testing.T) {
	r := testRing(t, shm, fanOpts(SPMC, PolicyBlock, 8))
	for round := 0; round < 50; round++ {
		var wg sync.WaitGroup
		subs := make([]*Consumer, 4)
		for i := range subs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				subs[i], _ = r.NewSubscriber(&SubscribeOptions{Name: "same"})
			}()
		}
		wg.Wait()
		got := 0
		for _, c := range subs {
			if c != nil {
				got++
			}
		}
		for _, c := range subs {
			if c != nil {
				c.Close()
			}
		}
		if got > 1 {
			t.Fatalf("round %d: %d subscribers hold the name at once", round, got)
		}
	}
}

// TestFanoutAllSubscribersDead: under Block, a producer blocked on a full
// ring whose only subscribers are SIGKILLed goes on sending: the dead
// leave the gate, and nobody is left to wait for.
func TestFanoutAllSubscribersDead(t *testing.T) {
	for _, w := range []WaitStrategy{Adaptive, Block, Spin} {
		t.Run("wait="+w.String(), func(t *testing.T) {
			opts := fanOpts(MPMC, PolicyBlock, 8)
			opts.Wait = Waiting{Strategy: w}
			r := testRing(t, shm, opts)
			subs := []*fanHelper{
				startFanHelper(t, "fan-hold", helperEnv(r, "RING_COUNT=0")...),
				startFanHelper(t, "fan-hold", helperEnv(r, "RING_NAME=d", "RING_COUNT=0")...),
			}
			p, err := r.NewProducer()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
			defer cancel()
			sendSeq(t, ctx, p, 0, 8)
			if err := p.TrySend(1, payload(make([]byte, 200), 0, 8)); !errors.Is(err, ErrFull) {
				t.Fatalf("send to a full ring: %v", err)
			}
			done := make(chan error, 1)
			go func() { done <- p.Send(ctx, 1, payload(make([]byte, 200), 0, 8)) }()
			for _, s := range subs {
				kill(t, s.cmd)
			}
			if err := <-done; err != nil {
				t.Fatalf("blocked send after every subscriber died: %v\n%s%s", err, dump(r), fanDump(r))
			}
			sendSeq(t, ctx, p, 9, 40)
			// The durable subscription resumes, having lost what it missed.
			c, err := r.NewSubscriber(&SubscribeOptions{Name: "d"})
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 200)
			_, _, err = c.TryReceive(buf)
			var le LapError
			if !errors.As(err, &le) || le.Lost != 32 {
				t.Fatalf("resumed: %v, want 32 lost", err)
			}
			for want := uint64(32); want < 40; want++ {
				if seq, _ := recvSeq(t, c); seq != want {
					t.Fatalf("resumed: message %d, want %d", seq, want)
				}
			}
		})
	}
}

// fanHelper is a helper that said "ready".
type fanHelper struct {
	cmd *exec.Cmd
}

func startFanHelper(t *testing.T, name string, env ...string) *fanHelper {
	t.Helper()
	return &fanHelper{cmd: startHelper(t, name, env...)}
}

// TestFanoutHeldKilled: a durable subscriber SIGKILLed while it holds a
// batch in place (or one message) resumes with every held message again,
// flagged, then the rest unflagged; and when the resumed one dies holding
// them again, the next resumes the same way.
func TestFanoutHeldKilled(t *testing.T) {
	for _, k := range []int{1, 3} {
		for _, pol := range []Policy{PolicyBlock, Overwrite} {
			t.Run(fmt.Sprintf("held=%d/policy=%v", k, pol), func(t *testing.T) {
				r := testRing(t, shm, fanOpts(SPMC, pol, 16))
				p, err := r.NewProducer()
				if err != nil {
					t.Fatal(err)
				}
				c, err := r.NewSubscriber(&SubscribeOptions{Name: "held"})
				if err != nil {
					t.Fatal(err)
				}
				c.Close()
				sendSeq(t, context.Background(), p, 0, 10)
				env := helperEnv(r, "RING_NAME=held", "RING_COUNT=2", "RING_PEEK="+strconv.Itoa(k))
				kill(t, startHelper(t, "fan-hold", env...))
				// The second life receives nothing new and holds the same again.
				kill(t, startHelper(t, "fan-hold", helperEnv(r, "RING_NAME=held", "RING_COUNT=0", "RING_PEEK="+strconv.Itoa(k))...))
				c, err = r.NewSubscriber(&SubscribeOptions{Name: "held"})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				for want := uint64(2); want < 10; want++ {
					seq, flagged := recvSeq(t, c)
					if seq != want || flagged != (want < uint64(2+k)) {
						t.Fatalf("message %d flagged %v, want %d flagged %v", seq, flagged, want, want < uint64(2+k))
					}
				}
				if _, err := c.TryPeek(); !errors.Is(err, ErrEmpty) {
					t.Fatalf("after the last: %v", err)
				}
			})
		}
	}
}

// TestFanoutKilledJoining: a subscriber SIGKILLed at each step of taking a
// durable subscription blocks nobody: the producer goes on, and the next
// subscriber of the name resumes where the subscription was.
func TestFanoutKilledJoining(t *testing.T) {
	for _, st := range []string{"take:armed", "take:locked", "fanout:recovered", "take:active"} {
		t.Run(st, func(t *testing.T) {
			r := testRing(t, shm, fanOpts(SPMC, PolicyBlock, 8))
			p, err := r.NewProducer()
			if err != nil {
				t.Fatal(err)
			}
			c, err := r.NewSubscriber(&SubscribeOptions{Name: "j"})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
			defer cancel()
			sendSeq(t, ctx, p, 0, 5)
			recvSeq(t, c)
			c.Close()
			if !parkAndKill(t, "fan-hold", st, helperEnv(r, "RING_NAME=j", "RING_COUNT=0")...) {
				t.Fatalf("the subscriber never reached %s", st)
			}
			sendSeq(t, ctx, p, 5, 9) // the ring holds 1..8
			c, err = r.NewSubscriber(&SubscribeOptions{Name: "j"})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for want := uint64(1); want < 9; want++ {
				if seq, _ := recvSeq(t, c); seq != want {
					t.Fatalf("message %d, want %d\n%s", seq, want, fanDump(r))
				}
			}
		})
	}
}

// TestFanoutOverwriteExact: under Overwrite, with tiny rings and every
// way of receiving, each subscriber accounts for every message: received
// (each intact and in order) plus lost is sent, and Lost agrees with the
// reports.
func TestFanoutOverwriteExact(t *testing.T) {
	for _, slots := range []int{2, 4, 16} {
		// Shared memory only: an Overwrite reader's copy races with the
		// overwrite by design (it is then discarded), which the race
		// detector would report over a heap ring.
		for _, mem := range []memory{shm} {
			t.Run(fmt.Sprintf("slots=%d/memory=%v", slots, mem), func(t *testing.T) {
				r := testRing(t, mem, fanOpts(SPMC, Overwrite, slots))
				const count = 20000
				subs := subscribe(t, r, 4)
				p, err := r.NewProducer()
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
				defer cancel()
				wait := receiveEach(ctx, subs, count, receiveLossy)
				buf := make([]byte, 200)
				for seq := uint64(0); seq < count; seq++ {
					if err := p.TrySend(1, payload(buf, 0, seq)); err != nil {
						t.Fatal(err)
					}
				}
				p.Close()
				for i, err := range wait() {
					if err != nil {
						t.Errorf("subscriber %d: %v", i, err)
					}
				}
			})
		}
	}
}

// receiveLossy receives until io.EOF with the way of receiving that way
// picks, checking order and content, and that received + lost = count.
func receiveLossy(ctx context.Context, c *Consumer, way, count int) error {
	buf := make([]byte, 200)
	scratch := make([]byte, 200)
	msgs := make([]Message, 3)
	for i := range msgs {
		msgs[i].Data = make([]byte, 200)
	}
	held := make([]Peeked, 3)
	next, received, lost := uint64(0), uint64(0), uint64(0)
	check := func(typ int64, m []byte, seq uint64) error {
		_, s, err := checkPayload(typ, m, scratch)
		if err != nil {
			return err
		}
		if s < next || seq != s {
			return fmt.Errorf("got message %d (Seq %d), want at least %d", s, seq, next)
		}
		next = s + 1
		return nil
	}
	for i := 0; ; i++ {
		var err error
		switch w := (way + i) % 4; w {
		case 0:
			var n int
			var typ int64
			if n, typ, err = c.Receive(ctx, buf); err == nil {
				_, s, cerr := checkPayload(typ, buf[:n], scratch)
				if cerr != nil || s < next {
					return fmt.Errorf("receive: %d, %v, want at least %d", s, cerr, next)
				}
				next = s + 1
				received++
			}
		case 1:
			var n int
			if n, err = c.ReceiveBatch(ctx, msgs); err == nil {
				for _, m := range msgs[:n] {
					if cerr := check(m.Type, m.Data, m.Seq); cerr != nil {
						return cerr
					}
					received++
				}
			}
		case 2, 3:
			k := 1
			if w == 3 {
				k = len(held)
			}
			var n int
			if n, err = c.PeekBatch(ctx, held[:k]); err == nil {
				l0 := c.Lost()
				type seen struct {
					s  uint64
					ok bool
				}
				var got [3]seen
				for j, m := range held[:n] {
					_, s, cerr := checkPayload(m.Type, m.Data, scratch)
					got[j] = seen{s, cerr == nil}
				}
				rerr := c.Release()
				if errors.Is(rerr, ErrOverwritten) {
					lost += c.Lost() - l0
					received += uint64(n) - (c.Lost() - l0)
					next = held[n-1].Seq + 1
					continue
				}
				if rerr != nil {
					return rerr
				}
				for j := 0; j < n; j++ {
					if !got[j].ok || got[j].s < next || got[j].s != held[j].Seq {
						return fmt.Errorf("peek: message %d (ok %v, Seq %d), want at least %d", got[j].s, got[j].ok, held[j].Seq, next)
					}
					next = got[j].s + 1
					received++
				}
			}
		}
		var le LapError
		switch {
		case err == nil:
		case errors.As(err, &le):
			lost += le.Lost
		case errors.Is(err, io.EOF):
			if lost != c.Lost() {
				return fmt.Errorf("reports said %d lost, Lost says %d", lost, c.Lost())
			}
			if received+lost != uint64(count) {
				return fmt.Errorf("received %d + lost %d != sent %d", received, lost, count)
			}
			return nil
		default:
			return err
		}
	}
}

// TestFanoutCloseWhileBlocked: Close of a producer blocked on a ring a
// subscriber holds full, or of its Ring, from another goroutine, ends the
// blocked Send with os.ErrClosed.
func TestFanoutCloseWhileBlocked(t *testing.T) {
	for _, w := range []WaitStrategy{Adaptive, Block, Spin} {
		for _, what := range []string{"handle", "ring"} {
			t.Run(fmt.Sprintf("wait=%v/close=%s", w, what), func(t *testing.T) {
				opts := fanOpts(MPMC, PolicyBlock, 4)
				opts.Wait = Waiting{Strategy: w}
				r := testRing(t, shm, opts)
				slow, err := r.NewSubscriber(nil)
				if err != nil {
					t.Fatal(err)
				}
				defer slow.Close()
				q := reopen(t, r, opts.Wait)
				p, err := q.NewProducer()
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
				defer cancel()
				sendSeq(t, ctx, p, 0, 4)
				blocked := make(chan error, 1)
				go func() { blocked <- p.Send(ctx, 1, payload(make([]byte, 200), 0, 4)) }()
				time.Sleep(5 * time.Millisecond) // usually blocked by then; either way Close ends it
				if what == "handle" {
					p.Close()
				} else {
					q.Close()
				}
				if err := <-blocked; !errors.Is(err, os.ErrClosed) {
					t.Fatalf("blocked send after close: %v", err)
				}
			})
		}
	}
}

// TestFanoutSubscriberClosedWhileWaiting: a subscriber waiting on an empty
// ring (each way of receiving) returns os.ErrClosed when it, or its
// Ring, is closed from another goroutine.
func TestFanoutSubscriberClosedWhileWaiting(t *testing.T) {
	for _, w := range []WaitStrategy{Adaptive, Block, Spin} {
		for _, way := range []string{"receive", "batch", "peek", "peekbatch"} {
			for _, what := range []string{"handle", "ring"} {
				t.Run(fmt.Sprintf("wait=%v/%s/close=%s", w, way, what), func(t *testing.T) {
					opts := fanOpts(SPMC, Overwrite, 4)
					opts.Wait = Waiting{Strategy: w}
					r := testRing(t, shm, opts)
					o := reopen(t, r, opts.Wait)
					c, err := o.NewSubscriber(nil)
					if err != nil {
						t.Fatal(err)
					}
					p, err := r.NewProducer()
					if err != nil {
						t.Fatal(err)
					}
					defer p.Close()
					ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
					defer cancel()
					errs := make(chan error, 1)
					go func() {
						var err error
						switch way {
						case "receive":
							_, _, err = c.Receive(ctx, make([]byte, 200))
						case "batch":
							_, err = c.ReceiveBatch(ctx, []Message{{Data: make([]byte, 200)}})
						case "peek":
							_, err = c.Peek(ctx)
						default:
							_, err = c.PeekBatch(ctx, make([]Peeked, 3))
						}
						errs <- err
					}()
					time.Sleep(5 * time.Millisecond)
					if what == "handle" {
						c.Close()
					} else {
						o.Close()
					}
					if err := <-errs; !errors.Is(err, os.ErrClosed) {
						t.Fatalf("after close: %v", err)
					}
				})
			}
		}
	}
}

// TestFanoutMaxSubscribers: with every subscriber line held, one more is
// ErrRoleTaken; with one closed (anonymous), it takes that line.
func TestFanoutMaxSubscribers(t *testing.T) {
	opts := fanOpts(SPMC, PolicyBlock, 8)
	opts.MaxConsumers = 3
	r := testRing(t, shm, opts)
	var subs []*Consumer
	for i := 0; i < 3; i++ {
		c, err := r.NewSubscriber(&SubscribeOptions{Name: fmt.Sprint("s", i)})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, c)
	}
	if _, err := r.NewSubscriber(nil); !errors.Is(err, ErrRoleTaken) {
		t.Fatalf("one subscriber too many: %v", err)
	}
	if _, err := r.NewSubscriber(&SubscribeOptions{Name: "s9"}); !errors.Is(err, ErrRoleTaken) {
		t.Fatalf("one named subscriber too many: %v", err)
	}
	subs[1].Close()
	c, err := r.NewSubscriber(nil)
	if err != nil {
		t.Fatalf("with a durable subscription closed: %v", err)
	}
	c.Close()
	subs[0].Close()
	subs[2].Close()
}

// TestFanoutHostileLines: random values scribbled on a subscriber line's
// fan-out words, the producer line's joins word and the slots' sequence
// words never make a call panic or outlive its context; the subscriber's
// errors are ErrCorrupt, a lap, or eviction.
func TestFanoutHostileLines(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, pol := range []Policy{PolicyBlock, Overwrite} {
		for round := 0; round < 40; round++ {
			t.Run(fmt.Sprintf("policy=%v/round=%d", pol, round), func(t *testing.T) {
				opts := fanOpts(SPMC, pol, 8)
				if pol == PolicyBlock {
					opts.EvictAfter = 20 * time.Millisecond
				}
				r := testRing(t, heap, opts)
				p, _ := r.NewProducer()
				c, err := r.NewSubscriber(&SubscribeOptions{Name: "h"})
				if err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 200)
				sendSeq(t, context.Background(), p, 0, 5)
				e := c.fan.line
				vals := []uint64{0, 1, 7, 8, 9, 1 << 40, 1<<63 + 3, ^uint64(0), rng.Uint64()}
				pick := func() uint64 { return vals[rng.Intn(len(vals))] }
				switch rng.Intn(6) {
				case 0:
					e.cursor.Store(pick())
				case 1:
					e.name.Store(pick())
				case 2:
					e.lost.Store(pick())
				case 3:
					e.evict.Store(pick())
				case 4:
					r.prod.joins.Store(pick())
				case 5:
					r.descs.At(uint64(rng.Intn(8))).seq.Store(pick())
				}
				e.peek.Store(pick() & 15)
				e.peekEnd.Store(pick())
				for i := 0; i < 30; i++ {
					ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
					perr := p.Send(ctx, 1, payload(buf, 0, uint64(5+i)))
					cancel()
					if perr != nil && !errors.Is(perr, context.DeadlineExceeded) && !errors.Is(perr, ErrCorrupt) {
						t.Fatalf("send: %v", perr)
					}
					ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
					var cerr error
					if i%2 == 0 {
						_, _, cerr = c.Receive(ctx, buf)
					} else if _, cerr = c.PeekBatch(ctx, make([]Peeked, 3)); cerr == nil {
						cerr = c.Release()
					}
					cancel()
					if cerr != nil && !errors.Is(cerr, context.DeadlineExceeded) && !errors.Is(cerr, ErrCorrupt) &&
						!errors.Is(cerr, ErrLapped) && !errors.Is(cerr, ErrEvicted) && !errors.Is(cerr, ErrOverwritten) {
						t.Fatalf("receive: %v", cerr)
					}
				}
				r.Subscribers(nil)
				r.Stats()
				// Closed, then resumed with the words as they are.
				c.Close()
				e.cursor.Store(pick())
				if c, err := r.NewSubscriber(&SubscribeOptions{Name: "h"}); err == nil {
					ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
					c.Receive(ctx, buf)
					cancel()
					c.Close()
				} else if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("resume: %v", err)
				}
			})
		}
	}
}

// TestFanoutJoinWhileBlocked: a subscriber that joins while the producer
// is blocked on a full ring receives everything published after it joined.
func TestFanoutJoinWhileBlocked(t *testing.T) {
	for _, w := range []WaitStrategy{Adaptive, Block} {
		t.Run("wait="+w.String(), func(t *testing.T) {
			opts := fanOpts(SPMC, PolicyBlock, 8)
			opts.Wait = Waiting{Strategy: w}
			r := testRing(t, shm, opts)
			slow, _ := r.NewSubscriber(nil)
			p, _ := r.NewProducer()
			ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
			defer cancel()
			sendSeq(t, ctx, p, 0, 8)
			sent := make(chan error, 1)
			go func() {
				buf := make([]byte, 200)
				for seq := uint64(8); seq < 200; seq++ {
					if err := p.Send(ctx, 1, payload(buf, 0, seq)); err != nil {
						sent <- err
						return
					}
				}
				sent <- p.Close()
			}()
			time.Sleep(5 * time.Millisecond)
			j, err := r.NewSubscriber(nil)
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan error, 1)
			go func() {
				buf := make([]byte, 200)
				scratch := make([]byte, 200)
				next := uint64(0)
				for {
					n, typ, err := j.Receive(ctx, buf)
					if errors.Is(err, io.EOF) {
						if next != 200 {
							err = fmt.Errorf("ended at %d", next)
						} else {
							err = nil
						}
						got <- err
						return
					}
					if err != nil {
						got <- err
						return
					}
					_, seq, err := checkPayload(typ, buf[:n], scratch)
					if err != nil || next != 0 && seq != next || seq < 8 {
						got <- fmt.Errorf("message %d, %v, want %d", seq, err, next)
						return
					}
					next = seq + 1
				}
			}()
			buf := make([]byte, 200)
			for {
				if _, _, err := slow.Receive(ctx, buf); err != nil {
					if !errors.Is(err, io.EOF) {
						t.Fatal(err)
					}
					break
				}
			}
			if err := <-sent; err != nil {
				t.Fatal(err)
			}
			if err := <-got; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestFanoutHostileWant: a value no producer could have written, scribbled
// on a blocked producer's want word (its line's cursor), does not keep it
// asleep once the subscribers have made room.
func TestFanoutHostileWant(t *testing.T) {
	opts := fanOpts(SPMC, PolicyBlock, 8)
	opts.Wait = Waiting{Strategy: Block}
	r := testRing(t, shm, opts)
	c, _ := r.NewSubscriber(nil)
	p, _ := r.NewProducer()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sendSeq(t, ctx, p, 0, 8)
	done := make(chan error, 1)
	go func() { done <- p.Send(ctx, 1, payload(make([]byte, 200), 0, 8)) }()
	for r.sleepers[producerSide].masks[0].Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	p.h.line.cursor.Store(1 << 60)
	for i := 0; i < 8; i++ {
		recvSeq(t, c)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("blocked send, with room made after a scribble on its want word: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("blocked send still asleep 2s after the subscriber made room (want word %#x)\n%s", p.h.line.cursor.Load(), dump(r))
	}
}
