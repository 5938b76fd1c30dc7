package ring

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmring/shmring/internal/atomicx"
	"github.com/shmring/shmring/internal/ipctest"
	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/segment"
	"github.com/shmring/shmring/semaphore"
)

var le = binary.LittleEndian

// formattedCopy returns a line-aligned copy of the memory of a freshly
// formatted heap ring. The copy's header names the original's semaphore
// set, which lives until the test ends.
func formattedCopy(t testing.TB, opts *Options) []byte {
	t.Helper()
	r := testRing(t, heap, opts)
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
	le.PutUint32(b[offSlotSize:], uint32(g.slotSize()))
	le.PutUint32(b[offSlotCount:], uint32(g.slots))
	le.PutUint32(b[offProducers:], uint32(g.maxProducers))
	le.PutUint32(b[offConsumers:], uint32(g.maxConsumers))
	le.PutUint32(b[offSemCount:], uint32(semCount(g.roles())))
	le.PutUint64(b[offRoles:], uint64(g.rolesOffset()))
	le.PutUint64(b[offDescs:], uint64(g.descsOffset()))
	le.PutUint64(b[offPayload:], uint64(g.payloadOffset()))
	le.PutUint64(b[offTotal:], uint64(g.size()))
	reseal(b)
}

// openCopy opens ring memory made by formattedCopy, as openMemory would for
// this process's heap rings.
func openCopy(b []byte, opts *OpenOptions) (*Ring, error) {
	self, err := ipc.Self()
	if err != nil {
		return nil, err
	}
	return openMemory(b, opts, -1, nil, self)
}

// openSoon runs an open and fails the test if it has not returned within
// ipctest.Deadline: a call that should fail at once must not sit out a long
// ReadyTimeout.
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

// headerCase is one damaged header: mutate changes a copy of a valid
// ring's memory (and may shorten it), want is the sentinel that
// validateHeader and openMemory must both return.
type headerCase struct {
	name   string
	base   *Options
	mutate func(b []byte) []byte
	want   error
}

var (
	spscBase = &Options{Mode: SPSC, Slots: 8, MaxMessage: 64}
	mpmcBase = &Options{Mode: MPMC, Slots: 8, MaxMessage: 200, MaxProducers: 2, MaxConsumers: 3}
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
	spsc := geometry{SPSC, 64, 8, 1, 1, false, 0, fanoutShape{}}
	with := func(f func(g *geometry)) geometry { g := spsc; f(&g); return g }

	cases := []headerCase{
		{"intact", spscBase, func(b []byte) []byte { return b }, nil},
		{"intact/mpmc", mpmcBase, func(b []byte) []byte { return b }, nil},
		{"empty", spscBase, cut(func([]byte) int { return 0 }), ErrNotRing},
		{"shorter-than-the-header", spscBase, cut(func([]byte) int { return headerSize - 1 }), ErrNotRing},
		{"magic-flipped", spscBase, func(b []byte) []byte { b[3] ^= 0x20; return b }, ErrNotRing},
		{"magic-zero", spscBase, func(b []byte) []byte { clear(b[:8]); return b }, ErrNotRing},
		{"magic-flipped-resealed", spscBase, func(b []byte) []byte { b[7] = '!'; reseal(b); return b }, ErrNotRing},
		{"version-3", spscBase, set32(offVersion, layoutVersion+1, true), ErrVersion},
		{"version-3-unsealed", spscBase, set32(offVersion, layoutVersion+1, false), ErrVersion},
		{"version-1", spscBase, set32(offVersion, 1, false), ErrVersion},
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
		{"mpmc-0-producers", mpmcBase, geom(geometry{MPMC, 200, 8, 0, 3, false, 0, fanoutShape{}}), ErrCorrupt},
		{"mpmc-0-consumers", mpmcBase, geom(geometry{MPMC, 200, 8, 2, 0, false, 0, fanoutShape{}}), ErrCorrupt},
		{"mpmc-2^20-producers", mpmcBase, geom(geometry{MPMC, 200, 8, 1 << 20, 3, false, 0, fanoutShape{}}), ErrCorrupt},
		{"mpmc-513-consumers", mpmcBase, geom(geometry{MPMC, 200, 8, 2, 513, false, 0, fanoutShape{}}), ErrCorrupt},
		{"mpmc-max-uint32-consumers", mpmcBase, set32(offConsumers, ^uint32(0), true), ErrCorrupt},

		// Derived fields that disagree with the geometry.
		{"features", spscBase, set32(offFeatures, 1, true), ErrCorrupt},
		{"slot-size+64", mpmcBase, add(offSlotSize, payloadAlign, false), ErrCorrupt},
		{"slot-size-0", mpmcBase, set32(offSlotSize, 0, true), ErrCorrupt},
		{"slot-size-for-inline", spscBase, set32(offSlotSize, 64, true), ErrCorrupt},
		{"sem-count+1", spscBase, add(offSemCount, 1, false), ErrCorrupt},
		{"roles-offset+128", spscBase, add(offRoles, lineSize, true), ErrCorrupt},
		{"roles-offset-0", spscBase, set64(offRoles, 0), ErrCorrupt},
		{"descs-offset-128", spscBase, add(offDescs, -lineSize, true), ErrCorrupt},
		{"descs-offset-huge", spscBase, set64(offDescs, 1<<63), ErrCorrupt},
		{"payload-offset+1", mpmcBase, add(offPayload, 1, true), ErrCorrupt},
		{"total+1", spscBase, add(offTotal, 1, true), ErrCorrupt},
		{"total-128", spscBase, add(offTotal, -lineSize, true), ErrCorrupt},
		{"total-max-uint64", spscBase, set64(offTotal, ^uint64(0)), ErrCorrupt},
		{"reserved", spscBase, set64(offReserved+8, 1), ErrCorrupt},

		// A consistent header that describes more memory than there is.
		{"truncated-by-1", spscBase, cut(func(b []byte) int { return len(b) - 1 }), ErrCorrupt},
		{"truncated-by-a-descriptor", spscBase, cut(func(b []byte) int { return len(b) - lineSize }), ErrCorrupt},
		{"truncated-payload", mpmcBase, cut(func(b []byte) int { return len(b) - 100 }), ErrCorrupt},
		{"header-only", spscBase, cut(func([]byte) int { return headerSize }), ErrCorrupt},
		{"message-2^30", spscBase, geom(with(func(g *geometry) { g.maxMessage = 1 << 30; g.slots = 2 })), ErrCorrupt},
		{"slots-2^24", spscBase, geom(with(func(g *geometry) { g.slots = 1 << 24 })), ErrCorrupt},
	}
	// Any change to the checksummed bytes after the line size, without a
	// new checksum, is corruption.
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
				return openCopy(b, &OpenOptions{ReadyTimeout: 10 * time.Millisecond})
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
// published state is not ready, foreign bytes and other versions fail at
// once however long the timeout, and a header published during the wait
// is opened.
func TestOpenMemoryReady(t *testing.T) {
	short := &OpenOptions{ReadyTimeout: 20 * time.Millisecond}
	long := &OpenOptions{ReadyTimeout: 100 * ipctest.Deadline}

	t.Run("zero", func(t *testing.T) {
		b := atomicx.AlignedBuffer(4096)
		_, err := openSoon(t, func() (*Ring, error) { return openCopy(b, short) })
		if !errors.Is(err, ErrNotRing) {
			t.Fatalf("never-published memory: %v, want ErrNotRing", err)
		}
	})
	t.Run("magic-not-ready", func(t *testing.T) {
		b := formattedCopy(t, spscBase)
		le.PutUint32(b[stateOffset:], stateInit)
		_, err := openSoon(t, func() (*Ring, error) { return openCopy(b, short) })
		if !errors.Is(err, ErrNotReady) {
			t.Fatalf("unpublished header: %v, want ErrNotReady", err)
		}
	})
	t.Run("state-garbage", func(t *testing.T) {
		b := formattedCopy(t, spscBase)
		le.PutUint32(b[stateOffset:], 1)
		_, err := openSoon(t, func() (*Ring, error) { return openCopy(b, short) })
		if !errors.Is(err, ErrNotReady) {
			t.Fatalf("state 1: %v, want ErrNotReady", err)
		}
	})
	t.Run("foreign-fails-at-once", func(t *testing.T) {
		b := atomicx.AlignedBuffer(4096)
		copy(b, "not a ring at all")
		_, err := openSoon(t, func() (*Ring, error) { return openCopy(b, long) })
		if !errors.Is(err, ErrNotRing) {
			t.Fatalf("foreign bytes: %v, want ErrNotRing", err)
		}
	})
	t.Run("other-version-unpublished-fails-at-once", func(t *testing.T) {
		b := formattedCopy(t, spscBase)
		le.PutUint32(b[stateOffset:], stateInit)
		le.PutUint32(b[offVersion:], 7)
		_, err := openSoon(t, func() (*Ring, error) { return openCopy(b, long) })
		if !errors.Is(err, ErrVersion) {
			t.Fatalf("version 7: %v, want ErrVersion", err)
		}
	})
	t.Run("bad-magic-unpublished-fails-at-once", func(t *testing.T) {
		b := formattedCopy(t, spscBase)
		le.PutUint32(b[stateOffset:], stateInit)
		b[0] = 's'
		_, err := openSoon(t, func() (*Ring, error) { return openCopy(b, long) })
		if !errors.Is(err, ErrNotRing) {
			t.Fatalf("bad magic: %v, want ErrNotRing", err)
		}
	})
	t.Run("short-fails-at-once", func(t *testing.T) {
		b := atomicx.AlignedBuffer(lineSize)
		_, err := openSoon(t, func() (*Ring, error) { return openCopy(b, long) })
		if !errors.Is(err, ErrNotRing) {
			t.Fatalf("short: %v, want ErrNotRing", err)
		}
	})
	t.Run("published-while-waiting", func(t *testing.T) {
		b := formattedCopy(t, spscBase)
		seal, err := atomicx.At[sealLine](b, lineSize)
		if err != nil {
			t.Fatal(err)
		}
		seal.State.Store(stateInit)
		go func() {
			time.Sleep(5 * time.Millisecond)
			seal.State.Store(stateReady)
		}()
		r, err := openSoon(t, func() (*Ring, error) { return openCopy(b, long) })
		if err != nil {
			t.Fatalf("header published during the wait: %v", err)
		}
		if r.Slots() != 8 || r.MaxMessage() != 64 || r.Mode() != SPSC {
			t.Fatalf("opened %v ring of %d slots of %d bytes", r.Mode(), r.Slots(), r.MaxMessage())
		}
	})
	t.Run("creator-gone-fails-at-once", func(t *testing.T) {
		gone := ipc.Process{PID: 1 << 30} // no such pid
		for _, tc := range []struct {
			name string
			b    []byte
			want error
		}{
			{"zero", atomicx.AlignedBuffer(4096), ErrNotRing},
			{"unpublished", func() []byte {
				b := formattedCopy(t, spscBase)
				le.PutUint32(b[stateOffset:], stateInit)
				return b
			}(), ErrNotReady},
		} {
			_, err := openSoon(t, func() (*Ring, error) { return openMemory(tc.b, long, -1, nil, gone) })
			if !errors.Is(err, tc.want) {
				t.Fatalf("%s, creator gone: %v, want %v", tc.name, err, tc.want)
			}
		}
	})
}

// TestOpenMemorySemaphores gives a valid header a semaphore set that is
// not its own: one that does not exist, one of the wrong size, one of the
// right size without the ring's fingerprint, and another ring's. Each is
// an error, never a panic, and nothing is written to the set.
func TestOpenMemorySemaphores(t *testing.T) {
	base := testRing(t, heap, spscBase)
	n := semCount(base.g.roles())
	gone, err := semaphore.Create(ipc.Private, n, nil)
	if err != nil {
		t.Fatal(err)
	}
	removeIDs(t, -1, gone.ID())
	goneID := gone.ID()
	if err := gone.Remove(); err != nil {
		t.Fatal(err)
	}
	small, err := semaphore.Create(ipc.Private, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	removeIDs(t, -1, small.ID())
	blank, err := semaphore.Create(ipc.Private, n, nil)
	if err != nil {
		t.Fatal(err)
	}
	removeIDs(t, -1, blank.ID())
	other := testRing(t, heap, spscBase) // same owner, same size, another ring

	for _, tc := range []struct {
		name string
		id   int
		want error
	}{
		{"negative", -1, nil},
		{"removed", goneID, ipc.ErrRemoved},
		{"too-small", small.ID(), ErrCorrupt},
		{"no-fingerprint", blank.ID(), ErrCorrupt},
		{"another-rings", other.SemaphoreID(), ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := atomicx.AlignedBuffer(len(base.mem))
			copy(b, base.mem)
			le.PutUint32(b[offSemID:], uint32(int32(tc.id)))
			reseal(b)
			if _, err := validateHeader(b); err != nil {
				t.Fatalf("validateHeader: %v", err)
			}
			_, err := openSoon(t, func() (*Ring, error) { return openCopy(b, &OpenOptions{}) })
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("semaphore set %d: %v, want an error matching %v", tc.id, err, tc.want)
			}
			t.Log(err)
		})
	}
	v := make([]uint16, n)
	if err := other.sems.Values(v); err != nil {
		t.Fatal(err)
	}
	want := initialValues(n, other.seal.ID, -1, 0)
	for i := range v {
		if v[i] != want[i] {
			t.Fatalf("the other ring's semaphore %d changed: %d, was %d", i, v[i], want[i])
		}
	}
}

// TestOpenMemoryUnaligned opens a valid ring copied to an address that is
// not on a line boundary: ErrInvalid, as the views need aligned lines.
func TestOpenMemoryUnaligned(t *testing.T) {
	src := formattedCopy(t, spscBase)
	b := atomicx.AlignedBuffer(len(src) + 8)[8:]
	copy(b, src)
	_, err := openSoon(t, func() (*Ring, error) { return openCopy(b, &OpenOptions{}) })
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("unaligned ring: %v, want ErrInvalid", err)
	}
}

// newSegment makes a segment of size bytes holding data, under key (or a
// private one), removed when the test ends.
func newSegment(t *testing.T, key ipc.Key, size int, data []byte) *segment.Segment {
	t.Helper()
	seg, err := segment.Create(key, size, &segment.Options{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	removeIDs(t, seg.ID(), -1)
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
// sentinel, quickly where it must, and leaves no attach behind.
func TestOpenIDDamaged(t *testing.T) {
	src := testRing(t, shm, &Options{Slots: 8, MaxMessage: 1000})
	ring := append([]byte(nil), src.mem...)
	future := append([]byte(nil), ring...)
	le.PutUint32(future[offVersion:], layoutVersion+1)
	reseal(future)
	unpublished := append([]byte(nil), ring...)
	le.PutUint32(unpublished[stateOffset:], stateInit)
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
		{"truncated", len(ring) - 1000, ring, 100 * ipctest.Deadline, ErrCorrupt},
		{"truncated-to-header", headerSize, ring, 100 * ipctest.Deadline, ErrCorrupt},
		{"future-version", len(ring), future, 100 * ipctest.Deadline, ErrVersion},
		// A byte-for-byte copy names the original's semaphore set, whose
		// fingerprint binds it to the original segment: not this ring's.
		{"copy-of-a-ring", len(ring), ring, 100 * ipctest.Deadline, ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seg := newSegment(t, ipc.Private, tc.size, tc.data)
			_, err := openSoon(t, func() (*Ring, error) {
				return OpenID(seg.ID(), &OpenOptions{ReadyTimeout: tc.timeout})
			})
			if !matches(err, tc.want) {
				t.Fatalf("OpenID: %v, want %v", err, tc.want)
			}
			t.Log(err)
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

// TestOpenIDMissing: an id that names no segment is fs.ErrNotExist, and
// the message does not claim that it was removed.
func TestOpenIDMissing(t *testing.T) {
	_, err := OpenID(999999999, nil)
	if !errors.Is(err, fs.ErrNotExist) || strings.Contains(err.Error(), "; it was removed") {
		t.Fatalf("OpenID of a missing id: %v, want fs.ErrNotExist saying it may never have existed", err)
	}
	t.Log(err)
}
