// Command bridgebench measures ringbridge over loopback against nats.go
// itself on the same NATS server, every side in a process of its own (the
// command runs itself as each of them):
//
//	core        producer → ring → ringbridge → NATS → ringbridge → ring → consumer
//	core-out    producer → ring → ringbridge → NATS → nats.go subscriber
//	core-plain  nats.go publisher → NATS → nats.go subscriber
//	core-plain-hdr  the same, each message with the four headers a core-mode bridge sends
//	js-out      producer → ring → ringbridge → JetStream, counted by a nats.go subscriber
//	js          the chain of core with JetStream in both bridges
//	js-plain    JetStream publisher with async acks → stream → nats.go's streaming pull (Consume), acking each, both at once
//	js-pub      the JetStream publisher alone, until its last ack
//	rtt         ping-pong through two bridges each way (four rings), core NATS
//	rtt-plain   ping-pong between two nats.go clients
//
// Throughput is counted at the receiving end, from its first message to
// its last. Runs are interleaved: each round runs every case once.
//
//	go run ./cmd/bridgebench -size 64 -n 200000 -runs 5
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shmring/shmring/bridge"
	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/ring"
)

// roleEnv names the role a child process plays.
const roleEnv = "BRIDGEBENCH_ROLE"

func main() {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(child(role))
	}
	size := flag.Int("size", 64, "message size in bytes")
	n := flag.Int("n", 200000, "messages per throughput run")
	rtts := flag.Int("rtt", 5000, "round trips per latency run")
	runs := flag.Int("runs", 5, "rounds (each runs every case once)")
	batch := flag.Int("batch", 0, "the bridges' -out-batch and -in-batch (0: their defaults)")
	wait := flag.String("ring-wait", "", "how every ring side waits, the bridges' and the producers' and consumers' (adaptive, spin, block)")
	cases := flag.String("cases", "core,core-plain,js,js-plain,js-pub,rtt,rtt-plain", "cases to run")
	flag.Parse()

	b := &bench{size: *size, n: *n, rtts: *rtts, batch: *batch, wait: *wait}
	results := map[string][]float64{}
	names := strings.Split(*cases, ",")
	for round := 0; round < *runs; round++ {
		for _, name := range names {
			v, err := b.run(name)
			if err != nil {
				fmt.Fprintf(os.Stderr, "bridgebench: %s: %v\n", name, err)
				os.Exit(1)
			}
			results[name] = append(results[name], v)
			fmt.Fprintf(os.Stderr, "round %d %-10s %s\n", round+1, name, format(name, v))
		}
	}
	fmt.Printf("size %d B, %d messages per run (%d round trips), median of %d interleaved runs\n", *size, *n, *rtts, *runs)
	for _, name := range names {
		fmt.Printf("  %-10s %s\n", name, format(name, median(results[name])))
	}
	ratio := func(a, p string) {
		if len(results[a]) > 0 && len(results[p]) > 0 {
			fmt.Printf("  %s / %s = %.2f\n", a, p, median(results[a])/median(results[p]))
		}
	}
	ratio("core", "core-plain")
	ratio("js", "js-plain")
	ratio("js", "js-pub")
	if len(results["rtt"]) > 0 && len(results["rtt-plain"]) > 0 {
		fmt.Printf("  rtt / rtt-plain = %.2f\n", median(results["rtt"])/median(results["rtt-plain"]))
	}
}

func format(name string, v float64) string {
	if strings.HasPrefix(name, "rtt") {
		return fmt.Sprintf("p50 %.1f µs", v/1e3)
	}
	return fmt.Sprintf("%.0f msgs/s", v)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// bench is one configuration; run starts a fresh server for each case.
type bench struct {
	size, n, rtts, batch int
	wait                 string
}

// proc is a child process of this command.
type proc struct {
	cmd *exec.Cmd
	out strings.Builder
}

func spawn(role string, env ...string) *proc {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	p := &proc{cmd: exec.Command(exe)}
	p.cmd.Env = append(append(os.Environ(), roleEnv+"="+role), env...)
	p.cmd.Stdout = &p.out
	p.cmd.Stderr = os.Stderr
	if err := p.cmd.Start(); err != nil {
		panic(err)
	}
	return p
}

func (p *proc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
}

// wait waits for the child to end and returns what it printed.
func (p *proc) wait() (string, error) {
	err := p.cmd.Wait()
	return strings.TrimSpace(p.out.String()), err
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// run runs one case and returns msgs/s, or for rtt the median round trip
// in nanoseconds.
func (b *bench) run(name string) (float64, error) {
	dir, err := os.MkdirTemp("", "bridgebench")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	port := freePort()
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	srv := spawn("serve", "PORT="+strconv.Itoa(port), "STORE="+dir)
	defer srv.stop()
	for {
		nc, err := nats.Connect(url)
		if err == nil {
			nc.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	common := []string{"RING_WAIT=" + b.wait, "URL=" + url, "N=" + strconv.Itoa(b.n), "SIZE=" + strconv.Itoa(b.size), "RTTS=" + strconv.Itoa(b.rtts)}
	switch name {
	case "core", "js":
		return b.chain(url, name == "js", common)
	case "core-plain", "core-plain-hdr":
		sub := spawn("natssub", common...)
		waitReady(sub)
		spawn("natspub", append(common, "HEADERS="+strconv.FormatBool(name == "core-plain-hdr"))...).wait()
		return rate(sub)
	case "core-out", "js-out":
		return b.outOnly(url, name == "js-out", common)
	case "js-plain":
		// Publisher and pull consumer at once, as the bridges of the
		// chain run at once.
		if err := plainStream(url); err != nil {
			return 0, err
		}
		sub := spawn("jssub", common...)
		waitReady(sub)
		pub := spawn("jspub", common...)
		if _, err := pub.wait(); err != nil {
			return 0, err
		}
		return rate(sub)
	case "js-pub":
		if err := plainStream(url); err != nil {
			return 0, err
		}
		return rate(spawn("jspub", common...))
	case "rtt":
		return b.rtt(url, common)
	case "rtt-plain":
		echo := spawn("natsecho", common...)
		waitReady(echo)
		defer echo.stop()
		return rate(spawn("natsping", common...))
	}
	return 0, fmt.Errorf("unknown case %q", name)
}

// waitReady waits for a child's "ready" line.
func waitReady(p *proc) {
	for !strings.Contains(p.out.String(), "ready") {
		time.Sleep(5 * time.Millisecond)
	}
}

// rate waits for a child that prints one number.
func rate(p *proc) (float64, error) {
	out, err := p.wait()
	if err != nil {
		return 0, err
	}
	f := strings.Fields(out)
	if len(f) == 0 {
		return 0, fmt.Errorf("no result")
	}
	return strconv.ParseFloat(f[len(f)-1], 64)
}

func newRing(size int) *ring.Ring {
	r, err := ring.Create(ipc.Private, &ring.Options{Mode: ring.MPMC, Slots: 4096, MaxMessage: size, MaxProducers: 2, MaxConsumers: 2})
	if err != nil {
		panic(err)
	}
	return r
}

func ringEnv(name string, r *ring.Ring) string {
	return name + "=" + strconv.Itoa(r.SegmentID())
}

func (b *bench) bridgeProc(cfg bridge.Config) *proc {
	cfg.RingWait = b.wait
	js, _ := json.Marshal(cfg)
	return spawn("bridge", "CONFIG="+string(js))
}

// chain runs producer → ring A → bridge → NATS → bridge → ring B → consumer.
func (b *bench) chain(url string, js bool, common []string) (float64, error) {
	a, rb := newRing(b.size), newRing(b.size)
	defer a.Remove()
	defer rb.Remove()
	metrics := fmt.Sprintf("127.0.0.1:%d", freePort())
	in := b.bridgeProc(bridge.Config{URL: url, Metrics: metrics, In: &bridge.InboundConfig{Ring: "id:" + strconv.Itoa(rb.SegmentID()), Subject: "bench.>", JetStream: js, Pending: 1 << 16, Batch: b.batch}})
	defer in.stop()
	out := b.bridgeProc(bridge.Config{URL: url, Out: &bridge.OutboundConfig{Ring: "id:" + strconv.Itoa(a.SegmentID()), Prefix: "bench", JetStream: js, Batch: b.batch}})
	defer out.stop()
	cons := spawn("ringcons", append(common, ringEnv("RING", rb))...)
	if err := waitSubscribed(url, metrics, "bench.probe"); err != nil {
		return 0, err
	}
	spawn("ringprod", append(common, ringEnv("RING", a))...)
	return rate(cons)
}

// outOnly runs producer → ring → bridge → NATS → nats.go subscriber.
func (b *bench) outOnly(url string, js bool, common []string) (float64, error) {
	a := newRing(b.size)
	defer a.Remove()
	sub := spawn("natssub", append(common, "SUBJECT=bench.>")...)
	waitReady(sub)
	out := b.bridgeProc(bridge.Config{URL: url, Out: &bridge.OutboundConfig{Ring: "id:" + strconv.Itoa(a.SegmentID()), Prefix: "bench", JetStream: js, Batch: b.batch}})
	defer out.stop()
	spawn("ringprod", append(common, ringEnv("RING", a))...)
	return rate(sub)
}

// plainStream makes the stream of the plain JetStream cases.
func plainStream(url string) error {
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	_, err = js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "PLAIN", Subjects: []string{"plain.>"}, Storage: jetstream.FileStorage})
	return err
}

// waitSubscribed publishes messages without a type until the inbound
// bridge with the given metrics endpoint has refused one: then its
// subscription is in place.
func waitSubscribed(url, metrics, subject string) error {
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		nc.Publish(subject, nil)
		nc.Flush()
		resp, err := http.Get("http://" + metrics + "/metrics.json")
		if err == nil {
			var s bridge.Snapshot
			err = json.NewDecoder(resp.Body).Decode(&s)
			resp.Body.Close()
			if err == nil && s.InRefused > 0 {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("the inbound bridge did not subscribe")
}

// rtt runs ping → A → bridge 1 → NATS → bridge 2 → B → echo → C → bridge 2
// → NATS → bridge 1 → D → ping.
func (b *bench) rtt(url string, common []string) (float64, error) {
	ra, rb, rc, rd := newRing(b.size), newRing(b.size), newRing(b.size), newRing(b.size)
	for _, r := range []*ring.Ring{ra, rb, rc, rd} {
		defer r.Remove()
	}
	id := func(r *ring.Ring) string { return "id:" + strconv.Itoa(r.SegmentID()) }
	m1, m2 := fmt.Sprintf("127.0.0.1:%d", freePort()), fmt.Sprintf("127.0.0.1:%d", freePort())
	b1 := b.bridgeProc(bridge.Config{URL: url, Metrics: m1,
		Out: &bridge.OutboundConfig{Ring: id(ra), Prefix: "ping", Batch: 64},
		In:  &bridge.InboundConfig{Ring: id(rd), Subject: "pong.>", Batch: 64}})
	defer b1.stop()
	b2 := b.bridgeProc(bridge.Config{URL: url, Metrics: m2,
		Out: &bridge.OutboundConfig{Ring: id(rc), Prefix: "pong", Batch: 64},
		In:  &bridge.InboundConfig{Ring: id(rb), Subject: "ping.>", Batch: 64}})
	defer b2.stop()
	echo := spawn("ringecho", append(common, ringEnv("IN", rb), ringEnv("OUT", rc))...)
	defer echo.stop()
	if err := waitSubscribed(url, m1, "pong.probe"); err != nil {
		return 0, err
	}
	if err := waitSubscribed(url, m2, "ping.probe"); err != nil {
		return 0, err
	}
	return rate(spawn("ringping", append(common, ringEnv("OUT", ra), ringEnv("IN", rd))...))
}

func envInt(name string) int {
	v, err := strconv.Atoi(os.Getenv(name))
	if err != nil {
		panic(name + ": " + err.Error())
	}
	return v
}

// child plays one role and returns the exit status.
func child(role string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var err error
	switch role {
	case "serve":
		err = serve(ctx)
	case "bridge":
		if dir := os.Getenv("BRIDGEBENCH_PROFILE"); dir != "" {
			// A CPU profile of each bridge, for go tool pprof.
			f, err := os.Create(fmt.Sprintf("%s/bridge-%d.prof", dir, os.Getpid()))
			if err != nil {
				return 1
			}
			defer f.Close()
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
		var cfg bridge.Config
		if err = json.Unmarshal([]byte(os.Getenv("CONFIG")), &cfg); err == nil {
			err = bridge.Run(ctx, cfg, nil, nil)
		}
	default:
		f, ok := roles[role]
		if !ok {
			err = fmt.Errorf("unknown role %q", role)
			break
		}
		err = f(ctx)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bridgebench %s: %v\n", role, err)
		return 1
	}
	return 0
}

func serve(ctx context.Context) error {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: envInt("PORT"), JetStream: true, StoreDir: os.Getenv("STORE"), NoSigs: true, NoLog: true})
	if err != nil {
		return err
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		return fmt.Errorf("server not ready")
	}
	<-ctx.Done()
	s.Shutdown()
	s.WaitForShutdown()
	return nil
}

var roles = map[string]func(context.Context) error{
	"ringprod": ringProd,
	"ringcons": ringCons,
	"ringecho": ringEcho,
	"ringping": ringPing,
	"natspub":  natsPub,
	"natssub":  natsSub,
	"natsecho": natsEcho,
	"natsping": natsPing,
	"jspub":    jsPub,
	"jssub":    jsSub,
}

func attach(env string, produce bool) (*ring.Ring, *ring.Producer, *ring.Consumer) {
	var opts ring.OpenOptions
	if w := os.Getenv("RING_WAIT"); w != "" {
		s, err := ring.ParseWaitStrategy(w)
		if err != nil {
			panic(err)
		}
		opts.Wait.Strategy = s
	}
	r, err := ring.OpenID(envInt(env), &opts)
	if err != nil {
		panic(err)
	}
	if produce {
		p, err := r.NewProducer()
		if err != nil {
			panic(err)
		}
		return r, p, nil
	}
	c, err := r.NewConsumer()
	if err != nil {
		panic(err)
	}
	return r, nil, c
}

func ringProd(ctx context.Context) error {
	r, p, _ := attach("RING", true)
	defer r.Close()
	defer p.Close()
	n, data := envInt("N"), make([]byte, envInt("SIZE"))
	batch := make([]ring.Message, 64)
	for i := range batch {
		batch[i] = ring.Message{Type: 1, Data: data}
	}
	for sent := 0; sent < n; {
		k, err := p.SendBatch(ctx, batch[:min(len(batch), n-sent)])
		if err != nil {
			return err
		}
		sent += k
	}
	return nil
}

// received counts messages and times the first and the last; a run that
// stops receiving for idle before n came is reported on what it got.
type received struct {
	n           int
	first, last time.Time
}

func (r *received) add(k int) {
	now := time.Now()
	if r.n == 0 {
		r.first = now
	}
	r.n += k
	r.last = now
}

func (r *received) print() {
	if r.n < 2 {
		fmt.Println(0)
		return
	}
	fmt.Printf("%.0f\n", float64(r.n-1)/r.last.Sub(r.first).Seconds())
}

func ringCons(ctx context.Context) error {
	r, _, c := attach("RING", false)
	defer r.Close()
	defer c.Close()
	n := envInt("N")
	batch := make([]ring.Message, 64)
	for i := range batch {
		batch[i].Data = make([]byte, r.MaxMessage())
	}
	var got received
	for got.n < n {
		// Core NATS may lose messages: a run that stops receiving for a
		// while is reported on what it got.
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		k, err := c.ReceiveBatch(rctx, batch)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && got.n > 0 {
			fmt.Fprintf(os.Stderr, "bridgebench: %d of %d messages lost\n", n-got.n, n)
			break
		}
		if err != nil {
			return err
		}
		got.add(k)
	}
	got.print()
	return nil
}

func ringEcho(ctx context.Context) error {
	ri, _, c := attach("IN", false)
	defer ri.Close()
	ro, p, _ := attach("OUT", true)
	defer ro.Close()
	buf := make([]byte, ri.MaxMessage())
	for {
		n, typ, err := c.Receive(ctx, buf)
		if err != nil {
			return nil
		}
		if err := p.Send(ctx, typ, buf[:n]); err != nil {
			return nil
		}
	}
}

func ringPing(ctx context.Context) error {
	ro, p, _ := attach("OUT", true)
	defer ro.Close()
	ri, _, c := attach("IN", false)
	defer ri.Close()
	data, buf := make([]byte, envInt("SIZE")), make([]byte, ri.MaxMessage())
	var rtts []time.Duration
	for i := 0; i < envInt("RTTS"); i++ {
		start := time.Now()
		if err := p.Send(ctx, 1, data); err != nil {
			return err
		}
		if _, _, err := c.Receive(ctx, buf); err != nil {
			return err
		}
		rtts = append(rtts, time.Since(start))
	}
	printP50(rtts)
	return nil
}

func printP50(rtts []time.Duration) {
	slices.Sort(rtts)
	fmt.Println(int64(rtts[len(rtts)/2]))
}

func natsPub(ctx context.Context) error {
	nc, err := nats.Connect(os.Getenv("URL"))
	if err != nil {
		return err
	}
	defer nc.Close()
	data := make([]byte, envInt("SIZE"))
	headers := os.Getenv("HEADERS") == "true"
	id := []string{"0b5a7f0e-6c3d-4c1e-9a53-1f0e2d3c4b5a"}
	for i := 0; i < envInt("N"); i++ {
		m := &nats.Msg{Subject: "plain.1", Data: data}
		if headers {
			// The headers a core-mode bridge sends.
			n := strconv.Itoa(i)
			m.Header = nats.Header{bridge.HeaderRing: id, bridge.HeaderSeq: {n}, bridge.HeaderBridge: id, bridge.HeaderCount: {n}}
		}
		for nc.PublishMsg(m) != nil {
			time.Sleep(time.Millisecond)
		}
	}
	return nc.Flush()
}

func natsSub(ctx context.Context) error {
	nc, err := nats.Connect(os.Getenv("URL"))
	if err != nil {
		return err
	}
	defer nc.Close()
	subject := "plain.>"
	if s := os.Getenv("SUBJECT"); s != "" {
		subject = s
	}
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		return err
	}
	sub.SetPendingLimits(-1, -1)
	nc.Flush()
	fmt.Fprintln(os.Stdout, "ready")
	var got received
	for got.n < envInt("N") {
		if _, err := sub.NextMsg(2 * time.Second); err != nil {
			break // a loss: report on what came
		}
		got.add(1)
	}
	got.print()
	return nil
}

func natsEcho(ctx context.Context) error {
	nc, err := nats.Connect(os.Getenv("URL"))
	if err != nil {
		return err
	}
	defer nc.Close()
	nc.Subscribe("ping.>", func(m *nats.Msg) { nc.Publish("pong.1", m.Data) })
	nc.Flush()
	fmt.Println("ready")
	<-ctx.Done()
	return nil
}

func natsPing(ctx context.Context) error {
	nc, err := nats.Connect(os.Getenv("URL"))
	if err != nil {
		return err
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("pong.>")
	if err != nil {
		return err
	}
	nc.Flush()
	data := make([]byte, envInt("SIZE"))
	var rtts []time.Duration
	for i := 0; i < envInt("RTTS"); i++ {
		start := time.Now()
		nc.Publish("ping.1", data)
		nc.Flush()
		if _, err := sub.NextMsg(10 * time.Second); err != nil {
			return err
		}
		rtts = append(rtts, time.Since(start))
	}
	printP50(rtts)
	return nil
}

func jsPub(ctx context.Context) error {
	nc, err := nats.Connect(os.Getenv("URL"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(512))
	if err != nil {
		return err
	}
	data := make([]byte, envInt("SIZE"))
	n := envInt("N")
	start := time.Now()
	for i := 0; i < n; i++ {
		m := &nats.Msg{Subject: "plain.1", Data: data, Header: nats.Header{jetstream.MsgIDHeader: {"plain-" + strconv.Itoa(i)}}}
		if _, err := js.PublishMsgAsync(m, jetstream.WithStallWait(time.Minute)); err != nil {
			return err
		}
	}
	<-js.PublishAsyncComplete()
	fmt.Printf("%.0f\n", float64(n)/time.Since(start).Seconds())
	return nil
}

func jsSub(ctx context.Context) error {
	nc, err := nats.Connect(os.Getenv("URL"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, "PLAIN", jetstream.ConsumerConfig{Durable: "plain", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 256})
	if err != nil {
		return err
	}
	fmt.Println("ready")
	// The client's own streaming pull (overlapping pull requests), the
	// fastest way nats.go offers to consume.
	n := envInt("N")
	var got received
	done := make(chan struct{})
	cc, err := cons.Consume(func(m jetstream.Msg) {
		m.Ack()
		if got.add(1); got.n == n {
			close(done)
		}
	})
	if err != nil {
		return err
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
	}
	cc.Stop()
	got.print()
	return nil
}
