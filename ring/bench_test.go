//go:build go1.24

// The benchmarks use testing.B.Loop, new in Go 1.24; the build line lifts
// this file to that version while the module stays at Go 1.22.

package ring

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmring/shmring/internal/ipctest"
	"github.com/shmring/shmring/ipc"
)

var benchSizes = []int{8, 64, 1024, 4096}

func init() {
	helpers["bench-drain"] = helperBenchDrain
}

// helperBenchDrain consumes ring RING_SEG until io.EOF and prints how many
// messages it received. It cannot know in advance how many will come: the
// benchmark loop decides that while it runs.
func helperBenchDrain() int {
	w, _ := ParseWaitStrategy(os.Getenv("RING_WAIT"))
	r, err := OpenID(ipctest.GetenvInt("RING_SEG"), &OpenOptions{Wait: Waiting{Strategy: w}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-drain: open:", err)
		return 1
	}
	defer r.Close()
	c, err := r.NewConsumer()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-drain: consumer:", err)
		return 1
	}
	want, _ := strconv.Atoi(os.Getenv("RING_SIZE"))
	buf := make([]byte, r.MaxMessage())
	count := 0
	for {
		n, _, err := c.Receive(context.Background(), buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench-drain: receive:", err)
			return 1
		}
		if n != want {
			fmt.Fprintf(os.Stderr, "bench-drain: %d-byte message, want %d\n", n, want)
			return 1
		}
		count++
	}
	fmt.Println(count)
	return 0
}

// reportRate adds the message rate and the semaphore operations per
// message to a benchmark's results.
func reportRate(b *testing.B, r *Ring, msgs int) {
	if msgs == 0 {
		return
	}
	b.ReportMetric(float64(msgs)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(r.Stats().SemOps())/float64(msgs), "semops/msg")
}

// BenchmarkSendReceive measures one producer and one consumer in this
// process, each its own goroutine, over a ring in shared memory: a message
// costs a copy in, a copy out and the atomics of both sides. The ns/op is
// the producer's time per message.
func BenchmarkSendReceive(b *testing.B) {
	for _, size := range benchSizes {
		for _, mode := range []Mode{SPSC, MPMC} {
			b.Run(fmt.Sprintf("size=%d/mode=%v", size, mode), func(b *testing.B) {
				r := testRing(b, shm, &Options{Mode: mode, Slots: 256, MaxMessage: size})
				p, err := r.NewProducer()
				if err != nil {
					b.Fatal(err)
				}
				c, err := r.NewConsumer()
				if err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				type result struct {
					n   int
					err error
				}
				done := make(chan result, 1)
				go func() {
					buf := make([]byte, size)
					n := 0
					for {
						_, _, err := c.Receive(ctx, buf)
						if errors.Is(err, io.EOF) {
							done <- result{n, nil}
							return
						}
						if err != nil {
							done <- result{n, err}
							return
						}
						n++
					}
				}()
				msg := bytes.Repeat([]byte{'m'}, size)
				sent := 0
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if err := p.Send(ctx, 1, msg); err != nil {
						b.Fatal(err)
					}
					sent++
				}
				if err := p.Close(); err != nil {
					b.Fatal(err)
				}
				res := <-done
				if res.err != nil || res.n != sent {
					b.Fatalf("consumer received %d of %d: %v", res.n, sent, res.err)
				}
				reportRate(b, r, sent)
			})
		}
	}
}

// BenchmarkTrySendReceive sends and receives each message in the same
// goroutine: the cost of the ring's own code, with no peer to wait for and
// no cache line moving between CPUs.
func BenchmarkTrySendReceive(b *testing.B) {
	for _, size := range benchSizes {
		for _, mode := range []Mode{SPSC, MPMC} {
			b.Run(fmt.Sprintf("size=%d/mode=%v", size, mode), func(b *testing.B) {
				r := testRing(b, shm, &Options{Mode: mode, Slots: 256, MaxMessage: size})
				p, err := r.NewProducer()
				if err != nil {
					b.Fatal(err)
				}
				c, err := r.NewConsumer()
				if err != nil {
					b.Fatal(err)
				}
				msg := bytes.Repeat([]byte{'m'}, size)
				buf := make([]byte, size)
				n := 0
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if err := p.TrySend(1, msg); err != nil {
						b.Fatal(err)
					}
					if _, _, err := c.TryReceive(buf); err != nil {
						b.Fatal(err)
					}
					n++
				}
				reportRate(b, r, n)
			})
		}
	}
}

// BenchmarkSelect compares, in one goroutine, a send and a receive on a
// plain MPMC ring with the same on a selective MPMC ring: a plain receive
// (AnyType), and a receive of the one type the ring holds (OfType(1)),
// with depth 0 and with 63 messages of that type waiting.
func BenchmarkSelect(b *testing.B) {
	for _, tc := range []struct {
		name      string
		selective bool
		sel       ipc.Selector
		depth     int
	}{
		{"plain", false, ipc.AnyType(), 0},
		{"selective/any", true, ipc.AnyType(), 0},
		{"selective/type", true, ipc.OfType(1), 0},
		{"plain/depth=63", false, ipc.AnyType(), 63},
		{"selective/type/depth=63", true, ipc.OfType(1), 63},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := testRing(b, shm, &Options{Mode: MPMC, Selective: tc.selective, Slots: 256, MaxMessage: 64, MaxProducers: 1, MaxConsumers: 1})
			p, err := r.NewProducer()
			if err != nil {
				b.Fatal(err)
			}
			c, err := r.NewConsumer()
			if err != nil {
				b.Fatal(err)
			}
			msg := bytes.Repeat([]byte{'m'}, 64)
			for i := 0; i < max(tc.depth, -tc.depth); i++ {
				typ := int64(1)
				if tc.depth < 0 {
					typ = 2 // others, ahead of every message selected
				}
				if err := p.TrySend(typ, msg); err != nil {
					b.Fatal(err)
				}
			}
			buf := make([]byte, 64)
			b.ReportAllocs()
			for b.Loop() {
				if err := p.TrySend(1, msg); err != nil {
					b.Fatal(err)
				}
				if _, _, err := c.TryReceiveSelect(buf, tc.sel); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkProcesses measures a producer in this process and a consumer in
// a helper process that drains the ring until io.EOF. The ns/op is the
// producer's time per message, which with a full ring is the consumer's
// pace.
func BenchmarkProcesses(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("size=%d/mode=spsc", size), func(b *testing.B) {
			r := testRing(b, shm, &Options{Mode: SPSC, Slots: 256, MaxMessage: size})
			cmd := ipctest.Command(b, "bench-drain", "RING_SEG="+strconv.Itoa(r.SegmentID()),
				"RING_WAIT="+r.waiting.Strategy.String(), "RING_SIZE="+strconv.Itoa(size))
			var out bytes.Buffer
			cmd.Stdout = &out
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			p, err := r.NewProducer()
			if err != nil {
				b.Fatal(err)
			}
			// Start timing once the consumer is there, not while it starts.
			for deadline := time.Now().Add(ipctest.Deadline); r.Stats().Consumers == 0; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					p.Close()
					cmd.Wait()
					b.Fatal("the consumer process never attached")
				}
			}
			ctx := context.Background()
			msg := bytes.Repeat([]byte{'m'}, size)
			sent := 0
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if err := p.Send(ctx, 1, msg); err != nil {
					b.Fatal(err)
				}
				sent++
			}
			if err := p.Close(); err != nil {
				b.Fatal(err)
			}
			if err := cmd.Wait(); err != nil {
				b.Fatal(err)
			}
			if got, err := strconv.Atoi(strings.TrimSpace(out.String())); err != nil || got != sent {
				b.Fatalf("the consumer process received %q messages, want %d", out.String(), sent)
			}
			reportRate(b, r, sent)
		})
	}
}

// BenchmarkPingPong bounces a message off the "echo" helper process over
// two rings, one round trip per iteration, and reports the latency
// distribution. The percentiles are timed by hand: the framework's ns/op is
// a mean, which hides the tail that a sleep and a wake-up add to some round
// trips. Each round trip is recorded into a slice allocated before the loop
// (the latest ones, if there are more), so that recording allocates nothing.
func BenchmarkPingPong(b *testing.B) {
	for _, size := range []int{64, 1024} {
		for _, w := range allWaits {
			b.Run(fmt.Sprintf("size=%d/wait=%v", size, w), func(b *testing.B) {
				opts := &Options{Slots: 16, MaxMessage: size, Wait: Waiting{Strategy: w}}
				req, resp := testRing(b, shm, opts), testRing(b, shm, opts)
				cmd := ipctest.Command(b, "echo", "RING_SEG="+strconv.Itoa(req.SegmentID()),
					"RING_REPLY="+strconv.Itoa(resp.SegmentID()), "RING_WAIT="+w.String())
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				p, err := req.NewProducer()
				if err != nil {
					b.Fatal(err)
				}
				c, err := resp.NewConsumer()
				if err != nil {
					b.Fatal(err)
				}
				// Start timing once the echo process holds both its roles.
				for deadline := time.Now().Add(ipctest.Deadline); req.Stats().Consumers == 0 || resp.Stats().Producers == 0; time.Sleep(time.Millisecond) {
					if time.Now().After(deadline) {
						p.Close()
						cmd.Wait()
						b.Fatal("the echo process never attached")
					}
				}
				ctx := context.Background()
				msg := bytes.Repeat([]byte{'p'}, size)
				buf := make([]byte, size)
				lat := make([]time.Duration, 1<<20)
				n := 0
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					start := time.Now()
					if err := p.Send(ctx, 1, msg); err != nil {
						b.Fatal(err)
					}
					if k, _, err := c.Receive(ctx, buf); err != nil || k != size {
						b.Fatalf("round trip %d: %d bytes, %v", n, k, err)
					}
					lat[n%len(lat)] = time.Since(start)
					n++
				}
				if err := p.Close(); err != nil {
					b.Fatal(err)
				}
				if err := cmd.Wait(); err != nil {
					b.Fatal(err)
				}
				lat = lat[:min(n, len(lat))]
				slices.Sort(lat)
				for _, q := range []struct {
					unit string
					p    float64
				}{{"p50-ns", 0.50}, {"p99-ns", 0.99}, {"p99.9-ns", 0.999}} {
					b.ReportMetric(float64(lat[int(q.p*float64(len(lat)-1))].Nanoseconds()), q.unit)
				}
				st1, st2 := req.Stats(), resp.Stats()
				b.ReportMetric(float64(st1.SemOps()+st2.SemOps())/float64(n), "semops/op")
			})
		}
	}
}
