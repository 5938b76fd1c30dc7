package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/ring"
	"github.com/shmring/shmring/segment"
)

// States of a ring, as ls prints them.
const (
	stateActive   = "active"   // a live process holds a role
	stateIdle     = "idle"     // no live holder, but another process has the segment attached
	stateOrphaned = "orphaned" // no live holder and nobody attached
	stateBroken   = "broken"   // half of it is missing: a segment without its set, or a set without its segment
	stateVersion  = "other-version"
	stateCorrupt  = "corrupt"    // the header or its set fails validation
	stateCreating = "creating"   // a ring's magic, its header not published yet, its creator alive
	stateNotRing  = "not-a-ring" // listed with -a only
	stateNoAccess = "no-access"  // the caller may not read it; listed with -a only
)

// holderJSON is one role holder.
type holderJSON struct {
	Role     string    `json:"role"`
	Line     int       `json:"line"`
	PID      int       `json:"pid"`
	Alive    bool      `json:"alive"`
	Since    time.Time `json:"since"`
	Messages uint64    `json:"messages"`
	Bytes    uint64    `json:"bytes"`
}

// subscriberJSON is one subscription of a fan-out ring.
type subscriberJSON struct {
	Line     int    `json:"line"`
	Name     string `json:"name_hash,omitempty"` // ring.NameHash of its name, in hex; empty: anonymous
	PID      int    `json:"pid"`
	Alive    bool   `json:"alive"`
	Closed   bool   `json:"closed"` // closed, kept for its name
	Position uint64 `json:"position"`
	Lag      uint64 `json:"lag"`
	Received uint64 `json:"received"`
	Lost     uint64 `json:"lost"`
	Evicted  bool   `json:"evicted"`
}

// entry is one ring (or, with -a, one segment that is not a ring), as ls,
// stat and gc see it. Its JSON names are ringctl's stable output.
type entry struct {
	Key         string           `json:"key"`          // as ipcs prints it: 0x%08x
	SegmentID   int              `json:"segment_id"`   // -1: the segment is gone
	SemaphoreID int              `json:"semaphore_id"` // -1: the set is gone or unknown
	State       string           `json:"state"`
	Note        string           `json:"note,omitempty"` // why the state, for broken, corrupt and the rest
	Version     uint32           `json:"version,omitempty"`
	InstanceID  string           `json:"instance_id,omitempty"`
	Mode        string           `json:"mode,omitempty"`
	Slots       int              `json:"slots,omitempty"`
	SlotSize    int              `json:"slot_size"`
	MaxMessage  int              `json:"max_message,omitempty"`
	Depth       int              `json:"depth"`
	Producers   []holderJSON     `json:"producers"`
	Consumers   []holderJSON     `json:"consumers"`
	Policy      string           `json:"fanout_policy,omitempty"` // a fan-out ring's slow-subscriber policy; empty: not fan-out
	Subscribers []subscriberJSON `json:"subscribers,omitempty"`   // a fan-out ring's subscriptions
	OwnerUID    uint32           `json:"owner_uid"`
	CreatorUID  uint32           `json:"creator_uid"`
	Perm        string           `json:"perm"`     // octal, as ipcs prints it
	Attached    int              `json:"attached"` // attaches but read-only ones (monitors such as ringctl watch)
	Readers     int              `json:"readers"`  // read-only attaches this process could see in /proc
	CreatorPID  int              `json:"creator_pid,omitempty"`
	Created     time.Time        `json:"created"`
	AgeSeconds  float64          `json:"age_seconds"`

	stats ring.Stats
	hdr   ring.Header
	live  int // live holders
}

func keyString(k ipc.Key) string { return fmt.Sprintf("0x%08x", uint32(k)) }

// inventory lists the rings of the host: every segment the caller may see
// that has a ring's header, and every ring semaphore set whose segment is
// gone. With all, segments that are not rings (or cannot be read) too.
func inventory(all bool) ([]entry, error) {
	recs, err := segment.List()
	if err != nil {
		return nil, err
	}
	readers := readOnlyAttaches()
	var out []entry
	for _, rec := range recs {
		e := inspect(rec, readers[rec.ID])
		if !all && (e.State == stateNotRing || e.State == stateNoAccess) {
			continue
		}
		out = append(out, e)
	}
	stale, err := ring.StaleSets()
	if err != nil {
		return nil, err
	}
	for _, s := range stale {
		out = append(out, entry{Key: keyString(s.Key), SegmentID: -1, SemaphoreID: s.ID, State: stateBroken,
			Note:     fmt.Sprintf("semaphore set of a ring whose segment %d is gone", s.Segment),
			OwnerUID: s.Owner.UID, CreatorUID: s.Owner.CUID, Perm: fmt.Sprintf("%03o", uint32(s.Owner.Mode.Perm())),
			Created: s.Changed, AgeSeconds: time.Since(s.Changed).Seconds(),
			Producers: []holderJSON{}, Consumers: []holderJSON{}})
	}
	return out, nil
}

// inspect looks at one segment, read-only. readers is how many of its
// attaches are read-only, as /proc shows them.
func inspect(rec ipc.ShmRecord, readers int) entry {
	e := entry{Key: keyString(rec.Key), SegmentID: rec.ID, SemaphoreID: -1,
		OwnerUID: rec.UID, CreatorUID: rec.CUID, Perm: fmt.Sprintf("%03o", uint32(rec.Mode.Perm())),
		Attached: max(int(rec.Attached)-readers, 0), Readers: readers, CreatorPID: rec.CreatorPID, Created: rec.ChangeTime,
		Producers: []holderJSON{}, Consumers: []holderJSON{}}
	// No waiting for a header being written: a monitor looks once (every
	// all-zero segment would otherwise cost the wait).
	r, err := ring.OpenID(rec.ID, &ring.OpenOptions{ReadOnly: true, ReadyTimeout: time.Nanosecond})
	if err != nil {
		e.Note = err.Error()
		switch {
		case errors.Is(err, ring.ErrNotRing):
			e.State = stateNotRing
		case errors.Is(err, fs.ErrPermission):
			e.State = stateNoAccess
		case errors.Is(err, ring.ErrVersion):
			e.State = stateVersion
			e.Version = versionOf(rec.ID)
		case errors.Is(err, ring.ErrRemoved):
			e.State = stateBroken
		case errors.Is(err, ring.ErrNotReady):
			e.State = stateCreating
			if p, err := ipc.FindProcess(rec.CreatorPID); err != nil || !p.Alive() {
				e.State = stateBroken // its creator died making it
			}
		default:
			e.State = stateCorrupt
		}
		e.AgeSeconds = time.Since(e.Created).Seconds()
		return e
	}
	defer r.Close()
	e.hdr, e.stats = r.Header(), r.Stats()
	e.SemaphoreID = e.hdr.SemaphoreID
	e.Version, e.InstanceID, e.Mode = e.hdr.Version, e.hdr.InstanceID.String(), e.hdr.Mode.String()
	e.Slots, e.SlotSize, e.MaxMessage, e.Depth = e.hdr.Slots, e.hdr.SlotSize, e.hdr.MaxMessage, e.stats.Depth
	e.CreatorPID, e.Created = e.hdr.Creator.PID, e.hdr.Created
	e.AgeSeconds = time.Since(e.Created).Seconds()
	holders, err := r.Holders()
	if err != nil {
		e.State, e.Note = stateBroken, err.Error()
		return e
	}
	for _, h := range holders {
		j := holderJSON{Role: h.Role, Line: h.Line, PID: h.PID, Alive: h.Alive, Since: h.Since, Messages: h.Messages, Bytes: h.Bytes}
		if h.Alive {
			e.live++
		}
		if h.Role == "producer" {
			e.Producers = append(e.Producers, j)
		} else {
			e.Consumers = append(e.Consumers, j)
		}
	}
	if r.Fanout() {
		e.Policy = r.Policy().String()
		for _, sub := range r.Subscribers(nil) {
			j := subscriberJSON{Line: sub.Line, PID: sub.PID, Alive: sub.Live, Closed: sub.Closed,
				Position: sub.Position, Lag: sub.Lag, Received: sub.Received, Lost: sub.Lost, Evicted: sub.Evicted}
			if sub.NameHash != 0 {
				j.Name = fmt.Sprintf("%016x", sub.NameHash)
			}
			e.Subscribers = append(e.Subscribers, j)
		}
	}
	switch {
	case e.live > 0:
		e.State = stateActive
	case e.Attached > 0:
		e.State = stateIdle
	default:
		e.State = stateOrphaned
	}
	return e
}

// versionOf reads the layout version of a ring segment of another version:
// the word at offset 8, which every version keeps there.
func versionOf(id int) uint32 {
	seg, err := segment.OpenID(id)
	if err != nil {
		return 0
	}
	m, err := seg.Attach(true)
	if err != nil {
		return 0
	}
	defer m.Detach()
	b := m.Bytes()
	if len(b) < 12 {
		return 0
	}
	return uint32(b[8]) | uint32(b[9])<<8 | uint32(b[10])<<16 | uint32(b[11])<<24
}

// target is a ring named on the command line.
type target struct {
	key   ipc.Key
	byKey bool
	bySem bool // id is a semaphore set's
	id    int
}

// parseTarget reads KEY or ID: a key in hex with 0x (as ipcs prints it),
// or in decimal after "key:"; a plain decimal number is a segment id, one
// after "sem:" a semaphore set's (for a ring whose segment is gone).
func parseTarget(s string) (target, error) {
	switch {
	case strings.HasPrefix(s, "sem:"):
		v, err := strconv.Atoi(s[4:])
		if err != nil || v < 0 {
			return target{}, fmt.Errorf("bad semaphore set id %q", s)
		}
		return target{id: v, bySem: true}, nil
	case strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X"):
		v, err := strconv.ParseUint(s[2:], 16, 32)
		if err != nil {
			return target{}, fmt.Errorf("bad key %q: %v", s, err)
		}
		return target{key: ipc.Key(int32(uint32(v))), byKey: true}, nil
	case strings.HasPrefix(s, "key:"):
		v, err := strconv.ParseInt(s[4:], 10, 64)
		if err != nil || v < -1<<31 || v > 1<<32-1 {
			return target{}, fmt.Errorf("bad key %q", s)
		}
		return target{key: ipc.Key(int32(uint32(v))), byKey: true}, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return target{}, fmt.Errorf("%q is neither a key (0x... or key:N) nor a segment id", s)
	}
	return target{id: v}, nil
}

// matches reports whether e is the ring t names.
func (t target) matches(e entry) bool {
	switch {
	case t.byKey:
		return t.key != ipc.Private && e.Key == keyString(t.key)
	case t.bySem:
		return e.SemaphoreID == t.id
	}
	return e.SegmentID == t.id
}

// find returns the entries of the inventory that t names.
func find(inv []entry, t target) []entry {
	var out []entry
	for _, e := range inv {
		if t.matches(e) {
			out = append(out, e)
		}
	}
	return out
}

func callerUID() uint32 { return uint32(os.Geteuid()) }

// readOnlyAttaches counts, per segment id, the read-only attaches
// (monitors) that the mappings in /proc/*/maps show: a SysV segment maps
// as /SYSV<key> with the segment id as its inode. Processes whose maps
// this one may not read are not counted, so their attaches count as
// users: a ring is never taken for more abandoned than it is.
func readOnlyAttaches() map[int]int {
	out := map[int]int{}
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, d := range dirs {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/maps")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 6 || !strings.HasPrefix(f[5], "/SYSV") || f[1] != "r--s" {
				continue
			}
			if id, err := strconv.Atoi(f[4]); err == nil {
				out[id]++
			}
		}
	}
	return out
}
