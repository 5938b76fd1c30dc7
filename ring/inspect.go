package ring

import (
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/google/uuid"

	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/segment"
	"github.com/shmring/shmring/semaphore"
)

// Header is what a ring's header says about it: written once by its
// creator, validated by Open.
type Header struct {
	Version      uint32    // layout version
	InstanceID   uuid.UUID // made at Create; a ring re-created under the same key has another
	Mode         Mode
	Slots        int
	SlotSize     int // payload-area bytes per slot; 0 when every message fits in its descriptor; below MaxMessage when messages span slots
	MaxMessage   int
	MaxProducers int // producer role lines
	MaxConsumers int // consumer role lines
	Key          ipc.Key
	SemaphoreID  int
	Creator      ipc.Process // the creating process (pid and start time)
	Created      time.Time
}

// Header returns the ring's header as it was when this process created or
// opened the ring (it is written once, and a later scribble on it does not
// change what it says here). It works after Close too.
func (r *Ring) Header() Header { return r.header }

// readHeader reads the write-once header, once validated or written.
func (r *Ring) readHeader() Header {
	return Header{
		Version:    r.hdr.Version,
		InstanceID: uuid.UUID(r.seal.ID),
		Mode:       r.g.mode, Slots: r.g.slots, SlotSize: r.g.slotSize(), MaxMessage: r.g.maxMessage,
		MaxProducers: r.g.maxProducers, MaxConsumers: r.g.maxConsumers,
		Key: ipc.Key(r.hdr.Key), SemaphoreID: int(r.hdr.SemID),
		Creator: ipc.Process{PID: int(r.hdr.CreatorPID), Start: r.hdr.CreatorStart},
		Created: time.Unix(0, r.hdr.Created),
	}
}

// Holder is one role line that a process holds or held: a producer or
// consumer attached now, or one that died and whose line no live process
// has cleaned up yet.
type Holder struct {
	Role     string    // "producer" or "consumer"
	Line     int       // index among the role lines of its side
	PID      int       // the holder's pid
	Start    uint64    // its start time, clock ticks after boot (with PID, names the process)
	Since    time.Time // when it took the role
	Alive    bool      // the kernel still holds the line's lock for it (SEM_UNDO)
	Messages uint64    // messages sent or received through this line, by every holder so far
	Bytes    uint64    // their payload bytes
}

// Holders returns the ring's role holders, live and dead, producers first.
// Liveness comes from the kernel: a holder keeps its line's lock semaphore
// up with SEM_UNDO, so a dead holder's lock is down. It makes one system
// call (GETALL on the semaphore set) and never writes the ring.
func (r *Ring) Holders() ([]Holder, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return nil, nil
	}
	vals := make([]uint16, r.sems.Len())
	if err := r.sems.Values(vals); err != nil {
		return nil, r.semError(err)
	}
	var out []Holder
	for i := 0; i < r.g.roles(); i++ {
		h, ok := r.holder(i, vals[semLocks+i] != 0)
		if ok {
			out = append(out, h)
		}
	}
	return out, nil
}

// holder reads role line i as a Holder; ok is false for a line nobody
// holds (free, or closed by its holder).
func (r *Ring) holder(i int, locked bool) (h Holder, ok bool) {
	e := r.roles.At(uint64(i))
	// Relaxed would do for every load here: a display, for monitors.
	st := status(e.state.Load())
	if st != roleActive && st != roleDead {
		return Holder{}, false
	}
	h = Holder{Role: producerSide.String(), Line: i, PID: int(e.pid.Load()), Start: e.start.Load(),
		Since: time.Unix(0, e.since.Load()), Alive: st == roleActive && locked,
		Messages: e.msgs.Load(), Bytes: e.bytes.Load()}
	if i >= r.g.maxProducers {
		h.Role, h.Line = consumerSide.String(), i-r.g.maxProducers
	}
	return h, true
}

// RemoveID is [RemoveKey] for a ring known by its segment id, such as a
// private one: it removes the segment and its semaphore set only once it
// has proved both are a ring's.
func RemoveID(segmentID int) error {
	seg, err := segment.OpenID(segmentID)
	if err != nil {
		return fmt.Errorf("ring: remove segment %d: %w", segmentID, err)
	}
	return removeSegment(seg, seg.Key())
}

// StaleSet is a semaphore set left by a ring whose segment is gone (removed
// with ipcrm -m, or by a creator that died half-way): it carries a ring's
// tag and names a segment that no longer exists.
type StaleSet struct {
	ID      int
	Key     ipc.Key
	Segment int // the segment id it names
	Owner   ipc.Perm
	Changed time.Time // the set's creation or last change
}

// StaleSets lists the stale ring sets the caller may read.
func StaleSets() ([]StaleSet, error) {
	recs, err := semaphore.List()
	if err != nil {
		return nil, err
	}
	var out []StaleSet
	for _, rec := range recs {
		sems, err := semaphore.OpenID(rec.ID)
		if err != nil {
			continue
		}
		seg, stale := staleSegment(sems)
		if stale {
			out = append(out, StaleSet{ID: rec.ID, Key: rec.Key, Segment: seg, Owner: rec.Perm, Changed: rec.ChangeTime})
		}
	}
	return out, nil
}

// staleSegment reports whether sems is a ring's set whose segment is gone,
// and the segment id it names.
func staleSegment(sems *semaphore.Set) (int, bool) {
	// A ring's set: the fixed semaphores, then a lock and a wake-up
	// semaphore for each of at least two role lines.
	if n := sems.Len(); n < semCount(2) || (n-semLocks)%2 != 0 {
		return 0, false
	}
	v := make([]uint16, sems.Len())
	if sems.Values(v) != nil {
		return 0, false
	}
	for _, lock := range v[semLocks:semWakes((len(v)-semLocks)/2)] {
		if lock > 1 {
			return 0, false // a lock is 0 or 1
		}
	}
	id, ok := recordedSegment(v)
	if !ok {
		return 0, false
	}
	_, err := segment.OpenID(id)
	return id, errors.Is(err, ipc.ErrRemoved) || errors.Is(err, fs.ErrNotExist)
}

// RemoveStaleSet removes the semaphore set id if it is a stale ring set
// (see [StaleSets]), and refuses with [ErrNotRing] otherwise.
func RemoveStaleSet(id int) error {
	sems, err := semaphore.OpenID(id)
	if err != nil {
		return fmt.Errorf("ring: remove semaphore set %d: %w", id, err)
	}
	if _, stale := staleSegment(sems); !stale {
		return fmt.Errorf("ring: remove semaphore set %d: %w: not a ring's set whose segment is gone", id, ErrNotRing)
	}
	return ignoreRemoved(sems.Remove())
}
