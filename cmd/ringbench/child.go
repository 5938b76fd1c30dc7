package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/metrics"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmring/shmring/msgq"
	"github.com/shmring/shmring/segment"
	"github.com/shmring/shmring/semaphore"
)

// childEnv is the environment variable that makes ringbench a child
// process. It holds the child's childSpec as JSON.
const childEnv = "RINGBENCH_CHILD"

// The roles of children: a throughput run has senders and receivers, a
// ping-pong run one initiator (ping) and one responder (pong). The roles of
// the patterns are in pattern.go.
const (
	roleSend = "send"
	roleRecv = "recv"
	rolePing = "ping"
	rolePong = "pong"
)

// childSpec tells a child what to do. The parent made every IPC object;
// the spec names them by id, and pipes and sockets are inherited from fd 3
// on.
type childSpec struct {
	Parent    int           `json:"parent"` // the parent's pid
	Transport string        `json:"transport"`
	Pattern   string        `json:"pattern,omitempty"` // chat or server (see pattern.go); empty for the modes
	Clients   int           `json:"clients,omitempty"` // the server pattern's clients
	Role      string        `json:"role"`
	Index     int           `json:"index"` // among the children of the same role
	Size      int           `json:"size"`
	Producers int           `json:"producers"`
	Consumers int           `json:"consumers"`
	Wait      string        `json:"wait,omitempty"` // ring wait strategy
	Spin      time.Duration `json:"spin,omitempty"` // ring adaptive spin
	Batch     int           `json:"batch,omitempty"`
	ZeroCopy  bool          `json:"zerocopy,omitempty"`
	Spanning  bool          `json:"spanning,omitempty"` // ring: messages span slots (-slot)
	Stats     bool          `json:"stats,omitempty"`    // report the ring's semaphore operations
	Rings     []int         `json:"rings,omitempty"`    // segment ids: the ring, or ping→pong and pong→ping
	Queue     int           `json:"queue,omitempty"`    // message queue id
	CPU       int           `json:"cpu"`                // CPU to bind to, or -1
	Orphans   []ipcID       `json:"orphans,omitempty"`  // the run's objects, removed if the parent dies
}

// childReport is what a child tells the parent at the end, as JSON.
type childReport struct {
	Total    uint64       `json:"total"`     // messages sent or received in the whole run
	Counted  uint64       `json:"counted"`   // of those, in the measured interval
	WindowNs int64        `json:"window_ns"` // length of the measured interval by this child's clock
	CPUNs    int64        `json:"cpu_ns"`    // user+sys CPU time of this process in the interval
	Allocs   uint64       `json:"allocs"`    // heap allocations in the interval
	SemOps   uint64       `json:"sem_ops"`   // ring semaphore operations in the interval (with Stats)
	RTT      *rttSummary  `json:"rtt,omitempty"`
	Hist     []histBucket `json:"hist,omitempty"` // a server client's round-trip histogram, merged by the parent
}

// childRuns holds the child side of each transport.
var childRuns = map[string]func(s *childSpec, ses *session) (*childReport, error){
	"ring": ringChild,
	"msgq": msgqChild,
	"pipe": pipeChild,
	"unix": unixChild,
}

// childMain runs a child process and returns its exit status. Errors go to
// standard error, where the parent collects them; the report goes to
// standard output. If the parent has died by the time the child ends,
// however it ends, the child removes the run's objects.
func childMain(specJSON string) int {
	var s childSpec
	if err := json.Unmarshal([]byte(specJSON), &s); err != nil {
		fmt.Fprintf(os.Stderr, "bad %s: %v\n", childEnv, err)
		return 2
	}
	// With the parent gone, writes to its pipes fail: they must not kill
	// the child (SIGPIPE) before it has cleaned up.
	signal.Ignore(syscall.SIGPIPE)
	code := childRun(&s)
	if os.Getppid() != s.Parent {
		removeOrphans(s.Orphans)
	}
	return code
}

// childRun is childMain once the spec is read.
func childRun(s *childSpec) int {
	// If ringbench dies, the kernel sends SIGTERM (see startChild): no one
	// else will remove the run's objects, so the first child to learn it
	// does. The signal comes when the thread that started the child exits,
	// which in a process being killed can be a moment before the last of
	// its threads: the child is then a child of a sibling thread, and its
	// parent pid has not changed yet. So it waits a little for the whole
	// parent to go. A SIGTERM from anyone else just ends the child.
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	go func() {
		<-term
		for deadline := time.Now().Add(2 * time.Second); os.Getppid() == s.Parent && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		if os.Getppid() != s.Parent {
			removeOrphans(s.Orphans)
		}
		os.Exit(1)
	}()
	if os.Getppid() != s.Parent {
		return 1 // the parent died before the kernel armed the death signal
	}
	// A terminal's Ctrl-C reaches the whole process group; the parent
	// decides, and kills the children itself.
	signal.Ignore(os.Interrupt)
	run, ok := childRuns[s.Transport]
	if s.Pattern != "" {
		run, ok = patternRuns[s.Transport]
	}
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown transport %q\n", s.Transport)
		return 2
	}
	if s.CPU >= 0 {
		if err := pin(s.CPU); err != nil {
			fmt.Fprintf(os.Stderr, "pin to CPU %d: %v\n", s.CPU, err)
			return 1
		}
	}
	ses := &session{in: bufio.NewReader(os.Stdin), out: os.Stdout}
	rep, err := run(s, ses)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%v\n", err)
		return 1
	}
	b, err := json.Marshal(rep)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stdout, "report %s\n", b)
	return 0
}

// pin keeps the calling goroutine on its thread and binds every thread of
// the process to cpu. Threads the runtime starts later inherit the binding
// from the thread that starts them.
func pin(cpu int) error {
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
			return err
		}
	}
	return nil
}

// session is a child's line to the parent.
type session struct {
	in  *bufio.Reader
	out io.Writer
}

// start tells the parent that this child is attached and ready, waits for
// the start signal, and returns the meter of the run. The start signal
// carries the wall-clock times at which the warm-up and the measured
// interval end, the same for every child of the run.
func (ses *session) start() (*meter, error) {
	if _, err := fmt.Fprintln(ses.out, "ready"); err != nil {
		return nil, err
	}
	line, err := ses.in.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("waiting for the start: %w", err)
	}
	var t1, t2 int64
	if _, err := fmt.Sscanf(line, "go %d %d", &t1, &t2); err != nil {
		return nil, fmt.Errorf("bad start line %q: %w", line, err)
	}
	m := &meter{allocs: []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}}
	m.allocCount() // the first read allocates; keep that out of the interval
	now := time.Now()
	m.base = now
	m.warmEnd = time.Duration(t1 - now.UnixNano())
	m.end = time.Duration(t2 - now.UnixNano())
	return m, nil
}

// Phases of a run, as a child sees it.
const (
	phaseWarm = iota
	phaseMeasure
	phaseDone
)

// meter tells a child's loop when the warm-up and the measured interval end
// and takes the child's measurements at both ends: message count, time, CPU
// time, allocations and, for a ring side with Stats, semaphore operations.
// Its methods allocate nothing.
type meter struct {
	base         time.Time     // the start, on the monotonic clock
	warmEnd, end time.Duration // since base
	phase        int
	semOps       func() uint64 // the ring's semaphore operations so far; nil if not reported
	allocs       []metrics.Sample

	n0      uint64
	at0     time.Duration
	cpu0    int64
	allocs0 uint64
	sem0    uint64
	rep     childReport
}

// now returns the time since the start.
func (m *meter) now() time.Duration { return time.Since(m.base) }

// measuring reports whether the measured interval is on.
func (m *meter) measuring() bool { return m.phase == phaseMeasure }

// tick looks at the clock after n messages, opening or closing the measured
// interval when its time has come. It returns true once the interval is
// over: a sender stops then.
func (m *meter) tick(n uint64) bool {
	if m.phase == phaseDone {
		return true
	}
	return m.tickAt(m.now(), n)
}

// tickAt is tick with the time already read.
func (m *meter) tickAt(now time.Duration, n uint64) bool {
	switch m.phase {
	case phaseWarm:
		if now >= m.warmEnd {
			m.n0, m.at0 = n, now
			m.cpu0, m.allocs0 = cpuTime(), m.allocCount()
			if m.semOps != nil {
				m.sem0 = m.semOps()
			}
			m.phase = phaseMeasure
		}
		return false
	case phaseMeasure:
		if now >= m.end {
			m.close(now, n)
		}
		return m.phase == phaseDone
	}
	return true
}

// stop closes the measured interval after n messages if it is still open:
// the sender has stopped, and the rest came in before this receiver looked
// at the clock again.
func (m *meter) stop(n uint64) {
	if m.phase == phaseMeasure {
		m.close(m.now(), n)
	}
	m.phase = phaseDone
}

func (m *meter) close(now time.Duration, n uint64) {
	m.rep.Counted = n - m.n0
	m.rep.WindowNs = int64(now - m.at0)
	m.rep.CPUNs = cpuTime() - m.cpu0
	m.rep.Allocs = m.allocCount() - m.allocs0
	if m.semOps != nil {
		m.rep.SemOps = m.semOps() - m.sem0
	}
	m.phase = phaseDone
}

// report returns the child's report, with total messages handled.
func (m *meter) report(total uint64) *childReport {
	r := m.rep
	r.Total = total
	return &r
}

// allocCount returns the heap allocations of this process so far.
func (m *meter) allocCount() uint64 {
	metrics.Read(m.allocs)
	if m.allocs[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return m.allocs[0].Value.Uint64()
}

// cpuTime returns the user and system CPU time of this process so far, in
// nanoseconds.
func cpuTime() int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// tickEvery is how many messages a ring or msgq throughput side handles
// between looks at the clock; a ring side also looks whenever it is about
// to wait. Pipe, socket and ping-pong sides look after every message.
const tickEvery = 64

// removeOrphans removes the objects of a run whose parent has died. Other
// children may remove them at the same time; an object already gone is
// fine.
func removeOrphans(ids []ipcID) {
	for _, id := range ids {
		switch id.Kind {
		case "shm":
			if s, err := segment.OpenID(id.ID); err == nil {
				s.Remove()
			}
		case "sem":
			if s, err := semaphore.OpenID(id.ID); err == nil {
				s.Remove()
			}
		case "msg":
			if q, err := msgq.OpenID(id.ID); err == nil {
				q.Remove()
			}
		}
	}
}
