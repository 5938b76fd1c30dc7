//go:build ignore

// Input to cgo -godefs for the kernel structures and constants this
// package passes to the semaphore system calls. It is not part of the
// build. On linux/amd64, with the kernel's uapi headers installed:
//
//	post() { sed -E 's/^\tX__[a-z0-9_]+\t/\t_\t/' | gofmt; }
//	go tool cgo -godefs types_linux.go | post                                 # types_linux_amd64.go
//	go tool cgo -godefs -- -DSHMRING_GENERIC_SEMBUF types_linux.go | post     # types_linux_arm64.go
//
// post renames the kernel's padding fields (__unused*, __pad*) to _, as
// x/sys's mkpost does; each output then gets a comment saying how it was
// made. TestTypeSizes checks the sizes and offsets on each architecture.

package semaphore

/*
#ifdef SHMRING_GENERIC_SEMBUF
// arm64 has no semid64_ds of its own: its <asm/sembuf.h> is
// <asm-generic/sembuf.h>. Hide the host's x86 definition and take the
// generic one, which on a 64-bit host has arm64's layout (both are LP64).
#define semid64_ds host_semid64_ds
#include <linux/sem.h>
#undef semid64_ds
#include <asm-generic/sembuf.h>
#else
#include <linux/sem.h>
#endif
*/
import "C"

// sembuf is struct sembuf, one operation of semop(2).
type sembuf C.struct_sembuf

// semid64DS is struct semid64_ds, the buffer of IPC_STAT and IPC_SET.
type semid64DS C.struct_semid64_ds

// ipc64Perm is struct ipc64_perm, the permission record in semid64DS.
type ipc64Perm C.struct_ipc64_perm

// Flags and semctl commands of <linux/sem.h> that x/sys/unix lacks.
const (
	semUndo = C.SEM_UNDO // undo the operation when the process exits

	getPID  = C.GETPID  // semctl: pid of the last operation
	getVal  = C.GETVAL  // semctl: one value
	getAll  = C.GETALL  // semctl: every value
	getNCnt = C.GETNCNT // semctl: tasks waiting for an increase
	getZCnt = C.GETZCNT // semctl: tasks waiting for zero
	setVal  = C.SETVAL  // semctl: set one value
	setAll  = C.SETALL  // semctl: set every value

	semVMX = C.SEMVMX // the largest value a semaphore can hold
)
