//go:build go1.24

// The build line lifts this file to Go 1.24, which testing.B.Loop needs;
// the module itself stays at go 1.22.

package main

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/shmring/shmring/internal/ipctest"
	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/msgq"
)

// BenchmarkMsgqLoop measures, in one process, what ringbench's msgq
// throughput sides do for each message besides the system calls. One op
// sends a 64-byte message and receives it back, with kept Messages and
// context.Background, as msgqSend and msgqReceive do; the variants add the
// sides' own work:
//
//   - work=none: nothing else, the floor;
//   - work=checks: the sender's pl.fill before each send and the
//     receiver's tr.accept after each receive;
//   - work=checks+clock: also a look at the clock by each side after every
//     message, as the pipe and unix sides take;
//   - work=checks+tick: looks every tickEvery messages instead, as the msgq
//     and ring sides take.
//
// The meter stays in its warm-up, so a look costs what it costs in the
// measured interval.
func BenchmarkMsgqLoop(b *testing.B) {
	const size = 64
	for _, work := range []string{"none", "checks", "checks+clock", "checks+tick"} {
		b.Run("work="+work, func(b *testing.B) {
			q, err := msgq.Create(ipc.Private, nil)
			if err != nil {
				b.Fatal(err)
			}
			ipctest.Track(b, ipctest.Msg, q.ID())
			b.Cleanup(func() {
				if err := q.Remove(); err != nil {
					b.Error(err)
				}
			})
			checks := work != "none"
			// Each side looks at the clock when seq reaches next, as
			// msgqSend and msgqReceive do; with next at the top, never.
			var every, next uint64 = 0, math.MaxUint64
			switch work {
			case "checks+clock":
				every, next = 1, 1
			case "checks+tick":
				every, next = tickEvery, tickEvery
			}
			ctx := context.Background()
			pl := newPayload(size)
			tr := newTracker(pl, 1, true)
			out := msgq.NewMessage(size)
			out.SetType(1)
			text := out.Resize(size)
			in := msgq.NewMessage(size)
			m := &meter{base: time.Now(), warmEnd: time.Hour, end: 2 * time.Hour}
			var seq uint64
			b.ReportAllocs()
			for b.Loop() {
				if checks {
					pl.fill(text, seq, 0)
				}
				if err := q.SendMessage(ctx, out, 0); err != nil {
					b.Fatal(err)
				}
				seq++
				look := seq == next
				if look {
					next += every
					m.tick(seq)
				}
				if err := q.ReceiveMessage(ctx, in, msgq.Any(), 0); err != nil {
					b.Fatal(err)
				}
				if checks {
					if err := tr.accept(in.Text(), int(in.Type()-1)); err != nil {
						b.Fatal(err)
					}
				}
				if look {
					m.tick(seq)
				}
			}
		})
	}
}
