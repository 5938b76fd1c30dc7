package ring

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmring/shmring/internal/ipctest"
)

func init() {
	helpers["fan-subscriber"] = helperFanSubscriber
	helpers["fan-producer"] = helperFanProducer
}

// helperFanSubscriber subscribes (RING_NAME, RING_FROM=oldest), says
// "ready", and receives producer 0's messages until io.EOF, checking each
// payload and that each comes in order: a LapError moves the expected
// sequence on by what it reports, and so does an ErrOverwritten Release
// (one message); under RING_STRICT=1 neither may happen. RING_WAY picks
// the calls (copy, batch, peek, peekbatch, mixed); RING_SLOW=n sleeps a
// millisecond every n messages. With RING_ECHO=1 it prints "got SEQ R"
// for each message before finishing it (R: 1 if flagged redelivered). It
// ends with "done RECEIVED LOST" (LOST as Consumer.Lost says), or
// "evicted RECEIVED" when its call returns ErrEvicted. With RING_SPAN=1 it
// receives messages made by fanSpanMsg instead, with receiveSpansLossy,
// and ends with "done RECEIVED LOST_SLOTS LOST_MESSAGES".
func helperFanSubscriber() int {
	r, _ := helperOpen()
	defer r.Close()
	opts := &SubscribeOptions{Name: os.Getenv("RING_NAME")}
	if os.Getenv("RING_FROM") == "oldest" {
		opts.From = Oldest
	}
	c, err := r.NewSubscriber(opts)
	if err != nil {
		return helperFail("subscribe", err)
	}
	if os.Getenv("SHMRING_PARK") == "" {
		fmt.Println("ready")
		os.Stdout.Sync()
	}
	strict := os.Getenv("RING_STRICT") == "1"
	echo := os.Getenv("RING_ECHO") == "1"
	slow, _ := strconv.Atoi(os.Getenv("RING_SLOW"))
	way := os.Getenv("RING_WAY")
	if os.Getenv("RING_SPAN") == "1" {
		ways := map[string]int{"copy": 0, "batch": 1, "peek": 2, "peekbatch": 3, "mixed": -1}
		acc, err := receiveSpansLossy(context.Background(), c, ways[way], slow, strict)
		if err != nil {
			return helperFail("receive", err)
		}
		fmt.Printf("done %d %d %d\n", acc.received, acc.lostSlots, acc.lostMsgs)
		return 0
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	ctx := context.Background()
	buf := make([]byte, r.MaxMessage())
	scratch := make([]byte, r.MaxMessage())
	msgs := make([]Message, 8)
	for i := range msgs {
		msgs[i].Data = make([]byte, r.MaxMessage())
	}
	held := make([]Peeked, 8)
	expected, received, lostSeen := uint64(0), uint64(0), uint64(0)
	started := false
	deliver := func(typ int64, m []byte, redelivered bool) error {
		_, seq, err := checkPayload(typ, m, scratch)
		if err != nil {
			return fmt.Errorf("torn or bad message after %d: %w", received, err)
		}
		if !started && os.Getenv("RING_FROM") != "" {
			expected, started = seq, true
		}
		started = true
		if redelivered && seq+1 == expected {
			expected-- // delivered again, flagged: we saw it before
		}
		if seq != expected {
			return fmt.Errorf("got message %d, want %d (received %d, lost %d)", seq, expected, received, lostSeen)
		}
		expected++
		received++
		if echo {
			r := 0
			if redelivered {
				r = 1
			}
			fmt.Fprintf(out, "got %d %d\n", seq, r)
			out.Flush()
		}
		if slow > 0 && received%uint64(slow) == 0 {
			time.Sleep(time.Millisecond)
		}
		return nil
	}
	for i := 0; ; i++ {
		w := way
		if w == "mixed" {
			w = []string{"copy", "batch", "peek", "peekbatch"}[i%4]
		}
		var err error
		switch w {
		case "batch":
			var n int
			if n, err = c.ReceiveBatch(ctx, msgs); err == nil {
				for _, m := range msgs[:n] {
					if err = deliver(m.Type, m.Data, m.Redelivered); err != nil {
						return helperFail("batch", err)
					}
				}
			}
		case "peek":
			var m Peeked
			if m, err = c.Peek(ctx); err == nil {
				derr := deliver(m.Type, m.Data, m.Redelivered)
				rerr := c.Release()
				if errors.Is(rerr, ErrOverwritten) && !strict {
					// Lost after all: what we read may be torn.
					if derr == nil {
						received--
					}
					expected, lostSeen = m.Seq+1, lostSeen+1
					continue
				}
				if derr != nil {
					return helperFail("peek", derr)
				}
				err = rerr
			}
		case "peekbatch":
			var n int
			if n, err = c.PeekBatch(ctx, held); err == nil {
				r0, l0 := received, c.Lost()
				var derr error
				for _, m := range held[:n] {
					if derr = deliver(m.Type, m.Data, m.Redelivered); derr != nil {
						break
					}
				}
				rerr := c.Release()
				if errors.Is(rerr, ErrOverwritten) && !strict {
					k := c.Lost() - l0
					expected, received, lostSeen = held[n-1].Seq+1, r0+uint64(n)-k, lostSeen+k
					continue
				}
				if derr != nil {
					return helperFail("peekbatch", derr)
				}
				err = rerr
			}
		default:
			var n int
			var typ int64
			if n, typ, err = c.Receive(ctx, buf); err == nil {
				if err = deliver(typ, buf[:n], false); err != nil {
					return helperFail("receive", err)
				}
			}
		}
		var le LapError
		switch {
		case err == nil:
		case errors.As(err, &le) && !strict:
			expected += le.Lost
			lostSeen += le.Lost
		case errors.Is(err, io.EOF):
			if lostSeen != c.Lost() && !strict {
				return helperFail("lost", fmt.Errorf("reports said %d lost, Lost says %d", lostSeen, c.Lost()))
			}
			fmt.Fprintf(out, "done %d %d\n", received, c.Lost())
			return 0
		case errors.Is(err, ErrEvicted):
			fmt.Fprintf(out, "evicted %d\n", received)
			return 0
		default:
			return helperFail("receive", err)
		}
	}
}

// helperFanProducer sends RING_COUNT messages as producer 0 from sequence
// RING_START, says "sent" and hangs (to be killed), or with SHMRING_PARK
// stops at that step.
func helperFanProducer() int {
	r, _ := helperOpen()
	p, err := r.NewProducer()
	if err != nil {
		return helperFail("new producer", err)
	}
	start := uint64(ipctest.GetenvInt("RING_START"))
	buf := make([]byte, r.MaxMessage())
	for seq := start; seq < start+uint64(ipctest.GetenvInt("RING_COUNT")); seq++ {
		if err := p.Send(context.Background(), 1, payload(buf, 0, seq)); err != nil {
			return helperFail("send", err)
		}
	}
	return hang()
}

// fanSub is a running subscriber helper and what it printed.
type fanSub struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{}
	out   []string
}

// startFanSub starts a subscriber helper and waits until it has joined.
func startFanSub(t *testing.T, r *Ring, env ...string) *fanSub {
	t.Helper()
	cmd := ipctest.Command(t, "fan-subscriber", helperEnv(r, env...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &fanSub{cmd: cmd, lines: make(chan string, 1), done: make(chan struct{})}
	t.Cleanup(func() { cmd.Process.Kill(); <-s.done; cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || sc.Text() != "ready" {
		t.Fatalf("subscriber helper said %q", sc.Text())
	}
	go func() {
		defer close(s.done)
		for sc.Scan() {
			s.out = append(s.out, sc.Text())
		}
	}()
	return s
}

// wait waits for the helper to exit and returns its last line.
func (s *fanSub) wait(t *testing.T) string {
	t.Helper()
	<-s.done
	if err := s.cmd.Wait(); err != nil {
		t.Fatalf("subscriber helper: %v (said %q)", err, s.last())
	}
	return s.last()
}

func (s *fanSub) last() string {
	if len(s.out) == 0 {
		return ""
	}
	return s.out[len(s.out)-1]
}

// sendSeq sends producer 0's messages [from, to).
func sendSeq(t *testing.T, ctx context.Context, p *Producer, from, to uint64) {
	t.Helper()
	buf := make([]byte, p.h.r.MaxMessage())
	for seq := from; seq < to; seq++ {
		if err := p.Send(ctx, 1, payload(buf, 0, seq)); err != nil {
			t.Fatalf("send %d: %v\n%s%s", seq, err, dump(p.h.r), fanDump(p.h.r))
		}
	}
}

// TestFanoutProcesses: 1, 4 and 8 subscriber processes of a Block ring
// each receive every message, in order, exactly once, with every way of
// receiving; with one producer and with two (one of them in a process).
func TestFanoutProcesses(t *testing.T) {
	count := 20000
	if testing.Short() {
		count = 3000
	}
	for _, tc := range []struct {
		subs int
		mode Mode
		wait WaitStrategy
	}{{1, SPMC, Adaptive}, {4, SPMC, Adaptive}, {8, SPMC, Adaptive}, {4, MPMC, Block}, {4, SPMC, Spin}} {
		t.Run(fmt.Sprintf("subscribers=%d/mode=%v/wait=%v", tc.subs, tc.mode, tc.wait), func(t *testing.T) {
			opts := fanOpts(tc.mode, PolicyBlock, 64)
			opts.Wait = Waiting{Strategy: tc.wait}
			r := testRing(t, shm, opts)
			ways := []string{"copy", "batch", "peek", "peekbatch", "mixed"}
			var subs []*fanSub
			for i := 0; i < tc.subs; i++ {
				subs = append(subs, startFanSub(t, r, "RING_STRICT=1", "RING_WAY="+ways[i%len(ways)]))
			}
			p, err := r.NewProducer()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
			defer cancel()
			sendSeq(t, ctx, p, 0, uint64(count))
			p.Close()
			for i, s := range subs {
				if got, want := s.wait(t), fmt.Sprintf("done %d 0", count); got != want {
					t.Errorf("subscriber %d: %q, want %q", i, got, want)
				}
			}
		})
	}
}

// TestFanoutChurn: under Block, a durable subscriber SIGKILLed mid-stream
// and started again by name resumes where it was (what it held in place
// comes again, flagged), and subscribers that join and leave mid-stream do
// not disturb one that stays, which receives everything exactly once.
func TestFanoutChurn(t *testing.T) {
	const count = 6000
	r := testRing(t, shm, fanOpts(SPMC, PolicyBlock, 8192))
	stay := startFanSub(t, r, "RING_STRICT=1", "RING_WAY=mixed")
	dur := startFanSub(t, r, "RING_NAME=durable", "RING_WAY=peek", "RING_ECHO=1", "RING_SLOW=5")
	p, err := r.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
	defer cancel()
	sendSeq(t, ctx, p, 0, 1000)
	visitor := startFanSub(t, r, "RING_WAY=copy", "RING_FROM=newest-known")
	sendSeq(t, ctx, p, 1000, 2000)
	visitor.cmd.Process.Signal(syscall.SIGTERM) // leaves by dying mid-stream
	// Kill the durable one somewhere in its stream (it is slow), then
	// start it again by name.
	for deadline := time.Now().Add(ipctest.Deadline); ; {
		if ss := r.Subscribers(nil); len(ss) > 0 {
			var pos uint64
			for _, s := range ss {
				if s.NameHash == NameHash("durable") {
					pos = s.Position
				}
			}
			if pos > 200 || time.Now().After(deadline) {
				break
			}
		}
		time.Sleep(time.Millisecond)
	}
	dur.cmd.Process.Kill()
	<-dur.done
	dur.cmd.Wait()
	first := dur.out
	again := startFanSub(t, r, "RING_NAME=durable", "RING_WAY=peek", "RING_ECHO=1", "RING_FROM=resume")
	sendSeq(t, ctx, p, 2000, count)
	late := startFanSub(t, r, "RING_WAY=batch", "RING_FROM=oldest")
	p.Close()
	if got := stay.wait(t); got != fmt.Sprintf("done %d 0", count) {
		t.Errorf("the subscriber that stayed: %q", got)
	}
	last := again.wait(t)
	if !strings.HasPrefix(last, "done ") {
		t.Fatalf("resumed subscriber: %q", last)
	}
	late.wait(t)
	// The durable subscription's two lives, together: every message, in
	// order, once, but for redeliveries flagged.
	next := uint64(0)
	for _, line := range append(first, again.out...) {
		var seq uint64
		var flag int
		if _, err := fmt.Sscanf(line, "got %d %d", &seq, &flag); err != nil {
			continue // a summary, or a line the kill cut
		}
		switch {
		case seq == next:
			next++
		case seq+1 == next && flag == 1:
		default:
			t.Fatalf("durable subscription: got %d (flag %d), want %d", seq, flag, next)
		}
	}
	if next != count {
		t.Fatalf("durable subscription received up to %d of %d", next, count)
	}
}

// TestFanoutPeekKilled: a durable subscriber SIGKILLed while it holds a
// message in place gets it again, flagged, when it resumes by name.
func TestFanoutPeekKilled(t *testing.T) {
	r := testRing(t, shm, fanOpts(SPMC, PolicyBlock, 16))
	p, err := r.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	// The subscription exists before the messages.
	c, err := r.NewSubscriber(&SubscribeOptions{Name: "held"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	sendSeq(t, context.Background(), p, 0, 5)
	if !parkAndKill(t, "fan-subscriber", "fanout:held", helperEnv(r, "RING_NAME=held", "RING_WAY=peek")...) {
		t.Fatal("the subscriber never held a message")
	}
	c, err = r.NewSubscriber(&SubscribeOptions{Name: "held"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.TryPeek()
	if err != nil {
		t.Fatal(err)
	}
	if _, seq, _ := checkPayload(m.Type, m.Data, make([]byte, 200)); seq != 0 || !m.Redelivered {
		t.Fatalf("resumed: message %d, redelivered %v", seq, m.Redelivered)
	}
	c.Release()
	if st := r.Stats(); st.Redelivered != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestFanoutProducerKilled: a producer SIGKILLed between its claim and its
// commit, among many, leaves a hole that every subscriber skips.
func TestFanoutProducerKilled(t *testing.T) {
	r := testRing(t, shm, fanOpts(MPMC, PolicyBlock, 16))
	subs := subscribe(t, r, 3)
	p, err := r.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
	defer cancel()
	sendSeq(t, ctx, p, 0, 3)
	if !parkAndKill(t, "fan-producer", "fanout:claimed", helperEnv(r, "RING_START=3", "RING_COUNT=1")...) {
		t.Fatal("the producer never claimed")
	}
	sendSeq(t, ctx, p, 3, 10)
	p.Close()
	buf := make([]byte, 200)
	for i, c := range subs {
		for want := uint64(0); want < 10; want++ {
			n, typ, err := c.Receive(ctx, buf)
			if err != nil {
				t.Fatalf("subscriber %d, message %d: %v", i, want, err)
			}
			if _, seq, err := checkPayload(typ, buf[:n], make([]byte, 200)); err != nil || seq != want {
				t.Fatalf("subscriber %d: message %d, %v; want %d", i, seq, err, want)
			}
		}
		if _, _, err := c.Receive(ctx, buf); !errors.Is(err, ErrPeerDead) && !errors.Is(err, io.EOF) {
			t.Fatalf("subscriber %d at the end: %v", i, err)
		}
	}
	if st := r.Stats(); st.Recovered != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestFanoutEvict: a SIGSTOPped subscriber of a Block ring is evicted once
// it has held the ring full for EvictAfter; the others receive everything;
// continued, its next call says it was evicted.
func TestFanoutEvict(t *testing.T) {
	const count = 3000
	for _, w := range []WaitStrategy{Adaptive, Block} {
		t.Run("wait="+w.String(), func(t *testing.T) {
			opts := fanOpts(SPMC, PolicyBlock, 32)
			opts.EvictAfter = 100 * time.Millisecond
			opts.Wait = Waiting{Strategy: w}
			r := testRing(t, shm, opts)
			a := startFanSub(t, r, "RING_STRICT=1", "RING_WAY=mixed")
			stuck := startFanSub(t, r, "RING_WAY=copy")
			b := startFanSub(t, r, "RING_STRICT=1", "RING_WAY=batch")
			if err := stuck.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			p, err := r.NewProducer()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
			defer cancel()
			sendSeq(t, ctx, p, 0, count)
			var evicted bool
			for _, ss := range r.Subscribers(nil) {
				evicted = evicted || ss.Evicted
			}
			if !evicted {
				t.Errorf("no subscriber evicted: %+v", r.Subscribers(nil))
			}
			p.Close()
			for i, s := range []*fanSub{a, b} {
				if got := s.wait(t); got != fmt.Sprintf("done %d 0", count) {
					t.Errorf("subscriber %d: %q", i, got)
				}
			}
			stuck.cmd.Process.Signal(syscall.SIGCONT)
			if got := stuck.wait(t); !strings.HasPrefix(got, "evicted ") {
				t.Errorf("the stopped subscriber: %q", got)
			}
		})
	}
}

// TestFanoutOverwriteProcesses: under Overwrite, with a deliberately slow
// subscriber process, each subscriber accounts for every message sent:
// received plus lost, the lost exactly as its lap reports and overwritten
// releases said, and no message that fails its checksum.
func TestFanoutOverwriteProcesses(t *testing.T) {
	const count = 20000
	r := testRing(t, shm, fanOpts(SPMC, Overwrite, 64))
	subs := []*fanSub{
		startFanSub(t, r, "RING_WAY=copy"),
		startFanSub(t, r, "RING_WAY=peek", "RING_SLOW=16"),
		startFanSub(t, r, "RING_WAY=batch", "RING_SLOW=64"),
		startFanSub(t, r, "RING_WAY=mixed", "RING_SLOW=8"),
	}
	p, err := r.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 200)
	for seq := uint64(0); seq < count; seq++ {
		if err := p.TrySend(1, payload(buf, 0, seq)); err != nil {
			t.Fatalf("send %d: %v", seq, err) // Overwrite never says full
		}
		if seq%256 == 0 {
			time.Sleep(100 * time.Microsecond)
		}
	}
	p.Close()
	lostSome := false
	for i, s := range subs {
		var got, lost uint64
		if _, err := fmt.Sscanf(s.wait(t), "done %d %d", &got, &lost); err != nil {
			t.Fatalf("subscriber %d: %q", i, s.last())
		}
		if got+lost != count {
			t.Errorf("subscriber %d: received %d + lost %d != sent %d", i, got, lost, count)
		}
		lostSome = lostSome || lost > 0
	}
	if !lostSome {
		t.Log("no subscriber was lapped this time")
	}
}

// fanDump adds the subscribers' words to dump's.
func fanDump(r *Ring) string {
	var b []byte
	first, count := r.lines(consumerSide)
	for i := first; i < first+count; i++ {
		e := r.roles.At(uint64(i))
		b = fmt.Appendf(b, "subscriber line %d: gen %d cursor %d name %#x lost %d evict %d\n", i-first, e.state.Load()>>8,
			e.cursor.Load(), e.name.Load(), e.lost.Load(), e.evict.Load())
	}
	return string(b)
}
