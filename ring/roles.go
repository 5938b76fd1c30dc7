package ring

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

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

// lines returns the first role line of side s and how many it has.
func (r *Ring) lines(s side) (first, count int) {
	if s == producerSide {
		return 0, r.g.maxProducers
	}
	return r.g.maxProducers, r.g.maxConsumers
}

// nextState returns the state that takes a line from st to status: the
// generation goes up by one on every transition, so that no two CAS on the
// state can succeed from the same value.
func nextState(st uint64, status uint64) uint64 {
	return (st>>8+1)<<8 | status
}

// handle is what producers and consumers share: their ring, their role line
// and the scratch space of their slow paths.
type handle struct {
	r         *Ring
	side      side
	idx       int       // role line index
	line      *roleLine // the role line
	state     uint64    // the line's state while we hold it
	vals      []uint16  // semaphore values, filled by refresh
	lastCheck time.Time // last full peer check
	closed    bool
	prev      roleLine  // copy of the previous holder's claim, for recovery
	reclaimed bool      // the line was taken from a dead holder
	consumer  *Consumer // the consumer this handle serves; nil for a producer
}

// acquire takes a role line of side s for the calling process: a free or
// closed one if there is one, else one whose holder died. In the single
// modes there is one line per side, so a second live holder gets
// ErrRoleTaken.
func (r *Ring) acquire(s side) (*handle, error) {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil, os.ErrClosed
	}
	h := &handle{r: r, side: s, vals: make([]uint16, r.sems.Len())}
	pid := os.Getpid()
	start := selfStart()
	first, count := r.lines(s)
	for attempt := 0; attempt < 16; attempt++ {
		// First choice: a line nobody holds.
		taken := -1
		var st uint64
		for i := first; i < first+count && taken < 0; i++ {
			e := r.roles.At(uint64(i))
			// Acquire: read the line's state before claiming it by CAS.
			st = e.state.Load()
			if s := st & 0xff; (s == roleFree || s == roleClosed) && e.state.CompareAndSwap(st, nextState(st, roleAttaching)) {
				taken = i
			}
		}
		// Second choice: a line whose holder died.
		if taken < 0 {
			if err := h.refresh(); err != nil {
				return nil, err
			}
			for i := first; i < first+count && taken < 0; i++ {
				e := r.roles.At(uint64(i))
				// Acquire, then seq-cst CAS: take a dead holder's line; the
				// generation makes the takeover unique.
				st = e.state.Load()
				if h.lineDead(i, st) && e.state.CompareAndSwap(st, nextState(st, roleAttaching)) {
					taken = i
					h.reclaimed = true
				}
			}
		}
		if taken < 0 {
			if r.g.mode.multiProducer() && s == producerSide || r.g.mode.multiConsumer() && s == consumerSide {
				return nil, fmt.Errorf("%w: all %d %s roles are held by live processes", ErrRoleTaken, count, s)
			}
			return nil, fmt.Errorf("%w: the ring is %v and a live process holds its %s role", ErrRoleTaken, r.g.mode, s)
		}
		e := r.roles.At(uint64(taken))
		h.idx, h.line = taken, e
		attaching := nextState(st, roleAttaching)
		// The previous holder's unfinished claim, for the caller to recover:
		// a dead one's, or messages a closed consumer handed back. Acquire
		// loads: the holder is gone, these are its last values.
		h.prev.claimLen.Store(e.claimLen.Load())
		// Seq-cst swap: takes the claim exclusively, against an adopter's CAS
		// (adoptOrphans) on the same line.
		h.prev.claim.Store(e.claim.Swap(0))
		// Relaxed would do: only our CAS below publishes the line as active.
		e.pid.Store(uint32(pid))
		e.start.Store(start)
		e.claim.Store(0)
		e.claimLen.Store(0)
		// Raise the role semaphore; the kernel lowers it again if we die.
		if err := r.sems.Do(context.Background(), semaphore.Op{Num: uint16(semRoles + taken), Delta: 1, Flags: semaphore.Undo}); err != nil {
			// Seq-cst CAS: give the line back, unless a reaper took it.
			e.state.CompareAndSwap(attaching, nextState(attaching, roleFree))
			return nil, fmt.Errorf("ring: take %s role: %w", s, err)
		}
		h.state = nextState(attaching, roleActive)
		// Release, SYNC(role-active): publishes pid and start; a reaper that
		// took the line meanwhile (it thought us dead) makes this fail.
		if e.state.CompareAndSwap(attaching, h.state) {
			return h, nil
		}
		r.sems.Do(context.Background(), semaphore.Op{Num: uint16(semRoles + taken), Delta: -1, Flags: semaphore.Undo})
		h.reclaimed = false
	}
	return nil, fmt.Errorf("%w: could not take a %s role under contention", ErrRoleTaken, s)
}

// release gives the role line back: closed, role semaphore lowered (which
// cancels the kernel's undo). The claim is cleared unless keepClaim is set:
// a consumer that closes while holding messages leaves them named there for
// another consumer to take.
func (h *handle) release(keepClaim bool) error {
	e := h.line
	if !keepClaim {
		e.claim.Store(0)
		e.claimLen.Store(0)
	}
	// Release, SYNC(role-closed): the peers' checks read closed after every
	// message this handle sent or finished.
	if !e.state.CompareAndSwap(h.state, nextState(h.state, roleClosed)) {
		return fmt.Errorf("ring: %s role line %d was taken over while held", h.side, h.idx)
	}
	err := h.r.sems.Do(context.Background(), semaphore.Op{Num: uint16(semRoles + h.idx), Delta: -1, Flags: semaphore.Undo | semaphore.NoWait})
	if errors.Is(err, ErrRemoved) {
		return nil // the ring is gone, and the role with it
	}
	return err
}

// refresh reads every semaphore value of the set in one system call.
func (h *handle) refresh() error {
	if err := h.r.sems.Values(h.vals); err != nil {
		return h.r.semError(err)
	}
	h.lastCheck = time.Now()
	return nil
}

// lineDead reports whether line i, in state st, belongs to a dead process,
// by the semaphore values of the last refresh.
func (h *handle) lineDead(i int, st uint64) bool {
	switch st & 0xff {
	case roleActive:
		return h.vals[semRoles+i] == 0
	case roleAttaching:
		e := h.r.roles.At(uint64(i))
		// Acquire: pid and start of an attaching holder, which it stores
		// before it raises its semaphore.
		return h.vals[semRoles+i] == 0 && !processAlive(int(e.pid.Load()), e.start.Load())
	}
	return false
}

// peers summarizes the other side's role lines.
type peers struct {
	alive, dead, closed int
}

// peers counts the other side's lines. With full set it uses the semaphore
// values of the last refresh to tell dead holders from live ones; without
// it every held line counts as alive.
func (h *handle) peers(full bool) peers {
	var p peers
	first, count := h.r.lines(1 - h.side)
	for i := first; i < first+count; i++ {
		// Acquire: the status of a peer's line.
		st := h.r.roles.At(uint64(i)).state.Load()
		switch {
		case st&0xff == roleClosed:
			p.closed++
		case st&0xff == roleFree:
		case full && h.lineDead(i, st):
			p.dead++
		default:
			p.alive++
		}
	}
	return p
}

// liveClaimCovers reports whether a live line of side s other than skip has
// claimed position pos and not finished it.
func (h *handle) liveClaimCovers(s side, pos uint64, skip int) bool {
	first, count := h.r.lines(s)
	for i := first; i < first+count; i++ {
		if i == skip {
			continue
		}
		e := h.r.roles.At(uint64(i))
		// Acquire: the line's status, before its claim below.
		st := e.state.Load()
		if st&0xff != roleActive && st&0xff != roleAttaching || h.lineDead(i, st) {
			continue
		}
		// Acquire, SYNC(claim): pairs with the release store of claim made
		// before the claiming CAS in claimMulti.
		if c := e.claim.Load(); c != 0 && pos >= c-1 && pos < c-1+e.claimLen.Load() {
			return true
		}
	}
	return false
}

// recoverProducerClaim skips the slots that a dead producer claimed and
// never committed, so that consumers can pass them. claim and n are the dead
// line's claim; line is its index. A slot is skipped only if it still waits
// for its producer (seq < pos+1), the tail has passed it, and no live
// producer claims it. It returns how many slots it skipped.
func (h *handle) recoverProducerClaim(line int, claim, n uint64) int {
	if claim == 0 {
		return 0
	}
	r := h.r
	// Acquire: the tail, read before the slots it bounds.
	tail := r.prod.pos.Load()
	skipped := 0
	for pos := claim - 1; pos < claim-1+n && pos < tail; pos++ {
		s := r.slots.At(pos & r.mask)
		// Acquire: the slot's state before deciding to skip it. Below pos+1
		// it has not been published for pos (it holds pos, or in the
		// single-consumer modes a value of an earlier lap).
		seq := s.seq.Load()
		if seq&^seqSkip >= pos+1 || h.liveClaimCovers(producerSide, pos, line) {
			continue
		}
		// Release, SYNC(slot-publish): the skip mark is a publication; CAS so
		// that it cannot overwrite a commit or another recoverer's mark.
		if s.seq.CompareAndSwap(seq, (pos+1)|seqSkip) {
			// Relaxed would do: a statistics counter.
			r.ctrl.recovered.Add(1)
			skipped++
		}
	}
	return skipped
}

// recoverDeadProducers runs recoverProducerClaim over every dead producer
// line and clears their claims. Consumers call it when the ring looks stuck.
func (h *handle) recoverDeadProducers() int {
	if !h.r.g.mode.multiProducer() {
		return 0
	}
	total := 0
	first, count := h.r.lines(producerSide)
	for i := first; i < first+count; i++ {
		e := h.r.roles.At(uint64(i))
		// Acquire: the line's status, then the dead holder's last claim.
		st := e.state.Load()
		if !h.lineDead(i, st) {
			continue
		}
		c, n := e.claim.Load(), e.claimLen.Load()
		total += h.recoverProducerClaim(i, c, n)
		// Seq-cst CAS: the claim is handled; a CAS so that a newer value is
		// never lost.
		e.claim.CompareAndSwap(c, 0)
	}
	return total
}

// semError turns an error from the semaphore set into the ring's: a removed
// set is ErrRemoved.
func (r *Ring) semError(err error) error {
	if errors.Is(err, ErrRemoved) {
		return fmt.Errorf("ring: %w: %v", ErrRemoved, err)
	}
	return fmt.Errorf("ring: %w", err)
}

var (
	selfStartOnce sync.Once
	selfStartVal  uint64
)

// selfStart returns this process's start time, read once.
func selfStart() uint64 {
	selfStartOnce.Do(func() { selfStartVal, _ = processStart(os.Getpid()) })
	return selfStartVal
}

// processStart returns the start time of process pid in clock ticks after
// boot: field 22 of /proc/pid/stat. With the pid, it names a process
// uniquely, since a reused pid has a later start.
func processStart(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("ring: malformed /proc/%d/stat", pid)
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return 0, fmt.Errorf("ring: malformed /proc/%d/stat", pid)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// processAlive reports whether the process with this pid and start time
// still runs.
func processAlive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	got, err := processStart(pid)
	return err == nil && got == start
}
