package segment

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/shmring/shmring/internal/ipctest"
	"github.com/shmring/shmring/ipc"
)

func TestMain(m *testing.M) { ipctest.Main(m, helpers) }

// helpers are the programs the test binary runs as child processes. Each
// reads its arguments from the environment and exits 0 on success; what
// went wrong goes to stderr.
var helpers = map[string]func() int{
	"write":    helperWrite,
	"noaccess": helperNoAccess,
	"shmmax":   helperShmmax,
}

// helperWrite opens SEG_KEY, checks that it is SEG_ID, fills the segment
// with the pattern for SEG_SEED, detaches, and prints the FNV-64a sum of
// what it wrote.
func helperWrite() int {
	key := ipc.Key(ipctest.GetenvInt("SEG_KEY"))
	id := ipctest.GetenvInt("SEG_ID")
	seed := uint64(ipctest.GetenvInt("SEG_SEED"))
	s, err := Open(key)
	if err != nil {
		return fail(err)
	}
	if s.ID() != id {
		return fail(fmt.Errorf("Open(%v) gave id %d, want %d", key, s.ID(), id))
	}
	m, err := s.Attach(false)
	if err != nil {
		return fail(err)
	}
	b := m.Bytes()
	fill(b, seed)
	fmt.Println(checksum(b))
	if err := m.Detach(); err != nil {
		return fail(err)
	}
	return 0
}

// helperNoAccess runs as a user that is neither the owner nor root, and
// checks that every use of segment SEG_KEY/SEG_ID is refused with
// fs.ErrPermission.
func helperNoAccess() int {
	key := ipc.Key(ipctest.GetenvInt("SEG_KEY"))
	id := ipctest.GetenvInt("SEG_ID")
	bad := 0
	expect := func(what string, err error) {
		if !errors.Is(err, fs.ErrPermission) {
			fmt.Fprintf(os.Stderr, "%s: got %v, want an error matching fs.ErrPermission\n", what, err)
			bad++
		}
	}
	// shmget(key, 0, 0) asks for no access, so Open may succeed.
	s, err := Open(key)
	switch {
	case err == nil:
		if s.ID() != id {
			return fail(fmt.Errorf("Open(%v) gave id %d, want %d", key, s.ID(), id))
		}
	case errors.Is(err, fs.ErrPermission):
		s = &Segment{key: key, id: id}
	default:
		return fail(err)
	}
	if byID, err := OpenID(id); err != nil {
		expect("OpenID", err)
	} else if byID.Key() != key {
		return fail(fmt.Errorf("OpenID(%d) gave key %v, want %v", id, byID.Key(), key))
	}
	for _, ro := range []bool{false, true} {
		m, err := s.Attach(ro)
		if err == nil {
			m.Detach()
		}
		expect(fmt.Sprintf("Attach(%v)", ro), err)
	}
	_, err = s.Stat()
	expect("Stat", err)
	expect("SetMode", s.SetMode(0o666))
	expect("SetOwner", s.SetOwner(os.Getuid(), os.Getgid()))
	expect("Remove", s.Remove())
	if bad > 0 {
		return 1
	}
	return 0
}

// helperShmmax runs in an IPC namespace of its own, as root, where it may
// lower SHMMAX without touching the rest of the system, and checks that
// Create refuses a size above it.
func helperShmmax() int {
	const limit = 8192
	if err := os.WriteFile(procShmmax, []byte(fmt.Sprint(limit)), 0); err != nil {
		return fail(err)
	}
	_, err := Create(ipc.Private, limit+1, nil)
	if !errors.Is(err, ErrSize) {
		return fail(fmt.Errorf("Create(%d) with SHMMAX %d: got %v, want ErrSize", limit+1, limit, err))
	}
	fmt.Fprintln(os.Stderr, "over the limit:", err)
	s, err := Create(ipc.Private, limit, nil)
	if err != nil {
		return fail(fmt.Errorf("Create(%d) with SHMMAX %d: %w", limit, limit, err))
	}
	if err := s.Remove(); err != nil {
		return fail(err)
	}
	return 0
}

func fail(err error) int {
	fmt.Fprintln(os.Stderr, "helper:", err)
	return 1
}

// fill writes the pseudo-random pattern for seed into b.
func fill(b []byte, seed uint64) {
	r := rand.New(rand.NewPCG(seed, ^seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
}

// pattern returns n bytes of the pattern for seed.
func pattern(n int, seed uint64) []byte {
	b := make([]byte, n)
	fill(b, seed)
	return b
}

// checksum returns the FNV-64a sum of b in hex.
func checksum(b []byte) string {
	h := fnv.New64a()
	h.Write(b)
	return fmt.Sprintf("%016x", h.Sum64())
}

// newKey returns an ftok key for a new file in a temporary directory, so
// that no other test, here or in another package, uses it.
func newKey(t *testing.T) ipc.Key {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := ipc.Ftok(path, 'S')
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// create creates a segment, records it for the leak check and removes it
// when the test ends. It skips the test if the kernel has no System V IPC.
func create(t *testing.T, key ipc.Key, size int, opts *Options) *Segment {
	t.Helper()
	s, err := Create(key, size, opts)
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skip("no System V shared memory:", err)
	}
	if err != nil {
		t.Fatalf("Create(%v, %d, %+v): %v", key, size, opts, err)
	}
	track(t, s)
	return s
}

// track records s for the leak check and removes it when the test ends,
// unless the test removed it already.
func track(t *testing.T, s *Segment) {
	t.Helper()
	ipctest.Track(t, ipctest.Shm, s.ID())
	t.Cleanup(func() {
		if err := s.Remove(); err != nil && !errors.Is(err, ipc.ErrRemoved) {
			t.Errorf("cleanup: %v", err)
		}
	})
}

// attach attaches s and detaches it when the test ends, before the
// segment's own cleanup removes it.
func attach(t *testing.T, s *Segment, readOnly bool) *Mapping {
	t.Helper()
	m, err := s.Attach(readOnly)
	if err != nil {
		t.Fatalf("Attach(%v): %v", readOnly, err)
	}
	t.Cleanup(func() {
		if err := m.Detach(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return m
}

// stat is s.Stat, failing the test on error.
func stat(t *testing.T, s *Segment) Info {
	t.Helper()
	info, err := s.Stat()
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	return info
}

// copyFile copies the file at src to dst with the given mode.
func copyFile(dst, src string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
