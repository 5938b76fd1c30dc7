package msgq_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/msgq"
)

// A queue's whole life: create it, send, receive, remove it. A queue
// outlives the process that made it, so removing it is the creator's job.
func Example() {
	q, err := msgq.Create(ipc.Private, nil) // mode 0600
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err := q.Remove(); err != nil {
			log.Fatal(err)
		}
	}()

	ctx := context.Background()
	if err := q.Send(ctx, 1, []byte("hello"), 0); err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, 64)
	n, typ, err := q.Receive(ctx, buf, msgq.Any(), 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("type %d: %s\n", typ, buf[:n])
	// Output: type 1: hello
}

// Types as priorities: UpTo takes the lowest type first, and among equal
// types the oldest message.
func ExampleUpTo() {
	q, err := msgq.Create(ipc.Private, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer q.Remove()

	ctx := context.Background()
	for _, m := range []struct {
		prio int64
		text string
	}{{3, "low"}, {1, "urgent"}, {2, "normal"}, {1, "urgent too"}} {
		if err := q.Send(ctx, m.prio, []byte(m.text), 0); err != nil {
			log.Fatal(err)
		}
	}
	buf := make([]byte, 64)
	for {
		n, prio, err := q.Receive(ctx, buf, msgq.UpTo(3), msgq.NoWait)
		if errors.Is(err, msgq.ErrNoMessage) {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%d %s\n", prio, buf[:n])
	}
	// Output:
	// 1 urgent
	// 1 urgent too
	// 2 normal
	// 3 low
}

// A kept Message sends and receives without allocating: its buffer is the
// kernel's struct msgbuf, type and text together.
func ExampleMessage() {
	q, err := msgq.Create(ipc.Private, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer q.Remove()

	ctx := context.Background()
	out := msgq.NewMessage(64)
	out.SetType(7)
	in := msgq.NewMessage(64)
	for i := range 3 {
		// Write the text in place, within the capacity, then set its length.
		text := fmt.Appendf(out.Resize(out.Cap())[:0], "message %d", i)
		out.Resize(len(text))
		if err := q.SendMessage(ctx, out, 0); err != nil {
			log.Fatal(err)
		}
		if err := q.ReceiveMessage(ctx, in, msgq.Type(7), 0); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%d: %s\n", in.Type(), in.Text())
	}
	// Output:
	// 7: message 0
	// 7: message 1
	// 7: message 2
}

// A Receive on an empty queue waits until its context is done.
func ExampleQueue_Receive_timeout() {
	q, err := msgq.Create(ipc.Private, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer q.Remove()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, _, err = q.Receive(ctx, make([]byte, 64), msgq.Any(), 0)
	fmt.Println(err)
	// Output: context deadline exceeded
}

// Removing a queue ends every call on it, in every process, with an error
// that matches ipc.ErrRemoved.
func ExampleQueue_Remove() {
	q, err := msgq.Create(ipc.Private, nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := q.Remove(); err != nil {
		log.Fatal(err)
	}
	err = q.Send(context.Background(), 1, []byte("too late"), 0)
	fmt.Println(errors.Is(err, ipc.ErrRemoved))
	// Output: true
}

// Stat reports what a queue holds and who used it last.
func ExampleQueue_Stat() {
	q, err := msgq.Create(ipc.Private, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer q.Remove()

	if err := q.SetMaxBytes(1024); err != nil {
		log.Fatal(err)
	}
	for _, text := range []string{"one", "three"} {
		if err := q.Send(context.Background(), 1, []byte(text), 0); err != nil {
			log.Fatal(err)
		}
	}
	info, err := q.Stat()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d messages, %d of %d bytes, mode %v\n", info.Messages, info.Bytes, info.MaxBytes, info.Mode)
	// Output: 2 messages, 8 of 1024 bytes, mode -rw-------
}
