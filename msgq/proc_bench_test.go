//go:build go1.24

// The build line lifts this file to Go 1.24, which testing.B.Loop needs;
// the module itself stays at go 1.22.

package msgq_test

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strconv"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/shmring/shmring/internal/ipctest"
	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/msgq"
)

// procPin is -msgq.pin.
var procPin = flag.Bool("msgq.pin", false,
	"BenchmarkProcesses: bind the send helper to the first allowed CPU and this process to the second, as ringbench -pin does")

// procImpls are the ways BenchmarkProcesses moves messages: the bare
// system calls, and the binding's kept-Message calls with a context that
// cannot be cancelled (what cmd/ringbench's msgq sides use) and with one
// that can. Each is also the MSGQ_IMPL of the send helper.
var procImpls = []string{"raw", "binding/ctx=background", "binding/ctx=cancellable"}

// BenchmarkProcesses measures one-way throughput between two processes, as
// cmd/ringbench's msgq throughput rows do: a send helper process sends
// messages of type 1 as fast as it can and this process receives them,
// with nothing done to the text on either side. One op is one message
// received; msgs/s is the same number the other way up. The queue's byte
// limit is set as ringbench sets it, to 1024 messages, when the kernel
// allows it (above msgmnb that needs CAP_SYS_RESOURCE); queue-msgs reports
// how many messages it held. The sender runs with GOMAXPROCS=1, as
// ringbench's sides do; run the benchmark with -cpu 1 to match it on this
// side too. With -msgq.pin (test binary flag) the two sides are bound to
// different CPUs, as ringbench -pin binds them; without it the scheduler
// places them, and the rate depends much on whether it puts them on one
// CPU or two.
//
// impl=raw is a plain loop of unix.Syscall6(SYS_MSGSND) on one side and
// SYS_MSGRCV on the other, on buffers allocated once, retrying after EINTR:
// the floor for a Go program. The other impls are the same loops through
// SendMessage and ReceiveMessage.
func BenchmarkProcesses(b *testing.B) {
	for _, size := range benchSizes {
		for _, impl := range procImpls {
			b.Run(fmt.Sprintf("size=%d/impl=%s", size, impl), func(b *testing.B) {
				benchProcesses(b, size, impl)
			})
		}
	}
}

func benchProcesses(b *testing.B, size int, impl string) {
	q := newQueue(b)
	if err := q.SetMaxBytes(1024 * size); err != nil && !errors.Is(err, fs.ErrPermission) {
		b.Fatal(err)
	}
	info, err := q.Stat()
	if err != nil {
		b.Fatal(err)
	}
	sendCPU := -1
	if *procPin {
		cpus := allowedCPUs(b)
		sendCPU = cpus[0]
		pinProcess(b, cpus[1%len(cpus)])
	}
	cmd := ipctest.Command(b, "send", "GOMAXPROCS=1", "MSGQ_CPU="+strconv.Itoa(sendCPU),
		"MSGQ_ID="+strconv.Itoa(q.ID()), "MSGQ_SIZE="+strconv.Itoa(size), "MSGQ_IMPL="+impl)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	// Removing the queue is what stops the sender, however the benchmark
	// ends. Cleanups run last registered first, so this one runs before
	// newQueue's, which then finds the queue gone.
	b.Cleanup(func() {
		if err := q.Remove(); err != nil && !errors.Is(err, ipc.ErrRemoved) {
			b.Error(err)
		}
		if err := waitCmd(b, cmd); err != nil {
			b.Errorf("send helper: %v", err)
		}
	})
	// Warm up on twice the queue's capacity: by then the sender runs and
	// has filled the queue at least once.
	warm := 2 * int(info.MaxBytes) / size
	b.SetBytes(int64(size))
	b.ReportAllocs()
	if impl == "raw" {
		id := uintptr(q.ID())
		buf := make([]byte, 8+size)
		recv := func() {
			n, _, e := unix.Syscall6(unix.SYS_MSGRCV, id, uintptr(unsafe.Pointer(&buf[0])), uintptr(size), 0, 0, 0)
			for e == unix.EINTR {
				n, _, e = unix.Syscall6(unix.SYS_MSGRCV, id, uintptr(unsafe.Pointer(&buf[0])), uintptr(size), 0, 0, 0)
			}
			if e != 0 || int(n) != size {
				b.Fatalf("msgrcv: %d bytes, %v", n, e)
			}
		}
		for range warm {
			recv()
		}
		// The loop is written out rather than calling recv, so that it is
		// as plain as a loop can be.
		for b.Loop() {
			n, _, e := unix.Syscall6(unix.SYS_MSGRCV, id, uintptr(unsafe.Pointer(&buf[0])), uintptr(size), 0, 0, 0)
			for e == unix.EINTR {
				n, _, e = unix.Syscall6(unix.SYS_MSGRCV, id, uintptr(unsafe.Pointer(&buf[0])), uintptr(size), 0, 0, 0)
			}
			if e != 0 || int(n) != size {
				b.Fatalf("msgrcv: %d bytes, %v", n, e)
			}
		}
	} else {
		ctx := context.Background()
		if impl == "binding/ctx=cancellable" {
			var cancel context.CancelFunc
			ctx, cancel = context.WithCancel(ctx)
			defer cancel()
		}
		m := msgq.NewMessage(size)
		recv := func() {
			if err := q.ReceiveMessage(ctx, m, msgq.Any(), 0); err != nil {
				b.Fatal(err)
			}
			if len(m.Text()) != size {
				b.Fatalf("received %d bytes, want %d", len(m.Text()), size)
			}
		}
		for range warm {
			recv()
		}
		for b.Loop() {
			if err := q.ReceiveMessage(ctx, m, msgq.Any(), 0); err != nil {
				b.Fatal(err)
			}
			if len(m.Text()) != size {
				b.Fatalf("received %d bytes, want %d", len(m.Text()), size)
			}
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(int(info.MaxBytes)/size), "queue-msgs")
}

// allowedCPUs returns the CPUs this process may run on.
func allowedCPUs(b *testing.B) []int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		b.Fatal(err)
	}
	var cpus []int
	for i := 0; len(cpus) < set.Count(); i++ {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	return cpus
}

// pinProcess binds every thread of this process to cpu, and the benchmark
// goroutine to its thread, until the benchmark ends.
func pinProcess(b *testing.B, cpu int) {
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		b.Fatal(err)
	}
	var set unix.CPUSet
	set.Set(cpu)
	runtime.LockOSThread()
	if err := setThreadsAffinity(&set); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := setThreadsAffinity(&old); err != nil {
			b.Error(err)
		}
		runtime.UnlockOSThread()
	})
}

// setThreadsAffinity binds every thread of this process to set. Threads
// the runtime starts later inherit the binding of the thread that starts
// them.
func setThreadsAffinity(set *unix.CPUSet) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, set); err != nil && !errors.Is(err, unix.ESRCH) {
			return err
		}
	}
	return nil
}

// helperSend is BenchmarkProcesses's sender: it sends messages of type 1
// and MSGQ_SIZE bytes to queue MSGQ_ID the way MSGQ_IMPL says, until the
// queue is removed, bound to CPU MSGQ_CPU unless that is -1.
func helperSend() int {
	if cpu := ipctest.GetenvInt("MSGQ_CPU"); cpu >= 0 {
		var set unix.CPUSet
		set.Set(cpu)
		runtime.LockOSThread()
		if err := setThreadsAffinity(&set); err != nil {
			return exitf("bind to CPU %d: %v", cpu, err)
		}
	}
	id := ipctest.GetenvInt("MSGQ_ID")
	size := ipctest.GetenvInt("MSGQ_SIZE")
	impl := ipctest.Getenv("MSGQ_IMPL")
	if impl == "raw" {
		buf := make([]byte, 8+size)
		binary.NativeEndian.PutUint64(buf, 1)
		for {
			_, _, e := unix.Syscall6(unix.SYS_MSGSND, uintptr(id), uintptr(unsafe.Pointer(&buf[0])), uintptr(size), 0, 0, 0)
			switch e {
			case 0, unix.EINTR:
			case unix.EIDRM, unix.EINVAL:
				return 0 // removed: the benchmark is over
			default:
				return exitf("msgsnd: %v", e)
			}
		}
	}
	q, err := msgq.OpenID(id)
	if errors.Is(err, ipc.ErrRemoved) {
		return 0
	}
	if err != nil {
		return exitf("%v", err)
	}
	ctx := context.Background()
	if impl == "binding/ctx=cancellable" {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
	}
	m := msgq.NewMessage(size)
	m.SetType(1)
	m.Resize(size)
	for {
		err := q.SendMessage(ctx, m, 0)
		if errors.Is(err, ipc.ErrRemoved) {
			return 0
		}
		if err != nil {
			return exitf("send: %v", err)
		}
	}
}
