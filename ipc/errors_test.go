package ipc

import (
	"errors"
	"io/fs"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// sentinels are the errors that errors.Is may be asked about.
var sentinels = []struct {
	name string
	err  error
}{
	{"fs.ErrExist", fs.ErrExist},
	{"fs.ErrNotExist", fs.ErrNotExist},
	{"fs.ErrPermission", fs.ErrPermission},
	{"errors.ErrUnsupported", errors.ErrUnsupported},
	{"ErrRemoved", ErrRemoved},
	{"ErrLimit", ErrLimit},
}

func TestErrorIs(t *testing.T) {
	for _, tc := range []struct {
		errno syscall.Errno
		gone  bool
		want  []error // the sentinels it must match; it must match no other
	}{
		{unix.EEXIST, false, []error{fs.ErrExist}},
		{unix.ENOENT, false, []error{fs.ErrNotExist}},
		{unix.EACCES, false, []error{fs.ErrPermission}},
		{unix.EPERM, false, []error{fs.ErrPermission}},
		{unix.ENOSYS, false, []error{errors.ErrUnsupported}},
		{unix.EIDRM, false, []error{ErrRemoved}},
		{unix.ENOSPC, false, []error{ErrLimit}},
		{unix.EINVAL, false, nil},
		{unix.ENOMEM, false, nil},
		{unix.EINVAL, true, []error{ErrRemoved, fs.ErrNotExist}},
	} {
		var err error
		if tc.gone {
			err = NewGoneError("segment", "shmat", 0x1234, 7, tc.errno)
		} else {
			err = NewError("segment", "shmget", 0x1234, 7, tc.errno)
		}
		if !errors.Is(err, tc.errno) {
			t.Errorf("%v (gone %v) does not match its errno", tc.errno, tc.gone)
		}
		for _, s := range sentinels {
			want := false
			for _, w := range tc.want {
				want = want || w == s.err
			}
			if got := errors.Is(err, s.err); got != want {
				t.Errorf("errors.Is(%s error, %s) = %v, want %v", unix.ErrnoName(tc.errno), s.name, got, want)
			}
		}
		var e *Error
		if !errors.As(err, &e) || e.Err != tc.errno {
			t.Errorf("%v: errors.As does not find the *Error", err)
		}
	}

	// The mapping survives further wrapping.
	wrapped := errors.Join(errors.New("context"), NewError("msgq", "msgrcv", 1, 2, unix.EIDRM))
	if !errors.Is(wrapped, ErrRemoved) || !errors.Is(wrapped, unix.EIDRM) {
		t.Errorf("wrapped EIDRM error %v does not match ErrRemoved and EIDRM", wrapped)
	}
}

func TestErrorMessage(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want []string
	}{
		{NewError("segment", "shmget", 0x1234, -1, unix.EEXIST), []string{"segment", "shmget", "0x00001234", unix.EEXIST.Error()}},
		{NewError("semaphore", "semtimedop", -1, 42, unix.EIDRM), []string{"semaphore", "semtimedop", "0xffffffff", "id 42", unix.EIDRM.Error()}},
		{NewGoneError("msgq", "msgsnd", Private, 0, unix.EINVAL), []string{"msgq", "msgsnd", "0x00000000", "id 0", unix.EINVAL.Error()}},
	} {
		msg := tc.err.Error()
		for _, w := range tc.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%q does not contain %q", msg, w)
			}
		}
	}
	// No id yet: none is printed.
	if msg := NewError("segment", "shmget", 1, -1, unix.ENOENT).Error(); strings.Contains(msg, "id") {
		t.Errorf("%q mentions an id it does not have", msg)
	}
	want := "segment: shmget key 0x0000abcd id 7: file exists"
	if got := NewError("segment", "shmget", 0xabcd, 7, unix.EEXIST).Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestErrorNil(t *testing.T) {
	if err := NewError("segment", "shmget", 1, 2, nil); err != nil {
		t.Errorf("NewError(nil) = %v, want nil", err)
	}
	if err := NewGoneError("segment", "shmget", 1, 2, nil); err != nil {
		t.Errorf("NewGoneError(nil) = %v, want nil", err)
	}
}
