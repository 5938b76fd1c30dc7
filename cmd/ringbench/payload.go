package main

import (
	"encoding/binary"
	"fmt"
)

// Every message ringbench sends is written in full by its sender and read
// in full by its receiver, whatever the transport, so that no transport can
// look fast by not touching the data. The layout of a message of n bytes:
//
//	[0:4]  low 32 bits of the sender's sequence number, little endian
//	[4:8]  check: a 32-bit digest of the body, the sequence number and the
//	       sender, little endian
//	[8:n]  body: 8-byte word i is pattern[i] + key, where key depends on the
//	       sequence number and the sender; trailing bytes likewise, byte-wise
//
// The receiver knows which sequence number comes next from each sender, so
// it can compute the digest the message must have from the sequence number
// alone; it compares that with the header's check and with a digest of the
// body it received, which it reads word by word. A lost, repeated,
// reordered, truncated or corrupted message fails the run.
//
// The body is summed Fletcher-like (a running sum s of the words and a
// running sum t of s), which sees every word and its position. Because
// every word of a message is pattern[i] + key, both sides get the sums a
// body must have from the pattern's precomputed sums in constant time; the
// receiver compares them with the sums of the bytes it got, and the check
// field with their digest.
const (
	// minSize is the smallest message: the sequence number and the check.
	minSize = 8
	// hdrLen is the length of the sequence number and check.
	hdrLen = 8
)

// payload writes and checks the messages of one size.
type payload struct {
	size    int
	words   int      // whole 8-byte words in the body
	pattern []uint64 // words values, then one per trailing byte
	s0, t0  uint64   // Σ pattern[i] and Σ (words-i)·pattern[i] over the words
}

// newPayload prepares the pattern for messages of size bytes (≥ minSize).
func newPayload(size int) *payload {
	body := size - hdrLen
	p := &payload{size: size, words: body / 8, pattern: make([]uint64, body/8+body%8)}
	for i := range p.pattern {
		p.pattern[i] = mix(uint64(i) + 0x5eed)
	}
	for i := 0; i < p.words; i++ {
		p.s0 += p.pattern[i]
		p.t0 += p.s0
	}
	return p
}

// mix is the splitmix64 finalizer: a cheap, well-spread hash of x.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// key is the value added to the pattern in message seq of sender.
func key(seq uint64, sender int) uint64 {
	return mix(seq ^ uint64(sender)<<56)
}

// digest folds the running sums and the key into the 32-bit check.
func digest(s, t, k uint64) uint32 {
	x := mix(s ^ (t<<29 | t>>35) ^ k)
	return uint32(x ^ x>>32)
}

// expect returns the running sums of the body of message seq of sender,
// whose key is k, computed from the pattern's sums without a body.
func (p *payload) expect(k uint64) (s, t uint64) {
	w := uint64(p.words)
	s = p.s0 + w*k
	t = p.t0 + k*(w*(w+1)/2)
	kb := byte(k)
	for _, v := range p.pattern[p.words:] {
		s += uint64(byte(v) + kb)
		t += s
	}
	return s, t
}

// fill writes message seq of sender into b, which must be p.size bytes.
// It allocates nothing.
func (p *payload) fill(b []byte, seq uint64, sender int) {
	b = b[:p.size]
	k := key(seq, sender)
	s, t := p.expect(k)
	binary.LittleEndian.PutUint32(b[0:], uint32(seq))
	binary.LittleEndian.PutUint32(b[4:], digest(s, t, k))
	body := b[hdrLen:]
	pat := p.pattern[:p.words]
	for i, v := range pat {
		binary.LittleEndian.PutUint64(body[8*i:], v+k)
	}
	kb := byte(k)
	tail := body[8*len(pat):]
	for i, v := range p.pattern[p.words:] {
		tail[i] = byte(v) + kb
	}
}

// fillParts is fill for room in two parts, b then rest, as a ring hands
// out the room of a message that spans slots and wraps (ReserveSpan). b
// holds the header and whole words of the body: a ring splits at a
// multiple of 64 bytes.
func (p *payload) fillParts(b, rest []byte, seq uint64, sender int) {
	if len(rest) == 0 {
		p.fill(b, seq, sender)
		return
	}
	k := key(seq, sender)
	s, t := p.expect(k)
	binary.LittleEndian.PutUint32(b[0:], uint32(seq))
	binary.LittleEndian.PutUint32(b[4:], digest(s, t, k))
	pat := p.pattern[:p.words]
	inB := min(len(pat), (len(b)-hdrLen)/8)
	for i, v := range pat[:inB] {
		binary.LittleEndian.PutUint64(b[hdrLen+8*i:], v+k)
	}
	for i, v := range pat[inB:] {
		binary.LittleEndian.PutUint64(rest[8*i:], v+k)
	}
	kb := byte(k)
	at := hdrLen + 8*len(pat) // offset of the trailing bytes in the message
	for i, v := range p.pattern[p.words:] {
		if o := at + i; o < len(b) {
			b[o] = byte(v) + kb
		} else {
			rest[o-len(b)] = byte(v) + kb
		}
	}
}

// sum computes the running sums of the body of the message in b from its
// bytes.
func sum(b []byte) (s, t uint64) { return sumOn(b[hdrLen:], 0, 0) }

// sumOn goes on with the running sums s and t over more of a body.
func sumOn(body []byte, s, t uint64) (uint64, uint64) {
	for len(body) >= 8 {
		s += binary.LittleEndian.Uint64(body)
		t += s
		body = body[8:]
	}
	for _, c := range body {
		s += uint64(c)
		t += s
	}
	return s, t
}

// tracker checks the messages one receiver gets, sender by sender.
type tracker struct {
	p *payload
	// next is the sequence number expected next from each sender.
	next []uint64
	// strict says this receiver gets every message of each sender, so the
	// sequence numbers of a sender must follow one another exactly. With
	// several receivers each sees an increasing subsequence.
	strict bool
}

func newTracker(p *payload, senders int, strict bool) *tracker {
	return &tracker{p: p, next: make([]uint64, senders), strict: strict}
}

// accept checks message b from sender (0-based). It allocates only to
// report a mismatch.
func (tr *tracker) accept(b []byte, sender int) error { return tr.acceptParts(b, nil, sender) }

// acceptParts is accept for a message in two parts, b then rest, as a
// ring hands out in place a message that spans slots and wraps (rest is
// Peeked.Wrapped). b holds the header and whole words of the body: a ring
// splits at a multiple of 64 bytes.
func (tr *tracker) acceptParts(b, rest []byte, sender int) error {
	if sender < 0 || sender >= len(tr.next) {
		return fmt.Errorf("message from unknown sender %d (type %d)", sender, sender+1)
	}
	if len(b)+len(rest) != tr.p.size || len(rest) > 0 && (len(b) < hdrLen || (len(b)-hdrLen)%8 != 0) {
		return fmt.Errorf("message of %d+%d bytes from sender %d, want %d", len(b), len(rest), sender, tr.p.size)
	}
	want := tr.next[sender]
	lo := binary.LittleEndian.Uint32(b)
	seq := want
	if d := lo - uint32(want); d != 0 {
		if tr.strict || d >= 1<<31 {
			return fmt.Errorf("sender %d: got sequence number %d, want %d (low 32 bits)", sender, lo, uint32(want))
		}
		seq = want + uint64(d)
	}
	k := key(seq, sender)
	s, t := tr.p.expect(k)
	gs, gt := sum(b)
	if len(rest) > 0 {
		gs, gt = sumOn(rest, gs, gt)
	}
	if gs != s || gt != t {
		return fmt.Errorf("sender %d message %d: the body's sums are %#x, %#x, want %#x, %#x: corrupt payload", sender, seq, gs, gt, s, t)
	}
	if got, want := binary.LittleEndian.Uint32(b[4:]), digest(s, t, k); got != want {
		return fmt.Errorf("sender %d message %d: check field %#08x, want %#08x", sender, seq, got, want)
	}
	tr.next[sender] = seq + 1
	return nil
}
