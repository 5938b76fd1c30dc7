package ring

import (
	"fmt"
	"time"

	"github.com/shmring/shmring/internal/atomicx"
)

// multiReceiver is the discipline of one consumer among many (SPMC, MPMC).
// Consumers claim positions by moving the shared head with a CAS, after
// naming them on their role line, and free each slot by storing its
// sequence word (seq = p+N), for which the producer of p+N waits. A
// consumer holds the positions it claimed until it has delivered them, so
// a message too large for the caller's buffer waits for its next call.
//
// A consumer serves one claim at a time, from one line: its own claim, or
// the claim left on another consumer's line by a consumer that closed
// holding messages or died (recovery.go). Serving another line's claim, it
// holds that line's lock, and it checks each position, because a dead
// consumer may have named positions it never won: it delivers only
// positions that were behind the head when it took the claim over, are
// still published for themselves, and that no live consumer claims, and it
// finishes each by CAS (or holds it in place by CAS, seqHeld), so that a
// position two lines name is delivered once.
type multiReceiver struct {
	h   *handle
	r   *Ring
	own *roleLine

	src     *roleLine // the line whose claim we serve: own, or one whose lock we hold
	srcIdx  int
	at, end uint64 // positions [at, end) of that claim not yet finished
	checked bool   // the claim came from another process: check each position
	headAt  uint64 // checked: the head when we took the claim over
	live    []int  // checked: the lines of live consumers then
	flagPos uint64 // checked: position+1 of the first message its dead holder was looking at in place
	flagEnd uint64 // checked: the end of those messages (PeekBatch held several)
	curSeq  uint64 // the sequence word front saw for next

	named     bool   // our own line names a claim (or an intent) we must clear
	look      bool   // look for claims left by others at the next chance
	peekSet   bool   // our line names a position we look at
	peekEnd   uint64 // the end of the positions our line names as looked at
	seen      bool   // the position delivered now was looked at by a consumer that died
	handbacks uint64 // the ring's handback count when we last looked
	freed     uint64 // slots freed since the last done
}

func newMultiReceiver(h *handle) (*multiReceiver, error) {
	r := h.r
	// look: handbacks counted before we came are ours to find too.
	m := &multiReceiver{h: h, r: r, own: h.line, src: h.line, srcIdx: h.idx, look: true}
	// Acquire: the ring's handback count.
	m.handbacks = r.ctrl.handbacks.Load()
	// The line's previous holder may have left a claim: serve it.
	if err := m.serve(h.idx, h.line); err != nil {
		return nil, err
	}
	return m, nil
}

// serve takes over the claim on line i, whose lock we hold, if it has
// one.
func (m *multiReceiver) serve(i int, e *roleLine) error {
	r := m.r
	// Acquire, before the scan: positions behind this head were claimed
	// before the scan, so their live claimants are in it.
	head := r.cons.pos.Load()
	// Acquire: the claim, written only by holders of the line's lock. An
	// intent of a dead holder is served like a claim: each position is
	// checked anyway.
	claim, n := e.claim.Load(), e.claimLen.Load()&^claimIntent
	if claim == 0 {
		return nil
	}
	if n > r.n {
		return fmt.Errorf("%w: consumer line %d claims %d positions of a ring of %d", ErrCorrupt, i, n, r.n)
	}
	views, err := m.h.scanLines()
	if err != nil {
		return err
	}
	m.live = m.live[:0]
	first, count := r.lines(consumerSide)
	for j := first; j < first+count; j++ {
		if j != i && j != m.h.idx && views[j].live() {
			m.live = append(m.live, j)
		}
	}
	m.src, m.srcIdx = e, i
	m.at, m.end, m.checked, m.headAt = claim-1, claim-1+n, true, head
	trace("line %d serves line %d: [%d, %d), head %d, live %v", m.h.idx, i, claim-1, claim-1+n, head, m.live)
	// Acquire: what its holder was looking at in place.
	m.flagPos, m.flagEnd = e.peek.Load(), 0
	if m.flagPos != 0 {
		m.flagEnd = heldEnd(r, e, m.flagPos-1)
	}
	step("adopt:serving")
	return nil
}

func (m *multiReceiver) next(k uint64) (pos uint64, ok bool, err error) {
	pos, ok, err = m.find(k)
	if !ok {
		// Skipped slots freed on the way are given back now: producers may
		// wait for them, and no done follows.
		m.freedDone()
	}
	return pos, ok, err
}

// find is next but for the skipped slots it frees.
func (m *multiReceiver) find(k uint64) (pos uint64, ok bool, err error) {
	for attempt := 0; attempt < casAttempts; attempt++ {
		if m.at < m.end {
			pos, ok, wait, err := m.front()
			if err != nil || ok || wait {
				return pos, ok, err
			}
			continue // the claim is finished; find another
		}
		// Acquire: a consumer that closed holding messages bumps the count.
		if hb := m.r.ctrl.handbacks.Load(); hb != m.handbacks || m.look {
			trace("line %d sees handbacks %d (had %d, look %v)", m.h.idx, hb, m.handbacks, m.look)
			m.handbacks, m.look = hb, false
			if ok, err := m.adopt(); err != nil || ok {
				if err != nil {
					return 0, false, err
				}
				continue
			}
		}
		// Claimed, or another consumer won the head: look again either way.
		if empty, err := m.claimHead(k); err != nil || empty {
			return 0, false, err
		}
	}
	m.clearIntent()
	return 0, false, nil
}

// claimHead claims up to k published positions at the head, unless another
// consumer claims them first. It reports empty when none is published
// there.
func (m *multiReceiver) claimHead(k uint64) (empty bool, err error) {
	r := m.r
	// Acquire: the head, then the slots after it.
	pos, n := r.cons.pos.Load(), uint64(0)
	var first uint64 // the sequence word of pos, as the count saw it
	for ; n < k; n++ {
		// Acquire, SYNC(slot-publish): pairs with the producers' release
		// store of seq; published, or skipped.
		seq := r.descs.At((pos + n) & r.mask).seq.Load()
		if n == 0 {
			first = seq
		}
		if seq != pos+n+1 && seq != (pos+n+1)|seqSkip {
			break
		}
	}
	if n == k && r.spanning() {
		n = r.spanEnd(pos, n) // whole spans only (span.go)
	}
	if n == 0 {
		if first&^(seqSkip|seqHeld) <= pos {
			m.clearIntent()
			return true, nil // not published yet
		}
		// Another consumer claimed pos, by moving the head before it
		// finished the slot. Acquire: the head again, after the slot.
		if r.cons.pos.Load() == pos {
			m.clearIntent()
			return false, fmt.Errorf("%w: slot of position %d has sequence %#x, and the head has not passed it", ErrCorrupt, pos, first)
		}
		return false, nil
	}
	// Release, SYNC(claim): the intent is visible before the CAS that makes
	// it ours, to consumers that check a dead one's claim (coveredByLive).
	atomicx.StoreRelease(&m.own.claimLen, n|claimIntent)
	atomicx.StoreRelease(&m.own.claim, pos+1)
	m.named = true
	// Seq-cst CAS: claims [pos, pos+n).
	if !r.cons.pos.CompareAndSwap(pos, pos+n) {
		return false, nil
	}
	// Release, SYNC(claim): confirmed, the positions are ours.
	atomicx.StoreRelease(&m.own.claimLen, n)
	m.src, m.srcIdx = m.own, m.h.idx
	m.at, m.end, m.checked = pos, pos+n, false
	return false, nil
}

// clearIntent clears a claim our line names that we do not hold: one whose
// CAS failed.
func (m *multiReceiver) clearIntent() {
	if m.named && m.at >= m.end {
		// Release, SYNC(claim): nothing claimed.
		atomicx.StoreRelease(&m.own.claim, 0)
		m.named = false
	}
}

// front returns the next position of the claim we serve that holds a
// message for us, freeing skipped slots on the way. When the claim is
// finished it lets it go and reports false. It reports wait when the next
// position may still be a live consumer's: then nothing is finished and
// the caller tries again later.
func (m *multiReceiver) front() (pos uint64, ok, wait bool, err error) {
	r := m.r
	for m.at < m.end {
		pos := m.at
		s := r.descs.At(pos & r.mask)
		// Acquire, SYNC(slot-publish): pairs with the producers' release
		// store of seq; the slot's descriptor and payload are visible.
		seq := s.seq.Load()
		if m.checked {
			switch c := m.ours(pos, seq); c {
			case owned:
				trace("line %d serving line %d: position %d is not ours (seq %d, head then %d, live %v)", m.h.idx, m.srcIdx, pos, seq, m.headAt, m.live)
				m.at++
				continue
			case unsure:
				trace("line %d serving line %d: position %d unsure", m.h.idx, m.srcIdx, pos)
				m.h.recheck = true
				return 0, false, true, nil
			}
		}
		switch {
		case seq == pos+1 || seq == (pos+1)|seqHeld:
			m.curSeq = seq
			return pos, true, false, nil
		case seq == (pos+1)|seqSkip:
			m.free(pos, seq)
			m.at++
		default:
			// We claimed pos at the head, where it was published; nobody
			// else may have touched it since.
			return 0, false, false, fmt.Errorf("%w: slot of claimed position %d has sequence %#x", ErrCorrupt, pos, seq)
		}
	}
	m.letGo()
	return 0, false, false, nil
}

// ours decides whether pos, of another process's claim, is for us to
// deliver (notCovered), someone else's or finished (owned), or possibly a
// live consumer's, which is settled in a moment (unsure).
func (m *multiReceiver) ours(pos, seq uint64) cover {
	switch {
	case pos >= m.headAt:
		return owned // never claimed when we took the claim over
	case seq&^(seqSkip|seqHeld) != pos+1:
		return owned // finished
	case m.r.spanning() && seq == pos+1:
		if c, decided := m.spanCover(pos); decided {
			return c // a continuation whose head is still to come (span.go)
		}
	case seq&seqHeld != 0:
		// Acquire, SYNC(slot-owner): pairs with the CAS of the owner word
		// in acquireSlot.
		if o := m.r.descs.At(pos & m.r.mask).owner.Load(); o != m.h.token && m.r.tokenLive(o) {
			return unsure // a live consumer looks at it in place: it will finish it
		}
	}
	c := m.r.coveredByLive(m.live, pos)
	if c == unsure && time.Since(m.h.lastCheck) >= recheckSlice && m.dropDeadIntents() {
		c = m.r.coveredByLive(m.live, pos)
	}
	return c
}

// dropDeadIntents drops from live the lines whose holder is gone (a scan
// finds them unlocked) and that name an intent, and reports whether it
// dropped any. Such an intent would answer unsure for good: its holder
// will neither confirm it nor take it back, and, serving a claim, we take
// over no other before ours is finished. Whoever serves the dropped line
// checks its positions as we check ours, and a position that both claims
// name is finished once (free). At most one scan a recheckSlice.
func (m *multiReceiver) dropDeadIntents() bool {
	views, err := m.h.scanLines()
	if err != nil {
		return false
	}
	kept := m.live[:0]
	for _, j := range m.live {
		if v := views[j]; !v.live() && v.claim != 0 && v.claimLen&claimIntent != 0 {
			trace("line %d serving line %d: line %d died naming an intent", m.h.idx, m.srcIdx, j)
			continue
		}
		kept = append(kept, j)
	}
	dropped := len(kept) < len(m.live)
	m.live = kept
	return dropped
}

// acquireSlot makes pos, a position of another process's claim, ours alone
// before we finish or hold it: it takes the slot's owner word, from nobody
// or from a holder that is gone. It reports false if a live consumer holds
// it. (Positions of our own claim, won at the head, are ours already.)
func (m *multiReceiver) acquireSlot(pos uint64) bool {
	d := m.r.descs.At(pos & m.r.mask)
	// Acquire, SYNC(slot-owner): the word, then a CAS from what it said.
	o := d.owner.Load()
	if o == m.h.token {
		return true
	}
	if o != 0 && m.r.tokenLive(o) {
		return false
	}
	// Seq-cst CAS, SYNC(slot-owner): pairs with the loads in ours and
	// acquireSlot of other consumers.
	return d.owner.CompareAndSwap(o, m.h.token)
}

// releaseSlot gives up the owner word of pos, if we hold it.
func (m *multiReceiver) releaseSlot(pos uint64) {
	// Seq-cst CAS, SYNC(slot-owner): after the slot's sequence word, so
	// that an owner word names a holder only while it holds the slot.
	m.r.descs.At(pos&m.r.mask).owner.CompareAndSwap(m.h.token, 0)
}

// free gives the slot of pos back to the producers.
func (m *multiReceiver) free(pos, seq uint64) bool {
	s := m.r.descs.At(pos & m.r.mask)
	if m.checked {
		// Release, SYNC(slot-release), by CAS: a position two lines name
		// is finished once.
		if !s.seq.CompareAndSwap(seq, pos+m.r.n) {
			return false
		}
	} else {
		// Release, SYNC(slot-release): pairs with the producers' acquire
		// load in claim; our reads of the slot are done before it is
		// refilled.
		atomicx.StoreRelease(&s.seq, pos+m.r.n)
	}
	m.freed++
	return true
}

func (m *multiReceiver) take(pos uint64) bool {
	if m.checked && m.curSeq&seqHeld != 0 && !m.acquireSlot(pos) {
		return false // a live consumer took it over meanwhile: try again
	}
	m.noteSeen(pos)
	ok := m.free(pos, m.curSeq)
	if m.checked {
		m.releaseSlot(pos)
	}
	m.at++
	if m.at == m.end {
		m.letGo()
	}
	return ok
}

func (m *multiReceiver) hold(pos uint64) bool {
	if !m.checked {
		m.seen = false
		// Release, SYNC(claim): our line names the message we look at before
		// we hand it out, so that whoever serves our claim after us delivers
		// it again, flagged, if we die.
		atomicx.StoreRelease(&m.src.peek, pos+1)
		m.peekSet, m.peekEnd = true, pos+1
		return true
	}
	// Another process's claim: the slot itself says that it is held, and
	// by whom (its owner word, taken first), so that a consumer serving
	// any line that names it finds out, and one that finds the holder dead
	// takes it over, flagged.
	if !m.acquireSlot(pos) {
		return false // a live consumer holds it: front says so next time
	}
	step("hold:owned")
	m.noteSeen(pos)
	if m.curSeq&seqHeld != 0 {
		return true // held by one that died: we go on with it
	}
	// Seq-cst CAS, SYNC(slot-publish): the slot is held for pos; a
	// consumer that finished it first makes this fail.
	if !m.r.descs.At(pos&m.r.mask).seq.CompareAndSwap(m.curSeq, m.curSeq|seqHeld) {
		m.releaseSlot(pos)
		return false
	}
	m.curSeq |= seqHeld
	step("hold:held")
	return true
}

func (m *multiReceiver) following(first, k uint64) uint64 {
	if m.checked {
		return 0 // another's claim: held slot by slot, one at a time
	}
	// Positions of our own claim, which we won at the head published or
	// skipped.
	return publishedAfter(m.r, first, min(k, m.end-first-1))
}

func (m *multiReceiver) holdTo(_, end uint64) {
	// Release, SYNC(claim): our line names the messages we look at before
	// we hand them out, as hold does for the first.
	atomicx.StoreRelease(&m.src.peekEnd, end)
	m.peekEnd = end
}

// more extends a run of our own claim: first with the published positions
// of the claim after it, then, once the run reaches the claim's end, by
// growing the claim at the head (grow). A claim of another process's is
// held one position at a time, as following says.
func (m *multiReceiver) more(_, end, k uint64) uint64 {
	if m.checked || end > m.end {
		return 0
	}
	n := publishedAfter(m.r, end-1, min(k, m.end-end))
	if end+n == m.end && n < k {
		n += m.grow(k - n)
	}
	return n
}

// grow claims up to k published positions at the head for our claim, if
// the head is still at the claim's end (no consumer claimed after us), and
// reports how many. The line's claim starts at at first, past what is
// finished (narrowStart), so that it stays within the ring's size however
// long the run slides on; then it names the grown claim as an intent; then
// the CAS; then the claim. Every state in between names at least what we
// hold, and names more only as an intent (positions beyond what we hold
// are checked by whoever serves the line): a kill at any point leaves a
// claim a successor serves. Rings of messages spanning slots do not grow
// claims here: claimHead keeps spans whole.
func (m *multiReceiver) grow(k uint64) uint64 {
	r := m.r
	if r.spanning() || m.at >= m.end || m.src != m.own {
		return 0
	}
	// Acquire: the head, then the slots after it, as in claimHead.
	if r.cons.pos.Load() != m.end {
		return 0 // another consumer claimed after us
	}
	n := uint64(0)
	for ; n < min(k, r.n-(m.end-m.at)); n++ {
		pos := m.end + n
		// Acquire, SYNC(slot-publish): pairs with the producers' release
		// store of seq; published for pos.
		if r.descs.At(pos&r.mask).seq.Load() != pos+1 {
			break
		}
	}
	if n == 0 {
		return 0
	}
	// Acquire: our own line's claim (only we write it).
	if m.own.claim.Load() != m.at+1 {
		// The claim's start moves up to what is not finished
		// (narrowStart); the grown claim's intent below gives its length.
		m.narrowStart(m.own)
		step("window:narrowed")
	}
	// Release, SYNC(claim): the intent, before the CAS that makes it ours,
	// as in claimHead.
	atomicx.StoreRelease(&m.own.claimLen, (m.end+n-m.at)|claimIntent)
	step("window:intent")
	// Seq-cst CAS: claims [end, end+n).
	if !r.cons.pos.CompareAndSwap(m.end, m.end+n) {
		// Release, SYNC(claim): not ours; the claim as it was.
		atomicx.StoreRelease(&m.own.claimLen, m.end-m.at)
		return 0
	}
	step("window:grown")
	// Release, SYNC(claim): confirmed, the positions are ours.
	atomicx.StoreRelease(&m.own.claimLen, m.end+n-m.at)
	m.end += n
	return n
}

func (m *multiReceiver) slide(first, _ uint64) {
	if m.checked || !m.peekSet {
		return // one position at a time, named by its slot
	}
	// Release, SYNC(claim): our line names the first position we still
	// look at, after release freed the slots before it; a successor that
	// finds the old name finds those slots finished.
	atomicx.StoreRelease(&m.src.peek, first+1)
}

func (m *multiReceiver) release(pos uint64) {
	s := m.r.descs.At(pos & m.r.mask)
	// Release, SYNC(slot-release): the position is ours alone (claimed at
	// the head, or held by its owner word).
	atomicx.StoreRelease(&s.seq, pos+m.r.n)
	m.freed++
	if m.checked {
		m.releaseSlot(pos)
	} else if pos+1 >= m.peekEnd {
		// Release, SYNC(claim): finished, the last of what the line
		// names, after the slot.
		atomicx.StoreRelease(&m.src.peek, 0)
		m.peekSet = false
	}
	m.at++
	if m.at == m.end {
		m.letGo()
	}
}

func (m *multiReceiver) done(n uint64, bytes int) {
	m.own.count(n, bytes)
	if m.freed > 0 {
		if m.r.maySleep(producerSide) { // wakeProducers, inline
			m.r.wakeFenced(producerSide, uint32(min(m.freed, 1<<31)))
		}
		m.freed = 0
	}
}

func (m *multiReceiver) receiveOne(buf []byte) (int, int64, bool, error) {
	return receiveOne(m, m.r, buf)
}

// noteSeen records, for redelivered, whether the message at pos of the
// claim we serve was looked at in place by a consumer that died: it was
// held (the slot says so), or its line named it in peek.
func (m *multiReceiver) noteSeen(pos uint64) {
	m.seen = m.checked && (m.curSeq&seqHeld != 0 || m.flagPos != 0 && pos+1 >= m.flagPos && pos < m.flagEnd)
}

func (m *multiReceiver) redelivered(uint64) bool {
	if !m.seen {
		return false
	}
	m.seen = false
	m.r.ctrl.redelivered.Add(1) // relaxed would do: a statistics counter
	return true
}

// letGo ends the claim we served: the line no longer names it, and a line
// other than ours is unlocked, and its side woken, since its lock held
// their verdicts back.
func (m *multiReceiver) letGo() {
	// Release, SYNC(claim): finished, after every slot of it was freed.
	atomicx.StoreRelease(&m.src.claim, 0)
	if m.checked || m.peekSet {
		atomicx.StoreRelease(&m.src.peek, 0)
		m.peekSet = false
	}
	if m.src != m.own {
		m.r.unlock(m.srcIdx)
		m.r.wakeAll(producerSide)
		m.r.wakeAll(consumerSide)
		step("adopt:done")
	}
	// Several claims may have been left at once: after one, look for more.
	m.look = m.look || m.checked
	m.src, m.srcIdx = m.own, m.h.idx
	m.at, m.end, m.checked, m.named = 0, 0, false, false
	m.flagPos, m.flagEnd = 0, 0
	m.live = m.live[:0]
}

// adopt takes over the claim of a closed or dead consumer's line, if one is
// left, and reports whether it did.
func (m *multiReceiver) adopt() (bool, error) {
	r := m.r
	views, err := m.h.scanLines()
	if err != nil {
		return false, err
	}
	first, count := r.lines(consumerSide)
	for j := first; j < first+count; j++ {
		v := views[j]
		if j == m.h.idx || v.claim == 0 || v.live() || status(v.state) != roleClosed && !v.dead() {
			if j != m.h.idx && v.claim != 0 {
				trace("line %d passes line %d: claim %d live %v status %d", m.h.idx, j, v.claim, v.live(), status(v.state))
			}
			continue
		}
		if r.lock(j) != nil {
			trace("line %d cannot lock line %d", m.h.idx, j)
			continue // another consumer is at it
		}
		e := r.roles.At(uint64(j))
		// Acquire: the line as its last holder left it; we hold its lock.
		if st := e.state.Load(); status(st) == roleActive {
			// Release: peers see a death, not a live holder.
			atomicx.StoreRelease(&e.state, next(st, roleDead))
			r.ctrl.reaped.Add(1) // relaxed would do: a statistics counter
		}
		step("adopt:locked")
		if err := m.serve(j, e); err != nil {
			r.unlock(j)
			return false, err
		}
		if m.src == e {
			return true, nil
		}
		r.unlock(j) // nothing left on it
	}
	return false, nil
}

// recoverPeers is the scan's clean-up for a consumer among many: the dead
// are marked and dead producers' claims recovered, and a claim left by a
// dead or closed consumer is taken over if we hold none.
func (m *multiReceiver) recoverPeers(views []lineView) (bool, error) {
	progress, err := m.h.reapDead(views)
	if err != nil || m.at < m.end {
		return progress, err
	}
	first, count := m.r.lines(consumerSide)
	for j := first; j < first+count; j++ {
		if v := views[j]; j != m.h.idx && v.claim != 0 && !v.live() {
			ok, err := m.adopt()
			return progress || ok, err
		}
	}
	return progress, nil
}

// close hands back the positions we hold and have not delivered: they stay
// on the line we serve, narrowed to what is left, for another consumer.
func (m *multiReceiver) close() {
	if m.at >= m.end {
		m.clearIntent()
		return
	}
	// What is left of the claim (narrowStart), then its length, confirmed.
	m.narrowStart(m.src)
	step("handback:start")
	// Release, SYNC(claim): the claim is [at, end), no more.
	atomicx.StoreRelease(&m.src.claimLen, m.end-m.at)
	trace("line %d closes, handing back [%d, %d) on line %d", m.h.idx, m.at, m.end, m.srcIdx)
	if m.flagPos != 0 && m.flagEnd <= m.at {
		atomicx.StoreRelease(&m.src.peek, 0)
	}
	if m.src != m.own {
		m.r.unlock(m.srcIdx)
	}
	m.h.handback = true // counted once our line is closed and unlocked too
	m.freedDone()
}

// narrowStart moves the start of the claim line e names, [start, end),
// up to at, the first position not finished, keeping its end for the
// caller to store next. Start and length are two words: with the start
// moved and the length not yet, the line names [at, at+end-start), more
// than the claim. The length is marked an intent first, so that a
// consumer that checks a position after end against the live lines
// (coveredByLive) finds it unsure, and looks again, instead of taking it
// for ours and passing it over: it may be the next claim's, left by a
// consumer that closed or died. A successor of ours finds a claim to
// serve in every state (an intent is served as a claim), covering at
// least [at, end); positions beyond it it checks, as any.
func (m *multiReceiver) narrowStart(e *roleLine) {
	// Release, SYNC(claim): the length, marked, before the start moves.
	// The load needs no order: we are the line's only writer (its holder,
	// or the holder of its lock).
	atomicx.StoreRelease(&e.claimLen, e.claimLen.Load()|claimIntent)
	// Release, SYNC(claim): the start; pairs with the loads of claim and
	// claimLen in coveredByLive, which finds the mark with any moved start.
	atomicx.StoreRelease(&e.claim, m.at+1)
}

// freedDone wakes producers for slots freed since the last done.
func (m *multiReceiver) freedDone() {
	if m.freed > 0 {
		m.r.wakeProducers(uint32(min(m.freed, 1<<31)))
		m.freed = 0
	}
}
