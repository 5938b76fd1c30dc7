package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shmring/shmring/ring"
	"github.com/shmring/shmring/segment"
)

// durationFlag is a time.Duration flag that remembers whether it was set.
type durationFlag struct {
	d   time.Duration
	set bool
}

func (f *durationFlag) String() string { return f.d.String() }
func (f *durationFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	if d < 0 {
		return fmt.Errorf("negative duration %v", d)
	}
	f.d, f.set = d, true
	return nil
}

func printJSON(w io.Writer, v any) {
	b, _ := json.Marshal(v)
	fmt.Fprintf(w, "%s\n", b)
}

// holdersText is "pid(live) pid(dead)" for a side.
func holdersText(hs []holderJSON) string {
	if len(hs) == 0 {
		return "-"
	}
	var parts []string
	for _, h := range hs {
		s := "live"
		if !h.Alive {
			s = "dead"
		}
		parts = append(parts, fmt.Sprintf("%d(%s)", h.PID, s))
	}
	return strings.Join(parts, ",")
}

func age(sec float64) string {
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return d.Round(time.Minute).String()
	default:
		return d.Round(time.Hour).String()
	}
}

func runList(o *options) int {
	inv, err := inventory(o.all)
	if err != nil {
		fmt.Fprintf(o.errs, "ringctl ls: %v\n", err)
		return exitError
	}
	if o.json {
		for _, e := range inv {
			printJSON(o.out, e)
		}
	} else {
		tw := tabwriter.NewWriter(o.out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "KEY\tSHMID\tSEMID\tMODE\tSLOTS\tMSG\tDEPTH\tPRODUCERS\tCONSUMERS\tOWNER\tPERM\tAGE\tSTATE")
		for _, e := range inv {
			mode, slots, msg := e.Mode, fmt.Sprint(e.Slots), fmt.Sprint(e.MaxMessage)
			if mode == "" {
				mode, slots, msg = "-", "-", "-"
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%s\t%s\t%s\n", e.Key, e.SegmentID, e.SemaphoreID,
				mode, slots, msg, e.Depth, holdersText(e.Producers), holdersText(e.Consumers), e.OwnerUID, e.Perm, age(e.AgeSeconds), e.State)
		}
		tw.Flush()
	}
	if len(inv) == 0 {
		return exitNoMatches
	}
	return exitOK
}

// statJSON is stat's output: the entry, with the header's and Stats' fields.
type statJSON struct {
	entry
	CreatorStart uint64    `json:"creator_start"`
	MaxProducers int       `json:"max_producers"`
	MaxConsumers int       `json:"max_consumers"`
	Stats        statsJSON `json:"stats"`
}

// statsJSON is ring.Stats with stable names.
type statsJSON struct {
	Capacity       int    `json:"capacity"`
	Sent           uint64 `json:"sent"`
	Received       uint64 `json:"received"`
	Depth          int    `json:"depth"`
	SentBytes      uint64 `json:"sent_bytes"`
	ReceivedBytes  uint64 `json:"received_bytes"`
	Producers      int    `json:"producers"`
	Consumers      int    `json:"consumers"`
	DeadProducers  int    `json:"dead_producers"`
	DeadConsumers  int    `json:"dead_consumers"`
	ConsumerSleeps uint64 `json:"consumer_sleeps"`
	ProducerSleeps uint64 `json:"producer_sleeps"`
	Wakeups        uint64 `json:"wakeups"`
	Recovered      uint64 `json:"recovered"`
	Redelivered    uint64 `json:"redelivered"`
	Reaped         uint64 `json:"reaped"`
}

func statsOf(s ring.Stats) statsJSON {
	return statsJSON{Capacity: s.Capacity, Sent: s.Sent, Received: s.Received, Depth: s.Depth,
		SentBytes: s.SentBytes, ReceivedBytes: s.ReceivedBytes, Producers: s.Producers, Consumers: s.Consumers,
		DeadProducers: s.DeadProducers, DeadConsumers: s.DeadConsumers, ConsumerSleeps: s.ConsumerSleeps,
		ProducerSleeps: s.ProducerSleeps, Wakeups: s.Wakeups, Recovered: s.Recovered, Redelivered: s.Redelivered, Reaped: s.Reaped}
}

// pick returns the entries the targets name, reporting those that match
// nothing; ok is false if one matched nothing.
func pick(o *options, cmd string, all bool) ([]entry, bool, error) {
	inv, err := inventory(all)
	if err != nil {
		return nil, false, err
	}
	if len(o.targets) == 0 {
		return inv, true, nil
	}
	var out []entry
	ok := true
	picked := map[string]bool{}
	for _, t := range o.targets {
		var m []entry
		for _, e := range find(inv, t) {
			if k := fmt.Sprint(e.SegmentID, "/", e.SemaphoreID); !picked[k] {
				picked[k] = true
				m = append(m, e)
			}
		}
		if len(m) == 0 && len(find(inv, t)) == 0 {
			fmt.Fprintf(o.errs, "ringctl %s: %s: no such ring\n", cmd, t)
			ok = false
		}
		out = append(out, m...)
	}
	return out, ok, nil
}

func (t target) String() string {
	switch {
	case t.byKey:
		return "key " + keyString(t.key)
	case t.bySem:
		return fmt.Sprintf("semaphore set %d", t.id)
	}
	return fmt.Sprintf("segment %d", t.id)
}

func runStat(o *options) int {
	es, ok, err := pick(o, "stat", true)
	if err != nil {
		fmt.Fprintf(o.errs, "ringctl stat: %v\n", err)
		return exitError
	}
	for _, e := range es {
		s := statJSON{entry: e, CreatorStart: e.hdr.Creator.Start, MaxProducers: e.hdr.MaxProducers,
			MaxConsumers: e.hdr.MaxConsumers, Stats: statsOf(e.stats)}
		if o.json {
			printJSON(o.out, s)
			continue
		}
		tw := tabwriter.NewWriter(o.out, 0, 0, 2, ' ', 0)
		row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
		row("key", e.Key)
		row("segment id", e.SegmentID)
		row("semaphore id", e.SemaphoreID)
		row("state", e.State)
		if e.Note != "" {
			row("note", e.Note)
		}
		if e.Mode != "" {
			row("layout version", e.Version)
			row("instance", e.InstanceID)
			row("mode", e.Mode)
			row("slots", e.Slots)
			row("slot size", e.SlotSize)
			row("max message", e.MaxMessage)
			row("role lines", fmt.Sprintf("%d producer, %d consumer", s.MaxProducers, s.MaxConsumers))
			row("creator", fmt.Sprintf("pid %d (start %d)", e.CreatorPID, s.CreatorStart))
			row("created", fmt.Sprintf("%s (%s ago)", e.Created.Format(time.RFC3339), age(e.AgeSeconds)))
		}
		row("owner", fmt.Sprintf("uid %d (creator uid %d), perm %s", e.OwnerUID, e.CreatorUID, e.Perm))
		row("attached", e.Attached)
		if e.Mode != "" {
			st := s.Stats
			row("sent", fmt.Sprintf("%d messages, %d bytes", st.Sent, st.SentBytes))
			row("received", fmt.Sprintf("%d messages, %d bytes", st.Received, st.ReceivedBytes))
			row("depth", fmt.Sprintf("%d of %d", st.Depth, st.Capacity))
			row("sleeps", fmt.Sprintf("%d consumer, %d producer; %d wake-ups", st.ConsumerSleeps, st.ProducerSleeps, st.Wakeups))
			row("recovery", fmt.Sprintf("%d skipped, %d redelivered, %d lines reaped", st.Recovered, st.Redelivered, st.Reaped))
			for _, h := range append(append([]holderJSON(nil), e.Producers...), e.Consumers...) {
				alive := "live"
				if !h.Alive {
					alive = "dead"
				}
				row(fmt.Sprintf("%s %d", h.Role, h.Line), fmt.Sprintf("pid %d, %s, since %s, %d messages, %d bytes",
					h.PID, alive, h.Since.Format(time.RFC3339), h.Messages, h.Bytes))
			}
			if e.Policy != "" {
				row("fan-out", fmt.Sprintf("policy %s, %d subscriptions", e.Policy, len(e.Subscribers)))
			}
			for _, sub := range e.Subscribers {
				row(fmt.Sprintf("subscriber %d", sub.Line), subscriberText(sub))
			}
		}
		tw.Flush()
		fmt.Fprintln(o.out)
	}
	switch {
	case len(es) == 0:
		return exitNoMatches
	case !ok:
		return exitError
	}
	return exitOK
}

// removable says why e must not be removed, or "" if it may.
func removable(e entry, force bool) string {
	switch e.State {
	case stateNotRing:
		return "not a ring"
	case stateNoAccess:
		return "cannot be read, so cannot be proved a ring"
	case stateActive:
		if !force {
			return "a live process holds a role (-f to remove anyway)"
		}
	case stateCreating:
		if !force {
			return "being created by a live process (-f to remove anyway)"
		}
	}
	return ""
}

// remove removes the ring e describes, if a second look just before
// finds it in the same state: a process may have taken a role meanwhile.
func remove(e entry) error {
	if e.SegmentID < 0 {
		return ring.RemoveStaleSet(e.SemaphoreID)
	}
	now, ok := reinspect(e.SegmentID)
	switch {
	case !ok:
		return fmt.Errorf("segment %d is gone", e.SegmentID)
	case now.InstanceID != e.InstanceID:
		return fmt.Errorf("segment %d now holds another ring", e.SegmentID)
	case e.State != stateActive && now.State != e.State:
		return fmt.Errorf("it was %s and is %s now", e.State, now.State)
	}
	return ring.RemoveID(e.SegmentID)
}

// reinspect looks at segment id again.
func reinspect(id int) (entry, bool) {
	recs, err := segment.List()
	if err != nil {
		return entry{}, false
	}
	for _, rec := range recs {
		if rec.ID == id {
			return inspect(rec, readOnlyAttaches()[id]), true
		}
	}
	return entry{}, false
}

// removal is what rm and gc print per ring with -json.
type removal struct {
	Key       string `json:"key"`
	SegmentID int    `json:"segment_id"`
	SemID     int    `json:"semaphore_id"`
	State     string `json:"state"`
	Removed   bool   `json:"removed"`
	Reason    string `json:"reason,omitempty"` // why not, or the error
}

func report(o *options, verb string, e entry, removed bool, reason string) {
	if o.json {
		printJSON(o.out, removal{Key: e.Key, SegmentID: e.SegmentID, SemID: e.SemaphoreID, State: e.State, Removed: removed, Reason: reason})
		return
	}
	switch {
	case removed:
		fmt.Fprintf(o.out, "%s %s (segment %d, semaphore set %d, %s)\n", verb, e.Key, e.SegmentID, e.SemaphoreID, e.State)
	case reason != "":
		fmt.Fprintf(o.out, "kept %s (segment %d, semaphore set %d): %s\n", e.Key, e.SegmentID, e.SemaphoreID, reason)
	default:
		fmt.Fprintf(o.out, "would remove %s (segment %d, semaphore set %d, %s, %d messages, %s old)\n",
			e.Key, e.SegmentID, e.SemaphoreID, e.State, e.Depth, age(e.AgeSeconds))
	}
}

func runRemove(o *options) int {
	es, ok, err := pick(o, "rm", true)
	if err != nil {
		fmt.Fprintf(o.errs, "ringctl rm: %v\n", err)
		return exitError
	}
	failed := false
	for _, e := range es {
		if why := removable(e, o.force); why != "" {
			report(o, "removed", e, false, why)
			failed = true
			continue
		}
		if err := remove(e); err != nil {
			report(o, "removed", e, false, err.Error())
			failed = true
			continue
		}
		report(o, "removed", e, true, "")
	}
	switch {
	case len(es) == 0:
		return exitNoMatches
	case failed || !ok:
		return exitError
	}
	return exitOK
}

func runGC(o *options) int {
	inv, err := inventory(false)
	if err != nil {
		fmt.Fprintf(o.errs, "ringctl gc: %v\n", err)
		return exitError
	}
	if len(o.targets) > 0 {
		var named []entry
		for _, e := range inv {
			for _, t := range o.targets {
				if t.matches(e) {
					named = append(named, e)
					break
				}
			}
		}
		inv = named
	}
	me := callerUID()
	matched, failed := 0, false
	for _, e := range inv {
		if e.State != stateOrphaned && e.State != stateBroken {
			continue
		}
		if !o.allUsers && (e.OwnerUID != me || e.CreatorUID != me) {
			continue
		}
		if o.older.set && e.AgeSeconds < o.older.d.Seconds() {
			continue
		}
		matched++
		if e.Depth > 0 && !o.force {
			report(o, "removed", e, false, fmt.Sprintf("holds %d messages (-f to remove anyway)", e.Depth))
			continue
		}
		if !o.yes {
			report(o, "removed", e, false, "")
			continue
		}
		if err := remove(e); err != nil {
			report(o, "removed", e, false, err.Error())
			failed = true
			continue
		}
		report(o, "removed", e, true, "")
	}
	switch {
	case failed:
		return exitError
	case matched == 0:
		return exitNoMatches
	}
	return exitOK
}

// subscriberText is one subscription, for stat.
func subscriberText(s subscriberJSON) string {
	name := "anonymous"
	if s.Name != "" {
		name = "name " + s.Name
	}
	state := "dead"
	switch {
	case s.Closed:
		state = "closed"
	case s.Alive:
		state = "live"
	}
	t := fmt.Sprintf("%s, pid %d, %s, position %d, lag %d, %d received, %d lost", name, s.PID, state, s.Position, s.Lag, s.Received, s.Lost)
	if s.Evicted {
		t += ", evicted"
	}
	return t
}
