package ring

import (
	"fmt"

	"github.com/shmring/shmring/internal/atomicx"
)

// multiSender is the discipline of one producer among many (MPSC, MPMC).
// Producers claim positions by moving the shared tail with a CAS. Before
// the CAS, a producer names the positions on its role line (claim,
// claimLen), so that if it dies between the CAS and the publication, a
// consumer finds them and skips them (recovery.go); it clears the claim
// after publishing. A claim whose CAS failed is rewritten or cleared before
// the producer does anything else. The claim is marked an intent until the
// CAS has succeeded: a recoverer ignores positions that the tail has not
// passed or that a live producer's confirmed claim covers, and comes back
// later to those under a live producer's intent, which is settled within
// the producer's next few instructions.
//
// As with a single producer, a position is free by the head with one
// consumer (checked against a cached head) and by its slot's sequence word
// with several.
type multiSender struct {
	r      *Ring
	line   *roleLine
	head   uint64 // single consumer: the last head read
	byHead bool
}

// casAttempts bounds a claim's retries when other producers keep winning
// the tail: a claim that loses that often reports nothing free, and a
// blocking call waits and tries again, watching its context.
const casAttempts = 256

func newMultiSender(h *handle) (*multiSender, error) {
	r := h.r
	if err := h.recoverProducerClaim(h.idx); err != nil {
		return nil, err
	}
	s := &multiSender{r: r, line: h.line, byHead: !r.g.mode.multiConsumer()}
	if s.byHead {
		// Acquire, SYNC(head-release), as in claim.
		s.head = r.cons.pos.Load()
	}
	return s, nil
}

func (s *multiSender) claim(k uint64) (pos, n uint64, err error) {
	pos, n, named, err := s.tryClaim(k, false)
	if named && n == 0 {
		// Release, SYNC(claim): our line names a claim whose CAS failed:
		// nothing claimed after all.
		atomicx.StoreRelease(&s.line.claim, 0)
	}
	return pos, n, err
}

// tryClaim is claim, which reports named if it left an intent on our line.
// With all, it claims k positions or none (a message spanning slots).
func (s *multiSender) tryClaim(k uint64, all bool) (pos, n uint64, named bool, err error) {
	r := s.r
	for attempt := 0; attempt < casAttempts; attempt++ {
		// Acquire: the shared tail.
		pos, n = r.prod.pos.Load(), 0
		if s.byHead {
			if pos-s.head+k > r.n || s.head > pos {
				// Acquire, SYNC(head-release): the consumer's head, then the
				// tail again: read in this order, head ≤ tail always.
				head := r.cons.pos.Load()
				pos = r.prod.pos.Load()
				if head > pos {
					return 0, 0, named, fmt.Errorf("%w: the head %d is past the tail %d", ErrCorrupt, head, pos)
				}
				s.head = head
			}
			if pos-s.head >= r.n {
				return pos, 0, named, nil
			}
			n = min(k, s.head+r.n-pos)
		} else {
			var first uint64 // the sequence word of pos, as the count saw it
			for ; n < k; n++ {
				// Acquire, SYNC(slot-release): pairs with the consumers'
				// release store of seq = p+N.
				seq := r.descs.At((pos + n) & r.mask).seq.Load()
				if n == 0 {
					first = seq
				}
				if seq != pos+n {
					break
				}
			}
			if n == 0 {
				if first&^(seqSkip|seqHeld) < pos {
					return pos, 0, named, nil // it still holds the message of pos-N: full
				}
				// Another producer claimed pos, by moving the tail before
				// writing the slot. Acquire: the tail again, after the slot.
				if r.prod.pos.Load() == pos {
					return 0, 0, named, fmt.Errorf("%w: slot of position %d has sequence %#x, and the tail has not passed it", ErrCorrupt, pos, first)
				}
				continue
			}
		}
		if all && n < k {
			return pos, 0, named, nil // not room enough for the whole span now
		}
		// Release, SYNC(claim): the intent is visible before the CAS that
		// makes it ours, to recoverers (recoverProducerClaim, coveredByLive).
		atomicx.StoreRelease(&s.line.claimLen, n|claimIntent)
		atomicx.StoreRelease(&s.line.claim, pos+1)
		named = true
		// Seq-cst CAS: claims [pos, pos+n).
		if r.prod.pos.CompareAndSwap(pos, pos+n) {
			// Release, SYNC(claim): confirmed, the positions are ours.
			atomicx.StoreRelease(&s.line.claimLen, n)
			return pos, n, named, nil
		}
	}
	return 0, 0, named, nil
}

func (s *multiSender) publish(pos, n uint64, bytes int) {
	r := s.r
	for i := uint64(0); i < n; i++ {
		// Release, SYNC(slot-publish): pairs with the consumers' acquire
		// load of seq; the slot's descriptor and payload are visible to them.
		atomicx.StoreRelease(&r.descs.At((pos+i)&r.mask).seq, pos+i+1)
	}
	// Release, SYNC(claim): the claim is finished, after its commits.
	atomicx.StoreRelease(&s.line.claim, 0)
	s.line.count(n, bytes)
	if r.maySleep(consumerSide) { // wake sleeping consumers: the busy test inline
		r.wakePublished(pos, n)
	}
}

// sendOne is claim, write and publish for one message.
func (s *multiSender) sendOne(typ int64, data []byte) (bool, error) {
	pos, n, err := s.claim(1)
	if n == 0 || err != nil {
		return false, err
	}
	s.r.writeSlot(pos, typ, data)
	s.publish(pos, 1, len(data))
	return true, nil
}

func (s *multiSender) abort(pos uint64) {
	r := s.r
	if r.g.selective {
		// Release, SYNC(slot-release): selective consumers take a slot
		// with seq p+N for consumed, and free nothing in order, so the
		// slot is simply free again.
		atomicx.StoreRelease(&r.descs.At(pos&r.mask).seq, pos+r.n)
		atomicx.StoreRelease(&s.line.claim, 0) // Release, SYNC(claim): finished
		r.wakeProducers(1)
		return
	}
	// Release, SYNC(slot-publish): a skip mark, as recoverProducerClaim
	// makes.
	atomicx.StoreRelease(&r.descs.At(pos&r.mask).seq, (pos+1)|seqSkip)
	// Release, SYNC(claim): finished.
	atomicx.StoreRelease(&s.line.claim, 0)
	if r.maySleep(consumerSide) && !r.g.selective { // a skip is nothing a selector takes
		r.wakeFenced(consumerSide, 1)
	}
}
