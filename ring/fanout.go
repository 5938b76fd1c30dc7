package ring

import (
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"time"

	"github.com/shmring/shmring/internal/atomicx"
)

// Fan-out rings (Options.Fanout): every subscriber receives every message.
//
// Slots are written as in the other modes, but no subscriber writes a
// slot: each has its own cursor, on its own role line (roleLine.cursor),
// and moves it past what it has finished. Producers reuse the slot of
// position p-N for p once the gate has passed p-N: under the Block policy
// the gate is the lowest cursor of the live, unevicted subscribers (the
// tail itself when there is none), which producers cache and read again
// only when the cached value says the ring is full; under Overwrite there
// is no gate and producers never wait.
//
// Whatever the policy, a producer marks a slot busy (seq = p) before it
// overwrites it and publishes it (seq = p+1) after: a sequence lock, which
// subscribers check after every copy, so that a message overwritten while
// it was read is never delivered (produce_fanout.go, consume_fanout.go).
// Under Block this matters only for the messages a subscriber may read
// without the gate's protection: those from before it joined (From
// Oldest, a durable subscription that resumes) and those of a subscriber
// just evicted.
//
// A slot's seq takes the values p (being written for p, or, for the first
// lap, free), p+1 (holds the message of p) and (p+1)|seqSkip (a hole that
// a dead producer left, skipped by every subscriber). A subscriber at
// position c that finds seq ≥ c+N has been lapped: it counts the lost
// messages, exactly, and goes on at the oldest one still in the slots.
//
// A message spanning slots (span.go) takes k consecutive positions,
// claimed all or none (Block: the gate must let all k be written), each
// marked busy before any is written, and published continuations first,
// head last. A subscriber reads it with its head and checks all k slots
// after the copy, so the sequence lock covers the whole message. Where
// messages span slots, lost counts positions: a message of k slots lost
// counts k (consume_fanout.go).

// Policy is what the producers of a fan-out ring do about a subscriber
// that falls a whole ring behind.
type Policy uint8

const (
	// PolicyBlock is lossless: producers wait for the slowest live
	// subscriber. A subscriber that dies leaves the gate at once (its death
	// wakes the producers, which find it dead); a live one that alone
	// holds the ring full for Options.EvictAfter is evicted, if that is
	// set, and its next call returns [ErrEvicted].
	PolicyBlock Policy = iota
	// Overwrite is lossy and never makes producers wait: a subscriber that
	// was lapped learns it on its next call, as a [LapError] with the
	// number of messages it lost, and goes on at the oldest message still
	// in the ring. It allows one producer only (mode SPMC): a producer
	// stopped between its claim and its write could otherwise overwrite a
	// slot that another producer has refilled for a later lap meanwhile.
	Overwrite
)

// String returns "block" or "overwrite".
func (p Policy) String() string {
	switch p {
	case PolicyBlock:
		return "block"
	case Overwrite:
		return "overwrite"
	}
	return fmt.Sprintf("Policy(%d)", uint8(p))
}

// ParsePolicy is the inverse of [Policy.String].
func ParsePolicy(s string) (Policy, error) {
	for p := PolicyBlock; p <= Overwrite; p++ {
		if p.String() == s {
			return p, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown policy %q (block, overwrite)", ErrInvalid, s)
}

// From is where a new subscription starts.
type From uint8

const (
	// Newest starts with the first message published after the subscriber
	// joined.
	Newest From = iota
	// Oldest starts with the oldest message still in the ring.
	Oldest
)

// SubscribeOptions configures [Ring.NewSubscriber]. The zero value (or
// nil) is an anonymous subscriber from the newest message.
type SubscribeOptions struct {
	// Name makes the subscription durable: a subscriber that takes the
	// same name after another closed it or died resumes at its position,
	// if the messages there are still in the ring (otherwise at the oldest
	// still there, with the difference reported as lost), and a message
	// the dead one held in place (Peek) is delivered again, flagged
	// Redelivered. The ring records a 64-bit hash of the name
	// ([NameHash]), not the name. One live subscriber at a time may hold a
	// name. Empty: anonymous.
	Name string
	// From is where a new subscription starts (a resumed one goes on where
	// it was).
	From From
}

// NameHash is what the ring records of a durable subscription's name:
// FNV-64a, never 0. [SubscriberStats] name subscriptions by it.
func NameHash(name string) uint64 {
	if name == "" {
		return 0
	}
	f := fnv.New64a()
	f.Write([]byte(name))
	return f.Sum64() | 1
}

// SubscriberStats is a snapshot of one subscription of a fan-out ring:
// each role line that holds a live or dead subscriber, or a closed durable
// subscription.
type SubscriberStats struct {
	Line     int    // role line, among the consumer lines
	NameHash uint64 // NameHash of its name; 0: anonymous
	PID      int    // its holder's (or last holder's) process
	Live     bool   // held by a live process
	Closed   bool   // closed, kept for its name
	Position uint64 // next position it receives
	Lag      uint64 // messages published that it has not received: Sent - Position
	Received uint64 // messages it received
	Lost     uint64 // messages producers overwrote before it received them (Overwrite, or before it joined the gate); slots, where messages span slots
	Evicted  bool   // producers evicted it (Block policy, EvictAfter)
}

// Fanout reports whether the ring is a fan-out ring (Options.Fanout).
func (r *Ring) Fanout() bool { return r.g.fan.on }

// Policy returns a fan-out ring's slow-subscriber policy (PolicyBlock on
// other rings).
func (r *Ring) Policy() Policy { return r.g.fan.policy }

// checkFanout reports the first impossible fan-out field of g.
func (g geometry) checkFanout() error {
	switch {
	case !g.fan.on && (g.fan.policy != PolicyBlock || g.fan.evictAfter != 0):
		return fmt.Errorf("%w: a slow-subscriber policy and EvictAfter need Fanout", ErrInvalid)
	case !g.fan.on:
		return nil
	case g.fan.policy > Overwrite:
		return fmt.Errorf("%w: unknown policy %d", ErrInvalid, g.fan.policy)
	case !g.mode.multiConsumer():
		return fmt.Errorf("%w: fan-out needs mode SPMC or MPMC (MaxConsumers is the most subscribers)", ErrInvalid)
	case g.selective:
		return fmt.Errorf("%w: a ring is either selective or fan-out", ErrInvalid)
	case g.fan.policy == Overwrite && g.mode.multiProducer():
		return fmt.Errorf("%w: the Overwrite policy allows one producer only (mode SPMC)", ErrInvalid)
	case g.fan.evictAfter < 0 || g.fan.policy == Overwrite && g.fan.evictAfter != 0:
		return fmt.Errorf("%w: EvictAfter %v: a positive time, with the Block policy only", ErrInvalid, g.fan.evictAfter)
	}
	return nil
}

func (g geometry) fanoutFeatures() uint32 {
	switch {
	case g.fan.on && g.fan.policy == Overwrite:
		return featureFanout | featureOverwrite
	case g.fan.on:
		return featureFanout
	}
	return 0
}

// policyOf is the policy that header feature bits name; an impossible
// combination (Overwrite without Fanout) is refused by checkFanout.
func policyOf(features uint32) Policy {
	if features&featureOverwrite != 0 {
		return Overwrite
	}
	return PolicyBlock
}

// NewSubscriber subscribes to a fan-out ring: the returned [Consumer]
// receives every message published after it joined (or from the oldest
// still in the ring, with From Oldest), in order, with every receive call
// (copy, batch, and in place with Peek, PeekBatch and Release). On a
// fan-out ring, [Ring.NewConsumer] is NewSubscriber(nil). It fails with
// [ErrRoleTaken] when every subscriber line is held by a live process, or
// when a live subscriber holds the name, and with ErrInvalid on a ring
// that is not fan-out.
//
// A subscriber's calls return, besides the errors of a consumer:
// [ErrEvicted] once producers evicted it (Block, EvictAfter), and a
// [LapError] (matching [ErrLapped]) when producers lapped it, after which
// it goes on at the oldest message still there; [Consumer.Lost] counts
// what it lost. Under Overwrite, [Consumer.Release] returns
// [ErrOverwritten] when a message held in place was overwritten.
//
// Under the Block policy no message published after NewSubscriber
// returns is lost while the subscriber lives and is not evicted.
func (r *Ring) NewSubscriber(opts *SubscribeOptions) (*Consumer, error) {
	if opts == nil {
		opts = &SubscribeOptions{}
	}
	if !r.g.fan.on {
		return nil, fmt.Errorf("%w: NewSubscriber needs a ring created with Options.Fanout", ErrInvalid)
	}
	name := NameHash(opts.Name)
	var f *fanoutReceiver
	var h *handle
	var err error
	for attempt := 0; ; attempt++ {
		h, err = r.takeSubscriber(name, func(h *handle, prev uint64) error {
			var err error
			f, err = newFanoutReceiver(h, prev, name, opts.From)
			return err
		})
		if !errors.Is(err, errNameBusy) || attempt >= nameBusyAttempts {
			break
		}
		time.Sleep(time.Millisecond) // a taker becomes active, a reaper lets go
	}
	if err != nil {
		if errors.Is(err, ErrRoleTaken) && opts.Name != "" {
			err = fmt.Errorf("%w (subscription %q)", err, opts.Name)
		}
		return nil, err
	}
	c := &Consumer{h: h, d: f, fan: f}
	if err := f.joined(); err != nil {
		return nil, errors.Join(err, h.close())
	}
	h.recoverPeers = h.reapDead
	h.closer = c.closeLocal
	if err := r.register(h); err != nil {
		return nil, errors.Join(err, h.close())
	}
	h.scanCheck() // deaths before ours are not posted to us: look once
	return c, nil
}

// takeSubscriber takes a consumer line for a subscriber, as Ring.take
// does, in the order a subscription wants: the line of its name if it has
// one (refusing a name a live process holds), then lines never used, then
// those of anonymous subscribers gone, and last those of other durable
// subscriptions closed or dead.
func (r *Ring) takeSubscriber(name uint64, recover func(h *handle, prev uint64) error) (*handle, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return nil, os.ErrClosed
	}
	if r.readOnly {
		return nil, fmt.Errorf("%w: a subscriber takes a role, which writes the ring", ErrReadOnly)
	}
	// A subscriber's death concerns the producers only, which wait for it
	// under the Block policy; other subscribers do not care.
	var armed []uint16
	pfirst, pcount := r.lines(producerSide)
	for i := pfirst; i < pfirst+pcount; i++ {
		armed = append(armed, uint16(semWakes(r.g.roles())+i))
	}
	h := &handle{r: r, side: consumerSide, armed: armed}
	if err := r.agreeFor(consumerSide); err != nil {
		return nil, err
	}
	vals := make([]uint16, r.sems.Len())
	if err := r.sems.Values(vals); err != nil {
		return nil, r.semError(err)
	}
	first, count := r.lines(consumerSide)
	var order []int
	for pass := 0; pass < 4; pass++ {
		for i := first; i < first+count; i++ {
			e := r.roles.At(uint64(i))
			// Acquire: the line's state and name, to choose; nothing relies
			// on them until we hold its lock (the takeover reads them again).
			st, nm := status(e.state.Load()), e.name.Load()
			locked := vals[semLocks+i] != 0
			// A live holder of the name, or a live process taking it (or
			// reaping its line) right now: the caller tries again soon.
			if pass == 0 && name != 0 && nm == name && locked {
				if st == roleActive {
					return nil, fmt.Errorf("%w: a live process holds the subscription", ErrRoleTaken)
				}
				return nil, errNameBusy
			}
			if locked {
				continue
			}
			var fits bool
			switch pass {
			case 0:
				fits = name != 0 && nm == name
			case 1:
				fits = nm == 0 && st == roleFree
			case 2:
				fits = nm == 0 && st != roleFree
			default:
				fits = nm != 0 && nm != name
			}
			if fits {
				order = append(order, i)
			}
		}
	}
	for _, i := range order {
		ok, err := h.takeLine(i, recover)
		if err != nil {
			return nil, err
		}
		if ok {
			return h, nil
		}
	}
	return nil, fmt.Errorf("%w: all %d subscriber roles are held by live processes", ErrRoleTaken, count)
}

// errNameBusy is takeSubscriber's ErrRoleTaken for a name whose line a
// live process has locked without holding it: taking the subscription, or
// reaping its dead holder. NewSubscriber tries again, nameBusyAttempts
// times a millisecond apart, before it gives up.
var errNameBusy = fmt.Errorf("%w: a process is taking or reaping the subscription", ErrRoleTaken)

const nameBusyAttempts = 100

// nameTaken reports ErrRoleTaken if a consumer line other than self names
// the subscription name and is locked: a live holder, or a live process
// taking it. Called after our line names it, it is the second half of a
// store-then-load on each side (SYNC(fanout-name)): of two processes that
// name it at once, at least one sees the other.
func (r *Ring) nameTaken(self int, name uint64) error {
	vals := make([]uint16, r.sems.Len())
	if err := r.sems.Values(vals); err != nil {
		return r.semError(err)
	}
	first, count := r.lines(consumerSide)
	for i := first; i < first+count; i++ {
		// Seq-cst load, SYNC(fanout-name): pairs with the store of name in
		// newFanoutReceiver; the line's lock was taken before that store.
		e := r.roles.At(uint64(i))
		if i != self && vals[semLocks+i] != 0 && e.name.Load() == name {
			// Acquire: whether it holds the name already, or is taking it.
			if status(e.state.Load()) == roleActive {
				return fmt.Errorf("%w: a live process holds the subscription", ErrRoleTaken)
			}
			return errNameBusy
		}
	}
	return nil
}

// fanoutTail returns the end of what producers have claimed (many
// producers) or published (one), as a subscriber that joins sees it. With
// one producer, that is the first position from its stored tail (which
// lags by less than N/2) whose slot is not published for it; a producer
// that laps the slots during the look (Overwrite) makes it start again
// from the newer stored tail, a bounded number of times, and then it
// returns what it found: a lower bound, which costs a joiner at most a
// lap report.
func (r *Ring) fanoutTail() (uint64, error) {
	// Acquire: the tail; with one producer, a start for the look at the
	// slots it published after storing it.
	tail := r.prod.pos.Load()
	if r.g.mode.multiProducer() {
		return tail, nil
	}
	pos := tail
	for attempt := 0; attempt < 8; attempt++ {
		lapped := false
		for k := uint64(0); k <= r.n; k++ {
			pos = tail + k
			// Acquire, SYNC(slot-publish): what the slot holds now.
			seq := r.descs.At(pos&r.mask).seq.Load() &^ seqSkip
			if seq != pos+1 {
				lapped = seq > pos+1
				break
			}
		}
		if !lapped {
			return pos, nil
		}
		// Acquire: the stored tail again, which the producer moved on.
		if t := r.prod.pos.Load(); t > tail {
			tail = t
			continue
		}
		return pos, nil
	}
	return pos, nil
}

// oldest returns the oldest position before tail whose slot still holds
// its message (or a hole), or tail if there is none.
func (r *Ring) oldest(tail uint64) uint64 {
	from := uint64(0)
	if tail > r.n {
		from = tail - r.n
	}
	for p := from; p < tail; p++ {
		// Acquire, SYNC(slot-publish): what the slot holds now; a later
		// overwrite is caught by the subscriber's check after each copy.
		if seq := r.descs.At(p & r.mask).seq.Load(); seq&^seqSkip == p+1 {
			return p
		}
	}
	return tail
}

// Subscribers appends to buf a snapshot of each subscription of a fan-out
// ring (none on another ring) and returns it: one system call, to read
// the role lines' locks, and no allocation if buf has room (the ring has
// at most MaxConsumers). Like [Ring.Stats], it never writes the ring.
func (r *Ring) Subscribers(buf []SubscriberStats) []SubscriberStats {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed || !r.g.fan.on {
		return buf
	}
	var s Stats
	// Relaxed would do: a start for the scan of what was published.
	s.Sent = r.prod.pos.Load()
	if !r.g.mode.multiProducer() {
		if tail, ok := r.publishedFrom(s.Sent); ok {
			s.Sent = tail
		}
	}
	r.statMu.Lock()
	defer r.statMu.Unlock()
	if len(r.statVals) != r.sems.Len() {
		r.statVals = make([]uint16, r.sems.Len())
	}
	known := r.sems.Values(r.statVals) == nil
	return r.fanoutStats(&s, buf, true, r.statVals, known)
}

// fanoutStats sets the counters of s that mean something else on a
// fan-out ring: Received, the messages the subscriptions received, and
// Depth, the positions the slowest live subscriber has not received; and
// appends each subscription to buf if list. vals are the semaphore values the
// caller read (known: it could).
func (r *Ring) fanoutStats(s *Stats, buf []SubscriberStats, list bool, vals []uint16, known bool) []SubscriberStats {
	first, count := r.lines(consumerSide)
	s.Received, s.Depth = 0, 0
	minPos, anyLive := s.Sent, false
	for i := first; i < first+count; i++ {
		e := r.roles.At(uint64(i))
		// Relaxed would do for every load: a display.
		st := e.state.Load()
		name := e.name.Load()
		if status(st) == roleFree || status(st) == roleClosed && name == 0 {
			continue
		}
		ss := SubscriberStats{
			Line: i - first, NameHash: name, PID: int(e.pid.Load()),
			Live:     status(st) == roleActive && (!known || vals[semLocks+i] != 0),
			Closed:   status(st) == roleClosed,
			Position: e.cursor.Load(), Received: e.msgs.Load(), Lost: e.lost.Load(),
			Evicted: e.evict.Load() == st>>8 && st>>8 != 0,
		}
		if s.Sent > ss.Position {
			ss.Lag = s.Sent - ss.Position
		}
		if ss.Live && !ss.Evicted {
			anyLive = true
			minPos = min(minPos, ss.Position)
		}
		s.Received += ss.Received
		if list {
			buf = append(buf, ss)
		}
	}
	if anyLive && s.Sent > minPos {
		s.Depth = int(min(s.Sent-minPos, r.n))
	}
	return buf
}

// joinFence is the subscriber's half of the join handshake: called once
// its line is active, it orders that store before the look at the tail
// that follows. SYNC(fanout-join), a full barrier: pairs with the fence in
// fanoutSender.refresh, so that a producer whose gate misses the new line
// has a gate no higher than the tail the subscriber reads next.
func joinFence() { atomicx.Fence() }

// announceJoin tells producers that a subscriber joined: they read the
// gate again before their next claim, so that only a claim in flight at
// this moment can still write past the new subscriber's cursor.
func (r *Ring) announceJoin() {
	// Seq-cst add, SYNC(fanout-joins): pairs with the producers' acquire
	// load of joins in claim; our line's activation, stored before, is
	// visible to the refresh that load triggers.
	r.prod.joins.Add(1)
}

// evictWatch is a Block producer's record of the gate while the ring is
// full: since when which position has held it.
type evictWatch struct {
	at    uint64 // gate position watched, +1; 0: none
	since time.Time
}
