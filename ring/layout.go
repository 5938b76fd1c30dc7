package ring

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/bits"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/shmring/shmring/internal/atomicx"
)

// The shared format, version 2. Every number here is part of it: changing
// one means bumping layoutVersion. L is lineSize (128 bytes), N the slot
// count, P and C the producer and consumer role lines.
//
//	offset            size       contents                             written by
//	0                 2 L        header: geometry, ids, state         creator, once
//	2 L               L          producer cursor: the tail            producers
//	3 L               L          consumer cursor: the head            consumers
//	4 L               L          consumer sleep line                  sleeping consumers
//	5 L               L          producer sleep line                  sleeping producers
//	6 L               L          control: flags and counters          slow paths
//	7 L               (P+C) L    role lines, producers first          holder; reaper under lock
//	RolesOffset+..    N L        slot descriptors                     producer, consumer
//	DescsOffset+N L   N S        payload area (S = SlotSize, maybe 0) producer
//
// A slot descriptor is one line: the sequence word, the owner word, type,
// size, flags, the sender's origin tag, and InlineCap bytes of payload.
// A message of at most InlineCap bytes lives in its descriptor, so a small
// message is one line; a larger one lives in the slot's SlotSize bytes of
// the payload area, which is contiguous, so that messages spanning slots
// can be read in place. The descriptors hold every word the protocols
// write, so the payload area is plain bytes.
const (
	lineSize      = atomicx.LineSize
	layoutVersion = 2
	headerSize    = 2 * lineSize
	fixedLines    = 7 // header (2), producer, consumer, two sleep lines, control
	descHeadSize  = int(unsafe.Offsetof(slotDesc{}.inline))
	// InlineCap is the largest message kept in its slot descriptor rather
	// than in the payload area.
	InlineCap      = lineSize - descHeadSize
	payloadAlign   = 64 // SlotSize is a multiple of this: whole 64-byte cache lines
	checksumOffset = int(unsafe.Offsetof(sealLine{}.Checksum)) + lineSize
	stateOffset    = int(unsafe.Offsetof(sealLine{}.State)) + lineSize
)

// magic opens every ring segment, in every layout version.
var magic = [8]byte{'S', 'H', 'M', 'R', 'I', 'N', 'G', 0}

// legacyReady is the "header ready" word of layout version 1, kept at its
// old offset (112) so that a build that reads only version 1 sees a
// published header and then refuses the version, instead of waiting for
// a state word that never comes.
const legacyReady = 0x52454459

// Limits of the geometry, checked on create and on open.
const (
	maxSlots      = 1 << 24
	maxMessageCap = 1 << 30
	maxSideRoles  = 64 * len(sleepLine{}.masks) // role lines per side: one sleep bit each
	maxRoles      = 2 * maxSideRoles
	maxTotal      = 1 << 40
)

// header is line 0, written once by the creator before it publishes
// sealLine.State. Offsets are bytes from the start of the segment. The
// fields that must stay where they are in every layout version are Magic
// (0), Version (8) and LineSize (12).
type header struct {
	Magic         [8]byte // 0: "SHMRING\x00"
	Version       uint32  // 8: layoutVersion
	LineSize      uint32  // 12: lineSize
	Mode          uint32  // 16: Mode (SPSC..MPMC)
	Features      uint32  // 20: feature bits: featureSelective, featureSpanning, featureFanout, featureOverwrite; the others zero in version 2
	MaxMessage    uint32  // 24: largest message, in bytes
	SlotSize      uint32  // 28: payload area bytes per slot; 0 if every message fits inline; < MaxMessage with featureSpanning
	SlotCount     uint32  // 32: slots, a power of two
	MaxProducers  uint32  // 36: producer role lines
	MaxConsumers  uint32  // 40: consumer role lines
	SemCount      uint32  // 44: semaphores in the ring's set
	RolesOffset   uint64  // 48: first role line
	DescsOffset   uint64  // 56: first slot descriptor
	PayloadOffset uint64  // 64: payload area
	TotalSize     uint64  // 72: bytes used by the ring, ≤ segment size
	Key           int32   // 80: key the ring was created under (0: private)
	SemID         int32   // 84: id of the ring's semaphore set
	CreatorPID    uint32  // 88: pid of the creating process
	_             uint32  // 92
	CreatorStart  uint64  // 96: its start time, clock ticks after boot
	Created       int64   // 104: creation time, Unix nanoseconds
	LegacyReady   uint32  // 112: legacyReady (see there)
	_             uint32  // 116
	EvictAfter    int64   // 120: fan-out, Block policy: eviction time in nanoseconds (geometry.evictAfter); 0 otherwise
}

// sealLine is line 1, the rest of the write-once header: the instance id,
// reserved words (zero), the checksum of everything before it, and the
// state word that publishes the header.
type sealLine struct {
	ID       [16]byte      // 128: instance UUID
	Reserved [12]uint64    // 144: zero in version 2
	Checksum uint64        // 240: FNV-64a of bytes [0, 240)
	State    atomic.Uint32 // 248: stateInit, then stateReady (release)
	_        uint32        // 252
}

// Header states.
const (
	stateInit  = 0
	stateReady = 0x59444552 // "REDY" read as little-endian bytes
)

// cursorLine holds one side's position: the producer line holds the tail
// (next position to claim), the consumer line the head (next position to
// consume). Positions count slots from 0 and never wrap in practice (2^64
// at a billion a second is five centuries).
type cursorLine struct {
	pos   atomic.Uint64 // 0: single side: release store by its owner; multi: CAS
	joins atomic.Uint64 // 8: producer line of a fan-out ring: subscriptions begun, so that producers read the gate again (fanout.go)
	_     [lineSize - 16]byte
}

// sleepLine announces the sleepers of one side. A handle about to sleep
// sets its line's bit in masks; a publisher of the other side reads the
// mask words in use after every publication and takes the slow path only
// when one is not zero. Each word is the meeting point of a sleeper's
// store and a publisher's load (the wake-up protocol is a Dekker pattern on
// it), so there is no summary word that could be cleared between the two.
// Written only on sleep and wake paths, so publishers read it from their
// cache.
type sleepLine struct {
	masks  [8]atomic.Uint64 // 0: bit b of word w: line 64w+b of this side sleeps
	flags  atomic.Uint32    // 64: sleepFenced: publishers to this side fence (sticky)
	_      uint32           // 68
	fenced atomic.Int64     // 72: when sleepFenced was set, Unix nanoseconds
	_      [lineSize - 80]byte
}

// sleepFenced in sleepLine.flags says that a sleeper of this side may
// order its announcement with a plain fence, not with membarrier, so every
// publisher to this side must fence between its publication and its read
// of the masks.
const sleepFenced = 1

// controlLine holds the ring's flags and slow-path counters. No busy path
// writes it.
type controlLine struct {
	flags          atomic.Uint32 // 0: flagRemoved
	_              uint32        // 4
	consumerSleeps atomic.Uint64 // 8: semaphore waits by consumers
	producerSleeps atomic.Uint64 // 16: semaphore waits by producers
	wakeups        atomic.Uint64 // 24: semaphore posts to sleepers
	recovered      atomic.Uint64 // 32: slots skipped because their producer died
	redelivered    atomic.Uint64 // 40: messages delivered again after their consumer died holding them
	reaped         atomic.Uint64 // 48: role lines of dead holders cleaned up
	handbacks      atomic.Uint64 // 56: claims left on a closed line for another consumer
	_              [lineSize - 64]byte
}

const flagRemoved = 1

// featureSelective in header.Features: a ring created for selective
// receive (Options.Selective).
const featureSelective = 1

// featureSpanning in header.Features: a ring whose slots are smaller than
// its largest message (Options.SlotSize), so that a message may span
// consecutive slots (span.go). Without it the slot size is the one
// MaxMessage implies, as in every ring made before spanning existed.
const featureSpanning = 2

// featureFanout and featureOverwrite in header.Features: a fan-out ring
// (Options.Fanout), and its slow-subscriber policy Overwrite
// (consume_fanout.go).
const (
	featureFanout    = 1 << 4
	featureOverwrite = 1 << 5
)

// knownFeatures are the feature bits this package reads.
const knownFeatures = featureSelective | featureSpanning | featureFanout | featureOverwrite

// roleLine records who holds one role and what it has in hand. Line i is
// locked by semaphore semLocks+i: its holder, or a process recovering it,
// keeps that semaphore at 1 with SEM_UNDO, so the kernel unlocks it when
// the process dies, however it dies. Only the process holding the lock
// writes the line (but for cumulative counters, which its holder alone
// writes); everyone may read it.
type roleLine struct {
	state    atomic.Uint64 // 0: generation<<8 | status; every change bumps the generation
	pid      atomic.Uint32 // 8: holder's pid
	_        uint32        // 12
	start    atomic.Uint64 // 16: holder's start time, clock ticks after boot
	claim    atomic.Uint64 // 24: first position of the unfinished claim, +1; 0: none
	claimLen atomic.Uint64 // 32: positions in that claim, ≤ N; claimIntent until the claiming CAS succeeds
	peek     atomic.Uint64 // 40: position held in place (Peek), +1; 0: none
	msgs     atomic.Uint64 // 48: messages sent or received through this line, cumulative
	bytes    atomic.Uint64 // 56: their payload bytes, cumulative
	since    atomic.Int64  // 64: when the holder took the line, Unix nanoseconds
	selector atomic.Uint64 // 72: a selective consumer's selector (encodeSelector), for its wakers
	peekEnd  atomic.Uint64 // 80: with peek, the end of the positions held in place by PeekBatch; ≤ peek: peek's alone
	// Fan-out subscribers (consume_fanout.go) only:
	cursor atomic.Uint64 // 88: the subscriber's next position; release store by its holder
	name   atomic.Uint64 // 96: NameHash of a durable subscription's name; 0: anonymous
	lost   atomic.Uint64 // 104: messages the subscription lost to producers that lapped it, cumulative
	evict  atomic.Uint64 // 112: the generation (state>>8) of the holder a producer evicted; CAS by producers, the one word of the line others write
	_      uint64        // 120
}

// count adds n messages of bytes payload bytes to the line's counters.
func (e *roleLine) count(n uint64, bytes int) {
	// Relaxed, one writer: only the line's holder counts; monitors read
	// the counters for display, and a successor after the holder's death
	// (which orders them).
	atomicx.AddRelaxed(&e.msgs, n)
	atomicx.AddRelaxed(&e.bytes, uint64(bytes))
}

// claimIntent in roleLine.claimLen marks a claim named before the CAS that
// claims it: it may not be the holder's at all, if the CAS fails. The
// holder clears it once its CAS has succeeded, so that a recoverer can
// tell positions a live holder owns from positions it may only be about to
// own, or never will.
const claimIntent = 1 << 63

// Role statuses, the low byte of roleLine.state.
const (
	roleFree   = 0 // never held, or nothing left of its holder
	roleActive = 1 // held; a dead holder if the line's lock is 0
	roleClosed = 2 // its holder closed it; a consumer's claim may remain for another to take
	roleDead   = 3 // its holder died; what it had in hand may remain for its recoverer
)

// slotDesc is the descriptor of one slot, one line.
//
// seq drives Vyukov's bounded-queue protocol. For the slot of position p
// (p mod N): seq == p means free for the producer of p; seq == p+1 means
// holding the message of p; seq == p+N means consumed, free for the
// producer of p+N. A single consumer frees slots by moving the head
// instead, so in the single-consumer modes seq takes only the values p+1
// of the messages written (and its first value). seqSkip marks a slot
// whose producer gave it up or died before filling it: consumers pass
// over it. typ, size, flags and the payload are plain memory, written
// before seq's release store and read after its acquire load.
type slotDesc struct {
	seq    atomic.Uint64 // 0
	owner  atomic.Uint64 // 8: token of the consumer holding the slot in place while serving another's claim (see consume_multi.go); 0: none
	typ    atomic.Uint64 // 16: message type, > 0, or contMark|distance for a continuation (span.go); stored relaxed, so that a selective consumer may look at it before it owns the slot
	size   uint32        // 24: payload bytes (of the whole message, for the head of a span)
	flags  uint32        // 28: descInline, descRedelivered, descSpan, descCont
	origin uint64        // 32: the sender's tag (Message.Origin); 0: none
	inline [88]byte      // 40: the payload of a message of at most InlineCap bytes
}

// descInline in slotDesc.flags: the payload is in the descriptor.
const descInline = 1

const seqSkip = 1 << 63

// The ring's semaphore set: a fingerprint that ties the set to its
// segment (see fingerprint), then one lock and one wake-up semaphore per
// role line.
const (
	semPrint    = 0 // four values of 15 bits: the fingerprint
	semSegment  = 4 // three values: the segment id, 15+15+2 bits
	semTag      = 7 // semTagValue: the set belongs to a ring of this format
	semLocks    = 8 // first lock semaphore
	semTagValue = 0x5247
	printSems   = 4
)

func semWakes(roles int) int { return semLocks + roles }
func semCount(roles int) int { return semLocks + 2*roles }

// geometry is a ring's shape, as the creator chose it and the header tells.
type geometry struct {
	mode         Mode
	maxMessage   int
	slots        int
	maxProducers int
	maxConsumers int
	selective    bool        // featureSelective: consumers receive by selector (consume_select.go)
	slot         int         // featureSpanning: the payload bytes per slot, below maxMessage; 0: implied by maxMessage
	fan          fanoutShape // fan-out rings (fanout.go); zero otherwise
}

// fanoutShape is the fan-out part of a geometry.
type fanoutShape struct {
	on         bool          // featureFanout: every subscriber receives every message (consume_fanout.go)
	policy     Policy        // PolicyBlock, or Overwrite (featureOverwrite): producers never wait for subscribers
	evictAfter time.Duration // Block policy: evict a live subscriber that held the ring full this long; 0: never
}

func (g geometry) roles() int       { return g.maxProducers + g.maxConsumers }
func (g geometry) rolesOffset() int { return fixedLines * lineSize }
func (g geometry) descsOffset() int { return g.rolesOffset() + g.roles()*lineSize }
func (g geometry) payloadOffset() int {
	return g.descsOffset() + g.slots*lineSize
}
func (g geometry) size() int { return g.payloadOffset() + g.slots*g.slotSize() }

// slotSize is the payload area's bytes per slot: none when every message
// fits in its descriptor.
func (g geometry) slotSize() int {
	if g.slot != 0 {
		return g.slot
	}
	if g.maxMessage <= InlineCap {
		return 0
	}
	return (g.maxMessage + payloadAlign - 1) / payloadAlign * payloadAlign
}

// check reports the first impossible field of g, as ErrInvalid.
func (g geometry) check() error {
	switch {
	case g.mode < SPSC || g.mode > MPMC:
		return fmt.Errorf("%w: unknown mode %d", ErrInvalid, g.mode)
	case g.maxMessage <= 0 || g.maxMessage > maxMessageCap:
		return fmt.Errorf("%w: message size %d not in 1..%d", ErrInvalid, g.maxMessage, maxMessageCap)
	case g.slots < 2 || g.slots > maxSlots || bits.OnesCount(uint(g.slots)) != 1:
		return fmt.Errorf("%w: slot count %d is not a power of two in 2..%d", ErrInvalid, g.slots, maxSlots)
	case g.maxProducers < 1 || g.maxConsumers < 1 || g.maxProducers > maxSideRoles || g.maxConsumers > maxSideRoles:
		return fmt.Errorf("%w: %d producers and %d consumers (1..%d each)", ErrInvalid, g.maxProducers, g.maxConsumers, maxSideRoles)
	case !g.mode.multiProducer() && g.maxProducers != 1, !g.mode.multiConsumer() && g.maxConsumers != 1:
		return fmt.Errorf("%w: mode %v allows one producer and one consumer where it says single", ErrInvalid, g.mode)
	case g.selective && !g.mode.multiConsumer():
		return fmt.Errorf("%w: selective receive needs a mode with many consumers (SPMC or MPMC; MaxConsumers may be 1)", ErrInvalid)
	case g.slot != 0 && (g.slot < payloadAlign || g.slot%payloadAlign != 0 || g.slot >= g.maxMessage):
		return fmt.Errorf("%w: slot size %d for messages of up to %d bytes (a multiple of %d, below the largest message)", ErrInvalid, g.slot, g.maxMessage, payloadAlign)
	case g.slot != 0 && uint64(g.maxMessage) > uint64(g.slots)*uint64(g.slot)/2:
		return fmt.Errorf("%w: messages of up to %d bytes in %d slots of %d bytes: at most half the payload area (%d)", ErrInvalid,
			g.maxMessage, g.slots, g.slot, uint64(g.slots)*uint64(g.slot)/2)
	case uint64(g.slots)*uint64(lineSize+g.slotSize()) > maxTotal:
		return fmt.Errorf("%w: %d slots of %d bytes exceed %d bytes", ErrInvalid, g.slots, lineSize+g.slotSize(), uint64(maxTotal))
	}
	return g.checkFanout() // fanout.go
}

// identity is what the creator records about itself and the ring.
type identity struct {
	key     int32
	semID   int
	pid     uint32
	start   uint64
	created int64
	id      [16]byte
}

// writeHeader fills every field of the header but State, ending with the
// checksum.
func writeHeader(b []byte, h *header, s *sealLine, g geometry, who identity) {
	h.Magic = magic
	h.Version = layoutVersion
	h.LineSize = lineSize
	h.Mode = uint32(g.mode)
	if g.selective {
		h.Features |= featureSelective
	}
	if g.slot != 0 {
		h.Features |= featureSpanning
	}
	h.Features |= g.fanoutFeatures()
	h.EvictAfter = int64(g.fan.evictAfter)
	h.MaxMessage = uint32(g.maxMessage)
	h.SlotSize = uint32(g.slotSize())
	h.SlotCount = uint32(g.slots)
	h.MaxProducers = uint32(g.maxProducers)
	h.MaxConsumers = uint32(g.maxConsumers)
	h.SemCount = uint32(semCount(g.roles()))
	h.RolesOffset = uint64(g.rolesOffset())
	h.DescsOffset = uint64(g.descsOffset())
	h.PayloadOffset = uint64(g.payloadOffset())
	h.TotalSize = uint64(g.size())
	h.Key = who.key
	h.SemID = int32(who.semID)
	h.CreatorPID = who.pid
	h.CreatorStart = who.start
	h.Created = who.created
	h.LegacyReady = legacyReady
	s.ID = who.id
	s.Checksum = checksum(b)
}

// checksum is FNV-64a over the header bytes before the Checksum field.
func checksum(b []byte) uint64 {
	f := fnv.New64a()
	f.Write(b[:checksumOffset])
	return f.Sum64()
}

// Offsets of the header fields that validateHeader reads as bytes.
const (
	offVersion     = 8
	offLineSize    = 12
	offMode        = 16
	offFeatures    = 20
	offMaxMessage  = 24
	offSlotSize    = 28
	offSlotCount   = 32
	offProducers   = 36
	offConsumers   = 40
	offSemCount    = 44
	offRoles       = 48
	offDescs       = 56
	offPayload     = 64
	offTotal       = 72
	offKey         = 80
	offSemID       = 84
	offEvictAfter  = 120
	offReserved    = lineSize + 16
	reservedLength = checksumOffset - offReserved
)

// versionOf reports the layout version a segment says it has, if it starts
// with the magic: the one field every version keeps in place.
func versionOf(b []byte) (uint32, bool) {
	if len(b) < 16 || !bytes.Equal(b[:8], magic[:]) {
		return 0, false
	}
	return binary.LittleEndian.Uint32(b[offVersion:]), true
}

// validateHeader checks the header at the start of b against b's length,
// which is the real size of the segment, in this order: magic, version,
// line size, checksum, then every field of the geometry. Each failure has
// its own sentinel; none can panic. It reads the header as little-endian
// bytes, not through the structs, so it also serves memory it cannot yet
// trust to be aligned or long enough.
func validateHeader(b []byte) (geometry, error) {
	if len(b) < headerSize {
		return geometry{}, fmt.Errorf("%w: segment of %d bytes is shorter than a ring header (%d)", ErrNotRing, len(b), headerSize)
	}
	v, ok := versionOf(b)
	if !ok {
		return geometry{}, fmt.Errorf("%w: bad magic % x", ErrNotRing, b[:8])
	}
	le := binary.LittleEndian
	if v != layoutVersion {
		return geometry{}, fmt.Errorf("%w: layout version %d, this package reads %d", ErrVersion, v, layoutVersion)
	}
	if ls := le.Uint32(b[offLineSize:]); ls != lineSize {
		return geometry{}, fmt.Errorf("%w: line size %d, this package uses %d", ErrVersion, ls, lineSize)
	}
	if sum := le.Uint64(b[checksumOffset:]); sum != checksum(b) {
		return geometry{}, fmt.Errorf("%w: header checksum %#x, computed %#x", ErrCorrupt, sum, checksum(b))
	}
	g := geometry{
		mode:         Mode(le.Uint32(b[offMode:])),
		maxMessage:   int(le.Uint32(b[offMaxMessage:])),
		slots:        int(le.Uint32(b[offSlotCount:])),
		maxProducers: int(le.Uint32(b[offProducers:])),
		maxConsumers: int(le.Uint32(b[offConsumers:])),
		selective:    le.Uint32(b[offFeatures:])&featureSelective != 0,
		fan: fanoutShape{on: le.Uint32(b[offFeatures:])&featureFanout != 0, policy: policyOf(le.Uint32(b[offFeatures:])),
			evictAfter: time.Duration(le.Uint64(b[offEvictAfter:]))},
	}
	if le.Uint32(b[offFeatures:])&featureSpanning != 0 {
		g.slot = int(le.Uint32(b[offSlotSize:]))
		if g.slot == 0 {
			g.slot = -1 // check rejects it
		}
	}
	if err := g.check(); err != nil {
		return geometry{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	// Every derived number must match what the geometry implies, so that
	// nothing read later from the header can point outside the segment.
	switch slotSize, sems := le.Uint32(b[offSlotSize:]), le.Uint32(b[offSemCount:]); {
	case le.Uint32(b[offFeatures:])&^knownFeatures != 0:
		return geometry{}, fmt.Errorf("%w: feature bits %#x, version %d knows only %#x", ErrCorrupt, le.Uint32(b[offFeatures:]), layoutVersion, knownFeatures)
	case int64(slotSize) != int64(g.slotSize()):
		return geometry{}, fmt.Errorf("%w: slot size %d, geometry implies %d", ErrCorrupt, slotSize, g.slotSize())
	case int64(sems) != int64(semCount(g.roles())):
		return geometry{}, fmt.Errorf("%w: %d semaphores, geometry implies %d", ErrCorrupt, sems, semCount(g.roles()))
	}
	roles, descs, payload, total := le.Uint64(b[offRoles:]), le.Uint64(b[offDescs:]), le.Uint64(b[offPayload:]), le.Uint64(b[offTotal:])
	switch {
	case roles != uint64(g.rolesOffset()) || descs != uint64(g.descsOffset()) || payload != uint64(g.payloadOffset()):
		return geometry{}, fmt.Errorf("%w: offsets %d/%d/%d, geometry implies %d/%d/%d", ErrCorrupt,
			roles, descs, payload, g.rolesOffset(), g.descsOffset(), g.payloadOffset())
	case total != uint64(g.size()):
		return geometry{}, fmt.Errorf("%w: total size %d, geometry implies %d", ErrCorrupt, total, g.size())
	case total > uint64(len(b)):
		return geometry{}, fmt.Errorf("%w: ring needs %d bytes, segment has %d (truncated)", ErrCorrupt, total, len(b))
	case !bytes.Equal(b[offReserved:offReserved+reservedLength], make([]byte, reservedLength)):
		return geometry{}, fmt.Errorf("%w: reserved header words are not zero", ErrCorrupt)
	}
	return g, nil
}

// Compile-time layout checks: each line struct is exactly one line. A
// failing check is an out-of-range constant index.
var (
	_ = [1]struct{}{}[unsafe.Sizeof(header{})-lineSize]
	_ = [1]struct{}{}[unsafe.Sizeof(sealLine{})-lineSize]
	_ = [1]struct{}{}[unsafe.Sizeof(cursorLine{})-lineSize]
	_ = [1]struct{}{}[unsafe.Sizeof(sleepLine{})-lineSize]
	_ = [1]struct{}{}[unsafe.Sizeof(controlLine{})-lineSize]
	_ = [1]struct{}{}[unsafe.Sizeof(roleLine{})-lineSize]
	_ = [1]struct{}{}[unsafe.Sizeof(slotDesc{})-lineSize]
	_ = [1]struct{}{}[unsafe.Offsetof(header{}.LegacyReady)-112]
)
