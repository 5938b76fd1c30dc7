// Command ringbench measures the shmring ring against System V message
// queues (package msgq), pipes and unix sockets, with every side of every
// transport in a process of its own.
//
// Usage:
//
//	ringbench [flags]
//
// With no flags it compares the ring with msgq for 64-byte messages, one
// producer and one consumer, one way (throughput) and there and back
// (ping-pong), each run three times for one second after a quarter-second
// warm-up, and prints a table with the medians and the ratio to msgq. That
// takes about 16 seconds. For example:
//
//	ringbench -transports ring,msgq,pipe,unix -sizes 8,64,1024,4096
//	ringbench -mode throughput -producers 4 -consumers 4
//	ringbench -wait spin -pin -sizes 64 -mode pingpong
//	ringbench -batch 32 -md >> BENCHMARKS.md
//	ringbench -json | jq .msgs_per_sec
//	ringbench -pattern chat,server -clients 1,4
//
// # What is measured
//
// Each run creates its IPC objects in the ringbench process (all private),
// starts the sides as child processes (ringbench runs itself again; the
// environment variable RINGBENCH_CHILD tells a child what to do), waits until
// every child is attached, and gives them all the same start time. The
// children run a warm-up (-warmup), then the measured interval (-duration),
// and report to the parent as JSON on their standard output. The parent then
// removes every object it made; it does so too when the run fails or is
// interrupted with SIGINT or SIGTERM, after killing the children. Children
// also die with the parent (PR_SET_PDEATHSIG).
//
// Every message is written in full by its sender (a sequence number, a check
// and a body that differs from message to message) and read in full and
// checked by its receiver; a lost, repeated or corrupt message fails the run
// (see payload.go). At the end the messages received must add up to the
// messages sent.
//
// Throughput: the producers send as fast as they can; msgs/s is what the
// consumers received during the measured interval, by their own clocks.
// Ping-pong: one process sends a request, the other answers it with a reply
// of the same size; the initiator times each round trip and reports the
// percentiles p50, p99, p99.9 and the maximum. In ping-pong rows msgs_per_sec
// counts both directions (twice the round trips per second).
//
// cpu_ns_per_msg is the user and system CPU time of every child of the run
// over the measured interval (getrusage in each child), divided by the
// messages: a side that spins pays for it here. sem_ops_per_msg (ring only)
// is how many semaphore operations (sleeps and wake-ups, from the ring's
// counters) a message cost, and allocs_per_msg the heap allocations.
//
// The transports:
//
//   - ring: a ring of -slots slots of the message size, SPSC, MPSC, SPMC or
//     MPMC as -producers and -consumers say; -wait picks the wait strategy,
//     -batch sends and receives n messages per call (SendBatch,
//     ReceiveBatch), -zerocopy writes and reads the messages in place
//     (Reserve/Commit, Peek/Release). Ping-pong uses two SPSC rings.
//   - msgq: one System V message queue, whose byte limit ringbench sets to
//     the ring's capacity (slots × size) when it may (raising it above
//     msgmnb needs CAP_SYS_RESOURCE); otherwise the output says which limit
//     it ran with. Messages are sent and received with a kept msgq.Message
//     (no copy but the kernel's). Ping-pong uses one queue and two message
//     types. Several producers and consumers share the queue.
//   - pipe: one pipe per direction, one write and one read per message.
//   - unix: a SOCK_SEQPACKET socket pair, one send and one receive per
//     message.
//
// Only the ring has a batch or zero-copy API; the other transports ignore
// -batch and -zerocopy, and ping-pong ignores -batch.
//
// With -slot BYTES, each size above BYTES also runs through a ring of
// BYTES-byte slots (Options.SlotSize), whose messages span as many slots
// as they need, beside the ring whose slots fit the message: the row's
// transport is ring/<BYTES>B-slots, it holds as many messages (-slots
// times the slots a message spans), and a note gives its MB/s over the
// fitting ring's (vs_fit in JSON). With -zerocopy its producers write the
// messages in place (Producer.ReserveSpan, in two parts at the wrap) and
// its consumers read them in place (Peeked.Data, then Peeked.Wrapped).
//
// A size a transport cannot carry (msgq above msgmax, unix above 64 KiB)
// is not run for that transport, and the output says so (on standard
// error with -json); a command line with nothing else to run is an error.
//
//	ringbench -mode throughput -sizes 65536,1048576 -slot 4096 -slots 32 -transports ring,msgq,pipe,unix
//
// # Patterns of selective receive
//
// -pattern runs processes that share one ring, or one message queue, and
// take their messages out of it by type, ring against msgq (pattern.go):
//
//   - chat: two processes, each sending messages of its own type and
//     receiving only the other's, over one ring created with
//     Options.Selective, MPMC with two producers and two consumers
//     (Consumer.ReceiveSelect with ipc.OfType) or one msgq queue (msgrcv
//     with the type). One side sends and waits for the answer, and times
//     the round trip: the percentiles p50, p99, p99.9 and the maximum, as in
//     ping-pong.
//   - server: one server and -clients N clients over one selective ring
//     (MPMC, N+1 producers and consumers) or one queue. A request has type 1
//     and carries the client's pid, which is the type of its reply; the
//     server receives type 1 only and each client only its pid, the
//     classic message-queue pattern (pids of live processes differ, so
//     replies cannot collide). Each client makes one round trip at a time,
//     as fast as it can. The row reports the requests per second of all the
//     clients together, p50 and p99 (and p99.9 and the maximum in JSON) of
//     all their round trips, and the CPU of every process per request.
//
// The messages are checked as in the modes; a server's request also
// carries the client's pid and index, checked against each other and
// against its reply. -sizes, -slots, -wait, -spin, -pin, -gomaxprocs and
// -count apply to the patterns; -batch, -zerocopy, -producers and
// -consumers do not. Without -mode only the patterns run, and the output
// has a table per pattern; with -mode the modes run first.
//
// # Processes and CPUs
//
// Children run with GOMAXPROCS=1 by default (-gomaxprocs): each side is one
// goroutine, and more Ps would only add scheduler threads that compete for
// the CPUs with the sides themselves. With -pin each child locks its
// goroutine to its thread and binds every thread of the process to one CPU:
// child k (producers first, then consumers; initiator, then responder) gets
// the k-th CPU of ringbench's affinity mask, modulo their number, so the two
// sides of a one-to-one run are on different CPUs when there are two. On a
// machine with few CPUs, spinning sides (-wait spin, or adaptive while the
// peer is slow) compete for them with everything else.
//
// # Output
//
// By default a table for people; with -json one JSON object per result, one
// per line, with the fields transport, mode, size, producers, consumers,
// wait, msgs_per_sec, mb_per_sec, rtt_p50_ns, rtt_p99_ns, rtt_p999_ns,
// rtt_max_ns (ping-pong), cpu_ns_per_msg, sem_ops_per_msg (ring), and batch,
// zerocopy, pinned, count, msgs_per_sec_min, msgs_per_sec_max, spread_pct,
// round_trips_per_sec, allocs_per_msg, slots, queue_bytes, vs_msgq and note;
// with -md markdown tables. Results are the median of -count runs; spread is
// (max−min)/median of msgs/s (throughput) or of p50 (ping-pong). vs_msgq is
// the row's msgs/s over msgq's (throughput) or msgq's p50 over the row's
// (ping-pong) for the same size, producers and consumers: higher is better.
//
// A pattern's result has mode and pattern set to its name (chat or server)
// and clients to its clients (2 for a chat: the two sides); producers and
// consumers are the processes that send and receive (2, or N+1). Its
// round_trips_per_sec is the round trips (requests) per second, all
// clients together, msgs_per_sec twice that (requests and replies), the
// rtt fields its round trips, and cpu_ns_per_msg the CPU per message (half
// the CPU per request). vs_msgq is msgq's p50 over the row's for a chat,
// and the row's requests per second over msgq's for a server, with the same
// size and clients. The results of the modes have no pattern and clients.
//
// While it runs, ringbench shows its progress on standard error if that is a
// terminal. It exits with status 2 for bad flags, 1 when a run fails, and
// 128+n when signal n stopped it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/bits"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmring/shmring/msgq"
	"github.com/shmring/shmring/ring"
)

// Modes of a run.
const (
	modeThroughput = "throughput"
	modePingPong   = "pingpong"
)

// maxSize bounds message sizes for every transport; unix sockets take less
// (maxUnixSize), msgq up to msgmax.
const (
	maxSize     = 1 << 20
	maxUnixSize = 64 << 10
)

// allTransports lists the transports in the order they are run and shown.
var allTransports = []string{"ring", "msgq", "pipe", "unix"}

// config is what the flags ask for.
type config struct {
	transports []string
	sizes      []int
	modes      []string
	patterns   []string // -pattern: chat, server; run after the modes
	clients    []int    // -clients: client counts of the server pattern
	duration   time.Duration
	warmup     time.Duration
	count      int
	producers  int
	consumers  int
	slots      int
	slot       int      // -slot: ring slot bytes for messages larger than a slot, which span slots (span.go)
	skips      []string // transports and sizes not run, and why (a limit of the transport)
	wait       ring.WaitStrategy
	spin       time.Duration
	batch      int
	zeroCopy   bool
	pin        bool
	gomaxprocs int
	json       bool
	md         bool
	debug      bool

	subscribers int         // -subscribers: the fan-out benchmark (fanout.go) instead of the rest
	policy      ring.Policy // -policy of the fan-out ring
}

// usageError is a bad command line: ringbench exits with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// parseFlags parses and checks the command line. Errors are *usageError,
// or flag.ErrHelp for -h.
func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("ringbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: ringbench [flags]\n\n"+
			"Measures the shmring ring against msgq, pipes and unix sockets across processes.\n"+
			"With no flags: ring vs msgq, 64 B, throughput and ping-pong, about 16 s.\n"+
			"With -pattern chat,server: selective receive by type, ring vs msgq, over one ring or queue.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var (
		transports = fs.String("transports", "ring,msgq", "comma-separated `list` of transports: ring, msgq, pipe, unix")
		sizes      = fs.String("sizes", "64", "comma-separated message sizes in `bytes` (at least 8; 16 with -pattern server)")
		mode       = fs.String("mode", "both", "throughput, pingpong or both")
		wait       = fs.String("wait", "adaptive", "ring wait strategy: adaptive, spin or block")
		pattern    = fs.String("pattern", "", "comma-separated `list` of selective-receive patterns, ring vs msgq over one ring or queue:\n"+
			"chat (two processes, each receives the other's type: round trip) and\n"+
			"server (a server and -clients clients, replies typed by the client's pid: requests/s);\n"+
			"without -mode, only the patterns run")
		clients = fs.String("clients", "1", "comma-separated client `counts` of -pattern server (1 to 64)")
		policy  = fs.String("policy", "block", "fan-out (-subscribers): slow-subscriber policy, block or overwrite")
	)
	c := &config{}
	fs.DurationVar(&c.duration, "duration", time.Second, "measured `time` of each run")
	fs.DurationVar(&c.warmup, "warmup", 250*time.Millisecond, "warm-up `time` before each measurement")
	fs.IntVar(&c.count, "count", 3, "runs of each case; the median is reported")
	fs.IntVar(&c.producers, "producers", 1, "producer processes (ring and msgq, throughput)")
	fs.IntVar(&c.consumers, "consumers", 1, "consumer processes (ring and msgq, throughput)")
	fs.IntVar(&c.slots, "slots", 1024, "ring slots, a power of two; msgq's byte limit is set to slots × size")
	fs.IntVar(&c.slot, "slot", 0, "ring: also run, for each size above it, a ring of slots of `bytes` (a multiple of 64) whose messages span slots,\n"+
		"holding as many messages as -slots slots of the size; 0: slots fit the message")
	fs.DurationVar(&c.spin, "spin", 0, "how long the adaptive wait spins before it sleeps (0: the ring's default)")
	fs.IntVar(&c.batch, "batch", 1, "ring: send and receive `n` messages per call (SendBatch, ReceiveBatch)")
	fs.BoolVar(&c.zeroCopy, "zerocopy", false, "ring: write and read messages in place (Reserve/Commit, Peek/Release)")
	fs.BoolVar(&c.pin, "pin", false, "bind each side to its own CPU (round robin over the allowed CPUs)")
	fs.IntVar(&c.gomaxprocs, "gomaxprocs", 1, "GOMAXPROCS of the child processes")
	fs.BoolVar(&c.json, "json", false, "print one JSON object per result, one per line")
	fs.BoolVar(&c.md, "md", false, "print markdown tables")
	fs.BoolVar(&c.debug, "debug", false, "print the IPC objects and processes ringbench makes on standard error")
	fs.IntVar(&c.subscribers, "subscribers", 0, "fan-out: `n` subscriber processes of one fan-out ring, beside the 1:1 ring, n separate 1:1 rings and n msgq queues\n"+
		"written in turn (only this runs; -sizes, -duration, -warmup, -count, -slots, -slot, -wait apply: with -slot every case's rings\n"+
		"carry larger messages across slots of that size)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, &usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q: ringbench takes only flags", fs.Arg(0))
	}

	for _, t := range splitList(*transports) {
		if !slices.Contains(allTransports, t) {
			return nil, usagef("-transports: unknown transport %q (want ring, msgq, pipe or unix)", t)
		}
		if !slices.Contains(c.transports, t) {
			c.transports = append(c.transports, t)
		}
	}
	if len(c.transports) == 0 {
		return nil, usagef("-transports: no transport given (want ring, msgq, pipe or unix)")
	}
	slices.SortStableFunc(c.transports, func(a, b string) int {
		return slices.Index(allTransports, a) - slices.Index(allTransports, b)
	})
	for _, s := range splitList(*sizes) {
		n, err := strconv.Atoi(s)
		switch {
		case err != nil:
			return nil, usagef("-sizes: %q is not a number of bytes", s)
		case n < minSize:
			return nil, usagef("-sizes: %d bytes is below the minimum of %d: every message carries a 4-byte sequence number and a 4-byte check", n, minSize)
		case n > maxSize:
			return nil, usagef("-sizes: %d bytes is above ringbench's maximum of %d", n, maxSize)
		}
		if !slices.Contains(c.sizes, n) {
			c.sizes = append(c.sizes, n)
		}
	}
	if len(c.sizes) == 0 {
		return nil, usagef("-sizes: no size given")
	}
	switch *mode {
	case modeThroughput, modePingPong:
		c.modes = []string{*mode}
	case "both":
		c.modes = []string{modeThroughput, modePingPong}
	default:
		return nil, usagef("-mode: unknown mode %q (want throughput, pingpong or both)", *mode)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	if err = parsePatterns(c, *pattern, *clients, set); err != nil {
		return nil, err
	}
	if c.policy, err = ring.ParsePolicy(*policy); err != nil {
		return nil, usagef("-policy: unknown policy %q (want block or overwrite)", *policy)
	}
	if c.subscribers < 0 || c.subscribers > 64 {
		return nil, usagef("-subscribers must be from 1 to 64, not %d", c.subscribers)
	}
	w, err := ring.ParseWaitStrategy(*wait)
	if err != nil {
		return nil, usagef("-wait: unknown wait strategy %q (want adaptive, spin or block)", *wait)
	}
	c.wait = w

	switch {
	case c.duration <= 0:
		return nil, usagef("-duration must be positive, not %v", c.duration)
	case c.warmup < 0:
		return nil, usagef("-warmup must not be negative, not %v", c.warmup)
	case c.count < 1:
		return nil, usagef("-count must be at least 1, not %d", c.count)
	case c.producers < 1 || c.consumers < 1:
		return nil, usagef("-producers and -consumers must be at least 1")
	case c.producers > 64 || c.consumers > 64:
		return nil, usagef("-producers and -consumers must be at most 64")
	case c.slots < 2 || bits.OnesCount(uint(c.slots)) != 1 || c.slots > 1<<24:
		return nil, usagef("-slots must be a power of two from 2 to %d, not %d", 1<<24, c.slots)
	case c.spin < 0:
		return nil, usagef("-spin must not be negative, not %v", c.spin)
	case c.batch < 1 || c.batch > c.slots:
		return nil, usagef("-batch must be from 1 to -slots (%d), not %d", c.slots, c.batch)
	case c.batch > 1 && c.zeroCopy:
		return nil, usagef("-batch and -zerocopy cannot be combined: the zero-copy API handles one message at a time")
	case c.gomaxprocs < 1:
		return nil, usagef("-gomaxprocs must be at least 1, not %d", c.gomaxprocs)
	case c.json && c.md:
		return nil, usagef("-json and -md cannot be combined")
	}
	if (c.producers > 1 || c.consumers > 1) && len(c.modes) > 0 {
		for _, t := range c.transports {
			if t == "pipe" || t == "unix" {
				return nil, usagef("-producers %d -consumers %d: %s connects one writer to one reader; use -transports ring,msgq for more", c.producers, c.consumers, t)
			}
		}
		if slices.Contains(c.modes, modePingPong) {
			return nil, usagef("-producers %d -consumers %d: ping-pong is one request and one reply between two processes; add -mode throughput", c.producers, c.consumers)
		}
	}
	if c.slot < 0 || c.slot%64 != 0 || c.slot > 0 && c.slot < 64 {
		return nil, usagef("-slot must be a multiple of 64 bytes (or 0), not %d", c.slot)
	}
	// A size a transport cannot carry is left out for that transport, and
	// the output says so; only a command line of nothing but such cases is
	// an error.
	var refused []string
	if slices.Contains(c.transports, "msgq") {
		lim, err := msgq.SystemLimits()
		if err != nil {
			return nil, usagef("msgq: cannot read the system's message queue limits: %v", err)
		}
		for _, n := range c.sizes {
			if n > lim.MaxMessage {
				refused = append(refused, fmt.Sprintf("msgq %d B", n))
				c.skips = append(c.skips, fmt.Sprintf("msgq %d B: not run: %d bytes is above msgmax (%d bytes, kernel.msgmax), the largest message a queue carries", n, n, lim.MaxMessage))
			}
		}
		if len(refused) == len(c.sizes) && len(c.transports) == 1 {
			return nil, usagef("-sizes: %d bytes is above msgmax (%d bytes, kernel.msgmax): msgq cannot carry it; leave msgq out of -transports or raise the limit", c.sizes[0], lim.MaxMessage)
		}
	}
	if slices.Contains(c.transports, "unix") {
		n0 := len(refused)
		for _, n := range c.sizes {
			if n > maxUnixSize {
				refused = append(refused, fmt.Sprintf("unix %d B", n))
				c.skips = append(c.skips, fmt.Sprintf("unix %d B: not run: %d bytes is above %d, the largest unix datagram ringbench sends", n, n, maxUnixSize))
			}
		}
		if len(refused)-n0 == len(c.sizes) && len(c.transports) == 1 {
			return nil, usagef("-sizes: %d bytes is above %d, the largest unix datagram ringbench sends", c.sizes[0], maxUnixSize)
		}
	}
	if len(refused) == len(c.sizes)*len(c.transports) {
		return nil, usagef("-sizes: no transport of -transports can carry them: %s", strings.Join(refused, ", "))
	}
	return c, nil
}

// skipped reports whether cfg leaves transport t out at size n.
func (c *config) skipped(t string, n int) bool {
	prefix := fmt.Sprintf("%s %d B:", t, n)
	return slices.ContainsFunc(c.skips, func(s string) bool { return strings.HasPrefix(s, prefix) })
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func main() {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(childMain(spec))
	}
	if role := os.Getenv(fanoutEnv); role != "" {
		os.Exit(fanoutChild(role)) // fanout.go
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is ringbench's parent: it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "ringbench: %v\nRun 'ringbench -h' for the flags.\n", err)
		return 2
	}
	debugOut = nil
	if cfg.debug {
		debugOut = stderr
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	var (
		sigMu  sync.Mutex
		caught os.Signal
	)
	go func() {
		s, ok := <-sigs
		if !ok {
			return
		}
		sigMu.Lock()
		caught = s
		sigMu.Unlock()
		cancel()
		// The run unwinds on its own, killing its children and removing its
		// objects. If it does not within a few seconds, or a second signal
		// comes, do it here and leave.
		select {
		case <-sigs:
		case <-time.After(10 * time.Second):
		}
		cleanup.runAll()
		os.Exit(signalStatus(s))
	}()

	if cfg.subscribers > 0 {
		err := runFanout(ctx, cfg, stdout) // fanout.go
		if cerr := cleanup.runAll(); err == nil {
			err = cerr
		}
		if err != nil {
			fmt.Fprintf(stderr, "ringbench: %v\n", err)
			return 1
		}
		return 0
	}
	prog := newProgress(stderr)
	results, err := benchmark(ctx, cfg, prog)
	prog.clear()
	cerr := cleanup.runAll()
	sigMu.Lock()
	s := caught
	sigMu.Unlock()
	if s != nil {
		fmt.Fprintf(stderr, "ringbench: stopped by %v; child processes ended and IPC objects removed\n", s)
		if cerr != nil {
			fmt.Fprintf(stderr, "ringbench: cleanup: %v\n", cerr)
		}
		return signalStatus(s)
	}
	if err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintf(stderr, "ringbench: %v\n", err)
		return 1
	}
	if err := report(stdout, stderr, cfg, results); err != nil {
		fmt.Fprintf(stderr, "ringbench: %v\n", err)
		return 1
	}
	return 0
}

// signalStatus is the exit status for a run stopped by s: 128 + its number.
func signalStatus(s os.Signal) int {
	if n, ok := s.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return 1
}

// benchCase is one line of the results: a transport in a mode, or in a
// pattern, at a size.
type benchCase struct {
	transport string
	mode      string // the pattern's name for a pattern
	size      int
	producers int
	consumers int
	pattern   string // chat or server; empty for the modes
	clients   int    // the pattern's clients: 2 for a chat
	slot      int    // ring: the slot size of a ring whose messages span slots (-slot); 0: slots fit the message
}

func (c benchCase) String() string {
	s := fmt.Sprintf("%s %s %d B", c.transport, c.mode, c.size)
	if c.slot > 0 {
		s = fmt.Sprintf("%s (%d B slots) %s %d B", c.transport, c.slot, c.mode, c.size)
	}
	switch {
	case c.pattern == patternServer:
		s += fmt.Sprintf(" %d clients", c.clients)
	case c.pattern != "":
	case c.producers > 1 || c.consumers > 1:
		s += fmt.Sprintf(" %d:%d", c.producers, c.consumers)
	}
	return s
}

// cases lists the cases of cfg in the order they are run and shown.
func cases(cfg *config) []benchCase {
	var out []benchCase
	for _, m := range cfg.modes {
		for _, size := range cfg.sizes {
			for _, t := range cfg.transports {
				if cfg.skipped(t, size) {
					continue
				}
				c := benchCase{transport: t, mode: m, size: size, producers: cfg.producers, consumers: cfg.consumers}
				out = append(out, c)
				if t == "ring" && cfg.slot > 0 && size > cfg.slot {
					c.slot = cfg.slot // beside it, the same through slots it spans
					out = append(out, c)
				}
			}
		}
	}
	for _, p := range cfg.patterns {
		counts := cfg.clients
		if p == patternChat {
			counts = []int{2}
		}
		for _, n := range counts {
			roles := patternRoles(p, n)
			for _, size := range cfg.sizes {
				for _, t := range cfg.transports {
					out = append(out, benchCase{transport: t, mode: p, size: size, producers: roles, consumers: roles, pattern: p, clients: n})
				}
			}
		}
	}
	return out
}

// benchmark runs every case cfg.count times, interleaved so that a slow
// patch of the machine does not hit one case only, and summarizes them.
func benchmark(ctx context.Context, cfg *config, prog *progress) ([]*result, error) {
	cs := cases(cfg)
	runs := make([][]*runResult, len(cs))
	total := len(cs) * cfg.count
	for rep := 0; rep < cfg.count; rep++ {
		for i, c := range cs {
			prog.show("[%d/%d] %v, run %d of %d", rep*len(cs)+i+1, total, c, rep+1, cfg.count)
			r, err := runCase(ctx, cfg, c)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				return nil, fmt.Errorf("%v: %w", c, err)
			}
			runs[i] = append(runs[i], r)
		}
	}
	out := make([]*result, len(cs))
	for i, c := range cs {
		out[i] = aggregate(cfg, c, runs[i])
	}
	compare(out)
	return out, nil
}

// progress shows one line of progress on a terminal, and nothing elsewhere.
type progress struct {
	w  io.Writer
	on bool
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		p.on = err == nil
	}
	return p
}

func (p *progress) show(format string, args ...any) {
	if p.on {
		fmt.Fprintf(p.w, "\r\033[Kringbench: "+format, args...)
	}
}

func (p *progress) clear() {
	if p.on {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// debugOut receives the -debug lines; nil without -debug.
var debugOut io.Writer

func debugf(format string, args ...any) {
	if debugOut != nil {
		fmt.Fprintf(debugOut, "ringbench: debug: "+format+"\n", args...)
	}
}

// cleanups are the undo actions of everything a run made that outlives it:
// IPC objects to remove and child processes to kill. Each runs once, from
// the run that made it or, if the run cannot finish, from the signal
// handler.
type cleanups struct {
	mu      sync.Mutex
	entries []*cleanupEntry
}

// cleanup holds every pending cleanup of this process.
var cleanup cleanups

type cleanupEntry struct {
	mu   sync.Mutex
	done bool
	fn   func() error
}

// add registers fn and returns its entry.
func (c *cleanups) add(fn func() error) *cleanupEntry {
	e := &cleanupEntry{fn: fn}
	c.mu.Lock()
	c.entries = append(c.entries, e)
	c.mu.Unlock()
	return e
}

// run runs the entry's action unless it ran already.
func (e *cleanupEntry) run() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.done {
		return nil
	}
	e.done = true
	return e.fn()
}

// runAll runs every pending action, newest first (children are killed
// before the objects they use are removed), and forgets them.
func (c *cleanups) runAll() error {
	c.mu.Lock()
	entries := c.entries
	c.entries = nil
	c.mu.Unlock()
	var errs []error
	for i := len(entries) - 1; i >= 0; i-- {
		errs = append(errs, entries[i].run())
	}
	return errors.Join(errs...)
}

// forget drops entries that have run from the pending list.
func (c *cleanups) forget(entries ...*cleanupEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries = slices.DeleteFunc(c.entries, func(e *cleanupEntry) bool { return slices.Contains(entries, e) })
}
