package shmringprom

import (
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/ring"
)

// helperEnv names the helper that the test binary runs instead of the
// tests; helperSegment gives it the ring's segment id.
const (
	helperEnv     = "SHMRINGPROM_TEST_HELPER"
	helperSegment = "SHMRINGPROM_TEST_SEGMENT"
)

var (
	trackMu sync.Mutex
	tracked []string // "shm 12", "sem 34": every object a test created
)

// TestMain runs a helper when asked to; otherwise it runs the tests and
// fails the run if a System V object that a test created still exists.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(dieHolding())
	}
	code := m.Run()
	if left := leftBehind(); len(left) > 0 {
		fmt.Fprintln(os.Stderr, "System V objects outlived the tests:", strings.Join(left, ", "))
		code = 1
	}
	os.Exit(code)
}

// leftBehind returns the tracked objects that still exist.
func leftBehind() []string {
	live := map[string]bool{}
	shm, err := ipc.ListShm()
	if err != nil {
		return []string{err.Error()}
	}
	for _, s := range shm {
		live["shm "+strconv.Itoa(s.ID)] = true
	}
	sem, err := ipc.ListSem()
	if err != nil {
		return []string{err.Error()}
	}
	for _, s := range sem {
		live["sem "+strconv.Itoa(s.ID)] = true
	}
	trackMu.Lock()
	defer trackMu.Unlock()
	var out []string
	for _, o := range tracked {
		if live[o] {
			out = append(out, o)
		}
	}
	return out
}

// dieHolding is the helper: it opens the ring, takes a producer role and
// a consumer role, and exits without giving them back.
func dieHolding() int {
	id, err := strconv.Atoi(os.Getenv(helperSegment))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	r, err := ring.OpenID(id, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := r.NewProducer(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := r.NewConsumer(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// newRing creates a private ring that is removed when the test ends.
func newRing(t *testing.T, opts *ring.Options) *ring.Ring {
	t.Helper()
	r, err := ring.Create(ipc.Private, opts)
	if err != nil {
		t.Fatal(err)
	}
	trackMu.Lock()
	tracked = append(tracked, "shm "+strconv.Itoa(r.SegmentID()), "sem "+strconv.Itoa(r.SemaphoreID()))
	trackMu.Unlock()
	t.Cleanup(func() {
		if err := r.Remove(); err != nil {
			t.Error(err)
		}
	})
	return r
}

// traffic sends sent one-byte messages to r and receives received of
// them, through a producer and a consumer that stay open until the test
// ends.
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

// registry returns a pedantic registry (it checks every collected metric
// against its descriptor) with c registered.
func registry(t *testing.T, c prometheus.Collector) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	return reg
}

// exposition is the text exposition of every metric of one ring, for the
// labels and values given.
type exposition struct {
	r                            *ring.Ring
	name                         string
	sent, received               int
	sentBytes, receivedBytes     int
	producerSleeps               int
	consumerSleeps               int
	wakeups                      int
	depth, capacity              int
	liveProducers, deadProducers int
	liveConsumers, deadConsumers int
}

// text renders the expositions of several rings, metric by metric, as
// the registry sorts them.
func text(rings ...exposition) string {
	var b strings.Builder
	family := func(name, typ, help string, line func(e exposition) string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		for _, e := range rings {
			b.WriteString(line(e))
		}
	}
	simple := func(name string, v func(e exposition) int) func(e exposition) string {
		return func(e exposition) string { return fmt.Sprintf("%s{%s} %d\n", name, labels(e.r, e.name), v(e)) }
	}
	family("shmring_bytes_received_total", "counter", "Payload bytes delivered to consumers.",
		simple("shmring_bytes_received_total", func(e exposition) int { return e.receivedBytes }))
	family("shmring_bytes_sent_total", "counter", "Payload bytes published by producers.",
		simple("shmring_bytes_sent_total", func(e exposition) int { return e.sentBytes }))
	family("shmring_capacity", "gauge", "Slots in the ring: how many messages it holds.",
		simple("shmring_capacity", func(e exposition) int { return e.capacity }))
	family("shmring_depth", "gauge", "Messages in the ring: sent and not yet received.",
		simple("shmring_depth", func(e exposition) int { return e.depth }))
	family("shmring_holders", "gauge", "Producer and consumer roles held, by processes alive or dead (dead: not yet cleaned up).",
		func(e exposition) string {
			var out string
			for _, h := range []struct {
				role, state string
				n           int
			}{
				{"consumer", "dead", e.deadConsumers}, {"consumer", "live", e.liveConsumers},
				{"producer", "dead", e.deadProducers}, {"producer", "live", e.liveProducers},
			} {
				out += fmt.Sprintf("shmring_holders{%s} %d\n", labels(e.r, e.name, "role", h.role, "state", h.state), h.n)
			}
			return out
		})
	family("shmring_messages_received_total", "counter", "Positions claimed by consumers: messages received.",
		simple("shmring_messages_received_total", func(e exposition) int { return e.received }))
	family("shmring_messages_sent_total", "counter",
		"Positions claimed by producers: messages sent, including any being written and slots skipped for dead producers.",
		simple("shmring_messages_sent_total", func(e exposition) int { return e.sent }))
	family("shmring_reaped_total", "counter", "Role lines of dead holders found and cleaned up.",
		simple("shmring_reaped_total", func(e exposition) int { return 0 }))
	family("shmring_recovered_total", "counter", "Slots skipped because their producer died before committing its message.",
		simple("shmring_recovered_total", func(e exposition) int { return 0 }))
	family("shmring_redelivered_total", "counter", "Messages delivered again because their consumer died while looking at them.",
		simple("shmring_redelivered_total", func(e exposition) int { return 0 }))
	family("shmring_sleeps_total", "counter", "Times a producer (ring full) or a consumer (ring empty) slept on its semaphore.",
		func(e exposition) string {
			return fmt.Sprintf("shmring_sleeps_total{%s} %d\nshmring_sleeps_total{%s} %d\n",
				labels(e.r, e.name, "role", "consumer"), e.consumerSleeps, labels(e.r, e.name, "role", "producer"), e.producerSleeps)
		})
	family("shmring_wakeups_total", "counter", "Semaphore posts made to wake sleeping producers or consumers.",
		simple("shmring_wakeups_total", func(e exposition) int { return e.wakeups }))
	return b.String()
}

// labels renders a private ring's label pairs and the extra ones (name,
// value, name, value...), sorted by name as the registry sorts them.
func labels(r *ring.Ring, name string, extra ...string) string {
	pairs := []string{`key="0x00000000"`, fmt.Sprintf("name=%q", name), fmt.Sprintf(`segment="%d"`, r.SegmentID())}
	for i := 0; i+1 < len(extra); i += 2 {
		pairs = append(pairs, fmt.Sprintf("%s=%q", extra[i], extra[i+1]))
	}
	sort.Strings(pairs)
	return strings.Join(pairs, ",")
}

func TestGather(t *testing.T) {
	a := newRing(t, &ring.Options{Slots: 8, MaxMessage: 64})
	b := newRing(t, &ring.Options{Mode: ring.MPMC, Slots: 16, MaxMessage: 64})
	col := NewCollector(a)
	col.Add("orders", b)
	reg := registry(t, col)
	traffic(t, a, 5, 2)
	traffic(t, b, 9, 9)
	traffic(t, b, 1, 0)

	want := text(
		exposition{r: a, sent: 5, received: 2, sentBytes: 5, receivedBytes: 2,
			depth: 3, capacity: 8, liveProducers: 1, liveConsumers: 1},
		exposition{r: b, name: "orders", sent: 10, received: 9, sentBytes: 10, receivedBytes: 9,
			depth: 1, capacity: 16, liveProducers: 2, liveConsumers: 2},
	)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(col); n != 2*16 {
		t.Fatalf("collected %d metrics, want %d", n, 2*16)
	}
}

// The values, read back from the gathered families.
func TestGatherValues(t *testing.T) {
	r := newRing(t, &ring.Options{Slots: 8, MaxMessage: 64})
	reg := registry(t, NewCollector(r))
	traffic(t, r, 5, 2)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			id := f.GetName()
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "key":
					if l.GetValue() != "0x00000000" {
						t.Errorf("%s: key %q", f.GetName(), l.GetValue())
					}
				case "segment":
					if l.GetValue() != strconv.Itoa(r.SegmentID()) {
						t.Errorf("%s: segment %q, want %d", f.GetName(), l.GetValue(), r.SegmentID())
					}
				case "name":
					if l.GetValue() != "" {
						t.Errorf("%s: name %q", f.GetName(), l.GetValue())
					}
				default:
					id += "/" + l.GetValue()
				}
			}
			switch {
			case m.GetCounter() != nil:
				got[id] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				got[id] = m.GetGauge().GetValue()
			default:
				t.Errorf("%s is neither a counter nor a gauge", id)
			}
		}
	}
	want := map[string]float64{
		"shmring_messages_sent_total": 5, "shmring_messages_received_total": 2,
		"shmring_bytes_sent_total": 5, "shmring_bytes_received_total": 2,
		"shmring_sleeps_total/producer": 0, "shmring_sleeps_total/consumer": 0,
		"shmring_wakeups_total": 0, "shmring_recovered_total": 0, "shmring_redelivered_total": 0, "shmring_reaped_total": 0,
		"shmring_depth": 3, "shmring_capacity": 8,
		"shmring_holders/producer/live": 1, "shmring_holders/producer/dead": 0,
		"shmring_holders/consumer/live": 1, "shmring_holders/consumer/dead": 0,
	}
	for id, v := range want {
		if g, ok := got[id]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", id, g, ok, v)
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("unexpected metric %s", id)
		}
	}
}

func TestLint(t *testing.T) {
	r := newRing(t, &ring.Options{Slots: 8, MaxMessage: 64})
	col := NewCollector()
	col.Add("lint", r)
	traffic(t, r, 1, 1)
	problems, err := testutil.GatherAndLint(registry(t, col))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	if problems, err := testutil.CollectAndLint(col); err != nil || len(problems) > 0 {
		t.Errorf("CollectAndLint: %v %v", problems, err)
	}
}

func TestHTTP(t *testing.T) {
	r := newRing(t, &ring.Options{Slots: 8, MaxMessage: 64})
	col := NewCollector()
	col.Add("orders", r)
	reg := registry(t, col)
	traffic(t, r, 5, 2)

	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("status %s: %s", resp.Status, body)
	}
	seg := r.SegmentID()
	for _, line := range []string{
		fmt.Sprintf(`shmring_messages_sent_total{key="0x00000000",name="orders",segment="%d"} 5`, seg),
		fmt.Sprintf(`shmring_messages_received_total{key="0x00000000",name="orders",segment="%d"} 2`, seg),
		fmt.Sprintf(`shmring_depth{key="0x00000000",name="orders",segment="%d"} 3`, seg),
		fmt.Sprintf(`shmring_holders{key="0x00000000",name="orders",role="producer",segment="%d",state="live"} 1`, seg),
		"# TYPE shmring_messages_sent_total counter",
		"# TYPE shmring_depth gauge",
	} {
		if !strings.Contains(string(body), line+"\n") {
			t.Errorf("the body has no line %q:\n%s", line, body)
		}
	}
}

// A named key is printed as ipcs prints it.
func TestKeyLabel(t *testing.T) {
	key := ipc.Key(0x5e7a0000 | os.Getpid()&0xffff)
	r, err := ring.Create(key, &ring.Options{Slots: 8, MaxMessage: 64, Exclusive: true})
	if err != nil {
		t.Skipf("key %s: %v", key, err)
	}
	trackMu.Lock()
	tracked = append(tracked, "shm "+strconv.Itoa(r.SegmentID()), "sem "+strconv.Itoa(r.SemaphoreID()))
	trackMu.Unlock()
	defer r.Remove()
	want := fmt.Sprintf(`# HELP shmring_capacity Slots in the ring: how many messages it holds.
# TYPE shmring_capacity gauge
shmring_capacity{key="%s",name="",segment="%d"} 8
`, key, r.SegmentID())
	if !strings.HasPrefix(key.String(), "0x5e7a") || len(key.String()) != 10 {
		t.Fatalf("key %s", key)
	}
	if err := testutil.GatherAndCompare(registry(t, NewCollector(r)), strings.NewReader(want), "shmring_capacity"); err != nil {
		t.Fatal(err)
	}
}

// Adding a ring again renames it; a closed ring is dropped.
func TestAddAndClose(t *testing.T) {
	a := newRing(t, &ring.Options{Slots: 8, MaxMessage: 64})
	b := newRing(t, &ring.Options{Slots: 4, MaxMessage: 64})
	col := NewCollector(a, b)
	col.Add("renamed", a)
	reg := registry(t, col)
	want := func(rings ...*ring.Ring) string {
		s := "# HELP shmring_capacity Slots in the ring: how many messages it holds.\n# TYPE shmring_capacity gauge\n"
		for _, r := range rings {
			name := ""
			if r == a {
				name = "renamed"
			}
			s += fmt.Sprintf("shmring_capacity{%s} %d\n", labels(r, name), r.Slots())
		}
		return s
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want(a, b)), "shmring_capacity"); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want(b)), "shmring_capacity"); err != nil {
		t.Fatal(err)
	}
	col.mu.Lock()
	n := len(col.rings)
	col.mu.Unlock()
	if n != 1 {
		t.Fatalf("the collector holds %d rings, want 1", n)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(col); n != 0 {
		t.Fatalf("%d metrics from closed rings", n)
	}
	if fams, err := reg.Gather(); err != nil || len(fams) != 0 {
		t.Fatalf("gathered %v, %v from closed rings", fams, err)
	}
}

// Describe sends every descriptor, even with no ring to report.
func TestDescribe(t *testing.T) {
	ch := make(chan *prometheus.Desc, 100)
	NewCollector().Describe(ch)
	close(ch)
	var got []string
	for d := range ch {
		got = append(got, d.String())
	}
	if len(got) != 12 {
		t.Fatalf("%d descriptors, want 12: %v", len(got), got)
	}
	for _, name := range []string{
		"shmring_messages_sent_total", "shmring_messages_received_total", "shmring_bytes_sent_total",
		"shmring_bytes_received_total", "shmring_sleeps_total", "shmring_wakeups_total", "shmring_recovered_total",
		"shmring_redelivered_total", "shmring_reaped_total", "shmring_depth", "shmring_capacity", "shmring_holders",
	} {
		found := false
		for _, d := range got {
			found = found || strings.Contains(d, `fqName: "`+name+`"`)
		}
		if !found {
			t.Errorf("no descriptor for %s", name)
		}
	}
}

// A producer and a consumer whose process died show as dead holders.
func TestDeadHolders(t *testing.T) {
	r := newRing(t, &ring.Options{Slots: 8, MaxMessage: 64})
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1", helperSegment+"="+strconv.Itoa(r.SegmentID()))
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	want := "# HELP shmring_holders Producer and consumer roles held, by processes alive or dead (dead: not yet cleaned up).\n" +
		"# TYPE shmring_holders gauge\n"
	for _, h := range []struct {
		role, state string
		n           int
	}{{"consumer", "dead", 1}, {"consumer", "live", 0}, {"producer", "dead", 1}, {"producer", "live", 0}} {
		want += fmt.Sprintf("shmring_holders{%s} %d\n", labels(r, "", "role", h.role, "state", h.state), h.n)
	}
	if err := testutil.GatherAndCompare(registry(t, NewCollector(r)), strings.NewReader(want), "shmring_holders"); err != nil {
		t.Fatal(err)
	}
}

// Scrapes and Adds from many goroutines at once.
func TestConcurrent(t *testing.T) {
	rings := make([]*ring.Ring, 4)
	for i := range rings {
		rings[i] = newRing(t, &ring.Options{Mode: ring.MPMC, Slots: 8, MaxMessage: 64})
	}
	col := NewCollector()
	reg := registry(t, col)
	var wg sync.WaitGroup
	for i, r := range rings {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				col.Add(fmt.Sprintf("ring%d.%d", i, j), r)
			}
		}()
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				if _, err := reg.Gather(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := testutil.CollectAndCount(col); n != len(rings)*16 {
		t.Fatalf("collected %d metrics, want %d", n, len(rings)*16)
	}
	want := "# HELP shmring_capacity Slots in the ring: how many messages it holds.\n# TYPE shmring_capacity gauge\n"
	for i, r := range rings {
		want += fmt.Sprintf("shmring_capacity{%s} 8\n", labels(r, fmt.Sprintf("ring%d.19", i)))
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "shmring_capacity"); err != nil {
		t.Fatal(err)
	}
}
