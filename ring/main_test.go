package ring

import (
	"fmt"
	"os"
	"testing"

	"github.com/google/uuid"
	"github.com/shmring/shmring/internal/atomicx"
	"github.com/shmring/shmring/internal/ipctest"
	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/segment"
	"github.com/shmring/shmring/semaphore"
)

// helpers are the helper processes of the cross-process tests, registered
// by the test files' init functions.
var helpers = map[string]func() int{}

func TestMain(m *testing.M) { ipctest.Main(m, helpers) }

// memory says where a test ring lives.
type memory int

const (
	// heap: a Go buffer with a real semaphore set, so that the race
	// detector sees every access (it cannot see shared memory).
	heap memory = iota
	// shm: a private System V segment, as a real ring.
	shm
)

func (m memory) String() string {
	if m == heap {
		return "heap"
	}
	return "shm"
}

// testRing makes a ring of the options in the given memory. The test may
// close and remove it itself; whatever is left is removed when it ends,
// by id.
func testRing(t testing.TB, mem memory, opts *Options) *Ring {
	t.Helper()
	if opts == nil {
		opts = &Options{}
	}
	if mem == shm {
		r, err := Create(ipc.Private, opts)
		if err != nil {
			t.Fatal(err)
		}
		removeIDs(t, r.SegmentID(), r.SemaphoreID())
		t.Cleanup(func() { r.Close() })
		return r
	}
	g := opts.geometry()
	if err := g.check(); err != nil {
		t.Fatal(err)
	}
	sems, err := semaphore.Create(ipc.Private, semCount(g.roles()), nil)
	if err != nil {
		t.Fatal(err)
	}
	removeIDs(t, -1, sems.ID())
	id := uuid.New()
	if err := sems.SetValues(initialValues(sems.Len(), id, -1, 0)); err != nil {
		t.Fatal(err)
	}
	r, err := format(atomicx.AlignedBuffer(g.size()), sems, g, opts.Wait, identity{semID: sems.ID(), id: id})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// removeIDs tracks a segment (unless -1) and a semaphore set for the leak
// check and removes them when the test ends.
func removeIDs(t testing.TB, segID, semID int) {
	t.Helper()
	if segID >= 0 {
		ipctest.Track(t, ipctest.Shm, segID)
		t.Cleanup(func() {
			if s, err := segment.OpenID(segID); err == nil {
				s.Remove()
			}
		})
	}
	if semID >= 0 {
		ipctest.Track(t, ipctest.Sem, semID)
		t.Cleanup(func() {
			if s, err := semaphore.OpenID(semID); err == nil {
				s.Remove()
			}
		})
	}
}

// forMemories runs f over a heap ring and over a shared-memory ring of the
// options.
func forMemories(t *testing.T, opts *Options, f func(t *testing.T, r *Ring)) {
	for _, mem := range []memory{heap, shm} {
		t.Run("memory="+mem.String(), func(t *testing.T) { f(t, testRing(t, mem, opts)) })
	}
}

// forModes runs f for every mode over both memories, with the options that
// opts returns for the mode.
func forModes(t *testing.T, opts func(m Mode) *Options, f func(t *testing.T, r *Ring)) {
	for _, m := range allModes {
		t.Run("mode="+m.String(), func(t *testing.T) { forMemories(t, opts(m), f) })
	}
}

var allModes = []Mode{SPSC, MPSC, SPMC, MPMC}

var allWaits = []WaitStrategy{Adaptive, Spin, Block}

func small(m Mode) *Options { return &Options{Mode: m, Slots: 8, MaxMessage: 64} }

// reopen attaches a second view of r, as another process would: by id for
// a ring in shared memory, over the same buffer for one in plain memory.
func reopen(t testing.TB, r *Ring, w Waiting) *Ring {
	t.Helper()
	var o *Ring
	var err error
	if r.seg != nil {
		o, err = OpenID(r.SegmentID(), &OpenOptions{Wait: w})
	} else {
		o, err = openMemory(r.mem, &OpenOptions{Wait: w}, -1, nil, r.self)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

func pair(t testing.TB, r *Ring) (*Producer, *Consumer) {
	t.Helper()
	p, err := r.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.NewConsumer()
	if err != nil {
		t.Fatal(err)
	}
	return p, c
}

func msg(i int) []byte { return []byte(fmt.Sprintf("message %d", i)) }

// expect receives one message without waiting and checks it.
func expect(t testing.TB, c *Consumer, typ int64, data []byte) {
	t.Helper()
	buf := make([]byte, c.h.r.MaxMessage())
	n, gt, err := c.TryReceive(buf)
	if err != nil || gt != typ || string(buf[:n]) != string(data) {
		t.Fatalf("received %d %q %v, want %d %q", gt, buf[:n], err, typ, data)
	}
}

// helperFail reports a helper's failure on stderr and returns its exit
// status.
func helperFail(what string, err error) int {
	fmt.Fprintf(os.Stderr, "helper %s (pid %d): %s: %v\n", os.Getenv(ipctest.HelperEnv), os.Getpid(), what, err)
	return 1
}

// dump describes the ring's shared state, for a test that hangs: the
// cursors, every slot's sequence word, every role line, the sleep masks
// and the semaphores.
func dump(r *Ring) string {
	var b []byte
	add := func(format string, args ...any) { b = fmt.Appendf(b, format, args...) }
	add("tail %d head %d\n", r.prod.pos.Load(), r.cons.pos.Load())
	for i := uint64(0); i < r.n; i++ {
		seq := r.descs.At(i).seq.Load()
		add("slot %d: seq %d skip %v held %v\n", i, seq&^(seqSkip|seqHeld), seq&seqSkip != 0, seq&seqHeld != 0)
	}
	for i := 0; i < r.g.roles(); i++ {
		e := r.roles.At(uint64(i))
		st := e.state.Load()
		n := e.claimLen.Load()
		add("line %d: status %d gen %d pid %d claim %d len %d intent %v peek %d\n", i, status(st), st>>8, e.pid.Load(),
			e.claim.Load(), n&^claimIntent, n&claimIntent != 0, e.peek.Load())
	}
	add("sleep masks: producers %#x consumers %#x, flags %d/%d\n", r.sleepers[producerSide].masks[0].Load(),
		r.sleepers[consumerSide].masks[0].Load(), r.sleepers[producerSide].flags.Load(), r.sleepers[consumerSide].flags.Load())
	vals := make([]uint16, r.sems.Len())
	r.sems.Values(vals)
	add("semaphores %v\nstats %+v\n", vals, r.Stats())
	return string(b)
}
