package ring

import (
	"fmt"

	"github.com/shmring/shmring/internal/atomicx"
)

// singleSender is the discipline of the only producer of a ring (SPSC,
// SPMC). It owns the tail: positions from tail on are its to fill, and
// nobody else writes the tail. It publishes a slot with one release store
// of its sequence word. It stores the tail only every min(tailEvery, N/2)
// positions: Stats and a successor find the slots published after the last
// store by looking (Ring.publishedFrom), so the busy path is spared a store
// per message.
//
// Whether a position is free depends on the consumers' discipline: one
// consumer frees slots by moving the head, so the slot of p is free once
// head > p-N, which the producer checks against a cached copy of the head
// and reads the consumer's line only when the copy says full; several
// consumers free each slot by storing its sequence word, so the slot of p
// is free when seq == p.
type singleSender struct {
	r      *Ring
	line   *roleLine
	tail   uint64 // next position to fill; the ring's tail lags it by less than every
	block  uint64 // ^(positions between stores of the tail - 1): a power of two
	head   uint64 // single consumer: the last head read, never ahead of the real one
	byHead bool   // one consumer: free slots are told by the head
}

// tailEvery bounds the positions a single producer publishes between two
// stores of the tail; a power of two.
const tailEvery = 64

func newSingleSender(h *handle) (*singleSender, error) {
	r := h.r
	// Acquire: our predecessor's tail, then the slots it may have published
	// after storing it.
	tail, err := r.tailAfter(r.prod.pos.Load())
	if err != nil {
		return nil, err
	}
	// Release: the tail is ours; only Stats and a successor read it.
	atomicx.StoreRelease(&r.prod.pos, tail)
	s := &singleSender{r: r, line: h.line, tail: tail, block: ^(max(1, min(tailEvery, r.n/2)) - 1), byHead: !r.g.mode.multiConsumer()}
	if s.byHead {
		// Acquire, SYNC(head-release), as in claim.
		s.head = r.cons.pos.Load()
	}
	return s, nil
}

func (s *singleSender) claim(k uint64) (uint64, uint64, error) {
	r, pos := s.r, s.tail
	if s.byHead {
		if pos-s.head+k > r.n {
			if err := s.readHead(pos); err != nil {
				return 0, 0, err
			}
		}
		return pos, min(k, s.head+r.n-pos), nil
	}
	n := uint64(0)
	for ; n < k; n++ {
		// Acquire, SYNC(slot-release): pairs with the consumers' release
		// store of seq = p+N; their reads of the slot are done.
		seq := r.descs.At((pos + n) & r.mask).seq.Load()
		if seq != pos+n {
			if n == 0 && seq&^(seqSkip|seqHeld) > pos {
				return 0, 0, aheadOfProducer(pos, seq)
			}
			break
		}
	}
	return pos, n, nil
}

// readHead reads the consumer's head again, for a claim at pos that the
// cached head says has no room.
func (s *singleSender) readHead(pos uint64) error {
	// Acquire, SYNC(head-release): pairs with the consumer's release store
	// of the head; its reads of the slots below it are done.
	head := s.r.cons.pos.Load()
	if head > pos || head < s.head {
		return fmt.Errorf("%w: the head moved to %d, the tail is %d and the head was %d", ErrCorrupt, head, pos, s.head)
	}
	s.head = head
	return nil
}

func aheadOfProducer(pos, seq uint64) error {
	return fmt.Errorf("%w: slot of position %d has sequence %#x, ahead of its only producer", ErrCorrupt, pos, seq)
}

// sendOne is claim, write and publish for one message, in one call.
func (s *singleSender) sendOne(typ int64, data []byte) (bool, error) {
	r, pos := s.r, s.tail
	d := r.descs.At(pos & r.mask)
	if s.byHead {
		if pos-s.head >= r.n {
			if err := s.readHead(pos); err != nil || pos-s.head >= r.n {
				return false, err
			}
		}
		// Acquire, SYNC(slot-release): as in claim.
	} else if seq := d.seq.Load(); seq != pos {
		if seq&^(seqSkip|seqHeld) > pos {
			return false, aheadOfProducer(pos, seq)
		}
		return false, nil
	}
	r.writeSlot(pos, typ, data)
	// Release, SYNC(slot-publish): as in publish.
	atomicx.StoreRelease(&d.seq, pos+1)
	s.advance(1, len(data))
	if r.maySleep(consumerSide) { // wake sleeping consumers: the busy test inline
		r.wakePublished(pos, 1)
	}
	return true, nil
}

func (s *singleSender) publish(pos, n uint64, bytes int) {
	r := s.r
	for i := uint64(0); i < n; i++ {
		// Release, SYNC(slot-publish): pairs with the consumers' acquire
		// load of seq; the slot's descriptor and payload are visible to them.
		atomicx.StoreRelease(&r.descs.At((pos+i)&r.mask).seq, pos+i+1)
	}
	s.advance(n, bytes)
	if r.maySleep(consumerSide) { // wake sleeping consumers: the busy test inline
		r.wakePublished(pos, n)
	}
}

// advance moves the tail past n published positions and counts them.
func (s *singleSender) advance(n uint64, bytes int) {
	if (s.tail+n)&s.block != s.tail&s.block { // into another block
		// Relaxed: Stats and a successor take the tail only as a start,
		// and check the slots from there on (Ring.publishedFrom).
		atomicx.StoreRelaxed(&s.r.prod.pos, s.tail+n)
	}
	s.tail += n
	s.line.count(n, bytes)
}

// abort gives nothing back: the tail did not move, so the position is
// filled by the next claim.
func (s *singleSender) abort(uint64) {}
