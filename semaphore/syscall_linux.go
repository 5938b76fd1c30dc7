package semaphore

// The raw system calls, in the style of golang.org/x/sys/unix (which has the
// numbers but no wrappers): one function per call, typed arguments, the
// errno turned into an error, and no policy. Retrying EINTR, timeouts,
// contexts and the mapping of errno to this package's errors live in the
// callers.
//
// semop and semtimedop can sleep, so they go through unix.Syscall, never
// RawSyscall: the runtime must be told the thread is blocked so it can hand
// its P to another thread. The other calls do not sleep but use Syscall too;
// nothing here is fast enough for RawSyscall to matter.
//
// Pointers are converted to uintptr in the argument list of the Syscall
// call itself (unsafe.Pointer rule 4), which keeps the memory alive and in
// place for the call; runtime.KeepAlive after each call says so explicitly.
//
// On amd64 and arm64 the kernel's semctl always uses the 64-bit ipc
// structures (semid64_ds), so no IPC_64 flag is or may be added to cmd:
// only architectures that select CONFIG_ARCH_WANT_IPC_PARSE_VERSION (arm,
// mips, ...) look for it.

import (
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/shmring/shmring/ipc"
)

// Errors boxed once, so that the expected failures of the hot paths
// (EAGAIN: would block or timed out; EINTR: retry) do not allocate.
var (
	errEAGAIN error = unix.EAGAIN
	errEINTR  error = unix.EINTR
	errEINVAL error = unix.EINVAL
)

// errnoErr returns e as an error, reusing a boxed value for the common ones.
func errnoErr(e syscall.Errno) error {
	switch e {
	case 0:
		return nil
	case unix.EAGAIN:
		return errEAGAIN
	case unix.EINTR:
		return errEINTR
	case unix.EINVAL:
		return errEINVAL
	}
	return e
}

// semget is semget(2): the id of the set with the given key, creating it
// with nsems semaphores if flags asks for that.
func semget(key ipc.Key, nsems int, flags int) (id int, err error) {
	r0, _, e1 := unix.Syscall(unix.SYS_SEMGET, uintptr(key), uintptr(nsems), uintptr(flags))
	if e1 != 0 {
		return -1, errnoErr(e1)
	}
	return int(r0), nil
}

// semop is semop(2): apply every operation in sops atomically, sleeping
// until that is possible unless an operation that cannot proceed has
// IPC_NOWAIT. len(sops) must not be zero.
func semop(id int, sops []sembuf) error {
	_, _, e1 := unix.Syscall(unix.SYS_SEMOP, uintptr(id),
		uintptr(unsafe.Pointer(unsafe.SliceData(sops))), uintptr(len(sops)))
	runtime.KeepAlive(unsafe.SliceData(sops))
	if e1 != 0 {
		return errnoErr(e1)
	}
	return nil
}

// semtimedop is semtimedop(2): semop that sleeps no longer than timeout (a
// relative, CLOCK_MONOTONIC interval), failing with EAGAIN when it runs
// out. A nil timeout sleeps without limit. len(sops) must not be zero.
func semtimedop(id int, sops []sembuf, timeout *unix.Timespec) error {
	_, _, e1 := unix.Syscall6(unix.SYS_SEMTIMEDOP, uintptr(id),
		uintptr(unsafe.Pointer(unsafe.SliceData(sops))), uintptr(len(sops)),
		uintptr(unsafe.Pointer(timeout)), 0, 0)
	runtime.KeepAlive(unsafe.SliceData(sops))
	runtime.KeepAlive(timeout)
	if e1 != 0 {
		return errnoErr(e1)
	}
	return nil
}

// semctl is semctl(2) for the commands whose fourth argument, the union
// semun, holds an int (SETVAL) or nothing (IPC_RMID, GETVAL, GETPID,
// GETNCNT, GETZCNT). The union is passed by value in a register; on a
// little-endian 64-bit kernel, as amd64 and arm64 are, its int is the
// register's low 32 bits. It returns what the command returns.
func semctl(id, num, cmd, arg int) (int, error) {
	r0, _, e1 := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), uintptr(num), uintptr(cmd),
		uintptr(arg), 0, 0)
	if e1 != 0 {
		return -1, errnoErr(e1)
	}
	return int(r0), nil
}

// semctlPtr is semctl(2) for the commands whose union semun holds a pointer:
// a *semid64DS (IPC_STAT, IPC_SET) or the first element of a []uint16 with
// one entry per semaphore (GETALL, SETALL).
func semctlPtr(id, num, cmd int, arg unsafe.Pointer) (int, error) {
	r0, _, e1 := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), uintptr(num), uintptr(cmd),
		uintptr(arg), 0, 0)
	runtime.KeepAlive(arg)
	if e1 != 0 {
		return -1, errnoErr(e1)
	}
	return int(r0), nil
}
