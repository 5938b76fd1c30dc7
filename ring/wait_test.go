package ring

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/shmring/shmring/internal/ipctest"
)

// blockedUntil waits until a handle of side s has slept on its semaphore
// since before was taken (for Spin, which never sleeps, a moment).
func blockedUntil(t *testing.T, r *Ring, s side, before Stats) {
	t.Helper()
	if r.waiting.Strategy == Spin {
		time.Sleep(20 * time.Millisecond)
		return
	}
	for deadline := time.Now().Add(ipctest.Deadline); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		st := r.Stats()
		if s == consumerSide && st.ConsumerSleeps > before.ConsumerSleeps || s == producerSide && st.ProducerSleeps > before.ProducerSleeps {
			return
		}
	}
	t.Fatalf("the %s never slept", s)
}

func TestCancel(t *testing.T) {
	type op struct {
		name string
		side side
		call func(ctx context.Context, p *Producer, c *Consumer) error
	}
	ops := []op{
		{"Receive", consumerSide, func(ctx context.Context, p *Producer, c *Consumer) error {
			_, _, err := c.Receive(ctx, make([]byte, 64))
			return err
		}},
		{"ReceiveBatch", consumerSide, func(ctx context.Context, p *Producer, c *Consumer) error {
			_, err := c.ReceiveBatch(ctx, []Message{{Data: make([]byte, 64)}})
			return err
		}},
		{"Peek", consumerSide, func(ctx context.Context, p *Producer, c *Consumer) error {
			_, err := c.Peek(ctx)
			return err
		}},
		{"Send", producerSide, func(ctx context.Context, p *Producer, c *Consumer) error {
			return p.Send(ctx, 1, []byte("no room"))
		}},
		{"SendBatch", producerSide, func(ctx context.Context, p *Producer, c *Consumer) error {
			_, err := p.SendBatch(ctx, []Message{{Type: 1, Data: nil}, {Type: 2, Data: nil}})
			return err
		}},
		{"Reserve", producerSide, func(ctx context.Context, p *Producer, c *Consumer) error {
			_, err := p.Reserve(ctx)
			return err
		}},
	}
	for _, w := range allWaits {
		t.Run("wait="+w.String(), func(t *testing.T) {
			for _, o := range ops {
				t.Run("op="+o.name, func(t *testing.T) {
					opts := &Options{Mode: MPMC, Slots: 4, MaxMessage: 64, Wait: Waiting{Strategy: w}}
					forMemories(t, opts, func(t *testing.T, r *Ring) {
						p, c := pair(t, r)
						if o.side == producerSide {
							for p.TrySend(1, nil) == nil {
							}
						}
						for _, timeout := range []bool{false, true} {
							var ctx context.Context
							var cancel context.CancelFunc
							want := context.Canceled
							if timeout {
								ctx, cancel = context.WithTimeout(context.Background(), 30*time.Millisecond)
								want = context.DeadlineExceeded
							} else {
								ctx, cancel = context.WithCancel(context.Background())
							}
							before := r.Stats()
							done := make(chan error, 1)
							go func() { done <- o.call(ctx, p, c) }()
							if !timeout {
								blockedUntil(t, r, o.side, before)
								cancel()
							}
							select {
							case err := <-done:
								if !errors.Is(err, want) {
									t.Fatalf("timeout %v: %v, want %v", timeout, err, want)
								}
							case <-time.After(ipctest.Deadline):
								t.Fatalf("timeout %v: still blocked %v after the context ended", timeout, ipctest.Deadline)
							}
							cancel()
						}
						// The handles still work after a cancelled wait.
						if o.side == producerSide {
							if _, _, err := c.TryReceive(make([]byte, 64)); err != nil {
								t.Fatal(err)
							}
							if err := p.TrySend(5, []byte("after")); err != nil {
								t.Fatal(err)
							}
						} else {
							if err := p.TrySend(5, []byte("after")); err != nil {
								t.Fatal(err)
							}
							expect(t, c, 5, []byte("after"))
						}
					})
				})
			}
		})
	}
}

func TestWakeUp(t *testing.T) {
	for _, w := range allWaits {
		t.Run("wait="+w.String(), func(t *testing.T) {
			forMemories(t, &Options{Slots: 2, MaxMessage: 8, Wait: Waiting{Strategy: w}}, func(t *testing.T, r *Ring) {
				p, c := pair(t, r)
				ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
				defer cancel()
				got := make(chan string, 1)
				before := r.Stats()
				go func() {
					buf := make([]byte, 8)
					n, _, err := c.Receive(ctx, buf)
					if err != nil {
						got <- err.Error()
						return
					}
					got <- string(buf[:n])
				}()
				blockedUntil(t, r, consumerSide, before)
				if err := p.Send(ctx, 1, []byte("wake")); err != nil {
					t.Fatal(err)
				}
				if s := <-got; s != "wake" {
					t.Fatalf("blocked Receive: %s", s)
				}

				// And a producer blocked on a full ring.
				for p.TrySend(1, []byte("fill")) == nil {
				}
				before = r.Stats()
				sent := make(chan error, 1)
				go func() { sent <- p.Send(ctx, 2, []byte("late")) }()
				blockedUntil(t, r, producerSide, before)
				expect(t, c, 1, []byte("fill"))
				if err := <-sent; err != nil {
					t.Fatalf("blocked Send: %v", err)
				}
				expect(t, c, 1, []byte("fill"))
				expect(t, c, 2, []byte("late"))
			})
		})
	}
}

func TestCloseEOF(t *testing.T) {
	for _, w := range allWaits {
		t.Run("wait="+w.String(), func(t *testing.T) {
			forModes(t, func(m Mode) *Options {
				opts := &Options{Mode: m, Slots: 4, MaxMessage: 32, Wait: Waiting{Strategy: w}}
				if m.multiProducer() {
					opts.MaxProducers = 2
				}
				return opts
			}, func(t *testing.T, r *Ring) {
				ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
				defer cancel()
				p, c := pair(t, r)
				var p2 *Producer
				if r.Mode().multiProducer() {
					var err error
					if p2, err = r.NewProducer(); err != nil {
						t.Fatal(err)
					}
				}
				buf := make([]byte, 32)
				for round := 0; round < 2; round++ {
					for i := 0; i < 3; i++ {
						if err := p.Send(ctx, int64(i+1), msg(i)); err != nil {
							t.Fatal(err)
						}
					}
					if err := p.Close(); err != nil {
						t.Fatal(err)
					}
					if p2 != nil {
						// Another producer is still attached: no EOF yet.
						for i := 0; i < 3; i++ {
							expect(t, c, int64(i+1), msg(i))
						}
						short, stop := context.WithTimeout(ctx, 30*time.Millisecond)
						_, _, err := c.Receive(short, buf)
						stop()
						if !errors.Is(err, context.DeadlineExceeded) {
							t.Fatalf("Receive with a producer still attached: %v, want DeadlineExceeded", err)
						}
						if err := p2.Send(ctx, 9, []byte("last")); err != nil {
							t.Fatal(err)
						}
						if err := p2.Close(); err != nil {
							t.Fatal(err)
						}
						expect(t, c, 9, []byte("last"))
					} else {
						for i := 0; i < 3; i++ {
							n, typ, err := c.Receive(ctx, buf)
							if err != nil || typ != int64(i+1) || !bytes.Equal(buf[:n], msg(i)) {
								t.Fatalf("after the close, message %d: %d %q %v", i, typ, buf[:n], err)
							}
						}
					}
					if _, _, err := c.Receive(ctx, buf); !errors.Is(err, io.EOF) {
						t.Fatalf("Receive, drained with every producer closed: %v, want io.EOF", err)
					}
					if _, err := c.ReceiveBatch(ctx, []Message{{Data: buf}}); !errors.Is(err, io.EOF) {
						t.Fatalf("ReceiveBatch, drained and closed: %v, want io.EOF", err)
					}
					if _, err := c.Peek(ctx); !errors.Is(err, io.EOF) {
						t.Fatalf("Peek, drained and closed: %v, want io.EOF", err)
					}
					if _, _, err := c.TryReceive(buf); !errors.Is(err, ErrEmpty) {
						t.Fatalf("TryReceive, drained and closed: %v, want ErrEmpty", err)
					}
					// A new producer attaches and messages flow again.
					var err error
					if p, err = r.NewProducer(); err != nil {
						t.Fatalf("producer after the close: %v", err)
					}
					if p2 != nil {
						if p2, err = r.NewProducer(); err != nil {
							t.Fatal(err)
						}
					}
				}

				// Now the consumers go: a producer blocked on a full ring is
				// told nobody will ever make room.
				for p.TrySend(1, nil) == nil {
				}
				if err := c.Close(); err != nil {
					t.Fatal(err)
				}
				if err := p.Send(ctx, 1, nil); !errors.Is(err, ErrNoConsumers) {
					t.Fatalf("Send on a full ring with every consumer closed: %v, want ErrNoConsumers", err)
				}
				if err := p.TrySend(1, nil); !errors.Is(err, ErrFull) {
					t.Fatalf("TrySend on a full ring with every consumer closed: %v, want ErrFull", err)
				}
				// The messages stay for the next consumer.
				c, err := r.NewConsumer()
				if err != nil {
					t.Fatal(err)
				}
				if st := r.Stats(); st.Depth != r.Slots() {
					t.Fatalf("messages lost with the consumer: %+v", st)
				}
				if _, _, err := c.Receive(ctx, buf); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}
