package semaphore

import (
	"errors"
	"io/fs"
	"os"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmring/shmring/internal/ipctest"
	"github.com/shmring/shmring/ipc"
)

// newSet creates a private set of n semaphores that is removed when the
// test ends.
func newSet(t testing.TB, n int) *Set {
	t.Helper()
	return create(t, ipc.Private, n, nil)
}

// create is Create for tests: it tracks the set and removes it when the
// test ends.
func create(t testing.TB, key ipc.Key, n int, opts *Options) *Set {
	t.Helper()
	s, err := Create(key, n, opts)
	if err != nil {
		if errors.Is(err, errors.ErrUnsupported) {
			t.Skip("System V semaphores are not supported:", err)
		}
		t.Fatal(err)
	}
	track(t, s)
	return s
}

// track makes the test check that s is gone when the tests end, and
// removes it when this test ends.
func track(t testing.TB, s *Set) {
	ipctest.Track(t, ipctest.Sem, s.ID())
	t.Cleanup(func() {
		if err := s.Remove(); err != nil && !errors.Is(err, ipc.ErrRemoved) {
			t.Error(err)
		}
	})
}

// tempKey returns a key made by ftok from a new temporary directory.
func tempKey(t testing.TB) ipc.Key {
	t.Helper()
	key, err := ipc.Ftok(t.TempDir(), 'S')
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// values returns every value of s.
func values(t testing.TB, s *Set) []uint16 {
	t.Helper()
	v := make([]uint16, s.Len())
	if err := s.Values(v); err != nil {
		t.Fatal(err)
	}
	return v
}

// value returns the value of semaphore num.
func value(t testing.TB, s *Set, num int) int {
	t.Helper()
	v, err := s.Value(num)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// awaitWaiters returns once at least want callers sleep on semaphore num,
// waiting for an increase, or for zero if zero is true. It fails the test
// after ipctest.Deadline.
func awaitWaiters(t testing.TB, s *Set, num, want int, zero bool) {
	t.Helper()
	count := s.WaitingForIncrease
	if zero {
		count = s.WaitingForZero
	}
	deadline := time.Now().Add(ipctest.Deadline)
	for {
		n, err := count(num)
		if err != nil {
			t.Fatal(err)
		}
		if n >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("semaphore %d: %d waiters after %v, want %d", num, n, ipctest.Deadline, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// result waits for one error from errs, failing the test after
// ipctest.Deadline.
func result(t testing.TB, errs <-chan error) error {
	t.Helper()
	select {
	case err := <-errs:
		return err
	case <-time.After(ipctest.Deadline):
		t.Fatalf("no result after %v", ipctest.Deadline)
		return nil
	}
}

func TestCreateOpen(t *testing.T) {
	key := tempKey(t)
	s := create(t, key, 3, &Options{Exclusive: true})
	if s.Key() != key || s.Len() != 3 || s.ID() < 0 {
		t.Fatalf("created %v, want key %v len 3", s, key)
	}

	o, err := Open(key)
	if err != nil {
		t.Fatal(err)
	}
	if *o != *s {
		t.Errorf("Open(%v) = %v, want %v", key, o, s)
	}

	o, err = OpenID(s.ID())
	if err != nil {
		t.Fatal(err)
	}
	if *o != *s {
		t.Errorf("OpenID(%d) = %v, want %v", s.ID(), o, s)
	}

	// Without Exclusive, Create opens the existing set, whatever its size.
	o, err = Create(key, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *o != *s {
		t.Errorf("non-exclusive Create(%v) = %v, want %v", key, o, s)
	}

	// The handles share the kernel's set.
	if err := s.Post(2); err != nil {
		t.Fatal(err)
	}
	if v := value(t, o, 2); v != 1 {
		t.Errorf("value seen through the other handle = %d, want 1", v)
	}
}

func TestCreateExclusiveConflict(t *testing.T) {
	key := tempKey(t)
	create(t, key, 1, &Options{Exclusive: true})
	_, err := Create(key, 1, &Options{Exclusive: true})
	if !errors.Is(err, fs.ErrExist) || !errors.Is(err, unix.EEXIST) {
		t.Fatalf("second exclusive Create = %v, want fs.ErrExist", err)
	}
	var ie *ipc.Error
	if !errors.As(err, &ie) || ie.Op != "semget" || ie.Key != key {
		t.Errorf("error %#v does not name semget and key %v", err, key)
	}

	// A larger set than the existing one cannot be opened by Create.
	if _, err := Create(key, 2, nil); !errors.Is(err, unix.EINVAL) {
		t.Errorf("Create larger than the existing set = %v, want EINVAL", err)
	}
}

func TestCreatePrivateIsNew(t *testing.T) {
	a := newSet(t, 1)
	b := newSet(t, 1)
	if a.ID() == b.ID() || a.Key() != ipc.Private {
		t.Fatalf("two private sets: %v and %v", a, b)
	}
}

func TestOpenMissing(t *testing.T) {
	key := tempKey(t)
	_, err := Open(key)
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, unix.ENOENT) {
		t.Fatalf("Open(missing key) = %v, want fs.ErrNotExist", err)
	}
}

func TestStat(t *testing.T) {
	before := time.Now().Add(-time.Second).Truncate(time.Second)
	s := create(t, tempKey(t), 4, &Options{Mode: 0o640, Exclusive: true})
	info, err := s.Stat()
	if err != nil {
		t.Fatal(err)
	}
	uid, gid := uint32(os.Geteuid()), uint32(os.Getegid())
	want := ipc.Perm{Key: s.Key(), UID: uid, GID: gid, CUID: uid, CGID: gid, Mode: 0o640}
	if info.Perm != want || info.Count != 4 {
		t.Errorf("Stat = %+v, want %+v and count 4", info, want)
	}
	if !info.OpTime.IsZero() {
		t.Errorf("OpTime = %v before any operation", info.OpTime)
	}
	if info.ChangeTime.Before(before) {
		t.Errorf("ChangeTime = %v, before the set was created (%v)", info.ChangeTime, before)
	}

	if err := s.Post(1); err != nil {
		t.Fatal(err)
	}
	info, err = s.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if info.OpTime.Before(before) {
		t.Errorf("OpTime = %v after a post, want after %v", info.OpTime, before)
	}

	// Stat agrees with List.
	recs, err := List()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(recs, func(r ipc.SemRecord) bool { return r.ID == s.ID() })
	if i < 0 {
		t.Fatalf("List does not have id %d", s.ID())
	}
	if r := recs[i]; r.Perm != info.Perm || r.Count != info.Count || !r.OpTime.Equal(info.OpTime) {
		t.Errorf("List has %+v, Stat %+v", r, info)
	}
}

func TestDefaultMode(t *testing.T) {
	s := newSet(t, 1)
	info, err := s.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode != ipc.DefaultMode {
		t.Errorf("mode = %v, want %v", info.Mode, ipc.DefaultMode)
	}
}

func TestSetModeOwner(t *testing.T) {
	s := newSet(t, 1)
	if err := s.SetMode(0o604); err != nil {
		t.Fatal(err)
	}
	info, err := s.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode != 0o604 {
		t.Errorf("mode = %v after SetMode(0604)", info.Mode)
	}

	// -1 keeps both ids.
	if err := s.SetOwner(-1, -1); err != nil {
		t.Fatal(err)
	}
	after, err := s.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if after.UID != info.UID || after.GID != info.GID || after.Mode != 0o604 {
		t.Errorf("SetOwner(-1, -1) changed %+v to %+v", info.Perm, after.Perm)
	}

	if os.Geteuid() != 0 {
		return
	}
	// Root may give the set away, and still change it.
	if err := s.SetOwner(65534, -1); err != nil {
		t.Fatal(err)
	}
	after, err = s.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if after.UID != 65534 || after.GID != info.GID || after.CUID != info.CUID {
		t.Errorf("after SetOwner(65534, -1): %+v", after.Perm)
	}
	if err := s.SetOwner(int(info.UID), 65534); err != nil {
		t.Fatal(err)
	}
	if after, err = s.Stat(); err != nil {
		t.Fatal(err)
	}
	if after.UID != info.UID || after.GID != 65534 {
		t.Errorf("after SetOwner(%d, 65534): %+v", info.UID, after.Perm)
	}
}

func TestList(t *testing.T) {
	s := newSet(t, 2)
	recs, err := List()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(recs, func(r ipc.SemRecord) bool { return r.ID == s.ID() })
	if i < 0 {
		t.Fatalf("List does not have id %d", s.ID())
	}
	if recs[i].Count != 2 || recs[i].Key != ipc.Private {
		t.Errorf("List has %+v for %v", recs[i], s)
	}
}
