// Package ringvar publishes rings' statistics through the standard expvar
// package, for a process that wants them at /debug/vars.
//
// Importing this package imports expvar, and importing expvar registers a
// handler for /debug/vars on http.DefaultServeMux (along with the
// process's command line and memory statistics). That is a side effect a
// program must choose, which is why this lives in a package of its own and
// not in package ring: a program that serves http.DefaultServeMux on a
// network port publishes whatever expvar holds.
//
//	r, err := ring.Create(key, opts)
//	...
//	ringvar.Publish("shmring", r)
//	go http.ListenAndServe("localhost:6060", nil) // GET /debug/vars
//
// # The value
//
// The variable is a JSON list with one object per ring, in the order the
// rings were given. Each object has these fields (see [Snapshot] and
// ring.Stats for their meaning):
//
//	key             string  the ring's key as ipcs prints it ("0x0000abcd")
//	segment         number  the segment id (-1 for a ring not in shared memory)
//	instance        string  the instance id, a UUID
//	mode            string  "spsc", "mpsc", "spmc" or "mpmc"
//	capacity        number  level: slots
//	depth           number  level: messages in the ring
//	producers       number  level: producer roles held by live processes
//	consumers       number  level: consumer roles held by live processes
//	dead_producers  number  level: producer roles whose holder died, not yet cleaned up
//	dead_consumers  number  level: consumer roles likewise
//	sent            number  counter: positions claimed by producers
//	received        number  counter: positions claimed by consumers
//	sent_bytes      number  counter: payload bytes published
//	received_bytes  number  counter: payload bytes delivered
//	consumer_sleeps number  counter: times a consumer slept on its semaphore
//	producer_sleeps number  counter: times a producer slept on its semaphore
//	wakeups         number  counter: semaphore posts made to wake sleepers
//	recovered       number  counter: slots skipped because their producer died
//	redelivered     number  counter: messages delivered again because their consumer died
//	reaped          number  counter: role lines of dead holders cleaned up
//
// A level is meaningful as read. A counter is cumulative over the ring's
// life, across processes and role holders, so a monitor diffs two reads
// to get a rate. The counters are 64-bit: past 2^53 a JSON reader that
// decodes numbers as float64 loses their low bits.
//
// The names are stable: fields may be added, none renamed or removed.
//
// Each read of the variable takes every ring's [ring.Ring.Stats], one
// system call per ring. A ring closed after it was published reads as
// zeros, capacity included; its key, segment, instance and mode stay
// those it had.
package ringvar

import (
	"expvar"

	"github.com/shmring/shmring/ring"
)

// Snapshot is one ring's object in the published list: its identity and
// its [ring.Stats], under the JSON names listed in the package
// documentation. A monitor may decode the variable into a []Snapshot.
type Snapshot struct {
	Key      string `json:"key"`      // ipc.Key.String(): 0x and eight hex digits
	Segment  int    `json:"segment"`  // ring.Ring.SegmentID
	Instance string `json:"instance"` // ring.Ring.InstanceID, as a UUID string
	Mode     string `json:"mode"`     // ring.Mode.String

	// Levels.
	Capacity      int `json:"capacity"`
	Depth         int `json:"depth"`
	Producers     int `json:"producers"`
	Consumers     int `json:"consumers"`
	DeadProducers int `json:"dead_producers"`
	DeadConsumers int `json:"dead_consumers"`

	// Counters.
	Sent           uint64 `json:"sent"`
	Received       uint64 `json:"received"`
	SentBytes      uint64 `json:"sent_bytes"`
	ReceivedBytes  uint64 `json:"received_bytes"`
	ConsumerSleeps uint64 `json:"consumer_sleeps"`
	ProducerSleeps uint64 `json:"producer_sleeps"`
	Wakeups        uint64 `json:"wakeups"`
	Recovered      uint64 `json:"recovered"`
	Redelivered    uint64 `json:"redelivered"`
	Reaped         uint64 `json:"reaped"`
}

// Publish publishes the rings' statistics as the expvar variable name:
// it calls expvar.Publish(name, Func(rings...)). Like expvar.Publish, it
// panics if name is already published. The rings must be open.
func Publish(name string, rings ...*ring.Ring) {
	expvar.Publish(name, Func(rings...))
}

// Func returns an expvar.Func whose value is a []Snapshot, one per ring
// in the order given, read afresh each time it is called. It reads each
// ring's identity now, so the rings must be open; a ring closed later
// reads as zero statistics. Func publishes nothing itself: pass the
// result to expvar.Publish, or call it directly.
func Func(rings ...*ring.Ring) expvar.Func {
	ids := make([]Snapshot, len(rings))
	for i, r := range rings {
		ids[i] = identity(r)
	}
	rings = append([]*ring.Ring(nil), rings...)
	return func() any {
		out := make([]Snapshot, len(rings))
		for i, r := range rings {
			out[i] = fill(ids[i], r.Stats())
		}
		return out
	}
}

// identity reads what never changes about r. The instance id lives in
// the ring's memory, which is gone once the ring is closed, so it is read
// once here and only from a ring that is still open (a closed ring's
// Stats are zero, and an open ring has at least one slot).
func identity(r *ring.Ring) Snapshot {
	id := Snapshot{Key: r.Key().String(), Segment: r.SegmentID(), Mode: r.Mode().String()}
	if r.Stats().Capacity > 0 {
		id.Instance = r.InstanceID().String()
	}
	return id
}

// fill returns id with the statistics s.
func fill(id Snapshot, s ring.Stats) Snapshot {
	id.Capacity, id.Depth = s.Capacity, s.Depth
	id.Producers, id.Consumers = s.Producers, s.Consumers
	id.DeadProducers, id.DeadConsumers = s.DeadProducers, s.DeadConsumers
	id.Sent, id.Received = s.Sent, s.Received
	id.SentBytes, id.ReceivedBytes = s.SentBytes, s.ReceivedBytes
	id.ConsumerSleeps, id.ProducerSleeps = s.ConsumerSleeps, s.ProducerSleeps
	id.Wakeups, id.Recovered = s.Wakeups, s.Recovered
	id.Redelivered, id.Reaped = s.Redelivered, s.Reaped
	return id
}
