package ring

import (
	"encoding/binary"
	"os"
	"testing"
	"unsafe"
)

// TestLayout checks the shared format against the offsets that layout.go
// documents: every field of every line struct sits where its comment says,
// and every struct has the documented size. The numbers are written out by
// hand on purpose: a change that moves a field must change this table and
// bump layoutVersion.
func TestLayout(t *testing.T) {
	type field struct {
		name      string
		got, want uintptr
	}
	var (
		h  header
		sl sealLine
		cl cursorLine
		sp sleepLine
		ct controlLine
		rl roleLine
		sd slotDesc
	)
	fields := []field{
		{"header.Magic", unsafe.Offsetof(h.Magic), 0},
		{"header.Version", unsafe.Offsetof(h.Version), 8},
		{"header.LineSize", unsafe.Offsetof(h.LineSize), 12},
		{"header.Mode", unsafe.Offsetof(h.Mode), 16},
		{"header.Features", unsafe.Offsetof(h.Features), 20},
		{"header.MaxMessage", unsafe.Offsetof(h.MaxMessage), 24},
		{"header.SlotSize", unsafe.Offsetof(h.SlotSize), 28},
		{"header.SlotCount", unsafe.Offsetof(h.SlotCount), 32},
		{"header.MaxProducers", unsafe.Offsetof(h.MaxProducers), 36},
		{"header.MaxConsumers", unsafe.Offsetof(h.MaxConsumers), 40},
		{"header.SemCount", unsafe.Offsetof(h.SemCount), 44},
		{"header.RolesOffset", unsafe.Offsetof(h.RolesOffset), 48},
		{"header.DescsOffset", unsafe.Offsetof(h.DescsOffset), 56},
		{"header.PayloadOffset", unsafe.Offsetof(h.PayloadOffset), 64},
		{"header.TotalSize", unsafe.Offsetof(h.TotalSize), 72},
		{"header.Key", unsafe.Offsetof(h.Key), 80},
		{"header.SemID", unsafe.Offsetof(h.SemID), 84},
		{"header.CreatorPID", unsafe.Offsetof(h.CreatorPID), 88},
		{"header.CreatorStart", unsafe.Offsetof(h.CreatorStart), 96},
		{"header.Created", unsafe.Offsetof(h.Created), 104},
		{"header.LegacyReady", unsafe.Offsetof(h.LegacyReady), 112},

		{"sealLine.ID", unsafe.Offsetof(sl.ID), 0},
		{"sealLine.Reserved", unsafe.Offsetof(sl.Reserved), 16},
		{"sealLine.Checksum", unsafe.Offsetof(sl.Checksum), 112},
		{"sealLine.State", unsafe.Offsetof(sl.State), 120},

		{"cursorLine.pos", unsafe.Offsetof(cl.pos), 0},

		{"sleepLine.masks", unsafe.Offsetof(sp.masks), 0},
		{"sleepLine.flags", unsafe.Offsetof(sp.flags), 64},
		{"sleepLine.fenced", unsafe.Offsetof(sp.fenced), 72},

		{"controlLine.flags", unsafe.Offsetof(ct.flags), 0},
		{"controlLine.consumerSleeps", unsafe.Offsetof(ct.consumerSleeps), 8},
		{"controlLine.producerSleeps", unsafe.Offsetof(ct.producerSleeps), 16},
		{"controlLine.wakeups", unsafe.Offsetof(ct.wakeups), 24},
		{"controlLine.recovered", unsafe.Offsetof(ct.recovered), 32},
		{"controlLine.redelivered", unsafe.Offsetof(ct.redelivered), 40},
		{"controlLine.reaped", unsafe.Offsetof(ct.reaped), 48},
		{"controlLine.handbacks", unsafe.Offsetof(ct.handbacks), 56},

		{"roleLine.state", unsafe.Offsetof(rl.state), 0},
		{"roleLine.pid", unsafe.Offsetof(rl.pid), 8},
		{"roleLine.start", unsafe.Offsetof(rl.start), 16},
		{"roleLine.claim", unsafe.Offsetof(rl.claim), 24},
		{"roleLine.claimLen", unsafe.Offsetof(rl.claimLen), 32},
		{"roleLine.peek", unsafe.Offsetof(rl.peek), 40},
		{"roleLine.msgs", unsafe.Offsetof(rl.msgs), 48},
		{"roleLine.bytes", unsafe.Offsetof(rl.bytes), 56},
		{"roleLine.since", unsafe.Offsetof(rl.since), 64},

		{"slotDesc.seq", unsafe.Offsetof(sd.seq), 0},
		{"slotDesc.typ", unsafe.Offsetof(sd.typ), 16},
		{"slotDesc.size", unsafe.Offsetof(sd.size), 24},
		{"slotDesc.flags", unsafe.Offsetof(sd.flags), 28},
		{"slotDesc.inline", unsafe.Offsetof(sd.inline), 40},
	}
	for _, f := range fields {
		if f.got != f.want {
			t.Errorf("%s at offset %d, documented %d", f.name, f.got, f.want)
		}
	}
	for _, s := range []field{
		{"header", unsafe.Sizeof(h), 128},
		{"sealLine", unsafe.Sizeof(sl), 128},
		{"cursorLine", unsafe.Sizeof(cl), 128},
		{"sleepLine", unsafe.Sizeof(sp), 128},
		{"controlLine", unsafe.Sizeof(ct), 128},
		{"roleLine", unsafe.Sizeof(rl), 128},
		{"slotDesc", unsafe.Sizeof(sd), 128},
	} {
		if s.got != s.want {
			t.Errorf("Sizeof(%s) = %d, want %d", s.name, s.got, s.want)
		}
	}
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"lineSize", lineSize, 128},
		{"layoutVersion", layoutVersion, 2},
		{"headerSize", headerSize, 256},
		{"fixedLines", fixedLines, 7},
		{"InlineCap", InlineCap, 88},
		{"payloadAlign", payloadAlign, 64},
		{"checksumOffset", checksumOffset, 240},
		{"stateOffset", stateOffset, 248},
		{"maxSideRoles", maxSideRoles, 512},
		{"semPrint", semPrint, 0},
		{"semSegment", semSegment, 4},
		{"semTag", semTag, 7},
		{"semLocks", semLocks, 8},
		{"semTagValue", semTagValue, 0x5247},
		{"flagRemoved", flagRemoved, 1},
		{"sleepFenced", sleepFenced, 1},
		{"descInline", descInline, 1},
		{"roleFree", roleFree, 0},
		{"roleActive", roleActive, 1},
		{"roleClosed", roleClosed, 2},
		{"roleDead", roleDead, 3},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	if string(magic[:]) != "SHMRING\x00" {
		t.Errorf("magic %q", magic[:])
	}
	if stateReady != 0x59444552 || stateInit != 0 || legacyReady != 0x52454459 {
		t.Errorf("states %#x %#x %#x", stateInit, stateReady, legacyReady)
	}
	if seqSkip != 1<<63 || seqHeld != 1<<62 {
		t.Errorf("sequence flags %#x %#x", uint64(seqSkip), uint64(seqHeld))
	}
}

// TestHeaderBytes checks that the structs the creator writes and the
// little-endian byte offsets validateHeader reads agree, field by field.
func TestHeaderBytes(t *testing.T) {
	r := testRing(t, heap, &Options{Mode: MPMC, Slots: 16, MaxMessage: 300, MaxProducers: 3, MaxConsumers: 5})
	b, h := r.mem, r.hdr
	le := binary.LittleEndian
	roles := 896
	descs := roles + 8*128
	payload := descs + 16*128
	u32 := []struct {
		name string
		off  int
		want uint32
	}{
		{"Version", 8, layoutVersion},
		{"LineSize", 12, lineSize},
		{"Mode", 16, uint32(MPMC)},
		{"Features", 20, 0},
		{"MaxMessage", 24, 300},
		{"SlotSize", 28, 320},
		{"SlotCount", 32, 16},
		{"MaxProducers", 36, 3},
		{"MaxConsumers", 40, 5},
		{"SemCount", 44, 8 + 2*8},
		{"Key", 80, 0},
		{"SemID", 84, uint32(int32(r.SemaphoreID()))},
		{"LegacyReady", 112, legacyReady},
		{"State", 248, stateReady},
	}
	for _, f := range u32 {
		if got := le.Uint32(b[f.off:]); got != f.want {
			t.Errorf("%s: bytes at %d hold %d, want %d", f.name, f.off, got, f.want)
		}
	}
	u64 := []struct {
		name      string
		off       int
		got, want uint64
	}{
		{"RolesOffset", 48, h.RolesOffset, uint64(roles)},
		{"DescsOffset", 56, h.DescsOffset, uint64(descs)},
		{"PayloadOffset", 64, h.PayloadOffset, uint64(payload)},
		{"TotalSize", 72, h.TotalSize, uint64(payload + 16*320)},
		{"CreatorStart", 96, h.CreatorStart, h.CreatorStart},
		{"Created", 104, uint64(h.Created), uint64(h.Created)},
		{"Checksum", 240, r.seal.Checksum, checksum(b)},
	}
	for _, f := range u64 {
		if got := le.Uint64(b[f.off:]); got != f.got || got != f.want {
			t.Errorf("%s: bytes at %d hold %d, struct %d, want %d", f.name, f.off, got, f.got, f.want)
		}
	}
	if string(b[:8]) != string(magic[:]) || string(b[128:144]) != string(r.seal.ID[:]) {
		t.Errorf("magic or id bytes differ from the structs")
	}
	if got := le.Uint32(b[88:]); got != h.CreatorPID || int(got) != os.Getpid() {
		t.Errorf("CreatorPID: bytes hold %d, struct %d, want %d", got, h.CreatorPID, os.Getpid())
	}
	for i := 144; i < 240; i++ {
		if b[i] != 0 {
			t.Fatalf("reserved header byte %d is %#x", i, b[i])
		}
	}
	g, err := validateHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if g != r.g {
		t.Fatalf("validateHeader read %+v, the creator wrote %+v", g, r.g)
	}
}

// TestGeometry checks the derived sizes of a few geometries against numbers
// worked out by hand from the diagram in layout.go.
func TestGeometry(t *testing.T) {
	for _, tc := range []struct {
		g                                      geometry
		roles, descs, payload, slotSize, total int
	}{
		// 7 fixed lines = 896; 2 role lines; 8 descriptors; 64-byte messages
		// fit a descriptor: no payload area.
		{geometry{SPSC, 64, 8, 1, 1, false, 0, fanoutShape{}}, 2, 1152, 2176, 0, 2176},
		// 88 bytes is InlineCap: still no payload area.
		{geometry{SPSC, 88, 2, 1, 1, false, 0, fanoutShape{}}, 2, 1152, 1408, 0, 1408},
		// 89 bytes: a payload area of 128-byte slots (two 64-byte lines).
		{geometry{SPSC, 89, 2, 1, 1, false, 0, fanoutShape{}}, 2, 1152, 1408, 128, 1408 + 2*128},
		{geometry{SPMC, 1, 4, 1, 16, false, 0, fanoutShape{}}, 17, 896 + 17*128, 896 + 21*128, 0, 896 + 21*128},
		// The defaults: 1024-byte slots.
		{geometry{MPMC, 1024, 1024, 16, 16, false, 0, fanoutShape{}}, 32, 4992, 4992 + 1024*128, 1024, 4992 + 1024*128 + 1024*1024},
		{geometry{MPSC, 4096, 64, 7, 1, false, 0, fanoutShape{}}, 8, 1920, 1920 + 64*128, 4096, 1920 + 64*128 + 64*4096},
		// The largest message.
		{geometry{SPSC, 1 << 30, 2, 1, 1, false, 0, fanoutShape{}}, 2, 1152, 1408, 1 << 30, 1408 + 2<<30},
	} {
		g := tc.g
		if err := g.check(); err != nil {
			t.Errorf("%+v: %v", g, err)
		}
		if g.roles() != tc.roles || g.rolesOffset() != 896 || g.descsOffset() != tc.descs || g.payloadOffset() != tc.payload ||
			g.slotSize() != tc.slotSize || g.size() != tc.total {
			t.Errorf("%+v: roles %d, offsets %d/%d/%d, slot %d, size %d; want %d, 896/%d/%d, %d, %d", g,
				g.roles(), g.rolesOffset(), g.descsOffset(), g.payloadOffset(), g.slotSize(), g.size(),
				tc.roles, tc.descs, tc.payload, tc.slotSize, tc.total)
		}
		if s := g.slotSize(); s%payloadAlign != 0 || s != 0 && s < g.maxMessage || s == 0 && g.maxMessage > InlineCap {
			t.Errorf("%+v: slot size %d", g, s)
		}
	}
	for _, g := range []geometry{
		{MPMC, 8, 8, maxSideRoles + 1, 1, false, 0, fanoutShape{}},
		{MPMC, 8, 8, 1, maxSideRoles + 1, false, 0, fanoutShape{}},
		{SPMC, 8, 8, 2, 4, false, 0, fanoutShape{}},
	} {
		if g.check() == nil {
			t.Errorf("%+v accepted", g)
		}
	}
}

// TestOptionsGeometry checks the defaults that Options fill in.
func TestOptionsGeometry(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		want geometry
	}{
		{Options{}, geometry{SPSC, DefaultMaxMessage, DefaultSlots, 1, 1, false, 0, fanoutShape{}}},
		{Options{Mode: MPSC}, geometry{MPSC, DefaultMaxMessage, DefaultSlots, DefaultRoles, 1, false, 0, fanoutShape{}}},
		{Options{Mode: SPMC}, geometry{SPMC, DefaultMaxMessage, DefaultSlots, 1, DefaultRoles, false, 0, fanoutShape{}}},
		{Options{Mode: MPMC, Slots: 4, MaxMessage: 8, MaxProducers: 3}, geometry{MPMC, 8, 4, 3, DefaultRoles, false, 0, fanoutShape{}}},
	} {
		if got := tc.opts.geometry(); got != tc.want {
			t.Errorf("%+v: geometry %+v, want %+v", tc.opts, got, tc.want)
		}
	}
}
