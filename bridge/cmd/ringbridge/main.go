// Command ringbridge carries messages between shmring rings and NATS, in
// either direction or both: ring → NATS publishes each message of a ring
// to <prefix>.<type>, NATS → ring sends each message of a subject into a
// ring. Run ringbridge -h for the flags, the delivery guarantees and
// examples; package github.com/shmring/shmring/bridge is the library.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/shmring/shmring/bridge"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

const usage = `usage: ringbridge [flags]

ringbridge carries messages between shmring rings and NATS. ring -> NATS
(-out-ring) drains a ring and publishes each message of type T to
<prefix>.T, with headers Shmring-Ring (the ring's UUID) and Shmring-Seq (its
sequence in the ring). NATS -> ring (-in-ring) receives a subject
(wildcards allowed) and sends each message into a ring, its type from the
Shmring-Type header or the subject's last token. Both may run in one
process. A ring is named 0xKEY (as ipcs prints it), key:N, or id:SHMID; it
must exist (its producer or consumer creates it).

Delivery:
  -jetstream   at-least-once, and exactly-once within the stream's
               duplicate window (-duplicates, 2m by default as in
               JetStream; set on a stream this bridge creates). A ring
               message is released only after JetStream acknowledged it
               (Nats-Msg-Id <ring uuid>-<seq>); a NATS message is
               acknowledged only after the ring committed it. A message
               that may have been delivered before (a bridge died between
               commit and acknowledgement, JetStream delivered it again)
               goes into the ring flagged Redelivered: nothing is ever
               delivered twice unflagged. A full ring stops the pulling.
  core NATS    (the default) AT MOST ONCE: a message leaves the ring when
               the bridge copies it out, and NATS drops what no subscriber
               takes at that moment, and what a slow subscriber's buffer
               (-in-pending) cannot hold. The receiving bridge counts the
               gaps it sees (ringbridge_in_lost_total, _in_dropped_total).

Echo: messages a bridge brought into a ring carry a nonzero Origin, and are
not published back to NATS unless -forward-bridged.

Stop with SIGINT or SIGTERM: what is held is finished (within -grace), and
what cannot be finished stays to be delivered again, flagged.

Examples:
  # host A: ring 0x5eed -> JetStream stream SHMRING, subjects orders.<type>
  ringbridge -nats nats://hub:4222 -jetstream -out-ring 0x5eed -out-prefix orders

  # host B: JetStream -> ring 0x5eee, every type
  ringbridge -nats nats://hub:4222 -jetstream -in-subject 'orders.>' -in-ring 0x5eee -durable host-b

  # both directions in one process, with metrics on :9120
  ringbridge -config bridge.json -metrics 127.0.0.1:9120

  bridge.json (every flag has a field; flags given override the file):
  {"url": "nats://hub:4222", "metrics": "127.0.0.1:9120",
   "out": {"ring": "0x5eed", "prefix": "a", "jetstream": true},
   "in":  {"ring": "0x5eee", "subject": "b.>", "jetstream": true, "durable": "host-a"}}

Endpoints (-metrics): /healthz (200 while connected to NATS), /metrics
(text), /metrics.json.

Flags:
`

// run is the command: it parses args, runs the bridge until SIGINT or
// SIGTERM, and returns the exit status.
func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("ringbridge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	var (
		configPath = fs.String("config", "", "JSON configuration `file` (flags given override it)")
		url        = fs.String("nats", bridge.DefaultURL, "NATS server `URL`s, comma-separated")
		name       = fs.String("name", "ringbridge", "connection name")
		metrics    = fs.String("metrics", "", "`address` of the /healthz and /metrics endpoint (none if empty)")
		reconBuf   = fs.Int("reconnect-buffer", bridge.DefaultReconnectBuffer, "`bytes` kept of what is published while NATS is unreachable")
		ringWait   = fs.String("ring-wait", "adaptive", "how to wait on the rings: adaptive, spin or block (block spares CPU on a busy host)")
		grace      = fs.Duration("grace", bridge.DefaultGrace, "how long a shutdown waits for held messages to be finished")
		jetStream  = fs.Bool("jetstream", false, "use JetStream in both directions (default: core NATS, at most once)")
		stream     = fs.String("stream", "SHMRING", "JetStream stream `name` (made if missing)")

		outRing    = fs.String("out-ring", "", "ring -> NATS: the `ring` to drain")
		outPrefix  = fs.String("out-prefix", bridge.DefaultPrefix, "ring -> NATS: subject `prefix`; type T goes to <prefix>.T")
		outBatch   = fs.Int("out-batch", bridge.DefaultOutBatch, "ring -> NATS: most messages held at once (with JetStream: in flight, unacknowledged)")
		duplicates = fs.Duration("duplicates", bridge.DefaultDuplicates, "ring -> NATS: duplicate window of a stream this bridge makes (JetStream's default is 2m)")
		ackTimeout = fs.Duration("ack-timeout", bridge.DefaultAckTimeout, "ring -> NATS: wait for a JetStream ack before publishing again")
		forward    = fs.Bool("forward-bridged", false, "ring -> NATS: also publish messages that came into the ring from NATS (risks echo loops)")

		inRing    = fs.String("in-ring", "", "NATS -> ring: the `ring` to send into")
		inSubject = fs.String("in-subject", bridge.DefaultPrefix+".>", "NATS -> ring: `subject` to receive, wildcards allowed")
		inBatch   = fs.Int("in-batch", bridge.DefaultInBatch, "NATS -> ring: most messages pulled at once")
		durable   = fs.String("durable", "ringbridge", "NATS -> ring: JetStream durable consumer `name`")
		defType   = fs.Int64("default-type", 0, "NATS -> ring: type of messages whose subject and headers give none (0: refuse them)")
		inPending = fs.Int("in-pending", 8192, "NATS -> ring, core: messages buffered while the ring is full; more are dropped")
		quiet     = fs.Bool("q", false, "log errors only")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ringbridge: unexpected arguments %q\n", fs.Args())
		return 2
	}
	cfg := &bridge.Config{}
	if *configPath != "" {
		var err error
		if cfg, err = bridge.LoadConfig(*configPath); err != nil {
			fmt.Fprintln(stderr, "ringbridge:", err)
			return 2
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	given := func(name string) bool { return set[name] || *configPath == "" }
	setFlag(given, "nats", &cfg.URL, *url)
	setFlag(given, "name", &cfg.Name, *name)
	setFlag(given, "metrics", &cfg.Metrics, *metrics)
	setFlag(given, "reconnect-buffer", &cfg.ReconnectBuffer, *reconBuf)
	setFlag(given, "ring-wait", &cfg.RingWait, *ringWait)
	setFlag(given, "grace", &cfg.Grace, bridge.Duration(*grace))
	if set["out-ring"] && cfg.Out == nil {
		cfg.Out = &bridge.OutboundConfig{}
	}
	if o := cfg.Out; o != nil {
		setFlag(given, "out-ring", &o.Ring, *outRing)
		setFlag(given, "out-prefix", &o.Prefix, *outPrefix)
		setFlag(given, "stream", &o.Stream, *stream)
		setFlag(given, "jetstream", &o.JetStream, *jetStream)
		setFlag(given, "out-batch", &o.Batch, *outBatch)
		setFlag(given, "duplicates", &o.Duplicates, bridge.Duration(*duplicates))
		setFlag(given, "ack-timeout", &o.AckTimeout, bridge.Duration(*ackTimeout))
		setFlag(given, "forward-bridged", &o.ForwardBridged, *forward)
	}
	if set["in-ring"] && cfg.In == nil {
		cfg.In = &bridge.InboundConfig{}
	}
	if in := cfg.In; in != nil {
		setFlag(given, "in-ring", &in.Ring, *inRing)
		setFlag(given, "in-subject", &in.Subject, *inSubject)
		setFlag(given, "stream", &in.Stream, *stream)
		setFlag(given, "durable", &in.Durable, *durable)
		setFlag(given, "jetstream", &in.JetStream, *jetStream)
		setFlag(given, "in-batch", &in.Batch, *inBatch)
		setFlag(given, "default-type", &in.DefaultType, *defType)
		setFlag(given, "in-pending", &in.Pending, *inPending)
	}
	full := cfg.WithDefaults()
	if err := full.Validate(); err != nil {
		fmt.Fprintln(stderr, "ringbridge:", err)
		fmt.Fprintln(stderr, "ringbridge -h explains the flags")
		return 2
	}

	logger := log.New(stderr, "ringbridge: ", log.LstdFlags)
	logf := logger.Printf
	if *quiet {
		logf = func(string, ...any) {}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, func() {
		stop() // a second signal ends the process at once
		logf("stopping: finishing what is held (at most %v)", time.Duration(full.Grace))
	})
	if err := bridge.Run(ctx, full, nil, logf); err != nil {
		logger.Print(err)
		return 1
	}
	return 0
}

// setFlag sets *dst to v if the flag name was given (or there is no
// configuration file, so flags and their defaults are the configuration).
func setFlag[T any](given func(string) bool, name string, dst *T, v T) {
	if given(name) {
		*dst = v
	}
}
