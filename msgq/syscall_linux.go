package msgq

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/shmring/shmring/ipc"
)

// The raw system calls, one function each, in the style of x/sys/unix:
// typed arguments, the errno in and an error out (msgsnd and msgrcv, on
// the fast path, hand back the errno itself), no retries and no policy.
// msgsnd and msgrcv can block for as long as the queue stays full or empty,
// so they go through unix.Syscall6, which tells the runtime that the thread
// is in a system call and lets it hand the P to another thread; never
// RawSyscall.

// Flags and commands from <linux/ipc.h> and <linux/msg.h> that x/sys/unix
// does not define.
const (
	ipcNoWait  = unix.IPC_NOWAIT // 04000: fail with EAGAIN or ENOMSG instead of waiting
	msgNoError = 0o10000         // MSG_NOERROR: truncate a message longer than the buffer
	msgExcept  = 0o20000         // MSG_EXCEPT: with msgtyp > 0, any type but msgtyp
	ipcInfo    = 3               // IPC_INFO: the system-wide limits, into a struct msginfo
	msgInfo    = 12              // MSG_INFO: IPC_INFO plus current usage
)

// errnoErr returns nil for 0 and the errno as an error otherwise. Boxing an
// errno does not allocate: every errno is below 256, and the runtime boxes
// such small integers from a static table.
func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// msgget returns the id of the queue with the given key, creating it if
// flags ask for it (IPC_CREAT, IPC_EXCL); the low nine bits of flags are the
// new queue's mode, or the access asked for on an existing one.
func msgget(key ipc.Key, flags int) (int, error) {
	r, _, e := unix.Syscall(unix.SYS_MSGGET, uintptr(key), uintptr(flags), 0)
	return int(r), errnoErr(e)
}

// msgsnd sends the message at p: a C long holding the type, followed by
// size bytes of text. It returns the errno itself, not an error, and is
// small enough to inline, so that the fast path makes the system call from
// the exported method's own frame and tests the result as a number (see
// "The fast path" in msgq.go).
func msgsnd(id int, p *byte, size int, flags int) unix.Errno {
	// unsafe.Pointer rule 4: the conversion to uintptr is in the argument
	// list of a call to a function implemented in assembly, so p stays
	// alive, and where it is, for the duration of the call.
	_, _, e := unix.Syscall6(unix.SYS_MSGSND, uintptr(id), uintptr(unsafe.Pointer(p)), uintptr(size), uintptr(flags), 0, 0)
	return e
}

// msgrcv receives a message into p, which has room for a C long (the type)
// and size bytes of text, and returns the length of the text received.
// typ and flags select the message as msgrcv(2) describes. Like msgsnd, it
// returns the errno itself and inlines; its results are named because that
// keeps it within the compiler's inlining budget.
func msgrcv(id int, p *byte, size int, typ int64, flags int) (n int, e unix.Errno) {
	// unsafe.Pointer rule 4, as in msgsnd.
	r, _, e := unix.Syscall6(unix.SYS_MSGRCV, uintptr(id), uintptr(unsafe.Pointer(p)), uintptr(size), uintptr(typ), uintptr(flags), 0)
	return int(r), e
}

// msgctl runs cmd (IPC_STAT, IPC_SET, IPC_RMID) on queue id, with ds as the
// buffer (nil for IPC_RMID).
func msgctl(id int, cmd int, ds *msqid64DS) error {
	// unsafe.Pointer rule 4, as in msgsnd.
	_, _, e := unix.Syscall(unix.SYS_MSGCTL, uintptr(id), uintptr(cmd), uintptr(unsafe.Pointer(ds)))
	runtime.KeepAlive(ds)
	return errnoErr(e)
}

// msgctlInfo runs cmd (IPC_INFO or MSG_INFO), which fills info and ignores
// the queue id.
func msgctlInfo(cmd int, info *msginfo) error {
	// unsafe.Pointer rule 4, as in msgsnd.
	_, _, e := unix.Syscall(unix.SYS_MSGCTL, 0, uintptr(cmd), uintptr(unsafe.Pointer(info)))
	runtime.KeepAlive(info)
	return errnoErr(e)
}
