package msgq

import (
	"errors"
	"io/fs"

	"golang.org/x/sys/unix"
)

// Sentinels for the conditions a caller is expected to handle. Failures of
// the system calls themselves are [*ipc.Error] values, which match
// fs.ErrExist, fs.ErrNotExist, fs.ErrPermission, [ipc.ErrRemoved],
// [ipc.ErrLimit] and the errno under errors.Is.
var (
	// ErrFull is returned by a Send or SendMessage with [NoWait] when the
	// queue has no room for the message: its text would take the queue
	// past its byte limit ([Info.MaxBytes]), or the queue already holds
	// that many messages. It is returned as is, without allocating, and
	// also matches unix.EAGAIN.
	ErrFull error = &errnoSentinel{"msgq: queue full", unix.EAGAIN}

	// ErrNoMessage is returned by a Receive or ReceiveMessage with
	// [NoWait] when no message on the queue matches the selector. It is
	// returned as is, without allocating, and also matches unix.ENOMSG.
	ErrNoMessage error = &errnoSentinel{"msgq: no message", unix.ENOMSG}

	// ErrTooBig is returned by a Receive or ReceiveMessage without
	// [Truncate] when the first matching message is longer than the
	// buffer. The message stays on the queue. It is returned as is,
	// without allocating, and also matches unix.E2BIG.
	ErrTooBig error = &errnoSentinel{"msgq: message too large for buffer", unix.E2BIG}

	// ErrTooLong is wrapped by Send and SendMessage when the text is
	// longer than the system's limit for one message (msgmax, see
	// [SystemLimits]); the error names both lengths.
	ErrTooLong = errors.New("msgq: message text longer than msgmax")

	// ErrInvalidType is wrapped by Send and SendMessage when the message
	// type is not positive, and by Receive and ReceiveMessage when a
	// [Selector] other than [Any] was made with a type that is not
	// positive. Message types run from 1 to math.MaxInt64.
	ErrInvalidType = errors.New("msgq: message type must be at least 1")
)

// Errors for arguments that no call can accept. They wrap fs.ErrInvalid.
var (
	errNilQueue   = &invalidError{"msgq: nil *Queue"}
	errNilMessage = &invalidError{"msgq: nil *Message"}
	errNilContext = &invalidError{"msgq: nil context.Context"}
	errBadFlags   = &invalidError{"msgq: unknown flags"}
	errSendFlags  = &invalidError{"msgq: Truncate applies only to Receive"}
)

// errnoSentinel is a sentinel that stands for one errno: errors.Is matches
// both the sentinel itself and, through Unwrap, the errno.
type errnoSentinel struct {
	msg   string
	errno unix.Errno
}

func (e *errnoSentinel) Error() string { return e.msg }
func (e *errnoSentinel) Unwrap() error { return e.errno }

// invalidError is an argument error that matches fs.ErrInvalid.
type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }
func (e *invalidError) Unwrap() error { return fs.ErrInvalid }
