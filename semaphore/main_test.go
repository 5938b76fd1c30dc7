package semaphore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"testing"

	"github.com/shmring/shmring/internal/ipctest"
	"github.com/shmring/shmring/ipc"
)

func TestMain(m *testing.M) { ipctest.Main(m, helpers) }

// Exit codes of the helpers, besides 0 for success.
const (
	exitFailed     = 1  // an unexpected error, printed to stderr
	exitPermission = 10 // the set could not be opened: fs.ErrPermission
)

// helpers are the processes the tests start with ipctest.Command. Each
// finds its set through the SEM_ID environment variable.
var helpers = map[string]func() int{
	// wait-post sleeps in semtimedop until semaphore 0 can be decremented,
	// then posts semaphore 1.
	"wait-post": func() int {
		s, err := OpenID(ipctest.GetenvInt("SEM_ID"))
		if err != nil {
			return fail(err)
		}
		if err := s.WaitTimeout(0, ipctest.Deadline); err != nil {
			return fail(err)
		}
		return fail(s.Post(1))
	},

	// undo-hold applies, with Undo, -1 to semaphore 0 and +5 to semaphore
	// 2, posts semaphore 1 to say so, and sleeps on semaphore 3 until it is
	// killed.
	"undo-hold": func() int {
		s, err := OpenID(ipctest.GetenvInt("SEM_ID"))
		if err != nil {
			return fail(err)
		}
		ctx := context.Background()
		if err := s.Do(ctx, Op{Num: 0, Delta: -1, Flags: Undo}, Op{Num: 2, Delta: 5, Flags: Undo}); err != nil {
			return fail(err)
		}
		if err := s.Post(1); err != nil {
			return fail(err)
		}
		return fail(s.Wait(ctx, 3))
	},

	// open opens the set by id and by key (SEM_KEY) and posts semaphore 0.
	// It exits with exitPermission if both opens fail with
	// fs.ErrPermission.
	"open": func() int {
		_, errID := OpenID(ipctest.GetenvInt("SEM_ID"))
		s, errKey := Open(ipc.Key(ipctest.GetenvInt("SEM_KEY")))
		if errors.Is(errID, fs.ErrPermission) && errors.Is(errKey, fs.ErrPermission) {
			return exitPermission
		}
		if err := errors.Join(errID, errKey); err != nil {
			return fail(err)
		}
		return fail(s.Post(0))
	},
}

// fail reports err, if any, and returns the helper's exit code.
func fail(err error) int {
	if err == nil {
		return 0
	}
	fmt.Fprintln(os.Stderr, "helper:", err)
	return exitFailed
}
