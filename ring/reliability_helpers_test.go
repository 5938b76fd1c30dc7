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
	"github.com/shmring/shmring/ipc"
)

func init() {
	helpers["hang-producer"] = helperHangProducer
	helpers["hang-consumer"] = helperHangConsumer
	helpers["blocked"] = helperBlocked
	helpers["open"] = helperOpenOnly
	helpers["soak-producer"] = helperSoakProducer
	helpers["soak-consumer"] = helperSoakConsumer
}

// Exit statuses the helpers use to report what a blocked call returned.
const (
	exitRemoved    = 10
	exitPeerDead   = 11
	exitPermission = 12
	exitEOF        = 13
)

// hang tells the parent, on stdout, that the helper reached the point where
// it should be killed, and then waits to be.
func hang() int {
	fmt.Println("ready")
	os.Stdout.Sync()
	time.Sleep(10 * ipctest.Deadline)
	return 3
}

// helperHangProducer sends RING_COUNT messages (payload, producer RING_ID),
// then, with RING_RESERVE=1, reserves one more slot without committing it,
// and hangs.
func helperHangProducer() int {
	r, _ := helperOpen()
	p, err := r.NewProducer()
	if err != nil {
		return helperFail("new producer", err)
	}
	id := uint64(ipctest.GetenvInt("RING_ID"))
	buf := make([]byte, r.MaxMessage())
	for seq := uint64(0); seq < uint64(ipctest.GetenvInt("RING_COUNT")); seq++ {
		if err := p.Send(context.Background(), int64(id+1), payload(buf, id, seq)); err != nil {
			return helperFail("send", err)
		}
	}
	if os.Getenv("RING_RESERVE") == "1" {
		b, err := p.Reserve(context.Background())
		if err != nil {
			return helperFail("reserve", err)
		}
		copy(b, "half-written")
	}
	return hang()
}

// helperHangConsumer receives RING_COUNT messages, writing each sequence
// number to stdout, then, with RING_PEEK=1, peeks one more without releasing
// it (RING_PEEK=k > 1: holds k with PeekBatch), and hangs.
func helperHangConsumer() int {
	r, _ := helperOpen()
	c, err := r.NewConsumer()
	if err != nil {
		return helperFail("new consumer", err)
	}
	buf := make([]byte, r.MaxMessage())
	for i := 0; i < ipctest.GetenvInt("RING_COUNT"); i++ {
		if _, _, err := c.Receive(context.Background(), buf); err != nil {
			return helperFail("receive", err)
		}
	}
	k, _ := strconv.Atoi(os.Getenv("RING_PEEK"))
	switch {
	case k == 1:
		if _, err := c.Peek(context.Background()); err != nil {
			return helperFail("peek", err)
		}
	case k > 1:
		if n, err := c.PeekBatch(context.Background(), make([]Peeked, k)); err != nil || n != k {
			return helperFail(fmt.Sprintf("peek batch: %d of %d", n, k), err)
		}
	}
	return hang()
}

// helperBlocked takes the role RING_ROLE and blocks: a consumer in Receive
// (on an empty ring), a producer in Send (on a full one). It reports what
// the blocked call returned in its exit status.
func helperBlocked() int {
	r, _ := helperOpen()
	var err error
	ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
	defer cancel()
	if os.Getenv("RING_ROLE") == "producer" {
		var p *Producer
		if p, err = r.NewProducer(); err != nil {
			return helperFail("new producer", err)
		}
		fmt.Println("ready")
		for err == nil {
			err = p.Send(ctx, 1, []byte("fill"))
		}
	} else {
		var c *Consumer
		if c, err = r.NewConsumer(); err != nil {
			return helperFail("new consumer", err)
		}
		fmt.Println("ready")
		buf := make([]byte, r.MaxMessage())
		for err == nil {
			_, _, err = c.Receive(ctx, buf)
		}
	}
	switch {
	case errors.Is(err, ErrRemoved):
		return exitRemoved
	case errors.Is(err, ErrPeerDead):
		return exitPeerDead
	case errors.Is(err, io.EOF):
		return exitEOF
	}
	return helperFail("blocked call", err)
}

// helperOpenOnly opens the ring with key RING_KEY and reports a permission
// error in its exit status.
func helperOpenOnly() int {
	key, _ := strconv.ParseInt(ipctest.Getenv("RING_KEY"), 10, 32)
	r, err := Open(ipc.Key(key), nil)
	if errors.Is(err, os.ErrPermission) {
		return exitPermission
	}
	if err != nil {
		return helperFail("open", err)
	}
	r.Close()
	return 0
}

// Soak records: producer id, sequence number, flags (bit 0: redelivered).
const soakRecord = 24

// soakPayload makes the message of producer id, sequence seq: a random type
// and size, and bytes the consumer can check.
func soakPayload(buf []byte, id, seq uint64) (int64, []byte) {
	x := id*0x9e3779b97f4a7c15 + seq*0xbf58476d1ce4e5b9
	x ^= x >> 31
	typ := int64(1 + x%1000)
	m := payload(buf, id, seq)
	return typ, m
}

// helperSoakProducer sends as producer RING_ID until RING_UNTIL (Unix
// nanoseconds), retrying while no consumer lives, then closes and prints how
// many messages it sent.
func helperSoakProducer() int {
	r, _ := helperOpen()
	p, err := r.NewProducer()
	if err != nil {
		return helperFail("new producer", err)
	}
	id := uint64(ipctest.GetenvInt("RING_ID"))
	until, _ := strconv.ParseInt(ipctest.Getenv("RING_UNTIL"), 10, 64)
	buf := make([]byte, r.MaxMessage())
	seq := uint64(0)
	for ; time.Now().UnixNano() < until; seq++ {
		typ, m := soakPayload(buf, id, seq)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err := p.Send(ctx, typ, m)
			cancel()
			if err == nil {
				break
			}
			if !errors.Is(err, ErrPeerDead) && !errors.Is(err, context.DeadlineExceeded) {
				return helperFail("send", err)
			}
			// Every consumer is dead or slow: the test restarts them.
		}
	}
	if err := p.Close(); err != nil {
		return helperFail("close", err)
	}
	fmt.Println(seq)
	return 0
}

// helperSoakConsumer peeks each message, checks it, writes its record to
// stdout before releasing it (so that a kill after the write is seen as a
// redelivery, never as a loss), until io.EOF.
func helperSoakConsumer() int {
	r, _ := helperOpen()
	c, err := r.NewConsumer()
	if err != nil {
		return helperFail("new consumer", err)
	}
	scratch := make([]byte, r.MaxMessage())
	out := bufio.NewWriterSize(os.Stdout, soakRecord)
	var rec [soakRecord]byte
	for {
		m, err := c.Peek(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return helperFail("peek", err)
		}
		id, seq := binary.LittleEndian.Uint64(m.Data), binary.LittleEndian.Uint64(m.Data[8:])
		typ, want := soakPayload(scratch, id, seq)
		if m.Type != typ || string(m.Data) != string(want) {
			return helperFail("check", fmt.Errorf("producer %d seq %d: wrong type or payload", id, seq))
		}
		binary.LittleEndian.PutUint64(rec[:], id)
		binary.LittleEndian.PutUint64(rec[8:], seq)
		flags := uint64(0)
		if m.Redelivered {
			flags = 1
		}
		binary.LittleEndian.PutUint64(rec[16:], flags)
		// One write per record, unbuffered: the record is in the pipe before
		// the message is released.
		if _, err := out.Write(rec[:]); err != nil {
			return helperFail("write", err)
		}
		if err := out.Flush(); err != nil {
			return helperFail("flush", err)
		}
		if err := c.Release(); err != nil {
			return helperFail("release", err)
		}
	}
	return 0
}
