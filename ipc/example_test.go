package ipc_test

import (
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/shmring/shmring/ipc"
)

// ExampleFtok derives a key from a file that every cooperating program
// knows. The same file and project id give the same key in every process,
// as long as the file is not replaced.
func ExampleFtok() {
	dir, err := os.MkdirTemp("", "ipc-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "queue.key")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		log.Fatal(err)
	}

	key, err := ipc.Ftok(path, 'Q')
	if err != nil {
		log.Fatal(err)
	}
	again, _ := ipc.Ftok(path, 'Q')
	other, _ := ipc.Ftok(path, 'R')
	fmt.Println("same file, same id:", key == again)
	fmt.Println("another id:", key == other)
	fmt.Printf("project id in the top byte: %c\n", byte(uint32(key)>>24))

	_, err = ipc.Ftok(filepath.Join(dir, "missing"), 'Q')
	fmt.Println("missing file:", errors.Is(err, fs.ErrNotExist))

	// Output:
	// same file, same id: true
	// another id: false
	// project id in the top byte: Q
	// missing file: true
}

// ExampleError shows what the bindings' errors answer to errors.Is: the
// io/fs sentinels, this package's own, and the errno itself.
func ExampleError() {
	err := ipc.NewError("segment", "shmget", 0x5100abcd, -1, unix.EEXIST)
	fmt.Println(err)
	fmt.Println("exists:", errors.Is(err, fs.ErrExist), "errno:", errors.Is(err, unix.EEXIST))

	err = ipc.NewError("semaphore", "semtimedop", 0x5100abcd, 3, unix.EIDRM)
	fmt.Println("removed while waiting:", errors.Is(err, ipc.ErrRemoved))

	// A call by id whose id is gone fails with EINVAL; the binding says so.
	err = ipc.NewGoneError("msgq", "msgsnd", ipc.Private, 7, unix.EINVAL)
	fmt.Println(err)
	fmt.Println("removed:", errors.Is(err, ipc.ErrRemoved), "errno:", errors.Is(err, unix.EINVAL))

	err = ipc.NewError("msgq", "msgget", 1, -1, unix.ENOSPC)
	var e *ipc.Error
	if errors.As(err, &e) {
		fmt.Println("limit:", errors.Is(err, ipc.ErrLimit), "op:", e.Op)
	}

	// Output:
	// segment: shmget key 0x5100abcd: file exists
	// exists: true errno: true
	// removed while waiting: true
	// msgq: msgsnd key 0x00000000 id 7: invalid argument
	// removed: true errno: true
	// limit: true op: msgget
}

// ExampleKey_String prints keys as ipcs(1) does, whatever their sign.
func ExampleKey_String() {
	fmt.Println(ipc.Private)
	fmt.Println(ipc.Key(0x1234))
	fmt.Println(ipc.Key(-1))

	// Output:
	// 0x00000000
	// 0x00001234
	// 0xffffffff
}
