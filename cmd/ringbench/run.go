package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmring/shmring/segment"
)

// How long the parent waits for children before it calls a run hung.
const (
	readyTimeout = 15 * time.Second // from start until every child is attached
	graceTimeout = 20 * time.Second // after the measured interval, for the rest
)

// childPlan is one process of a run.
type childPlan struct {
	spec  childSpec
	files []*os.File // inherited as fd 3, 4, ...
}

// runPlan is what a transport sets up for one run.
type runPlan struct {
	children []childPlan
	// afterSenders, if set, runs once every sending child has reported: the
	// msgq consumers learn the end from markers the parent sends.
	afterSenders func(ctx context.Context) error
	slots        int    // ring slots, reported in the result
	queueBytes   int    // msgq byte limit, reported in the result
	note         string // said with the result
	undo         []*cleanupEntry
	ids          []ipcID // every object made for the run
}

// ipcID names one System V object for the -debug lines.
type ipcID struct {
	Kind string `json:"kind"` // shm, sem or msg, as /proc/sysvipc names them
	ID   int    `json:"id"`
}

// own registers fn, which removes the objects ids, to run when the run
// ends, however it ends.
func (p *runPlan) own(fn func() error, ids ...ipcID) {
	for _, id := range ids {
		debugf("created %s %d", id.Kind, id.ID)
	}
	p.ids = append(p.ids, ids...)
	p.undo = append(p.undo, cleanup.add(func() error {
		err := fn()
		for _, id := range ids {
			debugf("removed %s %d", id.Kind, id.ID)
		}
		return err
	}))
}

// closeFiles closes the parent's copies of the children's files.
func (p *runPlan) closeFiles() {
	for _, c := range p.children {
		for _, f := range c.files {
			f.Close()
		}
	}
}

// release undoes what the plan made, newest first.
func (p *runPlan) release() error {
	p.closeFiles()
	var errs []error
	for i := len(p.undo) - 1; i >= 0; i-- {
		errs = append(errs, p.undo[i].run())
	}
	cleanup.forget(p.undo...)
	p.undo = nil
	return errors.Join(errs...)
}

// setups makes the plan of a run for each transport.
var setups = map[string]func(cfg *config, c benchCase) (*runPlan, error){
	"ring": setupRing,
	"msgq": setupMsgq,
	"pipe": setupPipe,
	"unix": setupUnix,
}

// runCase runs c once: it sets up the transport, starts the children,
// starts them together, collects their reports and removes what it made.
func runCase(ctx context.Context, cfg *config, c benchCase) (res *runResult, err error) {
	setup := setups[c.transport]
	if c.pattern != "" {
		setup = patternSetups[c.transport]
	}
	plan, err := setup(cfg, c)
	if plan != nil {
		defer func() { err = errors.Join(err, plan.release()) }()
	}
	if err != nil {
		return nil, err
	}
	reports, err := runChildren(ctx, cfg, plan)
	if err != nil {
		return nil, err
	}
	return combine(c, plan, reports)
}

// child is a running child process.
type child struct {
	plan   *childPlan
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *limitedBuffer
	done   chan struct{} // closed once the process is reaped
	err    error         // its exit, valid after done
}

func (ch *child) String() string {
	return fmt.Sprintf("%s %s[%d] (pid %d)", ch.plan.spec.Transport, ch.plan.spec.Role, ch.plan.spec.Index, ch.cmd.Process.Pid)
}

// childEvent is a line a child wrote, or its end.
type childEvent struct {
	i    int
	line string
	exit bool
}

// runChildren starts the children of plan, gives them the start signal
// and collects their reports, in the order of plan.children. On failure,
// cancellation or timeout it kills them all; it returns only once every
// child is reaped.
func runChildren(ctx context.Context, cfg *config, plan *runPlan) ([]*childReport, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	events := make(chan childEvent)
	stop := make(chan struct{})
	var kids []*child
	defer func() {
		close(stop)
		for _, k := range kids {
			k.stdin.Close()
			k.cmd.Process.Kill()
		}
		for _, k := range kids {
			<-k.done
		}
	}()
	for i := range plan.children {
		plan.children[i].spec.Orphans = plan.ids
		k, err := startChild(exe, cfg, &plan.children[i], i, events, stop)
		if err != nil {
			return nil, err
		}
		kids = append(kids, k)
	}
	plan.closeFiles()

	reports := make([]*childReport, len(kids))
	ready := 0
	failure := func(i int, what string) error {
		k := kids[i]
		<-k.done
		msg := strings.TrimSpace(k.stderr.String())
		if msg == "" {
			msg = "no message"
		}
		return fmt.Errorf("%v %s: %v: %s", k, what, k.err, msg)
	}
	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	for ready < len(kids) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
			return nil, fmt.Errorf("children not ready after %v", readyTimeout)
		case ev := <-events:
			switch {
			case ev.exit:
				return nil, failure(ev.i, "exited before it was ready")
			case ev.line == "ready":
				ready++
			default:
				return nil, fmt.Errorf("%v: unexpected line %q", kids[ev.i], ev.line)
			}
		}
	}

	// Every child is attached: mark the segments for removal now, so that
	// the kernel frees them with their last detach even if ringbench is
	// killed. (What cannot be marked, semaphore sets and queues, the
	// children remove if ringbench dies: see childMain.)
	for _, id := range plan.ids {
		if id.Kind == "shm" {
			if s, err := segment.OpenID(id.ID); err == nil {
				s.Remove()
			}
		}
	}

	// Every child is attached: start them together.
	t1 := time.Now().Add(50 * time.Millisecond).Add(cfg.warmup)
	t2 := t1.Add(cfg.duration)
	for _, k := range kids {
		if _, err := fmt.Fprintf(k.stdin, "go %d %d\n", t1.UnixNano(), t2.UnixNano()); err != nil {
			return nil, fmt.Errorf("%v: start: %w", k, err)
		}
	}
	debugf("run started")
	timer.Reset(time.Until(t2) + graceTimeout)

	sendersLeft := 0
	for _, k := range kids {
		if k.plan.spec.Role == roleSend {
			sendersLeft++
		}
	}
	after := plan.afterSenders
	afterDone := make(chan error, 1)
	exited := 0
	gone := make([]bool, len(kids))
	for exited < len(kids) || after != nil {
		if after != nil && sendersLeft == 0 {
			f := after
			after = nil
			go func() { afterDone <- f(ctx) }()
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
			var left []string
			for i, k := range kids {
				if !gone[i] {
					left = append(left, k.String())
				}
			}
			return nil, fmt.Errorf("run not finished %v after its end: %s still running", graceTimeout, strings.Join(left, ", "))
		case err := <-afterDone:
			if err != nil {
				return nil, err
			}
			afterDone = nil
		case ev := <-events:
			k := kids[ev.i]
			switch {
			case ev.exit:
				if k.err != nil {
					return nil, failure(ev.i, "failed")
				}
				if reports[ev.i] == nil {
					return nil, fmt.Errorf("%v exited without a report", k)
				}
				gone[ev.i] = true
				exited++
			case strings.HasPrefix(ev.line, "report "):
				var r childReport
				if err := json.Unmarshal([]byte(ev.line[len("report "):]), &r); err != nil {
					return nil, fmt.Errorf("%v: bad report: %w", k, err)
				}
				reports[ev.i] = &r
				if k.plan.spec.Role == roleSend {
					sendersLeft--
				}
			default:
				return nil, fmt.Errorf("%v: unexpected line %q", k, ev.line)
			}
		}
	}
	if afterDone != nil && plan.afterSenders != nil {
		if err := <-afterDone; err != nil {
			return nil, err
		}
	}
	return reports, nil
}

// startChild starts the i-th child of a run; its lines and its end arrive
// on events until stop is closed.
func startChild(exe string, cfg *config, cp *childPlan, i int, events chan<- childEvent, stop <-chan struct{}) (*child, error) {
	cp.spec.Parent = os.Getpid()
	spec, err := json.Marshal(&cp.spec)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec), fmt.Sprintf("GOMAXPROCS=%d", cfg.gomaxprocs))
	cmd.ExtraFiles = cp.files
	// The kernel sends the child SIGTERM when ringbench dies (prctl
	// PR_SET_PDEATHSIG, set between fork and exec): the child then removes
	// the run's objects and exits. The child stays in ringbench's process
	// group, so a terminal's Ctrl-C reaches it too; it ignores SIGINT and
	// leaves the decision to the parent, which kills it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	k := &child{plan: cp, cmd: cmd, stderr: &limitedBuffer{max: 8 << 10}, done: make(chan struct{})}
	cmd.Stderr = k.stderr
	if k.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	// The kill entry is registered before the start, so that a signal
	// handler that gives up on this run still finds the process.
	var mu sync.Mutex
	started := false
	kill := cleanup.add(func() error {
		mu.Lock()
		defer mu.Unlock()
		if started {
			cmd.Process.Kill()
		}
		return nil
	})
	mu.Lock()
	err = cmd.Start()
	started = err == nil
	mu.Unlock()
	if err != nil {
		kill.run()
		cleanup.forget(kill)
		return nil, fmt.Errorf("start %s %s[%d]: %w", cp.spec.Transport, cp.spec.Role, cp.spec.Index, err)
	}
	debugf("child pid %d: %s %s %d", cmd.Process.Pid, cp.spec.Transport, cp.spec.Role, cp.spec.Index)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			select {
			case events <- childEvent{i: i, line: sc.Text()}:
			case <-stop:
			}
		}
		io.Copy(io.Discard, stdout) // a line too long for the scanner
		k.err = cmd.Wait()
		kill.run()
		cleanup.forget(kill)
		close(k.done)
		select {
		case events <- childEvent{i: i, exit: true}:
		case <-stop:
		}
	}()
	return k, nil
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := min(len(p), l.max-len(l.b)); n > 0 {
		l.b = append(l.b, p[:n]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

// cpuList returns the CPUs ringbench may run on, for -pin.
func cpuList() []int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return []int{0}
	}
	var cpus []int
	for i := 0; i < len(set)*64 && len(cpus) < set.Count(); i++ {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	if len(cpus) == 0 {
		return []int{0}
	}
	return cpus
}

// pinChildren gives child k the k-th allowed CPU, modulo their number, or
// leaves them unpinned.
func pinChildren(cfg *config, children []childPlan) {
	cpus := cpuList()
	for k := range children {
		children[k].spec.CPU = -1
		if cfg.pin {
			children[k].spec.CPU = cpus[k%len(cpus)]
		}
	}
}
