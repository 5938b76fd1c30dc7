// Package ipctest supports this module's tests: it runs the test binary as a
// helper process when asked to (the os/exec pattern), records the System V
// objects a test makes and fails the run if any of them outlives it, and
// sends signal storms at blocked threads.
package ipctest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// HelperEnv is the environment variable that makes the test binary run a
// helper instead of the tests.
const HelperEnv = "SHMRING_TEST_HELPER"

// Kind is a kind of System V object.
type Kind string

// The three kinds, named as their /proc/sysvipc tables are.
const (
	Shm Kind = "shm"
	Msg Kind = "msg"
	Sem Kind = "sem"
)

var (
	mu      sync.Mutex
	tracked = map[Kind]map[int]string{}
)

// Track records that the current test made object id of the given kind, so
// that [Main] fails the run if it still exists when the tests end. The test
// must remove it itself (usually in t.Cleanup).
func Track(t testing.TB, kind Kind, id int) {
	mu.Lock()
	defer mu.Unlock()
	if tracked[kind] == nil {
		tracked[kind] = map[int]string{}
	}
	tracked[kind][id] = t.Name()
}

// Main is TestMain's body. If the process was started by [Command], it runs
// the named helper and exits with its status. Otherwise it runs the tests,
// then fails the run if any object recorded by [Track], or any segment this
// process created, still exists.
func Main(m *testing.M, helpers map[string]func() int) {
	if name := os.Getenv(HelperEnv); name != "" {
		h, ok := helpers[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "ipctest: unknown helper %q\n", name)
			os.Exit(2)
		}
		os.Exit(h())
	}
	code := m.Run()
	// A segment removed while another process has it attached (a monitor
	// of the host's rings, a child on its way out) goes with that detach:
	// give such attaches a moment before calling anything a leak.
	leaks := Leaks()
	for deadline := time.Now().Add(2 * time.Second); len(leaks) > 0 && time.Now().Before(deadline); leaks = Leaks() {
		time.Sleep(20 * time.Millisecond)
	}
	if len(leaks) > 0 {
		fmt.Fprintln(os.Stderr, "ipctest: System V objects outlived the tests:")
		for _, l := range leaks {
			fmt.Fprintln(os.Stderr, "\t"+l)
		}
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// Leaks lists the tracked objects that still exist, and the segments whose
// creator is this process, one description each.
func Leaks() []string {
	mu.Lock()
	defer mu.Unlock()
	var out []string
	for _, kind := range []Kind{Shm, Msg, Sem} {
		live := liveIDs(kind)
		for id, test := range tracked[kind] {
			if _, ok := live[id]; ok {
				out = append(out, fmt.Sprintf("%s id %d made by %s", kind, id, test))
				delete(live, id)
			}
		}
		if kind == Shm {
			me := strconv.Itoa(os.Getpid())
			for id, cpid := range live {
				if cpid == me {
					out = append(out, fmt.Sprintf("shm id %d created by this process", id))
				}
			}
		}
	}
	return out
}

// Exists reports whether an object of the given kind and id exists.
func Exists(kind Kind, id int) bool {
	_, ok := liveIDs(kind)[id]
	return ok
}

// liveIDs maps the id of every object of the kind to its creator pid (shm
// only; empty for the others).
func liveIDs(kind Kind) map[int]string {
	out := map[int]string{}
	f, err := os.Open(filepath.Join("/proc/sysvipc", string(kind)))
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan()
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		id, err := strconv.Atoi(fields[1])
		if err != nil {
			continue
		}
		cpid := ""
		if kind == Shm {
			cpid = fields[4]
		}
		out[id] = cpid
	}
	return out
}

// Command returns a command that runs this test binary as the named helper,
// with env added to the environment. Its output goes to the test log's
// stderr. The caller starts and waits for it.
func Command(t testing.TB, name string, env ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(append(os.Environ(), HelperEnv+"="+name), env...)
	cmd.Stderr = os.Stderr
	return cmd
}

// OtherUID is the user id that [CommandAs] runs helpers under: nobody.
const OtherUID = 65534

// CommandAs is [Command] for a helper that runs as user and group
// [OtherUID], to play another user against the objects of this one. It
// skips the test when the caller is not root. The test binary is copied to
// a directory the other user may enter, since the build directory is the
// caller's own.
func CommandAs(t testing.TB, name string, env ...string) *exec.Cmd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a helper under another uid")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "shmring-other-user")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	copyExe := filepath.Join(dir, filepath.Base(exe))
	if err := os.WriteFile(copyExe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(copyExe, "-test.run=^$")
	cmd.Env = append(append(os.Environ(), HelperEnv+"="+name), env...)
	cmd.Stderr = os.Stderr
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: OtherUID, Gid: OtherUID}}
	return cmd
}

// Getenv returns the environment variable, exiting the helper if it is
// missing.
func Getenv(name string) string {
	v, ok := os.LookupEnv(name)
	if !ok {
		fmt.Fprintf(os.Stderr, "ipctest: helper needs %s\n", name)
		os.Exit(2)
	}
	return v
}

// GetenvInt is [Getenv] for an integer.
func GetenvInt(name string) int {
	v, err := strconv.Atoi(Getenv(name))
	if err != nil {
		fmt.Fprintf(os.Stderr, "ipctest: %s: %v\n", name, err)
		os.Exit(2)
	}
	return v
}

// SignalStorm sends SIGURG (which the Go runtime handles and ignores) to
// every thread of process pid, over and over, until ctx is done. Blocking
// System V calls on those threads return EINTR each time one lands. It
// returns the number of signals sent.
func SignalStorm(ctx context.Context, pid int) int {
	sent := 0
	for ctx.Err() == nil {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			return sent
		}
		for _, task := range tasks {
			tid, err := strconv.Atoi(task.Name())
			if err != nil {
				continue
			}
			if unix.Tgkill(pid, tid, unix.SIGURG) == nil {
				sent++
			}
		}
		time.Sleep(50 * time.Microsecond)
	}
	return sent
}

// Deadline is how long tests wait for something that should happen at once
// before they call it a hang. It is generous on purpose: tests never assert
// timings, only that things happen.
const Deadline = 60 * time.Second
