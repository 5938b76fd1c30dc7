package ring

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shmring/shmring/internal/ipctest"
	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/msgq"
)

func init() {
	helpers["select-script"] = helperSelectScript
	helpers["select-consumer"] = helperSelectConsumer
	helpers["select-peek"] = helperSelectPeek
}

func selective(slots, producers, consumers int) *Options {
	return &Options{Mode: MPMC, Selective: true, Slots: slots, MaxMessage: 64, MaxProducers: producers, MaxConsumers: consumers}
}

// TestSelectBasics: each selector takes what msgrcv would, and leaves the
// rest.
func TestSelectBasics(t *testing.T) {
	forMemories(t, selective(16, 1, 1), func(t *testing.T, r *Ring) {
		p, c := pair(t, r)
		for i, typ := range []int64{3, 1, 2, 1, 5} {
			if err := p.TrySend(typ, msg(i)); err != nil {
				t.Fatal(err)
			}
		}
		buf := make([]byte, 64)
		for _, tc := range []struct {
			sel  ipc.Selector
			typ  int64
			want string
		}{
			{ipc.UpToType(2), 1, "message 1"},
			{ipc.OfType(2), 2, "message 2"},
			{ipc.ExceptType(3), 1, "message 3"},
			{ipc.UpToType(9), 3, "message 0"},
			{ipc.AnyType(), 5, "message 4"},
		} {
			n, typ, err := c.TryReceiveSelect(buf, tc.sel)
			if err != nil || typ != tc.typ || string(buf[:n]) != tc.want {
				t.Fatalf("%v: %q type %d, %v; want %q type %d", tc.sel, buf[:n], typ, err, tc.want, tc.typ)
			}
		}
		if _, _, err := c.TryReceiveSelect(buf, ipc.AnyType()); !errors.Is(err, ErrEmpty) {
			t.Fatalf("empty ring: %v", err)
		}
		p.TrySend(4, msg(9))
		if _, _, err := c.TryReceiveSelect(buf, ipc.OfType(7)); !errors.Is(err, ErrEmpty) {
			t.Fatalf("no message of type 7: %v", err)
		}
		if _, _, err := c.TryReceiveSelect(buf, ipc.OfType(0)); !errors.Is(err, ErrBadType) {
			t.Fatalf("type 0: %v", err)
		}
		if st := r.Stats(); st.Depth != 1 || st.Received != 5 {
			t.Fatalf("stats %+v, want depth 1 received 5", st)
		}
		// Plain calls are AnyType.
		if n, typ, err := c.TryReceive(buf); err != nil || typ != 4 || string(buf[:n]) != "message 9" {
			t.Fatalf("plain receive: %q %d %v", buf[:n], typ, err)
		}
	})
}

// TestSelectOptions: selective receive needs a many-consumer mode; a
// ring without it refuses selectors other than AnyType; the header says
// which, across opens.
func TestSelectOptions(t *testing.T) {
	if _, err := Create(ipc.Private, &Options{Mode: MPSC, Selective: true}); !errors.Is(err, ErrInvalid) {
		t.Errorf("selective MPSC: %v, want ErrInvalid", err)
	}
	plain := testRing(t, shm, &Options{Mode: MPMC, Slots: 8, MaxMessage: 64, MaxProducers: 1, MaxConsumers: 1})
	_, c := pair(t, plain)
	if _, _, err := c.TryReceiveSelect(make([]byte, 64), ipc.OfType(1)); !errors.Is(err, ErrNotSelective) {
		t.Errorf("selector on a plain ring: %v", err)
	}
	if _, _, err := c.TryReceiveSelect(make([]byte, 64), ipc.AnyType()); !errors.Is(err, ErrEmpty) {
		t.Errorf("AnyType on a plain ring: %v", err)
	}
	r := testRing(t, shm, selective(8, 1, 1))
	o, err := OpenID(r.SegmentID(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if !o.g.selective {
		t.Error("the opened ring is not selective")
	}
}

// TestSelectHeldTooLarge: a selected message too large for the buffer stays
// with the consumer for a call that wants it, and goes back to everyone
// when the next call selects something else.
func TestSelectHeldTooLarge(t *testing.T) {
	forMemories(t, selective(8, 1, 2), func(t *testing.T, r *Ring) {
		p, c := pair(t, r)
		other, err := r.NewConsumer()
		if err != nil {
			t.Fatal(err)
		}
		p.TrySend(2, []byte("a long message"))
		p.TrySend(1, []byte("short"))
		small := make([]byte, 4)
		if _, _, err := c.TryReceiveSelect(small, ipc.OfType(2)); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("too large: %v", err)
		}
		if _, _, err := other.TryReceiveSelect(make([]byte, 64), ipc.OfType(2)); !errors.Is(err, ErrEmpty) {
			t.Fatalf("another consumer took the held message: %v", err)
		}
		buf := make([]byte, 64)
		if n, typ, err := c.TryReceiveSelect(buf, ipc.OfType(1)); err != nil || typ != 1 || string(buf[:n]) != "short" {
			t.Fatalf("%q %d %v", buf[:n], typ, err)
		}
		if n, typ, err := other.TryReceiveSelect(buf, ipc.OfType(2)); err != nil || typ != 2 || string(buf[:n]) != "a long message" {
			t.Fatalf("after the holder moved on: %q %d %v", buf[:n], typ, err)
		}
	})
}

// TestSelectPeekAndBatch: the zero-copy and batch forms select too.
func TestSelectPeekAndBatch(t *testing.T) {
	forMemories(t, selective(16, 1, 1), func(t *testing.T, r *Ring) {
		p, c := pair(t, r)
		for i := 0; i < 8; i++ {
			p.TrySend(int64(1+i%2), msg(i))
		}
		m, err := c.TryPeekSelect(ipc.OfType(2))
		if err != nil || m.Type != 2 || string(m.Data) != "message 1" {
			t.Fatalf("peek: %+v %v", m, err)
		}
		if err := c.Release(); err != nil {
			t.Fatal(err)
		}
		msgs := make([]Message, 8)
		for i := range msgs {
			msgs[i].Data = make([]byte, 64)
		}
		n, err := c.TryReceiveBatchSelect(msgs, ipc.OfType(1))
		if err != nil || n != 4 {
			t.Fatalf("batch: %d %v", n, err)
		}
		for i := 0; i < n; i++ {
			if msgs[i].Type != 1 || string(msgs[i].Data) != fmt.Sprintf("message %d", 2*i) {
				t.Fatalf("batch message %d: %d %q", i, msgs[i].Type, msgs[i].Data)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
		defer cancel()
		if m, err := c.PeekSelect(ctx, ipc.ExceptType(1)); err != nil || string(m.Data) != "message 3" {
			t.Fatalf("PeekSelect: %+v %v", m, err)
		}
		c.Release()
		if n, err := c.ReceiveBatchSelect(ctx, msgs, ipc.AnyType()); err != nil || n != 2 {
			t.Fatalf("ReceiveBatchSelect: %d %v", n, err)
		}
	})
}

// selectOp is one step of a script run against msgq and the ring alike.
type selectOp struct {
	send bool
	typ  int64        // a send's type
	sel  ipc.Selector // a receive's selector
}

func randomScript(rng *rand.Rand, steps, capacity int) []selectOp {
	var ops []selectOp
	depth := 0
	for i := 0; i < steps; i++ {
		if depth < capacity && rng.Intn(2) == 0 {
			ops = append(ops, selectOp{send: true, typ: int64(1 + rng.Intn(8))})
			depth++
			continue
		}
		t := int64(1 + rng.Intn(8))
		sel := []ipc.Selector{ipc.AnyType(), ipc.OfType(t), ipc.UpToType(t), ipc.ExceptType(t)}[rng.Intn(4)]
		ops = append(ops, selectOp{sel: sel})
		depth = max(depth-1, 0)
	}
	return ops
}

func encodeScript(ops []selectOp) string {
	var b strings.Builder
	for _, op := range ops {
		if op.send {
			fmt.Fprintf(&b, "s%d ", op.typ)
		} else {
			fmt.Fprintf(&b, "r%d:%d ", op.sel.Kind(), op.sel.Type())
		}
	}
	return b.String()
}

func decodeScript(s string) []selectOp {
	var ops []selectOp
	for _, f := range strings.Fields(s) {
		if f[0] == 's' {
			t, _ := strconv.ParseInt(f[1:], 10, 64)
			ops = append(ops, selectOp{send: true, typ: t})
			continue
		}
		k, t, _ := strings.Cut(f[1:], ":")
		kind, _ := strconv.Atoi(k)
		typ, _ := strconv.ParseInt(t, 10, 64)
		var sel ipc.Selector
		switch ipc.SelectorKind(kind) {
		case ipc.SelectType:
			sel = ipc.OfType(typ)
		case ipc.SelectUpTo:
			sel = ipc.UpToType(typ)
		case ipc.SelectExcept:
			sel = ipc.ExceptType(typ)
		}
		ops = append(ops, selectOp{sel: sel})
	}
	return ops
}

// runScript runs ops: sends through send, receives through recv, and
// returns what each receive got ("-" for nothing).
func runScript(ops []selectOp, send func(typ int64, seq int) error, recv func(sel ipc.Selector) (string, error)) ([]string, error) {
	var got []string
	for i, op := range ops {
		if op.send {
			if err := send(op.typ, i); err != nil {
				return nil, fmt.Errorf("step %d: send: %w", i, err)
			}
			continue
		}
		s, err := recv(op.sel)
		if err != nil {
			return nil, fmt.Errorf("step %d: receive %v: %w", i, op.sel, err)
		}
		got = append(got, s)
	}
	return got, nil
}

func seqPayload(seq int) []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint64(b, uint64(seq))
	return b
}

// queueScript runs ops against a kernel message queue: the model.
func queueScript(t *testing.T, ops []selectOp) []string {
	t.Helper()
	q, err := msgq.Create(ipc.Private, nil)
	if err != nil {
		t.Fatal(err)
	}
	ipctest.Track(t, ipctest.Msg, q.ID())
	defer q.Remove()
	bg := context.Background()
	buf := make([]byte, 8)
	got, err := runScript(ops, func(typ int64, seq int) error {
		if typ < 0 {
			return nil // refused by the ring as full
		}
		return q.Send(bg, typ, seqPayload(seq), msgq.NoWait)
	}, func(sel ipc.Selector) (string, error) {
		n, typ, err := q.Receive(bg, buf, sel, msgq.NoWait)
		if errors.Is(err, msgq.ErrNoMessage) {
			return "-", nil
		}
		return fmt.Sprintf("%d/%d", typ, binary.LittleEndian.Uint64(buf[:n])), err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// ringScriptOps runs ops against p and c. A send the ring refuses as full
// is dropped from ops (msgq counts its capacity in bytes, the ring in
// slots, and a message nobody selected holds its slot when the producers
// come round to it), so that the model runs the sends the ring took.
func ringScriptOps(ops []selectOp, p *Producer, c *Consumer) ([]string, []selectOp, error) {
	buf := make([]byte, 64)
	var taken []selectOp
	full := map[int]bool{}
	got, err := runScript(ops, func(typ int64, seq int) error {
		err := p.TrySend(typ, seqPayload(seq))
		if errors.Is(err, ErrFull) {
			full[seq] = true
			return nil
		}
		return err
	}, func(sel ipc.Selector) (string, error) {
		n, typ, err := c.TryReceiveSelect(buf, sel)
		if errors.Is(err, ErrEmpty) {
			return "-", nil
		}
		return fmt.Sprintf("%d/%d", typ, binary.LittleEndian.Uint64(buf[:n])), err
	})
	for i, op := range ops {
		if !full[i] {
			taken = append(taken, op)
		} else {
			taken = append(taken, selectOp{send: true, typ: -1}) // keeps the indices: seq numbers are step numbers
		}
	}
	return got, taken, err
}

// TestSelectAgainstMsgq: random scripts of sends (types 1..8) and selective
// receives give the same messages in the same order on a kernel queue and
// on the ring, in one process and with the ring's receives made by
// another process.
func TestSelectAgainstMsgq(t *testing.T) {
	for round := 0; round < 20; round++ {
		rng := rand.New(rand.NewSource(int64(round)))
		ops := randomScript(rng, 300, 16) // 16 messages of 8 bytes stay under msgmnb
		r := testRing(t, []memory{heap, shm}[round%2], selective(16, 1, 1))
		p, c := pair(t, r)
		got, taken, err := ringScriptOps(ops, p, c)
		if err != nil {
			t.Fatal(err)
		}
		want := queueScript(t, taken)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("round %d: ring\n%v\nmsgq\n%v", round, got, want)
		}
	}
}

// TestSelectAgainstMsgqProcesses: the same, with the ring's producer here
// and its consumer in another process, which interleaves through a pipe.
func TestSelectAgainstMsgqProcesses(t *testing.T) {
	rng := rand.New(rand.NewSource(99))
	ops := randomScript(rng, 400, 16)
	r := testRing(t, shm, selective(16, 1, 1))
	p, err := r.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	cmd := ipctest.Command(t, "select-script", helperEnv(r, "RING_SCRIPT="+encodeScript(ops))...)
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	lines := bufio.NewScanner(out)
	var got []string
	taken := append([]selectOp(nil), ops...)
	for i, op := range ops {
		if op.send {
			err := p.TrySend(op.typ, seqPayload(i))
			if errors.Is(err, ErrFull) {
				taken[i].typ = -1 // not sent to the model either
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			continue
		}
		fmt.Fprintln(in, "go") // the next receive may run
		if !lines.Scan() {
			t.Fatalf("helper ended at step %d", i)
		}
		got = append(got, lines.Text())
	}
	in.Close()
	want := queueScript(t, taken)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("ring across processes\n%v\nmsgq\n%v", got, want)
	}
}

// helperSelectScript makes the receives of RING_SCRIPT, one per line read
// from stdin, printing what each got.
func helperSelectScript() int {
	r, _ := helperOpen()
	c, err := r.NewConsumer()
	if err != nil {
		return helperFail("new consumer", err)
	}
	in := bufio.NewScanner(os.Stdin)
	buf := make([]byte, 64)
	for _, op := range decodeScript(os.Getenv("RING_SCRIPT")) {
		if op.send {
			continue
		}
		if !in.Scan() {
			return 0
		}
		n, typ, err := c.TryReceiveSelect(buf, op.sel)
		switch {
		case errors.Is(err, ErrEmpty):
			fmt.Println("-")
		case err != nil:
			return helperFail("receive", err)
		default:
			fmt.Printf("%d/%d\n", typ, binary.LittleEndian.Uint64(buf[:n]))
		}
	}
	return 0
}

// FuzzSelect: any script gives the kernel queue's results on the ring.
func FuzzSelect(f *testing.F) {
	f.Add([]byte{1, 2, 3, 0x81, 0x92, 0xa3, 0xb4, 5, 5, 0x85})
	f.Add([]byte{8, 7, 6, 5, 4, 3, 2, 1, 0x93, 0x92, 0x91, 0x80})
	f.Fuzz(func(t *testing.T, script []byte) {
		var ops []selectOp
		depth := 0
		for _, b := range script {
			t := int64(1 + b&7)
			if b&0x80 == 0 {
				if depth < 16 {
					ops = append(ops, selectOp{send: true, typ: t})
					depth++
				}
				continue
			}
			sel := []ipc.Selector{ipc.AnyType(), ipc.OfType(t), ipc.UpToType(t), ipc.ExceptType(t)}[b>>4&3]
			ops = append(ops, selectOp{sel: sel})
			depth = max(depth-1, 0)
		}
		r := testRing(t, heap, selective(16, 1, 1))
		p, c := pair(t, r)
		got, taken, err := ringScriptOps(ops, p, c)
		if err != nil {
			t.Fatal(err)
		}
		want := queueScript(t, taken)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("ring\n%v\nmsgq\n%v", got, want)
		}
	})
}

// TestSelectConsumersProcesses: consumers in separate processes with
// overlapping and disjoint selectors take every message exactly once,
// each one their selector matches.
func TestSelectConsumersProcesses(t *testing.T) {
	const perType = 2000
	sels := []string{"type:1", "upto:2", "except:1", "type:4"}
	r := testRing(t, shm, &Options{Mode: MPMC, Selective: true, Slots: 64, MaxMessage: 64, MaxProducers: 1, MaxConsumers: len(sels)})
	var cmds []*exec.Cmd
	var outs []*bufio.Scanner
	for _, sel := range sels {
		cmd := ipctest.Command(t, "select-consumer", helperEnv(r, "RING_SELECT="+sel)...)
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		sc := bufio.NewScanner(out)
		if !sc.Scan() || sc.Text() != "ready" {
			t.Fatalf("consumer %s did not start", sel)
		}
		cmds, outs = append(cmds, cmd), append(outs, sc)
	}
	p, err := r.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*ipctest.Deadline)
	defer cancel()
	for i := 0; i < 4*perType; i++ {
		if err := p.Send(ctx, int64(1+i%4), seqPayload(i)); err != nil {
			t.Fatalf("send %d: %v (stats %+v)", i, err, r.Stats())
		}
	}
	p.Close()
	seen := map[int]string{}
	for k, sc := range outs {
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if f[0] == "end" {
				break
			}
			typ, _ := strconv.Atoi(f[0])
			seq, _ := strconv.Atoi(f[1])
			if prev, dup := seen[seq]; dup {
				t.Fatalf("message %d delivered to %s and %s", seq, prev, sels[k])
			}
			seen[seq] = sels[k]
			if typ != 1+seq%4 || !parseSelector(sels[k]).Matches(int64(typ)) {
				t.Fatalf("consumer %s got message %d of type %d", sels[k], seq, typ)
			}
		}
		cmds[k].Wait()
	}
	if len(seen) != 4*perType {
		t.Fatalf("%d of %d messages delivered", len(seen), 4*perType)
	}
}

func parseSelector(s string) ipc.Selector {
	k, v, _ := strings.Cut(s, ":")
	t, _ := strconv.ParseInt(v, 10, 64)
	switch k {
	case "type":
		return ipc.OfType(t)
	case "upto":
		return ipc.UpToType(t)
	case "except":
		return ipc.ExceptType(t)
	}
	return ipc.AnyType()
}

// helperSelectConsumer receives with RING_SELECT until io.EOF, printing
// "type seq" per message, then "end".
func helperSelectConsumer() int {
	r, _ := helperOpen()
	c, err := r.NewConsumer()
	if err != nil {
		return helperFail("new consumer", err)
	}
	sel := parseSelector(os.Getenv("RING_SELECT"))
	fmt.Println("ready")
	w := bufio.NewWriter(os.Stdout)
	buf := make([]byte, 64)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 4*ipctest.Deadline)
		n, typ, err := c.ReceiveSelect(ctx, buf, sel)
		cancel()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			w.Flush()
			return helperFail("receive", err)
		}
		fmt.Fprintf(w, "%d %d\n", typ, binary.LittleEndian.Uint64(buf[:n]))
	}
	fmt.Fprintln(w, "end")
	w.Flush()
	return 0
}

// TestSelectKilledHolder: a selective consumer killed while it looks at a
// message in place leaves it to another consumer, flagged Redelivered;
// messages it never took are delivered unflagged.
func TestSelectKilledHolder(t *testing.T) {
	r := testRing(t, shm, selective(8, 1, 2))
	p, err := r.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	p.TrySend(2, []byte("held"))
	p.TrySend(3, []byte("free"))
	dead := startHelper(t, "select-peek", helperEnv(r, "RING_SELECT=type:2")...)
	c, err := r.NewConsumer()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.TryPeekSelect(ipc.OfType(2)); !errors.Is(err, ErrEmpty) {
		t.Fatalf("a live holder's message was given out: %v", err)
	}
	kill(t, dead)
	ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
	defer cancel()
	m, err := c.PeekSelect(ctx, ipc.OfType(2))
	if err != nil || string(m.Data) != "held" || !m.Redelivered {
		t.Fatalf("after the holder's death: %+v %v", m, err)
	}
	c.Release()
	m, err = c.PeekSelect(ctx, ipc.OfType(3))
	if err != nil || string(m.Data) != "free" || m.Redelivered {
		t.Fatalf("the message it did not take: %+v %v", m, err)
	}
	c.Release()
	if st := r.Stats(); st.Redelivered != 1 || st.Depth != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// helperSelectPeek peeks at the message RING_SELECT selects and hangs
// holding it.
func helperSelectPeek() int {
	r, _ := helperOpen()
	c, err := r.NewConsumer()
	if err != nil {
		return helperFail("new consumer", err)
	}
	if _, err := c.TryPeekSelect(parseSelector(os.Getenv("RING_SELECT"))); err != nil {
		return helperFail("peek", err)
	}
	return hang()
}

// TestSelectWakesOnlyMatching: a consumer asleep on one type is not woken by
// messages of other types, and is by its own.
func TestSelectWakesOnlyMatching(t *testing.T) {
	forMemories(t, &Options{Mode: MPMC, Selective: true, Slots: 64, MaxMessage: 64, MaxProducers: 1, MaxConsumers: 2,
		Wait: Waiting{Strategy: Block}}, func(t *testing.T, r *Ring) {
		p, c := pair(t, r)
		got := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 4*ipctest.Deadline)
			defer cancel()
			_, typ, err := c.ReceiveSelect(ctx, make([]byte, 64), ipc.OfType(1))
			if err == nil && typ != 1 {
				err = fmt.Errorf("type %d", typ)
			}
			got <- err
		}()
		for r.Stats().ConsumerSleeps == 0 {
			time.Sleep(time.Millisecond)
		}
		before := r.Stats()
		for i := 0; i < 40; i++ {
			if err := p.TrySend(2, msg(i)); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(20 * time.Millisecond) // a wake-up in vain would show in the counts by now
		mid := r.Stats()
		if mid.Wakeups != before.Wakeups {
			t.Errorf("messages of another type woke the sleeper: %d wake-ups", mid.Wakeups-before.Wakeups)
		}
		if err := p.TrySend(1, msg(99)); err != nil {
			t.Fatal(err)
		}
		if err := <-got; err != nil {
			t.Fatal(err)
		}
		if after := r.Stats(); after.Wakeups == mid.Wakeups {
			t.Error("its own type did not wake it")
		}
	})
}

// TestSelectStress: goroutine producers and consumers with assorted
// selectors over heap and shared memory, under -race for the heap ring:
// every message exactly once, to a consumer that selects it; then the
// ring is empty.
func TestSelectStress(t *testing.T) {
	const producers, perProducer = 3, 3000
	sels := []ipc.Selector{ipc.OfType(1), ipc.UpToType(2), ipc.ExceptType(1), ipc.AnyType()}
	forMemories(t, &Options{Mode: MPMC, Selective: true, Slots: 8, MaxMessage: 64, MaxProducers: producers, MaxConsumers: len(sels)},
		func(t *testing.T, r *Ring) {
			ctx, cancel := context.WithTimeout(context.Background(), 8*ipctest.Deadline)
			defer cancel()
			var mu sync.Mutex
			seen := map[uint64]int{}
			var wg sync.WaitGroup
			errs := make(chan error, producers+len(sels))
			for k, sel := range sels {
				c, err := r.NewConsumer()
				if err != nil {
					t.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					buf := make([]byte, 64)
					msgs := []Message{{Data: make([]byte, 64)}, {Data: make([]byte, 64)}}
					for i := 0; ; i++ {
						var got []Message
						var err error
						switch i % 3 {
						case 0:
							var n int
							var typ int64
							n, typ, err = c.ReceiveSelect(ctx, buf, sel)
							got = []Message{{Type: typ, Data: buf[:n]}}
						case 1:
							var m Peeked
							m, err = c.PeekSelect(ctx, sel)
							got = []Message{{Type: m.Type, Data: append([]byte(nil), m.Data...)}}
							if err == nil {
								err = c.Release()
							}
						default:
							var n int
							n, err = c.ReceiveBatchSelect(ctx, msgs, sel)
							got = msgs[:n]
						}
						if errors.Is(err, io.EOF) {
							return
						}
						if err != nil {
							errs <- fmt.Errorf("consumer %v: %w", sel, err)
							return
						}
						mu.Lock()
						for _, m := range got {
							seq := binary.LittleEndian.Uint64(m.Data)
							seen[seq]++
							if !sel.Matches(m.Type) || m.Type != int64(1+seq%4) {
								errs <- fmt.Errorf("consumer %d (%v) got type %d seq %d", k, sel, m.Type, seq)
							}
						}
						mu.Unlock()
					}
				}()
			}
			var pw sync.WaitGroup
			for j := 0; j < producers; j++ {
				p, err := r.NewProducer()
				if err != nil {
					t.Fatal(err)
				}
				pw.Add(1)
				go func() {
					defer pw.Done()
					defer p.Close()
					for i := 0; i < perProducer; i++ {
						seq := uint64(j*perProducer + i)
						if err := p.Send(ctx, int64(1+seq%4), seqPayload(int(seq))); err != nil {
							errs <- fmt.Errorf("producer %d: %w", j, err)
							return
						}
					}
				}()
			}
			pw.Wait()
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			var dup []uint64
			for seq, n := range seen {
				if n != 1 {
					dup = append(dup, seq)
				}
			}
			sort.Slice(dup, func(i, j int) bool { return dup[i] < dup[j] })
			if len(seen) != producers*perProducer || len(dup) > 0 {
				t.Fatalf("%d of %d delivered; repeated: %v", len(seen), producers*perProducer, dup)
			}
		})
}

func init() { helpers["select-once"] = helperSelectOnce }

// helperSelectOnce takes a consumer role and receives (RING_PEEK=1: peeks)
// one message of RING_SELECT, then hangs.
func helperSelectOnce() int {
	r, _ := helperOpen()
	c, err := r.NewConsumer()
	if err != nil {
		return helperFail("new consumer", err)
	}
	sel := parseSelector(os.Getenv("RING_SELECT"))
	if os.Getenv("RING_PEEK") == "1" {
		_, err = c.TryPeekSelect(sel)
	} else {
		_, _, err = c.TryReceiveSelect(make([]byte, 64), sel)
	}
	if err != nil {
		return helperFail("receive", err)
	}
	return hang()
}

// TestSelectKilledAtEachStep: a selective consumer SIGKILLed at each step
// of taking a message, and then its recoverer SIGKILLed at each step of
// giving back what it owned: the next consumer gets every message not
// finished, once, flagged exactly when the dead one had named it, and the
// ring goes round again through the slot.
func TestSelectKilledAtEachStep(t *testing.T) {
	for _, tc := range []struct {
		step     string
		peek     bool
		gone     bool // the message was finished by the dead consumer
		flagged  bool
		recovery string // a recoverer's step to kill it at too, if any
	}{
		{step: "select:owned"},
		{step: "select:named", flagged: true},
		{step: "select:named", peek: true, flagged: true},
		{step: "select:finished", gone: true},
		{step: "select:named", flagged: true, recovery: "giveback:flagged"},
		{step: "select:named", flagged: true, recovery: "giveback:done"},
		{step: "select:finished", gone: true, recovery: "giveback:flagged"},
	} {
		name := fmt.Sprintf("%s/peek=%v/recovery=%s", tc.step, tc.peek, tc.recovery)
		t.Run(name, func(t *testing.T) {
			r := testRing(t, shm, selective(8, 1, 3))
			p, err := r.NewProducer()
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 6; i++ {
				p.TrySend(int64(1+i%2), seqPayload(i)) // types 1 2 1 2 1 2
			}
			env := helperEnv(r, "RING_SELECT=type:2")
			if tc.peek {
				env = append(env, "RING_PEEK=1")
			}
			if !parkAndKill(t, "select-once", tc.step, env...) {
				t.Fatalf("the consumer did not reach %s", tc.step)
			}
			if tc.recovery != "" && !parkAndKill(t, "take-consumer", tc.recovery, helperEnv(r)...) {
				t.Fatalf("the recoverer did not reach %s", tc.recovery)
			}
			c, err := r.NewConsumer()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
			defer cancel()
			got := map[uint64]bool{}
			for want := 6; ; want-- {
				if tc.gone && want == 1 || !tc.gone && want == 0 {
					break
				}
				m, err := c.PeekSelect(ctx, ipc.AnyType())
				if err != nil {
					t.Fatalf("after %d messages: %v (stats %+v)", len(got), err, r.Stats())
				}
				seq := binary.LittleEndian.Uint64(m.Data)
				if got[seq] {
					t.Fatalf("message %d twice", seq)
				}
				got[seq] = true
				if m.Redelivered != (tc.flagged && seq == 1) {
					t.Errorf("message %d: redelivered %v", seq, m.Redelivered)
				}
				c.Release()
			}
			if tc.gone && got[1] {
				t.Error("the message the dead consumer finished came again")
			}
			if _, err := c.TryPeekSelect(ipc.AnyType()); !errors.Is(err, ErrEmpty) {
				t.Fatalf("more than expected: %v", err)
			}
			// Round again: every slot, the dead one's too, takes messages.
			for i := 0; i < 8; i++ {
				if err := p.TrySend(3, seqPayload(100+i)); err != nil {
					t.Fatalf("send %d after recovery: %v", i, err)
				}
			}
			for i := 0; i < 8; i++ {
				if _, _, err := c.TryReceiveSelect(make([]byte, 64), ipc.OfType(3)); err != nil {
					t.Fatalf("receive %d after recovery: %v", i, err)
				}
			}
		})
	}
}

// TestSelectWakesEveryProducer: slots freed out of order may each free
// many producers: two producers asleep on a full ring whose other slot was
// freed first both go on once the slot at the tail is freed.
func TestSelectWakesEveryProducer(t *testing.T) {
	forMemories(t, &Options{Mode: MPMC, Selective: true, Slots: 2, MaxMessage: 8, MaxProducers: 3, MaxConsumers: 2,
		Wait: Waiting{Strategy: Block}}, func(t *testing.T, r *Ring) {
		var ps [3]*Producer
		for i := range ps {
			p, err := r.NewProducer()
			if err != nil {
				t.Fatal(err)
			}
			ps[i] = p
		}
		x, _ := r.NewConsumer()
		y, _ := r.NewConsumer()
		ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
		defer cancel()
		buf := make([]byte, 8)
		ps[0].Send(ctx, 1, []byte("one"))
		ps[0].Send(ctx, 2, []byte("two")) // full
		if _, _, err := y.ReceiveSelect(ctx, buf, ipc.OfType(2)); err != nil {
			t.Fatal(err) // the second slot, out of order: nobody sleeps yet
		}
		done := make(chan error, 2)
		for _, p := range ps[1:] {
			go func() { done <- p.Send(ctx, 3, []byte("x")) }()
		}
		for r.Stats().ProducerSleeps < 2 {
			time.Sleep(time.Millisecond)
		}
		if _, _, err := x.ReceiveSelect(ctx, buf, ipc.OfType(1)); err != nil {
			t.Fatal(err) // now both slots are free
		}
		for i := 0; i < 2; i++ {
			if err := <-done; err != nil {
				t.Fatalf("a producer did not go on: %v (stats %+v)", err, r.Stats())
			}
		}
	})
}

// selectiveReceiver is what a receive loop moving between a kernel queue
// and a ring needs: both have it.
type selectiveReceiver interface {
	ReceiveSelect(ctx context.Context, buf []byte, sel ipc.Selector) (int, int64, error)
}

var (
	_ selectiveReceiver = (*msgq.Queue)(nil)
	_ selectiveReceiver = (*Consumer)(nil)
)
