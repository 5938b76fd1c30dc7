package ring

// Stats is a snapshot of a ring's counters, cheap to take from any process.
// The counters are read one by one while the ring runs, so each is exact
// but they are not mutually consistent. Every counter is cumulative over
// the ring's life (across role holders), so rates come from the
// difference of two samples.
type Stats struct {
	Capacity       int    // slots
	Sent           uint64 // positions claimed by producers (includes messages being written, and skipped slots)
	Received       uint64 // positions claimed by consumers
	Depth          int    // Sent - Received: messages in the ring
	SentBytes      uint64 // payload bytes published
	ReceivedBytes  uint64 // payload bytes delivered
	Producers      int    // producer roles held by live processes
	Consumers      int    // consumer roles held by live processes
	DeadProducers  int    // producer roles whose holder died, not yet cleaned up (by a successor or a peer)
	DeadConsumers  int    // consumer roles likewise
	ConsumerSleeps uint64 // times a consumer slept on its semaphore
	ProducerSleeps uint64 // times a producer slept on its semaphore
	Wakeups        uint64 // semaphore posts made to wake sleepers
	Recovered      uint64 // slots skipped because their producer died before committing
	Redelivered    uint64 // messages delivered again because their consumer died looking at them
	Reaped         uint64 // role lines of dead holders found and cleaned up
	// On a fan-out ring, Received counts the messages the subscriptions
	// received, and Depth is what the slowest live subscriber has yet to
	// receive; [Ring.Subscribers] details each subscription.
}

// SemOps returns the semaphore operations the counters record: sleeps plus
// wake-ups. Divided by messages it says how often a message cost a system
// call.
func (s Stats) SemOps() uint64 { return s.ConsumerSleeps + s.ProducerSleeps + s.Wakeups }

// Stats returns the ring's counters. It makes one system call, to read
// the role lines' lock semaphores (a holder keeps its line's lock up with
// SEM_UNDO, so the kernel says who is alive; [Ring.Holders] lists them),
// allocates nothing and never writes the ring. If the semaphore set
// cannot be read (it was removed), every held role counts as live. After
// Close it returns zero Stats.
//
// A monitor computes rates from the difference of two samples of Sent,
// Received, SentBytes, ReceivedBytes, the sleeps and Wakeups; Depth,
// Producers and Consumers are levels, the rest cumulative event counts.
func (r *Ring) Stats() Stats {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return Stats{}
	}
	// Relaxed would do for every load below: counters that only grow, and
	// role statuses, read for display; no order between them is promised.
	sent, recv := r.prod.pos.Load(), r.cons.pos.Load()
	if !r.g.mode.multiProducer() {
		// A single producer stores the tail only now and then: the slots
		// published after it say where it is.
		if tail, ok := r.publishedFrom(sent); ok {
			sent = tail
		}
	}
	sent = max(sent, recv) // a scribbled tail, or one read before the head
	s := Stats{
		Capacity: r.g.slots, Sent: sent, Received: recv,
		ConsumerSleeps: r.ctrl.consumerSleeps.Load(),
		ProducerSleeps: r.ctrl.producerSleeps.Load(),
		Wakeups:        r.ctrl.wakeups.Load(),
		Recovered:      r.ctrl.recovered.Load(),
		Redelivered:    r.ctrl.redelivered.Load(),
		Reaped:         r.ctrl.reaped.Load(),
	}
	if sent > recv {
		s.Depth = int(min(sent-recv, r.n))
	}
	if r.g.selective {
		// Consumers finish slots in any order: the head is only the
		// oldest position not yet consumed.
		s.Depth = r.selectiveDepth(recv)
	}
	r.statMu.Lock()
	defer r.statMu.Unlock()
	if len(r.statVals) != r.sems.Len() {
		r.statVals = make([]uint16, r.sems.Len())
	}
	known := r.sems.Values(r.statVals) == nil
	var selReceived uint64
	for i := 0; i < r.g.roles(); i++ {
		e := r.roles.At(uint64(i))
		st := status(e.state.Load())
		held := st == roleActive || st == roleDead
		live := st == roleActive && (!known || r.statVals[semLocks+i] != 0)
		producer := i < r.g.maxProducers
		switch {
		case producer:
			s.SentBytes += e.bytes.Load()
		default:
			s.ReceivedBytes += e.bytes.Load()
			if r.g.selective {
				selReceived += e.msgs.Load() // relaxed would do, as for bytes
			}
		}
		switch {
		case !held:
		case producer && live:
			s.Producers++
		case producer:
			s.DeadProducers++
		case live:
			s.Consumers++
		default:
			s.DeadConsumers++
		}
	}
	if r.g.selective {
		s.Received = selReceived // messages delivered, not the head
	}
	if r.g.fan.on {
		r.fanoutStats(&s, nil, false, r.statVals, known) // fanout.go: the counters only
	}
	return s
}
