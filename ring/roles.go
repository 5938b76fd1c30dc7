package ring

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shmring/shmring/internal/atomicx"
	"github.com/shmring/shmring/semaphore"
)

// side is which half of the ring a handle works: producers or consumers.
type side uint8

const (
	producerSide side = iota
	consumerSide
)

func (s side) String() string {
	if s == producerSide {
		return "producer"
	}
	return "consumer"
}

func (s side) other() side { return 1 - s }

// lines returns the first role line of side s and how many it has.
func (r *Ring) lines(s side) (first, count int) {
	if s == producerSide {
		return 0, r.g.maxProducers
	}
	return r.g.maxProducers, r.g.maxConsumers
}

// multi reports whether side s of the ring admits several holders.
func (r *Ring) multi(s side) bool {
	if s == producerSide {
		return r.g.mode.multiProducer()
	}
	return r.g.mode.multiConsumer()
}

func status(st uint64) uint64 { return st & 0xff }

// next returns the state that moves a line from st to status: the
// generation goes up by one on every change.
func next(st uint64, status uint64) uint64 { return (st>>8+1)<<8 | status }

// handle is what producers and consumers share: their ring, their role
// line, their guard against Close, and the scratch space of their slow
// paths. Its discipline (producer or consumer, single or multi) lives in
// the Producer or Consumer that owns it.
type handle struct {
	r     *Ring
	side  side
	idx   int       // role line index, producers first
	local int       // index among the lines of its side
	line  *roleLine // the role line

	yieldGap int    // spin rounds between an Adaptive wait's yields, as the last yield found (wait.go); 0: spinCheck
	state    uint64 // the line's state while we hold it
	token    uint64 // names this holder in a slot's owner word (tokenFor)
	g        guard

	armed []uint16 // wake-up semaphores the kernel posts if we die
	scan  scanBuf  // scratch of peer scans
	// The discipline's parts: cleaning up after dead peers in a scan
	// (recoverPeers), and its share of Close (closer), which reports
	// whether a zero-copy slice was out.
	recoverPeers func(views []lineView) (progress bool, err error)
	closer       func() (zeroCopyOut bool)

	handback  bool          // closing with messages left on a line for another consumer
	recheck   bool          // a recovery waits for a live peer's intent: look again soon
	cancelled atomic.Uint32 // a context's wake-up has finished (see sleep)
	lastCheck time.Time     // last full peer check
	wakeBy    time.Time     // if set, a sleep ends by then: a fan-out producer's eviction deadline
	tries     uint64        // Try calls that found nothing, for stuck
	closeOnce sync.Once
	closeErr  error
}

// stepHook, when set (by tests), is called at each step of a takeover or a
// recovery with the step's name, so that a test can stop the process there
// and kill it.
var stepHook func(step string)

func step(name string) {
	if stepHook != nil {
		stepHook(name)
	}
}

// traceHook, when set (by tests), is told of each decision of the slow
// paths of recovery and adoption, for a test that fails to explain itself.
var traceHook func(format string, args ...any)

func trace(format string, args ...any) {
	if traceHook != nil {
		traceHook(format, args...)
	}
}

// deathTargets returns the wake-up semaphores that a holder of a role of
// side s must have posted when it dies: those of every line that must
// react. A producer's death concerns every consumer (its messages stop, and
// a hole it leaves must be skipped); a consumer's, every producer (space
// may never come) and, with several consumers, every other consumer (one
// of them takes over what it held).
func (r *Ring) deathTargets(s side) []uint16 {
	var t []uint16
	add := func(of side) {
		first, count := r.lines(of)
		for i := first; i < first+count; i++ {
			t = append(t, uint16(semWakes(r.g.roles())+i))
		}
	}
	add(s.other())
	if s == consumerSide && r.g.mode.multiConsumer() {
		add(consumerSide)
	}
	return t
}

// take takes a role line of side s for the calling process, running
// recover on it once it holds the line's lock and before it makes it
// active. The takeover steps, and what a kill at each leaves, are in
// recovery.go.
func (r *Ring) take(s side, recover func(h *handle, prev uint64) error) (*handle, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return nil, os.ErrClosed
	}
	if r.readOnly {
		return nil, fmt.Errorf("%w: a %v takes a role, which writes the ring", ErrReadOnly, s)
	}
	first, count := r.lines(s)
	h := &handle{r: r, side: s, armed: r.deathTargets(s)}
	if err := r.agreeFor(s); err != nil {
		return nil, err
	}
	vals := make([]uint16, r.sems.Len())
	if err := r.sems.Values(vals); err != nil {
		return nil, r.semError(err)
	}
	// Lines nobody holds, those with nothing left in them first.
	var order []int
	for pass := 0; pass < 2; pass++ {
		for i := first; i < first+count; i++ {
			if vals[semLocks+i] != 0 {
				continue
			}
			e := r.roles.At(uint64(i))
			// Acquire: the line's state and claim, to choose; nothing
			// relies on them until we hold its lock.
			idle := status(e.state.Load()) == roleFree && e.claim.Load() == 0
			if idle == (pass == 0) {
				order = append(order, i)
			}
		}
	}
	for _, i := range order {
		ok, err := h.takeLine(i, recover)
		if err != nil {
			return nil, err
		}
		if ok {
			return h, nil
		}
	}
	if r.multi(s) {
		if s == consumerSide && len(order) == 0 {
			busy := 0
			for i := first; i < first+count; i++ {
				// Acquire: a line's status, for the error message.
				if status(r.roles.At(uint64(i)).state.Load()) != roleActive {
					busy++
				}
			}
			if busy > 0 {
				return nil, fmt.Errorf("%w: all %d consumer roles are held by live processes (%d of them by consumers delivering messages that another consumer left)",
					ErrRoleTaken, count, busy)
			}
		}
		return nil, fmt.Errorf("%w: all %d %s roles are held by live processes", ErrRoleTaken, count, s)
	}
	return nil, fmt.Errorf("%w: the ring is %v and a live process holds its %s role", ErrRoleTaken, r.g.mode, s)
}

// takeLine tries to take line i. It reports false if another process
// holds its lock.
func (h *handle) takeLine(i int, recover func(h *handle, prev uint64) error) (bool, error) {
	r := h.r
	if err := r.arm(h.armed, true); err != nil {
		return false, err
	}
	step("take:armed")
	if err := r.lock(i); err != nil {
		r.arm(h.armed, false)
		if errors.Is(err, semaphore.ErrWouldBlock) {
			return false, nil
		}
		return false, err
	}
	step("take:locked")
	first, _ := r.lines(h.side)
	h.idx, h.local, h.line = i, i-first, r.roles.At(uint64(i))
	e := h.line
	// Acquire: the previous holder's last state; we hold the lock, so no
	// live process writes the line but us.
	prev := e.state.Load()
	if status(prev) == roleActive {
		// Its holder died (a live one would hold the lock): say so first,
		// so that peers see a death, not a live holder, while we recover.
		// Release: publishes the status; the claim stays as it was.
		atomicx.StoreRelease(&e.state, next(prev, roleDead))
		r.ctrl.reaped.Add(1) // relaxed would do: a statistics counter
		step("take:marked")
	}
	err := recover(h, prev)
	if err == nil {
		err = h.resetWake()
	}
	if err != nil {
		h.unlockAndWake()
		return false, err
	}
	// Relaxed would do: only the release store of state publishes these.
	e.pid.Store(uint32(r.self.PID))
	e.start.Store(r.self.Start)
	e.since.Store(time.Now().UnixNano())
	// Acquire: the state as recover left it.
	h.state = next(e.state.Load(), roleActive)
	// Release, SYNC(role-state): pairs with the acquire loads of state in
	// scans; pid and start are visible with the new status.
	atomicx.StoreRelease(&e.state, h.state)
	h.token = tokenFor(i, h.state)
	step("take:active")
	return true, nil
}

// release gives the line back: status closed, lock dropped, a hand-back
// counted, peers woken to see the close, and only then death notices
// withdrawn, so that a kill at any step of it still wakes the peers, who
// then find what the line holds. The discipline has already left the
// claim as it should stay (cleared, or handed back for another consumer
// to take).
func (h *handle) release() error {
	e := h.line
	// Release, SYNC(role-state): pairs with the acquire loads of state in
	// scans and verdicts; everything this handle published is visible to a
	// peer that sees it closed.
	atomicx.StoreRelease(&e.state, next(h.state, roleClosed))
	step("release:closed")
	err := h.r.unlock(h.idx)
	step("release:unlocked")
	if h.handback {
		h.r.ctrl.handbacks.Add(1) // seq-cst: other consumers' next looks see it
	}
	h.r.wakeAll(h.side.other())
	if h.side == consumerSide && h.r.g.mode.multiConsumer() {
		h.r.wakeAll(consumerSide) // one of them may take what we handed back
	}
	err = errors.Join(err, h.r.arm(h.armed, false))
	if errors.Is(err, ErrRemoved) {
		return nil // the ring is gone, and the role with it
	}
	return err
}

// tokenFor is the owner-word token of the holder of line i in state st:
// the line and its generation, which no later holder of the line shares.
func tokenFor(i int, st uint64) uint64 { return uint64(i+1)<<40 | st>>8&(1<<40-1) }

// tokenLive reports whether the holder that token names still holds its
// line (or has died and not yet been found dead).
func (r *Ring) tokenLive(token uint64) bool {
	i := int(token>>40) - 1
	if i < 0 || i >= r.g.roles() {
		return false
	}
	// Acquire, SYNC(role-state): the line's state now.
	st := r.roles.At(uint64(i)).state.Load()
	return status(st) == roleActive && st>>8&(1<<40-1) == token&(1<<40-1)
}

// unlockAndWake gives up a line that we locked but did not make active,
// and wakes its side's peers, which may have held back a verdict while it
// was locked.
func (h *handle) unlockAndWake() {
	h.r.arm(h.armed, false)
	h.r.unlock(h.idx)
	h.r.wakeAll(h.side.other())
}

// lock takes the lock of line i if nobody holds it: one semop that waits
// for zero without sleeping and raises it with SEM_UNDO, so that the kernel
// drops it again when this process dies. It returns
// semaphore.ErrWouldBlock if a live process holds it.
func (r *Ring) lock(i int) error {
	num := uint16(semLocks + i)
	err := r.sems.Do(context.Background(),
		semaphore.Op{Num: num, Delta: 0, Flags: semaphore.NoWait},
		semaphore.Op{Num: num, Delta: 1, Flags: semaphore.Undo})
	if err != nil && !errors.Is(err, semaphore.ErrWouldBlock) {
		return r.semError(err)
	}
	return err
}

// unlock drops the lock of line i, which this process holds; the undo
// adjustment goes with it.
func (r *Ring) unlock(i int) error {
	err := r.sems.Do(context.Background(), semaphore.Op{Num: uint16(semLocks + i), Delta: -1, Flags: semaphore.Undo | semaphore.NoWait})
	if err != nil {
		return r.semError(err)
	}
	return nil
}

// arm makes the kernel post each of the semaphores in targets once when
// this process dies (on), or withdraws that (off), leaving their values
// alone: a pair of operations per target, one without and one with
// SEM_UNDO, whose sum is zero and whose undo is ±1. The pairs go in as few
// calls as the kernel's SEMOPM allows. The pair's order keeps the value in
// range: raise first where the value is below the maximum, lower first
// where it is at it.
func (r *Ring) arm(targets []uint16, on bool) error {
	if len(targets) == 0 {
		return nil
	}
	chunk := max(1, (semopMax()-2)/2)
	var vals []uint16
	for start := 0; start < len(targets); start += chunk {
		part := targets[start:min(start+chunk, len(targets))]
		for attempt := 0; ; attempt++ {
			ops := make([]semaphore.Op, 0, 2*len(part))
			for _, t := range part {
				atMax := vals != nil && vals[t] >= semaphore.MaxValue
				ops = append(ops, armPair(t, on, atMax)...)
			}
			err := r.sems.Do(context.Background(), ops...)
			if err == nil {
				break
			}
			if !errors.Is(err, semaphore.ErrRange) && !errors.Is(err, semaphore.ErrWouldBlock) || attempt >= 3 {
				return r.semError(err)
			}
			// A target is at the maximum (or was, and moved): read the
			// values and order each pair for them.
			vals = make([]uint16, r.sems.Len())
			if err := r.sems.Values(vals); err != nil {
				return r.semError(err)
			}
		}
	}
	return nil
}

// armPair returns the two operations that change this process's undo
// adjustment of semaphore t by +1 (on) or -1 (off) and leave its value.
func armPair(t uint16, on, atMax bool) []semaphore.Op {
	// An operation with Undo of delta d adds -d to the adjustment.
	d := int16(-1)
	if !on {
		d = 1
	}
	withUndo := semaphore.Op{Num: t, Delta: d, Flags: semaphore.Undo | semaphore.NoWait}
	plain := semaphore.Op{Num: t, Delta: -d, Flags: semaphore.NoWait}
	raiseFirst := !atMax
	if (withUndo.Delta > 0) == raiseFirst {
		return []semaphore.Op{withUndo, plain}
	}
	return []semaphore.Op{plain, withUndo}
}

var (
	semopOnce sync.Once
	semopVal  int
)

// semopMax returns the kernel's limit of operations per semop (SEMOPM,
// the third field of /proc/sys/kernel/sem), or 32, the oldest default.
func semopMax() int {
	semopOnce.Do(func() {
		semopVal = 32
		b, err := os.ReadFile("/proc/sys/kernel/sem")
		if err != nil {
			return
		}
		if f := strings.Fields(string(b)); len(f) >= 3 {
			if n, err := strconv.Atoi(f[2]); err == nil && n >= 4 {
				semopVal = n
			}
		}
	})
	return semopVal
}

// lineView is what a scan saw of one role line.
type lineView struct {
	state    uint64
	claim    uint64
	claimLen uint64
	locked   bool // its lock was held when the set was read
	stable   bool // its state did not change across the read of the set
}

// live reports whether the line has a live holder, or a live process at
// work on it (taking it over, or recovering it): no verdict about the
// line's side may be made while it is locked.
func (v lineView) live() bool { return v.locked || !v.stable }

// dead reports whether the line's holder died and nobody is at work on it.
func (v lineView) dead() bool {
	st := status(v.state)
	return !v.live() && (st == roleActive || st == roleDead)
}

// scanBuf is a handle's scratch for scans, so that they do not allocate.
type scanBuf struct {
	vals  []uint16
	views []lineView
	live  []int
}

// scanLines reads the role lines of the ring and the values of its locks
// in the order that makes a death certain: states and claims, then the
// semaphore values in one call, then the states again. A line that was
// active before the values were read and whose lock was 0 in them is dead
// only if its state did not change meanwhile: its holder took the lock
// before making it active and drops it only after closing it. The views
// are indexed by line and valid until the next scan of the handle.
func (h *handle) scanLines() ([]lineView, error) {
	r := h.r
	n := r.g.roles()
	if h.scan.views == nil {
		h.scan.vals = make([]uint16, r.sems.Len())
		h.scan.views = make([]lineView, n)
	}
	views := h.scan.views
	for i := range views {
		e := r.roles.At(uint64(i))
		// Acquire, SYNC(role-state): pairs with the release stores of state
		// in takeLine and release; the claim read after it is at least as
		// new.
		views[i].state = e.state.Load()
		// Acquire, SYNC(claim): pairs with the release stores of claim before
		// the claiming CAS (produce_multi.go, consume_multi.go).
		views[i].claim = e.claim.Load()
		views[i].claimLen = e.claimLen.Load()
	}
	if err := r.sems.Values(h.scan.vals); err != nil {
		return nil, r.semError(err)
	}
	h.lastCheck = time.Now()
	for i := range views {
		// Acquire: the state again, after the values.
		st := r.roles.At(uint64(i)).state.Load()
		views[i].locked = h.scan.vals[semLocks+i] != 0
		views[i].stable = st == views[i].state
	}
	return views, nil
}

// peers summarizes the lines of one side for a verdict.
type peers struct {
	live, dead, closed int
}

// count summarizes the lines of side s from a scan, or from the states
// alone when views is nil: then an active line counts as live and nothing
// is called dead.
func (r *Ring) count(s side, views []lineView) peers {
	var p peers
	first, n := r.lines(s)
	for i := first; i < first+n; i++ {
		if views != nil {
			v := views[i]
			switch {
			case v.live():
				p.live++
			case v.dead():
				p.dead++
			case status(v.state) == roleClosed:
				p.closed++
			}
			continue
		}
		// Acquire, SYNC(role-state): a line's status, for a verdict made
		// without the semaphore values; what a closed peer published before
		// closing is visible after it.
		switch status(r.roles.At(uint64(i)).state.Load()) {
		case roleActive:
			p.live++
		case roleDead:
			p.dead++
		case roleClosed:
			p.closed++
		}
	}
	return p
}

// agreeFor records, before this process's first handle of side s can
// sleep, whether its sleepers order their announcement with membarrier or
// need publishers to fence (sleepFenced, sticky for the ring's life).
func (r *Ring) agreeFor(s side) error {
	if !r.fencedSleeper {
		return nil
	}
	sl := r.sleepers[s]
	// Acquire: whether the flag is set already.
	if sl.flags.Load()&sleepFenced != 0 {
		return nil
	}
	// Release, SYNC(fence-agreement): the time first, so that a process
	// that sees the flag sees when it was set.
	sl.fenced.CompareAndSwap(0, time.Now().UnixNano())
	for {
		// Seq-cst CAS, SYNC(fence-agreement): pairs with the publishers'
		// load of flags in wake.
		f := sl.flags.Load()
		if f&sleepFenced != 0 || sl.flags.CompareAndSwap(f, f|sleepFenced) {
			return nil
		}
	}
}

// semError turns an error from the semaphore set into the ring's: a removed
// set is ErrRemoved.
func (r *Ring) semError(err error) error {
	if errors.Is(err, ErrRemoved) {
		return fmt.Errorf("ring: %w: %v", ErrRemoved, err)
	}
	return fmt.Errorf("ring: %w", err)
}

// close closes the handle: it keeps new calls out and waits for the one in
// flight (waking it if it sleeps), lets the discipline finish (abort a
// reservation, release a peeked message, hand back held ones), and gives
// the role line back. Later calls return the first result.
func (h *handle) close() error {
	h.closeOnce.Do(func() {
		h.g.shut(h.interrupt)
		zeroCopyOut := h.closer()
		h.closeErr = h.release()
		h.r.unregister(h, zeroCopyOut)
	})
	return h.closeErr
}
