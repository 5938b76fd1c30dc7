package ring_test

import (
	"bytes"
	"context"
	"fmt"
	"log"

	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/ring"
)

// A ring of small slots carries messages larger than a slot by spanning
// consecutive slots: here 8 slots of 1 KiB for messages up to 4 KiB, so
// small messages take 1 KiB each and large ones up to four slots. Receive
// copies a message whole; Peek shows it in place, as Data, followed by
// Wrapped where the message wraps around the end of the ring's memory.
func Example_spanning() {
	r, err := ring.Create(ipc.Private, &ring.Options{Slots: 8, SlotSize: 1024, MaxMessage: 4096})
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

	big := bytes.Repeat([]byte("0123456789abcdef"), 256) // 4096 bytes: four slots
	if err := p.Send(ctx, 1, []byte("small")); err != nil {
		log.Fatal(err)
	}
	if err := p.Send(ctx, 2, big[:3000]); err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, r.MaxMessage())
	for i := 0; i < 2; i++ {
		n, typ, err := c.Receive(ctx, buf)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("type %d: %d bytes\n", typ, n)
	}

	// The first two messages took positions 0 to 3; the next takes 4 to 7,
	// slots 4 to 7, and ends at the end of the ring's memory.
	if err := p.Send(ctx, 3, big); err != nil {
		log.Fatal(err)
	}
	pk, err := c.Peek(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("type %d in place: %d bytes, %d wrapped, intact %v\n", pk.Type, len(pk.Data), len(pk.Wrapped), bytes.Equal(pk.Data, big))
	if err := c.Release(); err != nil { // Data and Wrapped are the ring's memory: valid until here
		log.Fatal(err)
	}
	for _, size := range []int{100, 4096} { // positions 8 and 9 to 12, slots 0 and 1 to 4
		if err := p.Send(ctx, 4, big[:size]); err != nil {
			log.Fatal(err)
		}
	}
	if _, _, err := c.Receive(ctx, buf); err != nil {
		log.Fatal(err)
	}
	if err := p.Send(ctx, 5, big); err != nil { // positions 13 to 16: slots 5, 6, 7, then 0
		log.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		pk, err := c.Peek(ctx)
		if err != nil {
			log.Fatal(err)
		}
		whole := append(append([]byte(nil), pk.Data...), pk.Wrapped...)
		fmt.Printf("type %d in place: %d bytes, %d wrapped, intact %v\n", pk.Type, len(pk.Data), len(pk.Wrapped), bytes.Equal(whole, big))
		if err := c.Release(); err != nil {
			log.Fatal(err)
		}
	}
	// Output:
	// type 1: 5 bytes
	// type 2: 3000 bytes
	// type 3 in place: 4096 bytes, 0 wrapped, intact true
	// type 4 in place: 4096 bytes, 0 wrapped, intact true
	// type 5 in place: 3072 bytes, 1024 wrapped, intact true
}
