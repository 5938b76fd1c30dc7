package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/shmring/shmring/bridge"
	"github.com/shmring/shmring/internal/ipctest"
	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/ring"
)

// A chain is the whole way a message goes: a producer process, ring A, a
// ringbridge process (ring -> NATS), a NATS server process, a ringbridge
// process (NATS -> ring), ring B and a consumer process.
type chain struct {
	t          *testing.T
	jetStream  bool
	syncAlways bool // the server syncs every write (set before startServer)
	a, b       *ring.Ring
	port       int
	store      string
	server     *exec.Cmd
	out, in    *exec.Cmd
	outMetrics string
	inMetrics  string
	producer   *exec.Cmd
	phases     *bufio.Scanner
	consumer   *exec.Cmd
	result     *strings.Builder
}

// geometry is the rings' shape and the messages' sizes.
type geometry struct {
	slotsA, slotsB int
	size           int  // largest message (every message, with fixed)
	fixed          bool // every message is size bytes
	types          int
}

func newChain(t *testing.T, jetStream bool, g geometry) *chain {
	return newChainSync(t, jetStream, false, g)
}

// newChainSync is newChain with a server that syncs every write if
// syncAlways.
func newChainSync(t *testing.T, jetStream, syncAlways bool, g geometry) *chain {
	c := &chain{t: t, jetStream: jetStream, syncAlways: syncAlways, port: freePort(t), store: t.TempDir()}
	c.a = newRing(t, g.slotsA, g.size)
	c.b = newRing(t, g.slotsB, g.size)
	c.outMetrics = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	c.inMetrics = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	c.startServer()
	return c
}

// newRing creates a private ring for the test and removes it afterwards.
func newRing(t *testing.T, slots, size int) *ring.Ring {
	r, err := ring.Create(ipc.Private, &ring.Options{Mode: ring.MPMC, Slots: slots, MaxMessage: size, MaxProducers: 4, MaxConsumers: 4})
	if err != nil {
		t.Fatal(err)
	}
	ipctest.Track(t, ipctest.Shm, r.SegmentID())
	ipctest.Track(t, ipctest.Sem, r.SemaphoreID())
	t.Cleanup(func() {
		if err := r.Remove(); err != nil {
			t.Errorf("remove ring: %v", err)
		}
	})
	return r
}

// freePort is a TCP port nobody listens on at the moment.
func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (c *chain) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", c.port) }

// start starts cmd and makes sure it is gone when the test ends.
func (c *chain) start(cmd *exec.Cmd) *exec.Cmd {
	c.t.Helper()
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd
}

// startServer starts the NATS server process on c.port with its JetStream
// store in c.store, and waits until it takes connections.
func (c *chain) startServer() {
	c.t.Helper()
	sync := "0"
	if c.syncAlways {
		sync = "1"
	}
	c.server = c.start(ipctest.Command(c.t, "nats-server",
		"NATS_PORT="+strconv.Itoa(c.port), "NATS_STORE="+c.store, "NATS_SYNC="+sync))
	c.waitFor("the NATS server", func() bool {
		nc, err := nats.Connect(c.url(), nats.Timeout(time.Second))
		if err != nil {
			return false
		}
		nc.Close()
		return true
	})
}

// restartServer stops the server cleanly and starts it again on the same
// port and store.
func (c *chain) restartServer() {
	c.t.Helper()
	stop(c.t, c.server)
	c.startServer()
}

// killServer kills the server with SIGKILL and starts it again on the
// same port and store.
func (c *chain) killServer() {
	c.t.Helper()
	kill(c.server)
	c.startServer()
}

// stop ends cmd with SIGTERM and waits for it, failing the test on an
// unclean exit.
func stop(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("%s: %v", cmd.Env[len(cmd.Env)-1], err)
	}
}

// kill ends cmd with SIGKILL.
func kill(cmd *exec.Cmd) {
	cmd.Process.Kill()
	cmd.Wait()
}

func (c *chain) bridgeArgs(metrics string, extra ...string) []string {
	args := []string{"-q", "-nats", c.url(), "-metrics", metrics, "-out-prefix", "chain", "-in-subject", "chain.>"}
	if c.jetStream {
		args = append(args, "-jetstream")
	}
	return append(args, extra...)
}

// startBridge runs the ringbridge command as a process of its own.
func (c *chain) startBridge(args []string) *exec.Cmd {
	js, _ := json.Marshal(args)
	return c.start(ipctest.Command(c.t, "ringbridge", "RINGBRIDGE_ARGS="+string(js)))
}

func (c *chain) startOut() {
	c.out = c.startBridge(c.bridgeArgs(c.outMetrics, "-out-ring", "id:"+strconv.Itoa(c.a.SegmentID())))
	c.waitFor("the outbound bridge", func() bool { _, ok := metrics(c.outMetrics); return ok })
}

func (c *chain) startIn() {
	c.in = c.startBridge(c.bridgeArgs(c.inMetrics, "-in-ring", "id:"+strconv.Itoa(c.b.SegmentID()), "-durable", "chain"))
	c.waitFor("the inbound bridge", func() bool { s, ok := metrics(c.inMetrics); return ok && s.Connected })
	if !c.jetStream {
		c.waitSubscribed()
	}
}

// waitSubscribed publishes probes without a type until the inbound bridge
// has refused one: then its core subscription is in place.
func (c *chain) waitSubscribed() {
	nc, err := nats.Connect(c.url())
	if err != nil {
		c.t.Fatal(err)
	}
	defer nc.Close()
	s0, _ := metrics(c.inMetrics)
	c.waitFor("the inbound subscription", func() bool {
		nc.Publish("chain.probe", nil)
		nc.Flush()
		s, _ := metrics(c.inMetrics)
		return s.InRefused > s0.InRefused
	})
}

func (c *chain) env(g geometry) []string {
	fixed := "0"
	if g.fixed {
		fixed = "1"
	}
	return []string{"TYPES=" + strconv.Itoa(g.types), "SIZE=" + strconv.Itoa(g.size), "FIXED=" + fixed}
}

// startProducer sends phases of messages into ring A.
func (c *chain) startProducer(g geometry, phases ...int) {
	var ps []string
	for _, p := range phases {
		ps = append(ps, strconv.Itoa(p))
	}
	cmd := ipctest.Command(c.t, "producer", append(c.env(g),
		"RING_ID="+strconv.Itoa(c.a.SegmentID()), "PRODUCER_PHASES="+strings.Join(ps, ","))...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	c.producer = c.start(cmd)
	c.phases = bufio.NewScanner(out)
}

// nextPhase waits until the producer has sent its phase, then lets it go on.
func (c *chain) nextPhase() {
	c.t.Helper()
	if !c.phases.Scan() {
		c.t.Fatal("producer ended before its phase")
	}
	c.producer.Process.Signal(syscall.SIGUSR1)
}

// startConsumer receives from ring B until expect distinct messages came.
func (c *chain) startConsumer(g geometry, expect int, slow time.Duration) {
	c.result = &strings.Builder{}
	cmd := ipctest.Command(c.t, "consumer", append(c.env(g),
		"RING_ID="+strconv.Itoa(c.b.SegmentID()), "EXPECT="+strconv.Itoa(expect),
		"ORIGIN_RING="+c.a.Header().InstanceID.String(), "SLOW="+slow.String())...)
	cmd.Stdout = c.result
	c.consumer = c.start(cmd)
}

// consumerResult waits for the consumer to end and reads what it found.
func (c *chain) consumerResult() consumerResult {
	c.t.Helper()
	done := make(chan error, 1)
	go func() { done <- c.consumer.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			c.t.Fatalf("consumer: %v", err)
		}
	case <-time.After(4 * ipctest.Deadline):
		c.consumer.Process.Signal(syscall.SIGTERM)
		<-done
		c.t.Errorf("the consumer did not get every message")
	}
	var r consumerResult
	if err := json.Unmarshal([]byte(c.result.String()), &r); err != nil {
		c.t.Fatalf("consumer result %q: %v", c.result.String(), err)
	}
	return r
}

// waitFor polls cond until it holds, failing the test if it does not
// within a generous deadline.
func (c *chain) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(4 * ipctest.Deadline)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("waited too long for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitSent waits until ring B has had n messages sent into it.
func (c *chain) waitSent(n int) {
	c.t.Helper()
	c.waitFor(fmt.Sprintf("%d messages in ring B", n), func() bool { return c.b.Stats().Sent >= uint64(n) })
}

// metrics reads a bridge's counters from its endpoint.
func metrics(addr string) (bridge.Snapshot, bool) {
	var s bridge.Snapshot
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get("http://" + addr + "/metrics.json")
	if err != nil {
		return s, false
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s) == nil
}

// rss is the resident set size of process pid, in bytes.
func rss(pid int) (int64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}
