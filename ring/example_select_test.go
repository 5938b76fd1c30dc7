package ring_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"strconv"
	"strings"
	"sync"

	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/ring"
)

// Two clients chat over one ring, as two processes would over one message
// queue: each sends messages of its own type and receives only the other's
// type, so neither ever takes back what it sent itself. The ring is made
// for selective receive (Options.Selective) in a mode where both may send
// and both may receive (MPMC, two producers and two consumers). Here the
// clients are two goroutines of one process; between processes each opens
// the ring with [ring.OpenID] and takes its roles the same way.
func ExampleConsumer_ReceiveSelect_chat() {
	r, err := ring.Create(ipc.Private, &ring.Options{
		Mode: ring.MPMC, Selective: true, Slots: 8, MaxMessage: 64,
		MaxProducers: 2, MaxConsumers: 2,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Remove()

	const alice, bob = 1, 2 // each client's message type
	ctx := context.Background()

	// chatter holds one client's roles: it sends as its own type and
	// receives the other's.
	type chatter struct {
		p    *ring.Producer
		c    *ring.Consumer
		self int64
		peer ipc.Selector
		buf  []byte
	}
	join := func(self, peer int64) *chatter {
		p, err := r.NewProducer()
		if err != nil {
			log.Fatal(err)
		}
		c, err := r.NewConsumer()
		if err != nil {
			log.Fatal(err)
		}
		return &chatter{p: p, c: c, self: self, peer: ipc.OfType(peer), buf: make([]byte, r.MaxMessage())}
	}
	say := func(ch *chatter, text string) {
		if err := ch.p.Send(ctx, ch.self, []byte(text)); err != nil {
			log.Fatal(err)
		}
	}
	hear := func(ch *chatter) string {
		n, _, err := ch.c.ReceiveSelect(ctx, ch.buf, ch.peer)
		if err != nil {
			log.Fatal(err)
		}
		return string(ch.buf[:n])
	}

	a, b := join(alice, bob), join(bob, alice)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			text := hear(b)
			fmt.Println("bob hears:", text)
			if text == "bye" {
				say(b, "bye")
				return
			}
			say(b, strings.ToUpper(text)+"!")
		}
	}()
	for _, text := range []string{"hello", "how are you", "bye"} {
		say(a, text)
		fmt.Println("alice hears:", hear(a))
	}
	<-done
	fmt.Println("left in the ring:", r.Stats().Depth)
	// Output:
	// bob hears: hello
	// alice hears: HELLO!
	// bob hears: how are you
	// alice hears: HOW ARE YOU!
	// bob hears: bye
	// alice hears: bye
	// left in the ring: 0
}

// A server answers the requests of several clients over one ring, in the
// classic message-queue pattern: every request has type 1 and carries the
// type its reply should have, and each client receives only that type.
// Between processes the reply type is the client's process id, which no
// other live process shares; in this example the clients are goroutines,
// so the small integers 101, 102 and 103 stand for their pids. The server
// receives type 1 only, so it never takes a reply meant for a client.
func ExampleConsumer_ReceiveSelect_server() {
	const clients, requests = 3, 3
	r, err := ring.Create(ipc.Private, &ring.Options{
		Mode: ring.MPMC, Selective: true, Slots: 16, MaxMessage: 64,
		MaxProducers: clients + 1, MaxConsumers: clients + 1,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Remove()

	const requestType = 1
	// A request: the reply type (8 bytes, big-endian), then a number.
	request := func(replyType int64, x int) []byte {
		b := binary.BigEndian.AppendUint64(nil, uint64(replyType))
		return strconv.AppendInt(b, int64(x), 10)
	}

	// The server squares the number of every request until its context is
	// cancelled.
	ctx, stop := context.WithCancel(context.Background())
	sp, err := r.NewProducer()
	if err != nil {
		log.Fatal(err)
	}
	sc, err := r.NewConsumer()
	if err != nil {
		log.Fatal(err)
	}
	served := make(chan int)
	go func() {
		n := 0
		defer func() { served <- n }()
		buf := make([]byte, r.MaxMessage())
		for {
			m, _, err := sc.ReceiveSelect(ctx, buf, ipc.OfType(requestType))
			if errors.Is(err, context.Canceled) {
				return
			}
			if err != nil {
				log.Fatal(err)
			}
			replyType := int64(binary.BigEndian.Uint64(buf[:8]))
			x, err := strconv.Atoi(string(buf[8:m]))
			if err != nil {
				log.Fatal(err)
			}
			if err := sp.Send(ctx, replyType, []byte(strconv.Itoa(x*x))); err != nil {
				log.Fatal(err)
			}
			n++
		}
	}()

	// Each client sends its requests and waits for each reply, which only
	// it can receive: its own type.
	answers := make([][]string, clients)
	var wg sync.WaitGroup
	for i := range clients {
		pid := int64(101 + i) // stands for the client's process id
		p, err := r.NewProducer()
		if err != nil {
			log.Fatal(err)
		}
		c, err := r.NewConsumer()
		if err != nil {
			log.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, r.MaxMessage())
			for k := 1; k <= requests; k++ {
				x := 10*(i+1) + k
				if err := p.Send(ctx, requestType, request(pid, x)); err != nil {
					log.Fatal(err)
				}
				n, typ, err := c.ReceiveSelect(ctx, buf, ipc.OfType(pid))
				if err != nil {
					log.Fatal(err)
				}
				answers[i] = append(answers[i], fmt.Sprintf("%d²=%s (type %d)", x, buf[:n], typ))
			}
		}()
	}
	wg.Wait()
	stop()
	fmt.Println("requests served:", <-served)
	// The clients ran concurrently; print their answers in client order.
	for i, a := range answers {
		fmt.Printf("client %d: %s\n", 101+i, strings.Join(a, ", "))
	}
	// Output:
	// requests served: 9
	// client 101: 11²=121 (type 101), 12²=144 (type 101), 13²=169 (type 101)
	// client 102: 21²=441 (type 102), 22²=484 (type 102), 23²=529 (type 102)
	// client 103: 31²=961 (type 103), 32²=1024 (type 103), 33²=1089 (type 103)
}
