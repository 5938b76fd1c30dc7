package ring

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmring/shmring/internal/ipctest"
	"github.com/shmring/shmring/ipc"
)

func init() {
	helpers["shutdown"] = helperShutdown
}

// shutdownOptions are the options of the rings of the shutdown tests: a
// full ring of them holds shutdownFill messages.
var shutdownOptions = Options{Mode: SPSC, Slots: 8, MaxMessage: 64}

const shutdownFill = 8

// helperShutdown takes the producer role of each of its rings, fills them
// (message i is msg(i), type 1), leaves a Send blocked on the first one,
// installs CloseOnSignal and prints "ready", followed by the segment and
// semaphore ids of the ring it created, if any. Then it waits for a
// signal. Its rings:
//
//	SHUT_CREATE=1  a private ring it creates (first)
//	RING_SEG       a ring it opens by segment id
//
// Its options:
//
//	SHUT_SIGNALS   signal numbers, comma-separated, for Signals
//	SHUT_REMOVE=1  Remove
//	SHUT_THEN=1    a Then that prints "then N RESULT" (N the signal
//	               number, RESULT what the blocked Send returned:
//	               "closed", "removed" or the error) and exits 0
//	SHUT_STOP=1    call stop, twice, before printing ready
func helperShutdown() int {
	var rings, created []*Ring
	fail := func(what string, err error) int {
		for _, r := range created {
			r.Remove()
		}
		return helperFail(what, err)
	}
	ids := ""
	if os.Getenv("SHUT_CREATE") == "1" {
		opts := shutdownOptions
		r, err := Create(ipc.Private, &opts)
		if err != nil {
			return helperFail("create", err)
		}
		rings, created = append(rings, r), append(created, r)
		ids = fmt.Sprintf(" %d %d", r.SegmentID(), r.SemaphoreID())
	}
	if _, ok := os.LookupEnv("RING_SEG"); ok {
		r, _ := helperOpen()
		rings = append(rings, r)
	}
	if len(rings) == 0 {
		return helperFail("rings", errors.New("neither SHUT_CREATE nor RING_SEG"))
	}
	var first *Producer
	for _, r := range rings {
		p, err := r.NewProducer()
		if err != nil {
			return fail("new producer", err)
		}
		for i := 0; i < shutdownFill; i++ {
			if err := p.TrySend(1, msg(i)); err != nil {
				return fail("send", err)
			}
		}
		if first == nil {
			first = p
		}
	}
	blocked := make(chan error, 1)
	go func() { blocked <- first.Send(context.Background(), 1, []byte("blocked")) }()

	opts := &ShutdownOptions{Remove: os.Getenv("SHUT_REMOVE") == "1"}
	if s := os.Getenv("SHUT_SIGNALS"); s != "" {
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(f)
			if err != nil {
				return fail("SHUT_SIGNALS", err)
			}
			opts.Signals = append(opts.Signals, syscall.Signal(n))
		}
	}
	if os.Getenv("SHUT_THEN") == "1" {
		opts.Then = func(sig os.Signal) {
			result := "timeout"
			select {
			case err := <-blocked:
				switch {
				case errors.Is(err, os.ErrClosed):
					result = "closed"
				case errors.Is(err, ErrRemoved):
					result = "removed"
				default:
					result = fmt.Sprint(err)
				}
			case <-time.After(ipctest.Deadline):
			}
			fmt.Printf("then %d %s\n", sig, result)
			os.Exit(0)
		}
	}
	stop := CloseOnSignal(opts, rings...)
	if os.Getenv("SHUT_STOP") == "1" {
		stop()
		stop()
	}
	fmt.Printf("ready%s\n", ids)
	time.Sleep(10 * ipctest.Deadline)
	return 3
}

// startShutdownHelper starts the shutdown helper and waits for its ready
// line. It returns the fields that follow "ready" and the rest of the
// helper's stdout.
func startShutdownHelper(t *testing.T, env ...string) (*exec.Cmd, []string, *bufio.Reader) {
	t.Helper()
	cmd := ipctest.Command(t, "shutdown", env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	rd := bufio.NewReader(out)
	line, err := rd.ReadString('\n')
	fields := strings.Fields(line)
	if err != nil || len(fields) == 0 || fields[0] != "ready" {
		t.Fatalf("shutdown helper: %q, %v", line, err)
	}
	return cmd, fields[1:], rd
}

// helperRing tracks the ring whose ids the helper printed, for the leak
// check and the cleanup, and returns its ids.
func helperRing(t *testing.T, ids []string) (segID, semID int) {
	t.Helper()
	if len(ids) != 2 {
		t.Fatalf("helper printed ids %q, want a segment id and a semaphore id", ids)
	}
	segID, err1 := strconv.Atoi(ids[0])
	semID, err2 := strconv.Atoi(ids[1])
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	removeIDs(t, segID, semID)
	if !ipctest.Exists(ipctest.Shm, segID) || !ipctest.Exists(ipctest.Sem, semID) {
		t.Fatalf("the helper's ring (segment %d, semaphore set %d) does not exist", segID, semID)
	}
	return segID, semID
}

// waitExit reaps the helper, killing it if it has not exited within the
// deadline, and returns how it ended.
func waitExit(t *testing.T, cmd *exec.Cmd) syscall.WaitStatus {
	t.Helper()
	timer := time.AfterFunc(ipctest.Deadline, func() { cmd.Process.Kill() })
	defer timer.Stop()
	cmd.Wait()
	if !timer.Stop() {
		t.Fatal("the helper did not exit after the signal")
	}
	return cmd.ProcessState.Sys().(syscall.WaitStatus)
}

// waitSignaled reaps the helper and checks that it died of sig.
func waitSignaled(t *testing.T, cmd *exec.Cmd, sig syscall.Signal) {
	t.Helper()
	if ws := waitExit(t, cmd); !ws.Signaled() || ws.Signal() != sig {
		t.Fatalf("helper ended with %v, want killed by %v", cmd.ProcessState, sig)
	}
}

// ringExists checks that r's segment and semaphore set still exist.
func ringExists(t *testing.T, r *Ring) {
	t.Helper()
	if !ipctest.Exists(ipctest.Shm, r.SegmentID()) || !ipctest.Exists(ipctest.Sem, r.SemaphoreID()) {
		t.Fatalf("ring (segment %d, semaphore set %d) was removed", r.SegmentID(), r.SemaphoreID())
	}
}

// checkReleased checks that the helper's producer role on r was given
// back by a close (dead false) or by the kernel when the helper died
// without closing (dead true), that the messages it sent are still
// there, and that this process can take the role at once.
func checkReleased(t *testing.T, r *Ring, dead bool) {
	t.Helper()
	s := r.Stats()
	wantDead := 0
	if dead {
		wantDead = 1
	}
	if s.Producers != 0 || s.DeadProducers != wantDead || s.Depth != shutdownFill {
		t.Fatalf("after the helper: %d live and %d dead producers, depth %d; want 0, %d, %d",
			s.Producers, s.DeadProducers, s.Depth, wantDead, shutdownFill)
	}
	if _, err := r.NewProducer(); err != nil {
		t.Fatalf("taking the producer role after the helper: %v", err)
	}
	c, err := r.NewConsumer()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < shutdownFill; i++ {
		expect(t, c, 1, msg(i))
	}
}

// producerHeld checks that the helper holds r's producer role.
func producerHeld(t *testing.T, r *Ring) {
	t.Helper()
	if s := r.Stats(); s.Producers != 1 {
		t.Fatalf("before the signal: %d producers, want the helper's", s.Producers)
	}
	if _, err := r.NewProducer(); !errors.Is(err, ErrRoleTaken) {
		t.Fatalf("before the signal: NewProducer: %v, want ErrRoleTaken", err)
	}
}

// TestCloseOnSignalRemovesOwnRing: with Remove, SIGTERM makes a process
// remove the ring it created, segment and semaphore set, and then die of
// SIGTERM.
func TestCloseOnSignalRemovesOwnRing(t *testing.T) {
	cmd, ids, _ := startShutdownHelper(t, "SHUT_CREATE=1", "SHUT_REMOVE=1")
	segID, semID := helperRing(t, ids)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitSignaled(t, cmd, syscall.SIGTERM)
	if ipctest.Exists(ipctest.Shm, segID) {
		t.Errorf("segment %d outlived its creator", segID)
	}
	if ipctest.Exists(ipctest.Sem, semID) {
		t.Errorf("semaphore set %d outlived its creator", semID)
	}
}

// TestCloseOnSignalReleasesRole: SIGINT makes a process that opened a ring
// close it: the process dies of SIGINT, the ring stays with its messages,
// and the producer role it held is free, closed rather than dead.
func TestCloseOnSignalReleasesRole(t *testing.T) {
	if signal.Ignored(syscall.SIGINT) {
		// The helper would inherit the ignored SIGINT, and CloseOnSignal
		// leaves an ignored signal alone. While this process catches it,
		// a helper it starts gets the default action.
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGINT)
		defer signal.Stop(c)
	}
	r := testRing(t, shm, &shutdownOptions)
	cmd, _, _ := startShutdownHelper(t, helperEnv(r)...)
	producerHeld(t, r)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	waitSignaled(t, cmd, syscall.SIGINT)
	ringExists(t, r)
	if h, err := r.Holders(); err != nil || len(h) != 0 {
		t.Fatalf("holders after the close: %+v, %v; want none", h, err)
	}
	checkReleased(t, r, false)
}

// TestCloseOnSignalRemovesOnlyOwnRings: with Remove, a process removes the
// ring it created but only closes the one another process created.
func TestCloseOnSignalRemovesOnlyOwnRings(t *testing.T) {
	r := testRing(t, shm, &shutdownOptions)
	cmd, ids, _ := startShutdownHelper(t, helperEnv(r, "SHUT_CREATE=1", "SHUT_REMOVE=1")...)
	segID, semID := helperRing(t, ids)
	producerHeld(t, r)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitSignaled(t, cmd, syscall.SIGTERM)
	if ipctest.Exists(ipctest.Shm, segID) || ipctest.Exists(ipctest.Sem, semID) {
		t.Errorf("the helper's own ring (segment %d, semaphore set %d) outlived it", segID, semID)
	}
	ringExists(t, r)
	checkReleased(t, r, false)
}

// TestCloseOnSignalThen: a Then callback runs after the close, with the
// signal, and the process does not die of the signal; the call that was
// blocked on the ring returned os.ErrClosed.
func TestCloseOnSignalThen(t *testing.T) {
	r := testRing(t, shm, &shutdownOptions)
	cmd, _, out := startShutdownHelper(t, helperEnv(r, "SHUT_THEN=1", fmt.Sprintf("SHUT_SIGNALS=%d,%d", syscall.SIGUSR1, syscall.SIGTERM))...)
	producerHeld(t, r)
	if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	line, err := out.ReadString('\n')
	if want := fmt.Sprintf("then %d closed\n", syscall.SIGUSR1); err != nil || line != want {
		t.Errorf("helper printed %q, %v; want %q", line, err, want)
	}
	if ws := waitExit(t, cmd); ws.Signaled() || ws.ExitStatus() != 0 {
		t.Fatalf("helper ended with %v, want exit status 0", cmd.ProcessState)
	}
	ringExists(t, r)
	checkReleased(t, r, false)
}

// TestCloseOnSignalStop: after stop, the signal has its default action:
// the process dies of it without closing its ring, whose role the kernel
// releases (it is left dead, for a successor to take over).
func TestCloseOnSignalStop(t *testing.T) {
	r := testRing(t, shm, &shutdownOptions)
	cmd, _, _ := startShutdownHelper(t, helperEnv(r, "SHUT_STOP=1", "SHUT_REMOVE=1")...)
	producerHeld(t, r)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitSignaled(t, cmd, syscall.SIGTERM)
	ringExists(t, r)
	checkReleased(t, r, true)
}

// guardSignal catches sig in this process for the rest of the test, so
// that a signal the test sends itself never takes its default action, and
// returns the channel it arrives on.
func guardSignal(t *testing.T, sig os.Signal) <-chan os.Signal {
	c := make(chan os.Signal, 4)
	signal.Notify(c, sig)
	t.Cleanup(func() { signal.Stop(c) })
	return c
}

// TestCloseOnSignalInProcess: in this process, where the race detector
// sees it, the handler removes every ring it was given (all created here)
// while a goroutine is blocked on one of them, and then calls Then.
func TestCloseOnSignalInProcess(t *testing.T) {
	guard := guardSignal(t, syscall.SIGUSR1)
	a := testRing(t, heap, small(SPSC))
	b := testRing(t, shm, small(MPMC))
	aSem, bSeg, bSem := a.SemaphoreID(), b.SegmentID(), b.SemaphoreID()
	c, err := a.NewConsumer()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.NewProducer(); err != nil {
		t.Fatal(err)
	}
	blocked := make(chan error, 1)
	go func() {
		_, _, err := c.Receive(context.Background(), make([]byte, 64))
		blocked <- err
	}()
	type called struct {
		sig            os.Signal
		aStats, bStats Stats
	}
	then := make(chan called, 1)
	stop := CloseOnSignal(&ShutdownOptions{Signals: []os.Signal{syscall.SIGUSR1}, Remove: true,
		Then: func(sig os.Signal) { then <- called{sig, a.Stats(), b.Stats()} }}, a, nil, b)
	defer stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	<-guard
	select {
	case got := <-then:
		if got.sig != syscall.SIGUSR1 {
			t.Errorf("Then called with %v, want %v", got.sig, syscall.SIGUSR1)
		}
		if got.aStats != (Stats{}) || got.bStats != (Stats{}) {
			t.Errorf("Then called before the rings were closed: stats %+v, %+v", got.aStats, got.bStats)
		}
	case <-time.After(ipctest.Deadline):
		t.Fatal("Then was not called")
	}
	select {
	case err := <-blocked:
		if !errors.Is(err, ErrRemoved) && !errors.Is(err, os.ErrClosed) {
			t.Errorf("blocked receive: %v, want ErrRemoved or os.ErrClosed", err)
		}
	case <-time.After(ipctest.Deadline):
		t.Fatal("the blocked receive did not return")
	}
	if _, err := b.NewConsumer(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("NewConsumer after the signal: %v, want os.ErrClosed", err)
	}
	if ipctest.Exists(ipctest.Sem, aSem) || ipctest.Exists(ipctest.Shm, bSeg) || ipctest.Exists(ipctest.Sem, bSem) {
		t.Error("a ring created by this process outlived the signal")
	}
	stop()
}

// TestCloseOnSignalStopInProcess: after stop (called twice), the signal
// leaves the ring open and Then uncalled.
func TestCloseOnSignalStopInProcess(t *testing.T) {
	guard := guardSignal(t, syscall.SIGUSR1)
	r := testRing(t, heap, small(SPSC))
	then := make(chan os.Signal, 1)
	stop := CloseOnSignal(&ShutdownOptions{Signals: []os.Signal{syscall.SIGUSR1}, Then: func(sig os.Signal) { then <- sig }}, r)
	stop()
	stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	<-guard
	select {
	case sig := <-then:
		t.Fatalf("Then called with %v after stop", sig)
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := r.NewProducer(); err != nil {
		t.Fatalf("ring after stop and the signal: %v", err)
	}
}

// TestCloseOnSignalIgnoredSignal: a signal the process ignores is left
// alone: it stays ignored, and the ring open.
func TestCloseOnSignalIgnoredSignal(t *testing.T) {
	signal.Ignore(syscall.SIGUSR2)
	defer signal.Reset(syscall.SIGUSR2)
	r := testRing(t, heap, small(SPSC))
	stop := CloseOnSignal(&ShutdownOptions{Signals: []os.Signal{syscall.SIGUSR2}, Then: func(os.Signal) {}}, r)
	defer stop()
	if !signal.Ignored(syscall.SIGUSR2) {
		t.Fatal("CloseOnSignal caught a signal the process ignores")
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if _, err := r.NewProducer(); err != nil {
		t.Fatalf("ring after an ignored signal: %v", err)
	}
}

// A program that creates a ring removes it on its way out, whether it
// returns from main or is stopped with Ctrl-C or SIGTERM: in the second
// case CloseOnSignal removes the ring and the process then dies of the
// signal, as it would have without it.
func ExampleCloseOnSignal() {
	r, err := Create(ipc.Private, &Options{Mode: SPSC, Slots: 64, MaxMessage: 256})
	if err != nil {
		log.Fatal(err)
	}
	stop := CloseOnSignal(&ShutdownOptions{Remove: true}, r)
	defer func() {
		stop()
		r.Remove()
	}()

	p, err := r.NewProducer()
	if err != nil {
		log.Print(err)
		return
	}
	// A signal now makes this Send return os.ErrClosed (or ErrRemoved),
	// from the handler's goroutine, before the process dies.
	if err := p.Send(context.Background(), 1, []byte("hello")); err != nil {
		log.Print(err)
	}
}
