package semaphore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmring/shmring/ipc"
)

// OpFlags modify one operation of [Set.Do] or [Set.DoTimeout].
type OpFlags uint16

const (
	// NoWait makes the whole call return [ErrWouldBlock], applying nothing,
	// if this operation cannot proceed, instead of sleeping until it can
	// (IPC_NOWAIT). It concerns only its own operation: a call whose other
	// operations cannot proceed still sleeps, and fails as soon as this one
	// is found unable to proceed.
	NoWait OpFlags = unix.IPC_NOWAIT

	// Undo records the operation in the calling process's undo adjustment
	// for the semaphore (SEM_UNDO): when the process exits, however it
	// exits (SIGKILL included), the kernel adds the adjustment back,
	// reversing every Undo operation the process applied, as far as the
	// value allows without going below 0. The adjustment belongs to the
	// process, shared by all its threads and goroutines. [Set.SetValue]
	// and [Set.SetValues] clear the adjustments of the semaphores they set,
	// in every process.
	Undo OpFlags = semUndo
)

// Op is one operation on one semaphore of a set, for [Set.Do] and
// [Set.DoTimeout].
type Op struct {
	// Num is the semaphore's number, 0 to Len()-1.
	Num uint16

	// Delta is what to do with the semaphore's value: if positive, add
	// it; if negative, subtract -Delta once the value is at least -Delta;
	// if zero, wait until the value is 0. -32768 is rejected: no value is
	// large enough for it.
	Delta int16

	// Flags are [NoWait], [Undo], both or neither.
	Flags OpFlags
}

// waitSlice bounds each sleep of a call that waits under a cancellable
// context: it sleeps in semtimedop calls of at most this long and checks
// the context between them, since nothing else can wake a thread that
// sleeps in the kernel on behalf of one goroutine.
const waitSlice = 10 * time.Millisecond

// maxStackOps is the number of operations [Set.Do] and [Set.DoTimeout]
// convert for the kernel without allocating.
const maxStackOps = 8

// interrupted counts the system calls retried after EINTR. Tests read it to
// check that a signal storm reached the retry paths.
var interrupted atomic.Uint64

// Wait subtracts 1 from semaphore num, first sleeping until its value is at
// least 1. It blocks until then, until the set is removed (an error
// matching [ipc.ErrRemoved]), or until ctx is done: then it returns
// ctx.Err() (context.DeadlineExceeded once ctx's deadline has passed) and
// has subtracted nothing. A nil error means the value was subtracted.
//
// Signals do not interrupt Wait, and it allocates nothing. With a context
// that can never be done, such as context.Background(), it sleeps in a
// single semop call. With one that can, it sleeps in slices of at most 10
// ms and checks ctx between them, so it returns within about that much of
// ctx being done; between slices it is briefly not counted by
// [Set.WaitingForIncrease], and it may lose its place among other waiters.
// A nil ctx is an error.
//
// Wait is safe for concurrent use; waiters in every process share the
// semaphore, and the kernel does not promise which one a [Set.Post] wakes.
func (s *Set) Wait(ctx context.Context, num int) error {
	if err := s.checkNum("wait", num); err != nil {
		return err
	}
	sops := [1]sembuf{{Num: uint16(num), Op: -1}}
	return s.wait(ctx, sops[:], false)
}

// WaitTimeout is [Set.Wait] that gives up after d: it subtracts 1 from
// semaphore num once its value is at least 1, sleeping no longer than d,
// and returns [ErrTimeout] (unwrapped, having subtracted nothing) if d
// passes first. A d of zero or less tries once without sleeping. Removal of
// the set ends it with an error matching [ipc.ErrRemoved]. Signals do not
// shorten or lengthen the wait. It allocates nothing.
func (s *Set) WaitTimeout(num int, d time.Duration) error {
	if err := s.checkNum("wait", num); err != nil {
		return err
	}
	sops := [1]sembuf{{Num: uint16(num), Op: -1}}
	return s.timed(sops[:], d, false)
}

// TryWait subtracts 1 from semaphore num if its value is at least 1, and
// otherwise returns [ErrWouldBlock] (unwrapped) at once. It never blocks
// and allocates nothing.
func (s *Set) TryWait(num int) error {
	if err := s.checkNum("wait", num); err != nil {
		return err
	}
	sops := [1]sembuf{{Num: uint16(num), Op: -1, Flg: unix.IPC_NOWAIT}}
	return s.apply(sops[:])
}

// Post adds 1 to semaphore num, waking a waiter that can then proceed. It
// never blocks and allocates nothing. It fails with an error matching
// [ErrRange] if the value is already [MaxValue].
func (s *Set) Post(num int) error {
	return s.add("post", num, 1)
}

// Add adds delta, which must be in 1..[MaxValue], to semaphore num, waking
// the waiters that can then proceed. It never blocks and allocates
// nothing. It fails with an error matching [ErrRange] if the value would
// exceed [MaxValue]. To subtract, use [Set.Do].
func (s *Set) Add(num int, delta int) error {
	if delta < 1 {
		return fmt.Errorf("semaphore: add %d to semaphore %d of id %d: delta must be positive: %w", delta, num, s.ID(), fs.ErrInvalid)
	}
	if delta > MaxValue {
		return fmt.Errorf("semaphore: add %d to semaphore %d of id %d, more than %d: %w", delta, num, s.ID(), MaxValue, ErrRange)
	}
	return s.add("add", num, delta)
}

func (s *Set) add(op string, num, delta int) error {
	if err := s.checkNum(op, num); err != nil {
		return err
	}
	sops := [1]sembuf{{Num: uint16(num), Op: int16(delta)}}
	return s.apply(sops[:])
}

// Do applies ops to the set atomically: all of them at once, when all can
// proceed, or none. Operations apply in order, so two on the same
// semaphore see each other's effect. Until all can proceed, Do sleeps,
// unless an operation that cannot proceed has [NoWait]: then it returns
// [ErrWouldBlock]. Like [Set.Wait], it stops when the set is removed (an
// error matching [ipc.ErrRemoved]) or when ctx is done (ctx.Err()), has
// then applied nothing, and sleeps in 10 ms slices if ctx can be done.
//
// A nil error means every operation was applied; any error, that none was.
// Do allocates nothing for up to 8 operations. The kernel limits the number of operations in one call (SEMOPM,
// the third field of /proc/sys/kernel/sem; more fail with an error
// matching unix.E2BIG).
func (s *Set) Do(ctx context.Context, ops ...Op) error {
	var buf [maxStackOps]sembuf
	sops, nowait, err := s.prepare(&buf, ops)
	if err != nil {
		return err
	}
	return s.wait(ctx, sops, nowait)
}

// DoTimeout is [Set.Do] that sleeps no longer than d: if the operations
// cannot all be applied within d, it returns [ErrTimeout] (unwrapped) and
// has applied none. A d of zero or less tries once without sleeping. It
// returns [ErrWouldBlock] when an operation with [NoWait] cannot proceed
// before d has passed, and an error matching [ipc.ErrRemoved] if the set is
// removed. Signals do not shorten or lengthen the wait. It allocates
// nothing for up to 8 operations.
func (s *Set) DoTimeout(d time.Duration, ops ...Op) error {
	var buf [maxStackOps]sembuf
	sops, nowait, err := s.prepare(&buf, ops)
	if err != nil {
		return err
	}
	return s.timed(sops, d, nowait)
}

// prepare checks ops and converts them for the kernel, into buf if they
// fit. nowait reports whether any has NoWait.
func (s *Set) prepare(buf *[maxStackOps]sembuf, ops []Op) (sops []sembuf, nowait bool, err error) {
	if err := s.check("do"); err != nil {
		return nil, false, err
	}
	if len(ops) == 0 {
		return nil, false, fmt.Errorf("semaphore: do id %d: no operations: %w", s.id, fs.ErrInvalid)
	}
	if len(ops) <= len(buf) {
		sops = buf[:len(ops)]
	} else {
		sops = make([]sembuf, len(ops))
	}
	for i, o := range ops {
		switch {
		case int(o.Num) >= s.n:
			return nil, false, fmt.Errorf("semaphore: do id %d: operation %d: semaphore %d out of range 0..%d: %w",
				s.id, i, o.Num, s.n-1, fs.ErrInvalid)
		case o.Flags&^(NoWait|Undo) != 0:
			return nil, false, fmt.Errorf("semaphore: do id %d: operation %d: unknown flags %#x: %w",
				s.id, i, uint16(o.Flags&^(NoWait|Undo)), fs.ErrInvalid)
		case o.Delta == math.MinInt16:
			return nil, false, fmt.Errorf("semaphore: do id %d: operation %d: delta %d can never be applied: %w",
				s.id, i, o.Delta, ErrRange)
		}
		nowait = nowait || o.Flags&NoWait != 0
		sops[i] = sembuf{Num: o.Num, Op: o.Delta, Flg: int16(o.Flags)}
	}
	return sops, nowait, nil
}

// apply is semop, retried after EINTR: it sleeps until the operations can
// proceed, if need be.
func (s *Set) apply(sops []sembuf) error {
	for {
		err := semop(s.id, sops)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINTR) {
			return s.opError("semop", err, ErrWouldBlock)
		}
		// Signals never restart semop (signal(7)), and the runtime's own
		// (SIGURG, SIGPROF, ...) land on sleeping threads all the time.
		interrupted.Add(1)
	}
}

// timed is semtimedop with a time limit d, retried after EINTR with what is
// left of d, never d itself, so signals can neither end the wait early nor
// stretch it.
func (s *Set) timed(sops []sembuf, d time.Duration, nowait bool) error {
	deadline := time.Now().Add(d)
	for {
		ts := timespec(d)
		err := semtimedop(s.id, sops, &ts)
		if err == nil {
			return nil
		}
		switch {
		case errors.Is(err, unix.EINTR):
			interrupted.Add(1)
			d = time.Until(deadline)
		case errors.Is(err, unix.EAGAIN):
			// EAGAIN is both "timed out" and "a NoWait operation cannot
			// proceed". semtimedop sleeps at least until the deadline, so
			// an EAGAIN before it is the latter.
			if nowait && time.Now().Before(deadline) {
				return ErrWouldBlock
			}
			return ErrTimeout
		default:
			return s.opError("semtimedop", err, ErrTimeout)
		}
	}
}

// wait sleeps until sops can be applied, or ctx is done. With a ctx that
// can be done, it sleeps in slices of at most waitSlice, ending early at
// ctx's deadline, and checks ctx after each slice and each signal. A
// slice is only a polling period, so after a signal the next one starts
// afresh; ctx's deadline is what bounds the whole wait.
func (s *Set) wait(ctx context.Context, sops []sembuf, nowait bool) error {
	if ctx == nil {
		return fmt.Errorf("semaphore: wait id %d: nil context: %w", s.id, fs.ErrInvalid)
	}
	done := ctx.Done()
	if done == nil {
		return s.apply(sops)
	}
	ctxDeadline, hasDeadline := ctx.Deadline()
	for {
		select {
		case <-done:
			return ctx.Err()
		default:
		}
		now := time.Now()
		end := now.Add(waitSlice)
		if hasDeadline && ctxDeadline.Before(end) {
			if !now.Before(ctxDeadline) {
				// ctx's timer has not fired yet; this is what its Err
				// will say.
				return context.DeadlineExceeded
			}
			end = ctxDeadline
		}
		ts := timespec(end.Sub(now))
		err := semtimedop(s.id, sops, &ts)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINTR):
			interrupted.Add(1)
		case errors.Is(err, unix.EAGAIN):
			// As in timed: before end, EAGAIN is a NoWait failure.
			if nowait && time.Now().Before(end) {
				return ErrWouldBlock
			}
		default:
			return s.opError("semtimedop", err, ErrWouldBlock)
		}
	}
}

// timespec converts d, clamped at 0, for semtimedop.
func timespec(d time.Duration) unix.Timespec {
	if d < 0 {
		d = 0
	}
	return unix.NsecToTimespec(int64(d))
}

// opError turns the errno of semop or semtimedop into this package's
// error; eagain is what EAGAIN means for the call. The operations were
// checked, so EINVAL means the id names no set (it was removed before the
// call; removal during the call is EIDRM).
func (s *Set) opError(op string, err, eagain error) error {
	switch {
	case errors.Is(err, unix.EAGAIN):
		return eagain
	case errors.Is(err, unix.EINVAL):
		return ipc.NewGoneError(object, op, s.key, s.id, err)
	case errors.Is(err, unix.ERANGE):
		return ipc.NewError(object, op, s.key, s.id, ErrRange)
	}
	return ipc.NewError(object, op, s.key, s.id, err)
}
