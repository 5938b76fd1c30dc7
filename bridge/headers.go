package bridge

import (
	"encoding/binary"
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
)

// The headers a bridge writes and reads (see the package doc).
const (
	HeaderRing        = "Shmring-Ring"
	HeaderSeq         = "Shmring-Seq"
	HeaderType        = "Shmring-Type"
	HeaderRedelivered = "Shmring-Redelivered"
	HeaderBridge      = "Shmring-Bridge"
	HeaderCount       = "Shmring-Count"
)

// OriginTag is the nonzero ring.Message.Origin that Inbound gives the
// messages it sends into a ring on behalf of the ring with instance id id
// (the Shmring-Ring header): the two halves of the UUID folded together.
// A consumer compares a message's Origin with OriginTag of a ring it knows
// to tell where the message came from.
func OriginTag(id uuid.UUID) uint64 {
	t := binary.BigEndian.Uint64(id[:8]) ^ binary.BigEndian.Uint64(id[8:])
	if t == 0 {
		t = 1
	}
	return t
}

// subjectOrigin is the Origin of a message that no bridge published: a
// hash of its subject, never zero.
func subjectOrigin(subject string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(subject))
	if t := h.Sum64(); t != 0 {
		return t
	}
	return 1
}

// origins finds the Origin Inbound stamps on a message, remembering the
// last Shmring-Ring header it parsed: a bridge's messages mostly come from
// one ring after another.
type origins struct {
	ring string
	tag  uint64
}

// of is the Origin of a message with subject and headers h.
func (o *origins) of(subject string, h nats.Header) uint64 {
	s := h.Get(HeaderRing)
	if s == "" {
		return subjectOrigin(subject)
	}
	if s == o.ring && o.tag != 0 {
		return o.tag
	}
	id, err := uuid.Parse(s)
	if err != nil {
		return subjectOrigin(subject)
	}
	o.ring, o.tag = s, OriginTag(id)
	return o.tag
}

// messageType is the ring type of m: its Shmring-Type header, else the
// last token of its subject, else def; 0 when none is a positive integer.
func messageType(m *nats.Msg, def int64) int64 {
	if s := m.Header.Get(HeaderType); s != "" {
		if t, err := strconv.ParseInt(s, 10, 64); err == nil && t > 0 {
			return t
		}
	}
	last := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	if t, err := strconv.ParseInt(last, 10, 64); err == nil && t > 0 {
		return t
	}
	return def
}

// subjects makes and caches the subject of each type under a prefix.
type subjects struct {
	prefix string
	byType map[int64]string
}

func newSubjects(prefix string) *subjects {
	return &subjects{prefix: prefix + ".", byType: map[int64]string{}}
}

func (s *subjects) of(typ int64) string {
	if sub, ok := s.byType[typ]; ok {
		return sub
	}
	sub := s.prefix + strconv.FormatInt(typ, 10)
	if len(s.byType) < 4096 {
		s.byType[typ] = sub
	}
	return sub
}
