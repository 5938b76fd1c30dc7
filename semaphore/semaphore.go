package semaphore

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/shmring/shmring/ipc"
)

// MaxValue is the largest value a semaphore can hold (SEMVMX).
const MaxValue = 32767

// MaxValue is the kernel's SEMVMX: these array types have a valid length
// only if the two are equal.
var (
	_ [MaxValue - semVMX]struct{}
	_ [semVMX - MaxValue]struct{}
)

// MaxLen is the largest number of semaphores a [Set] made by this package
// can have: semaphore numbers are 16 bits wide in the kernel's operations.
// The kernel's own limit (SEMMSL, the first field of /proc/sys/kernel/sem)
// is usually lower.
const MaxLen = math.MaxUint16 + 1

// object names this kind of object in errors.
const object = "semaphore"

// Set is a handle on a System V semaphore set: its id, key and size, which
// never change for the life of the set. A Set holds no resources in the
// process, so there is nothing to close; the kernel's set lives until
// [Set.Remove], in any process, removes it, not until the last Set is
// dropped.
//
// A Set is safe for concurrent use by multiple goroutines. It may be
// copied; copies name the same kernel set. The zero Set names no set, and
// its methods return errors.
type Set struct {
	id  int
	key ipc.Key
	n   int
}

// Options are the settings of [Create]. A nil *Options means the zero
// Options, which are the defaults.
type Options struct {
	// Mode is the set's nine permission bits; 0 means [ipc.DefaultMode]
	// (0600), so a set with no permissions at all needs [Set.SetMode].
	// Reading values and waiting for zero need read permission; changing
	// values, which includes waiting to subtract, needs write permission.
	Mode fs.FileMode

	// Exclusive makes Create fail, with an error matching fs.ErrExist, if
	// a set with the key already exists. Without it, Create opens an
	// existing set instead, whatever values it holds, provided it has at
	// least the requested number of semaphores.
	Exclusive bool
}

// Create creates a set of n semaphores, each 0, under key, and returns it.
// With [ipc.Private] the set is always new and can be reached only by its
// id ([Set.ID], [OpenID]). With another key, see [Options.Exclusive] for
// what happens if a set already has that key; then [Set.Len] reports the
// existing set's size, which may be larger than n.
//
// n must be in 1..[MaxLen], and the kernel's limits apply: a set larger
// than SEMMSL fails with an error matching unix.EINVAL, and one beyond the
// system's total of sets or semaphores with [ipc.ErrLimit].
func Create(key ipc.Key, n int, opts *Options) (*Set, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if n < 1 || n > MaxLen {
		return nil, fmt.Errorf("semaphore: create key %v: %d semaphores, want 1..%d: %w", key, n, MaxLen, fs.ErrInvalid)
	}
	if o.Mode == 0 {
		o.Mode = ipc.DefaultMode
	}
	if err := ipc.CheckMode(o.Mode); err != nil {
		return nil, fmt.Errorf("semaphore: create key %v: %w: %w", key, err, fs.ErrInvalid)
	}
	flags := unix.IPC_CREAT | int(o.Mode.Perm())
	if o.Exclusive {
		flags |= unix.IPC_EXCL
	}
	id, err := semget(key, n, flags)
	if err != nil {
		return nil, ipc.NewError(object, "semget", key, -1, err)
	}
	if key == ipc.Private || o.Exclusive {
		return &Set{id: id, key: key, n: n}, nil
	}
	// The set may have existed, with more semaphores than asked for.
	return open(id, key)
}

// Open returns the existing set with the given key. It fails with an error
// matching fs.ErrNotExist if there is none, and with one matching
// fs.ErrPermission if the caller may not read the set (Open reads the
// set's size).
func Open(key ipc.Key) (*Set, error) {
	if key == ipc.Private {
		return nil, fmt.Errorf("semaphore: open key %v: the private key names no set, use OpenID: %w", key, fs.ErrInvalid)
	}
	id, err := semget(key, 0, 0)
	if err != nil {
		return nil, ipc.NewError(object, "semget", key, -1, err)
	}
	return open(id, key)
}

// OpenID returns the set with the given id, as [Set.ID] reports it in any
// process. It fails with an error matching [ipc.ErrRemoved] if the id
// names no set (it was removed, or never existed), and with one matching
// fs.ErrPermission if the caller may not read the set.
func OpenID(id int) (*Set, error) {
	if id < 0 {
		return nil, fmt.Errorf("semaphore: open id %d: ids are not negative: %w", id, fs.ErrInvalid)
	}
	return open(id, 0)
}

// open finishes Create, Open and OpenID: it reads the set's size and key.
// key is only for the error message.
func open(id int, key ipc.Key) (*Set, error) {
	var ds semid64DS
	if err := statID(id, &ds); err != nil {
		return nil, ctlError("semctl(IPC_STAT)", key, id, err)
	}
	return &Set{id: id, key: ipc.Key(ds.Perm.Key), n: int(ds.Nsems)}, nil
}

// statID is IPC_STAT.
func statID(id int, ds *semid64DS) error {
	_, err := semctlPtr(id, 0, unix.IPC_STAT, unsafe.Pointer(ds))
	return err
}

// ctlError wraps the errno of a semctl call whose other arguments were
// checked: EINVAL then means the id names no set.
func ctlError(op string, key ipc.Key, id int, err error) error {
	if errors.Is(err, unix.EINVAL) {
		return ipc.NewGoneError(object, op, key, id, err)
	}
	if errors.Is(err, unix.ERANGE) {
		return ipc.NewError(object, op, key, id, ErrRange)
	}
	return ipc.NewError(object, op, key, id, err)
}

// ID returns the set's id, which names it in every process ([OpenID]) and
// in ipcs(1). It is -1 for a nil Set.
func (s *Set) ID() int {
	if s == nil {
		return -1
	}
	return s.id
}

// Key returns the key the set was created with ([ipc.Private] for a
// private set).
func (s *Set) Key() ipc.Key {
	if s == nil {
		return ipc.Private
	}
	return s.key
}

// Len returns the number of semaphores in the set, numbered 0 to Len()-1.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return s.n
}

// String describes the set for logs: its key, id and size.
func (s *Set) String() string {
	return fmt.Sprintf("semaphore set key %v id %d len %d", s.Key(), s.ID(), s.Len())
}

// Remove removes the set from the system (IPC_RMID) at once, even while
// other processes use it. Every caller blocked on the set, in any process,
// then returns an error matching [ipc.ErrRemoved], as does every later
// call on it. Only the set's owner or creator (or a privileged process)
// may remove it; others get an error matching fs.ErrPermission. Removing a
// set twice returns an error matching [ipc.ErrRemoved].
func (s *Set) Remove() error {
	if err := s.check("semctl(IPC_RMID)"); err != nil {
		return err
	}
	if _, err := semctl(s.id, 0, unix.IPC_RMID, 0); err != nil {
		return ctlError("semctl(IPC_RMID)", s.key, s.id, err)
	}
	return nil
}

// Info is what [Set.Stat] reports about a set (IPC_STAT).
type Info struct {
	ipc.Perm
	Count      int       // semaphores in the set
	OpTime     time.Time // last successful operation (zero if never)
	ChangeTime time.Time // creation, or the last change of values or permissions
}

// Stat returns the set's permissions, size and times (IPC_STAT). It needs
// read permission.
func (s *Set) Stat() (Info, error) {
	var ds semid64DS
	if err := s.stat("semctl(IPC_STAT)", &ds); err != nil {
		return Info{}, err
	}
	return Info{
		Perm: ipc.Perm{
			Key: ipc.Key(ds.Perm.Key),
			UID: ds.Perm.Uid, GID: ds.Perm.Gid,
			CUID: ds.Perm.Cuid, CGID: ds.Perm.Cgid,
			Mode: fs.FileMode(ds.Perm.Mode) & fs.ModePerm,
		},
		Count:      int(ds.Nsems),
		OpTime:     unixTime(ds.Otime),
		ChangeTime: unixTime(ds.Ctime),
	}, nil
}

// unixTime converts the kernel's seconds, 0 meaning never, to a time.
func unixTime(sec int64) time.Time {
	if sec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0)
}

func (s *Set) stat(op string, ds *semid64DS) error {
	if err := s.check(op); err != nil {
		return err
	}
	if err := statID(s.id, ds); err != nil {
		return ctlError(op, s.key, s.id, err)
	}
	return nil
}

// SetMode changes the set's nine permission bits (IPC_SET). Only the set's
// owner or creator (or a privileged process) may; others get an error
// matching fs.ErrPermission. It reads the set's record first (IPC_STAT), so
// it also needs read permission, and a concurrent change of the owner by
// another process may be undone.
func (s *Set) SetMode(mode fs.FileMode) error {
	if err := ipc.CheckMode(mode); err != nil {
		return fmt.Errorf("semaphore: set mode of id %d: %w: %w", s.ID(), err, fs.ErrInvalid)
	}
	return s.set(func(p *ipc64Perm) {
		p.Mode = p.Mode&^uint32(fs.ModePerm) | uint32(mode)
	})
}

// SetOwner changes the set's owner user and group ids (IPC_SET); -1 leaves
// that id unchanged, as with os.Chown. The same permissions as for
// [Set.SetMode] apply.
func (s *Set) SetOwner(uid, gid int) error {
	for _, v := range [...]int{uid, gid} {
		if v < -1 || v >= math.MaxUint32 {
			return fmt.Errorf("semaphore: set owner of id %d: id %d out of range: %w", s.ID(), v, fs.ErrInvalid)
		}
	}
	return s.set(func(p *ipc64Perm) {
		if uid != -1 {
			p.Uid = uint32(uid)
		}
		if gid != -1 {
			p.Gid = uint32(gid)
		}
	})
}

// set is IPC_STAT, change, IPC_SET.
func (s *Set) set(change func(*ipc64Perm)) error {
	const op = "semctl(IPC_SET)"
	var ds semid64DS
	if err := s.stat(op, &ds); err != nil {
		return err
	}
	change(&ds.Perm)
	if _, err := semctlPtr(s.id, 0, unix.IPC_SET, unsafe.Pointer(&ds)); err != nil {
		// EINVAL here can also mean a uid or gid that this user namespace
		// cannot map; it means the set is gone only if it is.
		if errors.Is(err, unix.EINVAL) {
			var again semid64DS
			if statID(s.id, &again) == nil {
				return ipc.NewError(object, op, s.key, s.id, err)
			}
		}
		return ctlError(op, s.key, s.id, err)
	}
	return nil
}

// check returns an error if s names no set.
func (s *Set) check(op string) error {
	if s == nil || s.n == 0 {
		return fmt.Errorf("semaphore: %s: the Set was not made by Create, Open or OpenID: %w", op, fs.ErrInvalid)
	}
	return nil
}

// checkNum returns an error if num is not a semaphore of the set.
func (s *Set) checkNum(op string, num int) error {
	if s != nil && uint(num) < uint(s.n) {
		return nil
	}
	if err := s.check(op); err != nil {
		return err
	}
	return fmt.Errorf("semaphore: %s id %d: semaphore %d out of range 0..%d: %w", op, s.id, num, s.n-1, fs.ErrInvalid)
}

// List returns every semaphore set the caller may see, read from
// /proc/sysvipc/sem.
func List() ([]ipc.SemRecord, error) {
	return ipc.ListSem()
}
