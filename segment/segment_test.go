package segment

import (
	"bytes"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmring/shmring/internal/ipctest"
	"github.com/shmring/shmring/ipc"
)

func TestCreateOpen(t *testing.T) {
	key := newKey(t)
	s := create(t, key, 4096, &Options{Exclusive: true})
	if s.Key() != key {
		t.Errorf("Key() = %v, want %v", s.Key(), key)
	}

	byKey, err := Open(key)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if byKey.ID() != s.ID() || byKey.Key() != key {
		t.Errorf("Open(%v) = id %d key %v, want id %d", key, byKey.ID(), byKey.Key(), s.ID())
	}

	byID, err := OpenID(s.ID())
	if err != nil {
		t.Fatalf("OpenID: %v", err)
	}
	if byID.ID() != s.ID() || byID.Key() != key {
		t.Errorf("OpenID(%d) = id %d key %v, want key %v", s.ID(), byID.ID(), byID.Key(), key)
	}

	// Without Exclusive, Create opens the existing segment, at any size
	// up to its own.
	for _, size := range []int{1, 4096} {
		again, err := Create(key, size, nil)
		if err != nil {
			t.Fatalf("Create(existing, %d): %v", size, err)
		}
		if again.ID() != s.ID() {
			t.Errorf("Create(existing, %d) = id %d, want %d", size, again.ID(), s.ID())
		}
	}
}

func TestCreateExclusiveConflict(t *testing.T) {
	key := newKey(t)
	s := create(t, key, 4096, &Options{Exclusive: true})
	_, err := Create(key, 4096, &Options{Exclusive: true})
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second exclusive Create: got %v, want fs.ErrExist", err)
	}
	if !errors.Is(err, unix.EEXIST) {
		t.Errorf("error %v does not match EEXIST", err)
	}
	var ie *ipc.Error
	if !errors.As(err, &ie) || ie.Op != "shmget" || ie.Key != key {
		t.Errorf("error %#v is not an *ipc.Error for shmget of %v", err, key)
	}
	t.Log(err)
	// The first segment is untouched.
	if info := stat(t, s); info.Size != 4096 {
		t.Errorf("Size = %d, want 4096", info.Size)
	}
}

func TestCreateLargerThanExisting(t *testing.T) {
	key := newKey(t)
	s := create(t, key, 4096, nil)
	_, err := Create(key, 8192, nil)
	if !errors.Is(err, ErrSize) || !errors.Is(err, unix.EINVAL) {
		t.Fatalf("Create(existing 4096, 8192): got %v, want ErrSize and EINVAL", err)
	}
	for _, want := range []string{"4096", "8192", s.Key().String(), strconv.Itoa(s.ID())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestCreatePrivate(t *testing.T) {
	a := create(t, ipc.Private, 4096, &Options{Exclusive: true})
	b := create(t, ipc.Private, 4096, &Options{Exclusive: true})
	if a.ID() == b.ID() {
		t.Fatalf("two private segments share id %d", a.ID())
	}
	if a.Key() != ipc.Private {
		t.Errorf("Key() = %v, want %v", a.Key(), ipc.Private)
	}
	byID, err := OpenID(a.ID())
	if err != nil {
		t.Fatal(err)
	}
	if byID.Key() != ipc.Private {
		t.Errorf("OpenID of a private segment: Key() = %v", byID.Key())
	}
}

func TestOpenMissing(t *testing.T) {
	key := newKey(t)
	_, err := Open(key)
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, unix.ENOENT) {
		t.Fatalf("Open(unused key): got %v, want fs.ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), key.String()) {
		t.Errorf("error %q does not name key %v", err, key)
	}

	_, err = Open(ipc.Private)
	if !errors.Is(err, ErrPrivate) {
		t.Errorf("Open(Private): got %v, want ErrPrivate", err)
	}

	_, err = OpenID(-1)
	if !errors.Is(err, unix.EINVAL) || errors.Is(err, ipc.ErrRemoved) {
		t.Errorf("OpenID(-1): got %v, want EINVAL", err)
	}
}

func TestCreateBadSize(t *testing.T) {
	for _, size := range []int{0, -1, math.MinInt} {
		s, err := Create(ipc.Private, size, nil)
		if err == nil {
			track(t, s)
		}
		if !errors.Is(err, ErrSize) {
			t.Errorf("Create(%d): got %v, want ErrSize", size, err)
		}
		if err != nil && !strings.Contains(err.Error(), strconv.Itoa(size)) {
			t.Errorf("error %q does not give the size", err)
		}
	}

	limit, ok := shmmax()
	if !ok {
		t.Fatalf("cannot read %s", procShmmax)
	}
	if limit < math.MaxInt {
		s, err := Create(ipc.Private, int(limit)+1, nil)
		if err == nil {
			track(t, s)
		}
		if !errors.Is(err, ErrSize) || !strings.Contains(err.Error(), "shmmax") {
			t.Errorf("Create(SHMMAX+1): got %v, want ErrSize naming shmmax", err)
		}
	}

	// Sizes no machine can back fail cleanly, with the kernel's reason
	// (here SHMMAX does not stop them). A kernel that never refuses to
	// overcommit (vm.overcommit_memory=1) may accept them: that is fine
	// too, as long as nothing panics.
	for _, size := range []int{math.MaxInt, math.MaxInt - 4095, 1 << 50} {
		s, err := Create(ipc.Private, size, nil)
		if err == nil {
			track(t, s)
			t.Logf("Create(%d) succeeded", size)
			continue
		}
		var ie *ipc.Error
		if !errors.Is(err, ErrSize) && !errors.As(err, &ie) {
			t.Errorf("Create(%d): got %v, want ErrSize or an *ipc.Error", size, err)
		}
		t.Logf("Create(%d): %v", size, err)
	}
}

// TestCreateOverShmmax lowers SHMMAX in a private IPC namespace, in a
// child process, so the check is exercised even where the limit is larger
// than any int.
func TestCreateOverShmmax(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make an IPC namespace and set its SHMMAX")
	}
	cmd := ipctest.Command(t, "shmmax")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWIPC}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper in a new IPC namespace: %v\n%s", err, out)
	}
}

func TestCreateBadMode(t *testing.T) {
	for _, mode := range []fs.FileMode{0o1000, fs.ModeDir | 0o600, fs.ModeSetuid | 0o600} {
		s, err := Create(ipc.Private, 4096, &Options{Mode: mode})
		if err == nil {
			track(t, s)
			t.Errorf("Create with mode %v succeeded", mode)
		}
	}
}

func TestCreateMode(t *testing.T) {
	for _, tc := range []struct {
		opts *Options
		want fs.FileMode
	}{
		{nil, ipc.DefaultMode},
		{&Options{}, ipc.DefaultMode},
		{&Options{Mode: 0o640}, 0o640},
		{&Options{Mode: 0o444}, 0o444},
	} {
		s := create(t, ipc.Private, 4096, tc.opts)
		if got := stat(t, s).Perm.Mode; got != tc.want {
			t.Errorf("Create(%+v): mode %v, want %v", tc.opts, got, tc.want)
		}
	}
}

func TestAttachShared(t *testing.T) {
	const size = 10000 // not a multiple of the page size
	s := create(t, ipc.Private, size, nil)
	a := attach(t, s, false)
	b := attach(t, s, false)
	if a.ReadOnly() || b.ReadOnly() {
		t.Error("read-write mapping says ReadOnly")
	}
	if a.Segment() != s {
		t.Error("Segment() is not the segment attached")
	}
	ab, bb := a.Bytes(), b.Bytes()
	if len(ab) != size || len(bb) != size {
		t.Fatalf("len(Bytes()) = %d and %d, want %d", len(ab), len(bb), size)
	}
	if &ab[0] == &bb[0] {
		t.Fatal("two attaches share an address")
	}
	if !bytes.Equal(ab, make([]byte, size)) {
		t.Error("a new segment is not zero")
	}
	fill(ab, 1)
	if !bytes.Equal(bb, pattern(size, 1)) {
		t.Fatal("what one mapping wrote is not in the other")
	}
	bb[size-1] ^= 0xff
	if ab[size-1] != bb[size-1] {
		t.Fatal("the last byte is not shared")
	}
	if n := stat(t, s).Attached; n != 2 {
		t.Errorf("Attached = %d with two mappings, want 2", n)
	}
}

func TestAttachReadOnly(t *testing.T) {
	s := create(t, ipc.Private, 4096, nil)
	rw := attach(t, s, false)
	copy(rw.Bytes(), "hello")
	ro := attach(t, s, true)
	if !ro.ReadOnly() {
		t.Error("ReadOnly() = false for a read-only mapping")
	}
	if got := string(ro.Bytes()[:5]); got != "hello" {
		t.Errorf("read-only mapping reads %q, want hello", got)
	}
	if n := stat(t, s).Attached; n != 2 {
		t.Errorf("Attached = %d, want 2", n)
	}
	if err := ro.Detach(); err != nil {
		t.Fatal(err)
	}
	if n := stat(t, s).Attached; n != 1 {
		t.Errorf("Attached = %d after detaching the read-only mapping, want 1", n)
	}
}

func TestDetach(t *testing.T) {
	s := create(t, ipc.Private, 4096, nil)
	m, err := s.Attach(false)
	if err != nil {
		t.Fatal(err)
	}
	if stat(t, s).Attached != 1 {
		t.Fatal("not attached")
	}
	for i := range 3 {
		if err := m.Detach(); err != nil {
			t.Fatalf("Detach #%d: %v", i+1, err)
		}
		if b := m.Bytes(); b != nil {
			t.Fatalf("Bytes() after Detach = %d bytes, want nil", len(b))
		}
	}
	if n := stat(t, s).Attached; n != 0 {
		t.Errorf("Attached = %d after Detach, want 0", n)
	}
}

// TestRetire: a retired mapping no longer counts as an attach and no
// longer shares the segment, but a slice of it stays readable and
// writable, so a forgotten zero-copy view cannot fault.
func TestRetire(t *testing.T) {
	s := create(t, ipc.Private, 4096, nil)
	m, err := s.Attach(false)
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.Attach(false)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Detach()
	b := m.Bytes()
	b[10] = 42
	if err := m.Retire(); err != nil {
		t.Fatal(err)
	}
	if m.Bytes() != nil {
		t.Fatal("Bytes() not nil after Retire")
	}
	if n := stat(t, s).Attached; n != 1 {
		t.Errorf("Attached = %d after Retire, want 1 (the other mapping)", n)
	}
	if b[10] != 0 {
		t.Errorf("retired memory reads %d, want 0", b[10])
	}
	b[11] = 7 // must not fault
	if other.Bytes()[11] != 0 || other.Bytes()[10] != 42 {
		t.Error("a write to retired memory reached the segment, or the segment lost its data")
	}
	if err := m.Retire(); err != nil {
		t.Errorf("second Retire: %v", err)
	}
	if err := m.Detach(); err != nil {
		t.Errorf("Detach after Retire: %v", err)
	}
}

// TestDetachConcurrent runs Bytes and ReadOnly against Detach, for the
// race detector: the handle is safe to share, though the memory is not.
func TestDetachConcurrent(t *testing.T) {
	s := create(t, ipc.Private, 4096, nil)
	m, err := s.Attach(false)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				_ = m.Bytes()
				_ = m.ReadOnly()
			}
		}()
	}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Detach(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if m.Bytes() != nil {
		t.Fatal("Bytes() not nil after Detach")
	}
	if n := stat(t, s).Attached; n != 0 {
		t.Errorf("Attached = %d, want 0", n)
	}
}

func TestStat(t *testing.T) {
	before := time.Now().Truncate(time.Second)
	key := newKey(t)
	s := create(t, key, 5000, &Options{Mode: 0o640, Exclusive: true})
	pid := os.Getpid()

	info := stat(t, s)
	want := ipc.Perm{
		Key: key, Mode: 0o640,
		UID: uint32(os.Geteuid()), GID: uint32(os.Getegid()),
		CUID: uint32(os.Geteuid()), CGID: uint32(os.Getegid()),
	}
	if info.Perm != want {
		t.Errorf("Perm = %+v, want %+v", info.Perm, want)
	}
	if info.Size != 5000 || info.Attached != 0 || info.CreatorPID != pid || info.LastPID != 0 {
		t.Errorf("new segment: Size %d Attached %d CreatorPID %d LastPID %d, want 5000 0 %d 0",
			info.Size, info.Attached, info.CreatorPID, info.LastPID, pid)
	}
	if !info.AttachTime.IsZero() || !info.DetachTime.IsZero() {
		t.Errorf("new segment: AttachTime %v DetachTime %v, want zero", info.AttachTime, info.DetachTime)
	}
	checkTime(t, "ChangeTime", info.ChangeTime, before)
	if info.Removed || info.Locked {
		t.Errorf("new segment: Removed %v Locked %v", info.Removed, info.Locked)
	}

	m, err := s.Attach(false)
	if err != nil {
		t.Fatal(err)
	}
	info = stat(t, s)
	if info.Attached != 1 || info.LastPID != pid {
		t.Errorf("attached: Attached %d LastPID %d, want 1 %d", info.Attached, info.LastPID, pid)
	}
	checkTime(t, "AttachTime", info.AttachTime, before)
	if !info.DetachTime.IsZero() {
		t.Errorf("DetachTime = %v before any detach", info.DetachTime)
	}

	if err := m.Detach(); err != nil {
		t.Fatal(err)
	}
	info = stat(t, s)
	if info.Attached != 0 || info.LastPID != pid {
		t.Errorf("detached: Attached %d LastPID %d, want 0 %d", info.Attached, info.LastPID, pid)
	}
	checkTime(t, "DetachTime", info.DetachTime, before)
}

// checkTime checks that a kernel time stamp, in whole seconds, lies
// between before and now.
func checkTime(t *testing.T, name string, got, before time.Time) {
	t.Helper()
	if got.Before(before) || got.After(time.Now()) {
		t.Errorf("%s = %v, want between %v and now", name, got, before)
	}
}

func TestSetMode(t *testing.T) {
	s := create(t, ipc.Private, 4096, nil)
	for _, mode := range []fs.FileMode{0o640, 0o400, 0, 0o777} {
		if err := s.SetMode(mode); err != nil {
			t.Fatalf("SetMode(%v): %v", mode, err)
		}
		if got := modeOf(t, s); got != mode {
			t.Errorf("after SetMode(%v): mode %v", mode, got)
		}
	}
	if err := s.SetMode(0o1777); err == nil {
		t.Error("SetMode(01777) succeeded")
	}
	if got := modeOf(t, s); got != 0o777 {
		t.Errorf("a refused SetMode changed the mode to %v", got)
	}
}

// modeOf returns s's permission bits. It uses Stat if it may: an owner
// without CAP_IPC_OWNER may not read a segment it made unreadable, but
// /proc/sysvipc/shm still shows it.
func modeOf(t *testing.T, s *Segment) fs.FileMode {
	t.Helper()
	info, err := s.Stat()
	if err == nil {
		return info.Perm.Mode
	}
	if !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("Stat: %v", err)
	}
	list, err := List()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range list {
		if r.ID == s.ID() {
			return r.Mode
		}
	}
	t.Fatalf("List has no id %d", s.ID())
	return 0
}

func TestSetOwner(t *testing.T) {
	s := create(t, ipc.Private, 4096, nil)
	uid, gid := os.Geteuid(), os.Getegid()
	newUID, newGID := uid, gid
	if uid == 0 {
		newUID, newGID = 65534, 65533
	}
	if err := s.SetOwner(newUID, newGID); err != nil {
		t.Fatalf("SetOwner(%d, %d): %v", newUID, newGID, err)
	}
	p := stat(t, s).Perm
	if int(p.UID) != newUID || int(p.GID) != newGID || int(p.CUID) != uid || int(p.CGID) != gid || p.Mode != ipc.DefaultMode {
		t.Errorf("after SetOwner(%d, %d): %+v", newUID, newGID, p)
	}

	// -1 leaves an id as it is.
	if err := s.SetOwner(-1, gid); err != nil {
		t.Fatal(err)
	}
	p = stat(t, s).Perm
	if int(p.UID) != newUID || int(p.GID) != gid {
		t.Errorf("after SetOwner(-1, %d): uid %d gid %d", gid, p.UID, p.GID)
	}

	for _, ids := range [][2]int{{-2, 0}, {0, -2}, {math.MaxUint32, 0}, {1 << 32, 0}, {0, 1<<32 + 1}} {
		err := s.SetOwner(ids[0], ids[1])
		if !errors.Is(err, unix.EINVAL) {
			t.Errorf("SetOwner(%d, %d): got %v, want EINVAL", ids[0], ids[1], err)
		}
	}
	p = stat(t, s).Perm
	if int(p.UID) != newUID || int(p.GID) != gid {
		t.Errorf("a refused SetOwner changed the owner to %d:%d", p.UID, p.GID)
	}
}

func TestRemoveWhileAttached(t *testing.T) {
	key := newKey(t)
	s := create(t, key, 4096, &Options{Exclusive: true})
	m, err := s.Attach(false)
	if err != nil {
		t.Fatal(err)
	}
	copy(m.Bytes(), "before")
	if err := s.Remove(); err != nil {
		t.Fatalf("Remove: %v", err)
	}

	info := stat(t, s)
	if !info.Removed || info.Attached != 1 {
		t.Errorf("removed while attached: Removed %v Attached %d, want true 1", info.Removed, info.Attached)
	}
	if info.Perm.Key != ipc.Private || info.Perm.Mode != ipc.DefaultMode {
		t.Errorf("removed: key %v mode %v, want the private key and mode %v", info.Perm.Key, info.Perm.Mode, ipc.DefaultMode)
	}

	// The memory is still there, and the key is free.
	b := m.Bytes()
	if string(b[:6]) != "before" {
		t.Errorf("memory after Remove reads %q", b[:6])
	}
	copy(b, "after!")
	if string(b[:6]) != "after!" {
		t.Error("memory after Remove is not writable")
	}
	if _, err := Open(key); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a removed segment's key: got %v, want fs.ErrNotExist", err)
	}
	// Removing again is allowed while it is still attached.
	if err := s.Remove(); err != nil {
		t.Errorf("second Remove while attached: %v", err)
	}

	// The last detach frees it; from then on its id is gone.
	if err := m.Detach(); err != nil {
		t.Fatal(err)
	}
	if ipctest.Exists(ipctest.Shm, s.ID()) {
		t.Fatal("segment still listed after Remove and the last Detach")
	}
	checkRemoved(t, s)
}

// checkRemoved checks that every call on s's id reports ipc.ErrRemoved.
func checkRemoved(t *testing.T, s *Segment) {
	t.Helper()
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ipc.ErrRemoved) {
			t.Errorf("%s on a removed segment: got %v, want ipc.ErrRemoved", what, err)
		} else if msg := err.Error(); !strings.Contains(msg, strconv.Itoa(s.ID())) || !strings.Contains(msg, "removed") {
			t.Errorf("%s: error %q does not give the id and say it was removed", what, err)
		}
	}
	_, err := s.Stat()
	check("Stat", err)
	m, err := s.Attach(false)
	if err == nil {
		m.Detach()
	}
	check("Attach", err)
	check("SetMode", s.SetMode(0o600))
	check("SetOwner", s.SetOwner(-1, -1))
	check("Remove", s.Remove())
	_, err = OpenID(s.ID())
	check("OpenID", err)
}

func TestRemove(t *testing.T) {
	key := newKey(t)
	s := create(t, key, 4096, nil)
	if err := s.Remove(); err != nil {
		t.Fatal(err)
	}
	if ipctest.Exists(ipctest.Shm, s.ID()) {
		t.Fatal("segment still listed after Remove")
	}
	if _, err := Open(key); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open after Remove: got %v, want fs.ErrNotExist", err)
	}
	checkRemoved(t, s)

	// The key can make a new segment.
	again := create(t, key, 4096, &Options{Exclusive: true})
	if again.ID() == s.ID() {
		t.Errorf("new segment reuses id %d at once", s.ID())
	}
}

func TestHugePages(t *testing.T) {
	const size = 1 << 21
	s, err := Create(ipc.Private, size, &Options{HugePages: true})
	if err != nil {
		if !errors.Is(err, ErrHugePages) {
			t.Fatalf("Create with huge pages: got %v, want ErrHugePages", err)
		}
		if !errors.Is(err, unix.ENOMEM) && !errors.Is(err, unix.EPERM) &&
			!errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			t.Errorf("error %v does not keep the errno", err)
		}
		if !strings.Contains(err.Error(), "huge pages") {
			t.Errorf("error %q does not say huge pages", err)
		}
		t.Skip("no huge pages here:", err)
	}
	track(t, s)
	m := attach(t, s, false)
	b := m.Bytes()
	if len(b) != size {
		t.Fatalf("len(Bytes()) = %d, want %d", len(b), size)
	}
	fill(b, 7)
	if !bytes.Equal(b, pattern(size, 7)) {
		t.Fatal("huge-page memory does not read back")
	}
}

func TestList(t *testing.T) {
	key := newKey(t)
	s := create(t, key, 12345, &Options{Mode: 0o604})
	list, err := List()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range list {
		if r.ID != s.ID() {
			continue
		}
		if r.Key != key || r.Size != 12345 || r.Mode != 0o604 || r.CreatorPID != os.Getpid() {
			t.Errorf("List has %+v, want key %v size 12345 mode 0604 cpid %d", r, key, os.Getpid())
		}
		return
	}
	t.Fatalf("List has no id %d", s.ID())
}

// TestCrossProcess has a child process open the segment by key and write
// it; the test then reads what the child wrote.
func TestCrossProcess(t *testing.T) {
	const size, seed = 1<<16 + 123, 42
	key := newKey(t)
	s := create(t, key, size, &Options{Exclusive: true})
	cmd := ipctest.Command(t, "write",
		"SEG_KEY="+strconv.Itoa(int(key)), "SEG_ID="+strconv.Itoa(s.ID()), "SEG_SEED="+strconv.Itoa(seed))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("writer: %v", err)
	}
	sum := strings.TrimSpace(string(out))

	info := stat(t, s)
	if info.Attached != 0 || info.LastPID != cmd.Process.Pid || info.CreatorPID != os.Getpid() {
		t.Errorf("after the child: Attached %d LastPID %d CreatorPID %d, want 0 %d %d",
			info.Attached, info.LastPID, info.CreatorPID, cmd.Process.Pid, os.Getpid())
	}

	m := attach(t, s, true)
	b := m.Bytes()
	if got := checksum(b); got != sum {
		t.Fatalf("checksum here %s, in the writer %s", got, sum)
	}
	if !bytes.Equal(b, pattern(size, seed)) {
		t.Fatal("the segment does not hold the writer's pattern")
	}
}

// TestPermissionDenied has a child running as nobody try to use a segment
// made with the default mode.
func TestPermissionDenied(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a child as another user")
	}
	const nobody = 65534
	key := newKey(t)
	s := create(t, key, 4096, &Options{Exclusive: true})

	// The test binary sits in a directory only root may enter; give the
	// child a copy it can run.
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "segment.test")
	if err := copyFile(bin, exe, 0o755); err != nil {
		t.Fatal(err)
	}

	cmd := ipctest.Command(t, "noaccess", "SEG_KEY="+strconv.Itoa(int(key)), "SEG_ID="+strconv.Itoa(s.ID()))
	cmd.Path, cmd.Args[0], cmd.Dir = bin, bin, dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	if out, err := cmd.Output(); err != nil {
		t.Fatalf("child as uid %d: %v\n%s", nobody, err, out)
	}

	// Nothing the child tried changed anything.
	info := stat(t, s)
	if info.Perm.Mode != ipc.DefaultMode || info.Removed || info.Attached != 0 || info.LastPID != 0 {
		t.Errorf("after the child: %+v", info)
	}
}
