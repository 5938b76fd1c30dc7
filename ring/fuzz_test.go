package ring

import (
	"bytes"
	"errors"
	"fmt"
	"math/bits"
	"testing"

	"github.com/shmring/shmring/internal/atomicx"
)

// headerSeeds returns valid ring memory of a few small geometries, for the
// fuzzers to start from.
func headerSeeds(f *testing.F) [][]byte {
	var seeds [][]byte
	for _, opts := range []*Options{
		{Mode: SPSC, Slots: 2, MaxMessage: 8},
		{Mode: MPMC, Slots: 4, MaxMessage: 100, MaxProducers: 2, MaxConsumers: 2},
		{Mode: SPMC, Slots: 2, MaxMessage: 105, MaxConsumers: 3},
	} {
		seeds = append(seeds, formattedCopy(f, opts))
	}
	return seeds
}

// FuzzValidateHeader feeds validateHeader arbitrary bytes, as they are and
// with a recomputed checksum (so that the fuzzer reaches the geometry checks
// behind it). It must never panic, must fail only with its own sentinels,
// and when it accepts a header, every offset derived from it must lie in
// the buffer and the ring's views must build over a line-aligned copy.
func FuzzValidateHeader(f *testing.F) {
	for _, valid := range headerSeeds(f) {
		f.Add(valid)
		for _, n := range []int{0, 8, lineSize, headerSize - 1, headerSize, checksumOffset + 8, len(valid) / 2, len(valid) - 1} {
			f.Add(valid[:n])
		}
		for _, off := range []int{0, 7, offVersion, offLineSize, offMode, offFeatures, offMaxMessage, offSlotSize,
			offSlotCount, offProducers, offConsumers, offSemCount, offRoles, offDescs, offPayload, offTotal + 7,
			offSemID, offReserved, checksumOffset, stateOffset} {
			b := bytes.Clone(valid)
			b[off] ^= 1 << (off % 8)
			f.Add(b)
		}
		for _, g := range []geometry{{SPSC, 8, 3, 1, 1, false, 0, fanoutShape{}}, {MPMC, 1 << 30, 2, 1, 1, false, 0, fanoutShape{}}, {SPSC, 8, 2, 1 << 10, 1, false, 0, fanoutShape{}}, {MPMC, 89, 4, 2, 2, false, 0, fanoutShape{}}} {
			b := bytes.Clone(valid)
			writeGeometry(b, g)
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkHeader(t, b)
		if len(b) >= checksumOffset+8 {
			sealed := bytes.Clone(b)
			reseal(sealed)
			checkHeader(t, sealed)
		}
	})
}

func checkHeader(t *testing.T, b []byte) {
	g, err := validateHeader(b)
	if err != nil {
		if !errors.Is(err, ErrNotRing) && !errors.Is(err, ErrVersion) && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error of no sentinel: %v", err)
		}
		if g != (geometry{}) {
			t.Fatalf("geometry %+v returned with error %v", g, err)
		}
		return
	}
	// Accepted: read the header the way an opener then trusts it.
	slots, slotSize := uint64(le.Uint32(b[offSlotCount:])), uint64(le.Uint32(b[offSlotSize:]))
	maxMessage := uint64(le.Uint32(b[offMaxMessage:]))
	roles := uint64(le.Uint32(b[offProducers:])) + uint64(le.Uint32(b[offConsumers:]))
	rolesOff, descsOff, payloadOff, total := le.Uint64(b[offRoles:]), le.Uint64(b[offDescs:]), le.Uint64(b[offPayload:]), le.Uint64(b[offTotal:])
	n := uint64(len(b))
	switch {
	case slots < 2 || bits.OnesCount64(slots) != 1:
		t.Fatalf("accepted %d slots", slots)
	case maxMessage == 0 || maxMessage > uint64(InlineCap) && slotSize < maxMessage && g.slot == 0 || slotSize%payloadAlign != 0:
		t.Fatalf("accepted slot size %d for %d-byte messages", slotSize, maxMessage)
	case g.slot != 0 && (slotSize == 0 || maxMessage > slots*slotSize/2):
		t.Fatalf("accepted spanning messages of %d bytes in %d slots of %d", maxMessage, slots, slotSize)
	case rolesOff < fixedLines*lineSize || rolesOff%lineSize != 0:
		t.Fatalf("accepted roles at %d", rolesOff)
	case roles == 0 || rolesOff+roles*lineSize > descsOff:
		t.Fatalf("accepted %d roles at %d overlapping descriptors at %d", roles, rolesOff, descsOff)
	case descsOff%lineSize != 0 || descsOff+slots*lineSize > payloadOff:
		t.Fatalf("accepted %d descriptors at %d overlapping the payload at %d", slots, descsOff, payloadOff)
	case payloadOff > n || slotSize != 0 && slots > (n-payloadOff)/slotSize:
		t.Fatalf("accepted %d slots of %d bytes at %d in %d bytes", slots, slotSize, payloadOff, n)
	case total > n || payloadOff+slots*slotSize > total:
		t.Fatalf("accepted total %d (payload ends at %d) in %d bytes", total, payloadOff+slots*slotSize, n)
	case g.slots != int(slots) || g.maxMessage != int(maxMessage) || g.roles() != int(roles) || g.slotSize() != int(slotSize):
		t.Fatalf("geometry %+v differs from the header", g)
	}
	mem := atomicx.AlignedBuffer(len(b))
	copy(mem, b)
	r, err := newRing(mem, nil, g, Waiting{})
	if err != nil {
		t.Fatalf("views over an accepted header: %v", err)
	}
	// Touch the last role line, the last descriptor and the last byte of
	// the last slot's payload.
	r.roles.At(uint64(g.roles() - 1)).state.Load()
	r.descs.At(uint64(g.slots - 1)).seq.Load()
	if g.slotSize() > 0 {
		last := r.payloadOf(uint64(g.slots - 1))
		if len(last) < g.maxMessage && g.slot == 0 || len(last) != g.slotSize() {
			t.Fatalf("slot payload of %d bytes for %d-byte messages", len(last), g.maxMessage)
		}
		_ = last[len(last)-1]
	}
}

// fuzzReader hands out the fuzzer's bytes one at a time, then zeros.
type fuzzReader struct{ b []byte }

func (r *fuzzReader) next() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *fuzzReader) more() bool { return len(r.b) > 0 }

// framingEntry is one position of the model ring: a message, or a slot
// given up by a multi-producer Abort, which consumers pass over.
type framingEntry struct {
	skip bool
	typ  int64
	data []byte
}

// framingModel is what the ring should hold, in order.
type framingModel struct {
	q        []framingEntry
	slots    int
	max      int
	multiP   bool
	produced int
}

func (m *framingModel) dropSkips() {
	for len(m.q) > 0 && m.q[0].skip {
		m.q = m.q[1:]
	}
}

func (m *framingModel) message(size int) []byte {
	m.produced++
	d := make([]byte, size)
	for i := range d {
		d[i] = byte(m.produced*31 + i*7)
	}
	return d
}

// sendErr is the error a send of (typ, size) should get, before the ring's
// fill is considered.
func (m *framingModel) sendErr(typ int64, size int) error {
	switch {
	case typ <= 0:
		return ErrBadType
	case size > m.max:
		return ErrTooLarge
	}
	return nil
}

// FuzzFraming drives one producer and one consumer of a heap ring with
// random Try calls (sizes from 0 to past the slot, types down to -128,
// receive buffers of random capacity, batches, reservations and peeks) and
// compares every result with a model of the ring: FIFO content and type,
// and the sentinel error of every refusal.
func FuzzFraming(f *testing.F) {
	f.Add([]byte{0, 0, 10, 5, 2, 64})
	f.Add([]byte{3, 1, 0, 1, 8, 0, 2, 20, 0, 3, 30, 2, 1, 2, 40, 2, 2})
	f.Add([]byte{1, 63, 6, 1, 5, 6, 1, 9, 2, 7, 5, 3, 10, 20, 30})
	f.Add([]byte{3, 200, 6, 1, 40, 0, 1, 50, 5, 2, 10, 64, 7})
	f.Add([]byte{2, 130, 4, 4, 1, 1, 2, 2, 3, 3, 255, 4, 5, 3, 1, 9, 100, 7, 2, 1})
	// MPSC: an aborted reservation, then a 48-byte message, received in a
	// batch whose first buffer holds 4 bytes and second 48. The message must
	// be refused (ErrTooLarge), not cut to fit the first buffer.
	f.Add([]byte("100&01000%070"))
	f.Fuzz(func(t *testing.T, script []byte) {
		in := &fuzzReader{script}
		mode := Mode(1 + in.next()%4)
		opts := &Options{Mode: mode, Slots: 2 << (in.next() % 3), MaxMessage: 1 + int(in.next()%64),
			MaxProducers: 2, MaxConsumers: 2}
		if !mode.multiProducer() {
			opts.MaxProducers = 1
		}
		if !mode.multiConsumer() {
			opts.MaxConsumers = 1
		}
		r := testRing(t, heap, opts)
		p, err := r.NewProducer()
		if err != nil {
			t.Fatal(err)
		}
		c, err := r.NewConsumer()
		if err != nil {
			t.Fatal(err)
		}
		m := &framingModel{slots: opts.Slots, max: opts.MaxMessage, multiP: mode.multiProducer()}
		for step := 0; in.more(); step++ {
			if err := framingStep(in, r, p, c, m); err != nil {
				t.Fatalf("%v ring of %d×%d, step %d: %v", mode, opts.Slots, opts.MaxMessage, step, err)
			}
		}
	})
}

func framingStep(in *fuzzReader, r *Ring, p *Producer, c *Consumer, m *framingModel) error {
	size := func() int { return int(in.next()) % (m.max + 2) }
	switch op := in.next() % 8; op {
	case 0, 1: // TrySend
		typ, n := int64(int8(in.next())), size()
		data := m.message(n)
		err := p.TrySend(typ, data)
		want := m.sendErr(typ, n)
		if want == nil && len(m.q) == m.slots {
			want = ErrFull
		}
		if !matches(err, want) {
			return fmt.Errorf("TrySend(%d, %d bytes): %v, want %v", typ, n, err, want)
		}
		if err == nil {
			m.q = append(m.q, framingEntry{typ: typ, data: data})
		}

	case 2, 3: // TryReceive
		buf := make([]byte, size())
		n, typ, err := c.TryReceive(buf)
		m.dropSkips()
		switch {
		case len(m.q) == 0:
			if !errors.Is(err, ErrEmpty) {
				return fmt.Errorf("TryReceive on an empty ring: %d %q %v", typ, buf[:n], err)
			}
		case len(m.q[0].data) > len(buf):
			if !errors.Is(err, ErrTooLarge) {
				return fmt.Errorf("TryReceive of %d bytes into %d: %v", len(m.q[0].data), len(buf), err)
			}
		default:
			if err != nil || typ != m.q[0].typ || !bytes.Equal(buf[:n], m.q[0].data) {
				return fmt.Errorf("TryReceive: %d %x %v, want %d %x", typ, buf[:n], err, m.q[0].typ, m.q[0].data)
			}
			m.q = m.q[1:]
		}

	case 4: // TrySendBatch
		msgs := make([]Message, in.next()%5)
		var want error
		for i := range msgs {
			typ, n := int64(int8(in.next())), size()
			msgs[i] = Message{Type: typ, Data: m.message(n)}
			if want == nil {
				want = m.sendErr(typ, n)
			}
		}
		free := m.slots - len(m.q)
		if want == nil && len(msgs) > 0 && free == 0 {
			want = ErrFull
		}
		sent, err := p.TrySendBatch(msgs)
		if !matches(err, want) {
			return fmt.Errorf("TrySendBatch of %d with %d free: %v, want %v", len(msgs), free, err, want)
		}
		if err == nil {
			if wantSent := min(len(msgs), free); sent != wantSent {
				return fmt.Errorf("TrySendBatch of %d with %d free sent %d", len(msgs), free, sent)
			}
			for _, msg := range msgs[:sent] {
				m.q = append(m.q, framingEntry{typ: msg.Type, data: msg.Data})
			}
		} else if sent != 0 {
			return fmt.Errorf("TrySendBatch failed (%v) after sending %d", err, sent)
		}

	case 5: // TryReceiveBatch into buffers of mixed sizes
		msgs := make([]Message, in.next()%5)
		for i := range msgs {
			msgs[i].Data = make([]byte, size())
		}
		caps := make([]int, len(msgs))
		for i := range msgs {
			caps[i] = cap(msgs[i].Data)
		}
		got, err := c.TryReceiveBatch(msgs)
		if len(msgs) > 0 {
			m.dropSkips()
		}
		// Message j goes into buffer j; the batch stops before the first
		// message that does not fit its buffer.
		fit := 0
		for j, e := range msgsOf(m.q) {
			if j == len(msgs) || len(e.data) > caps[j] {
				break
			}
			fit++
		}
		switch {
		case len(msgs) == 0:
			if got != 0 || err != nil {
				return fmt.Errorf("TryReceiveBatch of none: %d %v", got, err)
			}
		case len(m.q) == 0:
			if !errors.Is(err, ErrEmpty) {
				return fmt.Errorf("TryReceiveBatch on an empty ring: %d %v", got, err)
			}
		case fit == 0:
			if !errors.Is(err, ErrTooLarge) {
				return fmt.Errorf("TryReceiveBatch, first message %d bytes into buffers %v: got %d (%x), %v",
					len(m.q[0].data), caps, got, msgs[0].Data, err)
			}
		case err != nil || got < 1 || got > fit:
			return fmt.Errorf("TryReceiveBatch with %d fitting of %d waiting: %d %v", fit, len(m.q), got, err)
		default:
			for j := 0; j < got; j++ {
				m.dropSkips()
				e := m.q[0]
				if msgs[j].Type != e.typ || !bytes.Equal(msgs[j].Data, e.data) {
					return fmt.Errorf("TryReceiveBatch message %d of %d (buffers %v): %d %x, want %d %x",
						j, got, caps, msgs[j].Type, msgs[j].Data, e.typ, e.data)
				}
				m.q = m.q[1:]
			}
		}

	case 6: // TryReserve, then Commit, Abort, or a refused Commit and Abort
		buf, err := p.TryReserve()
		if len(m.q) == m.slots {
			if !errors.Is(err, ErrFull) {
				return fmt.Errorf("TryReserve on a full ring: %v", err)
			}
			return nil
		}
		if err != nil || len(buf) != m.max {
			return fmt.Errorf("TryReserve: %d bytes, %v", len(buf), err)
		}
		n := min(size(), m.max)
		data := m.message(n)
		copy(buf, data)
		switch in.next() % 3 {
		case 0:
			typ := 1 + int64(in.next())
			if err := p.Commit(typ, n); err != nil {
				return fmt.Errorf("Commit: %v", err)
			}
			m.q = append(m.q, framingEntry{typ: typ, data: data})
		case 1:
			if err := p.Abort(); err != nil {
				return fmt.Errorf("Abort: %v", err)
			}
			if m.multiP {
				m.q = append(m.q, framingEntry{skip: true})
			}
		case 2:
			if err := p.Commit(-int64(in.next()), n); !errors.Is(err, ErrBadType) {
				return fmt.Errorf("Commit with a bad type: %v", err)
			}
			if err := p.Commit(1, m.max+1); !errors.Is(err, ErrTooLarge) {
				return fmt.Errorf("Commit of too many bytes: %v", err)
			}
			if err := p.Commit(1, -1); !errors.Is(err, ErrInvalid) {
				return fmt.Errorf("Commit of too many bytes: %v", err)
			}
			if err := p.TrySend(1, nil); !errors.Is(err, ErrPending) {
				return fmt.Errorf("TrySend during a reservation: %v", err)
			}
			if err := p.Abort(); err != nil {
				return fmt.Errorf("Abort: %v", err)
			}
			if m.multiP {
				m.q = append(m.q, framingEntry{skip: true})
			}
		}
		if err := p.Abort(); !errors.Is(err, ErrNotReserved) {
			return fmt.Errorf("Abort without a reservation: %v", err)
		}

	case 7: // TryPeek, then Release
		pk, err := c.TryPeek()
		m.dropSkips()
		if len(m.q) == 0 {
			if !errors.Is(err, ErrEmpty) {
				return fmt.Errorf("TryPeek on an empty ring: %v", err)
			}
			return nil
		}
		if err != nil || pk.Type != m.q[0].typ || !bytes.Equal(pk.Data, m.q[0].data) || pk.Redelivered {
			return fmt.Errorf("TryPeek: %d %x %v %v, want %d %x", pk.Type, pk.Data, pk.Redelivered, err, m.q[0].typ, m.q[0].data)
		}
		if _, _, err := c.TryReceive(make([]byte, m.max)); !errors.Is(err, ErrPending) {
			return fmt.Errorf("TryReceive during a peek: %v", err)
		}
		if err := c.Release(); err != nil {
			return fmt.Errorf("Release: %v", err)
		}
		if err := c.Release(); !errors.Is(err, ErrNotReserved) {
			return fmt.Errorf("second Release: %v", err)
		}
		m.q = m.q[1:]
	}

	// The ring's depth counts the positions no consumer has claimed; a
	// consumer of a multi mode claims before it looks, and holds what it
	// claimed and did not deliver (a message too large for the buffer it was
	// given, the rest of a batch) for its next call. A batch may pass
	// skipped slots after its last message: those, and only those, may have
	// left without the model knowing.
	depth, held := r.Stats().Depth, int(held(c))
	for len(m.q) > depth+held && m.q[0].skip {
		m.q = m.q[1:]
	}
	if depth+held != len(m.q) {
		return fmt.Errorf("stats depth %d and %d held, model holds %d", depth, held, len(m.q))
	}
	return nil
}

// msgsOf returns the messages of q, without the skipped slots.
func msgsOf(q []framingEntry) []framingEntry {
	var out []framingEntry
	for _, e := range q {
		if !e.skip {
			out = append(out, e)
		}
	}
	return out
}
