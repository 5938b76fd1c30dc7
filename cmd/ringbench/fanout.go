package main

// -subscribers N: the fan-out benchmark. One producer process publishes
// into a fan-out ring (ring.Options.Fanout, policy -policy) read by N
// subscriber processes, each of which receives every message. Beside it,
// on the same machine in the same run: the 1:1 ring (one producer, one
// consumer process), N separate 1:1 rings that the producer writes in
// turn (each message once into each ring: the design fan-out replaces),
// N System V message queues that the producer writes in turn, one for each
// subscriber (fan-out as msgq users build it; only for sizes msgmax
// allows), and, under -policy overwrite, the fan-out ring with no
// subscriber, for the producer's cost alone. Each case runs -count times, the cases
// interleaved, and the medians are reported.
//
// The producer writes every byte of every message and each subscriber
// checks every byte it receives (payload.go), as in the other modes.
// Every process counts what it sent or received, and its CPU time, over
// the same measured window (absolute times given by the parent), so that
// rates and CPU per delivered message come from one window for all.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/msgq"
	"github.com/shmring/shmring/ring"
)

// fanoutEnv names the role of a fan-out child: "producer" or "subscriber".
const fanoutEnv = "RINGBENCH_FANOUT_ROLE"

// The fan-out cases.
const (
	fanOneToOne  = "1:1 ring"
	fanFanout    = "fan-out"
	fanSeparate  = "separate 1:1 rings"
	fanNoneAlone = "fan-out, no subscriber"
	fanMsgq      = "msgq, a queue each"
)

// fanReport is what a fan-out child measured in the window.
type fanReport struct {
	Role  string `json:"role"`
	Msgs  uint64 `json:"msgs"`   // sent (each publication once) or received
	Lost  uint64 `json:"lost"`   // subscriber: lost to laps
	CPUNs int64  `json:"cpu_ns"` // CPU time in the window
	WinNs int64  `json:"win_ns"` // the window as this process saw it
}

// fanRun is one run of one case.
type fanRun struct {
	producer    fanReport
	subscribers []fanReport
	lag         []uint64 // per subscriber, at the end of the window
	slotSize    int      // the rings' SlotSize, as their header says
}

// fanResult is a case's medians.
type fanResult struct {
	Case          string    `json:"case"`
	Policy        string    `json:"policy"`
	Size          int       `json:"size"`
	SlotSize      int       `json:"slot_size,omitempty"` // bytes per slot of rings whose messages span slots (-slot)
	Subscribers   int       `json:"subscribers"`
	ProducerRate  float64   `json:"producer_msgs_per_s"`   // publications/s
	SubRates      []float64 `json:"subscriber_msgs_per_s"` // each subscriber's msgs/s
	SubLost       []uint64  `json:"subscriber_lost"`
	SubLag        []uint64  `json:"subscriber_lag"`
	Delivered     float64   `json:"delivered_msgs_per_s"` // all subscribers together
	CPUPerMsgNs   float64   `json:"cpu_ns_per_delivered"` // all processes' CPU / delivered messages
	ProdCPUPerPub float64   `json:"producer_cpu_ns_per_msg"`
	Runs          int       `json:"runs"`
}

// runFanout is ringbench with -subscribers: every case, -count times,
// then the report.
func runFanout(ctx context.Context, cfg *config, stdout io.Writer) error {
	type fcase struct {
		name string
		size int
		subs int
	}
	var cs []fcase
	for _, size := range cfg.sizes {
		cs = append(cs, fcase{fanOneToOne, size, 1}, fcase{fanFanout, size, cfg.subscribers}, fcase{fanSeparate, size, cfg.subscribers})
		if lim, err := msgq.SystemLimits(); err == nil && size <= lim.MaxMessage {
			cs = append(cs, fcase{fanMsgq, size, cfg.subscribers})
		} else {
			note := stdout
			if cfg.json {
				note = os.Stderr // stdout has one JSON object per line
			}
			fmt.Fprintf(note, "%d B: no msgq case: above msgmax (%d B), the most one message may carry\n", size, lim.MaxMessage)
		}
		if cfg.policy == ring.Overwrite {
			cs = append(cs, fcase{fanNoneAlone, size, 0})
		}
	}
	runs := make([][]*fanRun, len(cs))
	for rep := 0; rep < cfg.count; rep++ {
		for i, c := range cs {
			r, err := fanoutCase(ctx, cfg, c.name, c.size, c.subs)
			if err != nil {
				return fmt.Errorf("%s %d B: %w", c.name, c.size, err)
			}
			runs[i] = append(runs[i], r)
		}
	}
	var results []*fanResult
	for i, c := range cs {
		results = append(results, fanAggregate(cfg, c.name, c.size, c.subs, runs[i]))
	}
	return fanReportOut(stdout, cfg, results)
}

// fanoutCase runs one case once: makes its rings, starts the subscribers,
// then the producer, and collects their reports.
func fanoutCase(ctx context.Context, cfg *config, name string, size, subs int) (*fanRun, error) {
	var rings []*ring.Ring
	defer func() {
		for _, r := range rings {
			r.Remove()
		}
	}()
	mk := func(opts *ring.Options) (*ring.Ring, error) {
		opts.SlotSize, opts.Slots = spanGeometry(cfg.slots, size, cfg.slot)
		opts.MaxMessage, opts.Wait = size, ring.Waiting{Strategy: cfg.wait, Spin: cfg.spin}
		r, err := ring.Create(ipc.Private, opts)
		if err == nil {
			rings = append(rings, r)
			entry := cleanup.add(r.Remove)
			defer func() { cleanup.forget(entry) }()
		}
		return r, err
	}
	if name == fanMsgq {
		return fanoutQueues(ctx, cfg, size, subs)
	}
	var subRing []*ring.Ring // the ring each subscriber reads
	switch name {
	case fanOneToOne:
		r, err := mk(&ring.Options{Mode: ring.SPSC})
		if err != nil {
			return nil, err
		}
		subRing = []*ring.Ring{r}
	case fanSeparate:
		for i := 0; i < subs; i++ {
			r, err := mk(&ring.Options{Mode: ring.SPSC})
			if err != nil {
				return nil, err
			}
			subRing = append(subRing, r)
		}
	default:
		r, err := mk(&ring.Options{Mode: ring.SPMC, Fanout: true, Policy: cfg.policy, MaxConsumers: max(subs, 1)})
		if err != nil {
			return nil, err
		}
		for i := 0; i < subs; i++ {
			subRing = append(subRing, r)
		}
		if subs == 0 {
			subRing = nil
		}
	}
	prodRings := slices.Compact(slices.Clone(subRing))
	if len(prodRings) == 0 {
		prodRings = rings
	}
	ids := func(rs []*ring.Ring) string {
		var ids []string
		for _, r := range rs {
			ids = append(ids, strconv.Itoa(r.SegmentID()))
		}
		return strings.Join(ids, ",")
	}
	fr := newFanRunner(cfg, size)
	defer fr.forget()
	for _, r := range subRing {
		if err := fr.spawn(ctx, "subscriber", "SEGS", ids([]*ring.Ring{r})); err != nil {
			return nil, err
		}
	}
	// Wait until every subscriber holds its role.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		joined := 0
		for _, r := range prodRings {
			joined += r.Stats().Consumers
		}
		if joined >= len(subRing) {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d subscribers joined", joined, len(subRing))
		}
	}
	if err := fr.spawn(ctx, "producer", "SEGS", ids(prodRings)); err != nil {
		return nil, err
	}
	// Sample the subscribers' lag at the end of the window.
	time.Sleep(time.Until(fr.end))
	run := &fanRun{slotSize: prodRings[0].Header().SlotSize}
	if run.slotSize >= size {
		run.slotSize = 0 // the message fits a slot
	}
	if name == fanFanout {
		for _, s := range prodRings[0].Subscribers(nil) {
			if s.Live {
				run.lag = append(run.lag, s.Lag)
			}
		}
	} else {
		for _, r := range subRing {
			run.lag = append(run.lag, uint64(r.Stats().Depth))
		}
	}
	return run, fr.wait(run)
}

// fanRunner starts the processes of one run of a case, the subscribers
// first and the producer last, and collects their reports.
type fanRunner struct {
	cfg        *config
	size       int
	start, end time.Time // the measured window
	procs      []*fanProc
}

type fanProc struct {
	cmd  *exec.Cmd
	out  strings.Builder
	done *cleanupEntry
}

func newFanRunner(cfg *config, size int) *fanRunner {
	start := time.Now().Add(cfg.warmup + 300*time.Millisecond)
	return &fanRunner{cfg: cfg, size: size, start: start, end: start.Add(cfg.duration)}
}

// spawn starts a child of role that opens the rings (what "SEGS") or the
// queues ("QUEUES") of the comma-separated ids.
func (fr *fanRunner) spawn(ctx context.Context, role, what, ids string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	p := &fanProc{cmd: exec.CommandContext(ctx, exe)}
	p.cmd.Env = append(os.Environ(), fanoutEnv+"="+role, "RINGBENCH_FANOUT_"+what+"="+ids,
		"RINGBENCH_FANOUT_SIZE="+strconv.Itoa(fr.size), "RINGBENCH_FANOUT_WAIT="+fr.cfg.wait.String(),
		"RINGBENCH_FANOUT_START="+strconv.FormatInt(fr.start.UnixNano(), 10),
		"RINGBENCH_FANOUT_END="+strconv.FormatInt(fr.end.UnixNano(), 10),
		"GOMAXPROCS="+strconv.Itoa(fr.cfg.gomaxprocs))
	p.cmd.Stdout, p.cmd.Stderr = &p.out, os.Stderr
	if err := p.cmd.Start(); err != nil {
		return err
	}
	p.done = cleanup.add(func() error { p.cmd.Process.Kill(); return nil })
	fr.procs = append(fr.procs, p)
	return nil
}

// wait waits for the producer, the last started, then for the
// subscribers, and puts their reports in run.
func (fr *fanRunner) wait(run *fanRun) error {
	if len(fr.procs) == 0 {
		return errors.New("no producer")
	}
	prod := fr.procs[len(fr.procs)-1]
	if err := prod.cmd.Wait(); err != nil {
		return fmt.Errorf("producer: %w", err)
	}
	if err := json.Unmarshal([]byte(lastLine(prod.out.String())), &run.producer); err != nil {
		return fmt.Errorf("producer said %q: %w", prod.out.String(), err)
	}
	for i, p := range fr.procs[:len(fr.procs)-1] {
		if err := p.cmd.Wait(); err != nil {
			return fmt.Errorf("subscriber %d: %w", i, err)
		}
		var rep fanReport
		if err := json.Unmarshal([]byte(lastLine(p.out.String())), &rep); err != nil {
			return fmt.Errorf("subscriber %d said %q: %w", i, p.out.String(), err)
		}
		run.subscribers = append(run.subscribers, rep)
	}
	return nil
}

// forget drops the kill-on-interrupt of every process started.
func (fr *fanRunner) forget() {
	for _, p := range fr.procs {
		cleanup.forget(p.done)
	}
}

// fanoutQueues runs the msgq case once: subs queues, each with its
// subscriber, that one producer writes in turn, each queue's byte limit
// raised to hold -slots messages where the kernel allows.
func fanoutQueues(ctx context.Context, cfg *config, size, subs int) (*fanRun, error) {
	var qs []*msgq.Queue
	defer func() {
		for _, q := range qs {
			q.Remove()
		}
	}()
	var ids []string
	for i := 0; i < subs; i++ {
		q, err := msgq.Create(ipc.Private, nil)
		if err != nil {
			return nil, err
		}
		qs = append(qs, q)
		entry := cleanup.add(q.Remove)
		defer cleanup.forget(entry)
		if err := q.SetMaxBytes(cfg.slots * size); err != nil && !errors.Is(err, fs.ErrPermission) {
			return nil, err
		}
		ids = append(ids, strconv.Itoa(q.ID()))
	}
	fr := newFanRunner(cfg, size)
	defer fr.forget()
	for _, id := range ids {
		if err := fr.spawn(ctx, "subscriber", "QUEUES", id); err != nil {
			return nil, err
		}
	}
	if err := fr.spawn(ctx, "producer", "QUEUES", strings.Join(ids, ",")); err != nil {
		return nil, err
	}
	time.Sleep(time.Until(fr.end))
	run := &fanRun{}
	for _, q := range qs {
		var depth uint64
		if info, err := q.Stat(); err == nil {
			depth = info.Messages
		}
		run.lag = append(run.lag, depth)
	}
	return run, fr.wait(run)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// window tracks the measured window in a child: counts and CPU time at
// its start and end.
type window struct {
	start, end   time.Time
	begun, over  bool
	n0, n1       uint64
	cpu0, cpu1   int64
	wall0, wall1 time.Time
}

// at is called with the count so far, every few messages and when the
// child waits or ends; it reports whether the window is over.
func (w *window) at(n uint64) bool {
	now := time.Now()
	if !w.begun && !now.Before(w.start) {
		w.begun, w.n0, w.cpu0, w.wall0 = true, n, cpuTime(), now
	}
	if w.begun && !w.over && !now.Before(w.end) {
		w.over, w.n1, w.cpu1, w.wall1 = true, n, cpuTime(), now
	}
	return w.over
}

func (w *window) report(role string, n, lost uint64) fanReport {
	if !w.begun {
		return fanReport{Role: role}
	}
	if !w.over {
		w.over, w.n1, w.cpu1, w.wall1 = true, n, cpuTime(), time.Now()
	}
	return fanReport{Role: role, Msgs: w.n1 - w.n0, Lost: lost, CPUNs: w.cpu1 - w.cpu0, WinNs: w.wall1.Sub(w.wall0).Nanoseconds()}
}

// fanoutChild is a fan-out child process: it returns its exit status.
func fanoutChild(role string) int {
	if err := fanoutChildRun(role); err != nil {
		fmt.Fprintf(os.Stderr, "ringbench: fan-out %s: %v\n", role, err)
		return 1
	}
	return 0
}

func fanoutChildRun(role string) error {
	envInt := func(k string) int64 { v, _ := strconv.ParseInt(os.Getenv(k), 10, 64); return v }
	wait, err := ring.ParseWaitStrategy(os.Getenv("RINGBENCH_FANOUT_WAIT"))
	if err != nil {
		return err
	}
	w := &window{start: time.Unix(0, envInt("RINGBENCH_FANOUT_START")), end: time.Unix(0, envInt("RINGBENCH_FANOUT_END"))}
	size := int(envInt("RINGBENCH_FANOUT_SIZE"))
	if qs := os.Getenv("RINGBENCH_FANOUT_QUEUES"); qs != "" {
		return fanoutQueueChild(role, strings.Split(qs, ","), w, size)
	}
	var rings []*ring.Ring
	for _, s := range strings.Split(os.Getenv("RINGBENCH_FANOUT_SEGS"), ",") {
		id, _ := strconv.Atoi(s)
		r, err := ring.OpenID(id, &ring.OpenOptions{Wait: ring.Waiting{Strategy: wait}})
		if err != nil {
			return err
		}
		defer r.Close()
		rings = append(rings, r)
	}
	pl := newPayload(size)
	ctx := context.Background()
	buf := make([]byte, size)
	enc := json.NewEncoder(os.Stdout)
	if role == "subscriber" {
		c, err := rings[0].NewConsumer() // a subscriber, on a fan-out ring
		if err != nil {
			return err
		}
		// Every message, in order, but for those a lap took under Overwrite.
		tr := newTracker(pl, 1, rings[0].Policy() != ring.Overwrite)
		var n, lost uint64
		for {
			k, typ, err := c.Receive(ctx, buf)
			var lap ring.LapError
			switch {
			case err == nil:
				if err := tr.accept(buf[:k], int(typ-1)); err != nil {
					return err
				}
				n++
			case errors.As(err, &lap):
				if w.begun && !w.over {
					lost += lap.Lost
				}
				continue
			case errors.Is(err, io.EOF):
				w.at(n)
				return enc.Encode(w.report(role, n, lost))
			default:
				return err
			}
			if n%tickEvery == 0 {
				w.at(n)
			}
		}
	}
	var ps []*ring.Producer
	for _, r := range rings {
		p, err := r.NewProducer()
		if err != nil {
			return err
		}
		ps = append(ps, p)
	}
	overwrite := len(rings) == 1 && rings[0].Policy() == ring.Overwrite
	var n uint64
	for {
		pl.fill(buf, n, 0) // once, for every ring it goes into
		for _, p := range ps {
			var err error
			if overwrite {
				err = p.TrySend(1, buf)
			} else {
				err = p.Send(ctx, 1, buf)
			}
			if err != nil {
				return err
			}
		}
		n++
		if n%tickEvery == 0 && w.at(n) {
			break
		}
	}
	rep := w.report(role, n, 0)
	for _, p := range ps {
		p.Close()
	}
	return enc.Encode(rep)
}

// fanAggregate takes the medians of a case's runs.
func fanAggregate(cfg *config, name string, size, subs int, runs []*fanRun) *fanResult {
	res := &fanResult{Case: name, Policy: cfg.policy.String(), Size: size, Subscribers: subs, Runs: len(runs)}
	if len(runs) > 0 {
		res.SlotSize = runs[0].slotSize
	}
	if name == fanOneToOne || name == fanSeparate || name == fanMsgq {
		res.Policy = "block"
	}
	rate := func(rep fanReport) float64 {
		if rep.WinNs <= 0 {
			return 0
		}
		return float64(rep.Msgs) / (float64(rep.WinNs) / 1e9)
	}
	var prod, delivered, cpu, prodCPU []float64
	subRates := make([][]float64, subs)
	subLost := make([][]float64, subs)
	subLag := make([][]float64, subs)
	for _, r := range runs {
		prod = append(prod, rate(r.producer))
		var d float64
		var msgs uint64
		cpuNs := r.producer.CPUNs
		for i, s := range r.subscribers {
			d += rate(s)
			msgs += s.Msgs
			cpuNs += s.CPUNs
			if i < subs {
				subRates[i] = append(subRates[i], rate(s))
				subLost[i] = append(subLost[i], float64(s.Lost))
				if i < len(r.lag) {
					subLag[i] = append(subLag[i], float64(r.lag[i]))
				}
			}
		}
		delivered = append(delivered, d)
		if msgs > 0 {
			cpu = append(cpu, float64(cpuNs)/float64(msgs))
		}
		if r.producer.Msgs > 0 {
			prodCPU = append(prodCPU, float64(r.producer.CPUNs)/float64(r.producer.Msgs))
		}
	}
	res.ProducerRate, res.Delivered = median(prod), median(delivered)
	res.CPUPerMsgNs, res.ProdCPUPerPub = median(cpu), median(prodCPU)
	for i := 0; i < subs; i++ {
		res.SubRates = append(res.SubRates, median(subRates[i]))
		res.SubLost = append(res.SubLost, uint64(median(subLost[i])))
		res.SubLag = append(res.SubLag, uint64(median(subLag[i])))
	}
	return res
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// fanReportOut prints the results, as a table and the ratios the issue
// judges fan-out by, or as JSON lines.
func fanReportOut(w io.Writer, cfg *config, results []*fanResult) error {
	if cfg.json {
		enc := json.NewEncoder(w)
		for _, r := range results {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	slots := fmt.Sprintf("%d slots", cfg.slots)
	if cfg.slot > 0 {
		slots = fmt.Sprintf("room for %d messages in slots of %d B where they are larger (messages spanning slots)", cfg.slots, cfg.slot)
	}
	fmt.Fprintf(w, "fan-out: 1 producer, %d subscriber processes, policy %v, wait %v, %s, medians of %d runs of %v\n\n",
		cfg.subscribers, cfg.policy, cfg.wait, slots, cfg.count, cfg.duration)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\tsize\tproducer msgs/s\tper subscriber msgs/s (min..max)\tdelivered msgs/s\tCPU ns/delivered\tproducer CPU ns/msg\tlost\tlag\t")
	for _, r := range results {
		lo, hi := 0.0, 0.0
		var lost, lag uint64
		for i, x := range r.SubRates {
			if i == 0 || x < lo {
				lo = x
			}
			hi = max(hi, x)
			lost += r.SubLost[i]
			lag = max(lag, r.SubLag[i])
		}
		fmt.Fprintf(tw, "%s\t%d B\t%s\t%s..%s\t%s\t%.0f\t%.0f\t%d\t%d\t\n", r.Case, r.Size, fmtRate(r.ProducerRate), fmtRate(lo), fmtRate(hi),
			fmtRate(r.Delivered), r.CPUPerMsgNs, r.ProdCPUPerPub, lost, lag)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, size := range cfg.sizes {
		var one, fan, sep, alone, mq *fanResult
		for _, r := range results {
			if r.Size != size {
				continue
			}
			switch r.Case {
			case fanOneToOne:
				one = r
			case fanFanout:
				fan = r
			case fanSeparate:
				sep = r
			case fanNoneAlone:
				alone = r
			case fanMsgq:
				mq = r
			}
		}
		if one == nil || fan == nil || sep == nil || len(one.SubRates) == 0 || len(fan.SubRates) == 0 {
			continue
		}
		minSub := slices.Min(fan.SubRates)
		fmt.Fprintf(w, "%d B: slowest subscriber / 1:1 consumer: %.2f×; CPU per delivered message, fan-out / 1:1: %.2f×; delivered msgs/s, fan-out / separate rings: %.2f×\n",
			size, minSub/one.SubRates[0], fan.CPUPerMsgNs/one.CPUPerMsgNs, fan.Delivered/sep.Delivered)
		if mq != nil && mq.Delivered > 0 {
			fmt.Fprintf(w, "%d B: delivered msgs/s, fan-out / msgq, a queue each: %.2f×\n", size, fan.Delivered/mq.Delivered)
		}
		if alone != nil && alone.ProdCPUPerPub > 0 {
			fmt.Fprintf(w, "%d B: producer CPU per message with %d subscribers / with none: %.2f×\n", size, cfg.subscribers, fan.ProdCPUPerPub/alone.ProdCPUPerPub)
		}
	}
	return nil
}

// fanoutQueueChild is a child of the msgq case: the producer sends each
// message into every queue of ids in turn, then an empty message to each
// as the end; a subscriber receives from its queue until the end.
func fanoutQueueChild(role string, ids []string, w *window, size int) error {
	var qs []*msgq.Queue
	for _, s := range ids {
		id, _ := strconv.Atoi(s)
		q, err := msgq.OpenID(id)
		if err != nil {
			return err
		}
		qs = append(qs, q)
	}
	pl := newPayload(size)
	msg := msgq.NewMessage(size)
	ctx := context.Background()
	enc := json.NewEncoder(os.Stdout)
	var n uint64
	if role == "subscriber" {
		tr := newTracker(pl, 1, true)
		for {
			if err := qs[0].ReceiveMessage(ctx, msg, msgq.Any(), 0); err != nil {
				return err
			}
			text := msg.Text()
			if len(text) == 0 {
				w.at(n)
				return enc.Encode(w.report(role, n, 0))
			}
			if err := tr.accept(text, int(msg.Type()-1)); err != nil {
				return err
			}
			if n++; n%tickEvery == 0 {
				w.at(n)
			}
		}
	}
	msg.SetType(1)
	text := msg.Resize(size)
	for {
		pl.fill(text, n, 0) // once, for every queue it goes into
		for _, q := range qs {
			if err := q.SendMessage(ctx, msg, 0); err != nil {
				return err
			}
		}
		if n++; n%tickEvery == 0 && w.at(n) {
			break
		}
	}
	rep := w.report(role, n, 0)
	for _, q := range qs {
		if err := q.Send(ctx, 1, nil, 0); err != nil {
			return err
		}
	}
	return enc.Encode(rep)
}
