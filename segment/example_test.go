package segment_test

import (
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"

	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/segment"
)

// Example walks a segment's whole life: create, attach, write, read through
// a second attach, detach, remove. A segment outlives the process that made
// it, so the program removes it itself.
func Example() {
	// A private segment is reached only by its id; to share one between
	// programs, use a key from ipc.Ftok instead.
	s, err := segment.Create(ipc.Private, 4096, &segment.Options{Mode: 0o600, Exclusive: true})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Remove()

	w, err := s.Attach(false)
	if err != nil {
		log.Fatal(err)
	}
	copy(w.Bytes(), "hello, shared memory")

	// Another process would call segment.OpenID(id) (or segment.Open(key))
	// and Attach; a second attach in this process sees the same memory.
	peer, err := segment.OpenID(s.ID())
	if err != nil {
		log.Fatal(err)
	}
	r, err := peer.Attach(true)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", r.Bytes()[:20])

	info, err := s.Stat()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("size:", info.Size, "attached:", info.Attached, "mode:", info.Perm.Mode)

	// The slices from Bytes die with Detach.
	if err := r.Detach(); err != nil {
		log.Fatal(err)
	}
	if err := w.Detach(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("after detach:", w.Bytes() == nil)

	if err := s.Remove(); err != nil {
		log.Fatal(err)
	}
	_, err = s.Stat()
	fmt.Println("removed:", errors.Is(err, ipc.ErrRemoved))

	// Output:
	// hello, shared memory
	// size: 4096 attached: 2 mode: -rw-------
	// after detach: true
	// removed: true
}

// ExampleCreate_exclusive creates a segment under a key made from a file,
// so that other programs can find it, and shows the errors.Is checks for a
// key that is taken and for one that names nothing.
func ExampleCreate_exclusive() {
	f, err := os.CreateTemp("", "segment-example")
	if err != nil {
		log.Fatal(err)
	}
	f.Close()
	defer os.Remove(f.Name())
	key, err := ipc.Ftok(f.Name(), 'E')
	if err != nil {
		log.Fatal(err)
	}

	s, err := segment.Create(key, 1<<16, &segment.Options{Exclusive: true})
	if err != nil {
		log.Fatal(err)
	}
	_, err = segment.Create(key, 1<<16, &segment.Options{Exclusive: true})
	fmt.Println("taken:", errors.Is(err, fs.ErrExist))

	if err := s.Remove(); err != nil {
		log.Fatal(err)
	}
	_, err = segment.Open(key)
	fmt.Println("gone:", errors.Is(err, fs.ErrNotExist))

	_, err = segment.Create(key, 0, nil)
	fmt.Println("bad size:", errors.Is(err, segment.ErrSize))

	// Output:
	// taken: true
	// gone: true
	// bad size: true
}
