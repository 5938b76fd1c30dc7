package semaphore

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// Sentinels for the outcomes of this package's calls. The first two are
// expected outcomes, not failures: they are returned as they are, never
// wrapped, so returning them allocates nothing.
//
// Failed system calls return an [*ipc.Error] naming the call, key and id
// and wrapping the errno, so errors.Is also answers fs.ErrExist,
// fs.ErrNotExist, fs.ErrPermission, [ipc.ErrRemoved] (the set was removed,
// or its id no longer names a set) and [ipc.ErrLimit] (a system-wide limit
// in /proc/sys/kernel/sem was reached). Invalid arguments, found before any
// system call is made, return an error wrapping fs.ErrInvalid (or
// [ErrRange] for a value out of range).
var (
	// ErrWouldBlock is returned by [Set.TryWait], and by [Set.Do] and
	// [Set.DoTimeout] when an operation flagged [NoWait] cannot proceed at
	// once. Nothing was applied. It also matches unix.EAGAIN, the errno
	// behind it.
	ErrWouldBlock error = &condition{msg: "semaphore: operation would block", errno: unix.EAGAIN}

	// ErrTimeout is returned by [Set.WaitTimeout] and [Set.DoTimeout] when
	// the operations could not be applied within the given time. Nothing was
	// applied. It matches os.ErrDeadlineExceeded and unix.EAGAIN (what
	// semtimedop reports), and has a Timeout method that returns true.
	ErrTimeout error = &condition{msg: "semaphore: timed out", errno: unix.EAGAIN, timeout: true}

	// ErrRange is wrapped by the error returned when a value would leave
	// 0..[MaxValue]: an argument of [Set.SetValue], [Set.SetValues] or
	// [Set.Add] out of range, or an operation that would raise a semaphore,
	// or its undo adjustment, past the maximum (ERANGE). Nothing was
	// applied. It also matches unix.ERANGE.
	ErrRange error = &condition{msg: "value out of range", errno: unix.ERANGE}
)

// condition is the type of the sentinels: a condition of this package that
// the kernel reports as an errno, so errors.Is matches both.
type condition struct {
	msg     string
	errno   unix.Errno
	timeout bool // also os.ErrDeadlineExceeded
}

func (c *condition) Error() string { return c.msg }

// Is reports whether target is the errno behind c (or, through the errno's
// own Is method, one of the conditions it stands for), or
// os.ErrDeadlineExceeded for a timeout.
func (c *condition) Is(target error) bool {
	if c.timeout && target == os.ErrDeadlineExceeded {
		return true
	}
	return errors.Is(c.errno, target)
}

// Timeout reports whether c is [ErrTimeout], as net.Error's method does.
func (c *condition) Timeout() bool { return c.timeout }
