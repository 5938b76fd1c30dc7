package semaphore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/shmring/shmring/internal/ipctest"
)

// deadlineContext returns a context that ends after ipctest.Deadline.
func deadlineContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
	t.Cleanup(cancel)
	return ctx
}

// TestCrossProcess: a post in this process wakes a waiter in another, whose
// post wakes this one.
func TestCrossProcess(t *testing.T) {
	s := newSet(t, 2)
	cmd := ipctest.Command(t, "wait-post", fmt.Sprintf("SEM_ID=%d", s.ID()))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The helper is asleep in the kernel before the post.
	awaitWaiters(t, s, 0, 1, false)
	if err := s.Post(0); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(deadlineContext(t), 1); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	// The helper was the last to change semaphore 0, this process 1.
	for num, want := range []int{cmd.Process.Pid, os.Getpid()} {
		if pid, err := s.LastPID(num); err != nil || pid != want {
			t.Errorf("LastPID(%d) = %d, %v; want %d", num, pid, err, want)
		}
	}
}

// TestUndoOnKill: the kernel reverses the Undo operations of a process
// killed with SIGKILL.
func TestUndoOnKill(t *testing.T) {
	s := newSet(t, 4)
	if err := s.SetValue(0, 1); err != nil {
		t.Fatal(err)
	}
	cmd := ipctest.Command(t, "undo-hold", fmt.Sprintf("SEM_ID=%d", s.ID()))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	if err := s.Wait(deadlineContext(t), 1); err != nil { // the helper has applied its operations
		t.Fatal(err)
	}
	if v := values(t, s); v[0] != 0 || v[2] != 5 {
		t.Fatalf("values after the helper's operations = %v, want [0 0 5 0]", v)
	}
	awaitWaiters(t, s, 3, 1, false) // the helper sleeps
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	killed = true
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("helper ended with %v, want SIGKILL", err)
	}
	if v := values(t, s); v[0] != 1 || v[2] != 0 {
		t.Fatalf("values after the helper was killed = %v, want [1 0 0 0]", v)
	}
}

// TestPermissionDenied: a set with the default mode cannot be opened by
// another user until its mode lets them.
func TestPermissionDenied(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a helper as another user")
	}
	key := tempKey(t)
	s := create(t, key, 1, &Options{Exclusive: true})

	// The other user must be able to run the test binary: copy it where
	// anyone can.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "semaphore-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exeCopy := filepath.Join(dir, "semaphore.test")
	if err := copyFile(exeCopy, exe, 0o755); err != nil {
		t.Fatal(err)
	}

	run := func() int {
		t.Helper()
		cmd := ipctest.Command(t, "open", fmt.Sprintf("SEM_ID=%d", s.ID()), fmt.Sprintf("SEM_KEY=%d", key))
		cmd.Path, cmd.Args[0], cmd.Dir = exeCopy, exeCopy, dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		err := cmd.Run()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	}
	if code := run(); code != exitPermission {
		t.Fatalf("helper as uid 65534 exited %d, want %d (fs.ErrPermission)", code, exitPermission)
	}
	if err := s.SetMode(0o606); err != nil {
		t.Fatal(err)
	}
	if code := run(); code != 0 {
		t.Fatalf("helper as uid 65534 exited %d after SetMode(0606), want 0", code)
	}
	if v := value(t, s, 0); v != 1 {
		t.Fatalf("value = %d, want the helper's post", v)
	}
}

func copyFile(dst, src string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
