package ring

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/shmring/shmring/internal/ipctest"
	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/segment"
	"github.com/shmring/shmring/semaphore"
)

func init() {
	helpers["squat"] = helperSquat
	helpers["forge"] = helperForge
	helpers["squat-set"] = helperSquatSet
}

// freshKey returns a key made by ftok from a new file of the test's, that
// names no segment and no semaphore set yet.
func freshKey(t *testing.T) ipc.Key {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ring.key")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for id := byte(1); id < 64; id++ {
		key, err := ipc.Ftok(path, id)
		if err != nil {
			t.Fatal(err)
		}
		_, serr := segment.Open(key)
		_, merr := semaphore.Open(key)
		if errors.Is(serr, fs.ErrNotExist) && errors.Is(merr, fs.ErrNotExist) {
			return key
		}
	}
	t.Fatal("every ftok key of the test's file names an object")
	return 0
}

// keyedRing creates an exclusive ring under a fresh key, removed when the
// test ends.
func keyedRing(t *testing.T, opts Options) (*Ring, ipc.Key) {
	t.Helper()
	key := freshKey(t)
	opts.Exclusive = true
	r, err := Create(key, &opts)
	if err != nil {
		t.Fatal(err)
	}
	removeIDs(t, r.SegmentID(), r.SemaphoreID())
	t.Cleanup(func() { r.Close() })
	return r, key
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
		{"mpmc-513-producers", Options{Mode: MPMC, MaxProducers: 513}},
		{"total-over-2^40", Options{Slots: 1 << 24, MaxMessage: 1 << 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Create(ipc.Private, &tc.opts)
			if err == nil {
				removeIDs(t, r.SegmentID(), r.SemaphoreID())
				r.Remove()
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Create(%+v): %v, want ErrInvalid", tc.opts, err)
			}
		})
	}
}

// TestCreateByKey covers rings named by a key: exclusive creation, opening
// by a non-exclusive Create, a geometry mismatch, Open, RemoveKey, and a
// missing key. The semaphore set has the ring's key too.
func TestCreateByKey(t *testing.T) {
	opts := Options{Mode: MPSC, Slots: 16, MaxMessage: 100}
	r, key := keyedRing(t, opts)
	segID, semID := r.SegmentID(), r.SemaphoreID()
	if r.Key() != key {
		t.Fatalf("key %v, want %v", r.Key(), key)
	}
	if s, err := semaphore.Open(key); err != nil || s.ID() != semID {
		t.Fatalf("the semaphore set under the ring's key: %v %v, want id %d", s, err, semID)
	}
	excl := opts
	excl.Exclusive = true
	if r2, err := Create(key, &excl); !errors.Is(err, fs.ErrExist) {
		if err == nil {
			r2.Close()
		}
		t.Fatalf("exclusive Create of a taken key: %v, want fs.ErrExist", err)
	}
	r2, err := Create(key, &opts)
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
	expect(t, c, 5, []byte("through the key"))
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
// a non-exclusive Create and an Open say ErrNotRing at once, and RemoveKey
// leaves it alone.
func TestKeyHoldsForeignSegment(t *testing.T) {
	key := freshKey(t)
	seg := newSegment(t, key, 4096, []byte("something else entirely"))
	if _, err := Create(key, &Options{Slots: 2, MaxMessage: 8}); !errors.Is(err, ErrNotRing) {
		t.Fatalf("non-exclusive Create over a foreign segment: %v, want ErrNotRing", err)
	}
	if _, err := Open(key, nil); !errors.Is(err, ErrNotRing) {
		t.Fatalf("Open of a foreign segment: %v, want ErrNotRing", err)
	}
	if err := RemoveKey(key); !errors.Is(err, ErrNotRing) {
		t.Fatalf("RemoveKey of a foreign segment: %v, want ErrNotRing", err)
	}
	if !ipctest.Exists(ipctest.Shm, seg.ID()) {
		t.Fatal("RemoveKey removed a segment that is not a ring")
	}
	// An all-zero segment, whose creator (we) is alive, may be a ring being
	// made: RemoveKey does not guess.
	key2 := freshKey(t)
	zero := newSegment(t, key2, 4096, nil)
	if err := RemoveKey(key2); !errors.Is(err, ErrNotRing) || !ipctest.Exists(ipctest.Shm, zero.ID()) {
		t.Fatalf("RemoveKey of a zero segment: %v, segment left %v", err, ipctest.Exists(ipctest.Shm, zero.ID()))
	}
}

// TestRemoveTwice: a second Remove says the ring is gone, in one error.
func TestRemoveTwice(t *testing.T) {
	forMemories(t, small(SPSC), func(t *testing.T, r *Ring) {
		if err := r.Remove(); err != nil {
			t.Fatal(err)
		}
		err := r.Remove()
		if !errors.Is(err, ErrRemoved) || strings.Count(err.Error(), "invalid argument") > 0 || strings.Contains(err.Error(), "\n") {
			t.Fatalf("second Remove: %q, want one ErrRemoved", err)
		}
	})
}

// TestKeyedSet: the set lives under the ring's key, so that ipcrm -M or -S
// of one half leaves the other reachable: RemoveKey removes whichever is
// left, and a new ring under the key after ipcrm -M meets the old set,
// which it recognizes as stale and replaces rather than shares.
func TestKeyedSet(t *testing.T) {
	ipcrm := func(t *testing.T, flag string, key ipc.Key) {
		t.Helper()
		if out, err := exec.Command("ipcrm", flag, fmt.Sprintf("%#x", uint32(key))).CombinedOutput(); err != nil {
			t.Fatalf("ipcrm %s: %v: %s", flag, err, out)
		}
	}
	t.Run("ipcrm-M-then-RemoveKey", func(t *testing.T) {
		r, key := keyedRing(t, Options{Slots: 2, MaxMessage: 8})
		semID := r.SemaphoreID()
		r.Close()
		ipcrm(t, "-M", key)
		if err := RemoveKey(key); err != nil {
			t.Fatalf("RemoveKey of a ring without its segment: %v", err)
		}
		if ipctest.Exists(ipctest.Sem, semID) {
			t.Fatal("RemoveKey left the semaphore set")
		}
	})
	t.Run("ipcrm-S-then-RemoveKey", func(t *testing.T) {
		r, key := keyedRing(t, Options{Slots: 2, MaxMessage: 8})
		segID := r.SegmentID()
		r.Close()
		ipcrm(t, "-S", key)
		if _, err := Open(key, nil); !errors.Is(err, ErrRemoved) {
			t.Fatalf("Open of a ring without its set: %v, want ErrRemoved", err)
		}
		if err := RemoveKey(key); err != nil {
			t.Fatalf("RemoveKey of a ring without its semaphore set: %v", err)
		}
		if ipctest.Exists(ipctest.Shm, segID) {
			t.Fatal("RemoveKey left the segment")
		}
	})
	t.Run("ipcrm-M-then-Create", func(t *testing.T) {
		old, key := keyedRing(t, Options{Slots: 2, MaxMessage: 8})
		oldSem := old.SemaphoreID()
		op, err := old.NewProducer()
		if err != nil {
			t.Fatal(err)
		}
		old.Close()
		ipcrm(t, "-M", key)
		r, err := Create(key, &Options{Slots: 4, MaxMessage: 16})
		if err != nil {
			t.Fatalf("Create after ipcrm -M: %v", err)
		}
		removeIDs(t, r.SegmentID(), r.SemaphoreID())
		defer r.Close()
		if r.SemaphoreID() == oldSem || ipctest.Exists(ipctest.Sem, oldSem) {
			t.Fatalf("the new ring shares or kept the old ring's set %d (new %d)", oldSem, r.SemaphoreID())
		}
		_ = op
		p, c := pair(t, r)
		if err := p.TrySend(1, []byte("new")); err != nil {
			t.Fatal(err)
		}
		expect(t, c, 1, []byte("new"))
	})
}

// helperSquat, as another user, creates a 0666 ring under RING_KEY and,
// with SQUAT_GIVE set, gives its segment and set to uid 0, as an owner may.
// It prints the ring's segment and set ids.
func helperSquat() int {
	key := ipc.Key(ipctest.GetenvInt("RING_KEY"))
	r, err := Create(key, &Options{Slots: 4, MaxMessage: 16, Perm: 0o666, Exclusive: true})
	if err != nil {
		return helperFail("create", err)
	}
	fmt.Println(r.SegmentID(), r.SemaphoreID())
	if os.Getenv("SQUAT_GIVE") != "" {
		if err := r.seg.SetOwner(0, 0); err != nil {
			return helperFail("give the segment", err)
		}
		if err := r.sems.SetOwner(0, 0); err != nil {
			return helperFail("give the set", err)
		}
	}
	r.Close()
	return 0
}

// helperSquatSet, as another user, creates a semaphore set under RING_KEY.
func helperSquatSet() int {
	s, err := semaphore.Create(ipc.Key(ipctest.GetenvInt("RING_KEY")), 4, &semaphore.Options{Mode: 0o666, Exclusive: true})
	if err != nil {
		return helperFail("create", err)
	}
	fmt.Println(s.ID())
	return 0
}

// runSquatter runs a squatting helper and returns the ids it printed,
// removing them when the test ends.
func runSquatter(t *testing.T, name string, env ...string) []int {
	t.Helper()
	out, err := ipctest.CommandAs(t, name, env...).Output()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var ids []int
	for _, f := range strings.Fields(string(out)) {
		id, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("%s printed %q", name, out)
		}
		ids = append(ids, id)
	}
	if len(ids) == 2 {
		removeIDs(t, ids[0], ids[1])
	} else {
		removeIDs(t, -1, ids[0])
	}
	return ids
}

// TestSquatting: another user makes a ring under the key first; a default
// (non-exclusive) Create must not adopt it, even when the squatter has
// given its objects to the caller. A caller's own ring with other
// permissions is refused too.
func TestSquatting(t *testing.T) {
	for _, give := range []bool{false, true} {
		t.Run(fmt.Sprint("given=", give), func(t *testing.T) {
			key := freshKey(t)
			env := []string{"RING_KEY=" + strconv.Itoa(int(key))}
			if give {
				env = append(env, "SQUAT_GIVE=1")
			}
			runSquatter(t, "squat", env...)
			r, err := Create(key, nil)
			if err == nil {
				r.Close()
				t.Fatal("Create adopted another user's ring")
			}
			if !errors.Is(err, ErrForeign) || !errors.Is(err, fs.ErrExist) {
				t.Fatalf("Create over a squatted key: %v, want ErrForeign", err)
			}
			t.Log(err)
		})
	}
	t.Run("set-only", func(t *testing.T) {
		key := freshKey(t)
		runSquatter(t, "squat-set", "RING_KEY="+strconv.Itoa(int(key)))
		r, err := Create(key, nil)
		if err == nil {
			r.Close()
			t.Fatal("Create used another user's semaphore set")
		}
		if !errors.Is(err, ErrForeign) {
			t.Fatalf("Create over a squatted set: %v, want ErrForeign", err)
		}
		if _, err := segment.Open(key); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("the failed Create left its segment: %v", err)
		}
	})
}

func TestAdoptOtherPermissions(t *testing.T) {
	r, key := keyedRing(t, Options{Slots: 4, MaxMessage: 16, Perm: 0o666})
	_ = r
	if r2, err := Create(key, &Options{Slots: 4, MaxMessage: 16}); !errors.Is(err, ErrForeign) {
		if err == nil {
			r2.Close()
		}
		t.Fatalf("Create for 0600 over our own 0666 ring: %v, want ErrForeign", err)
	}
	r3, err := Create(key, &Options{Slots: 4, MaxMessage: 16, Perm: 0o666})
	if err != nil {
		t.Fatalf("Create with the ring's own permissions: %v", err)
	}
	r3.Close()
}

// forge rewrites the header of the ring in mem to name the semaphore set
// semID and, with id, to carry another ring's instance id, and reseals it:
// what a process that may write the segment can do.
func forge(mem []byte, semID int, id *uuid.UUID) {
	le.PutUint32(mem[offSemID:], uint32(int32(semID)))
	if id != nil {
		copy(mem[lineSize:lineSize+16], id[:])
	}
	reseal(mem)
}

// helperForge, as another user, attaches segment RING_SEG and forges its
// header to name set FORGE_SEM, with the instance id FORGE_ID if set.
func helperForge() int {
	seg, err := segment.OpenID(ipctest.GetenvInt("RING_SEG"))
	if err != nil {
		return helperFail("open", err)
	}
	m, err := seg.Attach(false)
	if err != nil {
		return helperFail("attach", err)
	}
	var id *uuid.UUID
	if s := os.Getenv("FORGE_ID"); s != "" {
		u := uuid.MustParse(s)
		id = &u
	}
	forge(m.Bytes(), ipctest.GetenvInt("FORGE_SEM"), id)
	m.Detach()
	return 0
}

// TestForgedHeader: a ring whose header was rewritten, checksum and all,
// to name another ring's semaphore set (of the same owner, the same size,
// even with that ring's instance id copied) is refused with ErrCorrupt on
// open, by key and by id; nothing changes in the victim's set, and
// RemoveKey removes the forged ring's own objects, never the victim's.
func TestForgedHeader(t *testing.T) {
	for _, tc := range []struct {
		name      string
		otherUser bool
		keyed     bool
		copyID    bool
	}{
		{"same-user/private", false, false, false},
		{"same-user/keyed/copied-id", false, true, true},
		{"other-user/keyed", true, true, false},
		{"other-user/private/copied-id", true, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			victim, _ := keyedRing(t, Options{Slots: 4, MaxMessage: 16})
			vp, err := victim.NewProducer()
			if err != nil {
				t.Fatal(err)
			}
			before := make([]uint16, victim.sems.Len())
			if err := victim.sems.Values(before); err != nil {
				t.Fatal(err)
			}
			opts := Options{Slots: 4, MaxMessage: 16, Perm: 0o666}
			var x *Ring
			var key ipc.Key
			if tc.keyed {
				x, key = keyedRing(t, opts)
			} else {
				x = testRing(t, shm, &opts)
			}
			var id *uuid.UUID
			if tc.copyID {
				u := victim.InstanceID()
				id = &u
			}
			if tc.otherUser {
				env := []string{"RING_SEG=" + strconv.Itoa(x.SegmentID()), "FORGE_SEM=" + strconv.Itoa(victim.SemaphoreID())}
				if id != nil {
					env = append(env, "FORGE_ID="+id.String())
				}
				if err := ipctest.CommandAs(t, "forge", env...).Run(); err != nil {
					t.Fatal(err)
				}
			} else {
				forge(x.mem, victim.SemaphoreID(), id)
			}
			if _, err := validateHeader(x.mem); err != nil {
				t.Fatalf("the forged header does not validate: %v", err)
			}
			opens := map[string]func() (*Ring, error){"OpenID": func() (*Ring, error) { return OpenID(x.SegmentID(), nil) }}
			if tc.keyed {
				opens["Open"] = func() (*Ring, error) { return Open(key, nil) }
			}
			for name, open := range opens {
				r, err := open()
				if err == nil {
					r.NewProducer()
					r.Close()
					t.Fatalf("%s of a forged ring succeeded", name)
				}
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("%s of a forged ring: %v, want ErrCorrupt", name, err)
				}
			}
			after := make([]uint16, victim.sems.Len())
			if err := victim.sems.Values(after); err != nil {
				t.Fatal(err)
			}
			for i := range before {
				if before[i] != after[i] {
					t.Fatalf("the victim's semaphore %d went from %d to %d", i, before[i], after[i])
				}
			}
			if tc.keyed {
				segID, semID := x.SegmentID(), x.SemaphoreID()
				x.Close()
				if err := RemoveKey(key); err != nil {
					t.Fatalf("RemoveKey of the forged ring: %v", err)
				}
				if ipctest.Exists(ipctest.Shm, segID) || ipctest.Exists(ipctest.Sem, semID) {
					t.Fatal("RemoveKey left the forged ring's own objects")
				}
			}
			if !ipctest.Exists(ipctest.Sem, victim.SemaphoreID()) {
				t.Fatal("the victim's semaphore set was removed")
			}
			if err := vp.Send(context.Background(), 1, []byte("still mine")); err != nil {
				t.Fatalf("the victim ring after the forgery: %v", err)
			}
		})
	}
}
