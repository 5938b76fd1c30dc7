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
		cl cursorLine
		wl waitLine
		ct controlLine
		rl roleLine
		sh slotHead
	)
	fields := []field{
		{"header.Magic", unsafe.Offsetof(h.Magic), 0},
		{"header.Version", unsafe.Offsetof(h.Version), 8},
		{"header.LineSize", unsafe.Offsetof(h.LineSize), 12},
		{"header.Mode", unsafe.Offsetof(h.Mode), 16},
		{"header.MaxMessage", unsafe.Offsetof(h.MaxMessage), 20},
		{"header.SlotStride", unsafe.Offsetof(h.SlotStride), 24},
		{"header.SlotCount", unsafe.Offsetof(h.SlotCount), 28},
		{"header.MaxProducers", unsafe.Offsetof(h.MaxProducers), 32},
		{"header.MaxConsumers", unsafe.Offsetof(h.MaxConsumers), 36},
		{"header.RolesOffset", unsafe.Offsetof(h.RolesOffset), 40},
		{"header.SlotsOffset", unsafe.Offsetof(h.SlotsOffset), 48},
		{"header.TotalSize", unsafe.Offsetof(h.TotalSize), 56},
		{"header.SemID", unsafe.Offsetof(h.SemID), 64},
		{"header.CreatorPID", unsafe.Offsetof(h.CreatorPID), 68},
		{"header.CreatorStart", unsafe.Offsetof(h.CreatorStart), 72},
		{"header.Created", unsafe.Offsetof(h.Created), 80},
		{"header.ID", unsafe.Offsetof(h.ID), 88},
		{"header.Checksum", unsafe.Offsetof(h.Checksum), 104},
		{"header.State", unsafe.Offsetof(h.State), 112},

		{"cursorLine.pos", unsafe.Offsetof(cl.pos), 0},

		{"waitLine.consumers", unsafe.Offsetof(wl.consumers), 0},
		{"waitLine.producers", unsafe.Offsetof(wl.producers), 4},

		{"controlLine.flags", unsafe.Offsetof(ct.flags), 0},
		{"controlLine.consumerSleeps", unsafe.Offsetof(ct.consumerSleeps), 8},
		{"controlLine.producerSleeps", unsafe.Offsetof(ct.producerSleeps), 16},
		{"controlLine.wakeups", unsafe.Offsetof(ct.wakeups), 24},
		{"controlLine.recovered", unsafe.Offsetof(ct.recovered), 32},
		{"controlLine.redelivered", unsafe.Offsetof(ct.redelivered), 40},

		{"roleLine.state", unsafe.Offsetof(rl.state), 0},
		{"roleLine.pid", unsafe.Offsetof(rl.pid), 8},
		{"roleLine.start", unsafe.Offsetof(rl.start), 16},
		{"roleLine.claim", unsafe.Offsetof(rl.claim), 24},
		{"roleLine.claimLen", unsafe.Offsetof(rl.claimLen), 32},

		{"slotHead.seq", unsafe.Offsetof(sh.seq), 0},
		{"slotHead.size", unsafe.Offsetof(sh.size), 8},
		{"slotHead.flags", unsafe.Offsetof(sh.flags), 12},
		{"slotHead.typ", unsafe.Offsetof(sh.typ), 16},
	}
	for _, f := range fields {
		if f.got != f.want {
			t.Errorf("%s at offset %d, documented %d", f.name, f.got, f.want)
		}
	}

	sizes := []field{
		{"header", unsafe.Sizeof(h), 128},
		{"cursorLine", unsafe.Sizeof(cl), 128},
		{"waitLine", unsafe.Sizeof(wl), 128},
		{"controlLine", unsafe.Sizeof(ct), 128},
		{"roleLine", unsafe.Sizeof(rl), 128},
		{"slotHead", unsafe.Sizeof(sh), 24},
	}
	for _, s := range sizes {
		if s.got != s.want {
			t.Errorf("Sizeof(%s) = %d, want %d", s.name, s.got, s.want)
		}
	}

	consts := []struct {
		name      string
		got, want int
	}{
		{"lineSize", lineSize, 128},
		{"layoutVersion", layoutVersion, 1},
		{"headerLines", headerLines, 5},
		{"slotHeadSize", slotHeadSize, 24},
		{"checksumOffset", checksumOffset, 104},
		{"semData", semData, 0},
		{"semSpace", semSpace, 1},
		{"semRoles", semRoles, 2},
	}
	for _, c := range consts {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	// waitReady finds State by its position after the checksum, before it
	// trusts anything else in the header.
	if got := int(unsafe.Offsetof(h.State)); got != checksumOffset+8 {
		t.Errorf("State at %d, waitReady reads it at %d", got, checksumOffset+8)
	}
	if string(magic[:]) != "SHMRING\x00" {
		t.Errorf("magic %q", magic[:])
	}
	if stateReady != 0x52454459 || stateInit != 0 {
		t.Errorf("states %#x %#x", stateInit, stateReady)
	}
}

// TestHeaderBytes checks that the struct the creator writes and the
// little-endian byte offsets validateHeader reads agree, field by field.
func TestHeaderBytes(t *testing.T) {
	r := newMemRing(t, &Options{Mode: MPMC, Slots: 16, MaxMessage: 300, MaxProducers: 3, MaxConsumers: 5})
	b, h := r.mem, r.hdr
	le := binary.LittleEndian
	u32 := []struct {
		name string
		off  int
		want uint32
	}{
		{"Version", 8, layoutVersion},
		{"LineSize", 12, lineSize},
		{"Mode", 16, uint32(MPMC)},
		{"MaxMessage", 20, 300},
		{"SlotStride", 24, 384},
		{"SlotCount", 28, 16},
		{"MaxProducers", 32, 3},
		{"MaxConsumers", 36, 5},
		{"SemID", 64, uint32(int32(r.SemaphoreID()))},
		{"State", 112, stateReady},
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
		{"RolesOffset", 40, h.RolesOffset, 640},
		{"SlotsOffset", 48, h.SlotsOffset, 640 + 8*128},
		{"TotalSize", 56, h.TotalSize, 640 + 8*128 + 16*384},
		{"CreatorStart", 72, h.CreatorStart, h.CreatorStart},
		{"Created", 80, uint64(h.Created), uint64(h.Created)},
		{"Checksum", 104, h.Checksum, checksum(b)},
	}
	for _, f := range u64 {
		if got := le.Uint64(b[f.off:]); got != f.got || got != f.want {
			t.Errorf("%s: bytes at %d hold %d, struct %d, want %d", f.name, f.off, got, f.got, f.want)
		}
	}
	if string(b[:8]) != string(magic[:]) || string(b[88:104]) != string(h.ID[:]) {
		t.Errorf("magic or id bytes differ from the struct")
	}
	if got := le.Uint32(b[68:]); got != h.CreatorPID || int(got) != os.Getpid() {
		t.Errorf("CreatorPID: bytes hold %d, struct %d, want %d", got, h.CreatorPID, os.Getpid())
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
		g                                       geometry
		roles, rolesOff, slotsOff, stride, size int
	}{
		// 5 header lines = 640; 2 role lines; 24+64 bytes fit one line.
		{geometry{SPSC, 64, 8, 1, 1}, 2, 640, 896, 128, 896 + 8*128},
		// 24+104 = 128 exactly: still one line.
		{geometry{SPSC, 104, 2, 1, 1}, 2, 640, 896, 128, 896 + 2*128},
		// 24+105 = 129: two lines.
		{geometry{SPSC, 105, 2, 1, 1}, 2, 640, 896, 256, 896 + 2*256},
		{geometry{SPMC, 1, 4, 1, 16}, 17, 640, 640 + 17*128, 128, 640 + 17*128 + 4*128},
		// The defaults: 24+1024 = 1048 → 9 lines = 1152.
		{geometry{MPMC, 1024, 1024, 16, 16}, 32, 640, 4736, 1152, 4736 + 1024*1152},
		// 24+4096 = 4120 → 33 lines = 4224.
		{geometry{MPSC, 4096, 64, 7, 1}, 8, 640, 640 + 8*128, 4224, 640 + 8*128 + 64*4224},
		// The largest message: 2^30+24 rounds up to 2^30+128.
		{geometry{SPSC, 1 << 30, 2, 1, 1}, 2, 640, 896, 1<<30 + 128, 896 + 2*(1<<30+128)},
	} {
		g := tc.g
		if err := g.check(); err != nil {
			t.Errorf("%+v: %v", g, err)
		}
		if g.roles() != tc.roles || g.rolesOffset() != tc.rolesOff || g.slotsOffset() != tc.slotsOff ||
			g.stride() != tc.stride || g.size() != tc.size {
			t.Errorf("%+v: roles %d, offsets %d/%d, stride %d, size %d; want %d, %d/%d, %d, %d", g,
				g.roles(), g.rolesOffset(), g.slotsOffset(), g.stride(), g.size(),
				tc.roles, tc.rolesOff, tc.slotsOff, tc.stride, tc.size)
		}
		if g.stride()%lineSize != 0 || g.stride() < slotHeadSize+g.maxMessage {
			t.Errorf("%+v: stride %d", g, g.stride())
		}
	}
}

// TestOptionsGeometry checks the defaults that Options fill in.
func TestOptionsGeometry(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		want geometry
	}{
		{Options{}, geometry{SPSC, DefaultMaxMessage, DefaultSlots, 1, 1}},
		{Options{Mode: MPSC}, geometry{MPSC, DefaultMaxMessage, DefaultSlots, DefaultRoles, 1}},
		{Options{Mode: SPMC}, geometry{SPMC, DefaultMaxMessage, DefaultSlots, 1, DefaultRoles}},
		{Options{Mode: MPMC, Slots: 4, MaxMessage: 8, MaxProducers: 3}, geometry{MPMC, 8, 4, 3, DefaultRoles}},
	} {
		if got := tc.opts.geometry(); got != tc.want {
			t.Errorf("%+v: geometry %+v, want %+v", tc.opts, got, tc.want)
		}
	}
}
