package ringvar

import (
	"encoding/json"
	"expvar"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/shmring/shmring/internal/ipctest"
	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/ring"
)

// TestMain fails the run if a test leaves a segment or a semaphore set
// behind.
func TestMain(m *testing.M) { ipctest.Main(m, nil) }

// newRing creates a private ring that is removed when the test ends.
func newRing(t *testing.T, opts *ring.Options) *ring.Ring {
	t.Helper()
	r, err := ring.Create(ipc.Private, opts)
	if err != nil {
		t.Fatal(err)
	}
	ipctest.Track(t, ipctest.Shm, r.SegmentID())
	ipctest.Track(t, ipctest.Sem, r.SemaphoreID())
	t.Cleanup(func() {
		if err := r.Remove(); err != nil {
			t.Error(err)
		}
	})
	return r
}

var names atomic.Int64

// uniqueName returns an expvar name that no other test, nor another run
// of this one under -count, publishes: expvar.Publish panics on a reused
// name.
func uniqueName(t *testing.T) string {
	return fmt.Sprintf("ringvar_test.%s.%d", t.Name(), names.Add(1))
}

// traffic sends sent one-byte messages to r and receives received of them,
// leaving the producer and the consumer open.
func traffic(t *testing.T, r *ring.Ring, sent, received int) {
	t.Helper()
	p, err := r.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.NewConsumer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(); c.Close() })
	for i := 0; i < sent; i++ {
		if err := p.TrySend(1, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, r.MaxMessage())
	for i := 0; i < received; i++ {
		if n, typ, err := c.TryReceive(buf); err != nil || n != 1 || typ != 1 {
			t.Fatalf("received %d bytes of type %d: %v", n, typ, err)
		}
	}
}

// read returns the published variable's value, decoded both as snapshots
// and as generic JSON objects.
func read(t *testing.T, name string) ([]Snapshot, []map[string]any) {
	t.Helper()
	v := expvar.Get(name)
	if v == nil {
		t.Fatalf("%s is not published", name)
	}
	s := v.String()
	var snaps []Snapshot
	if err := json.Unmarshal([]byte(s), &snaps); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	var objs []map[string]any
	if err := json.Unmarshal([]byte(s), &objs); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return snaps, objs
}

func TestPublish(t *testing.T) {
	r := newRing(t, &ring.Options{Slots: 8, MaxMessage: 64})
	name := uniqueName(t)
	Publish(name, r)
	traffic(t, r, 5, 2)

	snaps, objs := read(t, name)
	want := Snapshot{
		Key: "0x00000000", Segment: r.SegmentID(), Instance: r.InstanceID().String(), Mode: "spsc",
		Capacity: 8, Depth: 3, Producers: 1, Consumers: 1,
		Sent: 5, Received: 2, SentBytes: 5, ReceivedBytes: 2,
	}
	if len(snaps) != 1 || snaps[0] != want {
		t.Fatalf("got %+v\nwant [%+v]", snaps, want)
	}

	// The same, by the documented JSON names.
	exact := map[string]any{
		"key": "0x00000000", "segment": float64(r.SegmentID()), "instance": r.InstanceID().String(), "mode": "spsc",
		"capacity": 8.0, "depth": 3.0, "producers": 1.0, "consumers": 1.0, "dead_producers": 0.0, "dead_consumers": 0.0,
		"sent": 5.0, "received": 2.0, "sent_bytes": 5.0, "received_bytes": 2.0,
		"consumer_sleeps": 0.0, "producer_sleeps": 0.0, "wakeups": 0.0,
		"recovered": 0.0, "redelivered": 0.0, "reaped": 0.0,
	}
	if len(objs) != 1 {
		t.Fatalf("got %d objects, want 1", len(objs))
	}
	for k, v := range exact {
		if got, ok := objs[0][k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	for k := range objs[0] {
		if _, ok := exact[k]; !ok {
			t.Errorf("undocumented field %s", k)
		}
	}
}

func TestFreshReads(t *testing.T) {
	r := newRing(t, &ring.Options{Mode: ring.MPMC, Slots: 16, MaxMessage: 64})
	f := Func(r)
	traffic(t, r, 4, 1)
	got := f().([]Snapshot)
	if len(got) != 1 || got[0].Sent != 4 || got[0].Received != 1 || got[0].Depth != 3 || got[0].Mode != "mpmc" || got[0].Capacity != 16 {
		t.Fatalf("first read %+v", got)
	}
	traffic(t, r, 2, 5)
	got = f().([]Snapshot)
	s := got[0]
	if s.Sent != 6 || s.Received != 6 || s.Depth != 0 || s.SentBytes != 6 || s.ReceivedBytes != 6 || s.Producers != 2 || s.Consumers != 2 {
		t.Fatalf("second read %+v", s)
	}
}

func TestSeveralRings(t *testing.T) {
	a := newRing(t, &ring.Options{Slots: 8, MaxMessage: 64})
	b := newRing(t, &ring.Options{Mode: ring.MPSC, Slots: 32, MaxMessage: 128})
	name := uniqueName(t)
	Publish(name, a, b)
	traffic(t, a, 1, 0)
	traffic(t, b, 7, 7)

	snaps, _ := read(t, name)
	if len(snaps) != 2 {
		t.Fatalf("got %d rings, want 2", len(snaps))
	}
	for i, tc := range []struct {
		r                  *ring.Ring
		mode               string
		capacity, sent, rx int
	}{{a, "spsc", 8, 1, 0}, {b, "mpsc", 32, 7, 7}} {
		s := snaps[i]
		if s.Segment != tc.r.SegmentID() || s.Instance != tc.r.InstanceID().String() || s.Mode != tc.mode ||
			s.Capacity != tc.capacity || s.Sent != uint64(tc.sent) || s.Received != uint64(tc.rx) || s.Depth != tc.sent-tc.rx {
			t.Errorf("ring %d: %+v", i, s)
		}
	}
	if snaps[0].Instance == snaps[1].Instance {
		t.Errorf("two rings with instance %s", snaps[0].Instance)
	}
}

func TestNoRings(t *testing.T) {
	if s := Func().String(); s != "[]" {
		t.Fatalf("Func() = %s, want []", s)
	}
}

// A ring closed after it was published reads as zeros, with its identity.
func TestClosedRing(t *testing.T) {
	r := newRing(t, &ring.Options{Slots: 8, MaxMessage: 64})
	f := Func(r)
	traffic(t, r, 3, 1)
	seg, id := r.SegmentID(), r.InstanceID().String()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	got := f().([]Snapshot)
	want := Snapshot{Key: "0x00000000", Segment: seg, Instance: id, Mode: "spsc"}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("got %+v, want [%+v]", got, want)
	}
}

// The variable is served at /debug/vars, by expvar's handler.
func TestServed(t *testing.T) {
	r := newRing(t, &ring.Options{Slots: 8, MaxMessage: 64})
	name := uniqueName(t)
	Publish(name, r)
	traffic(t, r, 5, 2)
	srv := httptest.NewServer(expvar.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/debug/vars")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var vars map[string]json.RawMessage
	if err := json.Unmarshal(body, &vars); err != nil {
		t.Fatal(err)
	}
	var snaps []Snapshot
	if err := json.Unmarshal(vars[name], &snaps); err != nil {
		t.Fatalf("%s: %s: %v", name, vars[name], err)
	}
	if len(snaps) != 1 || snaps[0].Sent != 5 || snaps[0].Received != 2 || snaps[0].Depth != 3 {
		t.Fatalf("served %+v", snaps)
	}
}

// Every JSON name is in the package documentation.
func TestNamesDocumented(t *testing.T) {
	src, err := os.ReadFile("ringvar.go")
	if err != nil {
		t.Fatal(err)
	}
	doc, _, ok := strings.Cut(string(src), "package ringvar")
	if !ok {
		t.Fatal("no package clause")
	}
	var tags []string
	typ := reflect.TypeOf(Snapshot{})
	for i := 0; i < typ.NumField(); i++ {
		tag := typ.Field(i).Tag.Get("json")
		if tag == "" {
			t.Errorf("field %s has no JSON name", typ.Field(i).Name)
		}
		tags = append(tags, tag)
		if !strings.Contains(doc, "//\t"+tag+" ") {
			t.Errorf("%s is not in the package documentation", tag)
		}
	}
	sorted := slices.Clone(tags)
	sort.Strings(sorted)
	if len(slices.Compact(sorted)) != len(tags) {
		t.Errorf("duplicate JSON names in %v", tags)
	}
}
