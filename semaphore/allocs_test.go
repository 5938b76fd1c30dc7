package semaphore

import (
	"context"
	"testing"
	"time"
)

// TestAllocs checks that the calls documented not to allocate do not, on
// their expected outcomes, success or not.
func TestAllocs(t *testing.T) {
	s := newSet(t, 3)
	ctx := context.Background()
	cctx, cancel := context.WithTimeout(ctx, time.Hour)
	defer cancel()
	vals := make([]uint16, 3)
	calls := map[string]func() error{
		"Post+TryWait": func() error {
			if err := s.Post(0); err != nil {
				return err
			}
			return s.TryWait(0)
		},
		"TryWait(empty)": func() error {
			if err := s.TryWait(0); err != ErrWouldBlock {
				return err
			}
			return nil
		},
		"Add+WaitTimeout": func() error {
			if err := s.Add(0, 1); err != nil {
				return err
			}
			return s.WaitTimeout(0, 1e9)
		},
		"WaitTimeout(timeout)": func() error {
			if err := s.WaitTimeout(0, 0); err != ErrTimeout {
				return err
			}
			return nil
		},
		"Post+Wait": func() error {
			if err := s.Post(1); err != nil {
				return err
			}
			return s.Wait(ctx, 1)
		},
		"Post+Wait(cancelable)": func() error {
			if err := s.Post(1); err != nil {
				return err
			}
			return s.Wait(cctx, 1)
		},
		"Do(cancelable)": func() error {
			return s.Do(cctx, Op{Num: 0, Delta: 1}, Op{Num: 0, Delta: -1})
		},
		"Do": func() error {
			return s.Do(ctx, Op{Num: 0, Delta: 1}, Op{Num: 1, Delta: 1}, Op{Num: 0, Delta: -1}, Op{Num: 1, Delta: -1})
		},
		"DoTimeout": func() error {
			return s.DoTimeout(1e9, Op{Num: 2, Delta: 1}, Op{Num: 2, Delta: -1, Flags: Undo})
		},
		"DoTimeout(would block)": func() error {
			if err := s.DoTimeout(1e9, Op{Num: 2, Delta: -1, Flags: NoWait}); err != ErrWouldBlock {
				return err
			}
			return nil
		},
		"Values":   func() error { return s.Values(vals) },
		"Value":    func() error { _, err := s.Value(0); return err },
		"SetValue": func() error { return s.SetValue(2, 0) },
	}
	for name, call := range calls {
		var err error
		allocs := testing.AllocsPerRun(100, func() {
			if e := call(); e != nil {
				err = e
			}
		})
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if allocs != 0 {
			t.Errorf("%s: %v allocations per call, want 0", name, allocs)
		}
	}
}
