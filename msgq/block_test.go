package msgq_test

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmring/shmring/internal/ipctest"
	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/msgq"
)

// contexts are the two kinds of context a blocking call can get: one that
// cannot be cancelled (a plain blocking system call) and one that can (the
// interrupter).
var contexts = []struct {
	name string
	ctx  func(t *testing.T) context.Context
}{
	{"ctx=background", func(*testing.T) context.Context { return context.Background() }},
	{"ctx=cancellable", func(t *testing.T) context.Context {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		return ctx
	}},
}

// TestRemoveWhileBlocked removes a queue under a blocked Receive and a
// blocked Send: both return an error matching ipc.ErrRemoved and EIDRM.
func TestRemoveWhileBlocked(t *testing.T) {
	for _, c := range contexts {
		t.Run("op=receive/"+c.name, func(t *testing.T) {
			q := newQueue(t)
			ctx := c.ctx(t)
			errc := make(chan error, 1)
			go func() {
				_, _, err := q.Receive(ctx, make([]byte, 8), msgq.Type(5), 0)
				errc <- err
			}()
			waitBlocked(t, unix.SYS_MSGRCV, q.ID())
			if err := q.Remove(); err != nil {
				t.Fatal(err)
			}
			err := await(t, errc, "Receive on a removed queue")
			if !errors.Is(err, ipc.ErrRemoved) || !errors.Is(err, unix.EIDRM) {
				t.Errorf("got %v, want ipc.ErrRemoved and EIDRM", err)
			}
		})
		t.Run("op=send/"+c.name, func(t *testing.T) {
			q := newQueue(t)
			if err := q.SetMaxBytes(2); err != nil {
				t.Fatal(err)
			}
			fill(t, q)
			ctx := c.ctx(t)
			errc := make(chan error, 1)
			go func() { errc <- q.Send(ctx, 1, []byte("x"), 0) }()
			waitBlocked(t, unix.SYS_MSGSND, q.ID())
			if err := q.Remove(); err != nil {
				t.Fatal(err)
			}
			err := await(t, errc, "Send on a removed queue")
			if !errors.Is(err, ipc.ErrRemoved) || !errors.Is(err, unix.EIDRM) {
				t.Errorf("got %v, want ipc.ErrRemoved and EIDRM", err)
			}
		})
	}
}

// TestCancel cancels a Receive blocked on an empty queue and a Send
// blocked on a full one: both return ctx.Err() and change nothing.
func TestCancel(t *testing.T) {
	t.Run("op=receive", func(t *testing.T) {
		q := newQueue(t)
		if err := q.Send(bg, 1, []byte("not this one"), 0); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(bg)
		defer cancel()
		errc := make(chan error, 1)
		go func() { errc <- q.ReceiveMessage(ctx, msgq.NewMessage(64), msgq.Type(2), 0) }()
		waitBlocked(t, unix.SYS_MSGRCV, q.ID())
		cancel()
		if err := await(t, errc, "cancelled Receive"); err != context.Canceled {
			t.Errorf("got %v, want context.Canceled itself", err)
		}
		if info, err := q.Stat(); err != nil || info.Messages != 1 {
			t.Errorf("after cancel: %d messages (err %v), want 1", info.Messages, err)
		}
	})
	t.Run("op=send", func(t *testing.T) {
		q := newQueue(t)
		if err := q.SetMaxBytes(3); err != nil {
			t.Fatal(err)
		}
		n := fill(t, q)
		ctx, cancel := context.WithCancel(bg)
		defer cancel()
		errc := make(chan error, 1)
		go func() { errc <- q.Send(ctx, 2, []byte("x"), 0) }()
		waitBlocked(t, unix.SYS_MSGSND, q.ID())
		cancel()
		if err := await(t, errc, "cancelled Send"); err != context.Canceled {
			t.Errorf("got %v, want context.Canceled itself", err)
		}
		if info, err := q.Stat(); err != nil || info.Messages != uint64(n) {
			t.Errorf("after cancel: %d messages (err %v), want %d", info.Messages, err, n)
		}
		if _, _, err := q.Receive(bg, nil, msgq.Type(2), msgq.NoWait); err != msgq.ErrNoMessage {
			t.Errorf("the cancelled message was sent: %v", err)
		}
	})
	t.Run("op=receive/deadline", func(t *testing.T) {
		q := newQueue(t)
		ctx, cancel := context.WithTimeout(bg, 20*time.Millisecond)
		defer cancel()
		errc := make(chan error, 1)
		go func() { errc <- rerr(q.Receive(ctx, nil, msgq.Any(), 0)) }()
		if err := await(t, errc, "Receive with a deadline"); err != context.DeadlineExceeded {
			t.Errorf("got %v, want context.DeadlineExceeded", err)
		}
	})
	t.Run("done-before", func(t *testing.T) {
		q := newQueue(t)
		ctx, cancel := context.WithCancel(bg)
		cancel()
		for _, flags := range []msgq.Flags{0, msgq.NoWait} {
			if err := q.Send(ctx, 1, []byte("x"), flags); err != context.Canceled {
				t.Errorf("Send(flags %d) with a done context: %v, want context.Canceled", flags, err)
			}
		}
		if err := q.Send(bg, 1, []byte("x"), 0); err != nil {
			t.Fatal(err)
		}
		for _, flags := range []msgq.Flags{0, msgq.NoWait} {
			if _, _, err := q.Receive(ctx, make([]byte, 8), msgq.Any(), flags); err != context.Canceled {
				t.Errorf("Receive(flags %d) with a done context: %v, want context.Canceled", flags, err)
			}
		}
		if info, err := q.Stat(); err != nil || info.Messages != 1 {
			t.Errorf("done contexts changed the queue: %d messages (err %v), want 1", info.Messages, err)
		}
	})
}

// TestCancelRace receives a stream of messages through Receives whose
// contexts expire at random moments, around and during the blocking call,
// while a sender keeps the queue between empty and full. Each Receive
// either takes a message or returns ctx.Err(); no message is lost or
// duplicated, and none comes out of order.
func TestCancelRace(t *testing.T) {
	const count = 3000
	q := newQueue(t)
	if err := q.SetMaxBytes(64); err != nil {
		t.Fatal(err)
	}
	senderr := make(chan error, 1)
	go func() {
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range count {
			if rng.IntN(4) == 0 {
				// Let the queue run empty, so that receives wait and expire.
				time.Sleep(time.Duration(rng.IntN(200)) * time.Microsecond)
			}
			ctx, cancel := context.WithTimeout(bg, time.Duration(rng.IntN(100))*time.Microsecond)
			for {
				err := q.Send(ctx, 1, binary.LittleEndian.AppendUint64(nil, uint64(i)), 0)
				if err == nil {
					break
				}
				if err != context.DeadlineExceeded {
					cancel()
					senderr <- err
					return
				}
				cancel()
				ctx, cancel = context.WithTimeout(bg, time.Duration(rng.IntN(100))*time.Microsecond)
			}
			cancel()
		}
		senderr <- nil
	}()

	rng := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, 8)
	deadline := time.Now().Add(ipctest.Deadline)
	cancels := 0
	for next := 0; next < count; {
		if time.Now().After(deadline) {
			t.Fatalf("received %d of %d messages in %v", next, count, ipctest.Deadline)
		}
		ctx, cancel := context.WithTimeout(bg, time.Duration(rng.IntN(150))*time.Microsecond)
		n, _, err := q.Receive(ctx, buf, msgq.Any(), 0)
		cancel()
		switch {
		case err == context.DeadlineExceeded:
			cancels++
		case err != nil:
			t.Fatal(err)
		case n != 8 || binary.LittleEndian.Uint64(buf) != uint64(next):
			t.Fatalf("message %d: got %x", next, buf[:n])
		default:
			next++
		}
	}
	if err := await(t, senderr, "sender"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := q.Receive(bg, buf, msgq.Any(), msgq.NoWait); err != msgq.ErrNoMessage {
		t.Errorf("extra message after the stream: %v", err)
	}
	t.Logf("%d receives cancelled", cancels)

	// Contexts that expire within microseconds: the cancellation often
	// comes before the blocking call has started, and must still end it.
	for i := range 1000 {
		ctx, cancel := context.WithTimeout(bg, time.Duration(i%50)*time.Microsecond)
		errc := make(chan error, 1)
		go func() { errc <- rerr(q.Receive(ctx, buf, msgq.Any(), 0)) }()
		err := await(t, errc, "Receive with a short deadline")
		cancel()
		if err != context.DeadlineExceeded {
			t.Fatalf("attempt %d: %v, want context.DeadlineExceeded", i, err)
		}
	}
}

// TestSignalStorm hammers every thread with SIGURG while a Receive waits on
// an empty queue and a Send on a full one: they retry after each EINTR and
// complete when a message or room arrives.
func TestSignalStorm(t *testing.T) {
	for _, c := range contexts {
		t.Run("op=receive/"+c.name, func(t *testing.T) {
			q := newQueue(t)
			ctx := c.ctx(t)
			type result struct {
				n   int
				typ int64
				err error
			}
			resc := make(chan result, 1)
			buf := make([]byte, 16)
			go func() {
				n, typ, err := q.Receive(ctx, buf, msgq.Any(), 0)
				resc <- result{n, typ, err}
			}()
			waitBlocked(t, unix.SYS_MSGRCV, q.ID())
			stop := storm(t)
			if err := q.Send(bg, 3, []byte("after the storm"), 0); err != nil {
				t.Fatal(err)
			}
			r := await(t, resc, "Receive in a signal storm")
			stop()
			if r.err != nil || r.typ != 3 || string(buf[:r.n]) != "after the storm" {
				t.Errorf("got %q of type %d, err %v", buf[:r.n], r.typ, r.err)
			}
		})
		t.Run("op=send/"+c.name, func(t *testing.T) {
			q := newQueue(t)
			if err := q.SetMaxBytes(2); err != nil {
				t.Fatal(err)
			}
			fill(t, q)
			ctx := c.ctx(t)
			errc := make(chan error, 1)
			go func() { errc <- q.Send(ctx, 2, []byte("x"), 0) }()
			waitBlocked(t, unix.SYS_MSGSND, q.ID())
			stop := storm(t)
			if _, _, err := q.Receive(bg, nil, msgq.Any(), 0); err != nil {
				t.Fatal(err)
			}
			err := await(t, errc, "Send in a signal storm")
			stop()
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := q.Receive(bg, make([]byte, 1), msgq.Type(2), msgq.NoWait); err != nil {
				t.Errorf("the message sent in the storm: %v", err)
			}
		})
	}
}

// storm starts a signal storm at this process and waits until it has made
// a blocked call retry after EINTR. The returned function ends the storm.
func storm(t *testing.T) (stop func()) {
	t.Helper()
	before := msgq.EINTRRetries()
	ctx, cancel := context.WithCancel(context.Background())
	sent := make(chan int, 1)
	go func() { sent <- ipctest.SignalStorm(ctx, os.Getpid()) }()
	deadline := time.Now().Add(ipctest.Deadline)
	for msgq.EINTRRetries() < before+10 {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no EINTR retries after %v of signal storm", ipctest.Deadline)
		}
		time.Sleep(time.Millisecond)
	}
	return func() {
		cancel()
		t.Logf("%d signals, %d retries after EINTR", <-sent, msgq.EINTRRetries()-before)
	}
}
