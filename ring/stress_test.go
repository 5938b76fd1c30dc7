package ring

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/shmring/shmring/internal/ipctest"
)

// stressPayload fills b with message seq of producer id: the two numbers,
// then bytes derived from them, to a length that varies with seq. The
// consumer recomputes it to check every byte.
func stressPayload(b []byte, id, seq uint64) []byte {
	n := 16 + int((seq*5+id*3)%uint64(len(b)-15))
	b = b[:n]
	binary.LittleEndian.PutUint64(b, id)
	binary.LittleEndian.PutUint64(b[8:], seq)
	x := uint32(id*2654435761) ^ uint32(seq)
	for i := 16; i < n; i++ {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// stressCheck verifies a message made by stressPayload and returns its
// producer and sequence number.
func stressCheck(typ int64, m, scratch []byte) (id, seq uint64, err error) {
	if len(m) < 16 {
		return 0, 0, fmt.Errorf("%d-byte message", len(m))
	}
	id, seq = binary.LittleEndian.Uint64(m), binary.LittleEndian.Uint64(m[8:])
	if typ != int64(id)+1 {
		return id, seq, fmt.Errorf("producer %d seq %d: type %d", id, seq, typ)
	}
	if want := stressPayload(scratch, id, seq); string(want) != string(m) {
		return id, seq, fmt.Errorf("producer %d seq %d: %d bytes differ from the %d sent", id, seq, len(m), len(want))
	}
	return id, seq, nil
}

// How the goroutines of a stress run send and receive.
const (
	stressSingle   = "single"   // Send, Receive
	stressBatch    = "batch"    // SendBatch, ReceiveBatch
	stressZeroCopy = "zerocopy" // Reserve/Commit (and Abort), Peek/Release
)

type stressCase struct {
	mode                 Mode
	producers, consumers int
	slots                int
	wait                 WaitStrategy
	kind                 string
}

// TestStress runs producers and consumers as goroutines of this process
// over a heap ring, where the race detector sees every access, with few
// slots so that the positions wrap around many times under contention. It
// checks that every message arrives exactly once, intact, and in its
// producer's order at each consumer.
func TestStress(t *testing.T) {
	var cases []stressCase
	for _, kind := range []string{stressSingle, stressBatch, stressZeroCopy} {
		for _, w := range allWaits {
			for _, slots := range []int{4, 8} {
				cases = append(cases, stressCase{MPMC, 4, 4, slots, w, kind})
			}
			cases = append(cases,
				stressCase{SPSC, 1, 1, 4, w, kind},
				stressCase{MPSC, 4, 1, 4, w, kind},
				stressCase{SPMC, 1, 4, 4, w, kind})
		}
	}
	for _, tc := range cases {
		name := fmt.Sprintf("mode=%v/slots=%d/wait=%v/kind=%s", tc.mode, tc.slots, tc.wait, tc.kind)
		t.Run(name, func(t *testing.T) {
			// Messages per producer. Spinning goroutines outnumber the CPUs
			// here, and give them up only when preempted: fewer messages.
			per := 1000
			if tc.wait == Spin {
				per = 200
			}
			if testing.Short() {
				per /= 5
			}
			runStress(t, tc, per)
		})
	}
}

func runStress(t *testing.T, tc stressCase, per int) { runStressWith(t, tc, per, 64, 0) }

// runStressWith is runStress for messages of up to maxMessage bytes in
// slots of slotSize (see Options.SlotSize).
func runStressWith(t *testing.T, tc stressCase, per, maxMessage, slotSize int) {
	r := testRing(t, heap, &Options{Mode: tc.mode, Slots: tc.slots, MaxMessage: maxMessage, SlotSize: slotSize,
		MaxProducers: tc.producers, MaxConsumers: tc.consumers, Wait: Waiting{Strategy: tc.wait}})
	ps := make([]*Producer, tc.producers)
	cs := make([]*Consumer, tc.consumers)
	for i := range ps {
		p, err := r.NewProducer()
		if err != nil {
			t.Fatal(err)
		}
		ps[i] = p
	}
	for i := range cs {
		c, err := r.NewConsumer()
		if err != nil {
			t.Fatal(err)
		}
		cs[i] = c
	}
	ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
	defer cancel()

	var wg sync.WaitGroup
	errs := make(chan error, tc.producers+tc.consumers)
	aborted := make([]int, tc.producers)
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kind := tc.kind
			if slotSize != 0 && kind == stressZeroCopy {
				kind = stressSingle // Reserve has a slot's room: spans are sent with Send, and peeked
			}
			n, err := stressProduce(ctx, p, uint64(i), per, kind, maxMessage)
			aborted[i] = n
			if err != nil {
				errs <- fmt.Errorf("producer %d: %w", i, err)
				cancel()
			}
		}()
	}
	got := make([][][2]uint64, tc.consumers)
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			recs, err := stressConsume(ctx, c, tc.kind, maxMessage)
			got[i] = recs
			if err != nil {
				errs <- fmt.Errorf("consumer %d: %w", i, err)
				cancel()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.Log(dump(r))
		return
	}

	seen := make([][]int, tc.producers)
	for i := range seen {
		seen[i] = make([]int, per)
	}
	for ci, recs := range got {
		last := make([]int64, tc.producers)
		for i := range last {
			last[i] = -1
		}
		for _, rec := range recs {
			id, seq := rec[0], rec[1]
			if id >= uint64(tc.producers) || seq >= uint64(per) {
				t.Fatalf("consumer %d: producer %d seq %d was never sent", ci, id, seq)
			}
			if int64(seq) <= last[id] {
				t.Fatalf("consumer %d: producer %d seq %d after seq %d", ci, id, seq, last[id])
			}
			last[id] = int64(seq)
			seen[id][seq]++
		}
	}
	for id := range seen {
		for seq, n := range seen[id] {
			if n != 1 {
				t.Fatalf("producer %d seq %d delivered %d times", id, seq, n)
			}
		}
	}
	skips := 0
	if tc.mode.multiProducer() {
		for _, n := range aborted {
			skips += n
		}
	}
	total := uint64(tc.producers*per + skips)
	st := r.Stats()
	if slotSize != 0 {
		total = st.Sent // spans take several positions each
	}
	if st.Sent != total || st.Received != total || st.Depth != 0 || st.Producers != 0 || st.Consumers != 0 {
		t.Fatalf("stats %+v, want %d positions sent and received (%d aborted)", st, total, skips)
	}
	// With every side gone, wake-up units must not be left over (see
	// TestWakeUpUnitsBalance).
	if units := wakeUnits(t, r); maxUnits(units) > strayUnits {
		t.Errorf("wake-up units left: %v (%d sleeps, %d posts)", units, st.ConsumerSleeps+st.ProducerSleeps, st.Wakeups)
	}
}

// stressProduce sends per messages as producer id, then closes, and returns
// how many reservations it aborted.
func stressProduce(ctx context.Context, p *Producer, id uint64, per int, kind string, maxMessage int) (aborted int, err error) {
	defer func() {
		if cerr := p.Close(); err == nil {
			err = cerr
		}
	}()
	typ := int64(id) + 1
	switch kind {
	case stressSingle:
		buf := make([]byte, maxMessage)
		for seq := 0; seq < per; seq++ {
			if err := p.Send(ctx, typ, stressPayload(buf, id, uint64(seq))); err != nil {
				return 0, fmt.Errorf("send %d: %w", seq, err)
			}
		}
	case stressBatch:
		msgs := make([]Message, 7)
		bufs := make([][]byte, len(msgs))
		for i := range bufs {
			bufs[i] = make([]byte, maxMessage)
		}
		for seq, round := 0, 0; seq < per; round++ {
			n := min(1+round%len(msgs), per-seq)
			for i := 0; i < n; i++ {
				msgs[i] = Message{Type: typ, Data: stressPayload(bufs[i], id, uint64(seq+i))}
			}
			sent, err := p.SendBatch(ctx, msgs[:n])
			if err != nil || sent != n {
				return 0, fmt.Errorf("send batch of %d at %d: sent %d, %w", n, seq, sent, err)
			}
			seq += n
		}
	case stressZeroCopy:
		for seq := 0; seq < per; seq++ {
			buf, err := p.Reserve(ctx)
			if err != nil {
				return aborted, fmt.Errorf("reserve %d: %w", seq, err)
			}
			if seq%5 == 2 {
				// Give this one up and take another slot for the message.
				copy(buf, "aborted")
				if err := p.Abort(); err != nil {
					return aborted, err
				}
				aborted++
				if buf, err = p.Reserve(ctx); err != nil {
					return aborted, fmt.Errorf("reserve %d again: %w", seq, err)
				}
			}
			m := stressPayload(buf, id, uint64(seq))
			if err := p.Commit(typ, len(m)); err != nil {
				return aborted, fmt.Errorf("commit %d: %w", seq, err)
			}
		}
	}
	return aborted, nil
}

// stressConsume receives until io.EOF, checking every message, and returns
// the (producer, seq) of each in the order received.
func stressConsume(ctx context.Context, c *Consumer, kind string, maxMessage int) (recs [][2]uint64, err error) {
	defer func() {
		if cerr := c.Close(); err == nil {
			err = cerr
		}
	}()
	scratch := make([]byte, maxMessage)
	record := func(typ int64, m []byte) error {
		id, seq, err := stressCheck(typ, m, scratch)
		if err != nil {
			return err
		}
		recs = append(recs, [2]uint64{id, seq})
		return nil
	}
	switch kind {
	case stressSingle:
		buf := make([]byte, maxMessage)
		for {
			n, typ, err := c.Receive(ctx, buf)
			if errors.Is(err, io.EOF) {
				return recs, nil
			}
			if err != nil {
				return recs, err
			}
			if err := record(typ, buf[:n]); err != nil {
				return recs, err
			}
		}
	case stressBatch:
		msgs := make([]Message, 3)
		bufs := make([][]byte, len(msgs))
		for i := range bufs {
			bufs[i] = make([]byte, maxMessage)
		}
		for {
			for i := range msgs {
				msgs[i].Data = bufs[i]
			}
			n, err := c.ReceiveBatch(ctx, msgs)
			if errors.Is(err, io.EOF) {
				return recs, nil
			}
			if err != nil {
				return recs, err
			}
			for _, m := range msgs[:n] {
				if err := record(m.Type, m.Data); err != nil {
					return recs, err
				}
			}
		}
	case stressZeroCopy:
		// Peek and PeekBatch in turn.
		held := make([]Peeked, 3)
		for round := 0; ; round++ {
			n := 1
			if round%2 == 0 {
				held[0], err = c.Peek(ctx)
			} else {
				n, err = c.PeekBatch(ctx, held)
			}
			if errors.Is(err, io.EOF) {
				return recs, nil
			}
			if err != nil {
				return recs, err
			}
			for _, pk := range held[:n] {
				if pk.Redelivered {
					return recs, errors.New("a message redelivered with no consumer dead")
				}
				data := pk.Data
				if pk.Wrapped != nil { // a message spanning slots, at the wrap
					data = append(append([]byte(nil), pk.Data...), pk.Wrapped...)
				}
				if err := record(pk.Type, data); err != nil {
					return recs, err
				}
			}
			if err := c.Release(); err != nil {
				return recs, err
			}
		}
	}
	return recs, fmt.Errorf("unknown kind %q", kind)
}

// strayUnits is how many wake-up units may be left in a line's semaphore
// once every side is idle. A sleeper that leaves after a waker cleared its
// bit takes back the unit the waker posts, but waits for it only a bounded
// time; a waker descheduled between its CAS and its post for longer than
// that leaves one unit behind. What must not happen is that units pile up.
const strayUnits = 2

// wakeUnits returns the values of the ring's wake-up semaphores, one per
// role line.
func wakeUnits(t testing.TB, r *Ring) []uint16 {
	t.Helper()
	vals := make([]uint16, r.sems.Len())
	if err := r.sems.Values(vals); err != nil {
		t.Fatal(err)
	}
	return vals[semWakes(r.g.roles()):]
}

func maxUnits(units []uint16) uint16 {
	m := uint16(0)
	for _, u := range units {
		m = max(m, u)
	}
	return m
}

// TestWakeUpUnitsBalance bounces messages between two goroutines over two
// rings under the Block strategy, so that nearly every receive sleeps, and
// then checks the semaphores the sleepers use. Every unit a waker posts
// answers one announcement of a sleeper; once both sides are idle, hardly
// any may be left over (strayUnits). Left-over units would pile up over a
// ring's life until the semaphore saturates (SEMVMX), after which every
// sleep returns at once and the Block strategy spins through system calls.
func TestWakeUpUnitsBalance(t *testing.T) {
	rounds := 20000
	if testing.Short() {
		rounds = 4000
	}
	for _, w := range []WaitStrategy{Block, Adaptive} {
		t.Run("wait="+w.String(), func(t *testing.T) {
			opts := &Options{Slots: 4, MaxMessage: 8, Wait: Waiting{Strategy: w}}
			ping, pong := testRing(t, heap, opts), testRing(t, heap, opts)
			ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
			defer cancel()
			pingP, pingC := pair(t, ping)
			pongP, pongC := pair(t, pong)
			done := make(chan error, 1)
			go func() {
				buf := make([]byte, 8)
				for {
					n, typ, err := pingC.Receive(ctx, buf)
					if errors.Is(err, io.EOF) {
						done <- pongP.Close()
						return
					}
					if err == nil {
						err = pongP.Send(ctx, typ, buf[:n])
					}
					if err != nil {
						done <- err
						return
					}
				}
			}()
			buf := make([]byte, 8)
			for i := 0; i < rounds; i++ {
				if err := pingP.Send(ctx, 1, []byte("ball")); err != nil {
					t.Fatal(err)
				}
				if _, _, err := pongC.Receive(ctx, buf); err != nil {
					t.Fatal(err)
				}
			}
			pingP.Close()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if _, _, err := pongC.Receive(ctx, buf); !errors.Is(err, io.EOF) {
				t.Fatalf("after the echo closed: %v", err)
			}
			for _, r := range []*Ring{ping, pong} {
				units := wakeUnits(t, r)
				st := r.Stats()
				t.Logf("%d round trips: wake-up units %v, sleep masks %#x/%#x, stats %+v", rounds, units,
					r.sleepers[producerSide].masks[0].Load(), r.sleepers[consumerSide].masks[0].Load(), st)
				if maxUnits(units) > strayUnits {
					t.Errorf("wake-up units left with both sides idle: %v (of %d sleeps, %d posts)",
						units, st.ConsumerSleeps+st.ProducerSleeps, st.Wakeups)
				}
			}
		})
	}
}

// TestStressHandOff churns consumers of a multi-consumer ring: each
// consumer goroutine takes a role, receives a few messages into buffers of
// random sizes, and closes, sometimes right after a message was refused for
// its buffer and so while holding it back, then takes a role again, until
// io.EOF. A consumer that closes holding messages hands them to the others,
// so every message must still arrive exactly once, and no consumer may see
// io.EOF while messages wait on a closed consumer's line.
func TestStressHandOff(t *testing.T) {
	per := 2000
	if testing.Short() {
		per = 400
	}
	for _, w := range allWaits {
		t.Run("wait="+w.String(), func(t *testing.T) {
			const producers, consumers, maxMessage = 2, 3, 64
			var tmu sync.Mutex
			var traced []string
			traceHook = func(format string, args ...any) {
				tmu.Lock()
				traced = append(traced, fmt.Sprintf(format, args...))
				if len(traced) > 400 {
					traced = traced[100:]
				}
				tmu.Unlock()
			}
			defer func() { traceHook = nil }()
			r := testRing(t, heap, &Options{Mode: MPMC, Slots: 8, MaxMessage: maxMessage,
				MaxProducers: producers, MaxConsumers: 2*consumers + 2, Wait: Waiting{Strategy: w}})
			ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
			defer cancel()
			// A consumer that stays attached and receives nothing: without
			// it, a moment when every churning consumer is between roles
			// would end a blocked send with ErrNoConsumers.
			keeper, err := r.NewConsumer()
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			errs := make(chan error, producers+consumers)
			for i := 0; i < producers; i++ {
				p, err := r.NewProducer()
				if err != nil {
					t.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := stressProduce(ctx, p, uint64(i), per, stressSingle, maxMessage); err != nil {
						errs <- fmt.Errorf("producer %d: %w", i, err)
						cancel()
					}
				}()
			}
			got := make([][][2]uint64, consumers)
			handOffs := make([]int, consumers)
			var active atomic.Int32
			active.Store(consumers)
			for i := 0; i < consumers; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					recs, n, err := handOffConsume(ctx, r, uint64(i), maxMessage, &active)
					got[i], handOffs[i] = recs, n
					if err != nil {
						errs <- fmt.Errorf("consumer %d: %w", i, err)
						cancel()
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if t.Failed() {
				tmu.Lock()
				t.Log(dump(r) + strings.Join(traced, "\n"))
				tmu.Unlock()
				return
			}
			// Every consumer saw io.EOF: nothing may be left for a new one.
			if err := keeper.Close(); err != nil {
				t.Fatal(err)
			}
			c, err := r.NewConsumer()
			if err != nil {
				t.Fatal(err)
			}
			left, err := stressConsume(ctx, c, stressSingle, maxMessage)
			if err != nil {
				t.Fatal(err)
			}
			if len(left) > 0 {
				t.Errorf("io.EOF was returned while %d messages still waited (first: producer %d seq %d); %v hand-offs",
					len(left), left[0][0], left[0][1], handOffs)
			}
			seen := make([][]int, producers)
			for i := range seen {
				seen[i] = make([]int, per)
			}
			for _, recs := range append(got, left) {
				for _, rec := range recs {
					seen[rec[0]][rec[1]]++
				}
			}
			for id := range seen {
				for seq, n := range seen[id] {
					if n != 1 {
						t.Fatalf("producer %d seq %d delivered %d times (%v hand-offs)", id, seq, n, handOffs)
					}
				}
			}
			t.Logf("%d messages, %v hand-offs, stats %+v", producers*per, handOffs, r.Stats())
		})
	}
}

// handOffConsume is one churning consumer goroutine of TestStressHandOff. It
// returns what it received and how many times it closed holding a message.
// Now and then it retires after such a close, as long as another goroutine
// is left (active counts them), so that what it held must go to another.
func handOffConsume(ctx context.Context, r *Ring, id uint64, maxMessage int, active *atomic.Int32) (recs [][2]uint64, handOffs int, err error) {
	rng := rand.New(rand.NewPCG(id, 7))
	bufs := [][]byte{make([]byte, 20), make([]byte, 40), make([]byte, maxMessage)}
	scratch := make([]byte, maxMessage)
	for {
		c, err := r.NewConsumer()
		if err != nil {
			return recs, handOffs, fmt.Errorf("new consumer: %w", err)
		}
		for k := 1 + rng.IntN(16); k > 0; k-- {
			buf := bufs[rng.IntN(len(bufs))]
			n, typ, err := c.Receive(ctx, buf)
			if errors.Is(err, ErrTooLarge) {
				if rng.IntN(2) == 0 {
					handOffs++
					if rng.IntN(8) == 0 {
						if n := active.Load(); n > 1 && active.CompareAndSwap(n, n-1) {
							return recs, handOffs, c.Close() // retire, holding it
						}
					}
					break // close while holding the message back
				}
				buf = bufs[len(bufs)-1]
				n, typ, err = c.Receive(ctx, buf)
			}
			if errors.Is(err, io.EOF) {
				return recs, handOffs, c.Close()
			}
			if err != nil {
				c.Close()
				return recs, handOffs, err
			}
			pid, seq, err := stressCheck(typ, buf[:n], scratch)
			if err != nil {
				c.Close()
				return recs, handOffs, err
			}
			recs = append(recs, [2]uint64{pid, seq})
		}
		if err := c.Close(); err != nil {
			return recs, handOffs, err
		}
	}
}
