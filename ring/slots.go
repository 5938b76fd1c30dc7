package ring

import (
	"fmt"

	"github.com/shmring/shmring/internal/atomicx"
)

// Slot contents. A producer fills a slot with plain stores before the
// release store of its sequence word; a consumer reads it after the
// acquire load that saw that store. Nothing here is atomic, and nothing
// here trusts what it reads: a size or flag no producer could have written
// is ErrCorrupt, and no slice ever reaches past the slot.

// seqHeld marks, with many consumers, a slot that a consumer serving
// another line's claim holds in place (Peek): seq is (p+1)|seqHeld until
// Release stores p+N.
const seqHeld = 1 << 62

// writeSlot fills the slot of pos with a message: in the descriptor if it
// fits there, else in the slot's part of the payload area. len(data) is at
// most MaxMessage.
func (r *Ring) writeSlot(pos uint64, typ int64, data []byte) {
	d := r.descs.At(pos & r.mask)
	// Relaxed: published by the release store of seq, like the rest.
	atomicx.StoreRelaxed(&d.typ, uint64(typ))
	d.size = uint32(len(data))
	d.origin = 0
	if len(data) <= InlineCap {
		d.flags = descInline
		copy(d.inline[:], data)
	} else {
		d.flags = 0
		r.writePayload(pos, data)
	}
}

// stamp adds a sender's metadata to the slot of pos, which writeSlot
// filled: its origin tag, and the flag that the message may have been
// delivered before (Message.Redelivered).
func (r *Ring) stamp(pos uint64, origin uint64, resent bool) {
	d := r.descs.At(pos & r.mask)
	d.origin = origin
	if resent {
		d.flags |= descRedelivered
	}
}

// meta returns the sender's metadata of the message in the slot of pos,
// after message has checked the slot: its origin tag, and whether it is
// flagged as delivered before (by its sender, or, on a selective ring, by
// the recoverer of a consumer that died holding it). Neither is trusted
// for anything but handing it to the caller.
func (r *Ring) meta(pos uint64) (origin uint64, resent bool) {
	d := r.descs.At(pos & r.mask)
	return d.origin, d.flags&descRedelivered != 0
}

// writePayload fills the payload area's slot of pos.
func (r *Ring) writePayload(pos uint64, data []byte) {
	copy(r.payloadOf(pos&r.mask), data)
}

// setSlot records the type and size of a message written in place, in the
// payload area (or, for a ring without one, in the descriptor), by a
// Reserve.
func (r *Ring) setSlot(pos uint64, typ int64, n int) {
	d := r.descs.At(pos & r.mask)
	// Relaxed: as in writeSlot.
	atomicx.StoreRelaxed(&d.typ, uint64(typ))
	d.size = uint32(n)
	d.origin = 0
	if r.slot == 0 {
		d.flags = descInline
	} else {
		d.flags = 0
	}
}

// reserveBuf returns the buffer a Reserve of pos fills: MaxMessage bytes of
// the payload area, or of the descriptor for a ring whose messages all fit
// there; on a ring whose messages may span slots, one slot's bytes.
func (r *Ring) reserveBuf(pos uint64) []byte {
	i := pos & r.mask
	if r.slot == 0 {
		d := r.descs.At(i)
		return d.inline[:r.g.maxMessage:r.g.maxMessage]
	}
	n := min(r.g.maxMessage, r.slot)
	return r.payloadOf(i)[:n:n]
}

// payloadOf returns slot i's part of the payload area.
func (r *Ring) payloadOf(i uint64) []byte {
	off := int(i) * r.slot
	return r.payload[off : off+r.slot : off+r.slot]
}

// message returns the type and bytes of the message in the slot of pos,
// in place. It fails with ErrCorrupt if the descriptor holds a size or
// flags no producer writes.
//
// Each word is read once: a scribbler that changes one between the check
// and the use changes nothing.
func (r *Ring) message(pos uint64) (int64, []byte, error) {
	d := r.descs.At(pos & r.mask)
	// Plain load on amd64 (acquire, which costs nothing there; relaxed
	// would do): the slot is ours, after the acquire of seq.
	typ, size, flags := int64(d.typ.Load()), d.size, d.flags
	if typ > 0 && flags == descInline && size <= min(uint32(InlineCap), r.maxSize) {
		return typ, d.inline[:size:size], nil // the busy path of small messages, inline
	}
	return r.messageChecked(pos, typ, int(size), flags)
}

// messageChecked is message for a payload in the payload area, or an error.
func (r *Ring) messageChecked(pos uint64, typ int64, size int, flags uint32) (int64, []byte, error) {
	i := pos & r.mask
	d := r.descs.At(i)
	switch {
	case r.spanning() && (flags&(descSpan|descCont) != 0 || uint64(typ)&contMark != 0):
		return 0, nil, errSpanning // spanAt reads and checks it
	case typ <= 0:
		return 0, nil, fmt.Errorf("%w: slot %d holds a message of type %d", ErrCorrupt, i, typ)
	case size > r.g.maxMessage || flags&^(descInline|descRedelivered) != 0:
		return 0, nil, fmt.Errorf("%w: slot %d holds %d bytes with flags %#x, the ring's messages have at most %d",
			ErrCorrupt, i, size, flags, r.g.maxMessage)
	case flags&descInline != 0:
		if size > InlineCap {
			return 0, nil, fmt.Errorf("%w: slot %d holds %d bytes in its descriptor, which has room for %d", ErrCorrupt, i, size, InlineCap)
		}
		return typ, d.inline[:size:size], nil
	case size > r.slot:
		return 0, nil, fmt.Errorf("%w: slot %d holds %d bytes, slots have %d", ErrCorrupt, i, size, r.slot)
	}
	return typ, r.payloadOf(i)[:size:size], nil
}
