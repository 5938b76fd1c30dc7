package semaphore

import (
	"fmt"
	"io/fs"
	"unsafe"
)

// Value returns the value of semaphore num (GETVAL). It needs read
// permission. The value may have changed by the time Value returns.
func (s *Set) Value(num int) (int, error) {
	return s.get("semctl(GETVAL)", num, getVal)
}

// SetValue sets semaphore num to v, which must be in 0..[MaxValue]
// (SETVAL), waking the waiters that can then proceed. It clears the undo
// adjustments ([Undo]) for the semaphore in every process. It needs write
// permission.
func (s *Set) SetValue(num, v int) error {
	const op = "semctl(SETVAL)"
	if err := s.checkNum(op, num); err != nil {
		return err
	}
	if v < 0 || v > MaxValue {
		return fmt.Errorf("semaphore: set semaphore %d of id %d to %d, not in 0..%d: %w", num, s.id, v, MaxValue, ErrRange)
	}
	if _, err := semctl(s.id, num, setVal, v); err != nil {
		return ctlError(op, s.key, s.id, err)
	}
	return nil
}

// Values copies the value of every semaphore into dst, which must have
// length [Set.Len] (GETALL). The values are read at one instant. It needs
// read permission and allocates nothing.
func (s *Set) Values(dst []uint16) error {
	const op = "semctl(GETALL)"
	if err := s.checkLen(op, dst); err != nil {
		return err
	}
	if _, err := semctlPtr(s.id, 0, getAll, unsafe.Pointer(unsafe.SliceData(dst))); err != nil {
		return ctlError(op, s.key, s.id, err)
	}
	return nil
}

// SetValues sets every semaphore at once, semaphore i to v[i] (SETALL). v
// must have length [Set.Len] and values in 0..[MaxValue]. Like
// [Set.SetValue], it wakes the waiters that can then proceed and clears
// the undo adjustments for the set in every process. It needs write
// permission.
func (s *Set) SetValues(v []uint16) error {
	const op = "semctl(SETALL)"
	if err := s.checkLen(op, v); err != nil {
		return err
	}
	for i, x := range v {
		if x > MaxValue {
			return fmt.Errorf("semaphore: set semaphore %d of id %d to %d, not in 0..%d: %w", i, s.id, x, MaxValue, ErrRange)
		}
	}
	if _, err := semctlPtr(s.id, 0, setAll, unsafe.Pointer(unsafe.SliceData(v))); err != nil {
		return ctlError(op, s.key, s.id, err)
	}
	return nil
}

// WaitingForIncrease returns the number of callers, in every process,
// sleeping until semaphore num is large enough for them to subtract from
// it (GETNCNT). It needs read permission.
func (s *Set) WaitingForIncrease(num int) (int, error) {
	return s.get("semctl(GETNCNT)", num, getNCnt)
}

// WaitingForZero returns the number of callers, in every process, sleeping
// until semaphore num is 0 ([Op] with Delta 0) (GETZCNT). It needs read
// permission.
func (s *Set) WaitingForZero(num int) (int, error) {
	return s.get("semctl(GETZCNT)", num, getZCnt)
}

// LastPID returns the id of the process that last changed semaphore num,
// by an operation or (on Linux) by [Set.SetValue] or [Set.SetValues], or 0
// if none has (GETPID). It needs read permission.
func (s *Set) LastPID(num int) (int, error) {
	return s.get("semctl(GETPID)", num, getPID)
}

// get is the semctl commands that return one number for one semaphore.
func (s *Set) get(op string, num, cmd int) (int, error) {
	if err := s.checkNum(op, num); err != nil {
		return 0, err
	}
	v, err := semctl(s.id, num, cmd, 0)
	if err != nil {
		return 0, ctlError(op, s.key, s.id, err)
	}
	return v, nil
}

// checkLen returns an error unless v has one entry per semaphore.
func (s *Set) checkLen(op string, v []uint16) error {
	if err := s.check(op); err != nil {
		return err
	}
	if len(v) != s.n {
		return fmt.Errorf("semaphore: %s id %d: %d values for %d semaphores: %w", op, s.id, len(v), s.n, fs.ErrInvalid)
	}
	return nil
}
