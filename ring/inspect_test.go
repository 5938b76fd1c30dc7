package ring

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/shmring/shmring/internal/ipctest"
	"github.com/shmring/shmring/ipc"
)

// TestReadOnlyObserver: a ring opened read-only reports its header, its
// holders and its Stats, and refuses every role with ErrReadOnly.
func TestReadOnlyObserver(t *testing.T) {
	r := testRing(t, shm, &Options{Mode: MPSC, Slots: 8, MaxMessage: 64, MaxProducers: 2})
	p, c := pair(t, r)
	for i := 0; i < 3; i++ {
		if err := p.TrySend(1, msg(i)); err != nil {
			t.Fatal(err)
		}
	}
	o, err := OpenID(r.SegmentID(), &OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if _, err := o.NewProducer(); !errors.Is(err, ErrReadOnly) {
		t.Errorf("NewProducer on a read-only ring: %v, want ErrReadOnly", err)
	}
	if _, err := o.NewConsumer(); !errors.Is(err, ErrReadOnly) {
		t.Errorf("NewConsumer on a read-only ring: %v, want ErrReadOnly", err)
	}
	h := o.Header()
	if h.Version != layoutVersion || h.InstanceID != r.InstanceID() || h.Mode != MPSC || h.Slots != 8 ||
		h.MaxMessage != 64 || h.MaxProducers != 2 || h.MaxConsumers != 1 || h.SemaphoreID != r.SemaphoreID() ||
		h.Creator.PID != os.Getpid() || h.Created.IsZero() {
		t.Errorf("header %+v", h)
	}
	st := o.Stats()
	if st.Sent != 3 || st.Depth != 3 || st.Producers != 1 || st.Consumers != 1 || st.DeadProducers != 0 {
		t.Errorf("stats %+v", st)
	}
	hs, err := o.Holders()
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 2 || hs[0].Role != "producer" || hs[1].Role != "consumer" || !hs[0].Alive || !hs[1].Alive ||
		hs[0].PID != os.Getpid() || hs[0].Messages != 3 || hs[0].Since.IsZero() {
		t.Errorf("holders %+v", hs)
	}
	if _, _, err := c.TryReceive(make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	if st := o.Stats(); st.Received != 1 || st.Depth != 2 {
		t.Errorf("after a receive, the observer's stats %+v", st)
	}
}

// TestReadOnlyWritesNothing: every call of a read-only ring leaves the
// segment as it was (a write would fault: the mapping is read-only, so the
// process would die; the comparison checks the bytes too).
func TestReadOnlyWritesNothing(t *testing.T) {
	r := testRing(t, shm, &Options{Mode: MPMC, Slots: 8, MaxMessage: 64, MaxProducers: 2, MaxConsumers: 2})
	p, _ := pair(t, r)
	if err := p.TrySend(1, msg(1)); err != nil {
		t.Fatal(err)
	}
	before := append([]byte(nil), r.mem...)
	o, err := OpenID(r.SegmentID(), &OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	o.Stats()
	o.Holders()
	o.Header()
	o.NewProducer()
	o.NewConsumer()
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range before {
		if before[i] != r.mem[i] {
			t.Fatalf("byte %d changed from %#x to %#x", i, before[i], r.mem[i])
		}
	}
}

// TestHoldersLiveAndDead: a producer SIGKILLed in another process shows as
// a dead holder with its pid, and Stats counts it apart from live ones.
func TestHoldersLiveAndDead(t *testing.T) {
	r := testRing(t, shm, &Options{Mode: MPSC, Slots: 8, MaxMessage: 64, MaxProducers: 2})
	if _, err := r.NewConsumer(); err != nil {
		t.Fatal(err)
	}
	dead := startHelper(t, "hang-producer", helperEnv(r, "RING_ID=1", "RING_COUNT=2")...)
	live := startHelper(t, "hang-producer", helperEnv(r, "RING_ID=2", "RING_COUNT=1")...)
	deadPID, livePID := dead.Process.Pid, live.Process.Pid
	kill(t, dead)
	st := r.Stats()
	if st.Producers != 1 || st.DeadProducers != 1 || st.Consumers != 1 || st.DeadConsumers != 0 || st.Sent != 3 {
		t.Errorf("stats %+v, want 1 live and 1 dead producer", st)
	}
	hs, err := r.Holders()
	if err != nil {
		t.Fatal(err)
	}
	byPID := map[int]Holder{}
	for _, h := range hs {
		byPID[h.PID] = h
	}
	if h := byPID[deadPID]; h.Alive || h.Role != "producer" || h.Messages != 2 {
		t.Errorf("dead producer %+v", h)
	}
	if h := byPID[livePID]; !h.Alive || h.Role != "producer" || h.Messages != 1 {
		t.Errorf("live producer %+v", h)
	}
	if h := byPID[os.Getpid()]; !h.Alive || h.Role != "consumer" {
		t.Errorf("consumer %+v", h)
	}
}

// TestRemoveID removes a private ring by its segment id and refuses a
// segment that is not a ring.
func TestRemoveID(t *testing.T) {
	r, err := Create(ipc.Private, &Options{Slots: 8, MaxMessage: 64})
	if err != nil {
		t.Fatal(err)
	}
	segID, semID := r.SegmentID(), r.SemaphoreID()
	defer removeIDs(t, segID, semID)
	r.Close()
	if err := RemoveID(segID); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenID(segID, nil); err == nil {
		t.Fatal("the ring is still there")
	}
}

// TestHeaderAfterClose: the header and instance id are kept in process
// memory, so asking for them after Close (the segment detached) is safe.
func TestHeaderAfterClose(t *testing.T) {
	r := testRing(t, shm, &Options{Slots: 8, MaxMessage: 64})
	want := r.Header()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if got := r.Header(); got != want || r.InstanceID() != want.InstanceID {
		t.Errorf("after Close: header %+v, instance %v; want %+v", got, r.InstanceID(), want)
	}
}

// TestConcurrentRemove: a Remove that finds another one at work returns
// only once the ring is gone (a signal handler's Remove must not let the
// process exit while another goroutine's is half-way).
func TestConcurrentRemove(t *testing.T) {
	r, err := Create(ipc.Private, &Options{Slots: 8, MaxMessage: 64})
	if err != nil {
		t.Fatal(err)
	}
	segID, semID := r.SegmentID(), r.SemaphoreID()
	removeIDs(t, segID, semID)
	paused, resume := make(chan struct{}), make(chan struct{})
	stepHook = func(s string) {
		if s == "remove:marked" {
			close(paused)
			<-resume
		}
	}
	defer func() { stepHook = nil }()
	first := make(chan struct{})
	go func() { r.Remove(); close(first) }()
	<-paused
	second := make(chan struct{})
	go func() { r.Remove(); close(second) }()
	select {
	case <-second:
		t.Error("the second Remove returned while the first was half-way")
	case <-time.After(50 * time.Millisecond):
	}
	close(resume)
	<-first
	<-second
	// Gone, or going: another process (a monitor) may hold it attached a
	// moment longer.
	for deadline := time.Now().Add(2 * time.Second); ipctest.Exists(ipctest.Shm, segID) || ipctest.Exists(ipctest.Sem, semID); {
		if time.Now().After(deadline) {
			t.Fatal("the ring is still there")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
