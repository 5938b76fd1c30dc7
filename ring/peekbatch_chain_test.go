package ring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/shmring/shmring/internal/atomicx"
	"github.com/shmring/shmring/internal/ipctest"
)

func init() {
	helpers["peek-stage"] = helperPeekStage
}

// helperPeekStage receives RING_COUNT messages, peeks and releases a batch
// of RING_BEFORE if set, and then leaves a batch of
// RING_PEEK messages (PeekBatch, or Peek if 1) in the state a kill at
// RING_STAGE leaves it:
//
//	hold     the first position named on the line, before the batch's end
//	held     PeekBatch returned (RING_RELEASED=j: and Release finished j of
//	         them, one slot at a time, before the kill; for a single
//	         consumer, the head stored and the line not yet cleared)
//
// then says "ready" and waits to be killed.
func helperPeekStage() int {
	r, _ := helperOpen()
	c, err := r.NewConsumer()
	if err != nil {
		return helperFail("new consumer", err)
	}
	buf := make([]byte, r.MaxMessage())
	for i := 0; i < ipctest.GetenvInt("RING_COUNT"); i++ {
		if _, _, err := c.Receive(context.Background(), buf); err != nil {
			return helperFail("receive", err)
		}
	}
	if b, _ := strconv.Atoi(os.Getenv("RING_BEFORE")); b > 0 {
		// A batch released before: its end stays on the line.
		if n, err := c.PeekBatch(context.Background(), make([]Peeked, b)); err != nil || n != b {
			return helperFail(fmt.Sprintf("first batch: %d of %d", n, b), err)
		}
		if err := c.Release(); err != nil {
			return helperFail("release", err)
		}
	}
	k := ipctest.GetenvInt("RING_PEEK")
	switch os.Getenv("RING_STAGE") {
	case "hold":
		pos, ok, err := c.d.next(uint64(k))
		if err != nil || !ok || !c.d.hold(pos) {
			return helperFail("hold", fmt.Errorf("position %d, %v, %v", pos, ok, err))
		}
	default:
		n := 1
		if k == 1 {
			_, err = c.Peek(context.Background())
		} else {
			n, err = c.PeekBatch(context.Background(), make([]Peeked, k))
		}
		if err != nil || n != k {
			return helperFail(fmt.Sprintf("peek batch: %d of %d", n, k), err)
		}
		j, _ := strconv.Atoi(os.Getenv("RING_RELEASED"))
		for i := 0; i < j; i++ {
			c.d.release(c.peekPos + uint64(i))
		}
		if s, ok := c.d.(*singleReceiver); ok && j > 0 {
			atomicx.StoreRelease(&r.cons.pos, s.head)
		}
	}
	return hang()
}

// Tests of PeekBatch against closes, deaths and chains of them: every
// message is delivered until someone finishes it, never after, and it is
// flagged as redelivered exactly when a consumer that is gone held it in
// place (or its sender said so).

// sendNumbered sends messages from..to-1, each one byte, its number.
func sendNumbered(t *testing.T, p *Producer, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := p.TrySend(1, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
}

// checkRun is checkRedeliveredRun for messages from..to-1 that need not be
// the last ones.
func checkRun(t *testing.T, c *Consumer, from, to, flagFrom, flagTo int) {
	t.Helper()
	for want := from; want < to; want++ {
		m, err := c.TryPeek()
		if err != nil {
			t.Fatalf("message %d: %v", want, err)
		}
		if int(m.Data[len(m.Data)-1]) != want {
			t.Fatalf("message %d is %d", want, m.Data[len(m.Data)-1])
		}
		if flagged := want >= flagFrom && want < flagTo; m.Redelivered != flagged {
			t.Fatalf("message %d: redelivered %v, want %v", want, m.Redelivered, flagged)
		}
		if err := c.Release(); err != nil {
			t.Fatal(err)
		}
	}
}

func newConsumer(t *testing.T, r *Ring) *Consumer {
	t.Helper()
	c, err := r.NewConsumer()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPeekBatchChainReceiveClose: a single consumer that inherits a run
// flagged by a predecessor that closed holding it, and closes after
// delivering only part of it, leaves the rest of the run flagged for the
// next one.
func TestPeekBatchChainReceiveClose(t *testing.T) {
	for _, mode := range []Mode{SPSC, MPSC} {
		t.Run("mode="+mode.String(), func(t *testing.T) {
			r := testRing(t, heap, &Options{Mode: mode, Slots: 16, MaxMessage: 64})
			p, _ := r.NewProducer()
			sendNumbered(t, p, 0, 10)
			c1 := newConsumer(t, r)
			if _, _, err := c1.TryReceive(make([]byte, 64)); err != nil {
				t.Fatal(err)
			}
			if n, err := c1.TryPeekBatch(make([]Peeked, 4)); err != nil || n != 4 {
				t.Fatalf("batch: %d, %v", n, err)
			}
			c1.Close() // holding 1..4
			c2 := newConsumer(t, r)
			checkRun(t, c2, 1, 2, 1, 2)
			c2.Close() // 2..3 of the run are not delivered yet
			c3 := newConsumer(t, r)
			checkRedeliveredRun(t, c3, 2, 10, 2, 5)
		})
	}
}

// TestPeekBatchChainShortBatch: a successor that holds part of an
// inherited run in a shorter batch and closes, or releases it and closes,
// leaves the whole rest of the run flagged.
func TestPeekBatchChainShortBatch(t *testing.T) {
	for _, release := range []bool{false, true} {
		t.Run(fmt.Sprintf("release=%v", release), func(t *testing.T) {
			r := testRing(t, heap, &Options{Mode: SPSC, Slots: 16, MaxMessage: 64})
			p, _ := r.NewProducer()
			sendNumbered(t, p, 0, 10)
			c1 := newConsumer(t, r)
			if n, err := c1.TryPeekBatch(make([]Peeked, 5)); err != nil || n != 5 {
				t.Fatalf("batch: %d, %v", n, err)
			}
			c1.Close() // holding 0..4
			c2 := newConsumer(t, r)
			held := make([]Peeked, 2)
			if n, err := c2.TryPeekBatch(held); err != nil || n != 2 {
				t.Fatalf("batch: %d, %v", n, err)
			}
			for i, m := range held {
				if !m.Redelivered {
					t.Fatalf("message %d of the inherited run is not flagged", i)
				}
			}
			from := 0
			if release {
				if err := c2.Release(); err != nil {
					t.Fatal(err)
				}
				from = 2
			}
			c2.Close()
			c3 := newConsumer(t, r)
			checkRedeliveredRun(t, c3, from, 10, from, 5)
		})
	}
}

// TestPeekBatchChainKilled is TestPeekBatchChainReceiveClose with SIGKILL:
// the first consumer dies holding 1..4, its successor dies after
// receiving 1, and the third must see 2..4 flagged.
func TestPeekBatchChainKilled(t *testing.T) {
	for _, mode := range []Mode{SPSC, MPSC} {
		t.Run("mode="+mode.String(), func(t *testing.T) {
			r := testRing(t, shm, &Options{Mode: mode, Slots: 16, MaxMessage: 64})
			p, _ := r.NewProducer()
			sendNumbered(t, p, 0, 10)
			kill(t, startHelper(t, "hang-consumer", helperEnv(r, "RING_COUNT=1", "RING_PEEK=4")...))
			kill(t, startHelper(t, "hang-consumer", helperEnv(r, "RING_COUNT=1")...))
			c := newConsumer(t, r)
			checkRedeliveredRun(t, c, 2, 10, 2, 5)
		})
	}
}

// TestPeekBatchMultiCloseAfterServing: a consumer among many that once
// served a claim left by a consumer that closed holding a message, and
// later closes holding a batch of its own claim, leaves that batch flagged.
func TestPeekBatchMultiCloseAfterServing(t *testing.T) {
	for _, mode := range []Mode{SPMC, MPMC} {
		t.Run("mode="+mode.String(), func(t *testing.T) {
			r := testRing(t, heap, &Options{Mode: mode, Slots: 16, MaxMessage: 64})
			p, _ := r.NewProducer()
			sendNumbered(t, p, 0, 10)
			a := newConsumer(t, r)
			if _, err := a.TryPeek(); err != nil {
				t.Fatal(err)
			}
			a.Close() // holding 0
			b := newConsumer(t, r)
			checkRun(t, b, 0, 2, 0, 1)
			sendNumbered(t, p, 10, 12)
			held := make([]Peeked, 4)
			if n, err := b.TryPeekBatch(held); err != nil || n != 4 {
				t.Fatalf("batch: %d, %v", n, err)
			}
			for i, m := range held {
				if m.Redelivered || int(m.Data[0]) != 2+i {
					t.Fatalf("batch message %d: %+v", i, m)
				}
			}
			b.Close() // holding 2..5
			c := newConsumer(t, r)
			checkRedeliveredRun(t, c, 2, 12, 2, 6)
		})
	}
}

// modelMsg is what the model of TestPeekBatchModel knows of one message.
type modelMsg struct {
	pos    uint64
	origin uint64
	resent bool // sent with Redelivered
	seen   bool // held in place by a consumer that closed before Release
	done   bool // delivered and finished
}

// modelConsumer is a consumer of the model and what it holds in place.
type modelConsumer struct {
	c    *Consumer
	held []int // message numbers held, in order
}

// TestPeekBatchModel drives a ring with one producer and consumers that
// come and go, in one goroutine, each step chosen at random (the seed is in
// the subtest's name): sends of both sizes with origins and sender flags,
// aborted reservations, receives, batch receives, Peek and PeekBatch with
// Release, and closes while holding. Every message must be delivered, in
// one piece, with its Seq and Origin, until a receive or a Release finishes
// it and never after; and flagged exactly when the sender said so or a
// consumer closed holding it in place.
func TestPeekBatchModel(t *testing.T) {
	seeds := 40
	if testing.Short() {
		seeds = 10
	}
	for _, mode := range allModes {
		for seed := 1; seed <= seeds; seed++ {
			t.Run(fmt.Sprintf("mode=%v/seed=%d", mode, seed), func(t *testing.T) {
				runPeekBatchModel(t, mode, int64(seed), 400)
			})
		}
	}
}

func runPeekBatchModel(t *testing.T, mode Mode, seed int64, steps int) {
	rng := rand.New(rand.NewSource(seed))
	const maxMessage = 200
	opts := &Options{Mode: mode, Slots: 16, MaxMessage: maxMessage}
	live := 1
	if mode.multiConsumer() {
		opts.MaxConsumers = 8
		live = 3
	}
	r := testRing(t, heap, opts)
	p, err := r.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	var msgs []modelMsg
	var nextPos uint64
	scratch := make([]byte, maxMessage)
	byPos := map[uint64]int{}

	deliver := func(who string, id uint64, typ int64, data []byte, seq, origin uint64, flag, check bool, finish bool) {
		t.Helper()
		if _, got, err := checkPayload(typ, data, scratch); err != nil || got != id {
			t.Fatalf("seed %d %s: message %d: %v (payload of %d)", seed, who, id, err, got)
		}
		i, ok := byPos[seq]
		if !ok || uint64(i) != id {
			t.Fatalf("seed %d %s: message %d has Seq %d", seed, who, id, seq)
		}
		m := &msgs[i]
		switch {
		case m.done:
			t.Fatalf("seed %d %s: message %d delivered after it was finished", seed, who, id)
		case check && flag != (m.resent || m.seen):
			t.Fatalf("seed %d %s: message %d redelivered %v, want %v (sender %v, held by a closed consumer %v)",
				seed, who, id, flag, m.resent || m.seen, m.resent, m.seen)
		case check && origin != m.origin:
			t.Fatalf("seed %d %s: message %d origin %d, want %d", seed, who, id, origin, m.origin)
		}
		m.done = finish
	}

	cons := make([]*modelConsumer, 0, live)
	open := func() {
		c, err := r.NewConsumer()
		if errors.Is(err, ErrRoleTaken) {
			return // every line busy with claims left behind: later
		}
		if err != nil {
			t.Fatal(err)
		}
		cons = append(cons, &modelConsumer{c: c})
	}
	closeAt := func(i int) {
		mc := cons[i]
		for _, id := range mc.held {
			msgs[id].seen = true
		}
		if err := mc.c.Close(); err != nil {
			t.Fatal(err)
		}
		cons = append(cons[:i], cons[i+1:]...)
	}
	buf := make([]byte, maxMessage)
	batch := make([]Message, 8)
	for i := range batch {
		batch[i].Data = make([]byte, maxMessage)
	}
	heldBuf := make([]Peeked, 8)

	act := func(mc *modelConsumer, who string) {
		if len(mc.held) > 0 {
			if err := mc.c.Release(); err != nil {
				t.Fatal(err)
			}
			for _, id := range mc.held {
				msgs[id].done = true
			}
			mc.held = mc.held[:0]
			return
		}
		switch rng.Intn(4) {
		case 0:
			n, typ, err := mc.c.TryReceive(buf)
			if errors.Is(err, ErrEmpty) {
				return
			}
			if err != nil {
				t.Fatalf("seed %d %s: receive: %v", seed, who, err)
			}
			_, id, _ := checkPayload(typ, buf[:n], scratch)
			// TryReceive gives neither Seq nor flag: find it by number.
			if int(id) >= len(msgs) {
				t.Fatalf("seed %d %s: received message %d, sent %d", seed, who, id, len(msgs))
			}
			deliver(who, id, typ, buf[:n], msgs[id].pos, 0, false, false, true)
		case 1:
			k := 1 + rng.Intn(len(batch))
			for i := range batch[:k] {
				batch[i].Data = batch[i].Data[:cap(batch[i].Data)]
			}
			n, err := mc.c.TryReceiveBatch(batch[:k])
			if errors.Is(err, ErrEmpty) {
				return
			}
			if err != nil {
				t.Fatalf("seed %d %s: receive batch: %v", seed, who, err)
			}
			for _, m := range batch[:n] {
				_, id, _ := checkPayload(m.Type, m.Data, scratch)
				deliver(who, id, m.Type, m.Data, m.Seq, m.Origin, m.Redelivered, true, true)
			}
		case 2, 3:
			k := 1
			var n int
			var err error
			if rng.Intn(2) == 0 {
				var pk Peeked
				pk, err = mc.c.TryPeek()
				heldBuf[0], n = pk, 1
			} else {
				k = 1 + rng.Intn(len(heldBuf))
				n, err = mc.c.TryPeekBatch(heldBuf[:k])
			}
			if errors.Is(err, ErrEmpty) {
				return
			}
			if err != nil {
				t.Fatalf("seed %d %s: peek: %v", seed, who, err)
			}
			for _, m := range heldBuf[:n] {
				_, id, _ := checkPayload(m.Type, m.Data, scratch)
				deliver(who, id, m.Type, m.Data, m.Seq, m.Origin, m.Redelivered, true, false)
				mc.held = append(mc.held, int(id))
			}
		}
	}

	for step := 0; step < steps; step++ {
		for len(cons) < live && rng.Intn(3) != 0 {
			open()
		}
		switch x := rng.Intn(10); {
		case x < 3: // send
			k := 1 + rng.Intn(5)
			ms := make([]Message, 0, k)
			for i := 0; i < k; i++ {
				id := uint64(len(msgs) + i)
				m := Message{Type: 1, Data: append([]byte(nil), payload(scratch, 0, id)...)}
				if rng.Intn(2) == 0 {
					m.Origin = id*3 + 1
				}
				m.Redelivered = rng.Intn(8) == 0
				ms = append(ms, m)
			}
			n, err := p.TrySendBatch(ms)
			if errors.Is(err, ErrFull) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range ms[:n] {
				byPos[nextPos] = len(msgs)
				msgs = append(msgs, modelMsg{pos: nextPos, origin: m.Origin, resent: m.Redelivered})
				nextPos++
			}
		case x < 4: // an aborted reservation: a skipped slot with many producers
			if _, err := p.TryReserve(); err == nil {
				if err := p.Abort(); err != nil {
					t.Fatal(err)
				}
				if mode.multiProducer() {
					nextPos++
				}
			}
		case x < 5: // close one, maybe holding
			if len(cons) > 0 {
				closeAt(rng.Intn(len(cons)))
			}
		default:
			if len(cons) > 0 {
				i := rng.Intn(len(cons))
				act(cons[i], fmt.Sprintf("consumer %d at step %d", i, step))
			}
		}
	}
	// Drain: release what is held, then receive everything left, flags
	// checked.
	for _, mc := range cons {
		if len(mc.held) > 0 {
			act(mc, "drain")
		}
	}
	if len(cons) == 0 {
		open()
	}
	p.Close()
	for round := 0; round < 10000; round++ {
		left := 0
		for i := range msgs {
			if !msgs[i].done {
				left++
			}
		}
		if left == 0 {
			break
		}
		mc := cons[round%len(cons)]
		n, err := mc.c.TryPeekBatch(heldBuf)
		switch {
		case errors.Is(err, ErrEmpty) || errors.Is(err, io.EOF):
			continue
		case err != nil:
			t.Fatalf("seed %d drain: %v", seed, err)
		}
		for _, m := range heldBuf[:n] {
			_, id, _ := checkPayload(m.Type, m.Data, scratch)
			deliver("drain", id, m.Type, m.Data, m.Seq, m.Origin, m.Redelivered, true, true)
		}
		if err := mc.c.Release(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range msgs {
		if !msgs[i].done {
			t.Fatalf("seed %d: message %d (position %d) never finished\n%s", seed, i, msgs[i].pos, dump(r))
		}
	}
	if _, err := cons[0].c.TryPeekBatch(heldBuf); !errors.Is(err, ErrEmpty) && !errors.Is(err, io.EOF) {
		t.Fatalf("seed %d: after everything: %v", seed, err)
	}
}

// TestPeekBatchKilledAtEachStage kills a consumer holding messages 1..4 in
// place at each point of PeekBatch and Release: before the line names the
// end of the batch, after PeekBatch, and after each slot Release gives
// back. Whatever was finished is never delivered again, whatever was held
// and not finished is delivered again flagged, and the messages after the
// batch are delivered unflagged, also once the slots Release freed are
// filled again.
func TestPeekBatchKilledAtEachStage(t *testing.T) {
	for _, mode := range allModes {
		stages := []string{"hold", "held:0", "held:4"}
		if mode.multiConsumer() {
			stages = append(stages, "held:1", "held:2", "held:3")
		}
		for _, stage := range stages {
			t.Run(fmt.Sprintf("mode=%v/stage=%s", mode, stage), func(t *testing.T) {
				r := testRing(t, shm, &Options{Mode: mode, Slots: 8, MaxMessage: 64})
				p, err := r.NewProducer()
				if err != nil {
					t.Fatal(err)
				}
				sendNumbered(t, p, 0, 8)
				env := []string{"RING_COUNT=1", "RING_PEEK=4"}
				released := 0
				if name, j, ok := cutStage(stage); ok {
					released, _ = strconv.Atoi(j)
					env = append(env, "RING_STAGE="+name, "RING_RELEASED="+j)
				} else {
					env = append(env, "RING_STAGE="+stage)
				}
				cmd := startHelper(t, "peek-stage", helperEnv(r, env...)...)
				var c *Consumer
				if mode.multiConsumer() {
					c = newConsumer(t, r)
					kill(t, cmd)
				} else {
					kill(t, cmd)
					c = newConsumer(t, r)
				}
				// Fill the slots the helper gave back.
				sendNumbered(t, p, 8, 8+released)
				switch stage {
				case "hold":
					// PeekBatch never returned: the first may be flagged,
					// nothing after it.
					m, err := c.TryPeek()
					if err != nil || m.Data[0] != 1 {
						t.Fatalf("first: %+v, %v", m, err)
					}
					if err := c.Release(); err != nil {
						t.Fatal(err)
					}
					checkRun(t, c, 2, 8, 0, 0)
				default:
					checkRun(t, c, 1+released, 8+released, 1+released, 5)
				}
				if _, err := c.TryPeek(); !errors.Is(err, ErrEmpty) {
					t.Fatalf("after the last: %v", err)
				}
			})
		}
	}
}

func cutStage(s string) (name, arg string, ok bool) {
	for i := range s {
		if s[i] == ':' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// TestPeekBatchMultiChainKilled: in the multi-consumer modes a consumer
// killed holding 1..4 leaves them to the next consumer that finds its
// claim; that one is killed in turn after receiving some of them and while
// holding the next in place. The third delivers what is left of the run,
// flagged, and the rest unflagged.
func TestPeekBatchMultiChainKilled(t *testing.T) {
	for _, mode := range []Mode{SPMC, MPMC} {
		for _, got := range []int{0, 1, 3} {
			t.Run(fmt.Sprintf("mode=%v/received=%d", mode, got), func(t *testing.T) {
				r := testRing(t, shm, &Options{Mode: mode, Slots: 8, MaxMessage: 64})
				p, err := r.NewProducer()
				if err != nil {
					t.Fatal(err)
				}
				sendNumbered(t, p, 0, 8)
				kill(t, startHelper(t, "peek-stage", helperEnv(r, "RING_COUNT=1", "RING_PEEK=4")...))
				kill(t, startHelper(t, "hang-consumer", helperEnv(r, "RING_COUNT="+strconv.Itoa(got), "RING_PEEK=1")...))
				c := newConsumer(t, r)
				checkRun(t, c, 1+got, 8, 1+got, 5)
				if _, err := c.TryPeek(); !errors.Is(err, ErrEmpty) {
					t.Fatalf("after the last: %v", err)
				}
			})
		}
	}
}

// TestPeekBatchScribbled: a peer that writes any value into the words
// PeekBatch and the slot metadata use (a role line's peek and peekEnd,
// claims, a slot's origin and flags) makes no call panic, wait past its
// context or hand out bytes outside the ring's memory; what it can make a
// call return is an error of the package's or the context's.
func TestPeekBatchScribbled(t *testing.T) {
	for _, mode := range allModes {
		for seed := int64(1); seed <= 8; seed++ {
			t.Run(fmt.Sprintf("mode=%v/seed=%d", mode, seed), func(t *testing.T) {
				scribbleRun(t, mode, seed)
			})
		}
	}
}

func scribbleRun(t *testing.T, mode Mode, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	opts := &Options{Mode: mode, Slots: 8, MaxMessage: 300, Wait: Waiting{Strategy: Spin}}
	if mode.multiConsumer() {
		opts.MaxConsumers = 4
	}
	r := testRing(t, heap, opts)
	p, err := r.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.NewConsumer()
	if err != nil {
		t.Fatal(err)
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(r.mem)))
	hi := lo + uintptr(len(r.mem))
	inRing := func(b []byte) bool {
		if cap(b) == 0 {
			return true
		}
		a := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
		return a >= lo && a+uintptr(cap(b)) <= hi
	}
	values := func() uint64 {
		switch rng.Intn(6) {
		case 0:
			return 0
		case 1:
			return ^uint64(0)
		case 2:
			return uint64(rng.Intn(64))
		case 3:
			return 1 << uint(rng.Intn(64))
		case 4:
			return r.cons.pos.Load() + uint64(rng.Intn(20)) - 10
		}
		return rng.Uint64()
	}
	okErr := func(what string, err error) {
		t.Helper()
		switch {
		case err == nil, errors.Is(err, ErrEmpty), errors.Is(err, ErrCorrupt), errors.Is(err, ErrPending),
			errors.Is(err, ErrNotReserved), errors.Is(err, ErrFull), errors.Is(err, context.DeadlineExceeded),
			errors.Is(err, ErrRoleTaken), errors.Is(err, os.ErrClosed), errors.Is(err, io.EOF),
			errors.Is(err, ErrTooLarge), errors.Is(err, ErrPeerDead), errors.Is(err, ErrNoConsumers):
		default:
			t.Fatalf("seed %d: %s: %v", seed, what, err)
		}
	}
	held := make([]Peeked, 6)
	buf := make([]Message, 4)
	data := make([]byte, 300)
	first, count := r.lines(consumerSide)
	for step := 0; step < 300; step++ {
		switch rng.Intn(8) {
		case 0, 1:
			ms := []Message{{Type: 1, Data: data[:rng.Intn(300)], Origin: rng.Uint64(), Redelivered: rng.Intn(2) == 0}}
			_, err := p.TrySendBatch(ms)
			okErr("send", err)
		case 2:
			// Scribble.
			i := uint64(rng.Intn(int(r.n)))
			d := r.descs.At(i)
			line := r.roles.At(uint64(first + rng.Intn(count)))
			switch rng.Intn(6) {
			case 0:
				line.peek.Store(values())
			case 1:
				line.peekEnd.Store(values())
			case 2:
				d.origin = values()
			case 3:
				d.flags = uint32(values())
			case 4:
				line.claim.Store(values())
			case 5:
				line.claimLen.Store(values())
			}
		case 3:
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			done := make(chan struct{})
			var n int
			var err error
			go func() {
				n, err = c.PeekBatch(ctx, held[:1+rng.Intn(len(held))])
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(ipctest.Deadline):
				t.Fatalf("seed %d: PeekBatch did not return after its context\n%s", seed, dump(r))
			}
			cancel()
			okErr("peek batch", err)
			for _, m := range held[:n] {
				if !inRing(m.Data) || len(m.Data) > 300 {
					t.Fatalf("seed %d: held data of %d bytes outside the ring", seed, len(m.Data))
				}
			}
		case 4:
			n, err := c.TryPeekBatch(held[:1+rng.Intn(len(held))])
			okErr("try peek batch", err)
			for _, m := range held[:n] {
				if !inRing(m.Data) || len(m.Data) > 300 {
					t.Fatalf("seed %d: held data of %d bytes outside the ring", seed, len(m.Data))
				}
			}
		case 5:
			okErr("release", c.Release())
		case 6:
			for i := range buf {
				buf[i].Data = make([]byte, 300)
			}
			_, err := c.TryReceiveBatch(buf)
			okErr("receive batch", err)
		case 7:
			if rng.Intn(4) == 0 {
				okErr("close", c.Close())
				c2, err := r.NewConsumer()
				okErr("new consumer", err)
				if err == nil {
					c = c2
				} else {
					return // the ring is too broken to go on
				}
			}
		}
	}
}

// TestPeekBatchCloseRace closes a consumer, or its Ring, from another
// goroutine while the consumer's goroutine peeks batches and releases
// them, blocks in PeekBatch, or holds a batch: the calls in flight return
// os.ErrClosed or complete, and a consumer on another view of the ring
// then delivers every message that was not released, flagged exactly when
// the closed one had held it, and nothing it had released.
func TestPeekBatchCloseRace(t *testing.T) {
	for _, mode := range allModes {
		for _, what := range []string{"consumer", "ring"} {
			for _, mem := range []memory{heap, shm} {
				t.Run(fmt.Sprintf("mode=%v/close=%s/%v", mode, what, mem), func(t *testing.T) {
					for round := 0; round < 20; round++ {
						closeRaceRound(t, mode, what, mem, int64(round))
					}
					t.Logf("%d messages held at a close so far", closeRaceHeld)
				})
			}
		}
	}
}

var closeRaceHeld int // messages held at a close, over the rounds: for -v

func closeRaceRound(t *testing.T, mode Mode, what string, mem memory, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	const total = 40
	r := testRing(t, mem, &Options{Mode: mode, Slots: 64, MaxMessage: 200})
	r2 := reopen(t, r, Waiting{})
	p, err := r2.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	scratch := make([]byte, 200)
	for i := uint64(0); i < total; i++ {
		if err := p.TrySend(1, payload(scratch, 0, i)); err != nil {
			t.Fatal(err)
		}
	}
	c := newConsumer(t, r)
	type result struct {
		released []uint64
		held     []uint64 // returned by PeekBatch and not released
		err      error
	}
	res := make(chan result, 1)
	go func() {
		rng := rand.New(rand.NewSource(seed + 1000))
		var out result
		held := make([]Peeked, 8)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
			n, err := c.PeekBatch(ctx, held[:1+rng.Intn(len(held))])
			cancel()
			if err != nil {
				out.err = err
				break
			}
			seqs := make([]uint64, n)
			for i := range held[:n] {
				seqs[i] = held[i].Seq
			}
			for i := 0; i < 20; i++ {
				runtime.Gosched()
			}
			if err := c.Release(); err != nil {
				out.held, out.err = seqs, err
				break
			}
			out.released = append(out.released, seqs...)
		}
		res <- out
	}()
	time.Sleep(time.Duration(rng.Intn(150)) * time.Microsecond)
	if what == "ring" {
		err = r.Close()
	} else {
		err = c.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	out := <-res
	closeRaceHeld += len(out.held)
	if !errors.Is(out.err, os.ErrClosed) {
		t.Fatalf("round %d: the closed consumer's call: %v", seed, out.err)
	}
	state := make([]int, total) // 0: not delivered, 1: released, 2: held at the close
	for _, s := range out.released {
		if s >= total || state[s] != 0 {
			t.Fatalf("round %d: released %d twice", seed, s)
		}
		state[s] = 1
	}
	for _, s := range out.held {
		if s >= total || state[s] != 0 {
			t.Fatalf("round %d: held %d after releasing it", seed, s)
		}
		state[s] = 2
	}
	c2, err := r2.NewConsumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	held := make([]Peeked, 8)
	for {
		n, err := c2.TryPeekBatch(held)
		if errors.Is(err, ErrEmpty) {
			break
		}
		if err != nil {
			t.Fatalf("round %d: drain: %v", seed, err)
		}
		for _, m := range held[:n] {
			_, id, err := checkPayload(m.Type, m.Data, scratch)
			switch {
			case err != nil:
				t.Fatalf("round %d: %v", seed, err)
			case id != m.Seq || id >= total:
				t.Fatalf("round %d: message %d has Seq %d", seed, id, m.Seq)
			case state[id] == 1:
				t.Fatalf("round %d: message %d delivered again after its Release", seed, id)
			case state[id] == 3:
				t.Fatalf("round %d: message %d delivered twice", seed, id)
			case m.Redelivered != (state[id] == 2):
				t.Fatalf("round %d: message %d redelivered %v, held at the close %v", seed, id, m.Redelivered, state[id] == 2)
			}
			state[id] = 3
		}
		if err := c2.Release(); err != nil {
			t.Fatal(err)
		}
	}
	for id, s := range state {
		if s != 1 && s != 3 {
			t.Fatalf("round %d: message %d lost (state %d)\n%s", seed, id, s, dump(r2))
		}
	}
	p.Close()
	r.Close()
	r2.Close()
}

// TestPeekBatchConcurrent runs consumers that peek batches, release them
// and now and then close holding one, against producers that leave holes
// (an aborted reservation; in shared memory also a producer killed with a
// reservation outstanding): every message is finished exactly once, never
// delivered after, and flagged exactly when a consumer closed holding it.
func TestPeekBatchConcurrent(t *testing.T) {
	for _, mem := range []memory{heap, shm} {
		for _, mode := range []Mode{SPMC, MPMC} {
			t.Run(fmt.Sprintf("%v/mode=%v", mem, mode), func(t *testing.T) {
				concurrentPeekBatch(t, mem, mode)
			})
		}
	}
}

type peekRecord struct {
	finished int
	seen     bool
}

func concurrentPeekBatch(t *testing.T, mem memory, mode Mode) {
	const perProducer = 3000
	opts := &Options{Mode: mode, Slots: 32, MaxMessage: 200, MaxConsumers: 8}
	producers := 1
	if mode.multiProducer() {
		producers, opts.MaxProducers = 2, 4
	}
	r := testRing(t, mem, opts)
	var mu sync.Mutex
	recs := map[[2]uint64]*peekRecord{}
	expected := producers * perProducer
	var failure error
	var stop atomic.Bool // a failure: everyone stops
	fail := func(err error) {
		mu.Lock()
		if failure == nil {
			failure = err
		}
		mu.Unlock()
		stop.Store(true)
	}
	if mem == shm && mode.multiProducer() {
		// A producer that dies with a reservation: a hole to recover.
		cmd := startHelper(t, "hang-producer", helperEnv(r, "RING_ID=9", "RING_COUNT=5", "RING_RESERVE=1")...)
		kill(t, cmd)
		expected += 5
	}
	var finished atomic.Int64
	var wg sync.WaitGroup
	for id := 0; id < producers; id++ {
		p, err := r.NewProducer()
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func(id uint64) {
			defer wg.Done()
			defer p.Close()
			rng := rand.New(rand.NewSource(int64(id)))
			buf := make([]byte, 200)
			for seq := uint64(0); seq < perProducer && !stop.Load(); {
				if mode.multiProducer() && rng.Intn(16) == 0 {
					ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
					_, err := p.Reserve(ctx)
					cancel()
					if err == nil {
						err = p.Abort()
					}
					if err != nil && !errors.Is(err, ErrNoConsumers) {
						fail(fmt.Errorf("producer %d: reserve: %w", id, err))
						return
					}
				}
				k := min(1+rng.Intn(6), int(perProducer-seq))
				ms := make([]Message, k)
				for i := range ms {
					ms[i] = Message{Type: int64(id + 1), Data: append([]byte(nil), payload(buf, id, seq+uint64(i))...), Origin: id}
				}
				ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
				n, err := p.SendBatch(ctx, ms)
				cancel()
				if errors.Is(err, ErrNoConsumers) || errors.Is(err, context.DeadlineExceeded) && stop.Load() {
					// Every consumer was between a Close and its next
					// NewConsumer at that moment, the ring full.
					seq += uint64(n)
					continue
				}
				if err != nil {
					fail(fmt.Errorf("producer %d: send: %w", id, err))
					return
				}
				seq += uint64(n)
			}
		}(uint64(id))
	}
	for ci := 0; ci < 3; ci++ {
		wg.Add(1)
		go func(ci int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(100 + ci)))
			scratch := make([]byte, 200)
			held := make([]Peeked, 8)
			c, err := r.NewConsumer()
			if err != nil {
				fail(err)
				return
			}
			defer func() { c.Close() }()
			deadline := time.Now().Add(ipctest.Deadline)
			for finished.Load() < int64(expected) && !stop.Load() {
				if time.Now().After(deadline) {
					fail(fmt.Errorf("consumer %d: %d of %d messages finished", ci, finished.Load(), expected))
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
				n, err := c.PeekBatch(ctx, held[:1+rng.Intn(len(held))])
				cancel()
				if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, ErrPeerDead) {
					continue
				}
				if err != nil {
					fail(fmt.Errorf("consumer %d: peek batch: %w", ci, err))
					return
				}
				keys := make([][2]uint64, n)
				mu.Lock()
				for i, m := range held[:n] {
					id, seq, err := checkPayload(m.Type, m.Data, scratch)
					if err != nil {
						mu.Unlock()
						fail(err)
						return
					}
					if id != 9 && m.Origin != id {
						mu.Unlock()
						fail(fmt.Errorf("message %d/%d: origin %d", id, seq, m.Origin))
						return
					}
					k := [2]uint64{id, seq}
					rec := recs[k]
					if rec == nil {
						rec = &peekRecord{}
						recs[k] = rec
					}
					switch {
					case rec.finished > 0:
						err = fmt.Errorf("message %d/%d delivered after it was finished", id, seq)
					case m.Redelivered != rec.seen:
						err = fmt.Errorf("message %d/%d: redelivered %v, held by a closed consumer %v", id, seq, m.Redelivered, rec.seen)
					}
					if err != nil {
						mu.Unlock()
						fail(err)
						return
					}
					keys[i] = k
				}
				mu.Unlock()
				if rng.Intn(24) == 0 {
					// Close holding the batch: it must come again, flagged.
					mu.Lock()
					for _, k := range keys {
						recs[k].seen = true
					}
					mu.Unlock()
					c.Close()
					if c, err = r.NewConsumer(); err != nil {
						fail(fmt.Errorf("consumer %d: reopen: %w", ci, err))
						return
					}
					continue
				}
				if err := c.Release(); err != nil {
					fail(err)
					return
				}
				mu.Lock()
				for _, k := range keys {
					recs[k].finished++
				}
				mu.Unlock()
				finished.Add(int64(n))
			}
		}(ci)
	}
	wg.Wait()
	if failure != nil {
		t.Fatalf("%v\n%s", failure, dump(r))
	}
	if len(recs) != expected {
		t.Fatalf("%d distinct messages, want %d", len(recs), expected)
	}
	for k, rec := range recs {
		if rec.finished != 1 {
			t.Fatalf("message %v finished %d times", k, rec.finished)
		}
	}
}

// TestPeekBatchStaleEnd: the end of a batch released earlier stays on the
// role line; a consumer killed later holding one message with Peek, or a
// shorter batch, leaves only what it held flagged.
func TestPeekBatchStaleEnd(t *testing.T) {
	for _, mode := range allModes {
		for _, k := range []int{1, 2} {
			t.Run(fmt.Sprintf("mode=%v/peek=%d", mode, k), func(t *testing.T) {
				r := testRing(t, shm, &Options{Mode: mode, Slots: 16, MaxMessage: 64})
				p, err := r.NewProducer()
				if err != nil {
					t.Fatal(err)
				}
				sendNumbered(t, p, 0, 12)
				// Released 0..5 in one batch, then holds 6 (and 7).
				cmd := startHelper(t, "peek-stage", helperEnv(r, "RING_COUNT=0", "RING_BEFORE=6", "RING_PEEK="+strconv.Itoa(k))...)
				var c *Consumer
				if mode.multiConsumer() {
					c = newConsumer(t, r)
					kill(t, cmd)
				} else {
					kill(t, cmd)
					c = newConsumer(t, r)
				}
				checkRun(t, c, 6, 12, 6, 6+k)
				if _, err := c.TryPeek(); !errors.Is(err, ErrEmpty) {
					t.Fatalf("after the last: %v", err)
				}
			})
		}
	}
}
