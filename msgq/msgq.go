package msgq

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmring/shmring/ipc"
)

// Options configures [Create]. The zero value (or nil) creates a queue with
// mode [ipc.DefaultMode], or opens the existing one. Create only reads it,
// so one Options may be shared.
type Options struct {
	// Mode holds the new queue's nine permission bits; zero means
	// ipc.DefaultMode (0600). If the queue already exists, its mode is
	// left alone, and the kernel checks that the caller has the access
	// these bits ask for.
	Mode fs.FileMode

	// Exclusive makes Create fail with an error matching fs.ErrExist if a
	// queue with the key already exists (IPC_EXCL). Without it, Create
	// opens the existing queue.
	Exclusive bool
}

// Queue is a handle on one System V message queue. It names the queue by its
// id and holds nothing else: there is nothing to close, and the queue and
// its messages live on, after every process that used it has exited, until
// some process calls [Queue.Remove].
//
// A Queue is safe for concurrent use by any number of goroutines; it is
// immutable, so copying one is harmless, but the functions return and the
// methods take a pointer.
type Queue struct {
	id  int
	key ipc.Key
}

// Create creates a message queue with the given key, or, unless
// opts.Exclusive is set, opens the existing one (msgget with IPC_CREAT).
// With key [ipc.Private] it always creates a new queue, which other
// processes can reach only through its id ([Queue.ID], [OpenID]).
//
// Errors match fs.ErrExist (Exclusive, and the key is taken),
// fs.ErrPermission (the queue exists and the caller lacks the access Mode
// asks for) and [ipc.ErrLimit] (msgmni queues exist already).
func Create(key ipc.Key, opts *Options) (*Queue, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	mode := o.Mode
	if mode == 0 {
		mode = ipc.DefaultMode
	}
	if err := ipc.CheckMode(mode); err != nil {
		return nil, fmt.Errorf("msgq: create key %v: %w", key, err)
	}
	flags := unix.IPC_CREAT | int(mode.Perm())
	if o.Exclusive {
		flags |= unix.IPC_EXCL
	}
	id, err := msgget(key, flags)
	if err != nil {
		return nil, ipc.NewError("msgq", "msgget", key, -1, err)
	}
	return &Queue{id: id, key: key}, nil
}

// Open opens the existing message queue with the given key (msgget without
// IPC_CREAT). It asks the kernel for read and write access, so a process
// that may not both send and receive learns it here, with an error matching
// fs.ErrPermission, rather than at its first Send or Receive. An error
// matching fs.ErrNotExist says that no queue has the key. [ipc.Private]
// names no existing queue and is refused.
func Open(key ipc.Key) (*Queue, error) {
	if key == ipc.Private {
		return nil, fmt.Errorf("msgq: open key %v: the private key names no existing queue: %w", key, fs.ErrInvalid)
	}
	id, err := msgget(key, 0o600) // the mode bits ask for read and write access
	if err != nil {
		return nil, ipc.NewError("msgq", "msgget", key, -1, err)
	}
	return &Queue{id: id, key: key}, nil
}

// OpenID opens the message queue with the given id, as [Queue.ID] returned
// it in some process or [List] shows it. It reads the queue's status to
// make sure the id names a queue and to learn its key, which needs read
// permission (fs.ErrPermission otherwise). An id that names no queue gives
// an error matching [ipc.ErrRemoved].
func OpenID(id int) (*Queue, error) {
	if id < 0 || id > math.MaxInt32 {
		return nil, fmt.Errorf("msgq: open id %d: not a queue id: %w", id, fs.ErrInvalid)
	}
	q := &Queue{id: id, key: ipc.Private}
	var ds msqid64DS
	if err := q.stat(&ds); err != nil {
		return nil, err
	}
	q.key = ipc.Key(ds.Perm.Key)
	return q, nil
}

// ID returns the queue's id, which names it to every process (-1 for a nil
// Queue).
func (q *Queue) ID() int {
	if q == nil {
		return -1
	}
	return q.id
}

// Key returns the key the queue was created with: [ipc.Private] for a
// private queue.
func (q *Queue) Key() ipc.Key {
	if q == nil {
		return ipc.Private
	}
	return q.key
}

// Remove removes the queue and discards its messages (IPC_RMID), at once,
// whoever still uses it: every Send and Receive blocked on it returns an
// error matching [ipc.ErrRemoved], and so does every later call on this id,
// in any process. Only the queue's owner or creator, or a process with
// CAP_SYS_ADMIN, may remove it (fs.ErrPermission otherwise).
func (q *Queue) Remove() error {
	if q == nil {
		return errNilQueue
	}
	return q.ctlError("msgctl IPC_RMID", msgctl(q.id, unix.IPC_RMID, nil))
}

// Flags modify Send and Receive. Combine them with |; the zero value asks
// for neither.
type Flags uint8

const (
	// NoWait makes Send return [ErrFull] instead of waiting for room, and
	// Receive return [ErrNoMessage] instead of waiting for a message
	// (IPC_NOWAIT).
	NoWait Flags = 1 << iota

	// Truncate makes Receive cut a message that is longer than the buffer
	// down to the buffer's length, discarding the rest, instead of
	// returning [ErrTooBig] and leaving it on the queue (MSG_NOERROR). It
	// is for Receive only.
	Truncate
)

// Selector says which message a Receive takes: [Any], [Type], [UpTo] or
// [Except]. The zero value is Any. It is [ipc.Selector], which the ring
// package's selective receive takes too, so a receive loop moves between
// a kernel queue and a ring unchanged. A Selector is a small value; copy
// it freely.
type Selector = ipc.Selector

// Any selects the oldest message on the queue, whatever its type (msgtyp 0).
func Any() Selector { return ipc.AnyType() }

// Type selects the oldest message of type t (msgtyp t). t must be at least
// 1, or Receive returns an error wrapping [ErrInvalidType].
func Type(t int64) Selector { return ipc.OfType(t) }

// UpTo selects, among the messages whose type is at most t, the oldest of
// those with the lowest type (msgtyp -t): with messages of types 3, 1, 2, 1
// queued in that order, UpTo(2) takes the first 1, and UpTo(5) too. It makes
// the type a priority, lowest first. t must be at least 1, or Receive
// returns an error wrapping [ErrInvalidType].
func UpTo(t int64) Selector { return ipc.UpToType(t) }

// Except selects the oldest message whose type is not t (msgtyp t with
// MSG_EXCEPT). t must be at least 1, or Receive returns an error wrapping
// [ErrInvalidType].
func Except(t int64) Selector { return ipc.ExceptType(t) }

// args returns msgrcv's msgtyp and the flags selector s needs, and false
// if its type is not positive.
func args(s Selector) (msgtyp int64, flags int, ok bool) {
	switch s.Kind() {
	case ipc.SelectType:
		return s.Type(), 0, s.Type() > 0
	case ipc.SelectUpTo:
		return -s.Type(), 0, s.Type() > 0
	case ipc.SelectExcept:
		return s.Type(), msgExcept, s.Type() > 0
	}
	return 0, 0, true
}

// Send sends a message of type typ with a copy of data as its text. It is
// [Queue.SendMessage] for callers that do not keep a [Message]: it copies
// data into a buffer on its stack if the text is short (248 bytes at most),
// or else into a pooled buffer, which allocates nothing once the pool has a
// buffer that large.
//
// typ must be at least 1 ([ErrInvalidType]) and data no longer than msgmax
// ([ErrTooLong]); the flags allowed are [NoWait]. Blocking, cancellation and
// errors are as for SendMessage.
func (q *Queue) Send(ctx context.Context, typ int64, data []byte, flags Flags) error {
	kflags, err := q.prepareSend(ctx, typ, len(data), flags)
	if err != nil {
		return err
	}
	var stack [hdrSize + stackText]byte
	var m *Message
	var b []byte
	if len(data) <= stackText {
		b = stack[:hdrSize+len(data)]
	} else {
		m, b = borrow(len(data))
	}
	binary.NativeEndian.PutUint64(b, uint64(typ))
	copy(b[hdrSize:], data)
	// The first msgsnd is made here rather than in a helper, as in
	// SendMessage: see "The fast path" below.
	if e := msgsnd(q.id, &b[0], len(data), kflags); e != 0 {
		err = q.sendFailed(ctx, b, flags, kflags, e)
	}
	if m != nil {
		pool.Put(m)
	}
	return err
}

// SendMessage sends m: its type and text (msgsnd). The type must be at least
// 1 ([ErrInvalidType]) and the text no longer than msgmax ([ErrTooLong]);
// the flags allowed are [NoWait]. It does not allocate, and m may be reused
// as soon as it returns.
//
// If the queue is full (the text would take it past [Info.MaxBytes], or it
// holds that many messages already), SendMessage waits for room, until a
// Receive makes some, the queue is removed (an error matching
// [ipc.ErrRemoved]) or ctx is done (ctx.Err(), with nothing sent). With
// NoWait it returns [ErrFull] at once instead. A message longer than the
// queue's byte limit can never fit: it waits until removal or cancellation,
// or gets ErrFull. Signals do not interrupt it: it retries after EINTR.
// A ctx that is done already returns ctx.Err() without sending.
//
// In the terms of the Go memory model, the Send of a message synchronizes
// before the Receive that returns it, in this process or another: the
// kernel orders them under the queue's lock. The race detector does not
// see that edge.
func (q *Queue) SendMessage(ctx context.Context, m *Message, flags Flags) error {
	if m == nil {
		return errNilMessage
	}
	m.ensureHeader()
	n := len(m.b) - hdrSize
	kflags, err := q.prepareSend(ctx, m.Type(), n, flags)
	if err != nil {
		return err
	}
	if e := msgsnd(q.id, &m.b[0], n, kflags); e != 0 {
		return q.sendFailed(ctx, m.b, flags, kflags, e)
	}
	return nil
}

// The fast path.
//
// A Send or Receive that finds room or a message is one system call, and
// the binding's share of its cost is what runs around that call. So the
// exported methods are laid out for it: everything the call needs is
// decided before it, by prepareSend or prepareReceive, which return before
// the call is made; the call itself is made from the exported method's own
// frame, through msgsnd or msgrcv, which inline to unix.Syscall6; and
// everything a failed call needs (the EINTR retries, the wait with
// cancellation, the errors) is in sendFailed or receiveFailed, which only a
// failed call reaches. That keeps the code that runs between two system
// calls to the argument checks, one call to prepareSend or prepareReceive
// and the exported method's own frame, with every context. It matters more
// than the instruction count suggests: each system call runs a lot of
// kernel code, and the binding's code after it runs with caches and branch
// predictors that the kernel's has cooled.
//
// Send and Receive copy a short text through a buffer on their own stack
// rather than a pooled one, which saves the pool's Get and Put. The kernel
// may read and write it: a goroutine's stack does not move while the
// goroutine is in a system call (the runtime neither grows nor shrinks it
// then), and every call takes the buffer's address afresh, so a stack that
// moves between an EINTR and the retry is harmless.

// stackText is the longest text that [Queue.Send] and [Queue.Receive] copy
// through a buffer on the stack (their doc comments give the number);
// longer ones go through a pooled buffer. The buffer is zeroed on every
// call, so it is kept small.
const stackText = 256 - hdrSize

// prepareSend validates the arguments of a send of n bytes of text of type
// typ and returns the flags of the first msgsnd: IPC_NOWAIT if the caller
// asked for NoWait, and also if ctx can be cancelled, so that a send that
// finds room costs nothing for cancellation (sendFailed starts the wait
// with cancellation if that first call finds the queue full). A ctx that
// is done already gives ctx.Err(), after every argument error.
func (q *Queue) prepareSend(ctx context.Context, typ int64, n int, flags Flags) (kflags int, err error) {
	switch {
	case q == nil:
		return 0, errNilQueue
	case ctx == nil:
		return 0, errNilContext
	case flags&^(NoWait|Truncate) != 0:
		return 0, errBadFlags
	case flags&Truncate != 0:
		return 0, errSendFlags
	case typ < 1:
		return 0, fmt.Errorf("msgq: msgsnd key %v id %d: type %d: %w", q.key, q.id, typ, ErrInvalidType)
	case int64(n) > msgmax.Load():
		if err := q.checkLength(n); err != nil {
			return 0, err
		}
	}
	if flags&NoWait != 0 {
		kflags = ipcNoWait
	}
	if ctx.Done() != nil {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		kflags = ipcNoWait
	}
	return kflags, nil
}

// msgmax caches the system's msgmax for the length check on the send path;
// it is 0 until first needed. An administrator may change the limit at any
// time: a text longer than the cached value makes checkLength read the limit
// again, and an EINVAL from msgsnd makes sendError read it again, so a stale
// value costs one extra system call and never a wrong answer.
var msgmax atomic.Int64

// checkLength reads msgmax afresh and reports an error wrapping ErrTooLong
// if n bytes of text are more than it. If the limit cannot be read, the
// kernel will judge.
func (q *Queue) checkLength(n int) error {
	lim, err := SystemLimits()
	if err != nil {
		return nil
	}
	msgmax.Store(int64(lim.MaxMessage))
	if n > lim.MaxMessage {
		return q.tooLong(n, lim.MaxMessage)
	}
	return nil
}

func (q *Queue) tooLong(n, limit int) error {
	return fmt.Errorf("msgq: msgsnd key %v id %d: text of %d bytes is longer than msgmax, %d bytes: %w",
		q.key, q.id, n, limit, ErrTooLong)
}

// sendFailed finishes a send of b, which holds the type and then the text,
// whose first msgsnd, made with kflags as prepareSend returned them, failed
// with e. It retries after EINTR. If the queue is full and kflags holds
// IPC_NOWAIT although the caller did not ask for NoWait, that is because
// ctx can be cancelled: it waits for room with cancellation.
func (q *Queue) sendFailed(ctx context.Context, b []byte, flags Flags, kflags int, e unix.Errno) error {
	for e == unix.EINTR {
		eintrRetries.Add(1)
		e = msgsnd(q.id, &b[0], len(b)-hdrSize, kflags)
	}
	if e == unix.EAGAIN && flags&NoWait == 0 && kflags&ipcNoWait != 0 {
		return q.sendCancelable(ctx, b)
	}
	return q.sendError(e, b)
}

// sendCancelable waits in msgsnd for room for b until it is sent, the call
// fails or ctx is done.
func (q *Queue) sendCancelable(ctx context.Context, b []byte) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	intr := interruptOnDone(ctx)
	defer intr.stop()
	for {
		e := msgsnd(q.id, &b[0], len(b)-hdrSize, 0)
		if e != unix.EINTR {
			return q.sendError(e, b)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		eintrRetries.Add(1)
	}
}

// sendError turns msgsnd's errno for b into this package's error.
func (q *Queue) sendError(e unix.Errno, b []byte) error {
	switch e {
	case 0:
		return nil
	case unix.EAGAIN:
		return ErrFull
	case unix.EINVAL:
		// The type and length were checked, and the id was valid once, so
		// either msgmax has gone down or the queue is gone.
		n := len(b) - hdrSize
		lim, lerr := SystemLimits()
		if lerr != nil {
			break
		}
		msgmax.Store(int64(lim.MaxMessage))
		if n > lim.MaxMessage {
			return q.tooLong(n, lim.MaxMessage)
		}
		return ipc.NewGoneError("msgq", "msgsnd", q.key, q.id, e)
	}
	return ipc.NewError("msgq", "msgsnd", q.key, q.id, e)
}

// Receive takes a message chosen by sel off the queue and copies its text
// into buf; it returns the text's length and the message's type. It is
// [Queue.ReceiveMessage] for callers that do not keep a [Message]: it
// receives into a buffer on its stack if buf is short (248 bytes at most),
// or else into a pooled buffer, which allocates nothing once the pool has a
// buffer as large as buf, and copies the text out.
//
// A message longer than buf gives [ErrTooBig] and stays on the queue, or,
// with [Truncate], is cut to len(buf) bytes, with no sign of the cut. A nil
// or empty buf receives only empty messages, or, with Truncate, takes any
// message and discards its text. Blocking, cancellation and the other
// errors are as for ReceiveMessage.
func (q *Queue) Receive(ctx context.Context, buf []byte, sel Selector, flags Flags) (n int, typ int64, err error) {
	msgtyp, kflags, err := q.prepareReceive(ctx, sel, flags)
	if err != nil {
		return 0, 0, err
	}
	var stack [hdrSize + stackText]byte
	var m *Message
	var b []byte
	if len(buf) <= stackText {
		b = stack[:hdrSize+len(buf)]
	} else {
		m, b = borrow(len(buf))
	}
	// The first msgrcv is made here, as in ReceiveMessage: see "The fast
	// path".
	n, e := msgrcv(q.id, &b[0], len(buf), msgtyp, kflags)
	if e != 0 {
		n, err = q.receiveFailed(ctx, b, msgtyp, flags, kflags, e)
	}
	if err == nil {
		typ = int64(binary.NativeEndian.Uint64(b))
		copy(buf, b[hdrSize:hdrSize+n])
	}
	if m != nil {
		pool.Put(m)
	}
	return n, typ, err
}

// ReceiveMessage takes a message chosen by sel off the queue and stores its
// type and text in m (msgrcv), taking at most [Message.Cap] bytes of text.
// It does not allocate. On error m is left as it was.
//
// A message longer than m's capacity gives [ErrTooBig] and stays on the
// queue, or, with [Truncate], is cut to m.Cap() bytes. If no message
// matches sel, ReceiveMessage waits for one, until one is sent, the queue
// is removed (an error matching [ipc.ErrRemoved]) or ctx is done
// (ctx.Err(), with nothing taken off the queue). With [NoWait] it returns
// [ErrNoMessage] at once instead. Signals do not interrupt it: it retries
// after EINTR. A ctx that is done already returns ctx.Err() without
// receiving. A Selector with a type below 1 gives an error wrapping
// [ErrInvalidType].
//
// In the terms of the Go memory model, the Send of a message synchronizes
// before the Receive that returns it; see [Queue.SendMessage].
func (q *Queue) ReceiveMessage(ctx context.Context, m *Message, sel Selector, flags Flags) error {
	if m == nil {
		return errNilMessage
	}
	msgtyp, kflags, err := q.prepareReceive(ctx, sel, flags)
	if err != nil {
		return err
	}
	m.ensureHeader()
	b := m.b[:cap(m.b)]
	n, e := msgrcv(q.id, &b[0], len(b)-hdrSize, msgtyp, kflags)
	if e != 0 {
		if n, err = q.receiveFailed(ctx, b, msgtyp, flags, kflags, e); err != nil {
			return err
		}
	}
	m.b = b[:hdrSize+n]
	return nil
}

// prepareReceive validates the arguments that Receive and ReceiveMessage
// share and returns msgrcv's msgtyp and the flags of the first call: those
// sel and Truncate need, and IPC_NOWAIT if the caller asked for NoWait, and
// also if ctx can be cancelled, as prepareSend does. A ctx that is done
// already gives ctx.Err(), after every argument error.
func (q *Queue) prepareReceive(ctx context.Context, sel Selector, flags Flags) (msgtyp int64, kflags int, err error) {
	switch {
	case q == nil:
		return 0, 0, errNilQueue
	case ctx == nil:
		return 0, 0, errNilContext
	case flags&^(NoWait|Truncate) != 0:
		return 0, 0, errBadFlags
	}
	msgtyp, kflags, ok := args(sel)
	if !ok {
		return 0, 0, fmt.Errorf("msgq: msgrcv key %v id %d: selector %v: %w", q.key, q.id, sel, ErrInvalidType)
	}
	if flags&Truncate != 0 {
		kflags |= msgNoError
	}
	if flags&NoWait != 0 {
		kflags |= ipcNoWait
	}
	if ctx.Done() != nil {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		kflags |= ipcNoWait
	}
	return msgtyp, kflags, nil
}

// receiveFailed finishes a receive into b, which has room for the type and
// len(b)-hdrSize bytes of text, whose first msgrcv, made with msgtyp and
// kflags as prepareReceive returned them, failed with e; it returns the
// length of the text. It retries after EINTR. If no message matches and
// kflags holds IPC_NOWAIT although the caller did not ask for NoWait, it
// waits for one with cancellation, as sendFailed does.
func (q *Queue) receiveFailed(ctx context.Context, b []byte, msgtyp int64, flags Flags, kflags int, e unix.Errno) (int, error) {
	var n int
	for e == unix.EINTR {
		eintrRetries.Add(1)
		n, e = msgrcv(q.id, &b[0], len(b)-hdrSize, msgtyp, kflags)
	}
	if e == 0 {
		return n, nil
	}
	if e == unix.ENOMSG && flags&NoWait == 0 && kflags&ipcNoWait != 0 {
		return q.receiveCancelable(ctx, b, msgtyp, kflags&^ipcNoWait)
	}
	return 0, q.receiveError(e)
}

// receiveCancelable waits in msgrcv until a message is received into b, the
// call fails or ctx is done.
func (q *Queue) receiveCancelable(ctx context.Context, b []byte, msgtyp int64, kflags int) (int, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	intr := interruptOnDone(ctx)
	defer intr.stop()
	for {
		n, e := msgrcv(q.id, &b[0], len(b)-hdrSize, msgtyp, kflags)
		if e == 0 {
			return n, nil
		}
		if e != unix.EINTR {
			return 0, q.receiveError(e)
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		eintrRetries.Add(1)
	}
}

// receiveError turns msgrcv's errno into this package's error.
func (q *Queue) receiveError(e unix.Errno) error {
	switch e {
	case 0:
		return nil
	case unix.ENOMSG:
		return ErrNoMessage
	case unix.E2BIG:
		return ErrTooBig
	case unix.EINVAL:
		// The buffer size and selector were checked, and the id was
		// valid once: the queue is gone.
		return ipc.NewGoneError("msgq", "msgrcv", q.key, q.id, e)
	}
	return ipc.NewError("msgq", "msgrcv", q.key, q.id, e)
}

// eintrRetries counts the system calls retried after EINTR, for the tests.
var eintrRetries atomic.Uint64

// Cancelling a blocked msgsnd or msgrcv.
//
// The calls have no timeout, and nothing but a signal or the queue's
// removal wakes them. So a call that may have to wait on a cancellable
// context runs on a thread locked to its goroutine, and context.AfterFunc
// arms an interrupter that, once the context is done, sends that thread
// SIGURG with tgkill. The Go runtime handles SIGURG (it uses it to preempt
// goroutines), so the signal neither kills the process nor reaches
// os/signal channels other than as the spurious SIGURG the runtime already
// documents; and msgsnd and msgrcv are never restarted after a handled
// signal (signal(7)), so the call returns EINTR. The loop around the call
// then sees ctx.Err() and returns it.
//
// The signal may land just before the call starts, between the loop's
// check of the context and the kernel's entry, and be lost. So the
// interrupter repeats it, with a growing pause, until the loop tells it
// the call has returned for good. It cannot signal a thread the goroutine
// has left: stop waits for the interrupter to finish before the deferred
// UnlockOSThread runs.
//
// This path costs a locked thread, a gettid, the AfterFunc registration and
// two channels, so it is taken only after an IPC_NOWAIT attempt found the
// queue full or empty; a call whose context cannot be cancelled
// (ctx.Done() == nil) makes one plain blocking call instead.

// Pauses between repeated interrupting signals.
const (
	firstResignal = 20 * time.Microsecond
	maxResignal   = time.Millisecond
)

// interrupter interrupts a system call blocked on one thread once a
// context is done. It is used by one goroutine, locked to that thread,
// between interruptOnDone and stop.
type interrupter struct {
	pid, tid    int
	returned    chan struct{} // closed by stop: the call will not be made again
	exited      chan struct{} // closed when signal returns
	stopAfterFn func() bool   // from context.AfterFunc
}

// interruptOnDone arms an interrupter for the calling thread. The calling
// goroutine must be locked to its thread until it has called stop.
func interruptOnDone(ctx context.Context) *interrupter {
	intr := &interrupter{
		pid:      unix.Getpid(),
		tid:      unix.Gettid(),
		returned: make(chan struct{}),
		exited:   make(chan struct{}),
	}
	intr.stopAfterFn = context.AfterFunc(ctx, intr.signal)
	return intr
}

// signal runs once the context is done: it sends SIGURG to the thread until
// stop is called.
func (intr *interrupter) signal() {
	defer close(intr.exited)
	delay := firstResignal
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-intr.returned:
			return
		default:
		}
		// An error would mean the thread is gone, which stop rules out.
		_ = unix.Tgkill(intr.pid, intr.tid, unix.SIGURG)
		select {
		case <-intr.returned:
			return
		case <-t.C:
		}
		delay = min(2*delay, maxResignal)
		t.Reset(delay)
	}
}

// stop disarms the interrupter and, if it has started signalling, waits
// until it has finished, so that no signal meant for this call reaches the
// thread after the goroutine unlocks it.
func (intr *interrupter) stop() {
	close(intr.returned)
	if !intr.stopAfterFn() {
		<-intr.exited
	}
}

// Info is a queue's status, as msgctl(IPC_STAT) reports it: a snapshot,
// copied out of the kernel, that does not change when the queue does.
type Info struct {
	ipc.Perm // owner, creator and mode (Key is the queue's key)

	Messages uint64 // messages on the queue (msg_qnum)
	Bytes    uint64 // bytes of text on the queue (msg_cbytes)

	// MaxBytes is the queue's byte limit (msg_qbytes): a Send waits, or
	// fails with ErrFull, while the text on the queue plus its own would
	// exceed it. It also caps the number of messages on the queue. It
	// starts at msgmnb; see [Queue.SetMaxBytes].
	MaxBytes uint64

	LastSendPID int       // pid of the last successful msgsnd (0 if none)
	LastRecvPID int       // pid of the last successful msgrcv (0 if none)
	SendTime    time.Time // time of the last msgsnd (zero if none)
	RecvTime    time.Time // time of the last msgrcv (zero if none)
	ChangeTime  time.Time // creation or last IPC_SET
}

// Stat returns the queue's status (msgctl IPC_STAT), which needs read
// permission. It is safe to call at any time, but the status may change
// as soon as it is read.
func (q *Queue) Stat() (Info, error) {
	if q == nil {
		return Info{}, errNilQueue
	}
	var ds msqid64DS
	if err := q.stat(&ds); err != nil {
		return Info{}, err
	}
	return Info{
		Perm: ipc.Perm{
			Key:  ipc.Key(ds.Perm.Key),
			UID:  ds.Perm.Uid,
			GID:  ds.Perm.Gid,
			CUID: ds.Perm.Cuid,
			CGID: ds.Perm.Cgid,
			Mode: fs.FileMode(ds.Perm.Mode) & fs.ModePerm,
		},
		Messages:    ds.Qnum,
		Bytes:       ds.Cbytes,
		MaxBytes:    ds.Qbytes,
		LastSendPID: int(ds.Lspid),
		LastRecvPID: int(ds.Lrpid),
		SendTime:    unixTime(ds.Stime),
		RecvTime:    unixTime(ds.Rtime),
		ChangeTime:  unixTime(ds.Ctime),
	}, nil
}

func unixTime(sec int64) time.Time {
	if sec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0)
}

func (q *Queue) stat(ds *msqid64DS) error {
	return q.ctlError("msgctl IPC_STAT", msgctl(q.id, unix.IPC_STAT, ds))
}

// ctlError wraps an error from msgctl on this queue. Every argument is
// checked before the call, so EINVAL means the id names no queue.
func (q *Queue) ctlError(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.EINVAL) {
		return ipc.NewGoneError("msgq", op, q.key, q.id, err)
	}
	return ipc.NewError("msgq", op, q.key, q.id, err)
}

// set reads the queue's settings, lets change edit them and writes them back
// (IPC_SET writes the owner, mode and byte limit together). Another
// process's IPC_SET between the read and the write is overwritten. It
// returns the settings it wrote, the error from reading them (wrapped,
// ready to return) and the bare error from writing them.
func (q *Queue) set(change func(ds *msqid64DS)) (ds msqid64DS, statErr, setErr error) {
	if err := q.stat(&ds); err != nil {
		return ds, err, nil
	}
	change(&ds)
	return ds, nil, msgctl(q.id, unix.IPC_SET, &ds)
}

// SetMaxBytes sets the queue's byte limit ([Info.MaxBytes], msg_qbytes) to
// n, which must be at least 1. Only the queue's owner or creator, or a
// process with CAP_SYS_ADMIN, may change it, and raising it above msgmnb
// ([Limits.MaxQueueBytes]) needs CAP_SYS_RESOURCE as well; either refusal
// gives an error matching fs.ErrPermission that says which. Lowering the
// limit below what the queue holds keeps the messages; Sends wait until
// enough are received. Waiting senders are woken to check again.
//
// SetMaxBytes reads and writes back the owner and mode too (msgctl IPC_STAT
// then IPC_SET), so it can undo a concurrent [Queue.SetMode] or
// [Queue.SetOwner] by another process.
func (q *Queue) SetMaxBytes(n int) error {
	if q == nil {
		return errNilQueue
	}
	if n < 1 {
		return fmt.Errorf("msgq: set byte limit of queue %d to %d: a queue needs room for at least one byte: %w", q.id, n, fs.ErrInvalid)
	}
	ds, serr, err := q.set(func(ds *msqid64DS) { ds.Qbytes = uint64(n) })
	if serr != nil {
		return serr
	}
	if err == nil || !errors.Is(err, unix.EPERM) {
		return q.ctlError("msgctl IPC_SET", err)
	}
	werr := q.ctlError("msgctl IPC_SET", err)
	euid := uint32(unix.Geteuid())
	if lim, lerr := SystemLimits(); lerr == nil && n > lim.MaxQueueBytes && (euid == ds.Perm.Uid || euid == ds.Perm.Cuid) {
		return fmt.Errorf("msgq: set byte limit of queue %d to %d: raising it above msgmnb (%d bytes) needs CAP_SYS_RESOURCE: %w",
			q.id, n, lim.MaxQueueBytes, werr)
	}
	return fmt.Errorf("msgq: set byte limit of queue %d: only its owner or creator, or a process with CAP_SYS_ADMIN, may change it: %w",
		q.id, werr)
}

// SetMode sets the queue's nine permission bits. Only the queue's owner or
// creator, or a process with CAP_SYS_ADMIN, may (fs.ErrPermission
// otherwise).
//
// SetMode reads and writes back the owner and byte limit too (msgctl
// IPC_STAT then IPC_SET). The kernel checks the byte limit again, so if
// it is above msgmnb, SetMode needs CAP_SYS_RESOURCE as well; and a
// concurrent change by another process can be undone.
func (q *Queue) SetMode(mode fs.FileMode) error {
	if q == nil {
		return errNilQueue
	}
	if err := ipc.CheckMode(mode); err != nil {
		return fmt.Errorf("msgq: set mode of queue %d: %w", q.id, err)
	}
	_, serr, err := q.set(func(ds *msqid64DS) {
		ds.Perm.Mode = ds.Perm.Mode&^uint32(fs.ModePerm) | uint32(mode.Perm())
	})
	if serr != nil {
		return serr
	}
	return q.ctlError("msgctl IPC_SET", err)
}

// SetOwner sets the queue's owner user and group ids; -1 leaves that id as
// it is, as in os.Chown. The creator ids do not change. Only the queue's
// owner or creator, or a process with CAP_SYS_ADMIN, may (fs.ErrPermission
// otherwise); ids that this user namespace does not map give an error
// matching fs.ErrInvalid. The caveats of [Queue.SetMode] apply.
func (q *Queue) SetOwner(uid, gid int) error {
	if q == nil {
		return errNilQueue
	}
	if uid < -1 || uid >= math.MaxUint32 || gid < -1 || gid >= math.MaxUint32 {
		return fmt.Errorf("msgq: set owner of queue %d to %d:%d: not a user and group id: %w", q.id, uid, gid, fs.ErrInvalid)
	}
	_, serr, err := q.set(func(ds *msqid64DS) {
		if uid != -1 {
			ds.Perm.Uid = uint32(uid)
		}
		if gid != -1 {
			ds.Perm.Gid = uint32(gid)
		}
	})
	if serr != nil {
		return serr
	}
	if err != nil && errors.Is(err, unix.EINVAL) {
		// EINVAL means a bad id here, unless the queue still exists and
		// the kernel refused the user or group.
		var ds msqid64DS
		if q.stat(&ds) == nil {
			return fmt.Errorf("msgq: set owner of queue %d to %d:%d: ids not valid in this user namespace: %w",
				q.id, uid, gid, ipc.NewError("msgq", "msgctl IPC_SET", q.key, q.id, err))
		}
	}
	return q.ctlError("msgctl IPC_SET", err)
}

// Limits are the system's limits on message queues, per IPC namespace, as
// read at one moment: an administrator can change them at any time (sysctl
// kernel.msgmax, kernel.msgmnb, kernel.msgmni).
type Limits struct {
	MaxMessage    int // msgmax: the longest text one message may carry
	MaxQueueBytes int // msgmnb: a new queue's byte limit, and the highest an unprivileged owner may set
	MaxQueues     int // msgmni: how many queues may exist
}

// SystemLimits returns the system's current limits on message queues
// (msgctl IPC_INFO). It needs no permission.
func SystemLimits() (Limits, error) {
	var mi msginfo
	if err := msgctlInfo(ipcInfo, &mi); err != nil {
		return Limits{}, fmt.Errorf("msgq: %w", os.NewSyscallError("msgctl IPC_INFO", err))
	}
	return Limits{
		MaxMessage:    int(mi.Msgmax),
		MaxQueueBytes: int(mi.Msgmnb),
		MaxQueues:     int(mi.Msgmni),
	}, nil
}

// Usage is what all the message queues of this IPC namespace held at one
// moment.
type Usage struct {
	Queues   int // queues that exist
	Messages int // messages on them
	Bytes    int // bytes of text in those messages
}

// SystemUsage returns what all message queues hold right now (msgctl
// MSG_INFO). It needs no permission; the numbers can change as soon as
// they are read.
func SystemUsage() (Usage, error) {
	var mi msginfo
	if err := msgctlInfo(msgInfo, &mi); err != nil {
		return Usage{}, fmt.Errorf("msgq: %w", os.NewSyscallError("msgctl MSG_INFO", err))
	}
	return Usage{
		Queues:   int(mi.Msgpool),
		Messages: int(mi.Msgmap),
		Bytes:    int(mi.Msgtql),
	}, nil
}

// List returns every message queue the caller may see, from
// /proc/sysvipc/msg (see [ipc.ListMsg]).
func List() ([]ipc.MsgRecord, error) {
	return ipc.ListMsg()
}

// ReceiveSelect is [Queue.Receive] without flags: the form of the ring
// package's Consumer.ReceiveSelect, so that a receive loop written against
// an interface with this method takes a kernel queue or a ring consumer
// alike.
func (q *Queue) ReceiveSelect(ctx context.Context, buf []byte, sel Selector) (n int, typ int64, err error) {
	return q.Receive(ctx, buf, sel, 0)
}
