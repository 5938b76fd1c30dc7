// Package shmringprom exports rings' statistics as Prometheus metrics: a
// [prometheus.Collector] that reads each ring's ring.Stats once per
// scrape.
//
// It is a module of its own, github.com/shmring/shmring/prometheus, so
// that the shmring module itself depends on no metrics library.
//
// Register a collector with the rings to watch, then serve the registry:
//
//	r, err := ring.Create(key, opts)
//	...
//	col := shmringprom.NewCollector()
//	col.Add("orders", r)
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(col)
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// # Metrics
//
// Every metric carries three labels that say which ring it is about:
// key, the ring's key as ipcs prints it ("0x0000abcd"; "0x00000000" for a
// private ring), segment, its shared-memory segment id, and name, the
// name given to [Collector.Add] (empty for a ring given to
// [NewCollector]).
//
// Counters, cumulative over the ring's life across every process that
// uses it:
//
//	shmring_messages_sent_total       positions claimed by producers
//	shmring_messages_received_total   positions claimed by consumers
//	shmring_bytes_sent_total          payload bytes published
//	shmring_bytes_received_total      payload bytes delivered
//	shmring_sleeps_total{role}        times a producer or consumer slept on its semaphore
//	shmring_wakeups_total             semaphore posts made to wake sleepers
//	shmring_recovered_total           slots skipped because their producer died
//	shmring_redelivered_total         messages delivered again because their consumer died
//	shmring_reaped_total              role lines of dead holders cleaned up
//
// Gauges:
//
//	shmring_depth                     messages in the ring
//	shmring_capacity                  slots: the messages the ring holds
//	shmring_holders{role,state}       roles held, by role (producer, consumer) and state (live, dead)
//
// The role label is "producer" or "consumer"; state is "live" or "dead"
// (a holder that died and whose role no process has cleaned up yet).
//
// A ring that is closed stops being reported, and the collector lets go
// of it: its series end at the scrape after the close. A ring is identified by its labels, so two
// handles on the same segment (a ring opened twice in one process) must
// be added under different names.
package shmringprom

import (
	"slices"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shmring/shmring/ring"
)

// Label values of the role and state labels.
const (
	roleProducer = "producer"
	roleConsumer = "consumer"
	stateLive    = "live"
	stateDead    = "dead"
)

// ringLabels are the labels every metric has, in this order.
var ringLabels = []string{"key", "segment", "name"}

func desc(name, help string, extra ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, append(append([]string(nil), ringLabels...), extra...), nil)
}

var (
	sentDesc = desc("shmring_messages_sent_total",
		"Positions claimed by producers: messages sent, including any being written and slots skipped for dead producers.")
	receivedDesc = desc("shmring_messages_received_total",
		"Positions claimed by consumers: messages received.")
	sentBytesDesc = desc("shmring_bytes_sent_total",
		"Payload bytes published by producers.")
	receivedBytesDesc = desc("shmring_bytes_received_total",
		"Payload bytes delivered to consumers.")
	sleepsDesc = desc("shmring_sleeps_total",
		"Times a producer (ring full) or a consumer (ring empty) slept on its semaphore.", "role")
	wakeupsDesc = desc("shmring_wakeups_total",
		"Semaphore posts made to wake sleeping producers or consumers.")
	recoveredDesc = desc("shmring_recovered_total",
		"Slots skipped because their producer died before committing its message.")
	redeliveredDesc = desc("shmring_redelivered_total",
		"Messages delivered again because their consumer died while looking at them.")
	reapedDesc = desc("shmring_reaped_total",
		"Role lines of dead holders found and cleaned up.")
	depthDesc = desc("shmring_depth",
		"Messages in the ring: sent and not yet received.")
	capacityDesc = desc("shmring_capacity",
		"Slots in the ring: how many messages it holds.")
	holdersDesc = desc("shmring_holders",
		"Producer and consumer roles held, by processes alive or dead (dead: not yet cleaned up).", "role", "state")
)

var descs = []*prometheus.Desc{
	sentDesc, receivedDesc, sentBytesDesc, receivedBytesDesc, sleepsDesc, wakeupsDesc,
	recoveredDesc, redeliveredDesc, reapedDesc, depthDesc, capacityDesc, holdersDesc,
}

// Collector is a [prometheus.Collector] for a set of rings. Its methods
// may be called concurrently, Add included: a ring added after the
// collector was registered is reported from the next scrape on.
type Collector struct {
	mu    sync.Mutex
	rings []watched
}

// watched is a ring and the label values of its metrics.
type watched struct {
	r      *ring.Ring
	labels []string // key, segment, name
}

// NewCollector returns a collector for the rings, each with an empty name
// label. Add more with [Collector.Add].
func NewCollector(rings ...*ring.Ring) *Collector {
	c := &Collector{}
	for _, r := range rings {
		c.Add("", r)
	}
	return c
}

// Add adds r to the rings the collector reports, under name as its name
// label. Adding a ring that the collector reports already changes its
// name.
func (c *Collector) Add(name string, r *ring.Ring) {
	w := watched{r: r, labels: []string{r.Key().String(), strconv.Itoa(r.SegmentID()), name}}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.rings {
		if c.rings[i].r == r {
			c.rings[i] = w
			return
		}
	}
	c.rings = append(c.rings, w)
}

// Describe sends the descriptors of every metric the collector makes,
// whatever rings it reports.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range descs {
		ch <- d
	}
}

// Collect sends the metrics of every open ring, reading each ring's
// Stats once. It drops the rings that it finds closed.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	rings := append([]watched(nil), c.rings...)
	c.mu.Unlock()
	var closed []*ring.Ring
	for _, w := range rings {
		s := w.r.Stats()
		if s.Capacity == 0 {
			// Closed (an open ring has at least one slot), and a closed
			// Ring never opens again.
			closed = append(closed, w.r)
			continue
		}
		collect(ch, w.labels, s)
	}
	if len(closed) > 0 {
		c.mu.Lock()
		c.rings = slices.DeleteFunc(c.rings, func(w watched) bool { return slices.Contains(closed, w.r) })
		c.mu.Unlock()
	}
}

// collect sends one ring's metrics, from its statistics s.
func collect(ch chan<- prometheus.Metric, labels []string, s ring.Stats) {
	with := func(extra ...string) []string { return append(labels[:len(labels):len(labels)], extra...) }
	counter := func(d *prometheus.Desc, v uint64, extra ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), with(extra...)...)
	}
	gauge := func(d *prometheus.Desc, v int, extra ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), with(extra...)...)
	}
	counter(sentDesc, s.Sent)
	counter(receivedDesc, s.Received)
	counter(sentBytesDesc, s.SentBytes)
	counter(receivedBytesDesc, s.ReceivedBytes)
	counter(sleepsDesc, s.ProducerSleeps, roleProducer)
	counter(sleepsDesc, s.ConsumerSleeps, roleConsumer)
	counter(wakeupsDesc, s.Wakeups)
	counter(recoveredDesc, s.Recovered)
	counter(redeliveredDesc, s.Redelivered)
	counter(reapedDesc, s.Reaped)
	gauge(depthDesc, s.Depth)
	gauge(capacityDesc, s.Capacity)
	gauge(holdersDesc, s.Producers, roleProducer, stateLive)
	gauge(holdersDesc, s.DeadProducers, roleProducer, stateDead)
	gauge(holdersDesc, s.Consumers, roleConsumer, stateLive)
	gauge(holdersDesc, s.DeadConsumers, roleConsumer, stateDead)
}
