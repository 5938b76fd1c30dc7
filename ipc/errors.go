package ipc

import (
	"errors"
	"fmt"
	"io/fs"

	"golang.org/x/sys/unix"
)

// Sentinels for conditions that have no equivalent in io/fs. The errno
// behind them stays reachable: errors.Is(err, unix.EIDRM) holds wherever
// errors.Is(err, ErrRemoved) does.
var (
	// ErrRemoved is returned when the object was removed (IPC_RMID) while
	// the call was using it or waiting on it (EIDRM), or, for calls by id,
	// when the id no longer names a live object.
	ErrRemoved = errors.New("ipc: object removed")

	// ErrLimit is returned when a system-wide limit stops the call (ENOSPC:
	// too many objects of this kind, or too much memory in them). The
	// limits live in /proc/sys/kernel (shmmni, shmall, msgmni, sem).
	ErrLimit = errors.New("ipc: system limit reached")
)

// Error is what the bindings return when a system call fails. It names the
// kind of object, the operation, the key (in hex, as ipcs(1) prints it) and
// the id, and wraps the errno, so that errors.Is works with fs.ErrExist
// (EEXIST), fs.ErrNotExist (ENOENT), fs.ErrPermission (EACCES, EPERM),
// errors.ErrUnsupported (ENOSYS), [ErrRemoved] (EIDRM) and [ErrLimit]
// (ENOSPC), as well as with the errno itself.
type Error struct {
	Object string // "segment", "semaphore" or "msgq"
	Op     string // the system call or operation: "shmget", "semtimedop", ...
	Key    Key    // the object's key, if known
	ID     int    // the object's id, or -1 if it has none yet
	Err    error  // the cause, usually a syscall.Errno

	gone bool // the id no longer names an object (see NewGoneError)
}

// NewError wraps err, the result of operation op on an object of the given
// kind, key and id (-1 if unknown), in an [*Error]. It returns nil if err is
// nil.
func NewError(object, op string, key Key, id int, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Object: object, Op: op, Key: key, ID: id, Err: err}
}

// NewGoneError is [NewError] for a call by id that the kernel refused with
// EINVAL although every other argument was valid: the id names no object,
// because it was removed or never existed (the kernel does not say which).
// The error matches [ErrRemoved] and fs.ErrNotExist as well as the errno.
func NewGoneError(object, op string, key Key, id int, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Object: object, Op: op, Key: key, ID: id, Err: err, gone: true}
}

// Error formats the error as "object: op key 0x0000abcd id 7: cause".
func (e *Error) Error() string {
	if e.ID < 0 {
		return fmt.Sprintf("%s: %s key %v: %v", e.Object, e.Op, e.Key, e.Err)
	}
	return fmt.Sprintf("%s: %s key %v id %d: %v", e.Object, e.Op, e.Key, e.ID, e.Err)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether e means target where target is one of this package's
// sentinels; the fs sentinels are answered by the wrapped errno itself.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrRemoved:
		return e.gone || errors.Is(e.Err, unix.EIDRM)
	case fs.ErrNotExist:
		return e.gone
	case ErrLimit:
		return errors.Is(e.Err, unix.ENOSPC)
	}
	return false
}
