package ring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmring/shmring/internal/ipctest"
)

// Tests of sliding windows (TryPeekMore, ReleaseFirst) against a Close
// from another goroutine at any moment of the calls.

// windower drives a consumer through random window calls: PeekBatch when
// it holds nothing, else TryPeekMore or ReleaseFirst of a random count;
// when a run cannot grow, it releases all it holds, so that the next call
// waits in PeekBatch.
type windower struct {
	rng    *rand.Rand
	buf    []Peeked
	window []Peeked // what the consumer holds, oldest first
	// releasing, if set, is called before ReleaseFirst(k) with what is
	// held; an error ends the step with it.
	releasing func(held []Peeked, k int) error
}

func newWindower(seed int64, max int) *windower {
	return &windower{rng: rand.New(rand.NewSource(seed)), buf: make([]Peeked, max)}
}

// step makes one call on c and returns the messages it newly holds (valid
// until the release that finishes them, or Close).
func (w *windower) step(ctx context.Context, c *Consumer) ([]Peeked, error) {
	if len(w.window) == 0 {
		n, err := c.PeekBatch(ctx, w.buf[:1+w.rng.Intn(len(w.buf))])
		if err != nil {
			return nil, err
		}
		w.window = append(w.window, w.buf[:n]...)
		return w.buf[:n], nil
	}
	k := -1
	if w.rng.Intn(2) == 0 {
		n, err := c.TryPeekMore(w.buf[:1+w.rng.Intn(len(w.buf))])
		switch {
		case err == nil:
			w.window = append(w.window, w.buf[:n]...)
			return w.buf[:n], nil
		case !errors.Is(err, ErrEmpty):
			return nil, err
		}
		k = len(w.window) // nothing more now: let go of all
	} else {
		k = w.rng.Intn(len(w.window) + 1)
	}
	if w.releasing != nil {
		if err := w.releasing(w.window, k); err != nil {
			return nil, err
		}
	}
	if err := c.ReleaseFirst(k); err != nil {
		return nil, err
	}
	w.window = w.window[k:]
	return nil, nil
}

// reset forgets what the consumer held: it closed.
func (w *windower) reset() { w.window = w.window[:0] }

// deliveries accounts for every delivery of a numbered stream from
// several producers to one receiver (a consumer side, or one subscription):
// each message must be delivered at least once, and again only flagged;
// ordered, each producer's messages must come in order, but for those
// delivered again.
type deliveries struct {
	ordered bool
	count   [][]uint32 // per producer, per sequence number: deliveries
	flags   [][]uint32 // per producer, per sequence number: flagged deliveries
	last    []int64    // ordered: per producer, the highest delivered
	flagged int        // deliveries flagged
	again   int        // deliveries of a message delivered before
}

func newDeliveries(producers, count int, ordered bool) *deliveries {
	d := &deliveries{ordered: ordered, count: make([][]uint32, producers), flags: make([][]uint32, producers), last: make([]int64, producers)}
	for i := range d.count {
		d.count[i] = make([]uint32, count)
		d.flags[i] = make([]uint32, count)
		d.last[i] = -1
	}
	return d
}

// add records the delivery of held message m, after checking its payload.
func (d *deliveries) add(m Peeked, scratch []byte) error {
	id, seq, err := checkPeeked(m, scratch)
	if err != nil {
		return err
	}
	return d.addSeq(id, seq, m.Redelivered)
}

// checkPeeked is checkPayload for a message held in place, which may wrap.
func checkPeeked(m Peeked, scratch []byte) (id, seq uint64, err error) {
	data := m.Data
	if m.Wrapped != nil {
		data = append(append([]byte(nil), m.Data...), m.Wrapped...)
	}
	return checkPayload(m.Type, data, scratch)
}

func (d *deliveries) addSeq(id, seq uint64, flagged bool) error {
	switch {
	case id >= uint64(len(d.count)) || seq >= uint64(len(d.count[id])):
		return fmt.Errorf("producer %d message %d was never sent", id, seq)
	case d.count[id][seq] > 0 && !flagged:
		return fmt.Errorf("producer %d message %d delivered again, not flagged", id, seq)
	case d.ordered && int64(seq) > d.last[id]+1:
		return fmt.Errorf("producer %d message %d after %d", id, seq, d.last[id])
	}
	if d.count[id][seq] > 0 {
		d.again++
	}
	if flagged {
		d.flagged++
		d.flags[id][seq]++
	}
	d.count[id][seq]++
	d.last[id] = max(d.last[id], int64(seq))
	return nil
}

// missing returns an error naming the first message never delivered.
func (d *deliveries) missing() error {
	for id := range d.count {
		for seq, n := range d.count[id] {
			if n == 0 {
				return fmt.Errorf("producer %d message %d never delivered", id, seq)
			}
		}
	}
	return nil
}

// closeSlot is one consumer of TestWindowCloseConcurrent, closed by the
// closer and replaced by its goroutine.
type closeSlot struct {
	name   string        // the subscription's, on a fan-out ring
	c      *Consumer     // mu
	closed bool          // mu: Close has begun or is about to; Data is invalid
	done   bool          // mu: the goroutine got io.EOF and ended
	reopen chan struct{} // the closer's word that the closed one is gone: take its place
	opened chan struct{} // fan-out: the goroutine's word that its place is taken
}

// TestWindowCloseConcurrent: consumers that slide windows (PeekBatch,
// TryPeekMore, ReleaseFirst of random sizes) while another goroutine
// Closes them at random moments, each replaced at once by a new consumer
// (on a fan-out ring, its subscription resumed), and now and then all of
// them together, lose nothing: every message of each producer's numbered
// stream is delivered, one delivered again comes flagged Redelivered, and
// with a single consumer (or per subscription) each producer's come in
// order. Calls in flight at the Close return os.ErrClosed or finish; held
// Data is read only before the Close could begin. Every mode and a
// fan-out ring, over plain memory (under -race) and a segment, and with
// messages spanning slots (held alone) for some. Producers
// that find the ring full while every consumer is closed get
// ErrNoConsumers and send again; those of a fan-out ring pause while a
// subscription is closed, whose cursor does not hold them back.
func TestWindowCloseConcurrent(t *testing.T) {
	count := 6000
	if testing.Short() {
		count = 2000
	}
	const every = 30 // messages of each producer per Close, at least
	type closeCase struct {
		name                 string
		opts                 *Options
		producers, consumers int
		fan, ordered         bool
	}
	var cases []closeCase
	for _, mode := range allModes {
		c := closeCase{name: "mode=" + mode.String(), producers: 1, consumers: 1, ordered: !mode.multiConsumer()}
		if mode.multiProducer() {
			c.producers = 2
		}
		if mode.multiConsumer() {
			c.consumers = 3
		}
		c.opts = &Options{Mode: mode, Slots: 16, MaxMessage: 200}
		if mode.multiConsumer() {
			c.opts.MaxConsumers = c.consumers + 1
		}
		cases = append(cases, c)
	}
	cases = append(cases, closeCase{name: "fanout", opts: fanOpts(MPMC, PolicyBlock, 16), producers: 2, consumers: 2, fan: true, ordered: true})
	// Messages spanning up to four slots, each held alone.
	spanning := func(c closeCase) closeCase {
		o := *c.opts
		o.SlotSize = 64
		c.name, c.opts = c.name+"/slot=64", &o
		return c
	}
	cases = append(cases, spanning(cases[0]), spanning(cases[3]), spanning(cases[4]))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			forMemories(t, tc.opts, func(t *testing.T, r *Ring) {
				ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
				defer cancel()
				count := count
				if tc.fan {
					count /= 3 // each Close waits for the sends in flight
				}
				var mu sync.Mutex // the slots' fields, and the tallies
				var sendGate sync.RWMutex
				slots := make([]*closeSlot, tc.consumers)
				tallies := make([]*deliveries, 1)
				if tc.fan {
					tallies = make([]*deliveries, tc.consumers)
				}
				for i := range tallies {
					tallies[i] = newDeliveries(tc.producers, count, tc.ordered)
				}
				open := func(s *closeSlot) (*Consumer, error) {
					if tc.fan {
						return r.NewSubscriber(&SubscribeOptions{Name: s.name})
					}
					return r.NewConsumer()
				}
				for i := range slots {
					s := &closeSlot{name: fmt.Sprint("sub", i), reopen: make(chan struct{}, 1), opened: make(chan struct{}, 1)}
					c, err := open(s)
					if err != nil {
						t.Fatal(err)
					}
					s.c = c
					slots[i] = s
				}
				var prods []*Producer
				for i := 0; i < tc.producers; i++ {
					p, err := r.NewProducer()
					if err != nil {
						t.Fatal(err)
					}
					prods = append(prods, p)
				}
				errs := make(chan error, tc.producers+tc.consumers+1)
				fail := func(err error) { // the first error ends the run
					errs <- err
					cancel()
				}
				var consumers, producers sync.WaitGroup
				for i, s := range slots {
					consumers.Add(1)
					go func() {
						defer consumers.Done()
						tally := tallies[0]
						if tc.fan {
							tally = tallies[i]
						}
						if err := closedConsumer(ctx, &mu, s, tally, int64(i), open); err != nil {
							fail(fmt.Errorf("consumer %d: %w", i, err))
						}
					}()
				}
				var closed atomic.Int64 // Close calls made
				for i, p := range prods {
					producers.Add(1)
					go func() {
						defer producers.Done()
						buf := make([]byte, 200)
						for seq := uint64(0); seq < uint64(count); {
							// Closes all along the stream: wait for the closer
							// now and then.
							for seq%every == 0 && closed.Load() < int64(seq/every) && ctx.Err() == nil {
								time.Sleep(20 * time.Microsecond)
							}
							sendGate.RLock()
							err := p.Send(ctx, int64(i+1), payload(buf, uint64(i), seq))
							sendGate.RUnlock()
							switch {
							case err == nil:
								seq++
							case errors.Is(err, ErrNoConsumers):
								time.Sleep(20 * time.Microsecond) // every consumer is closed for now
							default:
								fail(fmt.Errorf("producer %d: %w", i, err))
								return
							}
						}
						if err := p.Close(); err != nil {
							fail(fmt.Errorf("producer %d: close: %w", i, err))
						}
					}()
				}
				stop := make(chan struct{})
				closes, together := 0, 0
				var closer sync.WaitGroup
				closer.Add(1)
				go func() {
					defer closer.Done()
					rng := rand.New(rand.NewSource(int64(count)))
					for {
						select {
						case <-stop:
							return
						default:
						}
						if d := rng.Intn(4); d > 0 {
							time.Sleep(time.Duration(rng.Intn(40*d)) * time.Microsecond)
						}
						// The consumers to close: one, or every one still there.
						var picked []*closeSlot
						all := rng.Intn(6) == 0
						if tc.fan {
							// A closed subscription holds no slot: no sends
							// until it is resumed.
							sendGate.Lock()
						}
						mu.Lock()
						for _, k := range rng.Perm(len(slots)) {
							if s := slots[k]; !s.closed && !s.done && (all || len(picked) == 0) {
								picked = append(picked, s)
							}
						}
						var cs []*Consumer
						for _, s := range picked {
							s.closed = true
							cs = append(cs, s.c)
						}
						mu.Unlock()
						if len(picked) == 0 { // closed ones not replaced yet, or all finished
							if tc.fan {
								sendGate.Unlock()
							}
							time.Sleep(10 * time.Microsecond)
							continue
						}
						for _, c := range cs {
							if err := c.Close(); err != nil {
								fail(fmt.Errorf("close: %w", err))
								if tc.fan {
									sendGate.Unlock()
								}
								return
							}
						}
						closes += len(cs)
						closed.Store(int64(closes))
						if len(cs) > 1 || len(slots) == 1 {
							together++
							time.Sleep(time.Duration(rng.Intn(100)) * time.Microsecond) // producers find none
						}
						for _, s := range picked {
							s.reopen <- struct{}{}
						}
						if tc.fan {
							for _, s := range picked {
								select {
								case <-s.opened:
								case <-ctx.Done():
								}
							}
							sendGate.Unlock()
						}
					}
				}()
				producers.Wait()
				consumers.Wait()
				close(stop)
				closer.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						t.Fatal(err)
					}
				}
				for i, d := range tallies {
					if err := d.missing(); err != nil {
						t.Fatalf("receiver %d: %v", i, err)
					}
					t.Logf("receiver %d: %d flagged, %d delivered again", i, d.flagged, d.again)
				}
				t.Logf("%d closes, %d of every consumer", closes, together)
				for _, s := range slots {
					if err := s.c.Close(); err != nil {
						t.Fatal(err)
					}
				}
			})
		})
	}
}

// closedConsumer slides windows over the consumer of s until io.EOF,
// recording in tally what it is handed while its consumer is not closed,
// and replacing the consumer, once the closer has closed it, with one
// from open.
func closedConsumer(ctx context.Context, mu *sync.Mutex, s *closeSlot, tally *deliveries, seed int64, open func(*closeSlot) (*Consumer, error)) error {
	w := newWindower(seed, 8)
	scratch := make([]byte, 200)
	mu.Lock()
	c := s.c
	mu.Unlock()
	// Those still held are intact, as long as they may be read.
	w.releasing = func(held []Peeked, _ int) error {
		mu.Lock()
		defer mu.Unlock()
		if s.closed {
			return nil
		}
		for _, m := range held {
			if _, _, err := checkPeeked(m, scratch); err != nil {
				return fmt.Errorf("held: %w", err)
			}
		}
		return nil
	}
	for {
		took, err := w.step(ctx, c)
		mu.Lock()
		closed := s.closed
		if !closed {
			switch {
			case errors.Is(err, io.EOF):
				s.done = true
				mu.Unlock()
				return nil
			case err != nil:
				mu.Unlock()
				return err
			}
			for _, m := range took {
				if err := tally.add(m, scratch); err != nil {
					mu.Unlock()
					return err
				}
			}
		}
		mu.Unlock()
		if !closed {
			continue
		}
		// Closed: what the call returned is not to be read; it comes again,
		// flagged, if it was held.
		if err != nil && !errors.Is(err, os.ErrClosed) && !errors.Is(err, io.EOF) {
			return fmt.Errorf("call during Close: %w", err)
		}
		w.reset()
		select {
		case <-s.reopen:
		case <-ctx.Done():
			return ctx.Err()
		}
		nc, err := open(s)
		// The closed consumer's role stays taken while the others deliver
		// what it handed back (many-consumer modes): wait for it.
		for errors.Is(err, ErrRoleTaken) && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
			nc, err = open(s)
		}
		if err != nil {
			return fmt.Errorf("replace a closed consumer: %w", err)
		}
		mu.Lock()
		s.c, s.closed = nc, false
		mu.Unlock()
		c = nc
		select {
		case s.opened <- struct{}{}:
		default:
		}
	}
}
