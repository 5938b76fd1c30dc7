package msgq_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmring/shmring/internal/ipctest"
	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/msgq"
)

// chatCount is how many messages each chat helper sends.
const chatCount = 10000

// TestChat runs two unrelated helper processes over one queue. Each sends
// chatCount messages of its own type while it receives the other's in
// another goroutine, so both directions run at once through a queue that
// fills up; each checks every message it receives.
func TestChat(t *testing.T) {
	q := newQueue(t)
	var cmds []*exec.Cmd
	for _, self := range []int{1, 2} {
		cmd := ipctest.Command(t, "chat",
			"MSGQ_ID="+strconv.Itoa(q.ID()),
			"MSGQ_SELF="+strconv.Itoa(self),
			"MSGQ_PEER="+strconv.Itoa(3-self),
			"MSGQ_COUNT="+strconv.Itoa(chatCount))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	pids := map[int]bool{}
	for _, cmd := range cmds {
		pids[cmd.Process.Pid] = true
		if err := waitCmd(t, cmd); err != nil {
			t.Errorf("chat helper %d: %v", cmd.Process.Pid, err)
		}
	}
	info, err := q.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if info.Messages != 0 || !pids[info.LastSendPID] || !pids[info.LastRecvPID] {
		t.Errorf("after the chat: %+v, want an empty queue last used by the helpers %v", info, pids)
	}
}

// waitCmd waits for cmd, killing it if it runs longer than
// ipctest.Deadline.
func waitCmd(t testing.TB, cmd *exec.Cmd) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(ipctest.Deadline):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("killed after %v", ipctest.Deadline)
	}
}

// helperChat is one side of TestChat. Message i of type self carries i,
// then i%251 bytes derived from i and self, then the CRC-32 of the rest.
func helperChat() int {
	q, err := msgq.OpenID(ipctest.GetenvInt("MSGQ_ID"))
	if err != nil {
		return exitf("%v", err)
	}
	self := int64(ipctest.GetenvInt("MSGQ_SELF"))
	peer := int64(ipctest.GetenvInt("MSGQ_PEER"))
	count := ipctest.GetenvInt("MSGQ_COUNT")
	// A deadline, so that a hang ends as a failure rather than a kill.
	ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
	defer cancel()

	errc := make(chan error, 2)
	go func() { errc <- chatSend(ctx, q, self, count) }()
	go func() { errc <- chatReceive(ctx, q, peer, count) }()
	for range 2 {
		if err := <-errc; err != nil {
			return exitf("chat %d: %v", self, err)
		}
	}
	return 0
}

// chatText fills p with message i's text of type typ and returns it.
func chatText(p []byte, typ int64, i int) []byte {
	p = binary.LittleEndian.AppendUint64(p[:0], uint64(i))
	for j := range i % 251 {
		p = append(p, byte(int64(i+j)*31+typ))
	}
	return binary.LittleEndian.AppendUint32(p, crc32.ChecksumIEEE(p))
}

// chatSend sends with a kept Message, as a program that cares about
// allocations would.
func chatSend(ctx context.Context, q *msgq.Queue, self int64, count int) error {
	m := msgq.NewMessage(8 + 251 + 4)
	m.SetType(self)
	for i := range count {
		// Write the text in place: it fits, so appending stays in m.
		text := chatText(m.Resize(m.Cap()), self, i)
		m.Resize(len(text))
		if err := q.SendMessage(ctx, m, 0); err != nil {
			return fmt.Errorf("send %d: %w", i, err)
		}
	}
	return nil
}

// chatReceive receives into a plain slice and checks every message.
func chatReceive(ctx context.Context, q *msgq.Queue, peer int64, count int) error {
	buf := make([]byte, 8+251+4)
	want := make([]byte, 0, len(buf))
	for i := range count {
		n, typ, err := q.Receive(ctx, buf, msgq.Type(peer), 0)
		if err != nil {
			return fmt.Errorf("receive %d: %w", i, err)
		}
		if n < 12 || crc32.ChecksumIEEE(buf[:n-4]) != binary.LittleEndian.Uint32(buf[n-4:n]) {
			return fmt.Errorf("message %d: bad checksum in %x", i, buf[:n])
		}
		if seq := binary.LittleEndian.Uint64(buf); seq != uint64(i) || typ != peer {
			return fmt.Errorf("got message %d of type %d, want %d of type %d", seq, typ, i, peer)
		}
		if want = chatText(want, peer, i); !bytes.Equal(buf[:n], want) {
			return fmt.Errorf("message %d: got %x, want %x", i, buf[:n], want)
		}
	}
	return nil
}

// nobody is the user and group the permission tests run helpers as.
const nobody = 65534

// TestPermissions runs a helper as an unprivileged user against queues
// that root created. Opening one with the default mode fails with
// fs.ErrPermission. One with mode 0666 the helper may use but not change:
// Send and Receive work, SetMaxBytes, SetMode, SetOwner and Remove fail
// with fs.ErrPermission. And the helper may not raise the byte limit of its
// own queue above msgmnb.
func TestPermissions(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a helper as another user")
	}
	key := newKey(t)
	q, err := msgq.Create(key, &msgq.Options{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	track(t, q.ID())
	// A queue that anyone may use, but only root may change or remove.
	open, err := msgq.Create(ipc.Private, &msgq.Options{Mode: 0o666})
	if err != nil {
		t.Fatal(err)
	}
	track(t, open.ID())

	cmd := ipctest.Command(t, "denied", "MSGQ_KEY="+strconv.Itoa(int(key)), "MSGQ_ID="+strconv.Itoa(q.ID()),
		"MSGQ_OPEN_ID="+strconv.Itoa(open.ID()))
	exe := exposeBinary(t)
	cmd.Path, cmd.Args[0] = exe, exe
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	err = waitCmd(t, cmd)
	if id, ok := readID(out.String()); ok {
		track(t, id)
	}
	if err != nil {
		t.Fatalf("helper as uid %d: %v; output %q", nobody, err, out.String())
	}
	info, err := open.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode != 0o666 || info.UID != 0 || info.LastSendPID != cmd.Process.Pid || info.LastRecvPID != cmd.Process.Pid {
		t.Errorf("the shared queue after the helper: %+v, want it used by %d and unchanged", info, cmd.Process.Pid)
	}
}

// exposeBinary copies the test binary to a directory that any user may
// read, and returns its path: the build directory may be private to root.
func exposeBinary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	path := filepath.Join(dir, filepath.Base(self))
	dst, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// helperDenied runs as an unprivileged user. It prints the id of the queue
// it creates on the first line of its output, so that the test can remove
// it if the helper cannot.
func helperDenied() int {
	key := ipc.Key(ipctest.GetenvInt("MSGQ_KEY"))
	if _, err := msgq.Open(key); !errors.Is(err, fs.ErrPermission) {
		return exitf("Open of root's queue: %v, want fs.ErrPermission", err)
	}
	if _, err := msgq.OpenID(ipctest.GetenvInt("MSGQ_ID")); !errors.Is(err, fs.ErrPermission) {
		return exitf("OpenID of root's queue: %v, want fs.ErrPermission", err)
	}
	if _, err := msgq.Create(key, nil); !errors.Is(err, fs.ErrPermission) {
		return exitf("Create on root's key: %v, want fs.ErrPermission", err)
	}

	shared, err := msgq.OpenID(ipctest.GetenvInt("MSGQ_OPEN_ID"))
	if err != nil {
		return exitf("OpenID of the shared queue: %v", err)
	}
	ctx := context.Background()
	if err := shared.Send(ctx, 1, []byte("hi"), msgq.NoWait); err != nil {
		return exitf("Send on the shared queue: %v", err)
	}
	if _, _, err := shared.Receive(ctx, make([]byte, 8), msgq.Any(), msgq.NoWait); err != nil {
		return exitf("Receive on the shared queue: %v", err)
	}
	err = shared.SetMaxBytes(100)
	if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "owner") {
		return exitf("SetMaxBytes on root's queue: %v, want fs.ErrPermission naming the owner", err)
	}
	if err := shared.SetMode(0o600); !errors.Is(err, fs.ErrPermission) {
		return exitf("SetMode on root's queue: %v, want fs.ErrPermission", err)
	}
	if err := shared.SetOwner(nobody, nobody); !errors.Is(err, fs.ErrPermission) {
		return exitf("SetOwner on root's queue: %v, want fs.ErrPermission", err)
	}
	if err := shared.Remove(); !errors.Is(err, fs.ErrPermission) {
		return exitf("Remove of root's queue: %v, want fs.ErrPermission", err)
	}

	lim, err := msgq.SystemLimits()
	if err != nil {
		return exitf("%v", err)
	}
	q, err := msgq.Create(ipc.Private, nil)
	if err != nil {
		return exitf("%v", err)
	}
	fmt.Println(q.ID())
	defer q.Remove()
	err = q.SetMaxBytes(lim.MaxQueueBytes + 1)
	if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "CAP_SYS_RESOURCE") {
		return exitf("raising the limit above msgmnb: %v, want fs.ErrPermission naming CAP_SYS_RESOURCE", err)
	}
	if err := q.SetMaxBytes(lim.MaxQueueBytes / 2); err != nil {
		return exitf("lowering the limit: %v", err)
	}
	if err := q.Remove(); err != nil {
		return exitf("%v", err)
	}
	return 0
}

// Message types of the ping-pong benchmark.
const (
	typePing = 1 // to the echo helper
	typePong = 2 // back from it
	typeStop = 3 // tells the echo helper to exit
)

// helperEcho sends every ping back as a pong until it receives a stop.
func helperEcho() int {
	q, err := msgq.OpenID(ipctest.GetenvInt("MSGQ_ID"))
	if err != nil {
		return exitf("%v", err)
	}
	ctx := context.Background()
	m := msgq.NewMessage(1 << 16)
	for {
		if err := q.ReceiveMessage(ctx, m, msgq.Except(typePong), 0); err != nil {
			return exitf("receive: %v", err)
		}
		if m.Type() == typeStop {
			return 0
		}
		m.SetType(typePong)
		if err := q.SendMessage(ctx, m, 0); err != nil {
			return exitf("send: %v", err)
		}
	}
}
