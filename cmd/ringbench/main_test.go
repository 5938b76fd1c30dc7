package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmring/shmring/internal/ipctest"
	"github.com/shmring/shmring/msgq"
	"github.com/shmring/shmring/segment"
	"github.com/shmring/shmring/semaphore"
)

// asMainEnv makes the test binary run as ringbench itself, with the
// arguments it was given, so that tests run the real command (whose
// children are the test binary again, selected by childEnv).
const asMainEnv = "RINGBENCH_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" || os.Getenv(asMainEnv) != "" {
		main()
	}
	ipctest.Main(m, nil)
}

// command returns a command that runs ringbench with args.
func command(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), asMainEnv+"=1")
	return cmd
}

// debugInfo is what the -debug lines of a ringbench run say it made.
type debugInfo struct {
	objects  []ipcID
	children []int
	started  bool
}

// parse reads one -debug line.
func (d *debugInfo) parse(line string) {
	rest, ok := strings.CutPrefix(line, "ringbench: debug: ")
	if !ok {
		return
	}
	var kind string
	var id int
	switch {
	case rest == "run started":
		d.started = true
	case strings.HasPrefix(rest, "created "):
		if _, err := fmt.Sscanf(rest, "created %s %d", &kind, &id); err == nil {
			d.objects = append(d.objects, ipcID{kind, id})
		}
	case strings.HasPrefix(rest, "child pid "):
		if _, err := fmt.Sscanf(rest, "child pid %d", &id); err == nil {
			d.children = append(d.children, id)
		}
	}
}

// track hands the objects to ipctest, which fails the test binary if any
// outlives the tests.
func (d *debugInfo) track(t *testing.T) {
	for _, o := range d.objects {
		ipctest.Track(t, ipctest.Kind(o.Kind), o.ID)
	}
}

// checkGone fails t if an object or child process of the run remains.
func (d *debugInfo) checkGone(t *testing.T, ringbenchPID int) {
	t.Helper()
	// The children first: they remove what a killed ringbench left, and
	// marked segments go with their last detach.
	exe, _ := os.Executable()
	for _, pid := range d.children {
		deadline := time.Now().Add(5 * time.Second)
		for {
			cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			name, _, _ := bytes.Cut(cmdline, []byte{0})
			if err != nil || len(cmdline) == 0 || filepath.Base(string(name)) != filepath.Base(exe) {
				break // gone (or the pid was reused by something else)
			}
			if time.Now().After(deadline) {
				t.Errorf("child process %d still runs", pid)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// A child whose main thread has exited can still have threads on the
	// way out, each holding the address space, so a segment removed by the
	// children may still be attached for a moment: it goes with the last
	// detach. One never removed stays.
	for _, o := range d.objects {
		deadline := time.Now().Add(5 * time.Second)
		for ipctest.Exists(ipctest.Kind(o.Kind), o.ID) {
			if time.Now().After(deadline) {
				t.Errorf("%s %d still exists (children %v)", o.Kind, o.ID, d.children)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// Segments are listed with their creator: none may be ringbench's.
	if b, err := os.ReadFile("/proc/sysvipc/shm"); err == nil {
		for _, l := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(l)
			if len(f) > 4 && f[4] == strconv.Itoa(ringbenchPID) {
				t.Errorf("segment %s created by ringbench (pid %d) still exists", f[1], ringbenchPID)
			}
		}
	}
}

func TestFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-transports", "ring,tcp"}, `unknown transport "tcp"`},
		{[]string{"-transports", ""}, "no transport"},
		{[]string{"-sizes", "64,abc"}, `"abc" is not a number`},
		{[]string{"-sizes", "4"}, "below the minimum of 8"},
		{[]string{"-sizes", "8193", "-transports", "msgq"}, "above msgmax"},
		{[]string{"-sizes", "70000", "-transports", "unix"}, "largest unix datagram"},
		{[]string{"-sizes", "2000000", "-transports", "ring"}, "above ringbench's maximum"},
		{[]string{"-slots", "1000"}, "power of two"},
		{[]string{"-slots", "1"}, "power of two"},
		{[]string{"-duration", "0s"}, "-duration must be positive"},
		{[]string{"-duration", "-1s"}, "-duration must be positive"},
		{[]string{"-warmup", "-1s"}, "-warmup must not be negative"},
		{[]string{"-count", "0"}, "-count must be at least 1"},
		{[]string{"-mode", "fast"}, `unknown mode "fast"`},
		{[]string{"-wait", "sleep"}, `unknown wait strategy "sleep"`},
		{[]string{"-producers", "0"}, "at least 1"},
		{[]string{"-producers", "2", "-mode", "throughput", "-transports", "ring,pipe"}, "pipe connects one writer to one reader"},
		{[]string{"-consumers", "2", "-mode", "throughput", "-transports", "unix"}, "unix connects one writer to one reader"},
		{[]string{"-producers", "2", "-consumers", "2"}, "add -mode throughput"},
		{[]string{"-batch", "0"}, "-batch must be"},
		{[]string{"-batch", "8", "-zerocopy"}, "cannot be combined"},
		{[]string{"-json", "-md"}, "cannot be combined"},
		{[]string{"-gomaxprocs", "0"}, "-gomaxprocs"},
		{[]string{"-nosuchflag"}, "not defined"},
		{[]string{"extra"}, "unexpected argument"},
	} {
		_, err := parseFlags(tc.args, io.Discard)
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("%q: got %v, want a usage error", tc.args, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %q, want it to say %q", tc.args, err, tc.want)
		}
	}
	if _, err := parseFlags(nil, io.Discard); err != nil {
		t.Errorf("no flags: %v", err)
	}
}

func TestFlagErrorExitStatus(t *testing.T) {
	for _, args := range [][]string{
		{"-slots", "1000"},
		{"-sizes", "16384", "-transports", "msgq"},
		{"-transports", "carrier-pigeon"},
	} {
		var stderr bytes.Buffer
		cmd := command(t, args...)
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%q: got %v, want exit status 2", args, err)
		}
		if !strings.HasPrefix(stderr.String(), "ringbench: ") {
			t.Errorf("%q: stderr %q does not explain", args, stderr.String())
		}
	}
}

// runJSON runs ringbench with -json -debug and args for a moment and returns
// its results.
func runJSON(t *testing.T, args ...string) []map[string]any {
	t.Helper()
	args = append([]string{"-json", "-debug", "-duration", "100ms", "-warmup", "50ms", "-count", "1"}, args...)
	var stdout, stderr bytes.Buffer
	for attempt := 1; ; attempt++ {
		cmd := command(t, args...)
		stdout.Reset()
		stderr.Reset()
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var d debugInfo
		for _, l := range strings.Split(stderr.String(), "\n") {
			d.parse(l)
		}
		d.track(t)
		d.checkGone(t, cmd.Process.Pid)
		if err == nil {
			break
		}
		if attempt < 3 && tooBusy(stderr.String()) {
			t.Logf("attempt %d: %s", attempt, stderr.String())
			continue
		}
		t.Fatalf("ringbench %q: %v\n%s", args, err, stderr.String())
	}
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		out = append(out, r)
	}
	return out
}

// tooBusy says whether a failed run says the machine was too busy for its
// tiny measured interval: the tests use 100 ms, and a loaded machine can
// keep a process off the CPUs that long. Such a run is tried again.
func tooBusy(stderr string) bool {
	return strings.Contains(stderr, "no message in the measured interval")
}

// checkResult checks the fields every result must have.
func checkResult(t *testing.T, r map[string]any) {
	t.Helper()
	for _, k := range []string{"transport", "mode", "size", "producers", "consumers", "wait",
		"msgs_per_sec", "mb_per_sec", "cpu_ns_per_msg", "allocs_per_msg", "batch", "zerocopy", "count", "spread_pct"} {
		if _, ok := r[k]; !ok {
			t.Errorf("%v: no %s", r, k)
		}
	}
	for _, k := range []string{"msgs_per_sec", "mb_per_sec", "cpu_ns_per_msg"} {
		if v, _ := r[k].(float64); v <= 0 {
			t.Errorf("%v: %s = %v, want > 0", r, k, r[k])
		}
	}
	if r["mode"] == modePingPong {
		for _, k := range []string{"rtt_p50_ns", "rtt_p99_ns", "rtt_p999_ns", "rtt_max_ns", "round_trips_per_sec"} {
			if v, _ := r[k].(float64); v <= 0 {
				t.Errorf("%v: %s = %v, want > 0", r, k, r[k])
			}
		}
		if r["rtt_p50_ns"].(float64) > r["rtt_p99_ns"].(float64) || r["rtt_p99_ns"].(float64) > r["rtt_max_ns"].(float64) {
			t.Errorf("%v: percentiles out of order", r)
		}
	} else if _, ok := r["rtt_p50_ns"]; ok {
		t.Errorf("%v: a throughput result with round-trip times", r)
	}
	_, sem := r["sem_ops_per_msg"]
	if sem != (r["transport"] == "ring") {
		t.Errorf("%v: sem_ops_per_msg present: %v", r, sem)
	}
}

func TestTransports(t *testing.T) {
	for _, tr := range allTransports {
		t.Run(tr, func(t *testing.T) {
			res := runJSON(t, "-transports", tr, "-sizes", "8,100")
			if len(res) != 4 {
				t.Fatalf("got %d results, want 4", len(res))
			}
			modes := map[string]int{}
			for _, r := range res {
				checkResult(t, r)
				if r["transport"] != tr {
					t.Errorf("%v: wrong transport", r)
				}
				modes[r["mode"].(string)]++
			}
			if modes[modeThroughput] != 2 || modes[modePingPong] != 2 {
				t.Errorf("modes: %v", modes)
			}
		})
	}
}

func TestRingVariants(t *testing.T) {
	for _, args := range [][]string{
		{"-wait", "spin"},
		{"-wait", "block", "-sizes", "1024"},
		{"-batch", "16", "-mode", "throughput", "-slots", "64"},
		{"-zerocopy", "-sizes", "4096"},
		{"-pin"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			res := runJSON(t, append([]string{"-transports", "ring,msgq"}, args...)...)
			for _, r := range res {
				checkResult(t, r)
				if r["transport"] == "msgq" {
					if _, ok := r["vs_msgq"]; !ok {
						t.Errorf("%v: no vs_msgq", r)
					}
					continue
				}
				if v, _ := r["vs_msgq"].(float64); v <= 0 {
					t.Errorf("%v: vs_msgq = %v", r, r["vs_msgq"])
				}
			}
		})
	}
}

func TestManyToMany(t *testing.T) {
	res := runJSON(t, "-transports", "ring,msgq", "-mode", "throughput", "-producers", "3", "-consumers", "2")
	if len(res) != 2 {
		t.Fatalf("got %d results, want 2", len(res))
	}
	for _, r := range res {
		checkResult(t, r)
		if r["producers"].(float64) != 3 || r["consumers"].(float64) != 2 {
			t.Errorf("%v: wrong sides", r)
		}
	}
}

func TestTable(t *testing.T) {
	for _, format := range []string{"", "-md"} {
		args := []string{"-duration", "100ms", "-warmup", "50ms", "-count", "2", "-sizes", "64"}
		if format != "" {
			args = append(args, format)
		}
		var stdout, stderr bytes.Buffer
		for attempt := 1; ; attempt++ {
			cmd := command(t, args...)
			stdout.Reset()
			stderr.Reset()
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if err == nil {
				break
			}
			if attempt < 3 && tooBusy(stderr.String()) {
				t.Logf("attempt %d: %s", attempt, stderr.String())
				continue
			}
			t.Fatalf("%v\n%s", err, stderr.String())
		}
		out := stdout.String()
		for _, want := range []string{"throughput", "ping-pong", "ring", "msgq", "vs msgq", "p99.9"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s output does not say %q:\n%s", format, want, out)
			}
		}
		if format == "-md" && !strings.Contains(out, "|---|") {
			t.Errorf("no markdown table:\n%s", out)
		}
		if stderr.Len() > 0 {
			t.Errorf("stderr not empty: %q", stderr.String())
		}
	}
}

// TestSignalCleanup stops ringbench mid-run and checks that it ends its
// children and removes every IPC object it made.
func TestSignalCleanup(t *testing.T) {
	for _, tc := range []struct {
		sig  syscall.Signal
		args []string
	}{
		{syscall.SIGINT, []string{"-transports", "ring", "-mode", "throughput"}},
		{syscall.SIGINT, []string{"-transports", "ring", "-mode", "pingpong", "-wait", "spin"}},
		{syscall.SIGTERM, []string{"-transports", "msgq", "-mode", "throughput", "-producers", "2", "-consumers", "2"}},
		{syscall.SIGTERM, []string{"-transports", "pipe", "-mode", "pingpong"}},
	} {
		t.Run(fmt.Sprintf("%v %s", tc.sig, strings.Join(tc.args, " ")), func(t *testing.T) {
			t.Parallel()
			cmd, d, lines, rest := startRun(t, tc.args...)
			time.Sleep(100 * time.Millisecond)
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			for l := range lines {
				d.parse(l)
				rest.WriteString(l + "\n")
			}
			err := cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 128+int(tc.sig) {
				t.Errorf("exit: %v, want status %d\n%s", err, 128+int(tc.sig), rest.String())
			}
			if !strings.Contains(rest.String(), "stopped by") {
				t.Errorf("stderr does not say it was stopped:\n%s", rest.String())
			}
			d.checkGone(t, cmd.Process.Pid)
		})
	}
}

// startRun starts a long ringbench run with args and returns once its first
// run has started, with what it said so far and the channel of the rest of
// its standard error.
func startRun(t *testing.T, args ...string) (*exec.Cmd, *debugInfo, <-chan string, *bytes.Buffer) {
	t.Helper()
	cmd := command(t, append([]string{"-debug", "-duration", "30s", "-count", "1"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := new(debugInfo)
	rest := new(bytes.Buffer)
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(ipctest.Deadline)
	for !d.started {
		select {
		case l, ok := <-lines:
			if !ok {
				cmd.Wait()
				t.Fatalf("ringbench ended before its run started: %s", rest.String())
			}
			d.parse(l)
			rest.WriteString(l + "\n")
		case <-timeout:
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("run did not start")
		}
	}
	d.track(t)
	if len(d.children) == 0 {
		t.Fatal("no child processes reported")
	}
	return cmd, d, lines, rest
}

// TestParentDeath kills ringbench outright, several times over, at
// different points of its run: its children must die with it, and nothing
// of the run may be left, since the segments are marked for removal once
// every child is attached and a child removes the rest.
func TestParentDeath(t *testing.T) {
	for _, args := range [][]string{
		{"-transports", "ring", "-mode", "throughput", "-wait", "spin"},
		{"-transports", "ring", "-mode", "pingpong", "-wait", "block"},
		{"-transports", "ring", "-mode", "throughput", "-producers", "2", "-consumers", "2"},
		{"-transports", "msgq", "-mode", "pingpong"},
		{"-transports", "msgq", "-mode", "throughput"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			for round := 0; round < 2; round++ {
				cmd, d, lines, _ := startRun(t, args...)
				time.Sleep(time.Duration(20+80*round) * time.Millisecond)
				cmd.Process.Kill()
				for range lines {
				}
				cmd.Wait()
				d.checkGone(t, -1)
				for _, o := range d.objects {
					// Whatever is left despite the check is removed, so
					// that one failure does not leak.
					switch o.Kind {
					case "shm":
						if s, err := segment.OpenID(o.ID); err == nil {
							s.Remove()
						}
					case "sem":
						if s, err := semaphore.OpenID(o.ID); err == nil {
							s.Remove()
						}
					case "msg":
						if q, err := msgq.OpenID(o.ID); err == nil {
							q.Remove()
						}
					}
				}
			}
		})
	}
}
