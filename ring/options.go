package ring

import (
	"fmt"
	"io/fs"
	"time"
)

// Mode says how many producers and consumers a ring admits.
type Mode uint32

// The four modes. The slot format is the same for all; what differs is
// whether a side claims positions with a compare-and-swap (multi) or owns
// its cursor outright (single).
const (
	SPSC Mode = 1 + iota // one producer, one consumer
	MPSC                 // many producers, one consumer
	SPMC                 // one producer, many consumers
	MPMC                 // many producers, many consumers
)

func (m Mode) multiProducer() bool { return m == MPSC || m == MPMC }
func (m Mode) multiConsumer() bool { return m == SPMC || m == MPMC }

// String returns "spsc", "mpsc", "spmc" or "mpmc".
func (m Mode) String() string {
	switch m {
	case SPSC:
		return "spsc"
	case MPSC:
		return "mpsc"
	case SPMC:
		return "spmc"
	case MPMC:
		return "mpmc"
	}
	return fmt.Sprintf("Mode(%d)", uint32(m))
}

// ParseMode is the inverse of [Mode.String].
func ParseMode(s string) (Mode, error) {
	for m := SPSC; m <= MPMC; m++ {
		if m.String() == s {
			return m, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown mode %q (spsc, mpsc, spmc, mpmc)", ErrInvalid, s)
}

// WaitStrategy says what a blocked call does while it waits.
type WaitStrategy uint8

// The wait strategies.
const (
	// Adaptive spins for [Waiting.Spin], then sleeps on the handle's
	// semaphore. It keeps the latency of spinning while the peer is busy and
	// costs no CPU while it is idle. While it spins it offers its CPU to
	// other threads every few microseconds (sched_yield(2)), so that
	// spinners do not starve busy processes where processes outnumber CPUs.
	// Before it sleeps it runs membarrier(2), which lets publishers skip a
	// fence on every message.
	Adaptive WaitStrategy = iota
	// Spin never sleeps: lowest latency, one CPU burnt per waiting side.
	// Having no sleep to be woken from, it looks for dead peers every 25 ms.
	Spin
	// Block sleeps at once: least CPU, a system call on every wait. A
	// process that blocks asks, through the ring, that every publisher to
	// its side fence after each publication instead of making each of its
	// sleeps run membarrier: a fence costs publishers some nanoseconds per
	// message, and spares every sleep two interrupts of the other CPUs.
	// The agreement stays for the ring's life.
	Block
)

// String returns "adaptive", "spin" or "block".
func (w WaitStrategy) String() string {
	switch w {
	case Adaptive:
		return "adaptive"
	case Spin:
		return "spin"
	case Block:
		return "block"
	}
	return fmt.Sprintf("WaitStrategy(%d)", uint8(w))
}

// ParseWaitStrategy is the inverse of [WaitStrategy.String].
func ParseWaitStrategy(s string) (WaitStrategy, error) {
	for w := Adaptive; w <= Block; w++ {
		if w.String() == s {
			return w, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown wait strategy %q (adaptive, spin, block)", ErrInvalid, s)
}

// DefaultSpin is how long the Adaptive strategy spins before it sleeps.
// Spinning for some tens of microseconds keeps busy processes out of the
// kernel, also when one of them waits for a reply the other must first
// compute; see BENCHMARKS.md for the measurements behind the value.
const DefaultSpin = 50 * time.Microsecond

// Waiting configures how a process's handles wait. The zero value is the
// default: Adaptive with DefaultSpin. A sleeping handle is woken by a
// publication, a peer's death, the cancellation of its context, or Close,
// and makes no system call in between.
type Waiting struct {
	Strategy WaitStrategy
	Spin     time.Duration // Adaptive only; 0 means DefaultSpin
}

func (w Waiting) spin() time.Duration {
	if w.Spin <= 0 {
		return DefaultSpin
	}
	return w.Spin
}

// Defaults for [Options].
const (
	DefaultMaxMessage = 1024
	DefaultSlots      = 1024
	DefaultRoles      = 16 // role lines per multi side (at most 512)
)

// Options configures [Create]. The zero value (or nil) gives an SPSC ring of
// DefaultSlots slots of DefaultMaxMessage bytes, mode 0600, adaptive waits.
type Options struct {
	Mode       Mode        // default SPSC
	MaxMessage int         // largest payload in bytes; default DefaultMaxMessage
	Slots      int         // a power of two ≥ 2; default DefaultSlots
	Perm       fs.FileMode // permission bits of segment and semaphores; default 0600
	Exclusive  bool        // fail with fs.ErrExist if the key is taken

	// SlotSize, if set below MaxMessage, makes slots of SlotSize payload
	// bytes (rounded up to a multiple of 64) for messages of up to
	// MaxMessage bytes: a message larger than a slot spans as many
	// consecutive slots as it needs, claimed, published and received
	// together (see Peeked.Wrapped). MaxMessage may then be at most half
	// of Slots×SlotSize. Unset, or not below MaxMessage, every slot holds
	// the largest message, as it always did. Messages that fit one slot
	// cost the same either way. Every mode takes it, selective and
	// fan-out rings too; on a fan-out ring what a subscriber lost is
	// counted in slots (see [LapError]).
	SlotSize int

	// Selective makes a ring whose consumers may receive by type, with
	// msgrcv's selectors ([Consumer.ReceiveSelect] and the other Select
	// calls): each takes only the messages its selector matches, the
	// others stay. It needs a mode with many consumers, SPMC or MPMC
	// (MaxConsumers may be 1). See consume_select.go's doc in [Consumer].
	Selective bool

	// MaxProducers and MaxConsumers bound how many producers and consumers
	// may be attached at once in the multi modes (default DefaultRoles, at
	// most 512 each). Single modes have one of each. A consumer that closes
	// holding messages (one too large for its last buffer, say) leaves them
	// on its line, which stays busy until another consumer has delivered
	// them: leave a few lines spare for that where consumers come and go. Each role line costs
	// a line of the segment and two semaphores, within the kernel's limit
	// per set (SEMMSL, the first field of /proc/sys/kernel/sem).
	MaxProducers int
	MaxConsumers int

	// Wait is how this process's handles wait.
	Wait Waiting

	// Fanout makes a fan-out ring, in mode SPMC or MPMC: every subscriber
	// ([Ring.NewSubscriber]) receives every message, and MaxConsumers is
	// the most subscribers attached at once (default DefaultRoles). Policy
	// says what producers do about a slow subscriber, EvictAfter (Block
	// policy only; 0: never) after how long one that alone holds the ring
	// full is evicted. See fanout.go's doc in [Ring.NewSubscriber].
	Fanout     bool
	Policy     Policy
	EvictAfter time.Duration
}

// OpenOptions configures [Open]. The ring's geometry comes from its header.
type OpenOptions struct {
	// Wait is how this process's handles wait.
	Wait Waiting
	// ReadyTimeout bounds the wait for a ring whose creator has not yet
	// published its header; default 1s.
	ReadyTimeout time.Duration
	// ReadOnly attaches the segment read-only (SHM_RDONLY), for monitors:
	// Stats, Header and Holders work and never write a byte of the ring;
	// NewProducer and NewConsumer fail with [ErrReadOnly]. It needs only
	// read permission on the segment and its semaphore set.
	ReadOnly bool
}

func (o *Options) geometry() geometry {
	g := geometry{mode: o.Mode, maxMessage: o.MaxMessage, slots: o.Slots,
		maxProducers: o.MaxProducers, maxConsumers: o.MaxConsumers, selective: o.Selective}
	g.fan = fanoutShape{on: o.Fanout, policy: o.Policy, evictAfter: o.EvictAfter}
	if g.mode == 0 {
		g.mode = SPSC
	}
	if g.maxMessage == 0 {
		g.maxMessage = DefaultMaxMessage
	}
	if g.slots == 0 {
		g.slots = DefaultSlots
	}
	if o.SlotSize < 0 {
		g.slot = -1 // check rejects it
	} else if s := (o.SlotSize + payloadAlign - 1) / payloadAlign * payloadAlign; s > 0 && s < g.maxMessage && g.maxMessage > InlineCap {
		g.slot = s
	}
	if g.maxProducers == 0 {
		g.maxProducers = 1
		if g.mode.multiProducer() {
			g.maxProducers = DefaultRoles
		}
	}
	if g.maxConsumers == 0 {
		g.maxConsumers = 1
		if g.mode.multiConsumer() {
			g.maxConsumers = DefaultRoles
		}
	}
	return g
}
