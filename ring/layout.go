package ring

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/bits"
	"sync/atomic"
	"unsafe"

	"github.com/shmring/shmring/internal/atomicx"
)

// The shared format. Every number here is part of it: changing one means
// bumping layoutVersion.
//
//	offset                       line(s)   contents                      written by
//	0                            1         header: geometry, ids, state  creator, once
//	1*L                          1         producer line: tail cursor    producers
//	2*L                          1         consumer line: head cursor    consumers
//	3*L                          1         waiter counts                 sleepers and wakers
//	4*L                          1         control: flags and counters   slow paths only
//	5*L                          P+C       role lines, one per role      their holder; reapers
//	5*L + (P+C)*L                N cells   slots: head + payload         producer, consumer
//	                                       of SlotStride bytes each
//
// L is lineSize (128). A slot cell is a slotHead (sequence word, size,
// flags, type: 24 bytes) followed by the payload, padded to a multiple of L.
const (
	lineSize       = atomicx.LineSize
	layoutVersion  = 1
	headerLines    = 5 // header, producer, consumer, waiters, control
	slotHeadSize   = int(unsafe.Sizeof(slotHead{}))
	checksumOffset = int(unsafe.Offsetof(header{}.Checksum))
)

// magic opens every ring segment.
var magic = [8]byte{'S', 'H', 'M', 'R', 'I', 'N', 'G', 0}

// Limits of the geometry, checked on create and on open.
const (
	maxSlots      = 1 << 24
	maxMessageCap = 1 << 30
	maxRoles      = 1024
	maxTotal      = 1 << 40
)

// header is line 0, written once by the creator before it publishes State.
// Offsets are bytes from the start of the segment; no field but State is
// written after publication, and State is accessed only atomically.
type header struct {
	Magic        [8]byte       // 0: "SHMRING\x00"
	Version      uint32        // 8: layoutVersion
	LineSize     uint32        // 12: lineSize
	Mode         uint32        // 16: Mode (SPSC..MPMC)
	MaxMessage   uint32        // 20: payload bytes per slot
	SlotStride   uint32        // 24: bytes per slot cell, a multiple of LineSize
	SlotCount    uint32        // 28: slots, a power of two
	MaxProducers uint32        // 32: producer role lines
	MaxConsumers uint32        // 36: consumer role lines
	RolesOffset  uint64        // 40: first role line
	SlotsOffset  uint64        // 48: first slot cell
	TotalSize    uint64        // 56: bytes used by the ring, ≤ segment size
	SemID        int32         // 64: id of the ring's semaphore set
	CreatorPID   uint32        // 68: pid of the creating process
	CreatorStart uint64        // 72: its start time, clock ticks after boot
	Created      int64         // 80: creation time, Unix nanoseconds
	ID           [16]byte      // 88: instance UUID
	Checksum     uint64        // 104: FNV-64a of bytes [0, 104)
	State        atomic.Uint32 // 112: stateInit, then stateReady (release)
	_            [12]byte      // 116..128
}

// Header states.
const (
	stateInit  = 0
	stateReady = 0x52454459 // "REDY"
)

// cursorLine holds one side's position: the producer line holds the tail
// (next position to claim), the consumer line the head (next to consume).
// Positions count messages from 0 and never wrap in practice (2^63).
type cursorLine struct {
	pos atomic.Uint64 // 0: position; single side: release store, multi: CAS
	_   [lineSize - 8]byte
}

// waitLine counts sleepers. A side about to sleep increments its count; the
// other side reads it after every publication and posts the semaphore only
// when it is non-zero. Written only on sleep and wake paths.
type waitLine struct {
	consumers atomic.Uint32 // 0: consumers registered to sleep on semData
	producers atomic.Uint32 // 4: producers registered to sleep on semSpace
	_         [lineSize - 8]byte
}

// controlLine holds the ring's flags and its slow-path counters. No hot path
// writes it.
type controlLine struct {
	flags          atomic.Uint32 // 0: flagRemoved
	_              uint32        // 4
	consumerSleeps atomic.Uint64 // 8: semaphore waits by consumers
	producerSleeps atomic.Uint64 // 16: semaphore waits by producers
	wakeups        atomic.Uint64 // 24: semaphore posts
	recovered      atomic.Uint64 // 32: slots skipped after their producer died
	redelivered    atomic.Uint64 // 40: messages delivered again after their consumer died
	_              [lineSize - 48]byte
}

const flagRemoved = 1

// roleLine records who holds one producer or consumer role. Role i also owns
// semaphore semRoles+i, which its holder raises with SEM_UNDO: the kernel
// lowers it again when the holder dies, however it dies, so a zero value on
// an active line means a dead holder, with no pid-reuse race.
type roleLine struct {
	state    atomic.Uint64 // 0: generation<<8 | status; CAS on every transition
	pid      atomic.Uint32 // 8: holder's pid
	_        uint32        // 12
	start    atomic.Uint64 // 16: holder's start time (clock ticks after boot)
	claim    atomic.Uint64 // 24: first position claimed and not yet finished, +1; 0: none
	claimLen atomic.Uint64 // 32: positions in that claim
	_        [lineSize - 40]byte
}

// Role statuses, the low byte of roleLine.state.
const (
	roleFree      = 0
	roleAttaching = 1
	roleActive    = 2
	roleClosed    = 3
)

// slotHead starts every slot cell; the payload follows it.
//
// seq drives Vyukov's bounded-queue protocol. For the slot of position p
// (p mod N): seq == p means free for the producer of p; seq == p+1 means
// holding message p; seq == p+N means consumed, free for the producer of
// p+N. In the single-consumer modes the consumer frees slots by moving the
// head instead, so seq only ever takes the values p+1 of the messages
// written (and its initial value). seqSkip marks a slot that a dead producer claimed and never filled:
// consumers pass over it. size, flags and typ are plain memory, written
// before seq's release store and read after its acquire load.
type slotHead struct {
	seq   atomic.Uint64 // 0
	size  uint32        // 8: payload bytes
	flags uint32        // 12: reserved, zero
	typ   int64         // 16: message type, > 0
}

const seqSkip = 1 << 63

// Semaphores of a ring's set.
const (
	semData  = 0 // consumers sleep here for messages
	semSpace = 1 // producers sleep here for free slots
	semRoles = 2 // first role semaphore
)

// geometry is a ring's shape, as the creator chose it and the header tells.
type geometry struct {
	mode         Mode
	maxMessage   int
	slots        int
	maxProducers int
	maxConsumers int
}

func (g geometry) roles() int       { return g.maxProducers + g.maxConsumers }
func (g geometry) rolesOffset() int { return headerLines * lineSize }
func (g geometry) slotsOffset() int { return g.rolesOffset() + g.roles()*lineSize }
func (g geometry) stride() int {
	return (slotHeadSize + g.maxMessage + lineSize - 1) / lineSize * lineSize
}
func (g geometry) size() int { return g.slotsOffset() + g.slots*g.stride() }

// check reports the first impossible field of g, as ErrInvalid.
func (g geometry) check() error {
	switch {
	case g.mode < SPSC || g.mode > MPMC:
		return fmt.Errorf("%w: unknown mode %d", ErrInvalid, g.mode)
	case g.maxMessage <= 0 || g.maxMessage > maxMessageCap:
		return fmt.Errorf("%w: message size %d not in 1..%d", ErrInvalid, g.maxMessage, maxMessageCap)
	case g.slots < 2 || g.slots > maxSlots || bits.OnesCount(uint(g.slots)) != 1:
		return fmt.Errorf("%w: slot count %d is not a power of two in 2..%d", ErrInvalid, g.slots, maxSlots)
	case g.maxProducers < 1 || g.maxConsumers < 1 || g.roles() > maxRoles:
		return fmt.Errorf("%w: %d producers and %d consumers (1..%d roles in all)", ErrInvalid, g.maxProducers, g.maxConsumers, maxRoles)
	case !g.mode.multiProducer() && g.maxProducers != 1, !g.mode.multiConsumer() && g.maxConsumers != 1:
		return fmt.Errorf("%w: mode %v allows one producer and one consumer where it says single", ErrInvalid, g.mode)
	case uint64(g.slots)*uint64(g.stride()) > maxTotal:
		return fmt.Errorf("%w: %d slots of %d bytes exceed %d bytes", ErrInvalid, g.slots, g.stride(), uint64(maxTotal))
	}
	return nil
}

// writeHeader fills every field of h but State, ending with the checksum.
func writeHeader(b []byte, h *header, g geometry, semID int, pid uint32, start uint64, created int64, id [16]byte) {
	h.Magic = magic
	h.Version = layoutVersion
	h.LineSize = lineSize
	h.Mode = uint32(g.mode)
	h.MaxMessage = uint32(g.maxMessage)
	h.SlotStride = uint32(g.stride())
	h.SlotCount = uint32(g.slots)
	h.MaxProducers = uint32(g.maxProducers)
	h.MaxConsumers = uint32(g.maxConsumers)
	h.RolesOffset = uint64(g.rolesOffset())
	h.SlotsOffset = uint64(g.slotsOffset())
	h.TotalSize = uint64(g.size())
	h.SemID = int32(semID)
	h.CreatorPID = pid
	h.CreatorStart = start
	h.Created = created
	h.ID = id
	h.Checksum = checksum(b)
}

// checksum is FNV-64a over the header bytes before the Checksum field.
func checksum(b []byte) uint64 {
	f := fnv.New64a()
	f.Write(b[:checksumOffset])
	return f.Sum64()
}

// validateHeader checks the header at the start of b against b's length,
// which is the real size of the segment, in this order: magic, version,
// line size, checksum, then every field of the geometry. Each failure has
// its own sentinel; none can panic. It reads the header as little-endian
// bytes, not through the struct, so it also serves segments it cannot yet
// trust to be aligned or long enough.
func validateHeader(b []byte) (geometry, error) {
	if len(b) < lineSize {
		return geometry{}, fmt.Errorf("%w: segment of %d bytes is shorter than a ring header (%d)", ErrNotRing, len(b), lineSize)
	}
	if !bytes.Equal(b[:8], magic[:]) {
		return geometry{}, fmt.Errorf("%w: bad magic % x", ErrNotRing, b[:8])
	}
	le := binary.LittleEndian
	if v := le.Uint32(b[8:]); v != layoutVersion {
		return geometry{}, fmt.Errorf("%w: layout version %d, this package reads %d", ErrVersion, v, layoutVersion)
	}
	if ls := le.Uint32(b[12:]); ls != lineSize {
		return geometry{}, fmt.Errorf("%w: line size %d, this package uses %d", ErrVersion, ls, lineSize)
	}
	if sum := le.Uint64(b[checksumOffset:]); sum != checksum(b) {
		return geometry{}, fmt.Errorf("%w: header checksum %#x, computed %#x", ErrCorrupt, sum, checksum(b))
	}
	g := geometry{
		mode:         Mode(le.Uint32(b[16:])),
		maxMessage:   int(le.Uint32(b[20:])),
		slots:        int(le.Uint32(b[28:])),
		maxProducers: int(le.Uint32(b[32:])),
		maxConsumers: int(le.Uint32(b[36:])),
	}
	if err := g.check(); err != nil {
		return geometry{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	// Every derived number must match what the geometry implies, so that
	// nothing read later from the header can point outside the segment.
	stride, rolesOff, slotsOff, total := le.Uint32(b[24:]), le.Uint64(b[40:]), le.Uint64(b[48:]), le.Uint64(b[56:])
	switch {
	case int64(stride) != int64(g.stride()):
		return geometry{}, fmt.Errorf("%w: slot stride %d, geometry implies %d", ErrCorrupt, stride, g.stride())
	case rolesOff != uint64(g.rolesOffset()) || slotsOff != uint64(g.slotsOffset()):
		return geometry{}, fmt.Errorf("%w: offsets %d/%d, geometry implies %d/%d", ErrCorrupt, rolesOff, slotsOff, g.rolesOffset(), g.slotsOffset())
	case total != uint64(g.size()):
		return geometry{}, fmt.Errorf("%w: total size %d, geometry implies %d", ErrCorrupt, total, g.size())
	case total > uint64(len(b)):
		return geometry{}, fmt.Errorf("%w: ring needs %d bytes, segment has %d (truncated)", ErrCorrupt, total, len(b))
	}
	return g, nil
}

// Compile-time layout checks: each line struct is exactly one line, and the
// slot head is 24 bytes. A failing check is an out-of-range constant index.
var (
	_ = [1]struct{}{}[unsafe.Sizeof(header{})-lineSize]
	_ = [1]struct{}{}[unsafe.Sizeof(cursorLine{})-lineSize]
	_ = [1]struct{}{}[unsafe.Sizeof(waitLine{})-lineSize]
	_ = [1]struct{}{}[unsafe.Sizeof(controlLine{})-lineSize]
	_ = [1]struct{}{}[unsafe.Sizeof(roleLine{})-lineSize]
	_ = [1]struct{}{}[unsafe.Sizeof(slotHead{})-24]
)
