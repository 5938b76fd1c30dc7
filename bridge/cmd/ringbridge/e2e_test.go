package main

import (
	"syscall"
	"testing"
	"time"
)

var small = geometry{slotsA: 1024, slotsB: 1024, size: 200, types: 3}

// checkClean fails the test for any message that arrived wrong: corrupt,
// with the wrong origin, twice without the flag, or out of order.
func checkClean(t *testing.T, r consumerResult) {
	t.Helper()
	t.Logf("consumer: %+v", r)
	if r.Corrupt > 0 || r.BadOrigin > 0 || r.DupUnflagged > 0 || r.OutOfOrder > 0 {
		t.Errorf("corrupt %d, bad origin %d, unflagged duplicates %d, out of order %d",
			r.Corrupt, r.BadOrigin, r.DupUnflagged, r.OutOfOrder)
	}
}

// TestEndToEnd sends messages through the whole chain, with JetStream:
// every one arrives once, in order per type, with its type and bytes.
func TestEndToEnd(t *testing.T) {
	const n = 6000
	c := newChain(t, true, small)
	c.startIn()
	c.startOut()
	c.startConsumer(small, n, 0)
	c.startProducer(small, n)
	r := c.consumerResult()
	checkClean(t, r)
	if r.Missing > 0 || r.Flagged > 0 {
		t.Errorf("missing %d, flagged %d, want none", r.Missing, r.Flagged)
	}
	stop(t, c.out)
	stop(t, c.in)
	stop(t, c.producer)
}

// TestFaultsJetStream kills each bridge with SIGKILL mid-stream and
// restarts it, then restarts the NATS server mid-stream: nothing is lost,
// and nothing arrives twice unflagged.
func TestFaultsJetStream(t *testing.T) {
	const phase = 3000
	c := newChain(t, true, small)
	c.startIn()
	c.startOut()
	c.startConsumer(small, 4*phase, 0)
	c.startProducer(small, phase, phase, phase, phase)

	c.waitSent(phase / 4)
	kill(c.out)
	c.startOut()
	c.nextPhase()

	c.waitSent(phase + phase/4)
	kill(c.in)
	c.startIn()
	c.nextPhase()

	c.waitSent(2*phase + phase/4)
	c.restartServer()
	c.nextPhase()

	r := c.consumerResult()
	checkClean(t, r)
	if r.Missing > 0 {
		t.Errorf("%d messages lost", r.Missing)
	}
	stop(t, c.out)
	stop(t, c.in)
	stop(t, c.producer)
}

// TestFaultsCore restarts the NATS server mid-stream with core NATS: some
// messages may be lost (at most once), as many as the inbound bridge
// reports, and only around the restart.
func TestFaultsCore(t *testing.T) {
	const phase = 3000
	c := newChain(t, false, small)
	c.startIn()
	c.startOut()
	c.startConsumer(small, 2*phase, 0)
	c.startProducer(small, phase, phase)

	c.waitSent(phase / 4)
	c.restartServer()
	c.waitFor("both bridges back", func() bool {
		o, ok1 := metrics(c.outMetrics)
		i, ok2 := metrics(c.inMetrics)
		return ok1 && ok2 && o.Connected && i.Connected && o.Reconnects > 0 && i.Reconnects > 0
	})
	c.waitSubscribed()
	c.nextPhase()

	c.waitFor("ring A drained", func() bool { return c.a.Stats().Received >= 2*phase })
	c.waitFor("every message committed or reported lost", func() bool {
		s, _ := metrics(c.inMetrics)
		return s.InMessages+s.InLost >= 2*phase
	})
	s, _ := metrics(c.inMetrics)
	c.consumer.Process.Signal(syscall.SIGTERM)
	r := c.consumerResult()
	checkClean(t, r)
	t.Logf("core NATS restart: %d of %d lost, %d reported lost by the bridge", r.Missing, 2*phase, s.InLost)
	if uint64(r.Missing) != s.InLost {
		t.Errorf("lost %d, bridge reported %d", r.Missing, s.InLost)
	}
	if r.Missing > phase {
		t.Errorf("lost %d, more than the %d sent before the restart", r.Missing, phase)
	}
	stop(t, c.out)
	stop(t, c.in)
	stop(t, c.producer)
}

// TestBackpressure fills a stream with 4 KiB messages, then lets the
// inbound bridge feed them to a slow consumer through a small ring: the
// bridge's memory stays bounded instead of growing with the backlog.
func TestBackpressure(t *testing.T) {
	const n = 12000
	g := geometry{slotsA: 256, slotsB: 64, size: 4096, fixed: true, types: 2}
	c := newChain(t, true, g)
	c.startOut()
	c.startProducer(g, n)
	c.waitFor("the whole stream published", func() bool {
		s, _ := metrics(c.outMetrics)
		return s.OutMessages >= n
	})
	c.startIn()
	c.waitFor("ring B full", func() bool { return c.b.Stats().Depth >= 64 })
	base, _ := rss(c.in.Process.Pid)
	c.startConsumer(g, n, 100*time.Microsecond)
	peak := base
	done := make(chan consumerResult)
	go func() { done <- c.consumerResult() }()
	var r consumerResult
	for waiting := true; waiting; {
		select {
		case r = <-done:
			waiting = false
		case <-time.After(10 * time.Millisecond):
			if v, ok := rss(c.in.Process.Pid); ok {
				peak = max(peak, v)
			}
		}
	}
	checkClean(t, r)
	const backlog = n * 4096
	t.Logf("inbound bridge RSS: %d MiB with ring B full, peak %d MiB, over a backlog of %d MiB", base>>20, peak>>20, backlog>>20)
	if peak-base > backlog/2 {
		t.Errorf("RSS grew by %d MiB, half the backlog or more", (peak-base)>>20)
	}
	stop(t, c.out)
	stop(t, c.in)
	stop(t, c.producer)
}

// TestCleanRestart stops each bridge with SIGTERM mid-stream and starts it
// again, with JetStream: a clean shutdown finishes what it holds, so
// nothing is lost and nothing even comes flagged.
func TestCleanRestart(t *testing.T) {
	const phase = 3000
	c := newChain(t, true, small)
	c.startIn()
	c.startOut()
	c.startConsumer(small, 3*phase, 0)
	c.startProducer(small, phase, phase, phase)

	c.waitSent(phase / 4)
	stop(t, c.out)
	c.startOut()
	c.nextPhase()

	c.waitSent(phase + phase/4)
	stop(t, c.in)
	c.startIn()
	c.nextPhase()

	r := c.consumerResult()
	checkClean(t, r)
	if r.Missing > 0 || r.Flagged > 0 {
		t.Errorf("missing %d, flagged %d, want none after clean restarts", r.Missing, r.Flagged)
	}
	stop(t, c.out)
	stop(t, c.in)
	stop(t, c.producer)
}

// TestServerKilledJetStream kills the NATS server with SIGKILL mid-stream
// (its store synced on every write, as a server that must survive a crash
// is run) and starts it again: nothing is lost, nothing twice unflagged.
func TestServerKilledJetStream(t *testing.T) {
	const phase = 2000
	c := newChainSync(t, true, true, small)
	c.startIn()
	c.startOut()
	c.startConsumer(small, 2*phase, 0)
	c.startProducer(small, phase, phase)

	c.waitSent(phase / 4)
	c.killServer()
	c.nextPhase()

	r := c.consumerResult()
	checkClean(t, r)
	if r.Missing > 0 {
		t.Errorf("%d messages lost", r.Missing)
	}
	stop(t, c.out)
	stop(t, c.in)
	stop(t, c.producer)
}
