package ring

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shmring/shmring/internal/atomicx"
	"github.com/shmring/shmring/internal/ipctest"
)

// A helper process started with SHMRING_PARK=step stops at that step of a
// takeover or recovery (the first time it reaches it), says so on stdout
// and waits to be killed: the parent kills it there, with SIGKILL, and
// checks what the next process makes of the state it left.
func init() {
	if park := os.Getenv("SHMRING_PARK"); park != "" && os.Getenv(ipctest.HelperEnv) != "" {
		stepHook = func(name string) {
			if name == park {
				fmt.Println("parked " + name)
				os.Stdout.Sync()
				select {}
			}
		}
	}
	helpers["take-producer"] = func() int { return helperTake(producerSide) }
	helpers["take-consumer"] = func() int { return helperTake(consumerSide) }
	helpers["half-publish"] = helperHalfPublish
}

// helperTake takes a role of the ring, says "ready" and hangs: with
// SHMRING_PARK it stops before, inside the takeover.
func helperTake(s side) int {
	r, _ := helperOpen()
	var err error
	if s == producerSide {
		_, err = r.NewProducer()
	} else {
		_, err = r.NewConsumer()
	}
	if err != nil {
		return helperFail("take", err)
	}
	return hang()
}

// helperHalfPublish is a single producer that sends RING_COUNT messages,
// then publishes one more slot and stops before storing the tail: the state
// its kill at that instruction leaves.
func helperHalfPublish() int {
	r, _ := helperOpen()
	p, err := r.NewProducer()
	if err != nil {
		return helperFail("new producer", err)
	}
	buf := make([]byte, r.MaxMessage())
	n := uint64(ipctest.GetenvInt("RING_COUNT"))
	for seq := uint64(0); seq < n; seq++ {
		if err := p.Send(context.Background(), 1, payload(buf, 0, seq)); err != nil {
			return helperFail("send", err)
		}
	}
	s := p.d.(*singleSender)
	pos := s.tail
	r.writeSlot(pos, 1, payload(buf, 0, n))
	atomicx.StoreRelease(&r.descs.At(pos&r.mask).seq, pos+1)
	return hang()
}

// parkAndKill starts helper name parked at step, waits until it is there
// and SIGKILLs it. It reports false if the helper never reached the step
// (it finished, or failed, without passing there).
func parkAndKill(t *testing.T, name, step string, env ...string) bool {
	t.Helper()
	return parkAndKillSaying(t, name, step, nil, nil, env...)
}

// parkAndKillSaying is parkAndKill for a helper that says more on stdout
// before it parks: each such line, but for "parked" and "ready", goes to
// said, as it comes; an error from said kills the helper and fails the
// test. Without said, any such line fails the test. If set, parked runs
// once the helper is parked, before the kill (it is killed whatever parked
// does, a t.Fatal too).
func parkAndKillSaying(t *testing.T, name, step string, said func(line string) error, parked func(), env ...string) bool {
	t.Helper()
	cmd := ipctest.Command(t, name, append(env, "SHMRING_PARK="+step)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(out)
	line, _ := rd.ReadString('\n')
	for said != nil && strings.HasSuffix(line, "\n") && line != "parked "+step+"\n" && line != "ready\n" {
		if err := said(line); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("%s: %v", name, err)
		}
		line, _ = rd.ReadString('\n')
	}
	if parked != nil && line == "parked "+step+"\n" {
		func() {
			defer func() { cmd.Process.Kill(); cmd.Wait() }()
			parked()
		}()
		return true
	}
	cmd.Process.Kill()
	cmd.Wait()
	switch line {
	case "parked " + step + "\n":
		return true
	case "ready\n":
		return false
	}
	t.Fatalf("%s parked at %s: said %q", name, step, line)
	return false
}

var takeSteps = []string{"take:armed", "take:locked", "take:marked"}

// takeover is a scenario of TestTakeoverKilled: setup makes a ring with a
// dead holder's line for the taker helper to take (and nothing else that
// would clean it up first), and check verifies, with the ring as the kills
// left it, that the next holder finishes the work.
type takeover struct {
	name  string
	taker string
	steps []string
	setup func(t *testing.T) *Ring
	check func(t *testing.T, r *Ring)
}

// TestTakeoverKilled is the takeover of a dead role holder's line with the
// taker killed at each step: for each step on a fresh ring, and once with
// a taker killed at every step in turn, each finding the line as the one
// before left it. Whatever a kill leaves, the next taker finishes, and
// nothing the dead holder had in hand is lost, duplicated unflagged, or
// left to block the ring.
func TestTakeoverKilled(t *testing.T) {
	for _, sc := range takeovers() {
		t.Run(sc.name, func(t *testing.T) {
			for _, st := range sc.steps {
				t.Run("kill-at="+st, func(t *testing.T) {
					r := sc.setup(t)
					if !parkAndKill(t, sc.taker, st, helperEnv(r)...) {
						t.Fatalf("%s never reached step %s", sc.taker, st)
					}
					sc.check(t, r)
				})
			}
			t.Run("kill-at=each-in-turn", func(t *testing.T) {
				r := sc.setup(t)
				for _, st := range sc.steps {
					parkAndKill(t, sc.taker, st, helperEnv(r)...) // later steps may be done already
				}
				sc.check(t, r)
			})
		})
	}
}

func takeovers() []takeover {
	buf := make([]byte, 64)
	scratch := make([]byte, 64)
	wantSeq := func(t *testing.T, typ int64, m []byte, seq uint64) {
		t.Helper()
		if _, got, err := checkPayload(typ, m, scratch); err != nil || got != seq {
			t.Fatalf("got seq %d, want %d (%v)", got, seq, err)
		}
	}
	return []takeover{{
		// One consumer line, so that the taker takes the dead one's: it
		// holds message 0 in place.
		name: "mpmc/consumer-holding-a-message", taker: "take-consumer",
		steps: append(takeSteps, "adopt:serving", "take:active"),
		setup: func(t *testing.T) *Ring {
			r := testRing(t, shm, &Options{Mode: MPMC, Slots: 4, MaxMessage: 64, MaxProducers: 2, MaxConsumers: 1})
			p, err := r.NewProducer()
			if err != nil {
				t.Fatal(err)
			}
			for seq := uint64(0); seq < 4; seq++ {
				if err := p.TrySend(1, payload(buf, 0, seq)); err != nil {
					t.Fatal(err)
				}
			}
			kill(t, startHelper(t, "hang-consumer", helperEnv(r, "RING_COUNT=0", "RING_PEEK=1")...))
			return r
		},
		check: func(t *testing.T, r *Ring) {
			p2, err := r.NewProducer()
			if err != nil {
				t.Fatal(err)
			}
			c, err := r.NewConsumer()
			if err != nil {
				t.Fatal(err)
			}
			// Message 0 comes again, flagged, then the rest, and the ring
			// laps: no slot stays held by the dead.
			for seq := uint64(0); seq < 12; seq++ {
				ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
				m, err := c.Peek(ctx)
				cancel()
				if err != nil {
					t.Fatalf("seq %d: %v (stats %+v)", seq, err, r.Stats())
				}
				wantSeq(t, m.Type, m.Data, seq)
				if m.Redelivered != (seq == 0) {
					t.Fatalf("seq %d: redelivered %v", seq, m.Redelivered)
				}
				if err := c.Release(); err != nil {
					t.Fatal(err)
				}
				if seq+4 < 12 {
					if err := p2.Send(context.Background(), 1, payload(buf, 0, seq+4)); err != nil {
						t.Fatalf("send %d after the takeover: %v", seq+4, err)
					}
				}
			}
			if st := r.Stats(); st.Redelivered != 1 {
				t.Fatalf("stats %+v, want one redelivery", st)
			}
		},
	}, {
		// The dead producer claimed position 0 and never wrote it; 7
		// messages wait behind the hole.
		name: "mpsc/producer-with-a-claimed-slot", taker: "take-producer",
		steps: append(takeSteps, "recover:start", "recover:skipped", "recover:cleared", "take:active"),
		setup: func(t *testing.T) *Ring {
			r := testRing(t, shm, &Options{Mode: MPSC, Slots: 16, MaxMessage: 64, MaxProducers: 2})
			p, err := r.NewProducer()
			if err != nil {
				t.Fatal(err)
			}
			dead := startHelper(t, "hang-producer", helperEnv(r, "RING_ID=1", "RING_COUNT=0", "RING_RESERVE=1")...)
			for seq := uint64(0); seq < 7; seq++ {
				if err := p.TrySend(1, payload(buf, 0, seq)); err != nil {
					t.Fatal(err)
				}
			}
			kill(t, dead)
			return r
		},
		check: func(t *testing.T, r *Ring) {
			c, err := r.NewConsumer()
			if err != nil {
				t.Fatal(err)
			}
			for seq := uint64(0); seq < 7; seq++ {
				ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
				n, typ, err := c.Receive(ctx, buf)
				cancel()
				if err != nil {
					t.Fatalf("message %d: %v (stats %+v)", seq, err, r.Stats())
				}
				wantSeq(t, typ, buf[:n], seq)
			}
			if st := r.Stats(); st.Recovered != 1 {
				t.Fatalf("stats %+v, want one recovered slot", st)
			}
		},
	}, {
		// The dead consumer was looking at message 0 in place.
		name: "spsc/consumer-looking-in-place", taker: "take-consumer",
		steps: append(takeSteps, "take:active"),
		setup: func(t *testing.T) *Ring {
			r := testRing(t, shm, &Options{Slots: 4, MaxMessage: 64})
			p, err := r.NewProducer()
			if err != nil {
				t.Fatal(err)
			}
			for seq := uint64(0); seq < 4; seq++ {
				if err := p.TrySend(1, payload(buf, 0, seq)); err != nil {
					t.Fatal(err)
				}
			}
			kill(t, startHelper(t, "hang-consumer", helperEnv(r, "RING_COUNT=0", "RING_PEEK=1")...))
			return r
		},
		check: func(t *testing.T, r *Ring) {
			c, err := r.NewConsumer()
			if err != nil {
				t.Fatal(err)
			}
			for seq := uint64(0); seq < 4; seq++ {
				m, err := c.TryPeek()
				if err != nil {
					t.Fatalf("seq %d: %v", seq, err)
				}
				wantSeq(t, m.Type, m.Data, seq)
				if m.Redelivered != (seq == 0) {
					t.Fatalf("seq %d: redelivered %v", seq, m.Redelivered)
				}
				c.Release()
			}
			if _, err := c.TryPeek(); !errors.Is(err, ErrEmpty) {
				t.Fatalf("a message delivered twice: %v", err)
			}
			if st := r.Stats(); st.Redelivered != 1 {
				t.Fatalf("stats %+v, want one redelivery", st)
			}
		},
	}, {
		// The dead single producer published its third message and died
		// before storing the tail; a consumer took that message.
		name: "spmc/producer-killed-between-publish-and-tail", taker: "take-producer",
		steps: append(takeSteps, "recover:tail", "take:active"),
		setup: func(t *testing.T) *Ring {
			r := testRing(t, shm, &Options{Mode: SPMC, Slots: 4, MaxMessage: 64, MaxConsumers: 2})
			c, err := r.NewConsumer()
			if err != nil {
				t.Fatal(err)
			}
			kill(t, startHelper(t, "half-publish", helperEnv(r, "RING_COUNT=2")...))
			for seq := uint64(0); seq < 3; seq++ {
				n, typ, err := c.TryReceive(buf)
				if err != nil {
					t.Fatalf("message %d of the dead producer: %v", seq, err)
				}
				wantSeq(t, typ, buf[:n], seq)
			}
			c.Close()
			return r
		},
		check: func(t *testing.T, r *Ring) {
			c, err := r.NewConsumer()
			if err != nil {
				t.Fatal(err)
			}
			p, err := r.NewProducer()
			if err != nil {
				t.Fatal(err)
			}
			// The ring is empty: a full lap of sends must go through.
			for seq := uint64(3); seq < 3+4; seq++ {
				if err := p.TrySend(1, payload(buf, 0, seq)); err != nil {
					t.Fatalf("send %d into an empty ring after the takeover: %v (stats %+v)", seq, err, r.Stats())
				}
			}
			for seq := uint64(3); seq < 3+4; seq++ {
				n, typ, err := c.TryReceive(buf)
				if err != nil {
					t.Fatal(err)
				}
				wantSeq(t, typ, buf[:n], seq)
			}
		},
	}}
}

// TestReapKilled kills a consumer while it recovers a dead producer's
// claim, at each step, and a consumer while it serves a dead consumer's
// claim: the recovery finishes with the next one.
func TestReapKilled(t *testing.T) {
	t.Run("producer-claim", func(t *testing.T) {
		for _, st := range []string{"reap:marked", "recover:start", "recover:skipped"} {
			t.Run(st, func(t *testing.T) {
				r := testRing(t, shm, &Options{Mode: MPMC, Slots: 16, MaxMessage: 64, MaxProducers: 2, MaxConsumers: 2})
				p, err := r.NewProducer()
				if err != nil {
					t.Fatal(err)
				}
				dead := startHelper(t, "hang-producer", helperEnv(r, "RING_ID=1", "RING_COUNT=0", "RING_RESERVE=1")...)
				buf := make([]byte, 64)
				for seq := uint64(0); seq < 5; seq++ {
					if err := p.TrySend(1, payload(buf, 0, seq)); err != nil {
						t.Fatal(err)
					}
				}
				kill(t, dead)
				// A consumer that takes its role reaps the dead producer's
				// line: killed there.
				if !parkAndKill(t, "take-consumer", st, helperEnv(r)...) {
					t.Fatalf("the consumer never reached %s", st)
				}
				c, err := r.NewConsumer()
				if err != nil {
					t.Fatal(err)
				}
				for seq := uint64(0); seq < 5; seq++ {
					ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
					n, typ, err := c.Receive(ctx, buf)
					cancel()
					if err != nil {
						t.Fatalf("message %d: %v (stats %+v)", seq, err, r.Stats())
					}
					if _, got, err := checkPayload(typ, buf[:n], make([]byte, 64)); err != nil || got != seq {
						t.Fatalf("got seq %d, want %d (%v)", got, seq, err)
					}
				}
				if s := r.Stats(); s.Recovered != 1 {
					t.Fatalf("stats %+v, want one recovered slot", s)
				}
			})
		}
	})
	t.Run("consumer-claim", func(t *testing.T) {
		r := testRing(t, shm, &Options{Mode: MPMC, Slots: 8, MaxMessage: 64, MaxProducers: 1, MaxConsumers: 3})
		p, err := r.NewProducer()
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		for seq := uint64(0); seq < 4; seq++ {
			if err := p.TrySend(1, payload(buf, 0, seq)); err != nil {
				t.Fatal(err)
			}
		}
		// The dead one holds message 0 in place; a second consumer that
		// takes a role of its own finds it and serves it: killed there.
		kill(t, startHelper(t, "hang-consumer", helperEnv(r, "RING_COUNT=0", "RING_PEEK=1")...))
		if !parkAndKill(t, "take-consumer", "adopt:locked", helperEnv(r)...) {
			t.Fatal("the consumer never took over the dead one's claim")
		}
		c, err := r.NewConsumer()
		if err != nil {
			t.Fatal(err)
		}
		got := map[uint64]bool{}
		flagged := 0
		for len(got) < 4 {
			ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
			m, err := c.Peek(ctx)
			cancel()
			if err != nil {
				t.Fatalf("after %d messages: %v (stats %+v)", len(got), err, r.Stats())
			}
			_, seq, err := checkPayload(m.Type, m.Data, make([]byte, 64))
			if err != nil || got[seq] {
				t.Fatalf("seq %d twice or bad: %v", seq, err)
			}
			got[seq] = true
			if m.Redelivered {
				flagged++
				if seq != 0 {
					t.Fatalf("seq %d flagged", seq)
				}
			}
			c.Release()
		}
		if flagged != 1 {
			t.Fatalf("%d flagged, want 1", flagged)
		}
	})
}

// TestTakingIsNotDying: a consumer that looks at its peers while a
// producer is in the middle of taking its role (parked at each step, alive)
// never calls that producer dead; it goes on waiting. Once the taker is
// killed and nothing live is left, ErrPeerDead comes.
func TestTakingIsNotDying(t *testing.T) {
	for _, st := range []string{"take:locked", "take:marked", "recover:start", "recover:cleared", "take:active"} {
		t.Run(st, func(t *testing.T) {
			r := testRing(t, shm, &Options{Mode: MPSC, Slots: 8, MaxMessage: 64, MaxProducers: 1})
			// The consumer attaches first; then a producer takes the only
			// producer line, claims a slot and dies there, and the taker
			// takes its line over.
			c, err := r.NewConsumer()
			if err != nil {
				t.Fatal(err)
			}
			kill(t, startHelper(t, "hang-producer", helperEnv(r, "RING_ID=0", "RING_COUNT=0", "RING_RESERVE=1")...))
			cmd := ipctest.Command(t, "take-producer", append(helperEnv(r), "SHMRING_PARK="+st)...)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			if line, _ := bufio.NewReader(out).ReadString('\n'); line != "parked "+st+"\n" {
				t.Fatalf("the taker did not stop at %s: %q", st, line)
			}
			for i := 0; i < 5; i++ {
				// Make the consumer look at its peers again: a unit that no
				// publisher posted, as a death posts. (The first round has
				// the real death's.)
				go func() {
					time.Sleep(20 * time.Millisecond)
					r.sems.Post(c.h.wakeNum())
				}()
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				_, _, err := c.Receive(ctx, make([]byte, 64))
				cancel()
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Receive while a producer takes its role (at %s): %v, want to go on waiting", st, err)
				}
			}
			cmd.Process.Kill()
			cmd.Wait()
			ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
			defer cancel()
			if _, _, err := c.Receive(ctx, make([]byte, 64)); !errors.Is(err, ErrPeerDead) {
				t.Fatalf("Receive after the taker died: %v, want ErrPeerDead", err)
			}
		})
	}
}

// TestRoleTakeNeverDeath starts producers one after another, each taking
// its role, sending, and closing, while a consumer waits: a role being
// taken must never end the consumer's wait with ErrPeerDead; each message
// arrives, and between producers the consumer sees io.EOF or waits.
func TestRoleTakeNeverDeath(t *testing.T) {
	rounds := 150
	if testing.Short() {
		rounds = 30
	}
	for _, mode := range []Mode{MPSC, MPMC} {
		t.Run("mode="+mode.String(), func(t *testing.T) {
			opts := &Options{Mode: mode, Slots: 8, MaxMessage: 64, MaxProducers: 2}
			if mode.multiConsumer() {
				opts.MaxConsumers = 2
			}
			r := testRing(t, shm, opts)
			c, err := r.NewConsumer()
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 64)
			for round := 0; round < rounds; round++ {
				cmd := ipctest.Command(t, "producer", helperEnv(r, "RING_ID=0", "RING_COUNT=1")...)
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				for got := false; !got; {
					ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
					_, _, err := c.Receive(ctx, buf)
					cancel()
					switch {
					case err == nil:
						got = true
					case errors.Is(err, io.EOF):
						// The previous producer closed and this one does
						// not hold its role yet: wait for it.
						time.Sleep(100 * time.Microsecond)
					default:
						t.Fatalf("round %d: %v", round, err)
					}
				}
				if err := cmd.Wait(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func init() {
	helpers["batch-close"] = helperBatchClose
	helpers["peek-hold"] = helperPeekHold
}

// helperBatchClose takes a consumer role, receives a batch whose first
// buffer fits the first message and whose others are too small, so that it
// holds the rest of its claim, and closes: a hand-back. With SHMRING_PARK
// it stops, and is killed, inside the close.
func helperBatchClose() int {
	r, _ := helperOpen()
	c, err := r.NewConsumer()
	if err != nil {
		return helperFail("new consumer", err)
	}
	msgs := []Message{{Data: make([]byte, r.MaxMessage())}}
	for i := 0; i < 7; i++ {
		msgs = append(msgs, Message{Data: make([]byte, 1)})
	}
	if n, err := c.TryReceiveBatch(msgs); n != 1 || err != nil {
		return helperFail("batch", fmt.Errorf("%d messages, %v", n, err))
	}
	if err := c.Close(); err != nil {
		return helperFail("close", err)
	}
	return hang()
}

// helperPeekHold takes a consumer role and looks at one message in place:
// with a claim left by another consumer to serve, it holds that message's
// slot. With SHMRING_PARK it stops, and is killed, while taking it.
func helperPeekHold() int {
	r, _ := helperOpen()
	c, err := r.NewConsumer()
	if err != nil {
		return helperFail("new consumer", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
	defer cancel()
	if _, err := c.Peek(ctx); err != nil {
		return helperFail("peek", err)
	}
	return hang()
}

// TestHandBackKilled: a consumer that closes holding messages (a
// hand-back) is killed at each step of its close, and a consumer that
// serves another's hand-back is killed while it takes a message's slot to
// look at it in place. Every message of the hand-back is delivered, the
// one looked at flagged, and the ring laps: no slot stays held.
func TestHandBackKilled(t *testing.T) {
	for _, tc := range []struct {
		helper, step string
		flagged      bool // the message at position 1 comes back flagged
	}{
		{"batch-close", "handback:start", false},
		{"batch-close", "release:closed", false},
		{"batch-close", "release:unlocked", false},
		// Killed before the slot said held: it never handed the message
		// out, which comes back unflagged; killed after, it may have.
		{"peek-hold", "hold:owned", false},
		{"peek-hold", "hold:held", true},
	} {
		t.Run(tc.helper+"/"+tc.step, func(t *testing.T) {
			r := testRing(t, shm, &Options{Mode: MPMC, Slots: 16, MaxMessage: 64, MaxProducers: 1, MaxConsumers: 4})
			p, err := r.NewProducer()
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 64)
			for seq := uint64(0); seq < 8; seq++ {
				if err := p.TrySend(1, payload(buf, 0, seq)); err != nil {
					t.Fatal(err)
				}
			}
			// A consumer waiting since before the kill.
			waiting, err := r.NewConsumer()
			if err != nil {
				t.Fatal(err)
			}
			first := uint64(1)
			if tc.helper == "peek-hold" {
				// The hand-back to serve: positions 1..7 of a consumer that
				// closed holding them.
				kill(t, startHelper(t, "batch-close", helperEnv(r)...))
			} else {
				first = 1
			}
			if !parkAndKill(t, tc.helper, tc.step, helperEnv(r)...) {
				t.Fatalf("%s never reached %s", tc.helper, tc.step)
			}
			got := map[uint64]bool{}
			flagged := map[uint64]bool{}
			for len(got) < int(8-first) {
				ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
				m, err := waiting.Peek(ctx)
				cancel()
				if err != nil {
					t.Fatalf("after %v: %v\n%s", got, err, dump(r))
				}
				_, seq, err := checkPayload(m.Type, m.Data, make([]byte, 64))
				if err != nil || got[seq] || seq < first {
					t.Fatalf("seq %d: twice, unexpected or bad (%v)", seq, err)
				}
				got[seq], flagged[seq] = true, m.Redelivered
				waiting.Release()
			}
			if flagged[1] != tc.flagged {
				t.Errorf("the message the dead consumer was taking came back flagged %v, want %v", flagged[1], tc.flagged)
			}
			for seq, f := range flagged {
				if f && seq != 1 {
					t.Errorf("seq %d flagged", seq)
				}
			}
			// The ring laps: every slot is free again.
			for i := 0; i < 16; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
				err := p.Send(ctx, 1, payload(buf, 0, uint64(8+i)))
				cancel()
				if err != nil {
					t.Fatalf("send %d after the hand-back: %v\n%s", i, err, dump(r))
				}
				if _, _, err := waiting.TryReceive(buf); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestTailAfterHeld: a single producer that takes over finds the real tail
// past slots that consumers hold in place (seqHeld) or have finished.
func TestTailAfterHeld(t *testing.T) {
	r := testRing(t, heap, &Options{Mode: SPMC, Slots: 8, MaxMessage: 64, MaxConsumers: 2})
	// Positions 0..4 published; 1 held in place, 2 consumed, 3 skipped.
	for pos := uint64(0); pos < 5; pos++ {
		r.descs.At(pos).seq.Store(pos + 1)
	}
	r.descs.At(1).seq.Store(2 | seqHeld)
	r.descs.At(2).seq.Store(2 + 8)
	r.descs.At(3).seq.Store(4 | seqSkip)
	tail, err := r.tailAfter(0)
	if err != nil || tail != 5 {
		t.Fatalf("tailAfter: %d %v, want 5", tail, err)
	}
}

// TestInterruptScribbled: a process that may write the ring clears the
// sleep masks under a sleeping handle; cancelling its context, and
// closing its ring, still end the call.
func TestInterruptScribbled(t *testing.T) {
	for _, w := range []WaitStrategy{Block, Adaptive} {
		for _, s := range []side{consumerSide, producerSide} {
			t.Run(fmt.Sprintf("wait=%v/%v", w, s), func(t *testing.T) {
				forMemories(t, &Options{Slots: 4, MaxMessage: 16, Wait: Waiting{Strategy: w}}, func(t *testing.T, r *Ring) {
					p, c := pair(t, r)
					if s == producerSide {
						for p.TrySend(1, nil) == nil {
						}
					}
					for _, how := range []string{"cancel", "close"} {
						ctx, cancel := context.WithCancel(context.Background())
						done := make(chan error, 1)
						before := r.Stats()
						go func() {
							if s == producerSide {
								done <- p.Send(ctx, 1, nil)
							} else {
								_, _, err := c.Receive(ctx, make([]byte, 16))
								done <- err
							}
						}()
						blockedUntil(t, r, s, before)
						r.sleepers[s].masks[0].Store(0) // the scribbler
						if how == "cancel" {
							cancel()
						} else {
							go r.Close()
						}
						select {
						case err := <-done:
							if err == nil {
								t.Fatalf("%s: the call succeeded", how)
							}
						case <-time.After(ipctest.Deadline):
							t.Fatalf("%s did not end the call once the masks were cleared", how)
						}
						cancel()
					}
				})
			})
		}
	}
}

// TestRedeliveredBatch: a message looked at in place by a consumer that
// died comes back flagged in a batch too, and is counted.
func TestRedeliveredBatch(t *testing.T) {
	for _, mode := range []Mode{SPSC, MPMC} {
		t.Run("mode="+mode.String(), func(t *testing.T) {
			r := testRing(t, shm, &Options{Mode: mode, Slots: 4, MaxMessage: 64})
			p, err := r.NewProducer()
			if err != nil {
				t.Fatal(err)
			}
			if err := p.TrySend(1, []byte("seen")); err != nil {
				t.Fatal(err)
			}
			if err := p.TrySend(2, []byte("not seen")); err != nil {
				t.Fatal(err)
			}
			kill(t, startHelper(t, "hang-consumer", helperEnv(r, "RING_COUNT=0", "RING_PEEK=1")...))
			c, err := r.NewConsumer()
			if err != nil {
				t.Fatal(err)
			}
			msgs := []Message{{Data: make([]byte, 64)}, {Data: make([]byte, 64)}}
			got := 0
			for got < 2 {
				ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
				n, err := c.ReceiveBatch(ctx, msgs[got:])
				cancel()
				if err != nil {
					t.Fatal(err)
				}
				got += n
			}
			if !msgs[0].Redelivered || msgs[1].Redelivered || string(msgs[0].Data) != "seen" {
				t.Fatalf("batch: %q %v, %q %v", msgs[0].Data, msgs[0].Redelivered, msgs[1].Data, msgs[1].Redelivered)
			}
			if st := r.Stats(); st.Redelivered != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}
