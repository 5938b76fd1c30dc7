package ring

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shmring/shmring/internal/ipctest"
)

// startHelper starts a helper and waits for its "ready" line.
func startHelper(t *testing.T, name string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := ipctest.Command(t, name, env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("helper %s: %q, %v", name, line, err)
	}
	return cmd
}

// kill SIGKILLs a helper and reaps it.
func kill(t *testing.T, cmd *exec.Cmd) time.Time {
	t.Helper()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	return time.Now()
}

// TestDeadProducer: a consumer whose producers were all SIGKILLed receives
// every committed message, then ErrPeerDead, well within a second.
func TestDeadProducer(t *testing.T) {
	for _, tc := range []struct {
		mode      Mode
		producers int
		wait      WaitStrategy
	}{{SPSC, 1, Adaptive}, {SPSC, 1, Spin}, {MPSC, 3, Block}, {MPMC, 2, Adaptive}} {
		t.Run("mode="+tc.mode.String()+"/wait="+tc.wait.String(), func(t *testing.T) {
			r := testRing(t, shm, &Options{Mode: tc.mode, Slots: 64, MaxMessage: 128, Wait: Waiting{Strategy: tc.wait}})
			const sent = 20
			var cmds []*exec.Cmd
			for i := 0; i < tc.producers; i++ {
				cmds = append(cmds, startHelper(t, "hang-producer", helperEnv(r, "RING_ID="+strconv.Itoa(i), "RING_COUNT="+strconv.Itoa(sent))...))
			}
			c, err := r.NewConsumer()
			if err != nil {
				t.Fatal(err)
			}
			// Block the consumer on the empty ring first, then kill.
			buf := make([]byte, 128)
			got := 0
			for got < sent*tc.producers {
				if _, _, err := c.Receive(context.Background(), buf); err != nil {
					t.Fatalf("after %d messages: %v", got, err)
				}
				got++
			}
			errc := make(chan error, 1)
			var done time.Time
			go func() {
				_, _, err := c.Receive(context.Background(), buf)
				done = time.Now()
				errc <- err
			}()
			time.Sleep(50 * time.Millisecond)
			var killed time.Time
			for _, cmd := range cmds {
				killed = kill(t, cmd)
			}
			select {
			case err := <-errc:
				if !errors.Is(err, ErrPeerDead) {
					t.Fatalf("blocked receive: %v, want ErrPeerDead", err)
				}
				t.Logf("dead producers detected %v after the last kill", done.Sub(killed).Round(time.Millisecond))
			case <-time.After(ipctest.Deadline):
				t.Fatal("blocked receive did not return after its producers died")
			}
		})
	}
}

// TestDeadProducerDrain: messages committed before the producer died are
// all delivered before ErrPeerDead.
func TestDeadProducerDrain(t *testing.T) {
	r := testRing(t, shm, &Options{Slots: 64, MaxMessage: 128})
	const sent = 50
	cmd := startHelper(t, "hang-producer", helperEnv(r, "RING_ID=0", "RING_COUNT="+strconv.Itoa(sent))...)
	kill(t, cmd)
	c, err := r.NewConsumer()
	if err != nil {
		t.Fatal(err)
	}
	buf, scratch := make([]byte, 128), make([]byte, 128)
	for i := 0; i < sent; i++ {
		n, typ, err := c.Receive(context.Background(), buf)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if _, seq, err := checkPayload(typ, buf[:n], scratch); err != nil || seq != uint64(i) {
			t.Fatalf("message %d: seq %d, %v", i, seq, err)
		}
	}
	if _, _, err := c.Receive(context.Background(), buf); !errors.Is(err, ErrPeerDead) {
		t.Fatalf("drained: %v, want ErrPeerDead", err)
	}
}

// TestDeadConsumer: a producer blocked on a full ring whose consumers all
// died gets ErrPeerDead.
func TestDeadConsumer(t *testing.T) {
	for _, tc := range []struct {
		mode      Mode
		consumers int
	}{{SPSC, 1}, {SPMC, 2}, {MPMC, 3}} {
		t.Run("mode="+tc.mode.String(), func(t *testing.T) {
			r := testRing(t, shm, &Options{Mode: tc.mode, Slots: 8, MaxMessage: 64})
			var cmds []*exec.Cmd
			for i := 0; i < tc.consumers; i++ {
				cmds = append(cmds, startHelper(t, "hang-consumer", helperEnv(r, "RING_COUNT=0")...))
			}
			p, err := r.NewProducer()
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 8; i++ {
				if err := p.TrySend(1, []byte("x")); err != nil {
					t.Fatal(err)
				}
			}
			errc := make(chan error, 1)
			go func() { errc <- p.Send(context.Background(), 1, []byte("y")) }()
			time.Sleep(50 * time.Millisecond)
			var killed time.Time
			for _, cmd := range cmds {
				killed = kill(t, cmd)
			}
			select {
			case err := <-errc:
				if !errors.Is(err, ErrPeerDead) {
					t.Fatalf("blocked send: %v, want ErrPeerDead", err)
				}
				t.Logf("dead consumers detected %v after the last kill", time.Since(killed).Round(time.Millisecond))
			case <-time.After(ipctest.Deadline):
				t.Fatal("blocked send did not return after its consumers died")
			}
		})
	}
}

// TestCleanCloseIsEOF: a producer that closes is io.EOF to the consumer,
// never ErrPeerDead, even when its process then exits.
func TestCleanCloseIsEOF(t *testing.T) {
	r := testRing(t, shm, &Options{Mode: MPSC, Slots: 64, MaxMessage: 200})
	runProcesses(t, r, 2, 1, 1, 100)
	c, err := r.NewConsumer()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Receive(context.Background(), make([]byte, 200)); !errors.Is(err, io.EOF) {
		t.Fatalf("after producers closed and exited: %v, want io.EOF", err)
	}
}

// TestKilledMidWrite: a producer SIGKILLed after claiming a slot and before
// committing it does not stall the ring; the slot is skipped and no other
// message is lost or duplicated, for a consumer that waits in Receive and
// for one that only polls with TryReceive.
func TestKilledMidWrite(t *testing.T) {
	for _, mode := range []Mode{MPSC, MPMC} {
		for _, poll := range []bool{false, true} {
			t.Run(fmt.Sprintf("mode=%v/poll=%v", mode, poll), func(t *testing.T) {
				killedMidWrite(t, mode, poll)
			})
		}
	}
}

// TestPollRecovers: with no live producer to find it, a consumer that only
// polls with TryReceive recovers a slot whose producer died mid-write, and
// receives what was committed after it.
func TestPollRecovers(t *testing.T) {
	for _, mode := range []Mode{MPSC, MPMC} {
		t.Run("mode="+mode.String(), func(t *testing.T) {
			r := testRing(t, shm, &Options{Mode: mode, Slots: 8, MaxMessage: 128})
			c, err := r.NewConsumer()
			if err != nil {
				t.Fatal(err)
			}
			// The helper sends 3 messages, then claims a 4th slot and dies.
			cmd := startHelper(t, "hang-producer", helperEnv(r, "RING_ID=1", "RING_COUNT=3", "RING_RESERVE=1")...)
			for r.Stats().Sent < 4 {
				time.Sleep(time.Millisecond)
			}
			kill(t, cmd)
			buf := make([]byte, 128)
			for got := 0; got < 3; got++ {
				if _, _, err := receiveOrPoll(c, buf, true); err != nil {
					t.Fatalf("after %d messages: %v", got, err)
				}
			}
			deadline := time.Now().Add(ipctest.Deadline)
			for r.Stats().Recovered == 0 {
				if _, _, err := c.TryReceive(buf); !errors.Is(err, ErrEmpty) {
					t.Fatalf("TryReceive: %v, want ErrEmpty", err)
				}
				if time.Now().After(deadline) {
					t.Fatalf("polling never recovered the slot: %+v", r.Stats())
				}
				time.Sleep(50 * time.Microsecond)
			}
		})
	}
}

// receiveOrPoll is Receive, or for poll a loop of TryReceive until the
// deadline.
func receiveOrPoll(c *Consumer, buf []byte, poll bool) (int, int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
	defer cancel()
	if !poll {
		return c.Receive(ctx, buf)
	}
	for {
		n, typ, err := c.TryReceive(buf)
		if !errors.Is(err, ErrEmpty) || ctx.Err() != nil {
			return n, typ, err
		}
		time.Sleep(50 * time.Microsecond)
	}
}

func killedMidWrite(t *testing.T, mode Mode, poll bool) {
	r := testRing(t, shm, &Options{Mode: mode, Slots: 8, MaxMessage: 128})
	// The helper sends 3 messages, then claims a 4th slot and dies.
	cmd := startHelper(t, "hang-producer", helperEnv(r, "RING_ID=1", "RING_COUNT=3", "RING_RESERVE=1")...)
	p, err := r.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.NewConsumer()
	if err != nil {
		t.Fatal(err)
	}
	const ours = 40
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 128)
		for seq := uint64(0); seq < ours; seq++ {
			if err := p.Send(context.Background(), 1, payload(buf, 0, seq)); err != nil {
				t.Errorf("send %d: %v", seq, err)
				return
			}
		}
	}()
	// The ring fills behind the stuck slot; then the helper dies.
	for r.Stats().Sent < 8 {
		time.Sleep(time.Millisecond)
	}
	kill(t, cmd)
	buf, scratch := make([]byte, 128), make([]byte, 128)
	next := map[uint64]uint64{}
	for got := 0; got < ours+3; got++ {
		n, typ, err := receiveOrPoll(c, buf, poll)
		if err != nil {
			t.Fatalf("after %d messages: %v (stats %+v)", got, err, r.Stats())
		}
		id, seq, err := checkPayload(typ, buf[:n], scratch)
		if err != nil {
			t.Fatal(err)
		}
		if seq != next[id] {
			t.Fatalf("producer %d: seq %d, want %d", id, seq, next[id])
		}
		next[id]++
	}
	wg.Wait()
	if _, _, err := c.TryReceive(buf); !errors.Is(err, ErrEmpty) {
		t.Fatalf("extra message: %v", err)
	}
	if st := r.Stats(); st.Recovered != 1 {
		t.Fatalf("recovered %d slots, want 1 (%+v)", st.Recovered, st)
	}
}

// TestKilledConsumerRedelivered: a consumer killed while looking at a
// message in place does not stall the ring, and the message is delivered
// again, marked: by the consumer that takes over the role (single) or by a
// live consumer that finds it (multi).
func TestKilledConsumerRedelivered(t *testing.T) {
	for _, mode := range []Mode{SPSC, MPSC, SPMC, MPMC} {
		t.Run("mode="+mode.String(), func(t *testing.T) {
			r := testRing(t, shm, &Options{Mode: mode, Slots: 8, MaxMessage: 128})
			p, err := r.NewProducer()
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 128)
			for seq := uint64(0); seq < 8; seq++ {
				if err := p.TrySend(1, payload(buf, 0, seq)); err != nil {
					t.Fatal(err)
				}
			}
			// The helper receives messages 0 and 1, peeks 2 and dies.
			cmd := startHelper(t, "hang-consumer", helperEnv(r, "RING_COUNT=2", "RING_PEEK=1")...)
			var c *Consumer
			if mode.multiConsumer() {
				// A live consumer, attached before the death, finds the message.
				if c, err = r.NewConsumer(); err != nil {
					t.Fatal(err)
				}
				kill(t, cmd)
			} else {
				kill(t, cmd)
				// The restarted consumer takes over the dead one's role.
				if c, err = r.NewConsumer(); err != nil {
					t.Fatal(err)
				}
			}
			scratch := make([]byte, 128)
			seen := map[uint64]bool{}
			redelivered := 0
			for len(seen) < 6 {
				ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
				m, err := c.Peek(ctx)
				cancel()
				if err != nil {
					t.Fatalf("after %d messages: %v (stats %+v)", len(seen), err, r.Stats())
				}
				_, seq, err := checkPayload(m.Type, m.Data, scratch)
				if err != nil {
					t.Fatal(err)
				}
				if seen[seq] || seq < 2 {
					t.Fatalf("seq %d delivered twice", seq)
				}
				seen[seq] = true
				if m.Redelivered {
					redelivered++
					if seq != 2 {
						t.Fatalf("seq %d marked redelivered", seq)
					}
				}
				if err := c.Release(); err != nil {
					t.Fatal(err)
				}
			}
			if redelivered != 1 || r.Stats().Redelivered != 1 {
				t.Fatalf("redelivered %d, stats %+v", redelivered, r.Stats())
			}
			// The ring goes on.
			if err := p.TrySend(1, payload(buf, 0, 8)); err != nil {
				t.Fatal(err)
			}
			if n, _, err := c.TryReceive(buf); err != nil || binary.LittleEndian.Uint64(buf[8:n]) != 8 {
				t.Fatalf("after recovery: %v", err)
			}
		})
	}
}

// TestRestartResumes: a consumer killed and restarted goes on with the next
// message it had not consumed.
func TestRestartResumes(t *testing.T) {
	r := testRing(t, shm, &Options{Slots: 32, MaxMessage: 128})
	p, err := r.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 128)
	for seq := uint64(0); seq < 20; seq++ {
		if err := p.TrySend(1, payload(buf, 0, seq)); err != nil {
			t.Fatal(err)
		}
	}
	for round, upTo := 0, 0; round < 3; round++ {
		upTo += 5
		cmd := startHelper(t, "hang-consumer", helperEnv(r, "RING_COUNT=5")...)
		kill(t, cmd)
		if st := r.Stats(); st.Received != uint64(upTo) {
			t.Fatalf("round %d: received %d, want %d", round, st.Received, upTo)
		}
	}
	c, err := r.NewConsumer()
	if err != nil {
		t.Fatal(err)
	}
	if n, _, err := c.TryReceive(buf); err != nil || binary.LittleEndian.Uint64(buf[8:n]) != 15 {
		t.Fatalf("restarted consumer: %v, want seq 15", err)
	}
}

// TestRemoveUnderUse: removing a ring wakes blocked producers and consumers
// in other processes with ErrRemoved, and later opens fail with not-exist.
func TestRemoveUnderUse(t *testing.T) {
	for _, w := range []WaitStrategy{Block, Adaptive, Spin} {
		t.Run("wait="+w.String(), func(t *testing.T) {
			key := freshKey(t)
			r, err := Create(key, &Options{Mode: MPMC, Slots: 4, MaxMessage: 64, Wait: Waiting{Strategy: w}})
			if err != nil {
				t.Fatal(err)
			}
			removeIDs(t, r.SegmentID(), r.SemaphoreID())
			t.Cleanup(func() { RemoveKey(key) })
			// Fill the ring so that a producer blocks.
			p, err := r.NewProducer()
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 4; i++ {
				p.TrySend(1, []byte("x"))
			}
			prod := startHelper(t, "blocked", helperEnv(r, "RING_ROLE=producer")...)
			// A second ring, empty, for a blocked consumer.
			key2 := freshKey(t)
			r2, err := Create(key2, &Options{Wait: Waiting{Strategy: w}})
			if err != nil {
				t.Fatal(err)
			}
			removeIDs(t, r2.SegmentID(), r2.SemaphoreID())
			t.Cleanup(func() { RemoveKey(key2) })
			keepAlive, _ := r2.NewProducer()
			_ = keepAlive
			cons := startHelper(t, "blocked", helperEnv(r2, "RING_ROLE=consumer")...)
			time.Sleep(50 * time.Millisecond)
			if err := r.Remove(); err != nil {
				t.Fatal(err)
			}
			if err := r2.Remove(); err != nil {
				t.Fatal(err)
			}
			for _, cmd := range []*exec.Cmd{prod, cons} {
				err := cmd.Wait()
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() != exitRemoved {
					t.Errorf("blocked helper: %v, want exit status %d (ErrRemoved)", err, exitRemoved)
				}
			}
			if _, err := Open(key, nil); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("open after remove: %v, want fs.ErrNotExist", err)
			}
		})
	}
}

// TestPermissions: a ring made with the default mode cannot be opened by
// another user; one made with a wider mode can.
func TestPermissions(t *testing.T) {
	for _, tc := range []struct {
		perm fs.FileMode
		want int
	}{{0, exitPermission}, {0o600, exitPermission}, {0o666, 0}} {
		t.Run("perm="+tc.perm.String(), func(t *testing.T) {
			key := freshKey(t)
			r, err := Create(key, &Options{Perm: tc.perm, Exclusive: true})
			if err != nil {
				t.Fatal(err)
			}
			removeIDs(t, r.SegmentID(), r.SemaphoreID())
			t.Cleanup(func() { r.Close() })
			err = ipctest.CommandAs(t, "open", "RING_KEY="+strconv.Itoa(int(key))).Run()
			code := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.want {
				t.Fatalf("child as uid %d: exit status %d, want %d", ipctest.OtherUID, code, tc.want)
			}
		})
	}
}

// TestSignalStorm: producers and consumers blocked while every thread of
// the process is hammered with signals still return the right results.
func TestSignalStorm(t *testing.T) {
	r := testRing(t, shm, &Options{Slots: 4, MaxMessage: 64, Wait: Waiting{Strategy: Block}})
	p, err := r.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.NewConsumer()
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	storm := make(chan int)
	go func() { storm <- ipctest.SignalStorm(ctx, os.Getpid()) }()
	const n = 2000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 64)
		for seq := uint64(0); seq < n; seq++ {
			if err := p.Send(context.Background(), 1, payload(buf, 0, seq)); err != nil {
				t.Errorf("send %d: %v", seq, err)
				return
			}
			if seq%100 == 0 {
				time.Sleep(2 * time.Millisecond) // let the consumer block
			}
		}
	}()
	buf, scratch := make([]byte, 64), make([]byte, 64)
	for seq := uint64(0); seq < n; seq++ {
		k, typ, err := c.Receive(context.Background(), buf)
		if err != nil {
			t.Fatalf("receive %d: %v", seq, err)
		}
		if _, got, err := checkPayload(typ, buf[:k], scratch); err != nil || got != seq {
			t.Fatalf("receive %d: seq %d, %v", seq, got, err)
		}
		if seq%100 == 50 {
			time.Sleep(2 * time.Millisecond) // let the producer block on full
		}
	}
	wg.Wait()
	stop()
	st := r.Stats()
	t.Logf("%d signals sent; %d consumer and %d producer sleeps", <-storm, st.ConsumerSleeps, st.ProducerSleeps)
}

// TestSoak runs 4 producer and 4 consumer processes over one MPMC ring with
// random message sizes and types, killing and restarting consumers at
// random; at the end every message sent is accounted for: received, or
// received again and counted as a redelivery; never lost. SHMRING_SOAK sets
// its length (default 5s).
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test skipped under -short")
	}
	length := 5 * time.Second
	if s := os.Getenv("SHMRING_SOAK"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("SHMRING_SOAK: %v", err)
		}
		length = d
	}
	const producers, consumers = 4, 4
	r := testRing(t, shm, &Options{Mode: MPMC, Slots: 64, MaxMessage: 300})
	until := time.Now().Add(length)
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))

	var mu sync.Mutex
	var records []byte
	type child struct {
		cmd  *exec.Cmd
		done chan error
	}
	launch := func() child {
		cmd := ipctest.Command(t, "soak-consumer", helperEnv(r)...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ch := child{cmd: cmd, done: make(chan error, 1)}
		go func() {
			data, _ := io.ReadAll(out)
			mu.Lock()
			records = append(records, data[:len(data)/soakRecord*soakRecord]...)
			mu.Unlock()
			ch.done <- cmd.Wait()
		}()
		return ch
	}
	var prods []*exec.Cmd
	var prodOut []*bytes.Buffer
	for i := 0; i < producers; i++ {
		cmd := ipctest.Command(t, "soak-producer", helperEnv(r, "RING_ID="+strconv.Itoa(i), "RING_UNTIL="+strconv.FormatInt(until.UnixNano(), 10))...)
		buf := new(bytes.Buffer)
		cmd.Stdout = buf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		prods = append(prods, cmd)
		prodOut = append(prodOut, buf)
	}
	cons := make([]child, consumers)
	for i := range cons {
		cons[i] = launch()
	}
	kills := 0
	for time.Now().Before(until.Add(-200 * time.Millisecond)) {
		time.Sleep(time.Duration(50+rng.Intn(250)) * time.Millisecond)
		i := rng.Intn(consumers)
		cons[i].cmd.Process.Kill()
		<-cons[i].done
		kills++
		cons[i] = launch()
	}
	sent := make([]uint64, producers)
	for i, cmd := range prods {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("producer %d: %v", i, err)
		}
		n, err := strconv.ParseUint(strings.TrimSpace(prodOut[i].String()), 10, 64)
		if err != nil {
			t.Fatalf("producer %d printed %q", i, prodOut[i].String())
		}
		sent[i] = n
	}
	for i := range cons {
		select {
		case err := <-cons[i].done:
			if err != nil {
				t.Fatalf("consumer: %v", err)
			}
		case <-time.After(ipctest.Deadline):
			t.Fatal("a consumer did not see io.EOF after every producer closed")
		}
	}
	counts := make([][]uint8, producers)
	for i := range counts {
		counts[i] = make([]uint8, sent[i])
	}
	marked, total := 0, 0
	for b := records; len(b) >= soakRecord; b = b[soakRecord:] {
		id, seq, flags := binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:]), binary.LittleEndian.Uint64(b[16:])
		if id >= producers || seq >= sent[id] {
			t.Fatalf("record for producer %d seq %d, which was never sent", id, seq)
		}
		if counts[id][seq] < 255 {
			counts[id][seq]++
		}
		if flags&1 != 0 {
			marked++
		}
		total++
	}
	extra := 0
	var all uint64
	for id := range counts {
		all += sent[id]
		for seq, n := range counts[id] {
			if n == 0 {
				t.Fatalf("producer %d seq %d was lost", id, seq)
			}
			extra += int(n) - 1
		}
	}
	st := r.Stats()
	if uint64(extra) > st.Redelivered || extra > marked {
		t.Fatalf("%d duplicate deliveries, but only %d redeliveries counted (%d marked)", extra, st.Redelivered, marked)
	}
	t.Logf("%v: %d messages sent, %d deliveries, %d consumer kills, %d redelivered (%d duplicates), %d slots recovered",
		length, all, total, kills, st.Redelivered, extra, st.Recovered)
}
