package ring

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/shmring/shmring/internal/ipctest"
	"github.com/shmring/shmring/segment"
)

func init() { helpers["scribble"] = helperScribble }

// helperScribble attaches segment RING_SEG and, until SCRIBBLE_UNTIL (Unix
// nanoseconds), writes hostile values over everything a process that may
// write the ring could reach after its header: cursors, sleep lines, role
// lines, slot descriptors and payload. It mixes random words with the
// values that break invariants most directly: zero, a cursor moved back,
// positions far ahead, claims longer than the ring, statuses and flags no
// process writes.
func helperScribble() int {
	seg, err := segment.OpenID(ipctest.GetenvInt("RING_SEG"))
	if err != nil {
		return helperFail("open", err)
	}
	m, err := seg.Attach(false)
	if err != nil {
		return helperFail("attach", err)
	}
	b := m.Bytes()
	until, _ := strconv.ParseInt(ipctest.Getenv("SCRIBBLE_UNTIL"), 10, 64)
	// SCRIBBLE_FROM and SCRIBBLE_TO bound the bytes written: one region of
	// the ring per scribbler, so that the others keep working between
	// writes and the calls run over damage of every kind.
	from, to := ipctest.GetenvInt("SCRIBBLE_FROM"), min(ipctest.GetenvInt("SCRIBBLE_TO"), len(b))
	pause := time.Duration(ipctest.GetenvInt("SCRIBBLE_PAUSE_US")) * time.Microsecond
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 9))
	le := binary.LittleEndian
	writes := 0
	for time.Now().UnixNano() < until {
		off := from + 8*rng.IntN((to-from)/8)
		old := le.Uint64(b[off:])
		var v uint64
		switch rng.IntN(8) {
		case 0:
			v = 0
		case 1:
			v = old - 3
		case 2:
			v = old + 1<<40
		case 3:
			v = 1 << 40
		case 4:
			v = old | seqSkip
		case 5:
			v = uint64(rng.IntN(8))
		case 6:
			v = ^uint64(0)
		default:
			v = rng.Uint64()
		}
		le.PutUint64(b[off:], v)
		writes++
		time.Sleep(time.Duration(rng.Int64N(int64(pause) + 1)))
	}
	fmt.Println(writes)
	return 0
}

// TestScribbler runs every kind of call on rings of every mode while another
// process scribbles over their shared memory. No call may panic or outlive
// its context (beyond a generous grace for the scheduler), and every error
// must be one of the package's: a corrupt ring is ErrCorrupt, never a hang.
// SHMRING_SCRIBBLE sets the length (default 2s).
func TestScribbler(t *testing.T) {
	length := 2 * time.Second
	if s := os.Getenv("SHMRING_SCRIBBLE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("SHMRING_SCRIBBLE: %v", err)
		}
		length = d
	}
	if testing.Short() {
		length = 500 * time.Millisecond
	}
	const timeout, grace = 100 * time.Millisecond, 2 * time.Second
	until := time.Now().Add(length)
	var wg sync.WaitGroup
	var mu sync.Mutex
	calls, corrupt, succeeded := map[string]int{}, 0, 0
	type region struct {
		name     string
		from, to func(g geometry) int
		pauseUS  int
	}
	regions := []region{
		{"everything", func(geometry) int { return headerSize }, geometry.size, 200},
		{"cursors", func(geometry) int { return 2 * lineSize }, func(geometry) int { return 4 * lineSize }, 2000},
		{"sleep-and-control", func(geometry) int { return 4 * lineSize }, geometry.rolesOffset, 2000},
		{"role-lines", geometry.rolesOffset, geometry.descsOffset, 2000},
		{"descriptors", geometry.descsOffset, geometry.payloadOffset, 500},
	}
	for i, mode := range append(allModes, MPMC, MPMC, MPMC, SPMC, MPMC, SPMC) {
		reg := regions[i%len(regions)]
		if i == len(allModes) {
			reg = regions[len(regions)-1]
		}
		// The last two: selective rings, their descriptors and their role
		// lines scribbled on.
		selective := i > len(allModes) && i <= len(allModes)+2
		if selective {
			reg = regions[[]int{4, 3}[i-len(allModes)-1]]
		}
		// Every other ring has 64-byte slots, so that its larger messages
		// span up to four of them.
		slot := 64 * (i % 2)
		opts := &Options{Mode: mode, Selective: selective, Slots: 8, MaxMessage: 200, SlotSize: slot, Wait: Waiting{Strategy: Adaptive}}
		// The last three: fan-out rings of spanning messages, Block (one
		// producer and many) and Overwrite, their descriptors, their role
		// lines and everything scribbled on.
		if f := i - len(allModes) - 3; f >= 0 {
			opts.Fanout, opts.Policy, opts.SlotSize = true, []Policy{PolicyBlock, PolicyBlock, Overwrite}[f], 64
			reg = regions[[]int{4, 3, 0}[f]]
		}
		r := testRing(t, shm, opts)
		p, c := pair(t, r)
		cmd := ipctest.Command(t, "scribble", "RING_SEG="+strconv.Itoa(r.SegmentID()),
			"SCRIBBLE_UNTIL="+strconv.FormatInt(until.UnixNano(), 10),
			"SCRIBBLE_FROM="+strconv.Itoa(reg.from(r.g)), "SCRIBBLE_TO="+strconv.Itoa(reg.to(r.g)),
			"SCRIBBLE_PAUSE_US="+strconv.Itoa(reg.pauseUS))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		for _, side := range []side{producerSide, consumerSide} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				debug.SetPanicOnFault(true)
				defer func() {
					if e := recover(); e != nil {
						t.Errorf("mode %v, scribbling %s: a call panicked: %v\n%s", mode, reg.name, e, debug.Stack())
					}
				}()
				rng := rand.New(rand.NewPCG(uint64(mode), uint64(side)))
				buf := make([]byte, 200)
				msgs := []Message{{Data: make([]byte, 200)}, {Data: make([]byte, 200)}}
				for time.Now().Before(until) {
					ctx, cancel := context.WithTimeout(context.Background(), timeout)
					name, call := scribbledCall(side, rng.IntN(5), ctx, p, c, buf, msgs)
					start := time.Now()
					err := call()
					took := time.Since(start)
					cancel()
					if took > timeout+grace {
						t.Errorf("mode %v, scribbling %s: %s took %v with a %v context", mode, reg.name, name, took, timeout)
						return
					}
					if err != nil && !knownError(err) {
						t.Errorf("mode %v, scribbling %s: %s: an error of no sentinel: %v", mode, reg.name, name, err)
						return
					}
					mu.Lock()
					calls[name]++
					if errors.Is(err, ErrCorrupt) {
						corrupt++
					} else if err == nil {
						succeeded++
					}
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	t.Logf("%v of scribbling: calls %v: %d succeeded, %d ErrCorrupt", length, calls, succeeded, corrupt)
}

// scribbledCall returns one call of the side's API, by number.
func scribbledCall(s side, n int, ctx context.Context, p *Producer, c *Consumer, buf []byte, msgs []Message) (string, func() error) {
	if s == producerSide {
		switch n {
		case 0:
			return "Send", func() error { return p.Send(ctx, 1, buf[:100]) }
		case 1:
			return "TrySend", func() error { return p.TrySend(2, buf[:10]) }
		case 2:
			return "SendBatch", func() error {
				_, err := p.SendBatch(ctx, []Message{{Type: 1, Data: buf[:5]}, {Type: 2, Data: buf[:150]}})
				return err
			}
		case 3:
			return "Reserve", func() error {
				b, err := p.Reserve(ctx)
				if err != nil {
					return err
				}
				return p.Commit(3, len(b))
			}
		}
		return "TrySendBatch", func() error { _, err := p.TrySendBatch([]Message{{Type: 1, Data: buf[:5]}}); return err }
	}
	switch n {
	case 0:
		return "Receive", func() error { _, _, err := c.Receive(ctx, buf); return err }
	case 1:
		return "TryReceive", func() error { _, _, err := c.TryReceive(buf); return err }
	case 2:
		return "ReceiveBatch", func() error {
			for i := range msgs {
				msgs[i].Data = msgs[i].Data[:cap(msgs[i].Data)]
			}
			_, err := c.ReceiveBatch(ctx, msgs)
			return err
		}
	case 3:
		return "Peek", func() error {
			pk, err := c.Peek(ctx)
			if err != nil {
				return err
			}
			for _, b := range pk.Data {
				_ = b
			}
			return c.Release()
		}
	}
	return "TryPeek", func() error {
		if _, err := c.TryPeek(); err != nil {
			return err
		}
		return c.Release()
	}
}

// knownError reports whether err is one a ring call may return.
func knownError(err error) bool {
	for _, s := range []error{ErrCorrupt, ErrFull, ErrEmpty, ErrTooLarge, ErrPeerDead, ErrNoConsumers, ErrPending,
		ErrNotReserved, ErrRemoved, io.EOF, context.DeadlineExceeded, context.Canceled, os.ErrClosed,
		ErrLapped, ErrEvicted, ErrOverwritten} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}
