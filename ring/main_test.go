package ring

import (
	"testing"

	"github.com/shmring/shmring/internal/atomicx"
	"github.com/shmring/shmring/internal/ipctest"
	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/semaphore"
)

func TestMain(m *testing.M) { ipctest.Main(m, helpers) }

// newTestRing creates a private ring in shared memory, removed when the
// test ends.
func newTestRing(t testing.TB, opts *Options) *Ring {
	t.Helper()
	r, err := Create(ipc.Private, opts)
	if err != nil {
		t.Fatal(err)
	}
	trackRing(t, r)
	t.Cleanup(func() { r.Remove() })
	return r
}

func trackRing(t testing.TB, r *Ring) {
	if r.SegmentID() >= 0 {
		ipctest.Track(t, ipctest.Shm, r.SegmentID())
	}
	ipctest.Track(t, ipctest.Sem, r.SemaphoreID())
}

// newMemRing lays a ring over a heap buffer (with a real semaphore set for
// waiting), so that the race detector sees every access.
func newMemRing(t testing.TB, opts *Options) *Ring {
	t.Helper()
	if opts == nil {
		opts = &Options{}
	}
	g := opts.geometry()
	if err := g.check(); err != nil {
		t.Fatal(err)
	}
	sems, err := semaphore.Create(ipc.Private, semRoles+g.roles(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ipctest.Track(t, ipctest.Sem, sems.ID())
	t.Cleanup(func() { sems.Remove() })
	r, err := format(atomicx.AlignedBuffer(g.size()), sems, g, opts.Wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// openMem opens a second view of a memory ring, as another process would.
func openMem(t testing.TB, r *Ring, w Waiting) *Ring {
	t.Helper()
	o, err := openMemory(r.mem, &OpenOptions{Wait: w})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}
