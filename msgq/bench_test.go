//go:build go1.24

// The build line lifts this file to Go 1.24, which testing.B.Loop needs;
// the module itself stays at go 1.22.

package msgq_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/shmring/shmring/internal/ipctest"
	"github.com/shmring/shmring/msgq"
)

var benchSizes = []int{8, 64, 1024, 4096}

// benchContexts are the two kinds of context the benchmarks run with: one
// that cannot be cancelled (ctx.Done() == nil: one plain blocking system
// call per Send or Receive) and one that can (an IPC_NOWAIT attempt first,
// which is all it takes when the queue has room or a message).
var benchContexts = []struct {
	name string
	ctx  func() (context.Context, context.CancelFunc)
}{
	{"background", func() (context.Context, context.CancelFunc) { return context.Background(), func() {} }},
	{"cancellable", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }},
}

// BenchmarkSendReceive sends a message and receives it back in one
// goroutine, through the slice API (Send, Receive), with a context that
// cannot be cancelled and with one that can: two system calls per message,
// no waiting. It must report 0 allocs/op. BenchmarkSendReceiveRaw is the
// same work without the binding.
func BenchmarkSendReceive(b *testing.B) {
	for _, size := range benchSizes {
		for _, c := range benchContexts {
			b.Run(fmt.Sprintf("size=%d/ctx=%s", size, c.name), func(b *testing.B) {
				q := newQueue(b)
				ctx, cancel := c.ctx()
				defer cancel()
				data := make([]byte, size)
				buf := make([]byte, size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if err := q.Send(ctx, 1, data, 0); err != nil {
						b.Fatal(err)
					}
					if _, _, err := q.Receive(ctx, buf, msgq.Any(), 0); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkSendReceiveRaw is BenchmarkSendReceive without the binding: the
// bare msgsnd and msgrcv system calls through unix.Syscall6, on a msgbuf
// (a C long for the type, then the text) allocated once, with only the
// errno and the received length checked. It is the floor that Send and
// Receive, SendMessage and ReceiveMessage are measured against.
func BenchmarkSendReceiveRaw(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			q := newQueue(b)
			id := uintptr(q.ID())
			out := make([]byte, 8+size)
			binary.NativeEndian.PutUint64(out, 1)
			in := make([]byte, 8+size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, e := unix.Syscall6(unix.SYS_MSGSND, id, uintptr(unsafe.Pointer(&out[0])), uintptr(size), 0, 0, 0); e != 0 {
					b.Fatal(e)
				}
				if n, _, e := unix.Syscall6(unix.SYS_MSGRCV, id, uintptr(unsafe.Pointer(&in[0])), uintptr(size), 0, 0, 0); e != 0 || int(n) != size {
					b.Fatal(n, e)
				}
			}
		})
	}
}

// BenchmarkSendReceiveMessage is BenchmarkSendReceive through kept Messages
// (SendMessage, ReceiveMessage), with a context that cannot be cancelled
// and with one that can. Neither allocates: with a cancellable context the
// calls try IPC_NOWAIT first, and here they never have to wait.
func BenchmarkSendReceiveMessage(b *testing.B) {
	for _, size := range benchSizes {
		for _, c := range benchContexts {
			b.Run(fmt.Sprintf("size=%d/ctx=%s", size, c.name), func(b *testing.B) {
				q := newQueue(b)
				ctx, cancel := c.ctx()
				defer cancel()
				out := msgq.NewMessage(size)
				out.SetType(1)
				out.Resize(size)
				in := msgq.NewMessage(size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if err := q.SendMessage(ctx, out, 0); err != nil {
						b.Fatal(err)
					}
					if err := q.ReceiveMessage(ctx, in, msgq.Any(), 0); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkPingPong measures round trips between this process and an echo
// helper process over one queue: a ping of type 1 goes out, the helper sends
// it back as type 2. One op is one round trip, two messages and four system
// calls; SetBytes counts the bytes carried both ways.
func BenchmarkPingPong(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			q := newQueue(b)
			cmd := ipctest.Command(b, "echo", "MSGQ_ID="+strconv.Itoa(q.ID()))
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			out := msgq.NewMessage(size)
			out.SetType(typePing)
			out.Resize(size)
			in := msgq.NewMessage(size)
			b.SetBytes(2 * int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if err := q.SendMessage(ctx, out, 0); err != nil {
					b.Fatal(err)
				}
				if err := q.ReceiveMessage(ctx, in, msgq.Type(typePong), 0); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			out.SetType(typeStop)
			if err := q.SendMessage(ctx, out, 0); err != nil {
				b.Fatal(err)
			}
			if err := waitCmd(b, cmd); err != nil {
				b.Fatalf("echo helper: %v", err)
			}
		})
	}
}

// TestAllocs checks what the benchmarks report, as a test: a send and a
// receive allocate nothing once the pool is warm.
func TestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items at random")
	}
	q := newQueue(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	data := make([]byte, 512)
	buf := make([]byte, 512)
	out := msgq.NewMessage(512)
	out.SetType(2)
	out.Resize(512)
	in := msgq.NewMessage(512)
	for name, f := range map[string]func(){
		"Send/Receive": func() {
			if q.Send(ctx, 1, data, 0) != nil {
				t.Fatal("send")
			}
			if _, _, err := q.Receive(context.Background(), buf, msgq.Any(), 0); err != nil {
				t.Fatal(err)
			}
		},
		"SendMessage/ReceiveMessage": func() {
			if q.SendMessage(context.Background(), out, 0) != nil {
				t.Fatal("send")
			}
			if err := q.ReceiveMessage(ctx, in, msgq.Type(2), 0); err != nil {
				t.Fatal(err)
			}
		},
		"NoWait errors": func() {
			if _, _, err := q.Receive(ctx, buf, msgq.Any(), msgq.NoWait); err != msgq.ErrNoMessage {
				t.Fatal(err)
			}
		},
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", name, n)
		}
	}
}
