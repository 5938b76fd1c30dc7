package msgq_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmring/shmring/internal/ipctest"
	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/msgq"
)

// helpers are the processes the tests start by re-running the test binary.
var helpers = map[string]func() int{
	"chat":   helperChat,
	"denied": helperDenied,
	"echo":   helperEcho,
	"send":   helperSend,
}

func TestMain(m *testing.M) { ipctest.Main(m, helpers) }

// newQueue creates a private queue that the test tracks and removes.
func newQueue(t testing.TB) *msgq.Queue {
	t.Helper()
	q, err := msgq.Create(ipc.Private, nil)
	if err != nil {
		t.Fatal(err)
	}
	track(t, q.ID())
	return q
}

// track makes the test fail the run if queue id outlives it, and removes
// the queue when the test ends unless it is gone already.
func track(t testing.TB, id int) {
	t.Helper()
	ipctest.Track(t, ipctest.Msg, id)
	t.Cleanup(func() {
		q, err := msgq.OpenID(id)
		if errors.Is(err, ipc.ErrRemoved) {
			return
		}
		if err == nil {
			err = q.Remove()
		}
		if err != nil && !errors.Is(err, ipc.ErrRemoved) {
			t.Errorf("remove queue %d: %v", id, err)
		}
	})
}

// newKey returns a key that no other test uses: ftok of a fresh file.
func newKey(t testing.TB) ipc.Key {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := ipc.Ftok(path, 'q')
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// waitBlocked waits until some thread of this process is blocked in system
// call sysno (msgsnd or msgrcv) on queue id without IPC_NOWAIT, as
// /proc/self/task/*/syscall shows it, and fails the test if none is within
// ipctest.Deadline.
func waitBlocked(t *testing.T, sysno uintptr, id int) {
	t.Helper()
	// The flags are msgsnd's fourth argument and msgrcv's fifth.
	flagArg := 4
	if sysno == unix.SYS_MSGRCV {
		flagArg = 5
	}
	deadline := time.Now().Add(ipctest.Deadline)
	for time.Now().Before(deadline) {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			b, err := os.ReadFile(filepath.Join("/proc/self/task", task.Name(), "syscall"))
			if err != nil {
				continue // the thread exited
			}
			f := strings.Fields(string(b))
			if len(f) <= flagArg || f[0] != strconv.FormatUint(uint64(sysno), 10) {
				continue
			}
			gotID, err1 := strconv.ParseUint(f[1], 0, 64)
			flags, err2 := strconv.ParseUint(f[flagArg], 0, 64)
			if err1 == nil && err2 == nil && int(gotID) == id && flags&unix.IPC_NOWAIT == 0 {
				return
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("no thread blocked in system call %d on queue %d after %v", sysno, id, ipctest.Deadline)
}

// await waits for a result from c, failing the test if none comes within
// ipctest.Deadline.
func await[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(ipctest.Deadline):
		t.Fatalf("%s: no result after %v", what, ipctest.Deadline)
		panic("unreachable")
	}
}

// fill sends empty messages of type 1 with NoWait until the queue is full,
// and returns how many it sent.
func fill(t *testing.T, q *msgq.Queue) int {
	t.Helper()
	for n := 0; ; n++ {
		err := q.Send(context.Background(), 1, nil, msgq.NoWait)
		if errors.Is(err, msgq.ErrFull) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		if n > 1<<20 {
			t.Fatal("queue never filled")
		}
	}
}

// exitf reports a helper's failure on stderr and returns its exit status.
func exitf(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "helper: "+format+"\n", args...)
	return 1
}

// readID reads the queue id a helper printed as its first line of output.
func readID(out string) (int, bool) {
	sc := bufio.NewScanner(strings.NewReader(out))
	if !sc.Scan() {
		return 0, false
	}
	id, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
	return id, err == nil
}
