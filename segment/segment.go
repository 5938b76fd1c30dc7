package segment

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/shmring/shmring/ipc"
)

// Flags from linux/shm.h that golang.org/x/sys/unix does not name.
const (
	shmHugeTLB = 0o4000 // shmget: back the segment with huge pages (SHM_HUGETLB)
	shmDest    = 0o1000 // shm_perm.mode: removed, destroyed at the last detach (SHM_DEST)
	shmLocked  = 0o2000 // shm_perm.mode: locked in memory by SHM_LOCK (SHM_LOCKED)
)

// Paths read to explain size and huge-page errors. Both are per IPC
// namespace (shmmax) or per system (nr_hugepages) and may change at any
// time, so they are read when needed, never cached.
const (
	procShmmax      = "/proc/sys/kernel/shmmax"
	procNrHugepages = "/proc/sys/vm/nr_hugepages"
)

// Segment is a handle on a System V shared-memory segment: its key and the
// kernel's id for it. It holds no resource of its own, so it needs no
// closing, and dropping it changes nothing in the kernel; the segment
// itself lives until [Segment.Remove] and its last detach.
//
// A Segment never changes after it is made: it is safe for concurrent use
// by multiple goroutines, and copying the value is harmless.
type Segment struct {
	key ipc.Key
	id  int
}

// Options are the choices [Create] offers. The zero value (and a nil
// *Options) gives a segment with [ipc.DefaultMode], opening one that
// already exists with the key. Create only reads its Options and keeps no
// reference to them.
type Options struct {
	// Mode holds the segment's nine permission bits. Zero means
	// ipc.DefaultMode (0600); to make a segment nobody may attach, create
	// it and then call SetMode(0).
	Mode fs.FileMode

	// Exclusive makes Create fail with an error matching fs.ErrExist when
	// a segment with the key already exists (IPC_EXCL), instead of opening
	// it. It has no effect with ipc.Private, which always creates.
	Exclusive bool

	// HugePages backs a new segment with huge pages (SHM_HUGETLB). The
	// kernel rounds the memory up to whole huge pages. Create fails with
	// ErrHugePages if the system has none to give.
	HugePages bool
}

// Create returns the segment that key names, creating it with size bytes
// if it does not exist (shmget with IPC_CREAT). With [ipc.Private] it
// always creates a new segment, which only its id reaches. The memory of a
// new segment is zero.
//
// If the segment exists, its mode and size are left as they are; it must
// hold at least size bytes, or Create returns an error matching [ErrSize].
// With opts.Exclusive an existing segment is an error matching
// fs.ErrExist instead.
//
// A size that is not positive, or larger than the system's limit for one
// segment, is an error matching [ErrSize]; one the system cannot reserve
// memory for matches unix.ENOMEM. Running out of segments or shared memory
// system-wide matches [ipc.ErrLimit]. A nil opts is the same as
// &Options{}.
func Create(key ipc.Key, size int, opts *Options) (*Segment, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	mode := o.Mode
	if mode == 0 {
		mode = ipc.DefaultMode
	}
	if err := ipc.CheckMode(mode); err != nil {
		return nil, fmt.Errorf("segment: create key %v: %w", key, err)
	}
	if err := checkSize(key, size); err != nil {
		return nil, err
	}
	flag := unix.IPC_CREAT | int(mode)
	if o.Exclusive {
		flag |= unix.IPC_EXCL
	}
	if o.HugePages {
		flag |= shmHugeTLB
	}
	id, err := unix.SysvShmGet(int(key), size, flag)
	if err != nil {
		return nil, createError(key, size, o.HugePages, err)
	}
	return &Segment{key: key, id: id}, nil
}

// checkSize rejects a size the kernel would refuse with a bare EINVAL.
func checkSize(key ipc.Key, size int) error {
	if size <= 0 {
		return fmt.Errorf("%w: create key %v with %d bytes: the size must be positive", ErrSize, key, size)
	}
	// SHMMAX is an unsigned long; its default is close to 1<<64 and
	// does not fit an int, so compare as uint64.
	if limit, ok := shmmax(); ok && uint64(size) > limit {
		return fmt.Errorf("%w: create key %v with %d bytes: more than the system's limit of %d (%s)",
			ErrSize, key, size, limit, procShmmax)
	}
	return nil
}

// shmmax returns the largest segment size the kernel allows in this IPC
// namespace, and false if it cannot be read (the kernel then decides).
func shmmax() (uint64, bool) {
	b, err := os.ReadFile(procShmmax)
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return v, err == nil
}

// createError explains why shmget refused to create or open a segment of
// size bytes.
func createError(key ipc.Key, size int, huge bool, errno error) error {
	if errors.Is(errno, unix.EINVAL) && key != ipc.Private {
		// Sizes were checked, so EINVAL means an existing segment is
		// too small for size (unless SHMMAX shrank in between).
		if id, err := unix.SysvShmGet(int(key), 0, 0); err == nil {
			if have, ok := sizeOf(id); ok && have < uint64(size) {
				why := fmt.Sprintf("the existing segment has %d bytes, fewer than the %d asked for", have, size)
				return ipc.NewError("segment", "shmget", key, id, &explained{why, ErrSize, errno})
			}
		}
	}
	if huge {
		var why string
		switch {
		case errors.Is(errno, unix.ENOMEM):
			n := "unknown"
			if b, err := os.ReadFile(procNrHugepages); err == nil {
				n = strings.TrimSpace(string(b))
			}
			why = fmt.Sprintf("not enough free huge pages for %d bytes (%s is %s)", size, procNrHugepages, n)
		case errors.Is(errno, unix.EPERM):
			why = "the caller may not use huge pages (it needs CAP_IPC_LOCK or the group in /proc/sys/vm/hugetlb_shm_group)"
		case errors.Is(errno, unix.EINVAL), errors.Is(errno, unix.ENOENT):
			why = "the kernel has no huge pages of the default size"
		}
		if why != "" {
			return ipc.NewError("segment", "shmget", key, -1, &explained{why, ErrHugePages, errno})
		}
	}
	if errors.Is(errno, unix.ENOMEM) {
		// The kernel charges the whole size to its memory commit
		// accounting at creation, and refuses a size it could never
		// back (more than RAM and swap, under the default policy).
		why := fmt.Sprintf("the system cannot reserve %d bytes of memory", size)
		return ipc.NewError("segment", "shmget", key, -1, &explained{why, nil, errno})
	}
	return ipc.NewError("segment", "shmget", key, -1, errno)
}

// sizeOf returns the size of segment id, from IPC_STAT or, if the caller
// may not read the segment, from /proc/sysvipc/shm.
func sizeOf(id int) (uint64, bool) {
	var d unix.SysvShmDesc
	if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &d); err == nil {
		return d.Segsz, true
	}
	list, err := ipc.ListShm()
	if err != nil {
		return 0, false
	}
	for _, r := range list {
		if r.ID == id {
			return r.Size, true
		}
	}
	return 0, false
}

// Open returns the existing segment that key names (shmget(key, 0, 0)). A
// key that names no segment is an error matching fs.ErrNotExist; a segment
// that was removed no longer has its key, so it is not found either.
// [ipc.Private] names no segment: Open returns an error matching
// [ErrPrivate].
//
// Like shmget(key, 0, 0), Open does not check that the caller may use the
// segment: [Segment.Attach] and [Segment.Stat] do, and fail with an error
// matching fs.ErrPermission.
func Open(key ipc.Key) (*Segment, error) {
	if key == ipc.Private {
		return nil, fmt.Errorf("%w: open key %v: use OpenID", ErrPrivate, key)
	}
	id, err := unix.SysvShmGet(int(key), 0, 0)
	if err != nil {
		return nil, ipc.NewError("segment", "shmget", key, -1, err)
	}
	return &Segment{key: key, id: id}, nil
}

// OpenID returns the segment with the given id, as printed by ipcs(1) or
// returned by [Segment.ID] in another process. It checks that the id names
// a segment (IPC_STAT) and learns its key; if the caller may not read the
// segment's status, the key is taken from /proc/sysvipc/shm instead. An id
// that names no segment is an error matching fs.ErrNotExist and
// [ipc.ErrRemoved] (the kernel cannot tell an id that never existed from
// one that was removed); a negative one matches unix.EINVAL.
//
// The key of a segment that was removed while still attached is
// [ipc.Private], as the kernel reports it.
func OpenID(id int) (*Segment, error) {
	if id < 0 {
		return nil, ipc.NewError("segment", "shmctl(IPC_STAT)", ipc.Private, id,
			fmt.Errorf("id must not be negative: %w", unix.EINVAL))
	}
	s := &Segment{id: id}
	var d unix.SysvShmDesc
	_, err := unix.SysvShmCtl(id, unix.IPC_STAT, &d)
	if err == nil {
		s.key = ipc.Key(d.Perm.Key)
		return s, nil
	}
	if errors.Is(err, unix.EACCES) {
		if list, lerr := ipc.ListShm(); lerr == nil {
			for _, r := range list {
				if r.ID == id {
					s.key = r.Key
					return s, nil
				}
			}
		}
	}
	return nil, s.error("shmctl(IPC_STAT)", err)
}

// ID returns the kernel's id for the segment, which names it to every
// process (ipcs(1) prints it as shmid).
func (s *Segment) ID() int { return s.id }

// Key returns the key the segment was created or opened with
// ([ipc.Private] for a private segment).
func (s *Segment) Key() ipc.Key { return s.key }

// error wraps errno, the failure of operation op on s. An EINVAL from a
// call by id means the id is gone if the kernel no longer knows it; then
// the error matches [ipc.ErrRemoved].
func (s *Segment) error(op string, errno error) error {
	if errors.Is(errno, unix.EINVAL) && s.gone() {
		why := &explained{"no segment has this id (it never existed, or was removed)", nil, errno}
		return ipc.NewGoneError("segment", op, s.key, s.id, why)
	}
	return ipc.NewError("segment", op, s.key, s.id, errno)
}

// gone reports whether the kernel no longer knows s's id. A segment the
// caller may not read (EACCES) still exists.
func (s *Segment) gone() bool {
	var d unix.SysvShmDesc
	_, err := unix.SysvShmCtl(s.id, unix.IPC_STAT, &d)
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EIDRM)
}

// Attach maps the segment into the process (shmat) at an address the
// kernel chooses, read-write, or read-only if readOnly is true. Each call
// makes a new [Mapping] that must be detached on its own; attaching twice
// gives two addresses for the same memory.
//
// The caller needs read permission, and write permission too unless
// readOnly; otherwise the error matches fs.ErrPermission. A segment that
// was removed and whose last mapping is gone matches [ipc.ErrRemoved]; one
// that was removed but is still attached somewhere can still be attached.
func (s *Segment) Attach(readOnly bool) (*Mapping, error) {
	flag := 0
	if readOnly {
		flag = unix.SHM_RDONLY
	}
	// SysvShmAttach also reads the segment's size (IPC_STAT) to build the
	// slice, and detaches again if it cannot.
	b, err := unix.SysvShmAttach(s.id, 0, flag)
	if err != nil {
		return nil, s.error("shmat", err)
	}
	return &Mapping{seg: s, readOnly: readOnly, b: b}, nil
}

// Stat returns the segment's status (shmctl IPC_STAT). The caller needs
// read permission; otherwise the error matches fs.ErrPermission.
func (s *Segment) Stat() (Info, error) {
	var d unix.SysvShmDesc
	if _, err := unix.SysvShmCtl(s.id, unix.IPC_STAT, &d); err != nil {
		return Info{}, s.error("shmctl(IPC_STAT)", err)
	}
	return newInfo(&d), nil
}

// SetMode sets the segment's nine permission bits (shmctl IPC_SET). Only
// the segment's owner or creator, or a process with CAP_SYS_ADMIN, may;
// anyone else gets an error matching fs.ErrPermission. A mode with other
// bits is an error.
//
// IPC_SET writes mode, owner and group together, so SetMode reads the
// current owner first: a [Segment.SetOwner] made by another process in
// between can be undone. Callers that change both should do it from one
// place.
func (s *Segment) SetMode(mode fs.FileMode) error {
	if err := ipc.CheckMode(mode); err != nil {
		return fmt.Errorf("segment: set mode of id %d: %w", s.id, err)
	}
	return s.set(func(p *unix.SysvIpcPerm) {
		p.Mode = uint32(mode)
	})
}

// SetOwner sets the segment's owner and group (shmctl IPC_SET), as
// chown(2) does: -1 leaves that id as it is. The creator's ids do not
// change. Only the segment's owner or creator, or a process with
// CAP_SYS_ADMIN, may; anyone else gets an error matching fs.ErrPermission.
// The same caveat as for [Segment.SetMode] applies.
func (s *Segment) SetOwner(uid, gid int) error {
	for _, v := range [...]struct {
		name string
		id   int
	}{{"uid", uid}, {"gid", gid}} {
		// (uid_t)-1 is not an id; larger values would be truncated.
		if v.id < -1 || v.id >= math.MaxUint32 {
			return ipc.NewError("segment", "shmctl(IPC_SET)", s.key, s.id,
				fmt.Errorf("%s %d out of range: %w", v.name, v.id, unix.EINVAL))
		}
	}
	return s.set(func(p *unix.SysvIpcPerm) {
		if uid != -1 {
			p.Uid = uint32(uid)
		}
		if gid != -1 {
			p.Gid = uint32(gid)
		}
	})
}

// set reads the segment's permission record, lets change edit it and
// writes it back.
func (s *Segment) set(change func(*unix.SysvIpcPerm)) error {
	var d unix.SysvShmDesc
	if _, err := unix.SysvShmCtl(s.id, unix.IPC_STAT, &d); err != nil {
		// A process that may not read the segment may still own it:
		// IPC_SET checks ownership, not the mode. Start from what
		// /proc/sysvipc/shm shows.
		if !errors.Is(err, unix.EACCES) || !s.permFromProc(&d.Perm) {
			return s.error("shmctl(IPC_STAT)", err)
		}
	}
	change(&d.Perm)
	if _, err := unix.SysvShmCtl(s.id, unix.IPC_SET, &d); err != nil {
		return s.error("shmctl(IPC_SET)", err)
	}
	return nil
}

// permFromProc fills p with s's owner, group and mode from
// /proc/sysvipc/shm, and reports whether it found s there.
func (s *Segment) permFromProc(p *unix.SysvIpcPerm) bool {
	list, err := ipc.ListShm()
	if err != nil {
		return false
	}
	for _, r := range list {
		if r.ID == s.id {
			p.Uid, p.Gid, p.Mode = r.UID, r.GID, uint32(r.Mode)
			return true
		}
	}
	return false
}

// Remove marks the segment for removal (shmctl IPC_RMID). The kernel
// frees it when its last mapping is detached; until then, existing
// mappings keep working and [Segment.Stat] reports [Info.Removed], but the
// key no longer finds it, so [Open] fails with fs.ErrNotExist and a
// [Create] with the same key makes a new segment.
//
// Only the segment's owner or creator, or a process with CAP_SYS_ADMIN,
// may remove it; anyone else gets an error matching fs.ErrPermission. A
// segment that is already gone is an error matching [ipc.ErrRemoved].
// Removing a segment that is marked but still attached succeeds again.
func (s *Segment) Remove() error {
	if _, err := unix.SysvShmCtl(s.id, unix.IPC_RMID, nil); err != nil {
		return s.error("shmctl(IPC_RMID)", err)
	}
	return nil
}

// Info is a segment's status: every field of the kernel's shmid_ds. It is
// a snapshot taken by [Segment.Stat], a plain value that may be copied and
// shared freely; it does not follow later changes.
type Info struct {
	Perm       ipc.Perm  // key, owner, creator and the nine permission bits
	Size       uint64    // size in bytes, as created (shm_segsz)
	Attached   uint64    // current number of attaches, in all processes (shm_nattch)
	CreatorPID int       // pid of the creator (shm_cpid)
	LastPID    int       // pid of the last shmat or shmdt (shm_lpid)
	AttachTime time.Time // last shmat; zero if never (shm_atime)
	DetachTime time.Time // last shmdt; zero if never (shm_dtime)
	ChangeTime time.Time // creation or last IPC_SET (shm_ctime)
	Removed    bool      // marked for removal, freed at the last detach (SHM_DEST)
	Locked     bool      // locked in memory with SHM_LOCK (SHM_LOCKED)
}

func newInfo(d *unix.SysvShmDesc) Info {
	return Info{
		Perm: ipc.Perm{
			Key:  ipc.Key(d.Perm.Key),
			UID:  d.Perm.Uid,
			GID:  d.Perm.Gid,
			CUID: d.Perm.Cuid,
			CGID: d.Perm.Cgid,
			Mode: fs.FileMode(d.Perm.Mode) & fs.ModePerm,
		},
		Size:       d.Segsz,
		Attached:   d.Nattch,
		CreatorPID: int(d.Cpid),
		LastPID:    int(d.Lpid),
		AttachTime: unixTime(d.Atime),
		DetachTime: unixTime(d.Dtime),
		ChangeTime: unixTime(d.Ctime),
		Removed:    d.Perm.Mode&shmDest != 0,
		Locked:     d.Perm.Mode&shmLocked != 0,
	}
}

// unixTime converts a time in seconds, where 0 means never, to a
// time.Time, where the zero value does.
func unixTime(sec int64) time.Time {
	if sec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0)
}

// List returns every shared-memory segment in the system (in the caller's
// IPC namespace), read from /proc/sysvipc/shm, as ipcs -m shows them.
func List() ([]ipc.ShmRecord, error) {
	return ipc.ListShm()
}

// Mapping is one attach of a segment: the segment's memory, mapped into
// this process. [Mapping.Bytes] returns it; [Mapping.Detach] unmaps it.
//
// Its methods are safe for concurrent use, but the memory is not guarded:
// the slice from Bytes must not be used once Detach has begun, and the
// caller must order every use of it before the call to Detach (a Detach
// that races with a reader makes the reader fault). A Mapping must not be
// copied.
type Mapping struct {
	seg      *Segment
	readOnly bool

	mu sync.Mutex
	b  []byte // the attached memory; nil once detached
}

// Bytes returns the attached memory. Its length is the segment's size, as
// it was created. After [Mapping.Detach], Bytes returns nil.
//
// The slice is valid only until Detach: using it, or anything sliced from
// it, afterwards faults. Writing to the memory of a read-only mapping
// faults too.
func (m *Mapping) Bytes() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.b
}

// Detach unmaps the memory (shmdt). Every slice returned by
// [Mapping.Bytes] is dead afterwards. Detaching again does nothing and
// returns nil. A segment that was removed is freed at its last detach.
func (m *Mapping) Detach() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.b == nil {
		return nil
	}
	err := unix.SysvShmDetach(m.b)
	// shmdt fails only if nothing is attached at the address, so the
	// memory is unreachable either way.
	m.b = nil
	if err != nil {
		return ipc.NewError("segment", "shmdt", m.seg.key, m.seg.id, err)
	}
	return nil
}

// Retire detaches the segment, like [Mapping.Detach], but leaves private,
// zeroed memory mapped at the same addresses, so that a slice of the
// memory still held somewhere (a zero-copy view handed to a caller who has
// not yet dropped it) reads zeros, and writes go nowhere, instead of
// faulting. The segment's attach count drops at once, and a removed
// segment is freed as by Detach. The replacement memory stays mapped,
// using address space but no memory until it is written, until the
// process exits: Retire is for the rare close that cannot prove that no
// slice is left. After Retire, Bytes returns nil; Retire and Detach again
// do nothing.
func (m *Mapping) Retire() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.b == nil {
		return nil
	}
	// One mmap with MAP_FIXED replaces the attach atomically: no other
	// mapping can land in the range between an unmap and a map, and the
	// kernel unmapping the attach counts as its detach (shm_nattch).
	addr := unsafe.Pointer(unsafe.SliceData(m.b))
	_, err := unix.MmapPtr(-1, 0, addr, uintptr(len(m.b)), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED)
	if err != nil {
		return ipc.NewError("segment", "mmap", m.seg.key, m.seg.id, err)
	}
	m.b = nil
	return nil
}

// ReadOnly reports whether the memory was attached read-only.
func (m *Mapping) ReadOnly() bool { return m.readOnly }

// Segment returns the segment this is an attach of.
func (m *Mapping) Segment() *Segment { return m.seg }
