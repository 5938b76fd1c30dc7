package semaphore_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/semaphore"
)

// A set's whole life: create, post, wait, remove. Another process would
// reach the set with semaphore.Open (by key) or semaphore.OpenID (by id).
func Example() {
	s, err := semaphore.Create(ipc.Private, 1, nil)
	if err != nil {
		log.Fatal(err)
	}
	// A set outlives the process unless removed.
	defer s.Remove()

	if err := s.Post(0); err != nil {
		log.Fatal(err)
	}
	v, _ := s.Value(0)
	fmt.Println("after post:", v)

	if err := s.Wait(context.Background(), 0); err != nil {
		log.Fatal(err)
	}
	v, _ = s.Value(0)
	fmt.Println("after wait:", v)

	err = s.TryWait(0)
	fmt.Println("try again:", errors.Is(err, semaphore.ErrWouldBlock))
	// Output:
	// after post: 1
	// after wait: 0
	// try again: true
}

// A wait gives up when its context is done, or after a timeout.
func ExampleSet_Wait() {
	s, err := semaphore.Create(ipc.Private, 1, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Remove()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	err = s.Wait(ctx, 0)
	fmt.Println(err == context.DeadlineExceeded)

	err = s.WaitTimeout(0, 10*time.Millisecond)
	fmt.Println(err == semaphore.ErrTimeout)
	// Output:
	// true
	// true
}

// Do applies several operations at once, or none: here a transfer from
// semaphore 0 to semaphore 1 that must not wait.
func ExampleSet_Do() {
	s, err := semaphore.Create(ipc.Private, 2, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Remove()
	if err := s.SetValues([]uint16{1, 0}); err != nil {
		log.Fatal(err)
	}

	move := []semaphore.Op{
		{Num: 0, Delta: -1, Flags: semaphore.NoWait},
		{Num: 1, Delta: +1},
	}
	vals := make([]uint16, s.Len())
	for range 2 {
		err := s.Do(context.Background(), move...)
		s.Values(vals)
		fmt.Println(vals, err)
	}
	// Output:
	// [0 1] <nil>
	// [0 1] semaphore: operation would block
}

// A set removed while in use wakes its waiters, in every process.
func ExampleSet_Remove() {
	s, err := semaphore.Create(ipc.Private, 1, nil)
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- s.WaitTimeout(0, time.Minute) }()

	// Remove once the waiter sleeps.
	for {
		n, err := s.WaitingForIncrease(0)
		if err != nil {
			log.Fatal(err)
		}
		if n > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.Remove(); err != nil {
		log.Fatal(err)
	}
	fmt.Println(errors.Is(<-done, ipc.ErrRemoved))
	// Output: true
}
