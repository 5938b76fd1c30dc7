package bridge

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
)

// Metrics counts what a bridge does. Every field is safe to read and update
// from any goroutine; a Metrics must not be copied.
type Metrics struct {
	OutMessages    atomic.Uint64 // ring messages published (and, with JetStream, acknowledged)
	OutBytes       atomic.Uint64 // their payload bytes
	OutSkipped     atomic.Uint64 // ring messages released unpublished: they came from NATS (Origin ≠ 0)
	OutRepublished atomic.Uint64 // publishes sent again after an error or a missing acknowledgement
	OutAcksPending atomic.Int64  // JetStream acknowledgements awaited now
	InMessages     atomic.Uint64 // NATS messages committed to the ring
	InBytes        atomic.Uint64 // their payload bytes
	InRedelivered  atomic.Uint64 // of those, sent into the ring flagged Redelivered
	InRefused      atomic.Uint64 // messages without a usable type, or too large for the ring
	InLost         atomic.Uint64 // core NATS: messages missing from an outbound bridge's numbering
	InDropped      atomic.Uint64 // core NATS: messages the client dropped, its buffer full (slow consumer)
	Reconnects     atomic.Uint64 // NATS reconnections
	Disconnects    atomic.Uint64 // NATS connections lost
	Connected      atomic.Bool   // the NATS connection is up now
}

// Snapshot is the JSON form of a [Metrics] at one moment.
type Snapshot struct {
	Connected      bool   `json:"connected"`
	OutMessages    uint64 `json:"out_messages"`
	OutBytes       uint64 `json:"out_bytes"`
	OutSkipped     uint64 `json:"out_skipped"`
	OutRepublished uint64 `json:"out_republished"`
	OutAcksPending int64  `json:"out_acks_pending"`
	InMessages     uint64 `json:"in_messages"`
	InBytes        uint64 `json:"in_bytes"`
	InRedelivered  uint64 `json:"in_redelivered"`
	InRefused      uint64 `json:"in_refused"`
	InLost         uint64 `json:"in_lost"`
	InDropped      uint64 `json:"in_dropped"`
	Reconnects     uint64 `json:"reconnects"`
	Disconnects    uint64 `json:"disconnects"`
}

// Snapshot reads every counter.
func (m *Metrics) Snapshot() Snapshot {
	return Snapshot{
		Connected:      m.Connected.Load(),
		OutMessages:    m.OutMessages.Load(),
		OutBytes:       m.OutBytes.Load(),
		OutSkipped:     m.OutSkipped.Load(),
		OutRepublished: m.OutRepublished.Load(),
		OutAcksPending: m.OutAcksPending.Load(),
		InMessages:     m.InMessages.Load(),
		InBytes:        m.InBytes.Load(),
		InRedelivered:  m.InRedelivered.Load(),
		InRefused:      m.InRefused.Load(),
		InLost:         m.InLost.Load(),
		InDropped:      m.InDropped.Load(),
		Reconnects:     m.Reconnects.Load(),
		Disconnects:    m.Disconnects.Load(),
	}
}

// Handler serves /healthz ("ok" while connected to NATS, 503 otherwise),
// /metrics (one "ringbridge_<name> <value>" line per counter, the
// Prometheus text format) and /metrics.json (a [Snapshot]).
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if !m.Connected.Load() {
			http.Error(w, "not connected to NATS", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		s := m.Snapshot()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		up := 0
		if s.Connected {
			up = 1
		}
		fmt.Fprintf(w, "ringbridge_connected %d\n", up)
		for _, c := range []struct {
			name string
			v    any
		}{
			{"out_messages_total", s.OutMessages},
			{"out_bytes_total", s.OutBytes},
			{"out_skipped_total", s.OutSkipped},
			{"out_republished_total", s.OutRepublished},
			{"out_acks_pending", s.OutAcksPending},
			{"in_messages_total", s.InMessages},
			{"in_bytes_total", s.InBytes},
			{"in_redelivered_total", s.InRedelivered},
			{"in_refused_total", s.InRefused},
			{"in_lost_total", s.InLost},
			{"in_dropped_total", s.InDropped},
			{"reconnects_total", s.Reconnects},
			{"disconnects_total", s.Disconnects},
		} {
			fmt.Fprintf(w, "ringbridge_%s %v\n", c.name, c.v)
		}
	})
	mux.HandleFunc("/metrics.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(m.Snapshot())
	})
	return mux
}
