package ring

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// ShutdownOptions configure [CloseOnSignal]. A nil *ShutdownOptions, like
// the zero value, closes the rings on SIGINT or SIGTERM and then lets the
// signal end the process.
type ShutdownOptions struct {
	// Signals are the signals to act on; empty means SIGINT and SIGTERM.
	// A signal that the process ignores when CloseOnSignal is called (see
	// signal.Ignored), such as SIGINT in a background job of a
	// non-interactive shell, is left alone.
	Signals []os.Signal

	// Remove removes each ring that this process created (the Creator of
	// its [Header] is this process) with [Ring.Remove] instead of only
	// closing it: its segment and semaphore set are destroyed, and every
	// other process using it gets [ErrRemoved]. It applies to a ring the
	// program has closed itself too. A ring created by another process
	// is only closed, whatever Remove says.
	Remove bool

	// Then, if set, is called with the signal once every ring is closed or
	// removed, on the goroutine that caught the signal. The process goes
	// on after Then returns, unless Then ends it (with os.Exit, say).
	//
	// If Then is nil, the process dies of the signal, as it would have
	// without CloseOnSignal: the signal's default action is restored
	// (signal.Reset) and the signal is raised again, so that the parent
	// sees the process killed by it. Should that not end the process (the
	// signal's default action is to ignore it), it exits with status
	// 128 plus the signal number.
	Then func(sig os.Signal)
}

// CloseOnSignal makes the first of the signals of opts (by default SIGINT
// and SIGTERM) close the given rings before the process goes: every
// producer and consumer made from them gives its role back, so that peers
// see it closed (a consumer gets io.EOF, not [ErrPeerDead]) and the role
// is free for a successor at once, and with opts.Remove the rings this
// process created are removed rather than left behind in the kernel.
// Calls in flight on the rings, from any goroutine, return os.ErrClosed
// or [ErrRemoved]. Then opts.Then runs, or the process dies of the signal.
// A nil ring is skipped; opts may be nil.
//
// CloseOnSignal returns at once: it catches the signals with
// signal.Notify and acts on a goroutine of its own. Whether a ring was
// created by this process is decided when CloseOnSignal is called. A
// second signal that arrives while the rings are being closed is
// absorbed; once they are closed the handler is unregistered, so a signal
// during Then has its usual effect.
//
// stop unregisters the handler (signal.Stop) without closing anything,
// for instance when the program closes its rings in the ordinary way. It
// may be called from any goroutine, Then included, and more than once. A
// close already under way when stop is called is finished before stop
// returns, and nothing is closed after it returns; a signal that was
// caught but not yet acted on is raised again, to have the effect it
// would have had without the handler.
func CloseOnSignal(opts *ShutdownOptions, rings ...*Ring) (stop func()) {
	if opts == nil {
		opts = &ShutdownOptions{}
	}
	sigs := opts.Signals
	if len(sigs) == 0 {
		sigs = []os.Signal{syscall.SIGINT, syscall.SIGTERM}
	}
	var watch []os.Signal
	for _, s := range sigs {
		if !signal.Ignored(s) {
			watch = append(watch, s)
		}
	}
	if len(watch) == 0 {
		// signal.Notify with no signals would catch every signal.
		return func() {}
	}
	w := &shutdown{c: make(chan os.Signal, 1), quit: make(chan struct{}), then: opts.Then}
	for _, r := range rings {
		if r != nil {
			w.rings = append(w.rings, r)
			w.remove = append(w.remove, opts.Remove && r.createdHere())
		}
	}
	signal.Notify(w.c, watch...)
	go w.run()
	return w.stop
}

// shutdown is one CloseOnSignal handler.
type shutdown struct {
	c      chan os.Signal
	quit   chan struct{} // closed by stop
	rings  []*Ring
	remove []bool // by ring: remove it rather than close it
	then   func(os.Signal)

	mu   sync.Mutex
	done bool // the handler has acted or was stopped; no more closing
}

// createdHere reports whether this process created r, from its header
// (kept in process memory, so also after Close).
func (r *Ring) createdHere() bool {
	// r.self is ipc.Self(), read when r was attached.
	return r.header.Creator == r.self
}

// run waits for a signal, closes or removes the rings, unregisters the
// handler and hands over to Then or dies of the signal.
func (w *shutdown) run() {
	var sig os.Signal
	select {
	case sig = <-w.c:
	case <-w.quit:
		return
	}
	w.mu.Lock()
	if w.done {
		// Stopped after the signal was caught: pass it on.
		w.mu.Unlock()
		raise(sig)
		return
	}
	w.done = true
	for i, r := range w.rings {
		// Errors have nowhere to go: the process is on its way out.
		if w.remove[i] {
			r.Remove()
		} else {
			r.Close()
		}
	}
	signal.Stop(w.c)
	w.mu.Unlock()
	if w.then != nil {
		w.then(sig)
		return
	}
	signal.Reset(sig)
	raise(sig)
	// The default action of sig is to ignore it, or the disposition is not
	// the default: exit as a shell reports a death by signal.
	time.Sleep(time.Second)
	code := 1
	if s, ok := sig.(syscall.Signal); ok {
		code = 128 + int(s)
	}
	os.Exit(code)
}

// stop unregisters the handler; see CloseOnSignal.
func (w *shutdown) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return
	}
	w.done = true
	signal.Stop(w.c)
	close(w.quit)
	// No signal reaches w.c any more; one caught before is passed on (run
	// passes on the one it may have taken meanwhile).
	select {
	case sig := <-w.c:
		raise(sig)
	default:
	}
}

// raise sends sig to this process.
func raise(sig os.Signal) {
	if s, ok := sig.(syscall.Signal); ok {
		syscall.Kill(os.Getpid(), s)
	}
}
