package atomicx

import (
	"sync"

	"golang.org/x/sys/unix"
)

// Commands of membarrier(2), from <linux/membarrier.h>.
const (
	membarrierQuery                     = 0
	membarrierGlobalExpedited           = 1 << 1
	membarrierRegisterGlobalExpedited   = 1 << 2
	membarrierPrivateExpedited          = 1 << 3
	membarrierRegisterPrivateExpedited  = 1 << 4
	membarrierGlobalExpeditedSupported  = membarrierGlobalExpedited | membarrierRegisterGlobalExpedited
	membarrierPrivateExpeditedSupported = membarrierPrivateExpedited | membarrierRegisterPrivateExpedited
)

var (
	barrierOnce sync.Once
	barrierOK   bool

	processBarrierOnce sync.Once
	processBarrierOK   bool
)

// RegisterBarrier makes the calling process a target of [Barrier] calls made
// by any process, and reports whether the kernel supports that (Linux 4.16
// and later, unless a seccomp filter forbids membarrier). It registers once
// per process; later calls return the first answer.
//
// A process for which RegisterBarrier returns true may publish with
// [StoreRelease] and then load the peer's waiter word without a [Fence],
// because every peer that is about to sleep calls [Barrier], which runs a
// full barrier on this process's running threads.
func RegisterBarrier() bool {
	barrierOnce.Do(func() {
		mask, _, errno := unix.Syscall(unix.SYS_MEMBARRIER, membarrierQuery, 0, 0)
		if errno != 0 || mask&membarrierGlobalExpeditedSupported != membarrierGlobalExpeditedSupported {
			return
		}
		_, _, errno = unix.Syscall(unix.SYS_MEMBARRIER, membarrierRegisterGlobalExpedited, 0, 0)
		barrierOK = errno == 0
	})
	return barrierOK
}

// Barrier is the heavy half of an asymmetric barrier: when it returns, every
// thread of every process registered with [RegisterBarrier] that was running
// has executed a full memory barrier, and the caller has too. So a store the
// caller made before Barrier and a store-then-load made by a registered
// process without a fence cannot both miss each other. Barrier falls back to
// [Fence] when membarrier(2) is unavailable, and reports whether the
// membarrier ran.
//
// Barrier is a system call that interrupts other CPUs: it belongs on a path
// that is about to sleep anyway, never on a path taken per message.
func Barrier() bool {
	if !RegisterBarrier() {
		fence()
		return false
	}
	if _, _, errno := unix.Syscall(unix.SYS_MEMBARRIER, membarrierGlobalExpedited, 0, 0); errno != 0 {
		fence()
		return false
	}
	return true
}

// RegisterProcessBarrier prepares this process for [ProcessBarrier] and
// reports whether the kernel supports it (Linux 4.14 and later, unless a
// seccomp filter forbids membarrier). It registers once per process; later
// calls return the first answer.
func RegisterProcessBarrier() bool {
	processBarrierOnce.Do(func() {
		mask, _, errno := unix.Syscall(unix.SYS_MEMBARRIER, membarrierQuery, 0, 0)
		if errno != 0 || mask&membarrierPrivateExpeditedSupported != membarrierPrivateExpeditedSupported {
			return
		}
		_, _, errno = unix.Syscall(unix.SYS_MEMBARRIER, membarrierRegisterPrivateExpedited, 0, 0)
		processBarrierOK = errno == 0
	})
	return processBarrierOK
}

// ProcessBarrier is the heavy half of an asymmetric barrier within this
// process: when it returns, every thread of the process that was running
// has executed a full memory barrier. A goroutine that stores with
// [StoreRelease] and then loads a word that a ProcessBarrier caller stored
// before calling it cannot miss that store while the caller misses the
// goroutine's. It reports false, having done nothing but a [Fence], when
// [RegisterProcessBarrier] is false; then the light side must fence too.
//
// It interrupts other CPUs, so it belongs on rare paths such as closing.
func ProcessBarrier() bool {
	if !RegisterProcessBarrier() {
		fence()
		return false
	}
	if _, _, errno := unix.Syscall(unix.SYS_MEMBARRIER, membarrierPrivateExpedited, 0, 0); errno != 0 {
		fence()
		return false
	}
	return true
}
