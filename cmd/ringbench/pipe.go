package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// The file descriptors a pipe or unix child inherits. A sender writes on
// fd 3, a receiver reads fd 3; the ping-pong initiator writes on fd 3 and
// reads fd 4, the responder reads fd 3 and writes on fd 4. A unix socket is
// both at once.
const (
	fd3 = 3
	fd4 = 4
)

// setupPipe makes the pipes of a run: one for throughput, one per direction
// for ping-pong. They keep the kernel's default size (64 KiB).
func setupPipe(cfg *config, c benchCase) (*runPlan, error) {
	plan := &runPlan{}
	spec := childSpec{Transport: "pipe", Size: c.size, Producers: 1, Consumers: 1}
	if c.mode == modeThroughput {
		r, w, err := newPipe()
		if err != nil {
			return plan, err
		}
		send, recv := spec, spec
		send.Role, recv.Role = roleSend, roleRecv
		plan.children = append(plan.children,
			childPlan{spec: send, files: []*os.File{w}},
			childPlan{spec: recv, files: []*os.File{r}})
	} else {
		r1, w1, err := newPipe()
		if err != nil {
			return plan, err
		}
		r2, w2, err := newPipe()
		if err != nil {
			r1.Close()
			w1.Close()
			return plan, err
		}
		ping, pong := spec, spec
		ping.Role, pong.Role = rolePing, rolePong
		plan.children = append(plan.children,
			childPlan{spec: ping, files: []*os.File{w1, r2}},
			childPlan{spec: pong, files: []*os.File{r1, w2}})
	}
	pinChildren(cfg, plan.children)
	return plan, nil
}

// newPipe makes a pipe in blocking mode, so that the children's reads and
// writes are plain system calls.
func newPipe() (r, w *os.File, err error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return nil, nil, os.NewSyscallError("pipe2", err)
	}
	return os.NewFile(uintptr(fds[0]), "pipe-r"), os.NewFile(uintptr(fds[1]), "pipe-w"), nil
}

// pipeChild runs one side of a pipe run.
func pipeChild(s *childSpec, ses *session) (*childReport, error) {
	return fdChild(s, ses, fdConn{packet: false})
}

// fdConn moves messages over inherited file descriptors: a byte stream
// (pipe), where a message is read until it is whole, or a packet socket,
// where one read is one message.
type fdConn struct {
	in, out int
	packet  bool
}

// send writes b whole.
func (c fdConn) send(b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(c.out, b)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return os.NewSyscallError("write", err)
		}
		b = b[n:]
	}
	return nil
}

// receive reads one message into b, which has the message size. It returns
// io.EOF when the writer closed before a new message began.
func (c fdConn) receive(b []byte) error {
	got := 0
	for got < len(b) {
		n, err := unix.Read(c.in, b[got:])
		switch {
		case err != nil && errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return os.NewSyscallError("read", err)
		case n == 0 && got == 0:
			return io.EOF
		case n == 0:
			return fmt.Errorf("read: %w after %d of %d bytes", io.ErrUnexpectedEOF, got, len(b))
		case c.packet && n != len(b):
			return fmt.Errorf("read a packet of %d bytes, want %d", n, len(b))
		}
		got += n
	}
	return nil
}

// fdChild runs one side of a pipe or unix socket run.
func fdChild(s *childSpec, ses *session, c fdConn) (*childReport, error) {
	switch s.Role {
	case roleSend:
		c.out = fd3
	case roleRecv:
		c.in = fd3
	case rolePing:
		c.out, c.in = fd3, fd4
		if c.packet {
			c.in = fd3
		}
	case rolePong:
		c.in, c.out = fd3, fd4
		if c.packet {
			c.out = fd3
		}
	default:
		return nil, fmt.Errorf("%s: unknown role %q", s.Transport, s.Role)
	}
	pl := newPayload(s.Size)
	buf := make([]byte, s.Size)
	m, err := ses.start()
	if err != nil {
		return nil, err
	}
	var seq uint64
	switch s.Role {
	case roleSend:
		for {
			pl.fill(buf, seq, 0)
			if err := c.send(buf); err != nil {
				return nil, fmt.Errorf("send %d: %w", seq, err)
			}
			seq++
			if m.tick(seq) {
				break
			}
		}
		// Closing is the end marker: the receiver reads the rest, then EOF.
		if err := unix.Close(c.out); err != nil {
			return nil, os.NewSyscallError("close", err)
		}
	case roleRecv:
		tr := newTracker(pl, 1, true)
		for {
			if err := c.receive(buf); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, fmt.Errorf("receive %d: %w", seq, err)
			}
			if err := tr.accept(buf, 0); err != nil {
				return nil, err
			}
			seq++
			m.tick(seq)
		}
		m.stop(seq)
	case rolePing:
		tr := newTracker(pl, 2, true)
		rbuf := make([]byte, s.Size)
		h := new(histogram)
		for {
			t0 := m.now()
			pl.fill(buf, seq, 0)
			if err := c.send(buf); err != nil {
				return nil, fmt.Errorf("send request %d: %w", seq, err)
			}
			if err := c.receive(rbuf); err != nil {
				return nil, fmt.Errorf("receive reply %d: %w", seq, err)
			}
			if err := tr.accept(rbuf, 1); err != nil {
				return nil, err
			}
			t1 := m.now()
			measuring := m.measuring()
			seq++
			done := m.tickAt(t1, seq)
			if measuring {
				h.record(int64(t1 - t0))
			}
			if done {
				break
			}
		}
		if err := unix.Close(c.out); err != nil {
			return nil, os.NewSyscallError("close", err)
		}
		rep := m.report(seq)
		rep.RTT = h.summary()
		return rep, nil
	case rolePong:
		tr := newTracker(pl, 2, true)
		rbuf := make([]byte, s.Size)
		for {
			if err := c.receive(rbuf); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, fmt.Errorf("receive request %d: %w", seq, err)
			}
			if err := tr.accept(rbuf, 0); err != nil {
				return nil, err
			}
			pl.fill(buf, seq, 1)
			if err := c.send(buf); err != nil {
				return nil, fmt.Errorf("send reply %d: %w", seq, err)
			}
			seq++
			m.tick(seq)
		}
		m.stop(seq)
	}
	return m.report(seq), nil
}
