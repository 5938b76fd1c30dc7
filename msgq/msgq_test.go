package msgq_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/msgq"
)

var bg = context.Background()

func TestSendReceive(t *testing.T) {
	q := newQueue(t)
	if err := q.Send(bg, 7, []byte("hello"), 0); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, typ, err := q.Receive(bg, buf, msgq.Any(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(buf[:n]); got != "hello" || typ != 7 {
		t.Errorf("received %q of type %d, want %q of type 7", got, typ, "hello")
	}

	// Empty messages are messages too.
	if err := q.Send(bg, 1, nil, 0); err != nil {
		t.Fatal(err)
	}
	n, typ, err = q.Receive(bg, nil, msgq.Any(), 0)
	if err != nil || n != 0 || typ != 1 {
		t.Errorf("empty message: got n=%d type=%d err=%v, want 0, 1, nil", n, typ, err)
	}
}

func TestMessage(t *testing.T) {
	q := newQueue(t)
	m := msgq.NewMessage(4)
	if m.Cap() != 4 || len(m.Text()) != 0 || m.Type() != 0 {
		t.Fatalf("NewMessage(4): cap %d, text %q, type %d", m.Cap(), m.Text(), m.Type())
	}
	m.SetType(3)
	m.SetText([]byte("abcdef")) // grows
	if m.Cap() < 6 || string(m.Text()) != "abcdef" || m.Type() != 3 {
		t.Fatalf("after SetText: cap %d, text %q, type %d", m.Cap(), m.Text(), m.Type())
	}
	if got := string(m.Resize(3)); got != "abc" {
		t.Errorf("Resize(3) = %q, want abc", got)
	}
	copy(m.Resize(5)[3:], "XY")
	if got := string(m.Text()); got != "abcXY" {
		t.Errorf("after Resize(5) and fill: %q, want abcXY", got)
	}
	if len(m.Resize(-1)) != 0 || m.Type() != 3 {
		t.Errorf("Resize(-1): text %q type %d, want empty, 3", m.Text(), m.Type())
	}
	if msgq.NewMessage(-5).Cap() != 0 {
		t.Error("NewMessage(-5) has capacity")
	}

	m.SetText([]byte("payload"))
	if err := q.SendMessage(bg, m, 0); err != nil {
		t.Fatal(err)
	}
	r := msgq.NewMessage(64)
	if err := q.ReceiveMessage(bg, r, msgq.Type(3), 0); err != nil {
		t.Fatal(err)
	}
	if string(r.Text()) != "payload" || r.Type() != 3 || r.Cap() != 64 {
		t.Errorf("received %q type %d cap %d, want payload, 3, 64", r.Text(), r.Type(), r.Cap())
	}

	// The zero Message works: it sends and receives empty texts.
	var z msgq.Message
	if err := q.SendMessage(bg, &z, 0); !errors.Is(err, msgq.ErrInvalidType) {
		t.Errorf("zero Message sent with type 0: %v, want ErrInvalidType", err)
	}
	z.SetType(9)
	if err := q.SendMessage(bg, &z, 0); err != nil {
		t.Fatal(err)
	}
	var zr msgq.Message
	if err := q.ReceiveMessage(bg, &zr, msgq.Any(), 0); err != nil || zr.Type() != 9 || len(zr.Text()) != 0 {
		t.Errorf("zero Message received: type %d text %q err %v", zr.Type(), zr.Text(), err)
	}
}

// TestSelectors queues messages of several types and takes them off with
// every kind of selector, checking each against a model of msgrcv(2).
func TestSelectors(t *testing.T) {
	type msg struct {
		typ int64
		seq int
	}
	types := []int64{3, 1, 2, 5, 1, 4, 2, 3, 5, 1, 6, 2}
	q := newQueue(t)
	var model []msg
	for i, typ := range types {
		if err := q.Send(bg, typ, []byte(strconv.Itoa(i)), 0); err != nil {
			t.Fatal(err)
		}
		model = append(model, msg{typ, i})
	}
	// pick returns the index in model of the message sel takes, or -1.
	pick := func(kind string, t int64) int {
		best := -1
		for i, m := range model {
			switch kind {
			case "any":
				return i
			case "type":
				if m.typ == t {
					return i
				}
			case "except":
				if m.typ != t {
					return i
				}
			case "upto":
				if m.typ <= t && (best < 0 || m.typ < model[best].typ) {
					best = i
				}
			}
		}
		return best
	}
	steps := []struct {
		kind string
		t    int64
	}{
		{"upto", 5}, {"except", 3}, {"type", 2}, {"any", 0}, {"upto", 3},
		{"type", 9}, {"except", 1}, {"type", 4}, {"upto", 1}, {"upto", 2},
		{"except", 5}, {"any", 0}, {"upto", 4}, {"type", 5}, {"except", 2},
		{"upto", 9}, {"any", 0}, {"except", 6}, {"any", 0},
	}
	buf := make([]byte, 8)
	for _, s := range steps {
		var sel msgq.Selector
		switch s.kind {
		case "any":
			sel = msgq.Any()
		case "type":
			sel = msgq.Type(s.t)
		case "upto":
			sel = msgq.UpTo(s.t)
		case "except":
			sel = msgq.Except(s.t)
		}
		want := pick(s.kind, s.t)
		n, typ, err := q.Receive(bg, buf, sel, msgq.NoWait)
		if want < 0 {
			if !errors.Is(err, msgq.ErrNoMessage) {
				t.Fatalf("%v: got type %d %q, err %v; want ErrNoMessage", sel, typ, buf[:n], err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v, want message %d of type %d", sel, err, model[want].seq, model[want].typ)
		}
		seq, _ := strconv.Atoi(string(buf[:n]))
		if typ != model[want].typ || seq != model[want].seq {
			t.Fatalf("%v: got message %d of type %d, want %d of type %d", sel, seq, typ, model[want].seq, model[want].typ)
		}
		model = append(model[:want], model[want+1:]...)
	}
	if len(model) != 0 {
		t.Fatalf("steps left %d messages in the model", len(model))
	}
	if _, _, err := q.Receive(bg, buf, msgq.Any(), msgq.NoWait); !errors.Is(err, msgq.ErrNoMessage) {
		t.Fatalf("queue should be empty: %v", err)
	}
}

func TestSelectorString(t *testing.T) {
	for sel, want := range map[msgq.Selector]string{
		msgq.Any(): "Any()", {}: "Any()", msgq.Type(3): "Type(3)",
		msgq.UpTo(4): "UpTo(4)", msgq.Except(5): "Except(5)",
	} {
		if got := sel.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
}

func TestNoWaitEmpty(t *testing.T) {
	q := newQueue(t)
	_, _, err := q.Receive(bg, make([]byte, 8), msgq.Any(), msgq.NoWait)
	if err != msgq.ErrNoMessage || !errors.Is(err, unix.ENOMSG) {
		t.Errorf("got %v, want ErrNoMessage itself, matching ENOMSG", err)
	}
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	if err := q.ReceiveMessage(ctx, msgq.NewMessage(8), msgq.Type(2), msgq.NoWait); err != msgq.ErrNoMessage {
		t.Errorf("with a cancellable context: %v, want ErrNoMessage", err)
	}
}

func TestNoWaitFull(t *testing.T) {
	q := newQueue(t)
	if err := q.SetMaxBytes(64); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 8)
	for i := range 8 {
		if err := q.Send(bg, 1, data, msgq.NoWait); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	err := q.Send(bg, 1, data, msgq.NoWait)
	if err != msgq.ErrFull || !errors.Is(err, unix.EAGAIN) {
		t.Errorf("ninth message: %v, want ErrFull itself, matching EAGAIN", err)
	}
	// A receive makes room.
	if _, _, err := q.Receive(bg, data, msgq.Any(), 0); err != nil {
		t.Fatal(err)
	}
	if err := q.Send(bg, 1, data, msgq.NoWait); err != nil {
		t.Errorf("after a receive: %v", err)
	}

	// The byte limit also caps the number of messages, empty ones too.
	q2 := newQueue(t)
	if err := q2.SetMaxBytes(4); err != nil {
		t.Fatal(err)
	}
	if n := fill(t, q2); n != 4 {
		t.Errorf("a queue with a limit of 4 bytes took %d empty messages, want 4", n)
	}
}

func TestTruncate(t *testing.T) {
	q := newQueue(t)
	text := bytes.Repeat([]byte("0123456789"), 10)
	if err := q.Send(bg, 4, text, 0); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, _, err := q.Receive(bg, buf, msgq.Any(), 0); err != msgq.ErrTooBig || !errors.Is(err, unix.E2BIG) {
		t.Fatalf("got %v, want ErrTooBig itself, matching E2BIG", err)
	}
	m := msgq.NewMessage(10)
	m.SetType(77)
	if err := q.ReceiveMessage(bg, m, msgq.Any(), 0); err != msgq.ErrTooBig {
		t.Fatalf("ReceiveMessage: %v, want ErrTooBig", err)
	}
	if m.Type() != 77 || len(m.Text()) != 0 {
		t.Errorf("a failed ReceiveMessage changed the message: type %d, text %q", m.Type(), m.Text())
	}
	if info, err := q.Stat(); err != nil || info.Messages != 1 {
		t.Fatalf("after ErrTooBig: %d messages (err %v), want the message still queued", info.Messages, err)
	}
	n, typ, err := q.Receive(bg, buf, msgq.Any(), msgq.Truncate|msgq.NoWait)
	if err != nil || n != 10 || typ != 4 || !bytes.Equal(buf, text[:10]) {
		t.Fatalf("Truncate: n=%d type=%d %q err=%v, want the first 10 bytes", n, typ, buf[:n], err)
	}
	if info, err := q.Stat(); err != nil || info.Messages != 0 {
		t.Fatalf("after truncation: %d messages (err %v), want 0", info.Messages, err)
	}
}

func TestInvalidArguments(t *testing.T) {
	q := newQueue(t)
	var nilQueue *msgq.Queue
	var nilCtx context.Context
	m := msgq.NewMessage(8)
	m.SetType(1)
	for _, c := range []struct {
		name string
		err  error
		want error
	}{
		{"Send type 0", q.Send(bg, 0, nil, 0), msgq.ErrInvalidType},
		{"Send type -1", q.Send(bg, -1, nil, 0), msgq.ErrInvalidType},
		{"Send type MinInt64", q.Send(bg, math.MinInt64, nil, 0), msgq.ErrInvalidType},
		{"Receive Type(0)", rerr(q.Receive(bg, nil, msgq.Type(0), msgq.NoWait)), msgq.ErrInvalidType},
		{"Receive UpTo(-1)", rerr(q.Receive(bg, nil, msgq.UpTo(-1), msgq.NoWait)), msgq.ErrInvalidType},
		{"Receive Except(0)", rerr(q.Receive(bg, nil, msgq.Except(0), msgq.NoWait)), msgq.ErrInvalidType},
		{"nil Queue Send", nilQueue.Send(bg, 1, nil, 0), fs.ErrInvalid},
		{"nil Queue Receive", rerr(nilQueue.Receive(bg, nil, msgq.Any(), 0)), fs.ErrInvalid},
		{"nil Queue SendMessage", nilQueue.SendMessage(bg, m, 0), fs.ErrInvalid},
		{"nil Queue ReceiveMessage", nilQueue.ReceiveMessage(bg, m, msgq.Any(), 0), fs.ErrInvalid},
		{"nil Queue Stat", serr(nilQueue.Stat()), fs.ErrInvalid},
		{"nil Queue Remove", nilQueue.Remove(), fs.ErrInvalid},
		{"nil Queue SetMaxBytes", nilQueue.SetMaxBytes(1), fs.ErrInvalid},
		{"nil Message SendMessage", q.SendMessage(bg, nil, 0), fs.ErrInvalid},
		{"nil Message ReceiveMessage", q.ReceiveMessage(bg, nil, msgq.Any(), 0), fs.ErrInvalid},
		{"nil Context Send", q.Send(nilCtx, 1, nil, 0), fs.ErrInvalid},
		{"nil Context Receive", rerr(q.Receive(nilCtx, nil, msgq.Any(), 0)), fs.ErrInvalid},
		{"unknown flags Send", q.Send(bg, 1, nil, 1<<5), fs.ErrInvalid},
		{"unknown flags Receive", rerr(q.Receive(bg, nil, msgq.Any(), 1<<5)), fs.ErrInvalid},
		{"Truncate on Send", q.Send(bg, 1, nil, msgq.Truncate), fs.ErrInvalid},
		{"SetMaxBytes(0)", q.SetMaxBytes(0), fs.ErrInvalid},
		{"SetMode with a type bit", q.SetMode(fs.ModeDir | 0o600), nil},
		{"SetOwner(-2, 0)", q.SetOwner(-2, 0), fs.ErrInvalid},
		{"SetOwner(0, 1<<32)", q.SetOwner(0, 1<<32), fs.ErrInvalid},
		{"OpenID(-1)", oerr(msgq.OpenID(-1)), fs.ErrInvalid},
		{"Open(Private)", oerr(msgq.Open(ipc.Private)), fs.ErrInvalid},
		{"Create with a type bit", oerr(msgq.Create(ipc.Private, &msgq.Options{Mode: fs.ModeDir})), nil},
	} {
		if c.err == nil || (c.want != nil && !errors.Is(c.err, c.want)) {
			t.Errorf("%s: got %v, want an error matching %v", c.name, c.err, c.want)
		}
	}
	if nilQueue.ID() != -1 || nilQueue.Key() != ipc.Private {
		t.Error("nil Queue has an id or key")
	}
	if info, err := q.Stat(); err != nil || info.Messages != 0 {
		t.Errorf("invalid calls left %d messages (err %v)", info.Messages, err)
	}
}

func rerr(_ int, _ int64, err error) error { return err }
func serr(_ msgq.Info, err error) error    { return err }
func oerr(_ *msgq.Queue, err error) error  { return err }

func TestTooLong(t *testing.T) {
	lim, err := msgq.SystemLimits()
	if err != nil {
		t.Fatal(err)
	}
	q := newQueue(t)
	// The queue must hold the longest message (msgmnb can be set lower
	// than msgmax).
	if err := q.SetMaxBytes(max(lim.MaxMessage, lim.MaxQueueBytes)); err != nil {
		t.Fatal(err)
	}
	long := make([]byte, lim.MaxMessage+1)
	err = q.Send(bg, 1, long, msgq.NoWait)
	if !errors.Is(err, msgq.ErrTooLong) {
		t.Fatalf("text of msgmax+1 bytes: %v, want ErrTooLong", err)
	}
	for _, n := range []int{lim.MaxMessage + 1, lim.MaxMessage} {
		if !strings.Contains(err.Error(), strconv.Itoa(n)) {
			t.Errorf("error %q does not name %d", err, n)
		}
	}
	m := msgq.NewMessage(0)
	m.SetType(1)
	m.Resize(lim.MaxMessage + 1)
	if err := q.SendMessage(bg, m, msgq.NoWait); !errors.Is(err, msgq.ErrTooLong) {
		t.Errorf("SendMessage: %v, want ErrTooLong", err)
	}

	// msgmax bytes exactly is fine.
	if err := q.Send(bg, 1, long[:lim.MaxMessage], msgq.NoWait); err != nil {
		t.Fatal(err)
	}
	n, _, err := q.Receive(bg, long, msgq.Any(), msgq.NoWait)
	if err != nil || n != lim.MaxMessage {
		t.Fatalf("received %d bytes, err %v; want %d", n, err, lim.MaxMessage)
	}
}

func TestStat(t *testing.T) {
	lim, err := msgq.SystemLimits()
	if err != nil {
		t.Fatal(err)
	}
	q := newQueue(t)
	info, err := q.Stat()
	if err != nil {
		t.Fatal(err)
	}
	euid, egid := uint32(os.Geteuid()), uint32(os.Getegid())
	if info.Mode != ipc.DefaultMode || info.UID != euid || info.CUID != euid || info.GID != egid || info.Key != ipc.Private {
		t.Errorf("new queue: %+v, want mode %v, owner and creator %d:%d, key 0", info.Perm, ipc.DefaultMode, euid, egid)
	}
	if info.Messages != 0 || info.Bytes != 0 || info.MaxBytes != uint64(lim.MaxQueueBytes) ||
		info.LastSendPID != 0 || info.LastRecvPID != 0 || !info.SendTime.IsZero() || !info.RecvTime.IsZero() || info.ChangeTime.IsZero() {
		t.Errorf("new queue: %+v, want empty, never used, limit msgmnb (%d)", info, lim.MaxQueueBytes)
	}

	if err := q.Send(bg, 1, []byte("12345"), 0); err != nil {
		t.Fatal(err)
	}
	if err := q.Send(bg, 2, []byte("1234567"), 0); err != nil {
		t.Fatal(err)
	}
	pid := os.Getpid()
	info, err = q.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if info.Messages != 2 || info.Bytes != 12 || info.LastSendPID != pid || info.SendTime.IsZero() || info.LastRecvPID != 0 {
		t.Errorf("after two sends: %+v, want 2 messages, 12 bytes, sent by %d", info, pid)
	}

	if _, _, err := q.Receive(bg, make([]byte, 8), msgq.Type(2), 0); err != nil {
		t.Fatal(err)
	}
	info, err = q.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if info.Messages != 1 || info.Bytes != 5 || info.LastRecvPID != pid || info.RecvTime.IsZero() {
		t.Errorf("after a receive: %+v, want 1 message, 5 bytes, received by %d", info, pid)
	}

	// List agrees.
	recs, err := msgq.List()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range recs {
		if r.ID == q.ID() {
			found = true
			if r.Messages != 1 || r.Bytes != 5 || r.LastSendPID != pid || r.LastRecvPID != pid || r.Mode != ipc.DefaultMode {
				t.Errorf("List: %+v, want 1 message, 5 bytes, pids %d", r, pid)
			}
		}
	}
	if !found {
		t.Errorf("List does not show queue %d", q.ID())
	}
}

func TestSetMaxBytes(t *testing.T) {
	lim, err := msgq.SystemLimits()
	if err != nil {
		t.Fatal(err)
	}
	q := newQueue(t)
	if err := q.SetMaxBytes(100); err != nil {
		t.Fatal(err)
	}
	if info, err := q.Stat(); err != nil || info.MaxBytes != 100 {
		t.Fatalf("limit %d (err %v), want 100", info.MaxBytes, err)
	}
	// Lowering below the content keeps the messages.
	if err := q.Send(bg, 1, make([]byte, 50), 0); err != nil {
		t.Fatal(err)
	}
	if err := q.SetMaxBytes(10); err != nil {
		t.Fatal(err)
	}
	if info, err := q.Stat(); err != nil || info.Messages != 1 || info.MaxBytes != 10 {
		t.Fatalf("after lowering: %+v (err %v)", info, err)
	}
	// Raising above msgmnb needs CAP_SYS_RESOURCE; helperDenied checks the
	// refusal in an unprivileged process.
	err = q.SetMaxBytes(2 * lim.MaxQueueBytes)
	if hasCapSysResource(t) {
		if err != nil {
			t.Fatalf("with CAP_SYS_RESOURCE: %v", err)
		}
		if info, err := q.Stat(); err != nil || info.MaxBytes != uint64(2*lim.MaxQueueBytes) {
			t.Fatalf("limit %d (err %v), want %d", info.MaxBytes, err, 2*lim.MaxQueueBytes)
		}
	} else if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "CAP_SYS_RESOURCE") {
		t.Fatalf("without CAP_SYS_RESOURCE: %v, want fs.ErrPermission saying the capability is needed", err)
	}
}

// hasCapSysResource reports whether this process has CAP_SYS_RESOURCE in
// its effective set.
func hasCapSysResource(t *testing.T) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if hex, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return caps&(1<<unix.CAP_SYS_RESOURCE) != 0
		}
	}
	t.Fatal("no CapEff in /proc/self/status")
	return false
}

func TestSetModeOwner(t *testing.T) {
	q := newQueue(t)
	if err := q.SetMode(0o640); err != nil {
		t.Fatal(err)
	}
	info, err := q.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode != 0o640 {
		t.Errorf("mode %v, want 0640", info.Mode)
	}
	before := info
	if err := q.SetOwner(-1, -1); err != nil {
		t.Fatal(err)
	}
	if info, err = q.Stat(); err != nil || info.Perm != before.Perm || info.MaxBytes != before.MaxBytes {
		t.Errorf("SetOwner(-1, -1) changed %+v to %+v (err %v)", before, info, err)
	}
	if os.Geteuid() != 0 {
		t.Skip("giving a queue away needs root")
	}
	if err := q.SetOwner(65534, -1); err != nil {
		t.Fatal(err)
	}
	if err := q.SetOwner(-1, 65534); err != nil {
		t.Fatal(err)
	}
	if info, err = q.Stat(); err != nil || info.UID != 65534 || info.GID != 65534 || info.CUID != before.CUID || info.Mode != 0o640 {
		t.Errorf("after SetOwner: %+v (err %v), want owner 65534:65534, creator and mode unchanged", info.Perm, err)
	}
}

func TestCreateOpen(t *testing.T) {
	key := newKey(t)
	q, err := msgq.Create(key, &msgq.Options{Mode: 0o640, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	track(t, q.ID())
	if q.Key() != key {
		t.Errorf("Key() = %v, want %v", q.Key(), key)
	}
	if info, err := q.Stat(); err != nil || info.Mode != 0o640 || info.Key != key {
		t.Errorf("created %+v (err %v), want mode 0640, key %v", info.Perm, err, key)
	}

	_, err = msgq.Create(key, &msgq.Options{Exclusive: true})
	var ierr *ipc.Error
	if !errors.Is(err, fs.ErrExist) || !errors.As(err, &ierr) || ierr.Op != "msgget" || ierr.Key != key {
		t.Errorf("second exclusive Create: %v, want an *ipc.Error from msgget matching fs.ErrExist", err)
	}
	for name, open := range map[string]func() (*msgq.Queue, error){
		"Create": func() (*msgq.Queue, error) { return msgq.Create(key, nil) },
		"Open":   func() (*msgq.Queue, error) { return msgq.Open(key) },
		"OpenID": func() (*msgq.Queue, error) { return msgq.OpenID(q.ID()) },
	} {
		q2, err := open()
		if err != nil || q2.ID() != q.ID() || q2.Key() != key {
			t.Errorf("%s: %v (err %v), want id %d key %v", name, q2, err, q.ID(), key)
		}
	}

	if _, err := msgq.Open(newKey(t)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a missing key: %v, want fs.ErrNotExist", err)
	}
}

// TestRemoved checks that every call on a removed queue's id says so.
func TestRemoved(t *testing.T) {
	q := newQueue(t)
	if err := q.Remove(); err != nil {
		t.Fatal(err)
	}
	if ipcExists(q.ID()) {
		t.Fatalf("queue %d still listed after Remove", q.ID())
	}
	m := msgq.NewMessage(8)
	m.SetType(1)
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	for _, c := range []struct {
		name string
		err  error
	}{
		{"Send", q.Send(bg, 1, []byte("x"), 0)},
		{"Send NoWait", q.Send(bg, 1, []byte("x"), msgq.NoWait)},
		{"Send cancellable", q.Send(ctx, 1, []byte("x"), 0)},
		{"SendMessage", q.SendMessage(bg, m, 0)},
		{"Receive", rerr(q.Receive(bg, make([]byte, 8), msgq.Any(), 0))},
		{"Receive NoWait", rerr(q.Receive(bg, make([]byte, 8), msgq.Type(3), msgq.NoWait))},
		{"Receive cancellable", rerr(q.Receive(ctx, make([]byte, 8), msgq.Any(), 0))},
		{"ReceiveMessage", q.ReceiveMessage(bg, m, msgq.Except(1), 0)},
		{"Stat", serr(q.Stat())},
		{"SetMaxBytes", q.SetMaxBytes(100)},
		{"SetMode", q.SetMode(0o600)},
		{"SetOwner", q.SetOwner(-1, -1)},
		{"Remove", q.Remove()},
		{"OpenID", oerr(msgq.OpenID(q.ID()))},
	} {
		if !errors.Is(c.err, ipc.ErrRemoved) {
			t.Errorf("%s on a removed queue: %v, want ipc.ErrRemoved", c.name, c.err)
		}
	}
}

func ipcExists(id int) bool {
	recs, _ := msgq.List()
	for _, r := range recs {
		if r.ID == id {
			return true
		}
	}
	return false
}

func TestSystemLimitsUsage(t *testing.T) {
	lim, err := msgq.SystemLimits()
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]int{"msgmax": lim.MaxMessage, "msgmnb": lim.MaxQueueBytes, "msgmni": lim.MaxQueues} {
		b, err := os.ReadFile("/proc/sys/kernel/" + name)
		if err != nil {
			t.Skip(err)
		}
		if want, _ := strconv.Atoi(strings.TrimSpace(string(b))); got != want {
			t.Errorf("%s = %d, /proc/sys/kernel says %d", name, got, want)
		}
	}

	q := newQueue(t)
	for range 3 {
		if err := q.Send(bg, 1, []byte("abcd"), 0); err != nil {
			t.Fatal(err)
		}
	}
	u, err := msgq.SystemUsage()
	if err != nil {
		t.Fatal(err)
	}
	if u.Queues < 1 || u.Messages < 3 || u.Bytes < 12 {
		t.Errorf("usage %+v, want at least this test's queue, 3 messages, 12 bytes", u)
	}
}

func TestErrorSentinels(t *testing.T) {
	for _, c := range []struct {
		err   error
		errno unix.Errno
	}{
		{msgq.ErrFull, unix.EAGAIN},
		{msgq.ErrNoMessage, unix.ENOMSG},
		{msgq.ErrTooBig, unix.E2BIG},
	} {
		if !errors.Is(c.err, c.errno) || !errors.Is(fmt.Errorf("wrapped: %w", c.err), c.err) {
			t.Errorf("%v does not match %v", c.err, c.errno)
		}
	}
	for _, c := range []struct{ err, other error }{
		{msgq.ErrFull, msgq.ErrNoMessage},
		{msgq.ErrNoMessage, unix.EAGAIN},
		{msgq.ErrTooBig, msgq.ErrTooLong},
	} {
		if errors.Is(c.err, c.other) {
			t.Errorf("%v matches %v", c.err, c.other)
		}
	}
}
