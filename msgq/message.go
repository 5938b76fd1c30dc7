package msgq

import (
	"encoding/binary"
	"sync"
)

// hdrSize is the size of the type field that opens the kernel's struct
// msgbuf: a C long, 8 bytes on the 64-bit platforms this package supports.
const hdrSize = 8

// Message is one message laid out as the kernel wants it (struct msgbuf): the
// type, then the text, in one buffer. [Queue.SendMessage] and
// [Queue.ReceiveMessage] hand that buffer to the kernel as it is, so a
// program that keeps a Message and reuses it sends and receives without
// allocating and without copying the text more than the kernel does.
//
// The zero value is an empty message of type 0 with no capacity; set a type
// before sending it, and give it capacity ([NewMessage], [Message.Resize])
// before receiving into it. A Message is not safe for concurrent use: use one
// per goroutine, and do not touch it while a Send or Receive using it runs.
// Pass it by pointer: a copy would share the buffer until either grows.
type Message struct {
	// b[:hdrSize] holds the type in native byte order; b[hdrSize:] is the
	// text. cap(b)-hdrSize is the most text a receive can take.
	b []byte
}

// NewMessage returns an empty message with room for size bytes of text. A
// negative size counts as 0.
func NewMessage(size int) *Message {
	return &Message{b: make([]byte, hdrSize, hdrSize+max(size, 0))}
}

// Type returns the message type: the one set by [Message.SetType], or the
// one received.
func (m *Message) Type() int64 {
	if len(m.b) < hdrSize {
		return 0
	}
	return int64(binary.NativeEndian.Uint64(m.b))
}

// SetType sets the message type. Sending requires a type of at least 1.
func (m *Message) SetType(t int64) {
	m.ensureHeader()
	binary.NativeEndian.PutUint64(m.b, uint64(t))
}

// Text returns the message text: what [Message.SetText] or
// [Message.Resize] left there, or what was received. The slice aliases the
// message's buffer: it is valid until the next call that changes the
// message (SetText, Resize, ReceiveMessage), and writes to it change the
// text that will be sent.
func (m *Message) Text() []byte {
	if len(m.b) < hdrSize {
		return nil
	}
	return m.b[hdrSize:len(m.b):len(m.b)]
}

// Cap returns how many bytes of text the message has room for: the most
// that [Queue.ReceiveMessage] can receive into it.
func (m *Message) Cap() int {
	return max(cap(m.b)-hdrSize, 0)
}

// SetText sets the text to a copy of p, growing the buffer if p does not
// fit (only then does it allocate).
func (m *Message) SetText(p []byte) {
	copy(m.Resize(len(p)), p)
}

// Resize sets the length of the text to n and returns the text, for the
// caller to fill in place. It keeps the type and the first min(n, old
// length) bytes of text; bytes past those hold whatever the buffer held
// before. It allocates only when n is more than [Message.Cap], and then
// grows the buffer to exactly n. A negative n counts as 0.
func (m *Message) Resize(n int) []byte {
	n = max(n, 0)
	if need := hdrSize + n; cap(m.b) < need {
		b := make([]byte, need)
		copy(b, m.b)
		m.b = b
	} else {
		m.b = m.b[:need]
	}
	return m.Text()
}

// ensureHeader gives the message room for its type if it has none (the
// zero Message).
func (m *Message) ensureHeader() {
	if len(m.b) < hdrSize {
		m.Resize(0)
	}
}

// pool holds the Messages that [Queue.Send] and [Queue.Receive] borrow to
// give the kernel a contiguous buffer for a text longer than stackText
// (shorter ones go through a buffer on their stack). Each grows to the
// largest message it has carried, so in steady state borrowing one
// allocates nothing.
var pool = sync.Pool{New: func() any { return new(Message) }}

// borrow returns a pooled buffer of exactly hdrSize+n bytes and the Message
// that owns it, to be given back with pool.Put once the buffer is done with.
func borrow(n int) (*Message, []byte) {
	m := pool.Get().(*Message)
	need := hdrSize + n
	if cap(m.b) < need {
		m.b = make([]byte, need)
	}
	return m, m.b[:need]
}
