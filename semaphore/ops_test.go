package semaphore

import (
	"context"
	"errors"
	"io/fs"
	"math"
	"os"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmring/shmring/internal/ipctest"
	"github.com/shmring/shmring/ipc"
)

func TestPostWaitTryWait(t *testing.T) {
	s := newSet(t, 2)
	ctx := context.Background()

	if err := s.TryWait(0); err != ErrWouldBlock {
		t.Fatalf("TryWait on 0 = %v, want ErrWouldBlock itself", err)
	}
	if err := s.Post(0); err != nil {
		t.Fatal(err)
	}
	if err := s.Post(0); err != nil {
		t.Fatal(err)
	}
	if got := values(t, s); !slices.Equal(got, []uint16{2, 0}) {
		t.Fatalf("values after two posts = %v", got)
	}
	if err := s.TryWait(0); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.TryWait(0); !errors.Is(err, ErrWouldBlock) || !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("TryWait on 0 = %v, want ErrWouldBlock", err)
	}

	if err := s.Add(1, 5); err != nil {
		t.Fatal(err)
	}
	if v := value(t, s, 1); v != 5 {
		t.Fatalf("value after Add(1, 5) = %d", v)
	}
}

func TestWaitWakes(t *testing.T) {
	s := newSet(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	waits := map[string]func() error{
		"Wait":            func() error { return s.Wait(context.Background(), 0) },
		"Wait/cancelable": func() error { return s.Wait(ctx, 0) },
		"WaitTimeout":     func() error { return s.WaitTimeout(0, ipctest.Deadline) },
		"Do":              func() error { return s.Do(ctx, Op{Num: 0, Delta: -1}) },
		"DoTimeout":       func() error { return s.DoTimeout(ipctest.Deadline, Op{Num: 0, Delta: -1}) },
	}
	for name, wait := range waits {
		t.Run(name, func(t *testing.T) {
			errs := make(chan error, 1)
			go func() { errs <- wait() }()
			awaitWaiters(t, s, 0, 1, false)
			if err := s.Post(0); err != nil {
				t.Fatal(err)
			}
			if err := result(t, errs); err != nil {
				t.Fatal(err)
			}
			if v := value(t, s, 0); v != 0 {
				t.Errorf("value after the wait = %d, want 0", v)
			}
		})
	}
}

func TestWaitTimeout(t *testing.T) {
	s := newSet(t, 1)
	start := time.Now()
	err := s.WaitTimeout(0, 20*time.Millisecond)
	if err != ErrTimeout {
		t.Fatalf("WaitTimeout on 0 = %v, want ErrTimeout itself", err)
	}
	if elapsed := time.Since(start); elapsed < 20*time.Millisecond {
		t.Errorf("WaitTimeout(20ms) timed out after %v", elapsed)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.Is(err, unix.EAGAIN) || errors.Is(err, ErrWouldBlock) {
		t.Errorf("ErrTimeout matches the wrong errors")
	}
	var te interface{ Timeout() bool }
	if !errors.As(err, &te) || !te.Timeout() {
		t.Errorf("ErrTimeout has no Timeout method returning true")
	}

	// No time at all: one try.
	for _, d := range []time.Duration{0, -time.Second} {
		if err := s.WaitTimeout(0, d); err != ErrTimeout {
			t.Errorf("WaitTimeout(%v) on 0 = %v, want ErrTimeout", d, err)
		}
	}
	if err := s.Post(0); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitTimeout(0, 0); err != nil {
		t.Errorf("WaitTimeout(0) on 1 = %v", err)
	}
}

func TestWaitContext(t *testing.T) {
	s := newSet(t, 1)

	// Cancelled while asleep.
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 1)
	go func() { errs <- s.Wait(ctx, 0) }()
	awaitWaiters(t, s, 0, 1, false)
	cancel()
	if err := result(t, errs); err != context.Canceled {
		t.Fatalf("Wait after cancel = %v, want context.Canceled", err)
	}

	// Already cancelled: nothing is taken, even if it could be.
	if err := s.Post(0); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(ctx, 0); err != context.Canceled {
		t.Fatalf("Wait with a cancelled context = %v", err)
	}
	if err := s.Do(ctx, Op{Num: 0, Delta: -1}); err != context.Canceled {
		t.Fatalf("Do with a cancelled context = %v", err)
	}
	if v := value(t, s, 0); v != 1 {
		t.Fatalf("value = %d, want 1: a cancelled wait took it", v)
	}
	if err := s.TryWait(0); err != nil {
		t.Fatal(err)
	}

	// Past the context's deadline.
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := s.Wait(ctx, 0); err != context.DeadlineExceeded {
		t.Fatalf("Wait past the deadline = %v, want context.DeadlineExceeded", err)
	}
}

func TestDoAtomic(t *testing.T) {
	s := newSet(t, 2)
	if err := s.SetValues([]uint16{1, 0}); err != nil {
		t.Fatal(err)
	}
	both := []Op{{Num: 0, Delta: -1}, {Num: 1, Delta: -1}}
	bothNoWait := []Op{{Num: 0, Delta: -1, Flags: NoWait}, {Num: 1, Delta: -1, Flags: NoWait}}

	// Semaphore 1 is 0, so neither decrement applies.
	if err := s.Do(context.Background(), bothNoWait...); err != ErrWouldBlock {
		t.Fatalf("Do = %v, want ErrWouldBlock", err)
	}
	if err := s.DoTimeout(time.Second, bothNoWait...); err != ErrWouldBlock {
		t.Fatalf("DoTimeout with NoWait = %v, want ErrWouldBlock", err)
	}
	if err := s.DoTimeout(20*time.Millisecond, both...); err != ErrTimeout {
		t.Fatalf("DoTimeout = %v, want ErrTimeout", err)
	}
	if got := values(t, s); !slices.Equal(got, []uint16{1, 0}) {
		t.Fatalf("values after failed Do = %v, want [1 0]", got)
	}

	// A sleeping Do applies both once semaphore 1 is posted.
	errs := make(chan error, 1)
	go func() { errs <- s.Do(context.Background(), both...) }()
	awaitWaiters(t, s, 1, 1, false)
	if got := values(t, s); !slices.Equal(got, []uint16{1, 0}) {
		t.Fatalf("values while Do sleeps = %v, want [1 0]", got)
	}
	if err := s.Post(1); err != nil {
		t.Fatal(err)
	}
	if err := result(t, errs); err != nil {
		t.Fatal(err)
	}
	if got := values(t, s); !slices.Equal(got, []uint16{0, 0}) {
		t.Fatalf("values after Do = %v, want [0 0]", got)
	}

	// Operations apply in order: +1 then -1 on the same semaphore succeeds.
	if err := s.Do(context.Background(), Op{Num: 0, Delta: 1}, Op{Num: 0, Delta: -1, Flags: NoWait}); err != nil {
		t.Fatal(err)
	}

	// More operations than fit on the stack.
	many := make([]Op, 3*maxStackOps)
	for i := range many {
		many[i] = Op{Num: uint16(i % 2), Delta: 2}
	}
	if err := s.DoTimeout(time.Second, many...); err != nil {
		t.Fatal(err)
	}
	if got := values(t, s); !slices.Equal(got, []uint16{3 * maxStackOps, 3 * maxStackOps}) {
		t.Fatalf("values after %d ops = %v", len(many), got)
	}
}

func TestDoNoWaitWhileAsleep(t *testing.T) {
	// NoWait concerns its own operation: a Do whose other operation
	// sleeps fails once the NoWait one is found unable to proceed.
	s := newSet(t, 2)
	if err := s.SetValue(1, 1); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 1)
	go func() {
		errs <- s.DoTimeout(ipctest.Deadline, Op{Num: 0, Delta: -1}, Op{Num: 1, Delta: -1, Flags: NoWait})
	}()
	awaitWaiters(t, s, 0, 1, false)
	if err := s.TryWait(1); err != nil { // semaphore 1 can no longer be decremented
		t.Fatal(err)
	}
	if err := s.Post(0); err != nil { // wakes the sleeper, which fails
		t.Fatal(err)
	}
	if err := result(t, errs); err != ErrWouldBlock {
		t.Fatalf("DoTimeout = %v, want ErrWouldBlock", err)
	}
	if got := values(t, s); !slices.Equal(got, []uint16{1, 0}) {
		t.Fatalf("values = %v, want [1 0]", got)
	}
}

func TestWaitForZero(t *testing.T) {
	s := newSet(t, 1)
	if err := s.SetValue(0, 1); err != nil {
		t.Fatal(err)
	}
	zero := Op{Num: 0, Delta: 0}
	if err := s.Do(context.Background(), Op{Num: 0, Delta: 0, Flags: NoWait}); err != ErrWouldBlock {
		t.Fatalf("wait-for-zero with NoWait on 1 = %v", err)
	}
	errs := make(chan error, 2)
	go func() { errs <- s.Do(context.Background(), zero) }()
	go func() { errs <- s.DoTimeout(ipctest.Deadline, zero) }()
	awaitWaiters(t, s, 0, 2, true)
	if n, err := s.WaitingForIncrease(0); err != nil || n != 0 {
		t.Fatalf("WaitingForIncrease = %d, %v; want 0", n, err)
	}
	if err := s.TryWait(0); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := result(t, errs); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.WaitingForZero(0); err != nil || n != 0 {
		t.Fatalf("WaitingForZero after the wake = %d, %v; want 0", n, err)
	}
}

func TestWaiterCounts(t *testing.T) {
	s := newSet(t, 2)
	for num := range 2 {
		for name, count := range map[string]func(int) (int, error){
			"WaitingForIncrease": s.WaitingForIncrease, "WaitingForZero": s.WaitingForZero,
		} {
			if n, err := count(num); err != nil || n != 0 {
				t.Fatalf("%s(%d) = %d, %v on a new set", name, num, n, err)
			}
		}
	}
	errs := make(chan error, 3)
	for range 3 {
		go func() { errs <- s.WaitTimeout(1, ipctest.Deadline) }()
	}
	awaitWaiters(t, s, 1, 3, false)
	if n, err := s.WaitingForIncrease(0); err != nil || n != 0 {
		t.Fatalf("WaitingForIncrease(0) = %d, %v; want 0", n, err)
	}
	if err := s.Add(1, 3); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := result(t, errs); err != nil {
			t.Fatal(err)
		}
	}
}

func TestValues(t *testing.T) {
	s := newSet(t, 3)
	want := []uint16{7, 0, MaxValue}
	if err := s.SetValues(want); err != nil {
		t.Fatal(err)
	}
	if got := values(t, s); !slices.Equal(got, want) {
		t.Fatalf("Values = %v, want %v", got, want)
	}
	if err := s.SetValue(1, 42); err != nil {
		t.Fatal(err)
	}
	for num, want := range []int{7, 42, MaxValue} {
		if v := value(t, s, num); v != want {
			t.Errorf("Value(%d) = %d, want %d", num, v, want)
		}
	}
	if err := s.SetValue(1, 0); err != nil {
		t.Fatal(err)
	}
	if v := value(t, s, 1); v != 0 {
		t.Errorf("Value(1) = %d after SetValue(1, 0)", v)
	}
}

func TestSetValueWakes(t *testing.T) {
	s := newSet(t, 1)
	errs := make(chan error, 1)
	go func() { errs <- s.WaitTimeout(0, ipctest.Deadline) }()
	awaitWaiters(t, s, 0, 1, false)
	if err := s.SetValues([]uint16{1}); err != nil {
		t.Fatal(err)
	}
	if err := result(t, errs); err != nil {
		t.Fatal(err)
	}
}

func TestLastPID(t *testing.T) {
	s := newSet(t, 2)
	if pid, err := s.LastPID(0); err != nil || pid != 0 {
		t.Fatalf("LastPID on a new set = %d, %v; want 0", pid, err)
	}
	if err := s.Post(0); err != nil {
		t.Fatal(err)
	}
	if pid, err := s.LastPID(0); err != nil || pid != os.Getpid() {
		t.Fatalf("LastPID after Post = %d, %v; want %d", pid, err, os.Getpid())
	}
	if pid, err := s.LastPID(1); err != nil || pid != 0 {
		t.Fatalf("LastPID of another semaphore = %d, %v; want 0", pid, err)
	}
}

func TestRange(t *testing.T) {
	s := newSet(t, 1)
	if err := s.SetValue(0, MaxValue); err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"Post":         func() error { return s.Post(0) },
		"Add":          func() error { return s.Add(0, 1) },
		"Do":           func() error { return s.Do(context.Background(), Op{Num: 0, Delta: 1}) },
		"SetValue":     func() error { return s.SetValue(0, MaxValue+1) },
		"SetValue(-1)": func() error { return s.SetValue(0, -1) },
		"SetValues":    func() error { return s.SetValues([]uint16{MaxValue + 1}) },
		"Add(big)":     func() error { return s.Add(0, MaxValue+1) },
		"Do(-32768)":   func() error { return s.Do(context.Background(), Op{Num: 0, Delta: math.MinInt16}) },
	} {
		err := call()
		if !errors.Is(err, ErrRange) || !errors.Is(err, unix.ERANGE) {
			t.Errorf("%s = %v, want ErrRange", name, err)
		}
	}
	if v := value(t, s, 0); v != MaxValue {
		t.Errorf("value = %d, want %d", v, MaxValue)
	}
}

func TestRemoveWakesWaiters(t *testing.T) {
	s := newSet(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	waits := []func() error{
		func() error { return s.Wait(context.Background(), 0) },
		func() error { return s.Wait(ctx, 0) },
		func() error { return s.WaitTimeout(0, ipctest.Deadline) },
		func() error { return s.Do(context.Background(), Op{Num: 0, Delta: -2}) },
	}
	errs := make(chan error, len(waits))
	for _, wait := range waits {
		go func() { errs <- wait() }()
	}
	awaitWaiters(t, s, 0, len(waits), false)
	if err := s.Remove(); err != nil {
		t.Fatal(err)
	}
	for range waits {
		if err := result(t, errs); !errors.Is(err, ipc.ErrRemoved) {
			t.Errorf("waiter returned %v after Remove, want ipc.ErrRemoved", err)
		}
	}
}

func TestRemoved(t *testing.T) {
	s := newSet(t, 2)
	if err := s.Remove(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := map[string]func() error{
		"Remove":             s.Remove,
		"Post":               func() error { return s.Post(0) },
		"Add":                func() error { return s.Add(1, 2) },
		"TryWait":            func() error { return s.TryWait(0) },
		"Wait":               func() error { return s.Wait(context.Background(), 0) },
		"Wait/cancelable":    func() error { return s.Wait(ctx, 0) },
		"WaitTimeout":        func() error { return s.WaitTimeout(0, time.Second) },
		"Do":                 func() error { return s.Do(context.Background(), Op{Num: 1, Delta: 1}) },
		"DoTimeout":          func() error { return s.DoTimeout(time.Second, Op{Num: 1}) },
		"Value":              func() error { _, err := s.Value(0); return err },
		"SetValue":           func() error { return s.SetValue(0, 1) },
		"Values":             func() error { return s.Values(make([]uint16, 2)) },
		"SetValues":          func() error { return s.SetValues(make([]uint16, 2)) },
		"WaitingForIncrease": func() error { _, err := s.WaitingForIncrease(0); return err },
		"WaitingForZero":     func() error { _, err := s.WaitingForZero(0); return err },
		"LastPID":            func() error { _, err := s.LastPID(0); return err },
		"Stat":               func() error { _, err := s.Stat(); return err },
		"SetMode":            func() error { return s.SetMode(0o600) },
		"SetOwner":           func() error { return s.SetOwner(-1, -1) },
		"OpenID":             func() error { _, err := OpenID(s.ID()); return err },
	}
	for name, call := range calls {
		err := call()
		var ie *ipc.Error
		if !errors.Is(err, ipc.ErrRemoved) || !errors.As(err, &ie) || ie.ID != s.ID() {
			t.Errorf("%s on a removed set = %v, want ipc.ErrRemoved naming id %d", name, err, s.ID())
		}
	}
}

func TestBadArguments(t *testing.T) {
	s := newSet(t, 2)
	var zero Set
	var nilSet *Set
	bg := context.Background()
	calls := map[string]func() error{
		"Create(0)":            func() error { _, err := Create(ipc.Private, 0, nil); return err },
		"Create(-1)":           func() error { _, err := Create(ipc.Private, -1, nil); return err },
		"Create(MaxLen+1)":     func() error { _, err := Create(ipc.Private, MaxLen+1, nil); return err },
		"Create(mode)":         func() error { _, err := Create(ipc.Private, 1, &Options{Mode: fs.ModeDir | 0o600}); return err },
		"Open(Private)":        func() error { _, err := Open(ipc.Private); return err },
		"OpenID(-1)":           func() error { _, err := OpenID(-1); return err },
		"Wait(-1)":             func() error { return s.Wait(bg, -1) },
		"Wait(2)":              func() error { return s.Wait(bg, 2) },
		"WaitTimeout(2)":       func() error { return s.WaitTimeout(2, time.Second) },
		"TryWait(2)":           func() error { return s.TryWait(2) },
		"Post(2)":              func() error { return s.Post(2) },
		"Add(2)":               func() error { return s.Add(2, 1) },
		"Add(0, 0)":            func() error { return s.Add(0, 0) },
		"Add(0, -1)":           func() error { return s.Add(0, -1) },
		"Do()":                 func() error { return s.Do(bg) },
		"Wait(nil context)":    func() error { return s.Wait(nil, 0) },                  //lint:ignore SA1012 testing the nil check
		"Do(nil context)":      func() error { return s.Do(nil, Op{Num: 0, Delta: 1}) }, //lint:ignore SA1012 testing the nil check
		"DoTimeout()":          func() error { return s.DoTimeout(time.Second) },
		"Do(num 2)":            func() error { return s.Do(bg, Op{Num: 0, Delta: 1}, Op{Num: 2, Delta: 1}) },
		"Do(flags)":            func() error { return s.Do(bg, Op{Num: 0, Delta: 1, Flags: 1}) },
		"Value(2)":             func() error { _, err := s.Value(2); return err },
		"SetValue(2)":          func() error { return s.SetValue(2, 0) },
		"Values(short)":        func() error { return s.Values(make([]uint16, 1)) },
		"Values(long)":         func() error { return s.Values(make([]uint16, 3)) },
		"SetValues(nil)":       func() error { return s.SetValues(nil) },
		"WaitingForIncrease":   func() error { _, err := s.WaitingForIncrease(-1); return err },
		"WaitingForZero":       func() error { _, err := s.WaitingForZero(2); return err },
		"LastPID":              func() error { _, err := s.LastPID(2); return err },
		"SetMode":              func() error { return s.SetMode(fs.ModeSetuid | 0o600) },
		"SetOwner(-2)":         func() error { return s.SetOwner(-2, 0) },
		"SetOwner(MaxUint32)":  func() error { return s.SetOwner(0, math.MaxUint32) },
		"zero Set Remove":      zero.Remove,
		"zero Set Post":        func() error { return zero.Post(0) },
		"zero Set Do":          func() error { return zero.Do(bg, Op{}) },
		"zero Set Values":      func() error { return zero.Values(nil) },
		"zero Set Stat":        func() error { _, err := zero.Stat(); return err },
		"nil Set Remove":       nilSet.Remove,
		"nil Set Wait":         func() error { return nilSet.Wait(bg, 0) },
		"nil Set DoTimeout":    func() error { return nilSet.DoTimeout(0, Op{}) },
		"nil Set SetOwner":     func() error { return nilSet.SetOwner(0, 0) },
		"nil Set SetValues":    func() error { return nilSet.SetValues(nil) },
		"nil Set LastPID":      func() error { _, err := nilSet.LastPID(0); return err },
		"nil Set SetMode(bad)": func() error { return nilSet.SetMode(fs.ModeDir) },
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("%s = %v, want fs.ErrInvalid", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if got := values(t, s); !slices.Equal(got, []uint16{0, 0}) {
		t.Errorf("values = %v after bad calls", got)
	}
	if nilSet.ID() != -1 || nilSet.Len() != 0 || nilSet.Key() != ipc.Private {
		t.Errorf("nil Set: id %d len %d key %v", nilSet.ID(), nilSet.Len(), nilSet.Key())
	}
}

func TestErrors(t *testing.T) {
	if !errors.Is(ErrWouldBlock, unix.EAGAIN) || errors.Is(ErrWouldBlock, os.ErrDeadlineExceeded) {
		t.Error("ErrWouldBlock matches the wrong errors")
	}
	if !errors.Is(ErrTimeout, os.ErrDeadlineExceeded) || errors.Is(ErrTimeout, ErrWouldBlock) {
		t.Error("ErrTimeout matches the wrong errors")
	}
	if !errors.Is(ErrRange, unix.ERANGE) || errors.Is(ErrRange, unix.EAGAIN) {
		t.Error("ErrRange matches the wrong errors")
	}
}
