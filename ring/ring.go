package ring

// Invariants. N is the slot count, p a position, slot(p) the cell p mod N.
//
//  1. cons.pos ≤ prod.pos ≤ cons.pos + N, as both are read in one snapshot
//     by a quiescent observer: producers claim only free slots, consumers only
//     full ones.
//  2. The producer that claimed p is the only writer of slot(p) until it
//     stores seq = p+1 (or a recoverer stores (p+1)|seqSkip for a dead
//     producer); the consumer that claimed p is its only reader from then on,
//     until it frees the slot. With many consumers it frees it by storing
//     seq = p+N, and a producer of p+N waits for that value; with one
//     consumer (headIndexed) it frees it by moving the head past p, and a
//     producer of p+N waits for head > p. seq never moves backwards.
//  3. Everything in a cell is written before the release store that moves
//     seq forward, and read only after an acquire load that saw it.
//  4. A process holding a role holds its role semaphore at 1 with SEM_UNDO;
//     a role line that says active while its semaphore is 0 belongs to a
//     dead process. Only a dead or closed line may be taken over, by CAS on
//     its state, whose generation makes every takeover unique.
//  5. In the multi modes a side's role line names the positions it has
//     claimed and not finished (claim, claimLen), written before the CAS
//     that claims them and cleared after the release store that finishes
//     them, so a dead holder's unfinished positions can be found.
//  6. Wake-ups: a sleeper raises its waiter count, runs the heavy barrier,
//     re-checks the ring, and only then sleeps; a publisher moves seq and
//     then reads the waiter count (with a fence unless the heavy barrier
//     covers its process). So either the sleeper sees the message or the
//     publisher sees the sleeper: no wake-up is lost.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/shmring/shmring/internal/atomicx"
	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/segment"
	"github.com/shmring/shmring/semaphore"
)

// Ring is one process's attachment to a ring: the mapped segment, the
// semaphore set, and views of the shared header. Make producers and
// consumers from it with [Ring.NewProducer] and [Ring.NewConsumer].
//
// A Ring's methods are safe for concurrent use by goroutines; the producers
// and consumers made from it each belong to one goroutine at a time. A Ring
// must not be copied.
type Ring struct {
	seg     *segment.Segment // nil for a ring over plain memory (tests)
	mapping *segment.Mapping // nil likewise
	sems    *semaphore.Set
	key     ipc.Key
	mem     []byte
	g       geometry
	waiting Waiting
	light   bool // this process is a membarrier target: publishers skip the fence
	// headIndexed is set for the single-consumer modes: the consumer frees
	// slots by moving the head alone, and producers compare positions with
	// the head instead of reading each slot's sequence word.
	headIndexed bool

	hdr   *header
	prod  *cursorLine
	cons  *cursorLine
	wait  *waitLine
	ctrl  *controlLine
	roles atomicx.Array[roleLine]
	slots atomicx.Array[slotHead]
	n     uint64 // slot count
	mask  uint64 // n - 1

	blocked atomic.Int32 // calls of this process in waitFor, for Close and Remove
	closing atomic.Bool  // Close has begun: blocked calls return os.ErrClosed

	mu      sync.Mutex
	closed  bool
	handles []interface{ Close() error }
}

// Create makes a new ring under key (ipc.Private for one reached only
// through a process that inherits or is told its ids) and attaches it. With
// opts.Exclusive it fails with an error matching fs.ErrExist when the key is
// taken; otherwise it opens the existing ring, which must have the geometry
// asked for.
func Create(key ipc.Key, opts *Options) (*Ring, error) {
	if opts == nil {
		opts = &Options{}
	}
	g := opts.geometry()
	if err := g.check(); err != nil {
		return nil, err
	}
	perm := opts.Perm
	if perm == 0 {
		perm = ipc.DefaultMode
	}
	if err := ipc.CheckMode(perm); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	seg, err := segment.Create(key, g.size(), &segment.Options{Mode: perm, Exclusive: true})
	if err != nil {
		if key != ipc.Private && !opts.Exclusive && errors.Is(err, os.ErrExist) {
			return openExisting(key, opts, g)
		}
		return nil, fmt.Errorf("ring: create: %w", err)
	}
	r, err := initSegment(seg, key, g, perm, opts.Wait)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("ring: create: %w", err), seg.Remove())
	}
	return r, nil
}

// openExisting serves a non-exclusive Create whose key was taken.
func openExisting(key ipc.Key, opts *Options, want geometry) (*Ring, error) {
	r, err := Open(key, &OpenOptions{Wait: opts.Wait})
	if err != nil {
		return nil, err
	}
	if r.g != want {
		return nil, errors.Join(fmt.Errorf("%w: key %v holds a ring with %d slots of %d bytes, mode %v",
			ErrInvalid, key, r.g.slots, r.g.maxMessage, r.g.mode), r.Close())
	}
	return r, nil
}

func initSegment(seg *segment.Segment, key ipc.Key, g geometry, perm os.FileMode, w Waiting) (*Ring, error) {
	m, err := seg.Attach(false)
	if err != nil {
		return nil, err
	}
	sems, err := semaphore.Create(ipc.Private, semRoles+g.roles(), &semaphore.Options{Mode: perm})
	if err != nil {
		return nil, errors.Join(err, m.Detach())
	}
	r, err := format(m.Bytes(), sems, g, w)
	if err != nil {
		return nil, errors.Join(err, sems.Remove(), m.Detach())
	}
	r.seg, r.mapping, r.key = seg, m, key
	return r, nil
}

// format lays a new ring over mem, which must be zeroed, line-aligned and at
// least g.size() bytes, and publishes its header.
func format(mem []byte, sems *semaphore.Set, g geometry, w Waiting) (*Ring, error) {
	if len(mem) < g.size() || !atomicx.Aligned(mem) {
		return nil, fmt.Errorf("%w: %d bytes of memory for a ring of %d", ErrInvalid, len(mem), g.size())
	}
	r, err := newRing(mem, sems, g, w)
	if err != nil {
		return nil, err
	}
	for i := uint64(0); i < r.n; i++ {
		// Not yet shared: the release store of State below publishes these.
		r.slots.At(i).seq.Store(i)
	}
	pid := os.Getpid()
	start, _ := processStart(pid)
	writeHeader(mem, r.hdr, g, sems.ID(), uint32(pid), start, time.Now().UnixNano(), uuid.New())
	// Release, SYNC(header-ready): pairs with the acquire load in waitReady;
	// every header field and slot sequence written above is visible to an
	// opener that sees stateReady.
	r.hdr.State.Store(stateReady)
	return r, nil
}

// newRing builds the views of a ring of geometry g over mem.
func newRing(mem []byte, sems *semaphore.Set, g geometry, w Waiting) (*Ring, error) {
	r := &Ring{sems: sems, mem: mem, g: g, waiting: w, n: uint64(g.slots), mask: uint64(g.slots - 1),
		headIndexed: !g.mode.multiConsumer()}
	var err error
	views := []error{}
	r.hdr, err = atomicx.At[header](mem, 0)
	views = append(views, err)
	r.prod, err = atomicx.At[cursorLine](mem, 1*lineSize)
	views = append(views, err)
	r.cons, err = atomicx.At[cursorLine](mem, 2*lineSize)
	views = append(views, err)
	r.wait, err = atomicx.At[waitLine](mem, 3*lineSize)
	views = append(views, err)
	r.ctrl, err = atomicx.At[controlLine](mem, 4*lineSize)
	views = append(views, err)
	r.roles, err = atomicx.NewArray[roleLine](mem, g.rolesOffset(), lineSize, g.roles())
	views = append(views, err)
	r.slots, err = atomicx.NewArray[slotHead](mem, g.slotsOffset(), g.stride(), g.slots)
	views = append(views, err)
	if err := errors.Join(views...); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	r.light = atomicx.RegisterBarrier()
	return r, nil
}

// Open attaches the ring under key, created by this or another process. It
// learns the geometry from the header, which it validates completely against
// the segment's real size: a segment that is not a ring, a ring of another
// layout version and a corrupt or truncated one give [ErrNotRing],
// [ErrVersion] and [ErrCorrupt]. A missing key gives an error matching
// fs.ErrNotExist, a ring the caller may not use one matching
// fs.ErrPermission.
func Open(key ipc.Key, opts *OpenOptions) (*Ring, error) {
	seg, err := segment.Open(key)
	if err != nil {
		return nil, fmt.Errorf("ring: open: %w", err)
	}
	return openSegment(seg, key, opts)
}

// OpenID is [Open] for a ring known by its segment id, such as a private
// one created by another process.
func OpenID(segmentID int, opts *OpenOptions) (*Ring, error) {
	seg, err := segment.OpenID(segmentID)
	if err != nil {
		return nil, fmt.Errorf("ring: open: %w", err)
	}
	return openSegment(seg, seg.Key(), opts)
}

func openSegment(seg *segment.Segment, key ipc.Key, opts *OpenOptions) (*Ring, error) {
	if opts == nil {
		opts = &OpenOptions{}
	}
	m, err := seg.Attach(false)
	if err != nil {
		return nil, fmt.Errorf("ring: open: %w", err)
	}
	r, err := openMemory(m.Bytes(), opts)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("ring: open %v: %w", key, err), m.Detach())
	}
	r.seg, r.mapping, r.key = seg, m, key
	return r, nil
}

// openMemory validates the ring in mem and attaches its semaphore set.
func openMemory(mem []byte, opts *OpenOptions) (*Ring, error) {
	timeout := opts.ReadyTimeout
	if timeout <= 0 {
		timeout = time.Second
	}
	if err := waitReady(mem, timeout); err != nil {
		return nil, err
	}
	g, err := validateHeader(mem)
	if err != nil {
		return nil, err
	}
	if !atomicx.Aligned(mem) {
		return nil, fmt.Errorf("%w: memory is not line-aligned", ErrInvalid)
	}
	r, err := newRing(mem, nil, g, opts.Wait)
	if err != nil {
		return nil, err
	}
	sems, err := semaphore.OpenID(int(r.hdr.SemID))
	if err != nil {
		return nil, err
	}
	if sems.Len() != semRoles+g.roles() {
		return nil, fmt.Errorf("%w: semaphore set %d has %d semaphores, the ring needs %d", ErrCorrupt, sems.ID(), sems.Len(), semRoles+g.roles())
	}
	r.sems = sems
	return r, nil
}

// waitReady waits, at most timeout, for the creator to publish the header.
// A segment whose first bytes are neither zero nor the magic is not a ring
// and fails at once.
func waitReady(mem []byte, timeout time.Duration) error {
	if len(mem) < lineSize {
		return fmt.Errorf("%w: segment of %d bytes is shorter than a ring header (%d)", ErrNotRing, len(mem), lineSize)
	}
	state, err := atomicx.Uint32At(mem, checksumOffset+8)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotRing, err)
	}
	deadline := time.Now().Add(timeout)
	for delay := 50 * time.Microsecond; ; delay = min(2*delay, 10*time.Millisecond) {
		if !bytes.Equal(mem[:8], magic[:]) && !bytes.Equal(mem[:8], make([]byte, 8)) {
			return fmt.Errorf("%w: bad magic % x", ErrNotRing, mem[:8])
		}
		// Acquire, SYNC(header-ready): pairs with the release store in
		// format; the header it guards may be read once this sees ready.
		if state.Load() == stateReady {
			return nil
		}
		if time.Now().After(deadline) {
			if bytes.Equal(mem[:8], magic[:]) {
				return fmt.Errorf("%w within %v", ErrNotReady, timeout)
			}
			return fmt.Errorf("%w: no magic and no header published within %v", ErrNotRing, timeout)
		}
		// Bounded polling: the semaphore set's id is in the header we are
		// waiting for, so there is nothing to sleep on yet.
		time.Sleep(delay)
	}
}

// Key returns the key the ring was created or opened under.
func (r *Ring) Key() ipc.Key { return r.key }

// SegmentID returns the id of the ring's shared-memory segment, or -1 for a
// ring over plain memory.
func (r *Ring) SegmentID() int {
	if r.seg == nil {
		return -1
	}
	return r.seg.ID()
}

// SemaphoreID returns the id of the ring's semaphore set.
func (r *Ring) SemaphoreID() int { return r.sems.ID() }

// InstanceID returns the UUID the creator gave the ring: two rings under the
// same key at different times have different instance ids.
func (r *Ring) InstanceID() uuid.UUID { return uuid.UUID(r.hdr.ID) }

// Mode returns the ring's mode.
func (r *Ring) Mode() Mode { return r.g.mode }

// MaxMessage returns the largest payload a slot holds, in bytes.
func (r *Ring) MaxMessage() int { return r.g.maxMessage }

// Slots returns the number of slots: how many messages the ring holds.
func (r *Ring) Slots() int { return r.g.slots }

// Stats is a snapshot of a ring's counters, cheap to take from any process.
// The counters are read one by one while the ring runs, so they are each
// exact but not mutually consistent.
type Stats struct {
	Capacity       int    // slots
	Sent           uint64 // positions claimed by producers (includes messages being written)
	Received       uint64 // positions claimed by consumers
	Depth          int    // Sent - Received: messages in the ring
	Producers      int    // producer roles held
	Consumers      int    // consumer roles held
	ConsumerSleeps uint64 // times a consumer slept on the semaphore
	ProducerSleeps uint64 // times a producer slept on the semaphore
	Wakeups        uint64 // semaphore posts made to wake sleepers
	Recovered      uint64 // slots skipped because their producer died before committing
	Redelivered    uint64 // messages delivered again because their consumer died holding them
}

// SemOps returns the semaphore operations the counters record: sleeps plus
// wake-ups. Divided by messages it says how often a message cost a system
// call.
func (s Stats) SemOps() uint64 { return s.ConsumerSleeps + s.ProducerSleeps + s.Wakeups }

// Stats returns the ring's counters. It makes no system call. After Close
// it returns zero Stats.
func (r *Ring) Stats() Stats {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return Stats{}
	}
	// Relaxed would do for every load below: counters that only ever grow,
	// and role statuses, read for display; no ordering between them is
	// promised (see Stats).
	sent, recv := r.prod.pos.Load(), r.cons.pos.Load()
	s := Stats{
		Capacity: r.g.slots, Sent: sent, Received: recv,
		ConsumerSleeps: r.ctrl.consumerSleeps.Load(),
		ProducerSleeps: r.ctrl.producerSleeps.Load(),
		Wakeups:        r.ctrl.wakeups.Load(),
		Recovered:      r.ctrl.recovered.Load(),
		Redelivered:    r.ctrl.redelivered.Load(),
	}
	if sent > recv {
		s.Depth = int(sent - recv)
	}
	for i := 0; i < r.g.roles(); i++ {
		// Acquire: a plain snapshot of the role's status.
		if st := r.roles.At(uint64(i)).state.Load() & 0xff; st == roleActive || st == roleAttaching {
			if i < r.g.maxProducers {
				s.Producers++
			} else {
				s.Consumers++
			}
		}
	}
	return s
}

// track registers a handle for closing with the ring.
func (r *Ring) track(h interface{ Close() error }) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return os.ErrClosed
	}
	r.handles = append(r.handles, h)
	return nil
}

func (r *Ring) untrack(h interface{ Close() error }) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, x := range r.handles {
		if x == h {
			r.handles = append(r.handles[:i], r.handles[i+1:]...)
			return
		}
	}
}

// Close closes every producer and consumer made from r that is still open,
// then detaches the segment. Calls of this process blocked on the ring
// return os.ErrClosed first (within checkEvery); Close waits for them. The
// ring itself stays, with its messages, until it is removed. After Close, r
// and its handles return os.ErrClosed; any slice they handed out is
// invalid. Close is idempotent.
func (r *Ring) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	handles := r.handles
	r.handles = nil
	r.mu.Unlock()
	// Process-local: blocked calls see it in idleCheck.
	r.closing.Store(true)
	r.awaitBlocked()
	var errs []error
	for _, h := range handles {
		errs = append(errs, h.Close())
	}
	if r.mapping != nil {
		errs = append(errs, r.mapping.Detach())
	}
	return errors.Join(errs...)
}

// awaitBlocked waits for the calls of this process blocked on the ring to
// return, which they do at their next check once the ring is removed or
// closing. It is bounded, in case a handle is used against its contract.
func (r *Ring) awaitBlocked() {
	// Process-local count (see waitFor); its decrement follows the blocked
	// call's last touch of the ring.
	for deadline := time.Now().Add(time.Second); r.blocked.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Microsecond)
	}
}

// Remove destroys the ring: it marks it removed, so that every process using
// it gets [ErrRemoved] at its next wait, removes the semaphore set, which
// wakes every sleeper with ErrRemoved, and removes the segment, which the
// kernel frees once the last process detaches. Then it waits for the calls
// of this process that were blocked on the ring to return, and closes r.
// Later opens of the key fail with fs.ErrNotExist. Remove works on a closed
// Ring too.
func (r *Ring) Remove() error {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if !closed {
		// Release: makes the flag visible to the checks in idleCheck; no
		// data depends on it.
		r.ctrl.flags.Store(flagRemoved)
	}
	errs := []error{r.sems.Remove()}
	if r.seg != nil {
		errs = append(errs, r.seg.Remove())
	}
	if !closed {
		// Sleepers wake at once (the semaphore set is gone), spinners at
		// their next check, all with ErrRemoved; then Close.
		r.awaitBlocked()
		errs = append(errs, r.Close())
	}
	return errors.Join(errs...)
}

// RemoveKey removes the ring under key without using it: the segment, and
// the semaphore set its header names if the header is valid. It serves to
// clean up after a creator that died before publishing its header, and
// tools that remove rings by key.
func RemoveKey(key ipc.Key) error {
	seg, err := segment.Open(key)
	if err != nil {
		return fmt.Errorf("ring: remove %v: %w", key, err)
	}
	var errs []error
	if m, err := seg.Attach(true); err == nil {
		if _, verr := validateHeader(m.Bytes()); verr == nil {
			if h, err := atomicx.At[header](m.Bytes(), 0); err == nil {
				if s, err := semaphore.OpenID(int(h.SemID)); err == nil {
					errs = append(errs, s.Remove())
				}
			}
		}
		errs = append(errs, m.Detach())
	}
	errs = append(errs, seg.Remove())
	return errors.Join(errs...)
}
