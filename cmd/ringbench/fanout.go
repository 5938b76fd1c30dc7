package main

// -subscribers N: the fan-out benchmark. One producer process publishes
// into a fan-out ring (ring.Options.Fanout, policy -policy) read by N
// subscriber processes, each of which receives every message. Beside it,
// on the same machine in the same run: the 1:1 ring (one producer, one
// consumer process), N separate 1:1 rings that the producer writes in
// turn (each message once into each ring: the design fan-out replaces),
// and, under -policy overwrite, the fan-out ring with no subscriber, for
// the producer's cost alone. Each case runs -count times, the cases
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
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shmring/shmring/ipc"
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
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	start := time.Now().Add(cfg.warmup + 300*time.Millisecond)
	end := start.Add(cfg.duration)
	env := func(role string, rs []*ring.Ring) []string {
		var ids []string
		for _, r := range rs {
			ids = append(ids, strconv.Itoa(r.SegmentID()))
		}
		return append(os.Environ(), fanoutEnv+"="+role, "RINGBENCH_FANOUT_SEGS="+strings.Join(ids, ","),
			"RINGBENCH_FANOUT_SIZE="+strconv.Itoa(size), "RINGBENCH_FANOUT_WAIT="+cfg.wait.String(),
			"RINGBENCH_FANOUT_START="+strconv.FormatInt(start.UnixNano(), 10),
			"RINGBENCH_FANOUT_END="+strconv.FormatInt(end.UnixNano(), 10),
			"GOMAXPROCS="+strconv.Itoa(cfg.gomaxprocs))
	}
	type proc struct {
		cmd  *exec.Cmd
		out  strings.Builder
		done *cleanupEntry
	}
	startProc := func(role string, rs []*ring.Ring) (*proc, error) {
		p := &proc{cmd: exec.CommandContext(ctx, exe)}
		p.cmd.Env = env(role, rs)
		p.cmd.Stdout, p.cmd.Stderr = &p.out, os.Stderr
		if err := p.cmd.Start(); err != nil {
			return nil, err
		}
		entry := cleanup.add(func() error { p.cmd.Process.Kill(); return nil })
		p.done = entry
		return p, nil
	}
	var subsP []*proc
	for _, r := range subRing {
		p, err := startProc("subscriber", []*ring.Ring{r})
		if err != nil {
			return nil, err
		}
		subsP = append(subsP, p)
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
	prod, err := startProc("producer", prodRings)
	if err != nil {
		return nil, err
	}
	// Sample the subscribers' lag at the end of the window.
	time.Sleep(time.Until(end))
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
	defer func() {
		cleanup.forget(prod.done)
		for _, p := range subsP {
			cleanup.forget(p.done)
		}
	}()
	if err := prod.cmd.Wait(); err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	if err := json.Unmarshal([]byte(lastLine(prod.out.String())), &run.producer); err != nil {
		return nil, fmt.Errorf("producer said %q: %w", prod.out.String(), err)
	}
	for i, p := range subsP {
		if err := p.cmd.Wait(); err != nil {
			return nil, fmt.Errorf("subscriber %d: %w", i, err)
		}
		var rep fanReport
		if err := json.Unmarshal([]byte(lastLine(p.out.String())), &rep); err != nil {
			return nil, fmt.Errorf("subscriber %d said %q: %w", i, p.out.String(), err)
		}
		run.subscribers = append(run.subscribers, rep)
	}
	return run, nil
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
	w := &window{start: time.Unix(0, envInt("RINGBENCH_FANOUT_START")), end: time.Unix(0, envInt("RINGBENCH_FANOUT_END"))}
	size := int(envInt("RINGBENCH_FANOUT_SIZE"))
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
	if name == fanOneToOne || name == fanSeparate {
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
		var one, fan, sep, alone *fanResult
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
			}
		}
		if one == nil || fan == nil || sep == nil || len(one.SubRates) == 0 || len(fan.SubRates) == 0 {
			continue
		}
		minSub := slices.Min(fan.SubRates)
		fmt.Fprintf(w, "%d B: slowest subscriber / 1:1 consumer: %.2f×; CPU per delivered message, fan-out / 1:1: %.2f×; delivered msgs/s, fan-out / separate rings: %.2f×\n",
			size, minSub/one.SubRates[0], fan.CPUPerMsgNs/one.CPUPerMsgNs, fan.Delivered/sep.Delivered)
		if alone != nil && alone.ProdCPUPerPub > 0 {
			fmt.Fprintf(w, "%d B: producer CPU per message with %d subscribers / with none: %.2f×\n", size, cfg.subscribers, fan.ProdCPUPerPub/alone.ProdCPUPerPub)
		}
	}
	return nil
}
