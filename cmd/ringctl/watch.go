package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmring/shmring/ring"
)

const defaultInterval = time.Second

// watched is one ring under watch: its read-only view and last sample.
type watched struct {
	e      entry
	r      *ring.Ring
	last   ring.Stats
	lines  map[string]uint64 // role line ("consumer 0") → messages at the last sample
	seen   bool              // present at this round's inventory
	sample time.Time
}

// rateJSON is what watch prints per ring and interval with -json: the
// counters' differences over the interval, as rates, and the levels.
type rateJSON struct {
	Time            time.Time  `json:"time"`
	Key             string     `json:"key"`
	SegmentID       int        `json:"segment_id"`
	State           string     `json:"state"`
	IntervalSeconds float64    `json:"interval_seconds"`
	SentDelta       uint64     `json:"sent_delta"`
	ReceivedDelta   uint64     `json:"received_delta"`
	MsgsInPerSec    float64    `json:"msgs_in_per_sec"`
	MsgsOutPerSec   float64    `json:"msgs_out_per_sec"`
	MBInPerSec      float64    `json:"mb_in_per_sec"`
	MBOutPerSec     float64    `json:"mb_out_per_sec"`
	SleepsPerSec    float64    `json:"sleeps_per_sec"`
	WakeupsPerSec   float64    `json:"wakeups_per_sec"`
	Depth           int        `json:"depth"`
	Capacity        int        `json:"capacity"`
	Producers       int        `json:"producers"`
	Consumers       int        `json:"consumers"`
	Lines           []lineRate `json:"lines"`
	Stats           statsJSON  `json:"stats"` // the cumulative counters at this sample
}

// lineRate is one role holder's rate.
type lineRate struct {
	Role       string  `json:"role"`
	Line       int     `json:"line"`
	PID        int     `json:"pid"`
	Alive      bool    `json:"alive"`
	MsgsPerSec float64 `json:"msgs_per_sec"`
	Lag        int     `json:"lag"` // consumers: messages waiting in the ring for the consumers
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func runWatch(o *options) int {
	if o.interval.d <= 0 {
		fmt.Fprintln(o.errs, "ringctl watch: -interval must be positive")
		return exitUsage
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(stop)
	rings := map[int]*watched{}
	defer func() {
		for _, w := range rings {
			w.r.Close()
		}
	}()
	tty := isTerminal(o.out) && !o.json
	tick := time.NewTicker(o.interval.d)
	defer tick.Stop()
	for round := 0; ; round++ {
		if err := o.refresh(rings); err != nil {
			fmt.Fprintf(o.errs, "ringctl watch: %v\n", err)
			return exitError
		}
		if len(rings) == 0 && round == 0 && len(o.targets) > 0 {
			return exitNoMatches
		}
		if round > 0 {
			o.show(rings, tty)
			if o.count > 0 && round >= o.count {
				return exitOK
			}
		}
		select {
		case <-stop:
			return exitOK
		case <-tick.C:
		}
	}
}

// refresh opens the rings to watch that are not open yet, forgets those
// that are gone, and leaves the samples alone.
func (o *options) refresh(rings map[int]*watched) error {
	es, _, err := pick(o, "watch", false)
	if err != nil {
		return err
	}
	for _, w := range rings {
		w.seen = false
	}
	for _, e := range es {
		if e.Mode == "" {
			continue // not readable as a ring: nothing to watch
		}
		if w, ok := rings[e.SegmentID]; ok && w.e.InstanceID == e.InstanceID {
			w.seen, w.e.State = true, e.State
			continue
		}
		r, err := ring.OpenID(e.SegmentID, &ring.OpenOptions{ReadOnly: true, ReadyTimeout: 10 * time.Millisecond})
		if err != nil {
			continue // gone meanwhile
		}
		if old := rings[e.SegmentID]; old != nil {
			old.r.Close()
		}
		w := &watched{e: e, r: r, seen: true, last: r.Stats(), sample: time.Now(), lines: map[string]uint64{}}
		if hs, err := r.Holders(); err == nil {
			for _, h := range hs {
				w.lines[fmt.Sprintf("%s %d", h.Role, h.Line)] = h.Messages
			}
		}
		rings[e.SegmentID] = w
	}
	for id, w := range rings {
		if !w.seen {
			w.r.Close()
			delete(rings, id)
		}
	}
	return nil
}

// show samples every ring and prints the rates since the last sample.
func (o *options) show(rings map[int]*watched, tty bool) {
	var rows []rateJSON
	for _, id := range sortedIDs(rings) {
		w := rings[id]
		now, st := time.Now(), w.r.Stats()
		dt := now.Sub(w.sample).Seconds()
		per := func(a, b uint64) float64 {
			if a < b || dt <= 0 {
				return 0
			}
			return float64(a-b) / dt
		}
		row := rateJSON{Time: now, Key: w.e.Key, SegmentID: id, State: w.e.State, IntervalSeconds: dt,
			SentDelta: st.Sent - min(st.Sent, w.last.Sent), ReceivedDelta: st.Received - min(st.Received, w.last.Received),
			MsgsInPerSec: per(st.Sent, w.last.Sent), MsgsOutPerSec: per(st.Received, w.last.Received),
			MBInPerSec: per(st.SentBytes, w.last.SentBytes) / 1e6, MBOutPerSec: per(st.ReceivedBytes, w.last.ReceivedBytes) / 1e6,
			SleepsPerSec:  per(st.ConsumerSleeps+st.ProducerSleeps, w.last.ConsumerSleeps+w.last.ProducerSleeps),
			WakeupsPerSec: per(st.Wakeups, w.last.Wakeups), Depth: st.Depth, Capacity: st.Capacity,
			Producers: st.Producers, Consumers: st.Consumers, Lines: []lineRate{}, Stats: statsOf(st)}
		if hs, err := w.r.Holders(); err == nil {
			lines := map[string]uint64{}
			for _, h := range hs {
				k := fmt.Sprintf("%s %d", h.Role, h.Line)
				lines[k] = h.Messages
				lr := lineRate{Role: h.Role, Line: h.Line, PID: h.PID, Alive: h.Alive, MsgsPerSec: per(h.Messages, w.lines[k])}
				if h.Role == "consumer" {
					lr.Lag = st.Depth
				}
				row.Lines = append(row.Lines, lr)
			}
			w.lines = lines
		}
		w.last, w.sample = st, now
		rows = append(rows, row)
	}
	switch {
	case o.json:
		for _, r := range rows {
			printJSON(o.out, r)
		}
	case tty:
		fmt.Fprint(o.out, "\x1b[H\x1b[2J")
		fmt.Fprintf(o.out, "ringctl watch · every %v · %s\n\n", o.interval.d, time.Now().Format("15:04:05"))
		tw := tabwriter.NewWriter(o.out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "KEY\tSHMID\tIN msgs/s\tOUT msgs/s\tIN MB/s\tOUT MB/s\tDEPTH\tSLEEPS/s\tWAKEUPS/s\tP:C\tSTATE")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%.2f\t%.2f\t%d/%d\t%.0f\t%.0f\t%d:%d\t%s\n", r.Key, r.SegmentID,
				r.MsgsInPerSec, r.MsgsOutPerSec, r.MBInPerSec, r.MBOutPerSec, r.Depth, r.Capacity,
				r.SleepsPerSec, r.WakeupsPerSec, r.Producers, r.Consumers, r.State)
		}
		tw.Flush()
	default:
		for _, r := range rows {
			fmt.Fprintf(o.out, "%s key=%s shmid=%d in=%.0f/s out=%.0f/s in_mb=%.2f/s out_mb=%.2f/s depth=%d/%d sleeps=%.0f/s wakeups=%.0f/s producers=%d consumers=%d state=%s\n",
				r.Time.Format("15:04:05"), r.Key, r.SegmentID, r.MsgsInPerSec, r.MsgsOutPerSec, r.MBInPerSec, r.MBOutPerSec,
				r.Depth, r.Capacity, r.SleepsPerSec, r.WakeupsPerSec, r.Producers, r.Consumers, r.State)
		}
	}
}

func sortedIDs(rings map[int]*watched) []int {
	ids := make([]int, 0, len(rings))
	for id := range rings {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
