package main

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The patterns of selective receive (-pattern): processes that share one
// ring, or one message queue, and pick their messages out of it by type.
//
// chat: two processes, each sending messages of its own type (1 and 2) and
// receiving only the other's type, over one selective MPMC ring with two
// producers and two consumers (ReceiveSelect with ipc.OfType) or one msgq
// queue (msgrcv with that type). Side 0 sends a message and waits for the
// answer, timing the round trip; side 1 answers each message. The end is an
// empty message of side 0's type.
//
// server: one server and N clients over one selective MPMC ring with N+1
// producers and consumers, or one msgq queue. Every request has type 1 and
// carries the client's pid, which is the type of its reply: the server
// receives type 1 only, each client receives only its pid. Each client
// sends a request and waits for the reply, timing the round trip, as fast
// as it can. A client's end is a message of type 1 that carries only its
// pid and index (see the layout below); the server stops after the end of
// every client.
const (
	patternChat   = "chat"
	patternServer = "server"
)

// allPatterns lists the patterns in the order they are run and shown.
var allPatterns = []string{patternChat, patternServer}

// The roles of pattern children.
const (
	roleChat   = "chat"   // a chat side: index 0 starts and times each exchange, index 1 answers
	roleServer = "server" // the server
	roleClient = "client" // a client of the server
)

// Message types of the patterns: chat side i sends type i+1; every request
// to the server has type 1, and its reply the client's pid.
const (
	chatType    = 1
	requestType = 1
)

// maxClients bounds -clients.
const maxClients = 64

// A server pattern message of n bytes is a payload of n-trailerLen bytes
// (see payload.go), then the trailer:
//
//	[n-8:n-4] pid of the client, the reply type, little endian
//	[n-4:n]   index of the client among the clients, little endian
//
// Requests of client i are the payload messages of sender i; replies to it
// are those of sender replySender+i, with the sequence number of the
// request they answer, and carry the client's trailer too. A client's end
// marker is the trailer alone. The trailer is not covered by the payload's
// check, but a request whose index is wrong fails the payload's check
// (which depends on the sender), one whose pid is wrong differs from the
// pid the client's first request carried, and a reply whose type or
// trailer is not the client's fails the client's check.
const (
	trailerLen    = 8
	replySender   = 128
	minServerSize = minSize + trailerLen
)

// putTrailer writes pid and index into the last trailerLen bytes of b.
func putTrailer(b []byte, pid, index int) {
	binary.LittleEndian.PutUint32(b[len(b)-trailerLen:], uint32(pid))
	binary.LittleEndian.PutUint32(b[len(b)-trailerLen+4:], uint32(index))
}

// readTrailer reads the pid and index of the last trailerLen bytes of b.
func readTrailer(b []byte) (pid, index int) {
	return int(binary.LittleEndian.Uint32(b[len(b)-trailerLen:])), int(binary.LittleEndian.Uint32(b[len(b)-trailerLen+4:]))
}

// serverBook checks the requests a server gets, client by client, and
// writes the replies.
type serverBook struct {
	size  int
	pl    *payload // of size-trailerLen bytes
	tr    *tracker // by client index; each client has one request out at a time
	pids  []int    // the pid of each client, from its first request; 0 until then
	ended []bool
	ends  int // clients that have ended
}

func newServerBook(size, clients int) *serverBook {
	pl := newPayload(size - trailerLen)
	return &serverBook{size: size, pl: pl, tr: newTracker(pl, clients, true), pids: make([]int, clients), ended: make([]bool, clients)}
}

// done reports whether every client has ended.
func (sb *serverBook) done() bool { return sb.ends == len(sb.pids) }

// request checks message b of type typ. For a request it returns the
// client's index and the sequence number of the request; for an end marker,
// end is true. It allocates only to report a mismatch.
func (sb *serverBook) request(b []byte, typ int64) (index int, seq uint64, end bool, err error) {
	if typ != requestType {
		return 0, 0, false, fmt.Errorf("server got a message of type %d, want %d", typ, requestType)
	}
	if len(b) != sb.size && len(b) != trailerLen {
		return 0, 0, false, fmt.Errorf("server got a message of %d bytes, want %d (a request) or %d (an end)", len(b), sb.size, trailerLen)
	}
	pid, index := readTrailer(b)
	if index < 0 || index >= len(sb.pids) {
		return 0, 0, false, fmt.Errorf("message from unknown client %d (pid %d)", index, pid)
	}
	if pid <= 1 {
		return 0, 0, false, fmt.Errorf("client %d: bad pid %d", index, pid)
	}
	switch sb.pids[index] {
	case 0:
		sb.pids[index] = pid
	case pid:
	default:
		return 0, 0, false, fmt.Errorf("client %d: pid %d, but its first message said %d", index, pid, sb.pids[index])
	}
	if sb.ended[index] {
		return 0, 0, false, fmt.Errorf("client %d: a message after its end", index)
	}
	if len(b) == trailerLen {
		sb.ended[index] = true
		sb.ends++
		return index, 0, true, nil
	}
	if err := sb.tr.accept(b[:len(b)-trailerLen], index); err != nil {
		return 0, 0, false, fmt.Errorf("request: %w", err)
	}
	return index, sb.tr.next[index] - 1, false, nil
}

// reply writes into b (sb.size bytes) the reply to request seq of client
// index and returns its type, the client's pid.
func (sb *serverBook) reply(b []byte, index int, seq uint64) int64 {
	sb.pl.fill(b[:sb.size-trailerLen], seq, replySender+index)
	putTrailer(b[:sb.size], sb.pids[index], index)
	return int64(sb.pids[index])
}

// clientBook writes the requests of one client and checks its replies.
type clientBook struct {
	size       int
	pid, index int
	pl         *payload // of size-trailerLen bytes
	tr         *tracker
}

func newClientBook(size, pid, index int) *clientBook {
	pl := newPayload(size - trailerLen)
	return &clientBook{size: size, pid: pid, index: index, pl: pl, tr: newTracker(pl, replySender+index+1, true)}
}

// replyType is the type of this client's replies: its pid.
func (cb *clientBook) replyType() int64 { return int64(cb.pid) }

// fillRequest writes request seq into b (cb.size bytes).
func (cb *clientBook) fillRequest(b []byte, seq uint64) {
	cb.pl.fill(b[:cb.size-trailerLen], seq, cb.index)
	putTrailer(b[:cb.size], cb.pid, cb.index)
}

// endMarker writes the end marker into b and returns it.
func (cb *clientBook) endMarker(b []byte) []byte {
	b = b[:trailerLen]
	putTrailer(b, cb.pid, cb.index)
	return b
}

// checkReply checks reply b, of type typ, as the next one for this client.
// It allocates only to report a mismatch.
func (cb *clientBook) checkReply(b []byte, typ int64) error {
	if typ != cb.replyType() {
		return fmt.Errorf("client %d (pid %d) got a reply of type %d", cb.index, cb.pid, typ)
	}
	if len(b) != cb.size {
		return fmt.Errorf("client %d: reply of %d bytes, want %d", cb.index, len(b), cb.size)
	}
	if pid, index := readTrailer(b); pid != cb.pid || index != cb.index {
		return fmt.Errorf("client %d (pid %d): reply says client %d (pid %d)", cb.index, cb.pid, index, pid)
	}
	if err := cb.tr.accept(b[:cb.size-trailerLen], replySender+cb.index); err != nil {
		return fmt.Errorf("client %d: reply: %w", cb.index, err)
	}
	return nil
}

// histBucket is a bucket of a round-trip histogram that holds values: its
// index and its count. Clients report theirs, and the parent merges them.
type histBucket [2]uint64

// buckets returns the histogram's non-empty buckets.
func (h *histogram) buckets() []histBucket {
	var out []histBucket
	for i, c := range h.counts {
		if c != 0 {
			out = append(out, histBucket{uint64(i), c})
		}
	}
	return out
}

// merge adds the buckets of another histogram whose largest value was max.
func (h *histogram) merge(bs []histBucket, max int64) error {
	for _, b := range bs {
		if b[0] >= histBuckets {
			return fmt.Errorf("histogram bucket %d out of range", b[0])
		}
		h.counts[b[0]] += b[1]
		h.n += b[1]
	}
	if max > h.max {
		h.max = max
	}
	return nil
}

// patternChildren lists the children of a pattern run, all with spec but
// for their role and index. The first reports the ring's semaphore
// operations.
func patternChildren(spec childSpec, c benchCase) []childPlan {
	var out []childPlan
	add := func(role string, index int) {
		s := spec
		s.Role, s.Index, s.Stats = role, index, len(out) == 0
		out = append(out, childPlan{spec: s})
	}
	if c.pattern == patternChat {
		add(roleChat, 0)
		add(roleChat, 1)
		return out
	}
	add(roleServer, 0)
	for i := 0; i < c.clients; i++ {
		add(roleClient, i)
	}
	return out
}

// patternRoles is how many processes of a pattern run send and receive:
// the ring's producers and consumers.
func patternRoles(pattern string, clients int) int {
	if pattern == patternChat {
		return 2
	}
	return clients + 1
}

// combinePattern checks the children's reports of one pattern run against
// each other and turns them into its result. Its figures count both
// directions as messages, as ping-pong does: msgs/s is twice the round
// trips (requests) per second.
func combinePattern(c benchCase, plan *runPlan, reports []*childReport) (*runResult, error) {
	r := &runResult{slots: plan.slots, queueBytes: plan.queueBytes, note: plan.note}
	var cpu int64
	var allocs, sem, msgs uint64
	for _, rep := range reports {
		cpu += rep.CPUNs
		allocs += rep.Allocs
		sem += rep.SemOps
	}
	switch c.pattern {
	case patternChat:
		first, second := reports[0], reports[1]
		if first.Total != second.Total {
			return nil, fmt.Errorf("chat side 0 made %d round trips, side 1 answered %d", first.Total, second.Total)
		}
		if first.RTT == nil || first.RTT.N != first.Counted {
			return nil, fmt.Errorf("chat side 0 timed %v round trips, counted %d", first.RTT, first.Counted)
		}
		msgs = 2 * first.Counted
		if first.WindowNs > 0 {
			r.msgsPerSec = float64(msgs) / (float64(first.WindowNs) / 1e9)
		}
		r.rtt = first.RTT
	case patternServer:
		var served, asked uint64
		h := new(histogram)
		for i, ch := range plan.children {
			rep := reports[i]
			switch ch.spec.Role {
			case roleServer:
				served += rep.Total
			case roleClient:
				asked += rep.Total
				if rep.RTT == nil || rep.RTT.N != rep.Counted {
					return nil, fmt.Errorf("client %d timed %v round trips, counted %d", ch.spec.Index, rep.RTT, rep.Counted)
				}
				if err := h.merge(rep.Hist, rep.RTT.Max); err != nil {
					return nil, fmt.Errorf("client %d: %w", ch.spec.Index, err)
				}
				msgs += 2 * rep.Counted
				if rep.WindowNs > 0 {
					r.msgsPerSec += float64(2*rep.Counted) / (float64(rep.WindowNs) / 1e9)
				}
			}
		}
		if served != asked {
			return nil, fmt.Errorf("clients made %d requests, the server answered %d", asked, served)
		}
		if h.n != msgs/2 {
			return nil, fmt.Errorf("clients timed %d round trips, counted %d", h.n, msgs/2)
		}
		r.rtt = h.summary()
	default:
		return nil, fmt.Errorf("unknown pattern %q", c.pattern)
	}
	if msgs == 0 {
		var b strings.Builder
		for i, ch := range plan.children {
			fmt.Fprintf(&b, "; %s[%d]: %d messages, %d in %v", ch.spec.Role, ch.spec.Index,
				reports[i].Total, reports[i].Counted, time.Duration(reports[i].WindowNs))
		}
		return nil, fmt.Errorf("no message in the measured interval (is the machine too busy for -duration?)%s", b.String())
	}
	r.cpuPerMsg = float64(cpu) / float64(msgs)
	r.semPerMsg = float64(sem) / float64(msgs)
	r.allocsPerMsg = float64(allocs) / float64(msgs)
	return r, nil
}

// patternSetups makes the plan of a pattern run for each transport that
// has message types.
var patternSetups = map[string]func(cfg *config, c benchCase) (*runPlan, error){
	"ring": setupRingPattern,
	"msgq": setupMsgqPattern,
}

// patternRuns holds the child side of each pattern transport.
var patternRuns = map[string]func(s *childSpec, ses *session) (*childReport, error){
	"ring": ringPatternChild,
	"msgq": msgqPatternChild,
}

// parsePatterns reads -pattern and -clients into c, whose transports,
// sizes and modes are parsed already; set holds the flags given. Without
// -mode, a run with patterns runs only the patterns.
func parsePatterns(c *config, patterns, clients string, set map[string]bool) error {
	for _, p := range splitList(patterns) {
		if !slices.Contains(allPatterns, p) {
			return usagef("-pattern: unknown pattern %q (want chat or server)", p)
		}
		if !slices.Contains(c.patterns, p) {
			c.patterns = append(c.patterns, p)
		}
	}
	slices.SortStableFunc(c.patterns, func(a, b string) int {
		return slices.Index(allPatterns, a) - slices.Index(allPatterns, b)
	})
	for _, s := range splitList(clients) {
		n, err := strconv.Atoi(s)
		switch {
		case err != nil:
			return usagef("-clients: %q is not a number", s)
		case n < 1 || n > maxClients:
			return usagef("-clients: %d is not from 1 to %d", n, maxClients)
		}
		if !slices.Contains(c.clients, n) {
			c.clients = append(c.clients, n)
		}
	}
	if len(c.clients) == 0 {
		return usagef("-clients: no count given")
	}
	if len(c.patterns) == 0 {
		if set["clients"] {
			return usagef("-clients is the number of clients of -pattern server")
		}
		return nil
	}
	if !set["mode"] {
		c.modes = nil
	}
	if set["clients"] && !slices.Contains(c.patterns, patternServer) {
		return usagef("-clients is the number of clients of -pattern server, not of %s", strings.Join(c.patterns, ", "))
	}
	if len(c.modes) == 0 && (set["producers"] || set["consumers"]) {
		return usagef("-producers and -consumers do not apply to -pattern: a chat is two processes, and -clients sets the server's")
	}
	for _, t := range c.transports {
		if t != "ring" && t != "msgq" {
			return usagef("-pattern: %s has no message types to select by; use -transports ring,msgq", t)
		}
	}
	if set["batch"] || set["zerocopy"] {
		return usagef("-batch and -zerocopy cannot be combined with -pattern: the patterns send and receive one message at a time, with copies")
	}
	if slices.Contains(c.patterns, patternServer) {
		for _, n := range c.sizes {
			if n < minServerSize {
				return usagef("-sizes: %d bytes is below the server pattern's minimum of %d: its messages also carry the client's pid and index", n, minServerSize)
			}
		}
		most := slices.Max(c.clients)
		if c.slots < 2*(most+1) {
			return usagef("-slots %d is too few for -pattern server with %d clients: it needs at least %d", c.slots, most, 2*(most+1))
		}
	}
	return nil
}

// patternCaption says which patterns the output has, for its caption.
func patternCaption(cfg *config) string {
	var ps []string
	for _, p := range cfg.patterns {
		if p == patternServer {
			var ns []string
			for _, n := range cfg.clients {
				ns = append(ns, strconv.Itoa(n))
			}
			p = fmt.Sprintf("server with %s client(s)", strings.Join(ns, ", "))
		}
		ps = append(ps, p)
	}
	return "patterns: " + strings.Join(ps, ", ")
}

// patternTables makes a table for each pattern of cfg that has results.
func patternTables(cfg *config, results []*result) []table {
	var out []table
	for _, p := range cfg.patterns {
		var rows []*result
		for _, r := range results {
			if r.Pattern == p {
				rows = append(rows, r)
			}
		}
		if len(rows) == 0 {
			continue
		}
		var t table
		if p == patternChat {
			t.title = "Chat (two processes, one ring or queue, each receives the other's type)"
			t.head = []string{"transport", "size", "wait", "api", "p50", "p99", "p99.9", "max", "round trips/s", "vs msgq", "spread", "CPU/rt", "sem ops/rt"}
			for _, r := range rows {
				t.lines = append(t.lines, []string{
					r.Transport, fmt.Sprintf("%d B", r.Size), r.Wait, api(r),
					fmtNs(float64(r.RTTP50)), fmtNs(float64(r.RTTP99)), fmtNs(float64(r.RTTP999)), fmtNs(float64(r.RTTMax)),
					fmtRate(r.RoundTrips), fmtRatio(r.VsMsgq), fmt.Sprintf("%.0f%%", r.SpreadPct),
					fmtNs(2 * r.CPUNsPerMsg), fmtSem(r.SemOpsPerMsg, 2),
				})
			}
		} else {
			t.title = "Server (request/reply, one ring or queue, replies typed by the client's pid)"
			t.head = []string{"transport", "size", "clients", "wait", "api", "requests/s", "vs msgq", "spread", "p50", "p99", "CPU/req", "sem ops/req"}
			for _, r := range rows {
				t.lines = append(t.lines, []string{
					r.Transport, fmt.Sprintf("%d B", r.Size), strconv.Itoa(r.Clients), r.Wait, api(r),
					fmtRate(r.RoundTrips), fmtRatio(r.VsMsgq), fmt.Sprintf("%.0f%%", r.SpreadPct),
					fmtNs(float64(r.RTTP50)), fmtNs(float64(r.RTTP99)),
					fmtNs(2 * r.CPUNsPerMsg), fmtSem(r.SemOpsPerMsg, 2),
				})
			}
		}
		out = append(out, t)
	}
	return out
}

// patternNotes explains the pattern tables.
func patternNotes(cfg *config) []string {
	var out []string
	if cfg.pin {
		out = append(out, "pinned, patterns: child k (chat side 0, then side 1; the server, then the clients) on CPU k mod the CPUs above.")
	}
	for _, p := range cfg.patterns {
		switch p {
		case patternChat:
			out = append(out, "chat: two processes over one selective ring (MPMC, 2 producers, 2 consumers) or one msgq queue; each sends its own type and receives the other's (ReceiveSelect with OfType, msgrcv with the type); side 0 times each round trip; vs msgq is msgq's p50 ÷ p50.")
		case patternServer:
			out = append(out, "server: one server and N clients over one selective ring (MPMC, N+1 producers and consumers) or one msgq queue; requests have type 1 and carry the client's pid, replies have the pid as type; each client makes one round trip at a time; requests/s is all clients together, p50 and p99 over all their round trips, CPU/req the CPU of every process (server and clients) per request; vs msgq is requests/s ÷ msgq's.")
		}
	}
	return out
}
