package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// runResult is one run of a case, from its children's reports.
type runResult struct {
	msgsPerSec   float64 // messages per second; both directions in ping-pong
	cpuPerMsg    float64 // ns of CPU time of every child per message
	semPerMsg    float64 // ring semaphore operations per message
	allocsPerMsg float64
	rtt          *rttSummary // ping-pong only
	slots        int
	queueBytes   int
	note         string
}

// combine checks the children's reports of one run against each other and
// turns them into its result.
func combine(c benchCase, plan *runPlan, reports []*childReport) (*runResult, error) {
	if c.pattern != "" {
		return combinePattern(c, plan, reports)
	}
	r := &runResult{slots: plan.slots, queueBytes: plan.queueBytes, note: plan.note}
	var cpu int64
	var allocs, sem, msgs uint64
	for _, rep := range reports {
		cpu += rep.CPUNs
		allocs += rep.Allocs
		sem += rep.SemOps
	}
	if c.mode == modeThroughput {
		var sent, received uint64
		for i, ch := range plan.children {
			rep := reports[i]
			switch ch.spec.Role {
			case roleSend:
				sent += rep.Total
			case roleRecv:
				received += rep.Total
				msgs += rep.Counted
				if rep.WindowNs > 0 {
					r.msgsPerSec += float64(rep.Counted) / (float64(rep.WindowNs) / 1e9)
				}
			}
		}
		if sent != received {
			return nil, fmt.Errorf("%d messages sent but %d received", sent, received)
		}
	} else {
		ping, pong := reports[0], reports[1]
		if ping.Total != pong.Total {
			return nil, fmt.Errorf("initiator made %d round trips, responder answered %d", ping.Total, pong.Total)
		}
		if ping.RTT == nil || ping.RTT.N != ping.Counted {
			return nil, fmt.Errorf("initiator timed %v round trips, counted %d", ping.RTT, ping.Counted)
		}
		msgs = 2 * ping.Counted
		if ping.WindowNs > 0 {
			r.msgsPerSec = float64(msgs) / (float64(ping.WindowNs) / 1e9)
		}
		r.rtt = ping.RTT
	}
	if msgs == 0 {
		var b strings.Builder
		for i, ch := range plan.children {
			fmt.Fprintf(&b, "; %s[%d]: %d messages, %d in %v", ch.spec.Role, ch.spec.Index,
				reports[i].Total, reports[i].Counted, time.Duration(reports[i].WindowNs))
		}
		return nil, fmt.Errorf("no message in the measured interval (is the machine too busy for -duration?)%s", b.String())
	}
	r.cpuPerMsg = float64(cpu) / float64(msgs)
	r.semPerMsg = float64(sem) / float64(msgs)
	r.allocsPerMsg = float64(allocs) / float64(msgs)
	return r, nil
}

// result is one case, summarized over its runs: a line of the table and a
// JSON object of -json.
type result struct {
	Transport     string   `json:"transport"`
	Mode          string   `json:"mode"`
	Size          int      `json:"size"`
	Producers     int      `json:"producers"`
	Consumers     int      `json:"consumers"`
	Pattern       string   `json:"pattern,omitempty"`
	Clients       int      `json:"clients,omitempty"`
	Wait          string   `json:"wait"`
	Batch         int      `json:"batch"`
	ZeroCopy      bool     `json:"zerocopy"`
	Pinned        bool     `json:"pinned"`
	Count         int      `json:"count"`
	MsgsPerSec    float64  `json:"msgs_per_sec"`
	MsgsPerSecMin float64  `json:"msgs_per_sec_min"`
	MsgsPerSecMax float64  `json:"msgs_per_sec_max"`
	SpreadPct     float64  `json:"spread_pct"`
	MBPerSec      float64  `json:"mb_per_sec"`
	RoundTrips    float64  `json:"round_trips_per_sec,omitempty"`
	RTTP50        int64    `json:"rtt_p50_ns,omitempty"`
	RTTP99        int64    `json:"rtt_p99_ns,omitempty"`
	RTTP999       int64    `json:"rtt_p999_ns,omitempty"`
	RTTMax        int64    `json:"rtt_max_ns,omitempty"`
	CPUNsPerMsg   float64  `json:"cpu_ns_per_msg"`
	SemOpsPerMsg  *float64 `json:"sem_ops_per_msg,omitempty"`
	AllocsPerMsg  float64  `json:"allocs_per_msg"`
	Slots         int      `json:"slots,omitempty"`
	SlotSize      int      `json:"slot_size,omitempty"` // ring: bytes per slot of a ring whose messages span slots (-slot)
	VsFit         *float64 `json:"vs_fit,omitempty"`    // such a ring: MB/s ÷ that of the ring whose slots fit the message
	QueueBytes    int      `json:"queue_bytes,omitempty"`
	VsMsgq        *float64 `json:"vs_msgq,omitempty"`
	Note          string   `json:"note,omitempty"`
}

// aggregate summarizes the runs of c: every figure is the median over the
// runs.
func aggregate(cfg *config, c benchCase, runs []*runResult) *result {
	r := &result{
		Transport: c.transport, Mode: c.mode, Size: c.size,
		Producers: c.producers, Consumers: c.consumers, Pattern: c.pattern, Clients: c.clients,
		Wait: "block", Batch: 1, Pinned: cfg.pin, Count: len(runs),
	}
	if c.transport == "ring" {
		r.Wait = cfg.wait.String()
		r.ZeroCopy = cfg.zeroCopy && c.pattern == ""
		if c.mode == modeThroughput {
			r.Batch = cfg.batch
		}
	}
	median := func(f func(*runResult) float64) spread {
		xs := make([]float64, len(runs))
		for i, run := range runs {
			xs[i] = f(run)
		}
		return summarize(xs)
	}
	rate := median(func(x *runResult) float64 { return x.msgsPerSec })
	r.MsgsPerSec, r.MsgsPerSecMin, r.MsgsPerSecMax = rate.median, rate.min, rate.max
	r.SpreadPct = rate.pct()
	r.MBPerSec = rate.median * float64(c.size) / 1e6
	r.CPUNsPerMsg = median(func(x *runResult) float64 { return x.cpuPerMsg }).median
	r.AllocsPerMsg = median(func(x *runResult) float64 { return x.allocsPerMsg }).median
	if c.transport == "ring" {
		sem := median(func(x *runResult) float64 { return x.semPerMsg }).median
		r.SemOpsPerMsg = &sem
	}
	if c.mode == modePingPong || c.pattern != "" {
		r.RoundTrips = rate.median / 2
		p50 := median(func(x *runResult) float64 { return float64(x.rtt.P50) })
		r.RTTP50 = int64(p50.median)
		if c.pattern != patternServer {
			r.SpreadPct = p50.pct() // the server's spread stays that of its throughput
		}
		r.RTTP99 = int64(median(func(x *runResult) float64 { return float64(x.rtt.P99) }).median)
		r.RTTP999 = int64(median(func(x *runResult) float64 { return float64(x.rtt.P999) }).median)
		r.RTTMax = int64(median(func(x *runResult) float64 { return float64(x.rtt.Max) }).median)
	}
	last := runs[len(runs)-1]
	r.Note = last.note
	if c.transport == "ring" {
		r.Slots, r.SlotSize = last.slots, c.slot
	}
	if c.transport == "msgq" {
		r.QueueBytes = last.queueBytes
	}
	return r
}

// compare sets VsMsgq on every result that has a msgq result of the same
// mode (or pattern), size, producers, consumers and clients: msgs/s over
// msgq's (throughput, the server pattern), or msgq's p50 over the row's
// (ping-pong, the chat pattern). Higher is better.
func compare(results []*result) {
	for _, r := range results {
		if r.SlotSize == 0 {
			continue
		}
		for _, q := range results {
			if q.Transport == r.Transport && q.SlotSize == 0 && q.Mode == r.Mode && q.Size == r.Size && q.Producers == r.Producers && q.Consumers == r.Consumers && q.MBPerSec > 0 {
				v := r.MBPerSec / q.MBPerSec
				r.VsFit = &v
			}
		}
	}
	for _, r := range results {
		for _, q := range results {
			if q.Transport != "msgq" || q.Mode != r.Mode || q.Size != r.Size || q.Producers != r.Producers || q.Consumers != r.Consumers || q.Clients != r.Clients {
				continue
			}
			var v float64
			if (r.Mode == modeThroughput || r.Pattern == patternServer) && q.MsgsPerSec > 0 {
				v = r.MsgsPerSec / q.MsgsPerSec
			} else if (r.Mode == modePingPong || r.Pattern == patternChat) && r.RTTP50 > 0 {
				v = float64(q.RTTP50) / float64(r.RTTP50)
			} else {
				continue
			}
			r.VsMsgq = &v
		}
	}
}

// report writes the results as cfg asks: JSON lines, markdown or a table.
// With JSON, the cases left out (cfg.skips) are said on stderr, so that
// stdout stays one result per line.
func report(w, stderr io.Writer, cfg *config, results []*result) error {
	if cfg.json {
		for _, n := range cfg.skips {
			fmt.Fprintf(stderr, "ringbench: %s\n", n)
		}
		enc := json.NewEncoder(w)
		for _, r := range results {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	return writeTables(w, cfg, results)
}

// writeTables writes a table per mode and per pattern, plain or markdown,
// and the notes that say how to read them.
func writeTables(w io.Writer, cfg *config, results []*result) error {
	var b strings.Builder
	sides := fmt.Sprintf("%d producer", cfg.producers)
	if cfg.producers > 1 {
		sides += "s"
	}
	sides += fmt.Sprintf(", %d consumer", cfg.consumers)
	if cfg.consumers > 1 {
		sides += "s"
	}
	pinned := "not pinned"
	if cfg.pin {
		pinned = "pinned to CPUs"
	}
	parts := []string{strings.Join(cfg.transports, " vs ")}
	if len(cfg.modes) > 0 {
		parts = append(parts, sides)
	}
	if len(cfg.patterns) > 0 {
		parts = append(parts, patternCaption(cfg))
	}
	caption := fmt.Sprintf("%s · median of %d run(s) of %v after %v warm-up · %d CPUs, %s, children at GOMAXPROCS=%d",
		strings.Join(parts, " · "), cfg.count, cfg.duration, cfg.warmup, runtime.NumCPU(), pinned, cfg.gomaxprocs)
	if cfg.md {
		fmt.Fprintf(&b, "%s\n", caption)
	} else {
		fmt.Fprintf(&b, "ringbench: %s\n", caption)
	}
	for _, t := range tables(cfg, results) {
		if cfg.md {
			fmt.Fprintf(&b, "\n#### %s\n\n", t.title)
			fmt.Fprintf(&b, "| %s |\n", strings.Join(t.head, " | "))
			fmt.Fprintf(&b, "|%s\n", strings.Repeat("---|", len(t.head)))
			for _, l := range t.lines {
				fmt.Fprintf(&b, "| %s |\n", strings.Join(l, " | "))
			}
			continue
		}
		fmt.Fprintf(&b, "\n%s\n", t.title)
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  %s\n", strings.Join(t.head, "\t"))
		for _, l := range t.lines {
			fmt.Fprintf(tw, "  %s\n", strings.Join(l, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if cfg.md {
		b.WriteString("\n")
		for _, n := range notes(cfg, results) {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	} else {
		b.WriteString("\n" + strings.Join(notes(cfg, results), "\n") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// table is one table of the output: a title, the column heads and the
// rows.
type table struct {
	title string
	head  []string
	lines [][]string
}

// tables makes a table for each mode and then for each pattern of cfg
// that has results.
func tables(cfg *config, results []*result) []table {
	var out []table
	for _, mode := range cfg.modes {
		var rows []*result
		for _, r := range results {
			if r.Mode == mode && r.Pattern == "" {
				rows = append(rows, r)
			}
		}
		if len(rows) == 0 {
			continue
		}
		var t table
		if mode == modeThroughput {
			t.title = "One way (throughput)"
			t.head = []string{"transport", "size", "P:C", "wait", "api", "msgs/s", "MB/s", "vs msgq", "spread", "CPU/msg", "sem ops/msg", "allocs/msg"}
			for _, r := range rows {
				t.lines = append(t.lines, []string{
					transportName(r), fmt.Sprintf("%d B", r.Size), fmt.Sprintf("%d:%d", r.Producers, r.Consumers), r.Wait, api(r),
					fmtRate(r.MsgsPerSec), fmt.Sprintf("%.1f", r.MBPerSec), fmtRatio(r.VsMsgq), fmt.Sprintf("%.0f%%", r.SpreadPct),
					fmtNs(r.CPUNsPerMsg), fmtSem(r.SemOpsPerMsg, 1), fmt.Sprintf("%.2g", r.AllocsPerMsg),
				})
			}
		} else {
			t.title = "Round trip (ping-pong)"
			t.head = []string{"transport", "size", "wait", "api", "p50", "p99", "p99.9", "max", "round trips/s", "vs msgq", "spread", "CPU/rt", "sem ops/rt"}
			for _, r := range rows {
				t.lines = append(t.lines, []string{
					transportName(r), fmt.Sprintf("%d B", r.Size), r.Wait, api(r),
					fmtNs(float64(r.RTTP50)), fmtNs(float64(r.RTTP99)), fmtNs(float64(r.RTTP999)), fmtNs(float64(r.RTTMax)),
					fmtRate(r.RoundTrips), fmtRatio(r.VsMsgq), fmt.Sprintf("%.0f%%", r.SpreadPct),
					fmtNs(2 * r.CPUNsPerMsg), fmtSem(r.SemOpsPerMsg, 2),
				})
			}
		}
		out = append(out, t)
	}
	return append(out, patternTables(cfg, results)...)
}

// notes explains the tables.
func notes(cfg *config, results []*result) []string {
	out := []string{
		"vs msgq: throughput is msgs/s ÷ msgq's msgs/s; round trip is msgq's p50 ÷ p50 (higher is better).",
		"spread: (max − min) ÷ median over the runs, of msgs/s or of p50.",
		"CPU: user+sys time of every process of the run in the measured interval, per message (per round trip).",
	}
	if cfg.pin {
		out = append(out, fmt.Sprintf("pinned: child k (producers, then consumers; initiator, then responder) on CPU k mod %d of %v.", len(cpuList()), cpuList()))
	}
	out = append(out, patternNotes(cfg)...)
	for _, r := range results {
		if r.SlotSize > 0 {
			out = append(out, fmt.Sprintf("%s %s %d B: %d slots of %d B, each message spanning %d of them (%d messages' room); %s the MB/s of the ring whose slots fit the message.",
				transportName(r), r.Mode, r.Size, r.Slots, r.SlotSize, (r.Size+r.SlotSize-1)/r.SlotSize, cfg.slots, fmtRatio(r.VsFit)))
		}
	}
	out = append(out, cfg.skips...)
	var seen []string
	for _, r := range results {
		var n string
		switch {
		case r.Note != "":
			n = fmt.Sprintf("msgq %d B: %s", r.Size, r.Note)
		case r.Transport == "msgq" && r.Pattern != "":
			n = fmt.Sprintf("msgq %s %d B: queue byte limit %d B.", r.Pattern, r.Size, r.QueueBytes)
		case r.Transport == "msgq":
			n = fmt.Sprintf("msgq %d B: queue byte limit %d B = %d slots × %d B, the ring's capacity.", r.Size, r.QueueBytes, cfg.slots, r.Size)
		default:
			continue
		}
		if !slices.Contains(seen, n) {
			seen = append(seen, n)
		}
	}
	return append(out, seen...)
}

// api names how a row moved its messages.
func api(r *result) string {
	switch {
	case r.Transport != "ring":
		return "syscall"
	case r.Pattern != "":
		return "select"
	case r.ZeroCopy:
		return "zero-copy"
	case r.Batch > 1:
		return fmt.Sprintf("batch %d", r.Batch)
	}
	return "copy"
}

func fmtRate(x float64) string {
	switch {
	case x >= 1e6:
		return fmt.Sprintf("%.2f M", x/1e6)
	case x >= 1e3:
		return fmt.Sprintf("%.1f k", x/1e3)
	}
	return fmt.Sprintf("%.0f", x)
}

func fmtNs(ns float64) string {
	switch {
	case ns < 1e3:
		return fmt.Sprintf("%.0f ns", ns)
	case ns < 1e6:
		return fmt.Sprintf("%.2f µs", ns/1e3)
	case ns < 1e9:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	}
	return fmt.Sprintf("%.2f s", ns/1e9)
}

func fmtRatio(v *float64) string {
	if v == nil {
		return "-"
	}
	if *v >= 10 {
		return fmt.Sprintf("%.0f×", *v)
	}
	return fmt.Sprintf("%.2f×", *v)
}

func fmtSem(v *float64, scale float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.3f", *v*scale)
}

// transportName is a row's transport, with the slot size of a ring whose
// messages span slots.
func transportName(r *result) string {
	if r.SlotSize > 0 {
		return fmt.Sprintf("%s/%dB-slots", r.Transport, r.SlotSize)
	}
	return r.Transport
}
