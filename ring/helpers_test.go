package ring

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/shmring/shmring/internal/ipctest"
)

// Helper processes for the cross-process tests. Each opens the ring whose
// segment id is in RING_SEG and plays one role; failures go to stderr with a
// non-zero exit status.
func init() {
	helpers["producer"] = helperProducer
	helpers["consumer"] = helperConsumer
	helpers["echo"] = helperEcho
}

// payload fills b with bytes derived from producer id and seq, after an
// 16-byte prefix holding both, so that the consumer can check every byte.
func payload(b []byte, id, seq uint64) []byte {
	n := 16 + int((seq*7+id*13)%uint64(len(b)-15))
	b = b[:n]
	binary.LittleEndian.PutUint64(b, id)
	binary.LittleEndian.PutUint64(b[8:], seq)
	x := id*0x9e3779b97f4a7c15 ^ seq
	for i := 16; i < n; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

// checkPayload verifies a message made by payload and returns its producer
// id and sequence number.
func checkPayload(typ int64, m []byte, scratch []byte) (id, seq uint64, err error) {
	if len(m) < 16 {
		return 0, 0, fmt.Errorf("message of %d bytes", len(m))
	}
	id, seq = binary.LittleEndian.Uint64(m), binary.LittleEndian.Uint64(m[8:])
	if typ != int64(id+1) {
		return id, seq, fmt.Errorf("producer %d seq %d: type %d", id, seq, typ)
	}
	want := payload(scratch, id, seq)
	if string(want) != string(m) {
		return id, seq, fmt.Errorf("producer %d seq %d: payload differs (%d bytes, want %d)", id, seq, len(m), len(want))
	}
	return id, seq, nil
}

func helperOpen() (*Ring, int) {
	w, _ := ParseWaitStrategy(os.Getenv("RING_WAIT"))
	r, err := OpenID(ipctest.GetenvInt("RING_SEG"), &OpenOptions{Wait: Waiting{Strategy: w}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper: open:", err)
		os.Exit(1)
	}
	return r, 0
}

// helperProducer sends RING_COUNT messages as producer RING_ID (batches of
// RING_BATCH if set), after waiting until RING_PRODUCERS producers are
// attached, then closes.
func helperProducer() int {
	r, _ := helperOpen()
	defer r.Close()
	p, err := r.NewProducer()
	if err != nil {
		return helperFail("new producer", err)
	}
	id := uint64(ipctest.GetenvInt("RING_ID"))
	count := uint64(ipctest.GetenvInt("RING_COUNT"))
	batch, _ := strconv.Atoi(os.Getenv("RING_BATCH"))
	// Start together: the parent creates RING_GO once every producer holds
	// its role, so that none closes before the last has attached (which
	// would let the consumers see io.EOF early).
	if gate := os.Getenv("RING_GO"); gate != "" {
		for deadline := time.Now().Add(ipctest.Deadline); ; time.Sleep(time.Millisecond) {
			if _, err := os.Stat(gate); err == nil {
				break
			}
			if time.Now().After(deadline) {
				return helperFail("wait for the start", errors.New("timed out"))
			}
		}
	}
	ctx := context.Background()
	if batch > 1 {
		msgs := make([]Message, batch)
		bufs := make([][]byte, batch)
		for i := range bufs {
			bufs[i] = make([]byte, r.MaxMessage())
		}
		for seq := uint64(0); seq < count; {
			n := min(uint64(batch), count-seq)
			for i := uint64(0); i < n; i++ {
				msgs[i] = Message{Type: int64(id + 1), Data: payload(bufs[i], id, seq+i)}
			}
			if _, err := p.SendBatch(ctx, msgs[:n]); err != nil {
				return helperFail("send batch", err)
			}
			seq += n
		}
	} else {
		buf := make([]byte, r.MaxMessage())
		for seq := uint64(0); seq < count; seq++ {
			if err := p.Send(ctx, int64(id+1), payload(buf, id, seq)); err != nil {
				return helperFail("send", err)
			}
		}
	}
	if err := p.Close(); err != nil {
		return helperFail("close", err)
	}
	return 0
}

// helperConsumer receives until io.EOF, checks every message and the order
// of each producer's messages, and writes one 16-byte record (producer id,
// sequence number) per message to stdout.
func helperConsumer() int {
	r, _ := helperOpen()
	defer r.Close()
	c, err := r.NewConsumer()
	if err != nil {
		return helperFail("new consumer", err)
	}
	out := bufio.NewWriterSize(os.Stdout, 1<<16)
	defer out.Flush()
	buf := make([]byte, r.MaxMessage())
	scratch := make([]byte, r.MaxMessage())
	last := map[uint64]uint64{}
	var rec [16]byte
	record := func(typ int64, m []byte) error {
		id, seq, err := checkPayload(typ, m, scratch)
		if err != nil {
			return err
		}
		if prev, ok := last[id]; ok && seq <= prev {
			return fmt.Errorf("producer %d: seq %d after %d", id, seq, prev)
		}
		last[id] = seq
		binary.LittleEndian.PutUint64(rec[:], id)
		binary.LittleEndian.PutUint64(rec[8:], seq)
		_, err = out.Write(rec[:])
		return err
	}
	batch, _ := strconv.Atoi(os.Getenv("RING_BATCH"))
	ctx := context.Background()
	if batch > 1 {
		msgs := make([]Message, batch)
		bufs := make([][]byte, batch)
		for i := range bufs {
			bufs[i] = make([]byte, r.MaxMessage())
		}
		for {
			for i := range msgs {
				msgs[i].Data = bufs[i]
			}
			n, err := c.ReceiveBatch(ctx, msgs)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return helperFail("receive batch", err)
			}
			for _, m := range msgs[:n] {
				if err := record(m.Type, m.Data); err != nil {
					return helperFail("check", err)
				}
			}
		}
	} else {
		for {
			n, typ, err := c.Receive(ctx, buf)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return helperFail("receive", err)
			}
			if err := record(typ, buf[:n]); err != nil {
				return helperFail("check", err)
			}
		}
	}
	if err := c.Close(); err != nil {
		return helperFail("close", err)
	}
	return 0
}

// helperEcho consumes from ring RING_SEG and sends every message back
// unchanged on ring RING_REPLY, until io.EOF.
func helperEcho() int {
	in, _ := helperOpen()
	defer in.Close()
	w, _ := ParseWaitStrategy(os.Getenv("RING_WAIT"))
	out, err := OpenID(ipctest.GetenvInt("RING_REPLY"), &OpenOptions{Wait: Waiting{Strategy: w}})
	if err != nil {
		return helperFail("open reply ring", err)
	}
	defer out.Close()
	c, err := in.NewConsumer()
	if err != nil {
		return helperFail("new consumer", err)
	}
	p, err := out.NewProducer()
	if err != nil {
		return helperFail("new producer", err)
	}
	buf := make([]byte, in.MaxMessage())
	ctx := context.Background()
	for {
		n, typ, err := c.Receive(ctx, buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return helperFail("receive", err)
		}
		if err := p.Send(ctx, typ, buf[:n]); err != nil {
			return helperFail("send", err)
		}
	}
	return 0
}
