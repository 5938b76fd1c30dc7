package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmring/shmring/internal/ipctest"
	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/msgq"
	"github.com/shmring/shmring/ring"
	"github.com/shmring/shmring/segment"
	"github.com/shmring/shmring/semaphore"
)

var helpers = map[string]func() int{
	// ringctl runs ringctl itself with the arguments in RINGCTL_ARGS
	// (separated by spaces).
	"ringctl": func() int {
		return run(strings.Fields(os.Getenv("RINGCTL_ARGS")), os.Stdout, os.Stderr)
	},
	// producer takes the producer role of ring RING_SEG, sends RING_COUNT
	// messages, says ready, and waits to be killed.
	"producer": func() int {
		r, err := ring.OpenID(ipctest.GetenvInt("RING_SEG"), nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		p, err := r.NewProducer()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		for i := 0; i < ipctest.GetenvInt("RING_COUNT"); i++ {
			if err := p.TrySend(1, []byte("message")); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		fmt.Println("ready")
		time.Sleep(10 * ipctest.Deadline)
		return 3
	},
}

func TestMain(m *testing.M) { ipctest.Main(m, helpers) }

// ringctl runs ringctl in a process of its own and returns its output and
// exit status.
func ringctl(t *testing.T, args ...string) (string, int) {
	t.Helper()
	return runAs(t, ipctest.Command(t, "ringctl", "RINGCTL_ARGS="+strings.Join(args, " ")))
}

func runAs(t *testing.T, cmd *exec.Cmd) (string, int) {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout = &out
	err := cmd.Run()
	if cmd.ProcessState == nil {
		t.Fatalf("ringctl: %v", err)
	}
	return out.String(), cmd.ProcessState.ExitCode()
}

// entries parses -json output, one object a line.
func entries(t *testing.T, out string) []map[string]any {
	t.Helper()
	var es []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var e map[string]any
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("bad JSON line %q: %v", l, err)
		}
		es = append(es, e)
	}
	return es
}

func bySegment(es []map[string]any, id int) map[string]any {
	for _, e := range es {
		if int(e["segment_id"].(float64)) == id {
			return e
		}
	}
	return nil
}

// newRing creates a private ring, tracked for the leak check, and removed
// at the end unless the test removed it.
func newRing(t *testing.T, opts *ring.Options) *ring.Ring {
	t.Helper()
	r, err := ring.Create(ipc.Private, opts)
	if err != nil {
		t.Fatal(err)
	}
	seg, sem := r.SegmentID(), r.SemaphoreID()
	ipctest.Track(t, ipctest.Shm, seg)
	ipctest.Track(t, ipctest.Sem, sem)
	t.Cleanup(func() {
		r.Close()
		if s, err := segment.OpenID(seg); err == nil {
			s.Remove()
		}
		if s, err := semaphore.OpenID(sem); err == nil {
			s.Remove()
		}
	})
	return r
}

func startProducer(t *testing.T, r *ring.Ring, count int) *exec.Cmd {
	t.Helper()
	cmd := ipctest.Command(t, "producer", "RING_SEG="+strconv.Itoa(r.SegmentID()), "RING_COUNT="+strconv.Itoa(count))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if l, err := bufio.NewReader(out).ReadString('\n'); err != nil || l != "ready\n" {
		t.Fatalf("producer: %q, %v", l, err)
	}
	return cmd
}

func killWait(cmd *exec.Cmd) {
	cmd.Process.Kill()
	cmd.Wait()
}

// TestListStatAndGC: ringctl, a process of its own, sees a ring with a live
// producer as active and one whose producer was SIGKILLed as orphaned,
// field by field; gc removes the orphan and nothing else: not the active
// ring, not a segment that is not a ring, not a message queue, not an
// orphan that still holds messages (without -f).
func TestListStatAndGC(t *testing.T) {
	active := newRing(t, &ring.Options{Mode: ring.MPSC, Slots: 16, MaxMessage: 64, MaxProducers: 2})
	live := startProducer(t, active, 3)

	orphan := newRing(t, &ring.Options{Slots: 8, MaxMessage: 64})
	dead := startProducer(t, orphan, 0)
	deadPID := dead.Process.Pid
	killWait(dead)
	orphanID := orphan.SegmentID()
	orphan.Close() // nobody attached any more

	full := newRing(t, &ring.Options{Slots: 8, MaxMessage: 64})
	killWait(startProducer(t, full, 2))
	fullID := full.SegmentID()
	full.Close()

	plain, err := segment.Create(ipc.Private, 4096, nil)
	if err != nil {
		t.Fatal(err)
	}
	ipctest.Track(t, ipctest.Shm, plain.ID())
	defer plain.Remove()
	q, err := msgq.Create(ipc.Private, nil)
	if err != nil {
		t.Fatal(err)
	}
	ipctest.Track(t, ipctest.Msg, q.ID())
	defer q.Remove()

	out, code := ringctl(t, "ls", "-json")
	if code != exitOK {
		t.Fatalf("ls: exit %d", code)
	}
	es := entries(t, out)
	a := bySegment(es, active.SegmentID())
	if a == nil {
		t.Fatalf("active ring not listed: %s", out)
	}
	ps := a["producers"].([]any)
	if a["state"] != "active" || a["mode"] != "mpsc" || a["slots"] != 16.0 || a["max_message"] != 64.0 ||
		a["depth"] != 3.0 || a["key"] != "0x00000000" || int(a["semaphore_id"].(float64)) != active.SemaphoreID() ||
		a["version"] != 2.0 || a["instance_id"] != active.InstanceID().String() || a["perm"] != "600" ||
		int(a["creator_pid"].(float64)) != os.Getpid() || len(ps) != 1 {
		t.Errorf("active ring: %v", a)
	} else if p := ps[0].(map[string]any); int(p["pid"].(float64)) != live.Process.Pid || p["alive"] != true || p["messages"] != 3.0 {
		t.Errorf("active ring's producer: %v", p)
	}
	o := bySegment(es, orphanID)
	if o == nil || o["state"] != "orphaned" || len(o["producers"].([]any)) != 1 {
		t.Fatalf("orphan: %v", o)
	}
	if p := o["producers"].([]any)[0].(map[string]any); int(p["pid"].(float64)) != deadPID || p["alive"] != false {
		t.Errorf("orphan's dead producer: %v", p)
	}
	if bySegment(es, plain.ID()) != nil {
		t.Errorf("a plain segment is listed without -a")
	}
	out, _ = ringctl(t, "ls", "-a", "-json")
	if e := bySegment(entries(t, out), plain.ID()); e == nil || e["state"] != "not-a-ring" {
		t.Errorf("ls -a: plain segment %v", e)
	}

	out, code = ringctl(t, "stat", "-json", strconv.Itoa(active.SegmentID()))
	st := entries(t, out)
	if code != exitOK || len(st) != 1 {
		t.Fatalf("stat: exit %d, %s", code, out)
	}
	s := st[0]["stats"].(map[string]any)
	if s["sent"] != 3.0 || s["received"] != 0.0 || s["producers"] != 1.0 || s["capacity"] != 16.0 ||
		s["sent_bytes"] != 21.0 || st[0]["max_producers"] != 2.0 {
		t.Errorf("stat: %v", st[0])
	}
	if _, code := ringctl(t, "stat", "999999999"); code != exitNoMatches {
		t.Errorf("stat of no ring: exit %d, want %d", code, exitNoMatches)
	}

	// gc without -y only lists.
	// gc is told which rings to consider, so that it leaves alone the rings
	// other tests of the module make meanwhile.
	mine := []string{strconv.Itoa(orphanID), strconv.Itoa(active.SegmentID()), strconv.Itoa(plain.ID()), strconv.Itoa(fullID)}
	out, code = ringctl(t, append([]string{"gc", "-json"}, mine...)...)
	if code != exitOK {
		t.Fatalf("gc: exit %d", code)
	}
	listed := entries(t, out)
	if e := bySegment(listed, orphanID); e == nil || e["removed"] != false {
		t.Errorf("gc lists %v", listed)
	}
	if bySegment(listed, active.SegmentID()) != nil {
		t.Errorf("gc lists the active ring")
	}
	if !ipctest.Exists(ipctest.Shm, orphanID) {
		t.Fatal("gc without -y removed something")
	}
	out, code = ringctl(t, append([]string{"gc", "-y", "-json"}, mine...)...)
	if code != exitOK {
		t.Fatalf("gc -y: exit %d: %s", code, out)
	}
	if ipctest.Exists(ipctest.Shm, orphanID) {
		t.Errorf("gc -y left the orphan")
	}
	if e := bySegment(entries(t, out), fullID); e == nil || e["removed"] != false || !strings.Contains(e["reason"].(string), "holds 2 messages") {
		t.Errorf("gc -y and the orphan with messages: %v", e)
	}
	for _, o := range []struct {
		kind ipctest.Kind
		id   int
	}{{ipctest.Shm, active.SegmentID()}, {ipctest.Sem, active.SemaphoreID()}, {ipctest.Shm, plain.ID()}, {ipctest.Msg, q.ID()}, {ipctest.Shm, fullID}} {
		if !ipctest.Exists(o.kind, o.id) {
			t.Errorf("gc removed %s %d", o.kind, o.id)
		}
	}
	if _, code := ringctl(t, append([]string{"gc", "-y", "-f"}, mine...)...); code != exitOK || ipctest.Exists(ipctest.Shm, fullID) {
		t.Errorf("gc -y -f: exit %d, orphan with messages still there: %v", code, ipctest.Exists(ipctest.Shm, fullID))
	}
	if !ipctest.Exists(ipctest.Shm, active.SegmentID()) {
		t.Errorf("gc -y -f removed the active ring")
	}
}

// TestBroken: ipcrm -m of a ring's segment leaves its semaphore set, which
// ls shows as a broken ring and gc removes; removing the set of a ring
// leaves a segment that ls shows broken too.
func TestBroken(t *testing.T) {
	r := newRing(t, &ring.Options{Slots: 8, MaxMessage: 64})
	segID, semID := r.SegmentID(), r.SemaphoreID()
	r.Close()
	s, err := segment.OpenID(segID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(); err != nil { // ipcrm -m
		t.Fatal(err)
	}
	out, _ := ringctl(t, "ls", "-json")
	var found map[string]any
	for _, e := range entries(t, out) {
		if int(e["semaphore_id"].(float64)) == semID {
			found = e
		}
	}
	if found == nil || found["state"] != "broken" || found["segment_id"] != -1.0 {
		t.Fatalf("set without its segment: %v in %s", found, out)
	}
	if out, code := ringctl(t, "gc", "-y", "sem:"+strconv.Itoa(semID)); code != exitOK || ipctest.Exists(ipctest.Sem, semID) {
		t.Errorf("gc -y: exit %d, set still there %v: %s", code, ipctest.Exists(ipctest.Sem, semID), out)
	}

	r2 := newRing(t, &ring.Options{Slots: 8, MaxMessage: 64})
	seg2, sem2 := r2.SegmentID(), r2.SemaphoreID()
	r2.Close()
	set, err := semaphore.OpenID(sem2)
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Remove(); err != nil { // ipcrm -s
		t.Fatal(err)
	}
	out, _ = ringctl(t, "ls", "-json")
	if e := bySegment(entries(t, out), seg2); e == nil || e["state"] != "broken" {
		t.Fatalf("segment without its set: %v", e)
	}
	if _, code := ringctl(t, "gc", "-y", strconv.Itoa(seg2)); code != exitOK || ipctest.Exists(ipctest.Shm, seg2) {
		t.Errorf("gc -y: exit %d, segment still there", code)
	}
}

// TestRemove: rm refuses a segment that is not a ring and a ring with a
// live holder (without -f), removes rings by id and by key, and says when
// nothing matched.
func TestRemove(t *testing.T) {
	plain, err := segment.Create(ipc.Private, 4096, nil)
	if err != nil {
		t.Fatal(err)
	}
	ipctest.Track(t, ipctest.Shm, plain.ID())
	defer plain.Remove()
	if out, code := ringctl(t, "rm", strconv.Itoa(plain.ID())); code != exitError || !strings.Contains(out, "not a ring") {
		t.Errorf("rm of a plain segment: exit %d: %s", code, out)
	}
	if !ipctest.Exists(ipctest.Shm, plain.ID()) {
		t.Fatal("rm removed a plain segment")
	}

	r := newRing(t, &ring.Options{Slots: 8, MaxMessage: 64})
	startProducer(t, r, 0)
	if _, code := ringctl(t, "rm", strconv.Itoa(r.SegmentID())); code != exitError || !ipctest.Exists(ipctest.Shm, r.SegmentID()) {
		t.Errorf("rm of an active ring without -f: exit %d", code)
	}
	if out, code := ringctl(t, "rm", "-f", "-json", strconv.Itoa(r.SegmentID())); code != exitOK || ipctest.Exists(ipctest.Sem, r.SemaphoreID()) {
		t.Errorf("rm -f: exit %d: %s", code, out)
	}

	key := ipc.Key(0x5200_0000 | int32(os.Getpid()&0xffff))
	k, err := ring.Create(key, &ring.Options{Slots: 8, MaxMessage: 64, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	kseg, ksem := k.SegmentID(), k.SemaphoreID()
	ipctest.Track(t, ipctest.Shm, kseg)
	ipctest.Track(t, ipctest.Sem, ksem)
	defer ring.RemoveKey(key)
	k.Close()
	if out, code := ringctl(t, "rm", fmt.Sprintf("0x%08x", uint32(key))); code != exitOK || ipctest.Exists(ipctest.Shm, kseg) || ipctest.Exists(ipctest.Sem, ksem) {
		t.Errorf("rm by key: exit %d: %s", code, out)
	}
	if _, code := ringctl(t, "rm", "key:"+strconv.Itoa(int(key))); code != exitNoMatches {
		t.Errorf("rm of a removed key: exit %d, want %d", code, exitNoMatches)
	}
}

// TestWatch: watch's counter deltas add up to the messages sent while it
// ran, whatever its timing.
func TestWatch(t *testing.T) {
	r := newRing(t, &ring.Options{Slots: 1024, MaxMessage: 64})
	p, err := r.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		if err := p.TrySend(1, []byte("12345678")); err != nil {
			t.Fatal(err)
		}
	}
	cmd := ipctest.Command(t, "ringctl", "RINGCTL_ARGS=watch -json -count 3 -interval 200ms "+strconv.Itoa(r.SegmentID()))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer killWait(cmd)
	lines := bufio.NewScanner(out)
	var rows []map[string]any
	read := func() {
		if !lines.Scan() {
			t.Fatalf("watch ended early: %v", lines.Err())
		}
		rows = append(rows, entries(t, lines.Text())...)
	}
	read()
	for i := 0; i < 200; i++ {
		if err := p.TrySend(1, []byte("12345678")); err != nil {
			t.Fatal(err)
		}
	}
	read()
	read()
	ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
	defer cancel()
	go func() { <-ctx.Done(); cmd.Process.Kill() }()
	io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("watch: %v", err)
	}
	var deltas float64
	for _, row := range rows {
		deltas += row["sent_delta"].(float64)
	}
	first, last := rows[0], rows[len(rows)-1]
	base := first["stats"].(map[string]any)["sent"].(float64) - first["sent_delta"].(float64)
	if base != 300 || last["stats"].(map[string]any)["sent"] != 500.0 || deltas != 200 || last["depth"] != 500.0 {
		t.Errorf("watch: base %v, deltas %v, rows %v", base, deltas, rows)
	}
}

// TestOtherUserObserves: another uid lists and stats a 0644 ring, cannot
// remove it, and writes nothing to it.
func TestOtherUserObserves(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run ringctl under another uid")
	}
	r, err := ring.Create(ipc.Private, &ring.Options{Slots: 8, MaxMessage: 64, Perm: 0o644})
	if err != nil {
		t.Fatal(err)
	}
	ipctest.Track(t, ipctest.Shm, r.SegmentID())
	ipctest.Track(t, ipctest.Sem, r.SemaphoreID())
	defer r.Remove()
	p, err := r.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	p.TrySend(1, []byte("hello"))
	seg, _ := segment.OpenID(r.SegmentID())
	m, err := seg.Attach(true)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Detach()
	before := append([]byte(nil), m.Bytes()...)
	id := strconv.Itoa(r.SegmentID())
	out, code := runAs(t, ipctest.CommandAs(t, "ringctl", "RINGCTL_ARGS=stat -json "+id))
	if code != exitOK {
		t.Fatalf("stat as another user: exit %d: %s", code, out)
	}
	if e := entries(t, out)[0]; e["state"] != "active" || e["stats"].(map[string]any)["sent"] != 1.0 {
		t.Errorf("stat as another user: %v", e)
	}
	if _, code := runAs(t, ipctest.CommandAs(t, "ringctl", "RINGCTL_ARGS=rm -f "+id)); code != exitError {
		t.Errorf("rm as another user: exit %d, want %d", code, exitError)
	}
	if !ipctest.Exists(ipctest.Shm, r.SegmentID()) || !ipctest.Exists(ipctest.Sem, r.SemaphoreID()) {
		t.Fatal("another user removed the ring")
	}
	if !bytes.Equal(before, m.Bytes()) {
		t.Error("the observer changed the segment")
	}
}

// TestUsage: bad commands and flags exit 2; -h exits 0.
func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{nil, exitUsage}, {[]string{"frob"}, exitUsage}, {[]string{"stat"}, exitUsage},
		{[]string{"ls", "-bogus"}, exitUsage}, {[]string{"rm", "0xzz"}, exitUsage}, {[]string{"gc", "0xzz"}, exitUsage}, {[]string{"ls", "12"}, exitUsage}, {[]string{"watch", "-count", "-1"}, exitUsage},
		{[]string{"-h"}, exitOK}, {[]string{"gc", "-h"}, exitOK},
	} {
		var out, errs bytes.Buffer
		if code := run(tc.args, &out, &errs); code != tc.code {
			t.Errorf("ringctl %v: exit %d, want %d (%s)", tc.args, code, tc.code, errs.String())
		}
	}
}

// TestOtherVersion: a ring of another layout version is listed with its
// version, never read, and can be removed.
func TestOtherVersion(t *testing.T) {
	s, err := segment.Create(ipc.Private, 8192, nil)
	if err != nil {
		t.Fatal(err)
	}
	ipctest.Track(t, ipctest.Shm, s.ID())
	defer s.Remove()
	m, err := s.Attach(false)
	if err != nil {
		t.Fatal(err)
	}
	copy(m.Bytes(), "SHMRING\x00")
	m.Bytes()[8] = 7 // layout version 7
	m.Detach()
	out, code := ringctl(t, "ls", "-json")
	e := bySegment(entries(t, out), s.ID())
	if code != exitOK || e == nil || e["state"] != "other-version" || e["version"] != 7.0 || e["mode"] != nil {
		t.Fatalf("ls: exit %d, %v", code, e)
	}
	if out, code := ringctl(t, "rm", strconv.Itoa(s.ID())); code != exitOK || ipctest.Exists(ipctest.Shm, s.ID()) {
		t.Errorf("rm: exit %d: %s", code, out)
	}
}

// TestMonitorsAndCreation: a read-only observer (watch, an exporter) does
// not keep an orphan from being orphaned; a ring still being made by a
// live process is "creating", kept by gc and by rm without -f.
func TestMonitorsAndCreation(t *testing.T) {
	orphan := newRing(t, &ring.Options{Slots: 8, MaxMessage: 64})
	id := orphan.SegmentID()
	orphan.Close()
	watcher, err := ring.OpenID(id, &ring.OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	out, _ := ringctl(t, "ls", "-json")
	if e := bySegment(entries(t, out), id); e == nil || e["state"] != "orphaned" || e["readers"] != 1.0 || e["attached"] != 0.0 {
		t.Errorf("orphan with a read-only observer: %v", e)
	}

	s, err := segment.Create(ipc.Private, 8192, nil)
	if err != nil {
		t.Fatal(err)
	}
	ipctest.Track(t, ipctest.Shm, s.ID())
	defer s.Remove()
	m, err := s.Attach(false)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Detach()
	copy(m.Bytes(), "SHMRING\x00")
	m.Bytes()[8] = 2 // this layout's version, header not yet published: this process is making it
	out, _ = ringctl(t, "ls", "-json")
	if e := bySegment(entries(t, out), s.ID()); e == nil || e["state"] != "creating" {
		t.Fatalf("ring being made: %v", e)
	}
	if _, code := ringctl(t, "rm", strconv.Itoa(s.ID())); code != exitError || !ipctest.Exists(ipctest.Shm, s.ID()) {
		t.Errorf("rm of a ring being made: exit %d", code)
	}
	ringctl(t, "gc", "-y", "-f", strconv.Itoa(s.ID()))
	if !ipctest.Exists(ipctest.Shm, s.ID()) {
		t.Error("gc removed a ring being made")
	}
}

// TestFanoutSubscribers: stat shows each subscription of a fan-out ring,
// with its name's hash, its position and its lag, live or closed.
func TestFanoutSubscribers(t *testing.T) {
	r := newRing(t, &ring.Options{Mode: ring.SPMC, Fanout: true, Slots: 16, MaxMessage: 64})
	durable, err := r.NewSubscriber(&ring.SubscribeOptions{Name: "audit"})
	if err != nil {
		t.Fatal(err)
	}
	anon, err := r.NewSubscriber(nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := p.TrySend(1, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 64)
	for i := 0; i < 2; i++ {
		if _, _, err := durable.TryReceive(buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := durable.Close(); err != nil {
		t.Fatal(err)
	}
	out, code := ringctl(t, "stat", "-json", strconv.Itoa(r.SegmentID()))
	if code != 0 {
		t.Fatalf("stat: status %d: %s", code, out)
	}
	e := entries(t, out)[0]
	if e["fanout_policy"] != ring.PolicyBlock.String() {
		t.Fatalf("fanout_policy %v", e["fanout_policy"])
	}
	subs, _ := e["subscribers"].([]any)
	if len(subs) != 2 {
		t.Fatalf("subscribers %v", e["subscribers"])
	}
	got := map[string]map[string]any{}
	for _, s := range subs {
		m := s.(map[string]any)
		name, _ := m["name_hash"].(string)
		got[name] = m
	}
	audit := got[fmt.Sprintf("%016x", ring.NameHash("audit"))]
	switch {
	case audit == nil:
		t.Fatalf("no subscription named audit: %v", subs)
	case audit["closed"] != true || audit["position"].(float64) != 2 || audit["lag"].(float64) != 3:
		t.Fatalf("audit: %v", audit)
	case got[""] == nil || got[""]["alive"] != true || got[""]["lag"].(float64) != 5:
		t.Fatalf("anonymous: %v", got[""])
	}
	if out, code := ringctl(t, "stat", strconv.Itoa(r.SegmentID())); code != 0 || !strings.Contains(out, "subscriber") || !strings.Contains(out, "closed") {
		t.Fatalf("stat text: status %d:\n%s", code, out)
	}
	if err := anon.Close(); err != nil {
		t.Fatal(err)
	}
}
