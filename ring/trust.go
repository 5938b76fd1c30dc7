package ring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"

	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/segment"
	"github.com/shmring/shmring/semaphore"
)

// Trust. Anyone who may write a ring's segment may rewrite its header,
// checksum included, so nothing in it is evidence by itself. A ring and
// its semaphore set are bound to each other by a fingerprint that the
// creator stores in the set's first semaphores: a hash of the ring's
// instance id, its segment id and its key. The segment id is the
// kernel's, so a forged header cannot name another ring's set and pass,
// even one whose instance id it copies; and setting a set's values needs
// write permission on the set, which the owner of a 0600 set keeps to
// itself. Before a ring uses or removes a set it checks, in this order:
// the set has the owner and creator of the segment, the size the header
// says, the ring's tag, and the fingerprint of this segment.

// fingerprint binds a ring's instance id to its segment and key: 60 bits,
// stored 15 to a semaphore.
func fingerprint(id [16]byte, segID int, key int32) uint64 {
	f := fnv.New64a()
	var b [24]byte
	copy(b[:16], id[:])
	binary.LittleEndian.PutUint32(b[16:], uint32(int32(segID)))
	binary.LittleEndian.PutUint32(b[20:], uint32(key))
	f.Write(b[:])
	return f.Sum64() >> 4
}

// initialValues returns the values a new ring's set starts with: the
// fingerprint, the segment id and the tag; every lock and wake-up
// semaphore 0.
func initialValues(n int, id [16]byte, segID int, key int32) []uint16 {
	v := make([]uint16, n)
	p := fingerprint(id, segID, key)
	for i := 0; i < printSems; i++ {
		v[semPrint+i] = uint16(p >> (15 * i) & 0x7fff)
	}
	s := uint32(int32(segID))
	v[semSegment] = uint16(s & 0x7fff)
	v[semSegment+1] = uint16(s >> 15 & 0x7fff)
	v[semSegment+2] = uint16(s >> 30)
	v[semTag] = semTagValue
	return v
}

// recordedSegment returns the segment id a ring's set records, and
// whether the set carries the ring's tag at all.
func recordedSegment(v []uint16) (int, bool) {
	if len(v) <= semTag || v[semTag] != semTagValue {
		return 0, false
	}
	s := uint32(v[semSegment]) | uint32(v[semSegment+1])<<15 | uint32(v[semSegment+2])<<30
	return int(int32(s)), true
}

// verifySet checks that sems is the set of the ring whose instance id,
// segment id and key are given, with n semaphores, and owned as the
// segment is (owner, nil for a ring in plain memory). Any failure is
// ErrCorrupt: the header names a set that is not its own.
func verifySet(sems *semaphore.Set, n int, id [16]byte, segID int, key int32, owner *ipc.Perm) error {
	info, err := sems.Stat()
	if err != nil {
		return fmt.Errorf("ring: semaphore set %d: %w", sems.ID(), err)
	}
	switch {
	case owner != nil && (info.UID != owner.UID || info.CUID != owner.CUID):
		return fmt.Errorf("%w: semaphore set %d belongs to uid %d (created by %d), the segment to uid %d (created by %d)",
			ErrCorrupt, sems.ID(), info.UID, info.CUID, owner.UID, owner.CUID)
	case info.Count != n:
		return fmt.Errorf("%w: semaphore set %d has %d semaphores, the ring has %d", ErrCorrupt, sems.ID(), info.Count, n)
	case key != 0 && info.Key != ipc.Key(key):
		return fmt.Errorf("%w: semaphore set %d has key %v, the ring %v", ErrCorrupt, sems.ID(), info.Key, ipc.Key(key))
	}
	v := make([]uint16, n)
	if err := sems.Values(v); err != nil {
		return fmt.Errorf("ring: semaphore set %d: %w", sems.ID(), err)
	}
	want := initialValues(semLocks, id, segID, key)
	for i := 0; i < semLocks; i++ {
		if v[i] != want[i] {
			return fmt.Errorf("%w: semaphore set %d does not carry this ring's fingerprint", ErrCorrupt, sems.ID())
		}
	}
	return nil
}

// ownedByCaller reports whether the caller's effective uid owns and
// created the object.
func ownedByCaller(p ipc.Perm) bool {
	uid := uint32(os.Geteuid())
	return p.UID == uid && p.CUID == uid
}

// checkAdoptable decides whether a non-exclusive Create may use the
// existing segment under its key: only one the caller owns and created,
// with the permissions asked for. A squatter who made the key's segment
// first, and even gave it to the caller, does not pass.
func checkAdoptable(seg *segment.Segment, perm fs.FileMode) error {
	info, err := seg.Stat()
	if err != nil {
		return err
	}
	if !ownedByCaller(info.Perm) {
		return fmt.Errorf("%w: key %v holds a segment of uid %d created by uid %d, not this process's (uid %d)",
			ErrForeign, seg.Key(), info.Perm.UID, info.Perm.CUID, os.Geteuid())
	}
	if info.Perm.Mode != perm {
		return fmt.Errorf("%w: key %v holds a segment with mode %v, not the %v asked for", ErrForeign, seg.Key(), info.Perm.Mode, perm)
	}
	return nil
}

// staleSet decides what to do with a semaphore set found under a key
// that a new ring is being created under: the segment that named the key
// is new, so the set belongs to a ring whose segment was removed (ipcrm
// -M) or to someone else. It returns nil if the set is a ring's stale set
// that the caller owns and may replace, and an error saying why not
// otherwise.
func staleSet(sems *semaphore.Set, newSeg int) error {
	info, err := sems.Stat()
	if err != nil {
		return err
	}
	if !ownedByCaller(info.Perm) {
		return fmt.Errorf("%w: key %v holds a semaphore set of uid %d (created by %d)", ErrForeign, sems.Key(), info.UID, info.CUID)
	}
	v := make([]uint16, info.Count)
	if err := sems.Values(v); err != nil {
		return err
	}
	old, ok := recordedSegment(v)
	if !ok {
		return fmt.Errorf("%w: key %v holds a semaphore set that is not a ring's", ErrForeign, sems.Key())
	}
	if old == newSeg {
		return fmt.Errorf("%w: key %v holds a semaphore set that claims the new segment", ErrCorrupt, sems.Key())
	}
	if s, err := segment.OpenID(old); err == nil {
		if si, err := s.Stat(); err == nil && !si.Removed && si.Perm.Key == sems.Key() {
			return fmt.Errorf("%w: key %v: the set's segment %d is still in use", ErrForeign, sems.Key(), old)
		}
	} else if !errors.Is(err, ipc.ErrRemoved) && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
