package ring

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// spanModel is what a ring of spanning messages should hold, in order:
// each message with the slots it takes.
type spanModel struct {
	q        []framingEntry
	slots    int // the ring's
	used     int // slots the queued messages take
	slot     int // payload bytes per slot
	max      int
	produced int
}

func (m *spanModel) span(n int) int {
	if n <= max(m.slot, InlineCap) {
		return 1
	}
	return (n + m.slot - 1) / m.slot
}

func (m *spanModel) push(typ int64, data []byte) {
	m.q = append(m.q, framingEntry{typ: typ, data: data})
	m.used += m.span(len(data))
}

func (m *spanModel) pop() {
	m.used -= m.span(len(m.q[0].data))
	m.q = m.q[1:]
}

func (m *spanModel) message(n int) []byte {
	m.produced++
	d := make([]byte, n)
	for i := range d {
		d[i] = byte(m.produced*31 + i*7)
	}
	return d
}

// FuzzSpanning drives one producer and one consumer of a heap ring of
// 64-byte slots, in a mode, slot count and largest message the script
// chooses, with random Try calls (sends of 0 bytes to past the limit,
// batches mixing spans with messages of one slot, receives into buffers of
// random capacity, batches of them, peeks), and compares every result with
// a model: FIFO content and type, a span refused whole when its slots are
// not all free, and the sentinel of every refusal. Some scripts make a
// fan-out ring (Block) of one subscriber, which must behave the same.
func FuzzSpanning(f *testing.F) {
	f.Add([]byte{0, 1, 255, 0, 1, 200, 2, 255, 0, 1, 255, 0, 1, 255, 6, 2, 255})
	f.Add([]byte{3, 2, 128, 4, 3, 1, 90, 2, 250, 1, 30, 5, 3, 100, 20, 255, 6, 6, 6})
	f.Add([]byte{4, 0, 255, 0, 5, 255, 0, 5, 254, 2, 10, 2, 255, 7, 1, 255, 4})
	f.Add([]byte{2, 3, 1, 90, 0, 1, 255, 0, 2, 200, 4, 3, 1, 90, 2, 250, 6, 2, 5, 3, 100, 20, 255, 7, 2})
	f.Add([]byte{3, 3, 2, 200, 0, 1, 255, 0, 2, 255, 7, 1, 0, 3, 254, 2, 255, 6, 1, 4, 2, 128, 30, 5, 2, 255, 40})
	f.Fuzz(func(t *testing.T, script []byte) {
		in := &fuzzReader{script}
		mode, selective, fanout := spanModes[int(in.next())%len(spanModes)].mode, false, false
		if k := int(in.next()); k%len(spanModes) >= 4 && mode.multiConsumer() {
			selective = true
		} else if k%len(spanModes) == 3 && mode.multiConsumer() {
			fanout = true
		}
		slots := 4 << (in.next() % 3)
		maxMessage := InlineCap + 1 + int(in.next())%(slots*64/2-InlineCap)
		opts := &Options{Mode: mode, Selective: selective, Fanout: fanout, Slots: slots, SlotSize: 64, MaxMessage: maxMessage}
		if mode.multiProducer() {
			opts.MaxProducers = 2
		}
		if mode.multiConsumer() {
			opts.MaxConsumers = 2
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
		m := &spanModel{slots: slots, slot: 64, max: maxMessage}
		for step := 0; in.more(); step++ {
			if err := spanStep(in, p, c, m); err != nil {
				t.Fatalf("%v ring (selective %v, fan-out %v) of %d slots, messages to %d bytes, step %d: %v", mode, selective, fanout, slots, maxMessage, step, err)
			}
		}
	})
}

func spanStep(in *fuzzReader, p *Producer, c *Consumer, m *spanModel) error {
	size := func() int { return int(in.next()) * (m.max + 2) / 256 }
	switch op := in.next() % 8; op {
	case 0, 1: // TrySend
		typ, n := int64(1+in.next()%3), size()
		data := m.message(n)
		err := p.TrySend(typ, data)
		var want error
		switch {
		case n > m.max:
			want = ErrTooLarge
		case m.used+m.span(n) > m.slots:
			want = ErrFull
		}
		if !matches(err, want) {
			return fmt.Errorf("TrySend(%d bytes, %d slots, %d used): %v, want %v", n, m.span(n), m.used, err, want)
		}
		if err == nil {
			m.push(typ, data)
		}

	case 2, 3: // TryReceive
		buf := make([]byte, size())
		n, typ, err := c.TryReceive(buf)
		switch {
		case len(m.q) == 0:
			if !errors.Is(err, ErrEmpty) {
				return fmt.Errorf("TryReceive on an empty ring: %d bytes, %v", n, err)
			}
		case len(m.q[0].data) > len(buf):
			if !errors.Is(err, ErrTooLarge) {
				return fmt.Errorf("TryReceive of %d bytes into %d: %v", len(m.q[0].data), len(buf), err)
			}
		default:
			if err != nil || typ != m.q[0].typ || !bytes.Equal(buf[:n], m.q[0].data) {
				return fmt.Errorf("TryReceive: type %d, %d bytes, %v; want type %d, %d bytes", typ, n, err, m.q[0].typ, len(m.q[0].data))
			}
			m.pop()
		}

	case 4: // TrySendBatch
		msgs := make([]Message, 1+in.next()%4)
		for i := range msgs {
			msgs[i] = Message{Type: 1, Data: m.message(min(size(), m.max))}
		}
		fit, used := 0, m.used
		for fit < len(msgs) && used+m.span(len(msgs[fit].Data)) <= m.slots {
			used += m.span(len(msgs[fit].Data))
			fit++
		}
		sent, err := p.TrySendBatch(msgs)
		want := error(nil)
		if fit == 0 {
			want = ErrFull
		}
		if !matches(err, want) || sent != fit {
			return fmt.Errorf("TrySendBatch of %d, %d fit: sent %d, %v", len(msgs), fit, sent, err)
		}
		for _, msg := range msgs[:sent] {
			m.push(msg.Type, msg.Data)
		}

	case 5: // TryReceiveBatch into buffers of mixed sizes
		msgs := make([]Message, 1+in.next()%4)
		for i := range msgs {
			msgs[i].Data = make([]byte, size())
		}
		caps := make([]int, len(msgs))
		for i := range msgs {
			caps[i] = cap(msgs[i].Data)
		}
		got, err := c.TryReceiveBatch(msgs)
		fit := 0
		for fit < len(msgs) && fit < len(m.q) && len(m.q[fit].data) <= caps[fit] {
			fit++
		}
		var want error
		switch {
		case len(m.q) == 0:
			want = ErrEmpty
		case fit == 0:
			want = ErrTooLarge
		}
		// A batch may end early (on a selective ring, at a claim's end),
		// never late, and never with a message out of place.
		if !matches(err, want) || got > fit || want == nil && got == 0 {
			return fmt.Errorf("TryReceiveBatch of %d with %d fitting: %d, %v (want %v)", len(msgs), fit, got, err, want)
		}
		for i := 0; i < got; i++ {
			if msgs[i].Type != m.q[0].typ || !bytes.Equal(msgs[i].Data, m.q[0].data) {
				return fmt.Errorf("TryReceiveBatch message %d: %d bytes, want %d", i, len(msgs[i].Data), len(m.q[0].data))
			}
			m.pop()
		}

	default: // TryPeek or TryPeekBatch, then Release
		held := make([]Peeked, 1+in.next()%3)
		n, err := c.TryPeekBatch(held)
		if len(m.q) == 0 {
			if !errors.Is(err, ErrEmpty) {
				return fmt.Errorf("TryPeekBatch on an empty ring: %d, %v", n, err)
			}
			return nil
		}
		if err != nil || n < 1 || n > min(len(held), len(m.q)) {
			return fmt.Errorf("TryPeekBatch of %d with %d queued: %d, %v", len(held), len(m.q), n, err)
		}
		if n > 1 && m.span(len(m.q[0].data)) > 1 {
			return fmt.Errorf("TryPeekBatch held %d with a span first", n)
		}
		for i := 0; i < n; i++ {
			got := append(append([]byte(nil), held[i].Data...), held[i].Wrapped...)
			if held[i].Type != m.q[i].typ || !bytes.Equal(got, m.q[i].data) {
				return fmt.Errorf("TryPeekBatch message %d: %d bytes, want %d", i, len(got), len(m.q[i].data))
			}
		}
		if err := c.Release(); err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			m.pop()
		}
	}
	return nil
}
