package ring

// Invariants. N is the slot count, p a position, slot(p) the slot p mod N.
//
//  1. head ≤ tail ≤ head + N, as a quiescent observer reads them: producers
//     claim only free slots, consumers only published ones.
//  2. The producer that claimed p is the only writer of slot(p) until it
//     stores seq = p+1 (or a recoverer stores (p+1)|seqSkip for a dead
//     producer); the consumer that claimed p is its only reader from then on,
//     until it frees the slot. Several consumers free it by storing seq =
//     p+N, and the producer of p+N waits for that value; a single consumer
//     frees it by moving the head past p, and the producer of p+N waits for
//     head > p. seq never moves backwards.
//  3. Everything in a slot is written before the release store that moves
//     seq forward, and read only after an acquire load that saw it.
//  4. Role line i is written only by the process that holds its lock,
//     semaphore semLocks+i, at 1 with SEM_UNDO: its holder while the line is
//     active, or a process recovering or taking it over. The kernel unlocks
//     it when that process dies. An active line whose lock is 0 belongs to a
//     dead holder.
//  5. A multi-side handle names on its line the positions it is claiming
//     (claim, claimLen) before the CAS that claims them, and clears them
//     after it has finished them, so that a dead holder's unfinished
//     positions can always be found. A claim stays on its line until the
//     process that holds the line's lock has finished it.
//  6. Wake-ups: a sleeper sets its bit in its side's sleep line, orders
//     that before its re-check of the ring (membarrier, or a fence that
//     publishers match), re-checks, and only then sleeps on its own line's
//     wake-up semaphore; a publisher moves seq (or a cursor) and then reads
//     the sleep line. So either the sleeper sees the publication or the
//     publisher sees the sleeper. A process that takes a role makes the
//     kernel post the wake-up semaphores of every line that must react to
//     its death (SEM_UNDO), so a death wakes the sleepers it concerns.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/shmring/shmring/internal/atomicx"
	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/segment"
	"github.com/shmring/shmring/semaphore"
)

// Ring is one process's attachment to a ring: the mapped segment, the
// semaphore set, and views of the shared layout. Make producers and
// consumers from it with [Ring.NewProducer] and [Ring.NewConsumer].
//
// A Ring's methods are safe for concurrent use by goroutines, and so is
// closing it while its producers and consumers are in use; each producer
// and consumer belongs to one goroutine at a time. A Ring must not be
// copied.
type Ring struct {
	seg     *segment.Segment // nil for a ring over plain memory (tests)
	mapping *segment.Mapping // nil likewise
	sems    *semaphore.Set
	key     ipc.Key
	mem     []byte
	g       geometry
	waiting Waiting
	self    ipc.Process

	// light: this process is a target of every process's membarrier, so
	// its publications may skip the fence when the other side's sleepers
	// use membarrier (see sleepFenced).
	light bool
	// fencedSleeper: this process's sleepers must ask publishers to fence,
	// because it cannot run membarrier or because its wait strategy is
	// Block, which sleeps at once and should not pay for membarrier.
	fencedSleeper bool

	header   Header // the header as created or opened, kept in process memory
	hdr      *header
	seal     *sealLine
	prod     *cursorLine
	cons     *cursorLine
	sleepers [2]*sleepLine // by side: the sleepers of that side
	ctrl     *controlLine
	roles    atomicx.Array[roleLine]
	descs    atomicx.Array[slotDesc]
	payload  []byte // the payload area, N*slotSize bytes
	n, mask  uint64
	slot     int     // slotSize
	maxSize  uint32  // g.maxMessage, where the busy path compares sizes
	quiet    [2]bool // by side: light, and one sleep mask word covers its lines

	// mu orders the ring's own calls (Stats, NewProducer, ...) with Close:
	// they hold it shared while they touch the memory.
	mu         sync.RWMutex
	closed     bool
	removed    bool
	removeDone chan struct{} // closed once the first Remove has finished
	readOnly   bool          // attached SHM_RDONLY: no store may touch mem

	statMu   sync.Mutex // Stats' scratch
	statVals []uint16   // the semaphore values Stats reads

	hmu     sync.Mutex
	handles map[*handle]struct{}
	retire  bool // a zero-copy slice was out when its handle closed
}

// fencedForTest makes this process behave as one that cannot run
// membarrier, for the tests of the fence agreement.
var fencedForTest bool

// Create makes a new ring under key (ipc.Private for one reached only by
// its ids) and attaches it.
//
// With opts.Exclusive it fails with an error matching fs.ErrExist when the
// key is taken. Otherwise, when the key holds a ring already, Create opens
// it, but only if the caller created and owns both its segment and its
// semaphore set, their permissions are opts.Perm, and its geometry is the
// one asked for; another user's ring under the key gives [ErrForeign]. The
// segment and the semaphore set are both created under key, so that ipcs
// shows them together.
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
		if key != ipc.Private && !opts.Exclusive && errors.Is(err, fs.ErrExist) {
			return adopt(key, opts, g, perm)
		}
		return nil, fmt.Errorf("ring: create: %w", err)
	}
	r, err := build(seg, key, g, perm, opts.Wait)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("ring: create: %w", err), seg.Remove())
	}
	return r, nil
}

// adopt serves a non-exclusive Create whose key was taken.
func adopt(key ipc.Key, opts *Options, want geometry, perm fs.FileMode) (*Ring, error) {
	seg, err := segment.Open(key)
	if err != nil {
		return nil, fmt.Errorf("ring: create: %w", err)
	}
	if err := checkAdoptable(seg, perm); err != nil {
		return nil, fmt.Errorf("ring: create: %w", err)
	}
	r, err := openSegment(seg, key, &OpenOptions{Wait: opts.Wait})
	if err != nil {
		return nil, err
	}
	info, err := r.sems.Stat()
	switch {
	case err != nil:
		return nil, errors.Join(fmt.Errorf("ring: create: %w", err), r.Close())
	case info.Mode != perm:
		return nil, errors.Join(fmt.Errorf("ring: create: %w: key %v holds a ring whose semaphore set has mode %v, not %v",
			ErrForeign, key, info.Mode, perm), r.Close())
	case r.g != want:
		return nil, errors.Join(fmt.Errorf("%w: key %v holds a ring with %d slots of %d bytes, mode %v",
			ErrInvalid, key, r.g.slots, r.g.maxMessage, r.g.mode), r.Close())
	}
	return r, nil
}

// build makes the semaphore set of a new segment and formats the ring.
func build(seg *segment.Segment, key ipc.Key, g geometry, perm fs.FileMode, w Waiting) (*Ring, error) {
	m, err := seg.Attach(false)
	if err != nil {
		return nil, err
	}
	// The magic and version first: from here on, a creator that dies
	// leaves a segment that RemoveKey and Open know for a ring's.
	copy(m.Bytes(), magic[:])
	binary.LittleEndian.PutUint32(m.Bytes()[offVersion:], layoutVersion)
	sems, err := newSet(key, seg.ID(), semCount(g.roles()), perm)
	if err != nil {
		return nil, errors.Join(err, m.Detach())
	}
	id := uuid.New()
	if err := sems.SetValues(initialValues(sems.Len(), id, seg.ID(), int32(key))); err != nil {
		return nil, errors.Join(err, sems.Remove(), m.Detach())
	}
	r, err := format(m.Bytes(), sems, g, w, identity{key: int32(key), semID: sems.ID(), id: id})
	if err != nil {
		return nil, errors.Join(err, sems.Remove(), m.Detach())
	}
	r.seg, r.mapping, r.key = seg, m, key
	return r, nil
}

// newSet creates the semaphore set of a new ring under key. A set already
// there belongs to a ring whose segment is gone (ipcrm -M frees the key of
// the segment only): it is replaced if the caller owns it, and reported
// otherwise, never shared with the new ring.
func newSet(key ipc.Key, segID, n int, perm fs.FileMode) (*semaphore.Set, error) {
	for attempt := 0; ; attempt++ {
		sems, err := semaphore.Create(key, n, &semaphore.Options{Mode: perm, Exclusive: true})
		if err == nil || key == ipc.Private || !errors.Is(err, fs.ErrExist) || attempt > 0 {
			return sems, err
		}
		old, err := semaphore.Open(key)
		if err != nil {
			continue // gone meanwhile: try again
		}
		if err := staleSet(old, segID); err != nil {
			return nil, err
		}
		if err := old.Remove(); err != nil && !errors.Is(err, ipc.ErrRemoved) {
			return nil, err
		}
	}
}

// format lays a new ring over mem, which must be zeroed, line-aligned and
// at least g.size() bytes, and publishes its header.
func format(mem []byte, sems *semaphore.Set, g geometry, w Waiting, who identity) (*Ring, error) {
	if len(mem) < g.size() || !atomicx.Aligned(mem) {
		return nil, fmt.Errorf("%w: %d bytes of memory for a ring of %d", ErrInvalid, len(mem), g.size())
	}
	r, err := newRing(mem, sems, g, w)
	if err != nil {
		return nil, err
	}
	for i := uint64(0); i < r.n; i++ {
		// Not yet shared: the release store of State below publishes these.
		r.descs.At(i).seq.Store(i)
	}
	who.pid, who.start, who.created = uint32(r.self.PID), r.self.Start, time.Now().UnixNano()
	writeHeader(mem, r.hdr, r.seal, g, who)
	r.header = r.readHeader()
	// Release, SYNC(header-ready): pairs with the acquire load in waitReady;
	// every header field and slot sequence written above is visible to an
	// opener that sees stateReady.
	r.seal.State.Store(stateReady)
	return r, nil
}

// newRing builds the views of a ring of geometry g over mem.
func newRing(mem []byte, sems *semaphore.Set, g geometry, w Waiting) (*Ring, error) {
	self, err := ipc.Self()
	if err != nil {
		return nil, err
	}
	r := &Ring{sems: sems, mem: mem, g: g, waiting: w, self: self, n: uint64(g.slots), mask: uint64(g.slots - 1),
		slot: g.slotSize(), maxSize: uint32(g.maxMessage), handles: map[*handle]struct{}{}}
	var errs []error
	view := func(err error) { errs = append(errs, err) }
	r.hdr, err = atomicx.At[header](mem, 0)
	view(err)
	r.seal, err = atomicx.At[sealLine](mem, lineSize)
	view(err)
	r.prod, err = atomicx.At[cursorLine](mem, 2*lineSize)
	view(err)
	r.cons, err = atomicx.At[cursorLine](mem, 3*lineSize)
	view(err)
	r.sleepers[consumerSide], err = atomicx.At[sleepLine](mem, 4*lineSize)
	view(err)
	r.sleepers[producerSide], err = atomicx.At[sleepLine](mem, 5*lineSize)
	view(err)
	r.ctrl, err = atomicx.At[controlLine](mem, 6*lineSize)
	view(err)
	r.roles, err = atomicx.NewArray[roleLine](mem, g.rolesOffset(), lineSize, g.roles())
	view(err)
	r.descs, err = atomicx.NewArray[slotDesc](mem, g.descsOffset(), lineSize, g.slots)
	view(err)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	r.payload = mem[g.payloadOffset():g.size():g.size()]
	r.quiet = [2]bool{r.light && r.words(producerSide) == 1, r.light && r.words(consumerSide) == 1}
	r.light = atomicx.RegisterBarrier() && !fencedForTest
	r.fencedSleeper = !r.light || w.Strategy == Block
	r.quiet = [2]bool{r.light && r.words(producerSide) == 1, r.light && r.words(consumerSide) == 1}
	return r, nil
}

// Open attaches the ring under key, created by this or another process. It
// learns the geometry from the header, which it validates completely against
// the segment's real size, and checks that the semaphore set the header
// names is the ring's own (see [ErrCorrupt]): a segment that is not a ring,
// a ring of another layout version and a corrupt or truncated one give
// [ErrNotRing], [ErrVersion] and [ErrCorrupt], without a byte written. A
// missing key gives an error matching fs.ErrNotExist, a ring the caller may
// not use one matching fs.ErrPermission.
//
// A ring may be shared with other users on purpose (a Perm of 0660 or
// 0666): Open joins it, once the checks have passed.
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
	info, err := seg.Stat()
	if err != nil {
		return nil, fmt.Errorf("ring: open: %w", err)
	}
	m, err := seg.Attach(opts.ReadOnly)
	if err != nil {
		return nil, fmt.Errorf("ring: open: %w", err)
	}
	creator := ipc.Process{PID: info.CreatorPID}
	if p, err := ipc.FindProcess(info.CreatorPID); err == nil {
		creator = p
	}
	r, err := openMemory(m.Bytes(), opts, seg.ID(), &info.Perm, creator)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("ring: open %v: %w", key, err), m.Detach())
	}
	r.seg, r.mapping, r.key, r.readOnly = seg, m, key, opts.ReadOnly
	return r, nil
}

// openMemory validates the ring in mem and attaches its semaphore set.
// segID is the segment's id (-1 for plain memory), owner its ownership
// (nil for plain memory), creator the process that created the segment
// (a zero Process if it has exited).
func openMemory(mem []byte, opts *OpenOptions, segID int, owner *ipc.Perm, creator ipc.Process) (*Ring, error) {
	timeout := opts.ReadyTimeout
	if timeout <= 0 {
		timeout = time.Second
	}
	if !atomicx.Aligned(mem) {
		return nil, fmt.Errorf("%w: memory is not line-aligned", ErrInvalid)
	}
	if err := waitReady(mem, timeout, creator); err != nil {
		return nil, err
	}
	g, err := validateHeader(mem)
	if err != nil {
		return nil, err
	}
	r, err := newRing(mem, nil, g, opts.Wait)
	if err != nil {
		return nil, err
	}
	sems, err := semaphore.OpenID(int(r.hdr.SemID))
	if err != nil {
		if errors.Is(err, ipc.ErrRemoved) {
			return nil, fmt.Errorf("%w: its semaphore set %d is gone (removed with ipcrm?)", ErrRemoved, r.hdr.SemID)
		}
		return nil, err
	}
	if err := verifySet(sems, semCount(g.roles()), r.seal.ID, segID, r.hdr.Key, owner); err != nil {
		return nil, err
	}
	r.sems = sems
	r.header = r.readHeader()
	return r, nil
}

// waitReady waits, at most timeout, for the creator to publish the header.
// It waits only while the segment could still become a ring: all zero, or
// with the magic and no version yet, and its creator alive. Anything else
// fails at once: a segment that is not a ring with ErrNotRing, a ring of
// another layout version with ErrVersion (before any other field is read),
// an unpublished ring whose creator died with ErrNotReady.
func waitReady(mem []byte, timeout time.Duration, creator ipc.Process) error {
	if len(mem) < headerSize {
		return fmt.Errorf("%w: segment of %d bytes is shorter than a ring header (%d)", ErrNotRing, len(mem), headerSize)
	}
	seal, err := atomicx.At[sealLine](mem, lineSize)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotRing, err)
	}
	deadline := time.Now().Add(timeout)
	for delay := 50 * time.Microsecond; ; delay = min(2*delay, 10*time.Millisecond) {
		// Acquire, SYNC(header-ready): pairs with the release store in
		// format; the header it guards may be read once this sees ready.
		state := seal.State.Load()
		v, isRing := versionOf(mem)
		switch {
		case !isRing && !allZero(mem[:headerSize]):
			return fmt.Errorf("%w: bad magic % x", ErrNotRing, mem[:8])
		case isRing && v != 0 && v != layoutVersion:
			return fmt.Errorf("%w: layout version %d, this package reads %d", ErrVersion, v, layoutVersion)
		case state == stateReady:
			return nil
		case !creator.Alive() && isRing:
			return fmt.Errorf("%w: its creator (pid %d) exited before publishing the header", ErrNotReady, creator.PID)
		case !creator.Alive():
			return fmt.Errorf("%w: the segment is all zero and its creator (pid %d) has exited", ErrNotRing, creator.PID)
		case time.Now().After(deadline) && isRing:
			return fmt.Errorf("%w within %v", ErrNotReady, timeout)
		case time.Now().After(deadline):
			return fmt.Errorf("%w: no header was published within %v", ErrNotRing, timeout)
		}
		// Bounded polling: the semaphore set's id is in the header we are
		// waiting for, so there is nothing to sleep on yet.
		time.Sleep(delay)
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
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
func (r *Ring) InstanceID() uuid.UUID { return r.header.InstanceID }

// Mode returns the ring's mode.
func (r *Ring) Mode() Mode { return r.g.mode }

// MaxMessage returns the largest message the ring holds, in bytes.
func (r *Ring) MaxMessage() int { return r.g.maxMessage }

// Slots returns the number of slots: how many messages the ring holds
// (fewer when they span slots, see Options.SlotSize).
func (r *Ring) Slots() int { return r.g.slots }

// register records a new handle, so that Close closes it; it fails once
// the ring is closing.
func (r *Ring) register(h *handle) error {
	r.hmu.Lock()
	defer r.hmu.Unlock()
	if r.handles == nil {
		return os.ErrClosed
	}
	r.handles[h] = struct{}{}
	return nil
}

func (r *Ring) unregister(h *handle, zeroCopyOut bool) {
	r.hmu.Lock()
	defer r.hmu.Unlock()
	delete(r.handles, h)
	r.retire = r.retire || zeroCopyOut
}

// Close closes every producer and consumer made from r that is still
// open, from whatever goroutine: a call in flight on one of them returns
// os.ErrClosed (or completes, if it was past waiting), and Close waits for
// it. Then it detaches the segment. The ring itself stays, with its
// messages, until it is removed. After Close, r and its handles return
// os.ErrClosed. Close is idempotent.
//
// A slice handed out by [Producer.Reserve] or [Consumer.Peek] is invalid
// after Close, but using it does not fault: if a handle closed with one
// outstanding, Close replaces the mapping with private zeroed memory
// instead of unmapping it (see segment.Mapping.Retire), which stays until
// the process exits. A message looked at in place and not released is not
// consumed by the close: the next consumer gets it, flagged Redelivered.
func (r *Ring) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	r.hmu.Lock()
	handles := make([]*handle, 0, len(r.handles))
	for h := range r.handles {
		handles = append(handles, h)
	}
	r.handles = nil // register fails from now on
	r.hmu.Unlock()
	// Stop every handle's calls first, then close the handles: none of
	// this process's calls runs while another handle gives back what it
	// holds.
	for _, h := range handles {
		h.g.shut(h.interrupt)
	}
	var errs []error
	for _, h := range handles {
		errs = append(errs, h.close())
	}
	if r.mapping != nil {
		if r.retire {
			errs = append(errs, r.mapping.Retire())
		} else {
			errs = append(errs, r.mapping.Detach())
		}
	}
	return errors.Join(errs...)
}

// Remove destroys the ring: it marks it removed, so that every process
// using it gets [ErrRemoved] at its next wait, removes the semaphore set,
// which wakes every sleeper in every process with ErrRemoved, and removes
// the segment, which the kernel frees once the last process detaches. Then
// it closes r, as [Ring.Close] does. Later opens of the key fail with
// fs.ErrNotExist. Remove works on a closed Ring too; a second Remove
// returns an error matching ErrRemoved.
func (r *Ring) Remove() error {
	r.mu.Lock()
	if r.removed {
		done := r.removeDone
		r.mu.Unlock()
		// Another Remove may still be at it: when this one returns, the
		// ring is gone (a signal handler's Remove, say, must not let the
		// process exit half-way through another goroutine's).
		<-done
		return fmt.Errorf("ring: remove: %w already", ErrRemoved)
	}
	r.removed = true
	r.removeDone = make(chan struct{})
	defer close(r.removeDone)
	if !r.closed && !r.readOnly {
		// Release: makes the flag visible to every process's waits; no
		// data depends on it.
		atomicx.StoreRelease32(&r.ctrl.flags, flagRemoved)
	}
	r.mu.Unlock()
	step("remove:marked")
	var errs []error
	if err := r.sems.Remove(); err != nil && !errors.Is(err, ipc.ErrRemoved) {
		errs = append(errs, err)
	}
	if r.seg != nil {
		if err := r.seg.Remove(); err != nil && !errors.Is(err, ipc.ErrRemoved) {
			errs = append(errs, err)
		}
	}
	errs = append(errs, r.Close())
	return errors.Join(errs...)
}

// RemoveKey removes the ring under key without using it: its segment and
// its semaphore set, or whichever of the two is left (after ipcrm -m or -s,
// or a creator that died half-way). It removes only what it can prove is a
// ring's: a segment with the ring's magic (of any layout version) and a set
// that carries the fingerprint of that segment, or, with no segment, a set
// that carries a ring's tag and names a segment that is gone. Anything
// else under the key is left alone, with [ErrNotRing] or [ErrForeign]. A
// key that holds neither gives an error matching fs.ErrNotExist.
func RemoveKey(key ipc.Key) error {
	seg, err := segment.Open(key)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("ring: remove %v: %w", key, err)
		}
		return removeStaleSet(key)
	}
	return removeSegment(seg, key)
}

// removeSegment removes seg, found under key, and its semaphore set, once
// it has proved both are a ring's.
func removeSegment(seg *segment.Segment, key ipc.Key) error {
	m, err := seg.Attach(true)
	if err != nil {
		return fmt.Errorf("ring: remove %v: %w", key, err)
	}
	defer m.Detach()
	mem := m.Bytes()
	v, isRing := versionOf(mem)
	if !isRing && !(allZero(mem[:min(len(mem), headerSize)]) && keyedSetOf(key, seg) != nil) {
		return fmt.Errorf("ring: remove %v: %w: segment %d has no ring's magic", key, ErrNotRing, seg.ID())
	}
	var errs []error
	var sems *semaphore.Set
	if v == layoutVersion {
		sems, _ = setOf(mem, seg)
	}
	if sems == nil {
		// A header that names no set of its own (forged, or of another
		// version): the set under the key, if it records this segment.
		sems = keyedSetOf(key, seg)
	}
	if sems != nil {
		errs = append(errs, ignoreRemoved(sems.Remove()))
	}
	errs = append(errs, ignoreRemoved(seg.Remove()))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ring: remove %v: %w", key, err)
	}
	return nil
}

// setOf finds the semaphore set of the ring in mem, a read-only view of
// seg, and proves it is the ring's.
func setOf(mem []byte, seg *segment.Segment) (*semaphore.Set, error) {
	g, err := validateHeader(mem)
	if err != nil {
		return nil, err
	}
	info, err := seg.Stat()
	if err != nil {
		return nil, err
	}
	hdr, err := atomicx.At[header](mem, 0)
	if err != nil {
		return nil, err
	}
	seal, err := atomicx.At[sealLine](mem, lineSize)
	if err != nil {
		return nil, err
	}
	sems, err := semaphore.OpenID(int(hdr.SemID))
	if err != nil {
		return nil, err
	}
	if err := verifySet(sems, semCount(g.roles()), seal.ID, seg.ID(), hdr.Key, &info.Perm); err != nil {
		return nil, err
	}
	return sems, nil
}

// keyedSetOf returns the semaphore set under key if it is a ring's set
// that records seg as its segment and has seg's owner and creator, and nil
// otherwise.
func keyedSetOf(key ipc.Key, seg *segment.Segment) *semaphore.Set {
	if key == ipc.Private {
		return nil
	}
	sems, err := semaphore.Open(key)
	if err != nil {
		return nil
	}
	si, err1 := seg.Stat()
	mi, err2 := sems.Stat()
	if err1 != nil || err2 != nil || mi.UID != si.Perm.UID || mi.CUID != si.Perm.CUID {
		return nil
	}
	v := make([]uint16, mi.Count)
	if sems.Values(v) != nil {
		return nil
	}
	if id, ok := recordedSegment(v); !ok || id != seg.ID() {
		return nil
	}
	return sems
}

// removeStaleSet removes the semaphore set left under key by a ring whose
// segment is gone.
func removeStaleSet(key ipc.Key) error {
	sems, err := semaphore.Open(key)
	if err != nil {
		return fmt.Errorf("ring: remove %v: %w", key, err)
	}
	if err := staleSet(sems, -1); err != nil {
		return fmt.Errorf("ring: remove %v: %w", key, err)
	}
	if err := ignoreRemoved(sems.Remove()); err != nil {
		return fmt.Errorf("ring: remove %v: %w", key, err)
	}
	return nil
}

func ignoreRemoved(err error) error {
	if errors.Is(err, ipc.ErrRemoved) {
		return nil
	}
	return err
}
