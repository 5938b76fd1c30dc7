package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/shmring/shmring/bridge"
	"github.com/shmring/shmring/internal/ipctest"
	"github.com/shmring/shmring/ring"
)

// The helpers this test binary runs as, each in a process of its own.
var helpers = map[string]func() int{
	"nats-server": natsServerHelper,
	"ringbridge":  ringbridgeHelper,
	"producer":    producerHelper,
	"consumer":    consumerHelper,
}

func TestMain(m *testing.M) { ipctest.Main(m, helpers) }

// natsServerHelper runs a NATS server with JetStream on disk (NATS_PORT,
// NATS_STORE; with NATS_SYNC=1 every write synced, to survive a SIGKILL)
// until SIGTERM, then shuts it down cleanly.
func natsServerHelper() int {
	s, err := server.NewServer(&server.Options{
		Host:       "127.0.0.1",
		Port:       ipctest.GetenvInt("NATS_PORT"),
		JetStream:  true,
		StoreDir:   ipctest.Getenv("NATS_STORE"),
		SyncAlways: os.Getenv("NATS_SYNC") == "1",
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "nats-server:", err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go s.Start()
	if !s.ReadyForConnections(ipctest.Deadline) {
		fmt.Fprintln(os.Stderr, "nats-server: not ready")
		return 1
	}
	<-sig
	s.Shutdown()
	s.WaitForShutdown()
	return 0
}

// ringbridgeHelper is the command itself, with the arguments in
// RINGBRIDGE_ARGS (a JSON array).
func ringbridgeHelper() int {
	var args []string
	if err := json.Unmarshal([]byte(ipctest.Getenv("RINGBRIDGE_ARGS")), &args); err != nil {
		fmt.Fprintln(os.Stderr, "ringbridge helper:", err)
		return 2
	}
	return run(args, os.Stderr)
}

// payload fills buf with message k of type typ, size bytes long (at least
// 16): the index and the type, then bytes that depend on both.
func payload(buf []byte, typ int64, k uint64, size int) []byte {
	b := buf[:size]
	binary.LittleEndian.PutUint64(b[0:], k)
	binary.LittleEndian.PutUint64(b[8:], uint64(typ))
	for j := 16; j < size; j++ {
		b[j] = byte(uint64(typ)*31 + k*7 + uint64(j))
	}
	return b
}

// sizeOf is the size of message k of type typ when sizes vary up to max.
func sizeOf(typ int64, k uint64, max int) int {
	return 16 + int((k*13+uint64(typ)*5)%uint64(max-15))
}

// check reports whether b is a well-formed message of type typ, and its index.
func check(b []byte, typ int64, max int, fixed bool) (uint64, bool) {
	if len(b) < 16 || int64(binary.LittleEndian.Uint64(b[8:])) != typ {
		return 0, false
	}
	k := binary.LittleEndian.Uint64(b)
	want := max
	if !fixed {
		want = sizeOf(typ, k, max)
	}
	if len(b) != want {
		return k, false
	}
	for j := 16; j < len(b); j++ {
		if b[j] != byte(uint64(typ)*31+k*7+uint64(j)) {
			return k, false
		}
	}
	return k, true
}

// producerHelper sends PRODUCER_PHASES (comma-separated counts) messages
// into ring RING_ID, cycling through TYPES types, of sizes up to SIZE (or
// exactly SIZE with FIXED=1); after each phase but the last it writes
// "phase\n" to stdout and waits for SIGUSR1.
func producerHelper() int {
	r, err := ring.OpenID(ipctest.GetenvInt("RING_ID"), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "producer:", err)
		return 1
	}
	defer r.Close()
	p, err := r.NewProducer()
	if err != nil {
		fmt.Fprintln(os.Stderr, "producer:", err)
		return 1
	}
	defer p.Close()
	types := int64(ipctest.GetenvInt("TYPES"))
	size := ipctest.GetenvInt("SIZE")
	fixed := os.Getenv("FIXED") == "1"
	next := make([]uint64, types+1)
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	phases := strings.Split(ipctest.Getenv("PRODUCER_PHASES"), ",")
	batch := make([]ring.Message, 64)
	bufs := make([][]byte, len(batch))
	for i := range bufs {
		bufs[i] = make([]byte, size)
	}
	ctx := context.Background()
	for pi, ph := range phases {
		var count int
		fmt.Sscan(ph, &count)
		for sent := 0; sent < count; {
			n := min(len(batch), count-sent)
			for i := range batch[:n] {
				typ := 1 + int64(sent+i)%types
				k := next[typ]
				next[typ]++
				sz := size
				if !fixed {
					sz = sizeOf(typ, k, size)
				}
				batch[i] = ring.Message{Type: typ, Data: payload(bufs[i], typ, k, sz)}
			}
			// A bridge killed mid-stream leaves the ring without a live
			// consumer for a moment: wait for the next one.
			for done := 0; done < n; {
				k, err := p.SendBatch(ctx, batch[done:n])
				done += k
				if errors.Is(err, ring.ErrPeerDead) || errors.Is(err, ring.ErrNoConsumers) {
					time.Sleep(10 * time.Millisecond)
				} else if err != nil {
					fmt.Fprintln(os.Stderr, "producer:", err)
					return 1
				}
			}
			sent += n
		}
		if pi < len(phases)-1 {
			fmt.Println("phase")
			<-usr1
		}
	}
	return 0
}

// consumerResult is what consumerHelper found.
type consumerResult struct {
	Unique       int // distinct messages received
	Flagged      int // messages received flagged Redelivered
	DupFlagged   int // second copies, flagged
	DupUnflagged int // second copies, not flagged: a broken promise
	OutOfOrder   int // first copies of a type arriving before an earlier one, unflagged
	Corrupt      int // wrong type, size or bytes
	BadOrigin    int // Origin is not OriginTag of ring A
	Missing      int // never received, of EXPECT
}

// consumerHelper receives from ring RING_ID until it has EXPECT distinct
// messages (or SIGTERM), checking each, sleeping SLOW between messages if
// set, and prints a consumerResult as JSON.
func consumerHelper() int {
	r, err := ring.OpenID(ipctest.GetenvInt("RING_ID"), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		return 1
	}
	defer r.Close()
	c, err := r.NewConsumer()
	if err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		return 1
	}
	defer c.Close()
	expect := ipctest.GetenvInt("EXPECT")
	types := int64(ipctest.GetenvInt("TYPES"))
	size := ipctest.GetenvInt("SIZE")
	fixed := os.Getenv("FIXED") == "1"
	origin := bridge.OriginTag(uuid.MustParse(ipctest.Getenv("ORIGIN_RING")))
	slow, _ := time.ParseDuration(os.Getenv("SLOW"))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()

	seen := make([]map[uint64]bool, types+1)
	highest := make([]int64, types+1)
	for i := range seen {
		seen[i] = map[uint64]bool{}
		highest[i] = -1
	}
	var res consumerResult
	batch := make([]ring.Message, 64)
	for i := range batch {
		batch[i].Data = make([]byte, r.MaxMessage())
	}
	for res.Unique < expect {
		n, err := c.ReceiveBatch(ctx, batch)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, ring.ErrPeerDead) {
				if !sleepOr(ctx, 10*time.Millisecond) {
					break
				}
				continue
			}
			if ctx.Err() == nil {
				fmt.Fprintln(os.Stderr, "consumer:", err)
			}
			break
		}
		for _, m := range batch[:n] {
			if slow > 0 {
				time.Sleep(slow)
			}
			if m.Redelivered {
				res.Flagged++
			}
			if m.Origin != origin {
				res.BadOrigin++
			}
			if m.Type < 1 || m.Type > types {
				res.Corrupt++
				continue
			}
			k, ok := check(m.Data, m.Type, size, fixed)
			if !ok {
				res.Corrupt++
				continue
			}
			switch {
			case seen[m.Type][k] && m.Redelivered:
				res.DupFlagged++
			case seen[m.Type][k]:
				res.DupUnflagged++
			default:
				seen[m.Type][k] = true
				res.Unique++
				if int64(k) < highest[m.Type] && !m.Redelivered {
					res.OutOfOrder++
				}
				highest[m.Type] = max(highest[m.Type], int64(k))
			}
		}
	}
	res.Missing = expect - res.Unique
	json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

func sleepOr(ctx context.Context, d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}
