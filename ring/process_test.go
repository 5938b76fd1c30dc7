package ring

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/shmring/shmring/internal/ipctest"
)

// helperEnv returns the environment that points a helper at ring r.
func helperEnv(r *Ring, extra ...string) []string {
	return append([]string{"RING_SEG=" + strconv.Itoa(r.SegmentID()), "RING_WAIT=" + r.waiting.Strategy.String()}, extra...)
}

// TestProcesses runs producers and consumers in separate processes and
// checks that every message arrives exactly once, intact, in each
// producer's order.
func TestProcesses(t *testing.T) {
	count := 50000
	if testing.Short() {
		count = 5000
	}
	for _, tc := range []struct {
		producers, consumers, batch int
		wait                        WaitStrategy
	}{
		{1, 1, 1, Adaptive}, {4, 1, 1, Adaptive}, {1, 4, 1, Adaptive}, {4, 4, 1, Adaptive},
		{1, 1, 16, Adaptive}, {4, 4, 8, Adaptive}, {1, 1, 1, Block}, {4, 4, 1, Block}, {2, 2, 1, Spin},
	} {
		mode := SPSC
		switch {
		case tc.producers > 1 && tc.consumers > 1:
			mode = MPMC
		case tc.producers > 1:
			mode = MPSC
		case tc.consumers > 1:
			mode = SPMC
		}
		name := fmt.Sprintf("p=%d/c=%d/batch=%d/wait=%v", tc.producers, tc.consumers, tc.batch, tc.wait)
		t.Run(name, func(t *testing.T) {
			r := testRing(t, shm, &Options{Mode: mode, Slots: 64, MaxMessage: 200, Wait: Waiting{Strategy: tc.wait}})
			runProcesses(t, r, tc.producers, tc.consumers, tc.batch, count)
		})
	}
}

func runProcesses(t *testing.T, r *Ring, producers, consumers, batch, count int) {
	t.Helper()
	var cmds []*exec.Cmd
	outs := make([]*bytes.Buffer, consumers)
	for i := 0; i < consumers; i++ {
		cmd := ipctest.Command(t, "consumer", helperEnv(r, "RING_BATCH="+strconv.Itoa(batch))...)
		outs[i] = new(bytes.Buffer)
		cmd.Stdout = outs[i]
		cmds = append(cmds, cmd)
	}
	gate := filepath.Join(t.TempDir(), "go")
	for i := 0; i < producers; i++ {
		cmds = append(cmds, ipctest.Command(t, "producer", helperEnv(r,
			"RING_ID="+strconv.Itoa(i), "RING_COUNT="+strconv.Itoa(count),
			"RING_BATCH="+strconv.Itoa(batch), "RING_GO="+gate)...))
	}
	for _, cmd := range cmds {
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(ipctest.Deadline); r.Stats().Producers < producers; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("producers did not attach")
		}
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("%s: %v", cmd.Env[len(cmd.Env)-2], err)
		}
	}
	if t.Failed() {
		return
	}
	seen := make([][]bool, producers)
	for i := range seen {
		seen[i] = make([]bool, count)
	}
	for ci, out := range outs {
		b := out.Bytes()
		for len(b) >= 16 {
			id, seq := binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])
			b = b[16:]
			if id >= uint64(producers) || seq >= uint64(count) {
				t.Fatalf("consumer %d: record for producer %d seq %d", ci, id, seq)
			}
			if seen[id][seq] {
				t.Fatalf("producer %d seq %d delivered twice", id, seq)
			}
			seen[id][seq] = true
		}
	}
	for id := range seen {
		for seq, ok := range seen[id] {
			if !ok {
				t.Fatalf("producer %d seq %d never delivered", id, seq)
			}
		}
	}
	st := r.Stats()
	t.Logf("%d messages; stats %+v; %.4f semaphore ops per message", producers*count, st, float64(st.SemOps())/float64(producers*count))
}

// TestPingPong bounces messages between two processes over two rings, a
// round trip at a time: every wait is a sleep under the Block strategy, so a
// lost wake-up would hang it.
func TestPingPong(t *testing.T) {
	rounds := 200000
	if testing.Short() {
		rounds = 20000
	}
	for _, w := range []WaitStrategy{Block, Adaptive, Spin} {
		t.Run("wait="+w.String(), func(t *testing.T) {
			opts := &Options{Slots: 16, MaxMessage: 64, Wait: Waiting{Strategy: w}}
			req, resp := testRing(t, shm, opts), testRing(t, shm, opts)
			cmd := ipctest.Command(t, "echo", helperEnv(req, "RING_REPLY="+strconv.Itoa(resp.SegmentID()))...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			p, err := req.NewProducer()
			if err != nil {
				t.Fatal(err)
			}
			c, err := resp.NewConsumer()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline*5)
			defer cancel()
			buf, got := make([]byte, 64), make([]byte, 64)
			for i := 0; i < rounds; i++ {
				m := payload(buf, 7, uint64(i))
				if err := p.Send(ctx, 8, m); err != nil {
					t.Fatalf("round %d: send: %v", i, err)
				}
				n, typ, err := c.Receive(ctx, got)
				if err != nil {
					t.Fatalf("round %d: receive: %v (stats %+v / %+v)", i, err, req.Stats(), resp.Stats())
				}
				if typ != 8 || !bytes.Equal(got[:n], m) {
					t.Fatalf("round %d: echo differs", i)
				}
			}
			p.Close()
			if err := cmd.Wait(); err != nil {
				t.Fatal(err)
			}
			if _, _, err := c.Receive(ctx, got); !errors.Is(err, io.EOF) {
				t.Fatalf("after the echo exited: %v, want io.EOF", err)
			}
			a, b := req.Stats(), resp.Stats()
			t.Logf("%d round trips; sleeps %d+%d, wake-ups %d+%d", rounds,
				a.ConsumerSleeps+a.ProducerSleeps, b.ConsumerSleeps+b.ProducerSleeps, a.Wakeups, b.Wakeups)
		})
	}
}
