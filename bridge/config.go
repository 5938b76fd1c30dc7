package bridge

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/ring"
)

// Defaults of [Config].
const (
	DefaultURL             = "nats://127.0.0.1:4222"
	DefaultPrefix          = "shmring"
	DefaultOutBatch        = 1024 // messages held and in flight to JetStream at once
	DefaultInBatch         = 256
	DefaultDuplicates      = 2 * time.Minute // JetStream's own default duplicate window
	DefaultReconnectBuffer = 8 << 20         // bytes nats.go keeps while disconnected
	DefaultAckTimeout      = 10 * time.Second
	DefaultGrace           = 5 * time.Second
)

// Config is what [Run] does: one NATS connection and at most one direction
// of each kind. It is read from flags or from a JSON file ([LoadConfig]);
// durations are strings such as "2m" in the file.
type Config struct {
	// URL is the NATS server (a comma-separated list for a cluster).
	URL string `json:"url,omitempty"`
	// Name is the connection's name, as the server's monitoring shows it.
	Name string `json:"name,omitempty"`
	// ReconnectBuffer bounds, in bytes, what nats.go keeps of what is
	// published while the connection is down.
	ReconnectBuffer int `json:"reconnect_buffer,omitempty"`
	// Metrics is the address of the /healthz and /metrics endpoint ("" for
	// none), e.g. "127.0.0.1:8222".
	Metrics string `json:"metrics,omitempty"`
	// RingWait is how the bridge waits on its rings: "adaptive" (the
	// default: spin a few microseconds, then sleep), "spin" or "block"
	// (sleep at once, sparing the CPU for the NATS client and server on a
	// busy host). See ring.WaitStrategy.
	RingWait string `json:"ring_wait,omitempty"`
	// Grace bounds how long a shutdown waits for what is held to be
	// acknowledged or committed.
	Grace Duration `json:"grace,omitempty"`

	Out *OutboundConfig `json:"out,omitempty"`
	In  *InboundConfig  `json:"in,omitempty"`
}

// OutboundConfig is the ring → NATS direction.
type OutboundConfig struct {
	// Ring is the ring to drain (see [ParseRingAddr]).
	Ring string `json:"ring"`
	// Prefix is the subject prefix: a message of type t goes to <Prefix>.<t>.
	Prefix string `json:"prefix,omitempty"`
	// JetStream publishes with acknowledgements and deduplication;
	// otherwise core NATS, at most once.
	JetStream bool `json:"jetstream,omitempty"`
	// Stream is the JetStream stream, created if missing with the subjects
	// <Prefix>.> and the duplicate window Duplicates.
	Stream string `json:"stream,omitempty"`
	// Duplicates is the duplicate window of a stream this bridge creates
	// (JetStream's default, 2 minutes, when zero).
	Duplicates Duration `json:"duplicates,omitempty"`
	// Batch bounds the ring messages held at once: with JetStream, those
	// published and not yet acknowledged (and released, since a message
	// leaves the ring only once it and every one before it are
	// acknowledged); with core NATS, those copied out and published
	// together.
	Batch int `json:"batch,omitempty"`
	// AckTimeout is how long a JetStream acknowledgement may take before
	// the message is published again.
	AckTimeout Duration `json:"ack_timeout,omitempty"`
	// ForwardBridged publishes messages that came into the ring from NATS
	// (a nonzero Origin) too; by default they are released unpublished,
	// which prevents echo loops.
	ForwardBridged bool `json:"forward_bridged,omitempty"`
}

// InboundConfig is the NATS → ring direction.
type InboundConfig struct {
	// Subject is what to receive, wildcards allowed (e.g. "shmring.>").
	Subject string `json:"subject"`
	// Ring is the ring to send into (see [ParseRingAddr]).
	Ring string `json:"ring"`
	// JetStream pulls from a durable consumer of Stream; otherwise a core
	// NATS subscription, at most once.
	JetStream bool `json:"jetstream,omitempty"`
	// Stream is the JetStream stream to pull from, created if missing with
	// the subject Subject.
	Stream string `json:"stream,omitempty"`
	// Durable names the JetStream consumer, so that a restarted bridge goes
	// on where the last one stopped.
	Durable string `json:"durable,omitempty"`
	// Batch is the most messages pulled at once (fewer when the ring has
	// less room).
	Batch int `json:"batch,omitempty"`
	// DefaultType is the type of messages whose subject and headers give
	// none; 0 refuses them.
	DefaultType int64 `json:"default_type,omitempty"`
	// Pending bounds, in messages, what a core NATS subscription buffers
	// while the ring is full; beyond it NATS drops (counted as dropped).
	Pending int `json:"pending,omitempty"`
}

// Duration is a time.Duration that reads and writes itself in JSON as a
// string such as "90s".
type Duration time.Duration

// MarshalJSON writes d as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a string such as "2m" (or a number of nanoseconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("duration: %s", b)
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// LoadConfig reads a JSON configuration file. Unknown fields are errors,
// so that a misspelt option is not silently ignored.
func LoadConfig(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrConfig, path, err)
	}
	return &c, nil
}

// WithDefaults returns a copy of c with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if c.Name == "" {
		c.Name = "ringbridge"
	}
	if c.ReconnectBuffer == 0 {
		c.ReconnectBuffer = DefaultReconnectBuffer
	}
	if c.Grace == 0 {
		c.Grace = Duration(DefaultGrace)
	}
	if c.Out != nil {
		o := *c.Out
		if o.Prefix == "" {
			o.Prefix = DefaultPrefix
		}
		if o.Stream == "" {
			o.Stream = "SHMRING"
		}
		if o.Duplicates == 0 {
			o.Duplicates = Duration(DefaultDuplicates)
		}
		if o.Batch == 0 {
			o.Batch = DefaultOutBatch
		}
		if o.AckTimeout == 0 {
			o.AckTimeout = Duration(DefaultAckTimeout)
		}
		c.Out = &o
	}
	if c.In != nil {
		in := *c.In
		if in.Stream == "" {
			in.Stream = "SHMRING"
		}
		if in.Durable == "" {
			in.Durable = "ringbridge"
		}
		if in.Batch == 0 {
			in.Batch = DefaultInBatch
		}
		if in.Pending == 0 {
			in.Pending = 8192
		}
		c.In = &in
	}
	return c
}

// Validate reports what makes c unusable, as an error matching [ErrConfig].
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	if c.Out == nil && c.In == nil {
		return bad("neither direction configured (need -out-ring or -in-ring)")
	}
	if _, err := c.waiting(); err != nil {
		return bad("ring wait: %v", err)
	}
	if c.ReconnectBuffer < 0 {
		return bad("negative reconnect buffer")
	}
	if o := c.Out; o != nil {
		if _, err := ParseRingAddr(o.Ring); err != nil {
			return bad("out ring: %v", err)
		}
		if o.Prefix == "" || strings.ContainsAny(o.Prefix, " \t*>") || strings.HasSuffix(o.Prefix, ".") {
			return bad("out prefix %q is not a subject prefix", o.Prefix)
		}
		if o.Batch < 1 {
			return bad("out batch %d < 1", o.Batch)
		}
		if o.Duplicates < 0 || o.AckTimeout <= 0 {
			return bad("out durations must be positive")
		}
	}
	if in := c.In; in != nil {
		if _, err := ParseRingAddr(in.Ring); err != nil {
			return bad("in ring: %v", err)
		}
		if in.Subject == "" || strings.ContainsAny(in.Subject, " \t") {
			return bad("in subject %q", in.Subject)
		}
		if in.Batch < 1 || in.Pending < 1 {
			return bad("in batch and pending must be at least 1")
		}
		if in.DefaultType < 0 {
			return bad("in default type %d < 0", in.DefaultType)
		}
		if in.JetStream && (in.Durable == "" || strings.ContainsAny(in.Durable, ".*> ")) {
			return bad("in durable %q", in.Durable)
		}
	}
	return nil
}

// RingAddr names a ring: by System V key, or by segment id (for a private
// ring, or one whose key is unknown).
type RingAddr struct {
	Key       ipc.Key
	SegmentID int
	ByID      bool
}

// ParseRingAddr reads a ring's address: a key as ipcs prints it
// ("0x00005eed"), a key in decimal ("key:24301"), or a segment id
// ("id:6127659").
func ParseRingAddr(s string) (RingAddr, error) {
	switch {
	case strings.HasPrefix(s, "id:"):
		id, err := strconv.Atoi(s[3:])
		if err != nil || id < 0 {
			return RingAddr{}, fmt.Errorf("bad segment id %q", s)
		}
		return RingAddr{SegmentID: id, ByID: true}, nil
	case strings.HasPrefix(s, "key:"):
		k, err := strconv.ParseInt(s[4:], 10, 32)
		if err != nil {
			return RingAddr{}, fmt.Errorf("bad key %q", s)
		}
		return RingAddr{Key: ipc.Key(k)}, nil
	case strings.HasPrefix(s, "0x"), strings.HasPrefix(s, "0X"):
		k, err := strconv.ParseUint(s[2:], 16, 32)
		if err != nil {
			return RingAddr{}, fmt.Errorf("bad key %q", s)
		}
		return RingAddr{Key: ipc.Key(int32(uint32(k)))}, nil
	}
	return RingAddr{}, fmt.Errorf("ring %q: want 0xKEY, key:N or id:N", s)
}

// waiting is the wait strategy RingWait names.
func (c *Config) waiting() (ring.Waiting, error) {
	if c.RingWait == "" {
		return ring.Waiting{}, nil
	}
	s, err := ring.ParseWaitStrategy(c.RingWait)
	return ring.Waiting{Strategy: s}, err
}

// Open attaches the ring a names, waiting on it as w says.
func (a RingAddr) Open(w ring.Waiting) (*ring.Ring, error) {
	opts := &ring.OpenOptions{Wait: w}
	if a.ByID {
		return ring.OpenID(a.SegmentID, opts)
	}
	return ring.Open(a.Key, opts)
}
