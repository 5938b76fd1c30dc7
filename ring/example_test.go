package ring_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"

	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/ring"
)

// A producer and a consumer, here two goroutines of one process, exchange
// messages through a private ring. Between processes, the other process
// opens the ring with [ring.OpenID] (or [ring.Open] for a keyed ring) and
// takes its role the same way.
func Example() {
	r, err := ring.Create(ipc.Private, &ring.Options{Mode: ring.SPSC, Slots: 8, MaxMessage: 64})
	if err != nil {
		log.Fatal(err)
	}
	// A ring outlives its processes: remove it when done.
	defer r.Remove()

	p, err := r.NewProducer()
	if err != nil {
		log.Fatal(err)
	}
	c, err := r.NewConsumer()
	if err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	go func() {
		for i := 1; i <= 3; i++ {
			if err := p.Send(ctx, int64(i), []byte(fmt.Sprintf("hello %d", i))); err != nil {
				log.Fatal(err)
			}
		}
		// Closing the producer lets the consumer drain the ring and then
		// see io.EOF.
		p.Close()
	}()

	buf := make([]byte, r.MaxMessage())
	for {
		n, typ, err := c.Receive(ctx, buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("type %d: %s\n", typ, buf[:n])
	}
	// Output:
	// type 1: hello 1
	// type 2: hello 2
	// type 3: hello 3
}

// Reserve hands out a slot of the ring to fill in place, and Peek shows a
// message where it lies: no copy on either side. Both slices are the ring's
// memory and are valid only until Commit (or Abort) and Release.
func Example_zeroCopy() {
	r, err := ring.Create(ipc.Private, &ring.Options{Slots: 4, MaxMessage: 128})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Remove()
	p, err := r.NewProducer()
	if err != nil {
		log.Fatal(err)
	}
	c, err := r.NewConsumer()
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	slot, err := p.Reserve(ctx)
	if err != nil {
		log.Fatal(err)
	}
	n := copy(slot, "built in place")
	if err := p.Commit(7, n); err != nil {
		log.Fatal(err)
	}

	// A reservation can also be given up: nothing is sent.
	if _, err := p.Reserve(ctx); err != nil {
		log.Fatal(err)
	}
	if err := p.Abort(); err != nil {
		log.Fatal(err)
	}

	m, err := c.Peek(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("type %d: %s (%d bytes)\n", m.Type, m.Data, len(m.Data))
	if err := c.Release(); err != nil {
		log.Fatal(err)
	}

	_, err = c.TryPeek()
	fmt.Println("then:", errors.Is(err, ring.ErrEmpty))
	// Output:
	// type 7: built in place (14 bytes)
	// then: true
}

// Batches move many messages with at most one wake-up of the other side.
// Each receive buffer is used up to its capacity, and resliced to the
// message's length.
func Example_batch() {
	r, err := ring.Create(ipc.Private, &ring.Options{Mode: ring.MPMC, Slots: 8, MaxMessage: 32})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Remove()
	p, err := r.NewProducer()
	if err != nil {
		log.Fatal(err)
	}
	c, err := r.NewConsumer()
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	out := []ring.Message{
		{Type: 1, Data: []byte("alpha")},
		{Type: 2, Data: []byte("beta")},
		{Type: 3, Data: []byte("gamma")},
	}
	sent, err := p.SendBatch(ctx, out)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("sent", sent)

	in := make([]ring.Message, 4)
	for i := range in {
		in[i].Data = make([]byte, 32)
	}
	got, err := c.ReceiveBatch(ctx, in)
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range in[:got] {
		fmt.Printf("type %d: %s\n", m.Type, m.Data)
	}
	fmt.Println("depth", r.Stats().Depth)
	// Output:
	// sent 3
	// type 1: alpha
	// type 2: beta
	// type 3: gamma
	// depth 0
}
