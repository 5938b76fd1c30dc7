package ring

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/shmring/shmring/internal/atomicx"
	"github.com/shmring/shmring/internal/ipctest"
	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/segment"
	"github.com/shmring/shmring/semaphore"
)

// Header byte offsets, as layout.go documents them.
const (
	offVersion      = 8
	offLineSize     = 12
	offMode         = 16
	offMaxMessage   = 20
	offSlotStride   = 24
	offSlotCount    = 28
	offMaxProducers = 32
	offMaxConsumers = 36
	offRolesOffset  = 40
	offSlotsOffset  = 48
	offTotalSize    = 56
	offSemID        = 64
	offState        = 112
)

var le = binary.LittleEndian

// formattedCopy returns a line-aligned copy of the memory of a freshly
// formatted heap ring. The copy's header names the original's semaphore set,
// which lives until the test ends.
func formattedCopy(t testing.TB, opts *Options) []byte {
	t.Helper()
	r := newMemRing(t, opts)
	b := atomicx.AlignedBuffer(len(r.mem))
	copy(b, r.mem)
	return b
}

// reseal recomputes the header checksum of b after a change.
func reseal(b []byte) { le.PutUint64(b[checksumOffset:], checksum(b)) }

// writeGeometry writes g into the header of b with every derived field
// consistent with it, and reseals the header.
func writeGeometry(b []byte, g geometry) {
	le.PutUint32(b[offMode:], uint32(g.mode))
	le.PutUint32(b[offMaxMessage:], uint32(g.maxMessage))
	le.PutUint32(b[offSlotStride:], uint32(g.stride()))
	le.PutUint32(b[offSlotCount:], uint32(g.slots))
	le.PutUint32(b[offMaxProducers:], uint32(g.maxProducers))
	le.PutUint32(b[offMaxConsumers:], uint32(g.maxConsumers))
	le.PutUint64(b[offRolesOffset:], uint64(g.rolesOffset()))
	le.PutUint64(b[offSlotsOffset:], uint64(g.slotsOffset()))
	le.PutUint64(b[offTotalSize:], uint64(g.size()))
	reseal(b)
}

// openSoon runs openMemory (or any open) and fails the test if it has not
// returned within ipctest.Deadline: a call that should fail at once must
// not sit out a long ReadyTimeout.
func openSoon(t *testing.T, open func() (*Ring, error)) (*Ring, error) {
	t.Helper()
	type result struct {
		r   *Ring
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := open()
		done <- result{r, err}
	}()
	select {
	case res := <-done:
		if res.r != nil {
			t.Cleanup(func() { res.r.Close() })
		}
		return res.r, res.err
	case <-time.After(ipctest.Deadline):
		t.Fatalf("open still waiting after %v", ipctest.Deadline)
		return nil, nil
	}
}

// headerCase is one damaged header: mutate changes a copy of a valid ring's
// memory (and may shorten it), want is the sentinel that validateHeader and
// openMemory must both return.
type headerCase struct {
	name   string
	base   *Options
	mutate func(b []byte) []byte
	want   error
}

var (
	spscBase = &Options{Mode: SPSC, Slots: 8, MaxMessage: 64}
	mpmcBase = &Options{Mode: MPMC, Slots: 8, MaxMessage: 64, MaxProducers: 2, MaxConsumers: 3}
)

func headerCases() []headerCase {
	set32 := func(off int, v uint32, fix bool) func([]byte) []byte {
		return func(b []byte) []byte {
			le.PutUint32(b[off:], v)
			if fix {
				reseal(b)
			}
			return b
		}
	}
	set64 := func(off int, v uint64) func([]byte) []byte {
		return func(b []byte) []byte {
			le.PutUint64(b[off:], v)
			reseal(b)
			return b
		}
	}
	add := func(off int, d int64, wide bool) func([]byte) []byte {
		return func(b []byte) []byte {
			if wide {
				le.PutUint64(b[off:], uint64(int64(le.Uint64(b[off:]))+d))
			} else {
				le.PutUint32(b[off:], uint32(int64(le.Uint32(b[off:]))+d))
			}
			reseal(b)
			return b
		}
	}
	geom := func(g geometry) func([]byte) []byte {
		return func(b []byte) []byte { writeGeometry(b, g); return b }
	}
	cut := func(n func(b []byte) int) func([]byte) []byte {
		return func(b []byte) []byte { return b[:n(b)] }
	}
	spsc := geometry{SPSC, 64, 8, 1, 1}
	with := func(f func(g *geometry)) geometry { g := spsc; f(&g); return g }

	cases := []headerCase{
		{"intact", spscBase, func(b []byte) []byte { return b }, nil},
		{"intact/mpmc", mpmcBase, func(b []byte) []byte { return b }, nil},
		{"empty", spscBase, cut(func([]byte) int { return 0 }), ErrNotRing},
		{"shorter-than-a-line", spscBase, cut(func([]byte) int { return lineSize - 1 }), ErrNotRing},
		{"magic-flipped", spscBase, func(b []byte) []byte { b[3] ^= 0x20; return b }, ErrNotRing},
		{"magic-zero", spscBase, func(b []byte) []byte { clear(b[:8]); return b }, ErrNotRing},
		{"magic-flipped-resealed", spscBase, func(b []byte) []byte { b[7] = '!'; reseal(b); return b }, ErrNotRing},
		{"version-2", spscBase, set32(offVersion, layoutVersion+1, true), ErrVersion},
		{"version-2-unsealed", spscBase, set32(offVersion, layoutVersion+1, false), ErrVersion},
		{"version-0", spscBase, set32(offVersion, 0, true), ErrVersion},
		{"line-size-64", spscBase, set32(offLineSize, 64, true), ErrVersion},
		{"line-size-256-unsealed", spscBase, set32(offLineSize, 256, false), ErrVersion},
		{"checksum-flipped", spscBase, func(b []byte) []byte { b[checksumOffset] ^= 1; return b }, ErrCorrupt},

		// Impossible geometry behind a valid checksum.
		{"slots-3", spscBase, geom(with(func(g *geometry) { g.slots = 3 })), ErrCorrupt},
		{"slots-0", spscBase, geom(with(func(g *geometry) { g.slots = 0 })), ErrCorrupt},
		{"slots-1", spscBase, geom(with(func(g *geometry) { g.slots = 1 })), ErrCorrupt},
		{"slots-2^25", spscBase, geom(with(func(g *geometry) { g.slots = 1 << 25 })), ErrCorrupt},
		{"slots-2^31", spscBase, set32(offSlotCount, 1<<31, true), ErrCorrupt},
		{"message-0", spscBase, geom(with(func(g *geometry) { g.maxMessage = 0 })), ErrCorrupt},
		{"message-2^30+1", spscBase, geom(with(func(g *geometry) { g.maxMessage = 1<<30 + 1 })), ErrCorrupt},
		{"message-max-uint32", spscBase, set32(offMaxMessage, ^uint32(0), true), ErrCorrupt},
		{"mode-0", spscBase, set32(offMode, 0, true), ErrCorrupt},
		{"mode-5", spscBase, set32(offMode, 5, true), ErrCorrupt},
		{"mode-max-uint32", spscBase, set32(offMode, ^uint32(0), true), ErrCorrupt},
		{"spsc-2-producers", spscBase, geom(with(func(g *geometry) { g.maxProducers = 2 })), ErrCorrupt},
		{"spsc-2-consumers", spscBase, geom(with(func(g *geometry) { g.maxConsumers = 2 })), ErrCorrupt},
		{"mpmc-0-producers", mpmcBase, geom(geometry{MPMC, 64, 8, 0, 3}), ErrCorrupt},
		{"mpmc-0-consumers", mpmcBase, geom(geometry{MPMC, 64, 8, 2, 0}), ErrCorrupt},
		{"mpmc-2^20-producers", mpmcBase, geom(geometry{MPMC, 64, 8, 1 << 20, 3}), ErrCorrupt},
		{"mpmc-1025-roles", mpmcBase, geom(geometry{MPMC, 64, 8, 1000, 25}), ErrCorrupt},
		{"mpmc-max-uint32-consumers", mpmcBase, set32(offMaxConsumers, ^uint32(0), true), ErrCorrupt},

		// Derived fields that disagree with the geometry.
		{"stride+128", spscBase, add(offSlotStride, lineSize, false), ErrCorrupt},
		{"stride-0", spscBase, set32(offSlotStride, 0, true), ErrCorrupt},
		{"stride+1", spscBase, add(offSlotStride, 1, false), ErrCorrupt},
		{"roles-offset+128", spscBase, add(offRolesOffset, lineSize, true), ErrCorrupt},
		{"roles-offset-0", spscBase, set64(offRolesOffset, 0), ErrCorrupt},
		{"slots-offset-128", spscBase, add(offSlotsOffset, -lineSize, true), ErrCorrupt},
		{"slots-offset-huge", spscBase, set64(offSlotsOffset, 1<<63), ErrCorrupt},
		{"total+1", spscBase, add(offTotalSize, 1, true), ErrCorrupt},
		{"total-128", spscBase, add(offTotalSize, -lineSize, true), ErrCorrupt},
		{"total-max-uint64", spscBase, set64(offTotalSize, ^uint64(0)), ErrCorrupt},

		// A consistent header that describes more memory than there is.
		{"truncated-by-1", spscBase, cut(func(b []byte) int { return len(b) - 1 }), ErrCorrupt},
		{"truncated-by-a-slot", spscBase, cut(func(b []byte) int { return len(b) - 128 }), ErrCorrupt},
		{"header-line-only", spscBase, cut(func([]byte) int { return lineSize }), ErrCorrupt},
		{"message-2^30", spscBase, geom(with(func(g *geometry) { g.maxMessage = 1 << 30; g.slots = 2 })), ErrCorrupt},
		{"slots-2^24", spscBase, geom(with(func(g *geometry) { g.slots = 1 << 24 })), ErrCorrupt},
	}
	// Any change to the checksummed bytes after line size, without a new
	// checksum, is corruption.
	for off := offMode; off < checksumOffset+8; off++ {
		cases = append(cases, headerCase{"byte-" + strconv.Itoa(off) + "-flipped", spscBase,
			func(b []byte) []byte { b[off] ^= 0x10; return b }, ErrCorrupt})
	}
	return cases
}

// TestValidateHeader damages a valid header in every way the format knows
// and checks the sentinel from validateHeader and from openMemory.
func TestValidateHeader(t *testing.T) {
	for _, tc := range headerCases() {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.mutate(formattedCopy(t, tc.base))

			g, err := validateHeader(b)
			if !matches(err, tc.want) {
				t.Fatalf("validateHeader: %v, want %v", err, tc.want)
			}
			if err == nil && g.check() != nil {
				t.Fatalf("validateHeader accepted %+v", g)
			}
			if err != nil && g != (geometry{}) {
				t.Errorf("validateHeader returned %+v with its error", g)
			}

			r, err := openSoon(t, func() (*Ring, error) {
				return openMemory(b, &OpenOptions{ReadyTimeout: 10 * time.Millisecond})
			})
			if !matches(err, tc.want) {
				t.Fatalf("openMemory: %v, want %v", err, tc.want)
			}
			if err == nil {
				if r.g != g {
					t.Fatalf("openMemory read %+v, validateHeader %+v", r.g, g)
				}
			} else {
				t.Logf("%v", err)
			}
		})
	}
}

// matches reports whether err is nil when want is, or wraps want.
func matches(err, want error) bool {
	if want == nil {
		return err == nil
	}
	return errors.Is(err, want)
}

// TestOpenMemoryReady covers the wait for a header to be published: a
// segment never written is not a ring, a header with its magic but no
// published state is not ready, foreign bytes fail at once however long
// the timeout, and a header published during the wait is opened.
func TestOpenMemoryReady(t *testing.T) {
	short := &OpenOptions{ReadyTimeout: 20 * time.Millisecond}
	long := &OpenOptions{ReadyTimeout: 100 * ipctest.Deadline}

	t.Run("zero", func(t *testing.T) {
		b := atomicx.AlignedBuffer(4096)
		_, err := openSoon(t, func() (*Ring, error) { return openMemory(b, short) })
		if !errors.Is(err, ErrNotRing) {
			t.Fatalf("never-published segment: %v, want ErrNotRing", err)
		}
	})
	t.Run("magic-not-ready", func(t *testing.T) {
		b := formattedCopy(t, spscBase)
		le.PutUint32(b[offState:], stateInit)
		_, err := openSoon(t, func() (*Ring, error) { return openMemory(b, short) })
		if !errors.Is(err, ErrNotReady) {
			t.Fatalf("unpublished header: %v, want ErrNotReady", err)
		}
	})
	t.Run("state-garbage", func(t *testing.T) {
		b := formattedCopy(t, spscBase)
		le.PutUint32(b[offState:], 1)
		_, err := openSoon(t, func() (*Ring, error) { return openMemory(b, short) })
		if !errors.Is(err, ErrNotReady) {
			t.Fatalf("state 1: %v, want ErrNotReady", err)
		}
	})
	t.Run("foreign-fails-at-once", func(t *testing.T) {
		b := atomicx.AlignedBuffer(4096)
		copy(b, "not a ring at all")
		_, err := openSoon(t, func() (*Ring, error) { return openMemory(b, long) })
		if !errors.Is(err, ErrNotRing) {
			t.Fatalf("foreign bytes: %v, want ErrNotRing", err)
		}
	})
	t.Run("bad-magic-unpublished-fails-at-once", func(t *testing.T) {
		b := formattedCopy(t, spscBase)
		le.PutUint32(b[offState:], stateInit)
		b[0] = 's'
		_, err := openSoon(t, func() (*Ring, error) { return openMemory(b, long) })
		if !errors.Is(err, ErrNotRing) {
			t.Fatalf("bad magic: %v, want ErrNotRing", err)
		}
	})
	t.Run("short-fails-at-once", func(t *testing.T) {
		b := atomicx.AlignedBuffer(lineSize - 8)
		_, err := openSoon(t, func() (*Ring, error) { return openMemory(b, long) })
		if !errors.Is(err, ErrNotRing) {
			t.Fatalf("short: %v, want ErrNotRing", err)
		}
	})
	t.Run("published-while-waiting", func(t *testing.T) {
		b := formattedCopy(t, spscBase)
		state, err := atomicx.Uint32At(b, offState)
		if err != nil {
			t.Fatal(err)
		}
		state.Store(stateInit)
		go func() {
			time.Sleep(5 * time.Millisecond)
			state.Store(stateReady)
		}()
		r, err := openSoon(t, func() (*Ring, error) { return openMemory(b, long) })
		if err != nil {
			t.Fatalf("header published during the wait: %v", err)
		}
		if r.Slots() != 8 || r.MaxMessage() != 64 || r.Mode() != SPSC {
			t.Fatalf("opened %v ring of %d slots of %d bytes", r.Mode(), r.Slots(), r.MaxMessage())
		}
	})
}

// TestOpenMemorySemaphores gives a valid header a semaphore set that does
// not exist, or one of the wrong size: an error, never a panic.
func TestOpenMemorySemaphores(t *testing.T) {
	gone, err := semaphore.Create(ipc.Private, semRoles+2, nil)
	if err != nil {
		t.Fatal(err)
	}
	ipctest.Track(t, ipctest.Sem, gone.ID())
	goneID := gone.ID()
	if err := gone.Remove(); err != nil {
		t.Fatal(err)
	}
	small, err := semaphore.Create(ipc.Private, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	ipctest.Track(t, ipctest.Sem, small.ID())
	t.Cleanup(func() { small.Remove() })

	for _, tc := range []struct {
		name string
		id   int32
		want error
	}{
		{"negative", -1, nil},
		{"removed", int32(goneID), ipc.ErrRemoved},
		{"too-small", int32(small.ID()), ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := formattedCopy(t, spscBase)
			le.PutUint32(b[offSemID:], uint32(tc.id))
			reseal(b)
			if _, err := validateHeader(b); err != nil {
				t.Fatalf("validateHeader: %v", err)
			}
			_, err := openSoon(t, func() (*Ring, error) { return openMemory(b, &OpenOptions{}) })
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("semaphore set %d: %v, want an error matching %v", tc.id, err, tc.want)
			}
			t.Log(err)
		})
	}
}

// TestOpenMemoryUnaligned opens a valid ring copied to an address that is
// not on a line boundary: ErrInvalid, as the views need aligned lines.
func TestOpenMemoryUnaligned(t *testing.T) {
	src := formattedCopy(t, spscBase)
	b := atomicx.AlignedBuffer(len(src) + 8)[8:]
	copy(b, src)
	_, err := openSoon(t, func() (*Ring, error) { return openMemory(b, &OpenOptions{}) })
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("unaligned ring: %v, want ErrInvalid", err)
	}
}

// newSegment makes a private segment of size bytes holding data, removed
// when the test ends.
func newSegment(t *testing.T, size int, data []byte) *segment.Segment {
	t.Helper()
	seg, err := segment.Create(ipc.Private, size, nil)
	if err != nil {
		t.Fatal(err)
	}
	ipctest.Track(t, ipctest.Shm, seg.ID())
	t.Cleanup(func() { seg.Remove() })
	m, err := seg.Attach(false)
	if err != nil {
		t.Fatal(err)
	}
	copy(m.Bytes(), data)
	if err := m.Detach(); err != nil {
		t.Fatal(err)
	}
	return seg
}

// TestOpenIDDamaged opens real segments that hold something other than an
// intact ring, by id, and checks that each open fails with the right
// sentinel and leaves no attach behind.
func TestOpenIDDamaged(t *testing.T) {
	src := newTestRing(t, &Options{Slots: 8, MaxMessage: 1000})
	ring := append([]byte(nil), src.mem...)
	future := append([]byte(nil), ring...)
	le.PutUint32(future[offVersion:], layoutVersion+1)
	reseal(future)
	unpublished := append([]byte(nil), ring...)
	le.PutUint32(unpublished[offState:], stateInit)
	garbage := make([]byte, 8192)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}

	for _, tc := range []struct {
		name    string
		size    int
		data    []byte
		timeout time.Duration
		want    error
	}{
		{"garbage", len(garbage), garbage, 100 * ipctest.Deadline, ErrNotRing},
		{"short", 64, ring, 100 * ipctest.Deadline, ErrNotRing},
		{"zero", 4096, nil, 20 * time.Millisecond, ErrNotRing},
		{"unpublished", len(ring), unpublished, 20 * time.Millisecond, ErrNotReady},
		{"truncated", len(ring) - src.g.stride(), ring, 100 * ipctest.Deadline, ErrCorrupt},
		{"truncated-to-header", lineSize, ring, 100 * ipctest.Deadline, ErrCorrupt},
		{"future-version", len(ring), future, 100 * ipctest.Deadline, ErrVersion},
		{"intact-copy", len(ring), ring, 100 * ipctest.Deadline, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seg := newSegment(t, tc.size, tc.data)
			r, err := openSoon(t, func() (*Ring, error) {
				return OpenID(seg.ID(), &OpenOptions{ReadyTimeout: tc.timeout})
			})
			if !matches(err, tc.want) {
				t.Fatalf("OpenID: %v, want %v", err, tc.want)
			}
			if err != nil {
				t.Log(err)
			} else {
				// The copy names the original's semaphore set: close it, never
				// remove it.
				if r.g != src.g || r.InstanceID() != src.InstanceID() || r.SegmentID() != seg.ID() {
					t.Fatalf("copy opened as %+v, instance %v", r.g, r.InstanceID())
				}
				if err := r.Close(); err != nil {
					t.Fatal(err)
				}
			}
			info, err := seg.Stat()
			if err != nil {
				t.Fatal(err)
			}
			if info.Attached != 0 {
				t.Fatalf("%d attaches left after the open", info.Attached)
			}
		})
	}
}

// TestCreateInvalid checks that Create refuses impossible options with
// ErrInvalid before it makes any object.
func TestCreateInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"slots-3", Options{Slots: 3}},
		{"slots-1", Options{Slots: 1}},
		{"slots-negative", Options{Slots: -8}},
		{"slots-2^25", Options{Slots: 1 << 25}},
		{"message-negative", Options{MaxMessage: -1}},
		{"message-2^30+1", Options{MaxMessage: 1<<30 + 1}},
		{"mode-9", Options{Mode: 9}},
		{"perm-sticky-bit", Options{Perm: 0o1600}},
		{"perm-setuid", Options{Perm: fs.ModeSetuid | 0o600}},
		{"perm-dir", Options{Perm: fs.ModeDir | 0o700}},
		{"spsc-2-producers", Options{Mode: SPSC, MaxProducers: 2}},
		{"spsc-2-consumers", Options{Mode: SPSC, MaxConsumers: 2}},
		{"spmc-2-producers", Options{Mode: SPMC, MaxProducers: 2}},
		{"mpsc-2-consumers", Options{Mode: MPSC, MaxConsumers: 2}},
		{"mpmc-negative-producers", Options{Mode: MPMC, MaxProducers: -1}},
		{"mpmc-1025-roles", Options{Mode: MPMC, MaxProducers: 1000, MaxConsumers: 25}},
		{"total-over-2^40", Options{Slots: 1 << 24, MaxMessage: 1 << 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Create(ipc.Private, &tc.opts)
			if err == nil {
				trackRing(t, r)
				r.Remove()
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Create(%+v): %v, want ErrInvalid", tc.opts, err)
			}
		})
	}
}

// freshKey returns a key made by ftok from a new file of the test's, that
// names no segment yet.
func freshKey(t *testing.T) ipc.Key {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ring.key")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for id := byte(1); id < 32; id++ {
		key, err := ipc.Ftok(path, id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := segment.Open(key); errors.Is(err, fs.ErrNotExist) {
			return key
		}
	}
	t.Fatal("every ftok key of the test's file names a segment")
	return 0
}

// removeIDs removes a ring's objects by id when the test ends, for tests
// that close the Ring (after which Remove may not be called on it).
func removeIDs(t *testing.T, segID, semID int) {
	ipctest.Track(t, ipctest.Shm, segID)
	ipctest.Track(t, ipctest.Sem, semID)
	t.Cleanup(func() {
		if s, err := segment.OpenID(segID); err == nil {
			s.Remove()
		}
		if s, err := semaphore.OpenID(semID); err == nil {
			s.Remove()
		}
	})
}

// TestCreateByKey covers rings named by a key: exclusive creation, opening
// by a non-exclusive Create, a geometry mismatch, Open, RemoveKey, and a
// missing key.
func TestCreateByKey(t *testing.T) {
	key := freshKey(t)
	opts := &Options{Mode: MPSC, Slots: 16, MaxMessage: 100, Exclusive: true}
	r, err := Create(key, opts)
	if err != nil {
		t.Fatal(err)
	}
	segID, semID := r.SegmentID(), r.SemaphoreID()
	removeIDs(t, segID, semID)
	if r.Key() != key {
		t.Fatalf("key %v, want %v", r.Key(), key)
	}

	if r2, err := Create(key, opts); !errors.Is(err, fs.ErrExist) {
		if err == nil {
			r2.Close()
		}
		t.Fatalf("exclusive Create of a taken key: %v, want fs.ErrExist", err)
	}

	same := *opts
	same.Exclusive = false
	r2, err := Create(key, &same)
	if err != nil {
		t.Fatalf("non-exclusive Create with the same geometry: %v", err)
	}
	if r2.SegmentID() != segID || r2.SemaphoreID() != semID || r2.InstanceID() != r.InstanceID() {
		t.Fatalf("non-exclusive Create made a new ring: segment %d, semaphores %d", r2.SegmentID(), r2.SemaphoreID())
	}
	// The two attachments share the ring.
	p, err := r.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	c, err := r2.NewConsumer()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.TrySend(5, []byte("through the key")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	if typ, n, err := c.TryReceive(buf); err != nil || typ != 5 || string(buf[:n]) != "through the key" {
		t.Fatalf("received %d %q %v", typ, buf[:n], err)
	}
	if err := r2.Close(); err != nil {
		t.Fatal(err)
	}

	for _, other := range []Options{
		{Mode: MPSC, Slots: 32, MaxMessage: 100},
		{Mode: MPSC, Slots: 16, MaxMessage: 200},
		{Mode: MPMC, Slots: 16, MaxMessage: 100},
		{Mode: MPSC, Slots: 16, MaxMessage: 100, MaxProducers: 4},
	} {
		if r3, err := Create(key, &other); !errors.Is(err, ErrInvalid) {
			if err == nil {
				r3.Close()
			}
			t.Fatalf("non-exclusive Create with geometry %+v: %v, want ErrInvalid", other, err)
		}
	}
	info, err := r.seg.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if info.Attached != 1 {
		t.Fatalf("%d attaches after the failed creates, want 1", info.Attached)
	}

	r4, err := Open(key, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if r4.SegmentID() != segID || r4.Mode() != MPSC || r4.Slots() != 16 || r4.MaxMessage() != 100 {
		t.Fatalf("Open found segment %d, %v %d×%d", r4.SegmentID(), r4.Mode(), r4.Slots(), r4.MaxMessage())
	}
	if err := r4.Close(); err != nil {
		t.Fatal(err)
	}

	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := RemoveKey(key); err != nil {
		t.Fatalf("RemoveKey: %v", err)
	}
	if ipctest.Exists(ipctest.Shm, segID) || ipctest.Exists(ipctest.Sem, semID) {
		t.Fatalf("RemoveKey left segment %v, semaphores %v", ipctest.Exists(ipctest.Shm, segID), ipctest.Exists(ipctest.Sem, semID))
	}
	if _, err := Open(key, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open after RemoveKey: %v, want fs.ErrNotExist", err)
	}
	if err := RemoveKey(key); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("RemoveKey of a removed ring: %v, want fs.ErrNotExist", err)
	}
}

// TestOpenMissingKey opens and removes a key that names nothing.
func TestOpenMissingKey(t *testing.T) {
	key := freshKey(t)
	if _, err := Open(key, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open of a missing key: %v, want fs.ErrNotExist", err)
	}
	if err := RemoveKey(key); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("RemoveKey of a missing key: %v, want fs.ErrNotExist", err)
	}
	if _, err := Open(ipc.Private, nil); err == nil {
		t.Fatal("Open(ipc.Private) succeeded")
	}
}

// TestKeyHoldsForeignSegment puts a segment that is not a ring under a key:
// a non-exclusive Create and an Open say ErrNotRing, and RemoveKey removes
// it anyway (as after a creator that died before publishing).
func TestKeyHoldsForeignSegment(t *testing.T) {
	key := freshKey(t)
	seg, err := segment.Create(key, 4096, &segment.Options{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	ipctest.Track(t, ipctest.Shm, seg.ID())
	t.Cleanup(func() { seg.Remove() })
	m, err := seg.Attach(false)
	if err != nil {
		t.Fatal(err)
	}
	copy(m.Bytes(), "something else entirely")
	if err := m.Detach(); err != nil {
		t.Fatal(err)
	}

	if _, err := Create(key, &Options{Slots: 2, MaxMessage: 8}); !errors.Is(err, ErrNotRing) {
		t.Fatalf("non-exclusive Create over a foreign segment: %v, want ErrNotRing", err)
	}
	if _, err := Open(key, nil); !errors.Is(err, ErrNotRing) {
		t.Fatalf("Open of a foreign segment: %v, want ErrNotRing", err)
	}
	if err := RemoveKey(key); err != nil {
		t.Fatalf("RemoveKey of a foreign segment: %v", err)
	}
	if ipctest.Exists(ipctest.Shm, seg.ID()) {
		t.Fatal("RemoveKey left the segment")
	}
}
