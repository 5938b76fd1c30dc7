package ring

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/shmring/shmring/ipc"
)

// Errors returned by this package. Errors from the kernel wrap the errno
// (see package ipc), so errors.Is also answers fs.ErrExist, fs.ErrNotExist,
// fs.ErrPermission and ipc.ErrLimit.
var (
	// ErrFull is returned by the Try calls of a [Producer] when no slot is
	// free.
	ErrFull = errors.New("ring: full")

	// ErrEmpty is returned by the Try calls of a [Consumer] when no message
	// is waiting.
	ErrEmpty = errors.New("ring: empty")

	// ErrTooLarge is returned when a message does not fit: larger than the
	// ring's slots on send, or larger than the caller's buffer on receive.
	// In the second case the message is not lost: the consumer's next
	// receive gets it (see Consumer.TryReceive).
	ErrTooLarge = errors.New("ring: message too large")

	// ErrBadType is returned by sends whose message type is not positive.
	ErrBadType = errors.New("ring: message type must be positive")

	// ErrInvalid is returned for impossible options and arguments: a slot
	// count that is not a power of two, a zero or negative size, an
	// unknown mode, a negative length, ...
	ErrInvalid = errors.New("ring: invalid options")

	// ErrNotRing is returned by Open for a segment that is not a ring: too
	// short for a header, or without the ring's magic.
	ErrNotRing = errors.New("ring: segment is not a ring")

	// ErrVersion is returned by Open for a ring written in a layout version
	// or line size this package does not read.
	ErrVersion = errors.New("ring: unsupported layout version")

	// ErrCorrupt is returned by Open for a ring whose header fails its
	// checksum, holds impossible geometry, describes more memory than the
	// segment has, or names a semaphore set that is not the ring's own; and
	// by any call that finds a value in the shared memory that no correct
	// process could have written there (a cursor moved backwards, a claim
	// longer than the ring). A process that may write the segment has
	// scribbled on it; the ring cannot be trusted any more.
	ErrCorrupt = errors.New("ring: corrupt")

	// ErrForeign is returned by a Create that is not exclusive when its key
	// holds a segment or semaphore set that the caller did not create and
	// does not own, or that has other permissions than asked for: Create
	// never adopts another user's object. It also matches fs.ErrExist.
	ErrForeign error = &foreignError{}

	// ErrNotReady is returned by Open when the header was not published
	// within the open timeout while its creator still runs, or at once when
	// the creator died before publishing it.
	ErrNotReady = errors.New("ring: header not published")

	// ErrRoleTaken is returned by NewProducer and NewConsumer when the mode
	// allows a single holder of the role and a live process holds it (or is
	// taking it over at that moment), or when every role line of a multi
	// mode is held by a live process.
	ErrRoleTaken = errors.New("ring: role already taken")

	// ErrPeerDead is returned by a blocked call when no live peer is left on
	// the other side and at least one of them died without closing: a
	// consumer gets it once it has received every committed message, a
	// producer when the ring is full. A peer that is in the middle of
	// taking a role is live. The ring stays usable: a peer that starts
	// again takes the dead one's role.
	ErrPeerDead = errors.New("ring: peer died")

	// ErrNoConsumers is returned by a blocked send when the ring is full and
	// every consumer that attached has closed.
	ErrNoConsumers = errors.New("ring: every consumer has closed")

	// ErrRemoved is returned once the ring was removed (by [Ring.Remove] in
	// any process, or with ipcrm) while this handle was using it, and by a
	// second Remove. It is ipc.ErrRemoved, so errors from the kernel about
	// the removed semaphore set match it too.
	ErrRemoved = ipc.ErrRemoved

	// ErrNotReserved is returned by Commit and Abort without a reservation,
	// and by Release without a message being looked at.
	ErrNotReserved = errors.New("ring: nothing reserved")

	// ErrPending is returned by a Producer or Consumer call made while a
	// reservation (Reserve) or an in-place message (Peek) is outstanding.
	ErrPending = errors.New("ring: a reservation or peeked message is outstanding")

	// ErrNotSelective is returned by a Select call with a selector other
	// than ipc.AnyType on a ring not created for selective receive
	// (Options.Selective).
	ErrNotSelective = errors.New("ring: not created for selective receive")

	// ErrReadOnly is returned by NewProducer and NewConsumer of a Ring
	// opened with OpenOptions.ReadOnly.
	ErrReadOnly = errors.New("ring: opened read-only")
)

// foreignError is ErrForeign: an existing object under the key is not the
// caller's to adopt.
type foreignError struct{}

func (*foreignError) Error() string { return "ring: the key holds another owner's object" }

// Is makes ErrForeign match fs.ErrExist: the key is taken.
func (*foreignError) Is(target error) bool { return target == fs.ErrExist }

// Errors of fan-out rings (Options.Fanout).
var (
	// ErrEvicted is returned by every receiving call of a subscriber that
	// producers evicted: under the Block policy, it alone held the ring
	// full for Options.EvictAfter (it was stopped, or stuck). It is out
	// of the gate producers wait for; Close it, and subscribe again (a
	// durable subscription resumes from the oldest message still there,
	// counting what it lost).
	ErrEvicted = errors.New("ring: subscriber evicted for holding the ring full")

	// ErrOverwritten is returned by [Consumer.Release] of a subscriber
	// when a producer overwrote a message it held in place (Peek) before
	// the release, under the Overwrite policy: what the caller read of it
	// may be torn, and must be discarded. The message counts as lost.
	ErrOverwritten = errors.New("ring: message overwritten while held in place")

	// ErrLapped is matched by the [LapError] a subscriber's call returns
	// when producers overwrote messages it had not yet received: the
	// subscriber goes on at the oldest message still in the ring.
	ErrLapped = errors.New("ring: subscriber lapped")
)

// LapError reports messages a subscriber lost because producers lapped
// it; it matches [ErrLapped].
type LapError struct {
	// Lost is how many messages were lost since the last report. On a
	// ring whose messages span slots (Options.SlotSize) it counts slots:
	// a lost message of k slots counts k, so the numbers add up to the
	// slots of whole messages; on any other ring slots and messages are
	// the same.
	Lost uint64
}

// Error says how many messages were lost.
func (e LapError) Error() string {
	return fmt.Sprintf("ring: subscriber lapped: %d messages lost", e.Lost)
}

// Is makes a LapError match ErrLapped.
func (e LapError) Is(target error) bool { return target == ErrLapped }
