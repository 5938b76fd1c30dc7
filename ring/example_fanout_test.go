package ring_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/ring"
)

// A market-data publisher and two subscribers: every subscriber receives
// every quote. The ring is a fan-out ring whose producer waits for the
// slowest live subscriber (PolicyBlock). The "audit" subscription is
// durable: closed and taken again by name, it goes on where it was.
// Between processes, each subscriber opens the ring with [ring.OpenID]
// and subscribes the same way.
func ExampleRing_NewSubscriber() {
	r, err := ring.Create(ipc.Private, &ring.Options{
		Mode: ring.SPMC, Fanout: true, Policy: ring.PolicyBlock,
		Slots: 8, MaxMessage: 64, MaxConsumers: 4,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Remove()
	ctx := context.Background()

	screen, err := r.NewSubscriber(nil) // anonymous, from the newest
	if err != nil {
		log.Fatal(err)
	}
	audit, err := r.NewSubscriber(&ring.SubscribeOptions{Name: "audit"})
	if err != nil {
		log.Fatal(err)
	}
	pub, err := r.NewProducer()
	if err != nil {
		log.Fatal(err)
	}
	for _, q := range []string{"ACME 101.5", "ACME 101.7", "INIT 12.25"} {
		if err := pub.Send(ctx, 1, []byte(q)); err != nil {
			log.Fatal(err)
		}
	}

	buf := make([]byte, r.MaxMessage())
	for i := 0; i < 3; i++ {
		n, _, err := screen.Receive(ctx, buf)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("screen:", string(buf[:n]))
	}

	// The audit subscriber looks at one quote in place, then stops.
	m, err := audit.Peek(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("audit:", string(m.Data))
	audit.Release()
	audit.Close()

	// Started again by name, it resumes after what it released.
	audit, err = r.NewSubscriber(&ring.SubscribeOptions{Name: "audit"})
	if err != nil {
		log.Fatal(err)
	}
	pub.Close()
	for {
		n, _, err := audit.Receive(ctx, buf)
		if err != nil {
			fmt.Println("audit: end:", err)
			break
		}
		fmt.Println("audit:", string(buf[:n]))
	}
	for _, s := range r.Subscribers(nil) {
		if s.NameHash == ring.NameHash("audit") {
			fmt.Println("audit received", s.Received, "lost", s.Lost)
		}
	}
	// Output:
	// screen: ACME 101.5
	// screen: ACME 101.7
	// screen: INIT 12.25
	// audit: ACME 101.5
	// audit: ACME 101.7
	// audit: INIT 12.25
	// audit: end: EOF
	// audit received 3 lost 0
}

// Under the Overwrite policy the producer never waits: a subscriber that
// falls a whole ring behind learns, on its next call, how many messages it
// lost, and goes on with the oldest still in the ring.
func ExampleLapError() {
	r, err := ring.Create(ipc.Private, &ring.Options{
		Mode: ring.SPMC, Fanout: true, Policy: ring.Overwrite, Slots: 4, MaxMessage: 64,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Remove()
	slow, err := r.NewSubscriber(nil)
	if err != nil {
		log.Fatal(err)
	}
	pub, err := r.NewProducer()
	if err != nil {
		log.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if err := pub.TrySend(1, []byte(fmt.Sprint("tick ", i))); err != nil {
			log.Fatal(err)
		}
	}
	buf := make([]byte, r.MaxMessage())
	for {
		n, _, err := slow.TryReceive(buf)
		var lap ring.LapError
		switch {
		case errors.As(err, &lap):
			fmt.Println("lost", lap.Lost)
			continue
		case errors.Is(err, ring.ErrEmpty):
			fmt.Println("lost in all:", slow.Lost())
			return
		case err != nil:
			log.Fatal(err)
		}
		fmt.Println(string(buf[:n]))
	}
	// Output:
	// lost 6
	// tick 6
	// tick 7
	// tick 8
	// tick 9
	// lost in all: 6
}
