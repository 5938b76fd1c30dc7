package msgq

import (
	"testing"
	"unsafe"
)

// TestLayout checks the kernel structs in types_linux_*.go against the
// sizes and offsets that the uapi headers give on a 64-bit architecture
// (int 4 bytes, long 8, both aligned to their size): struct ipc64_perm in
// <asm-generic/ipcbuf.h>, struct msqid64_ds in <asm-generic/msgbuf.h>,
// struct msginfo in <linux/msg.h>. It guards the hand-written arm64 file
// as much as the generated amd64 one.
func TestLayout(t *testing.T) {
	var p ipc64Perm
	var ds msqid64DS
	var mi msginfo
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"sizeof(struct ipc64_perm)", unsafe.Sizeof(p), 48},
		{"ipc64_perm.key", unsafe.Offsetof(p.Key), 0},
		{"ipc64_perm.uid", unsafe.Offsetof(p.Uid), 4},
		{"ipc64_perm.gid", unsafe.Offsetof(p.Gid), 8},
		{"ipc64_perm.cuid", unsafe.Offsetof(p.Cuid), 12},
		{"ipc64_perm.cgid", unsafe.Offsetof(p.Cgid), 16},
		{"ipc64_perm.mode", unsafe.Offsetof(p.Mode), 20},
		{"ipc64_perm.seq", unsafe.Offsetof(p.Seq), 24},

		{"sizeof(struct msqid64_ds)", unsafe.Sizeof(ds), 120},
		{"sizeofMsqid64DS", sizeofMsqid64DS, 120},
		{"msqid64_ds.msg_perm", unsafe.Offsetof(ds.Perm), 0},
		{"msqid64_ds.msg_stime", unsafe.Offsetof(ds.Stime), 48},
		{"msqid64_ds.msg_rtime", unsafe.Offsetof(ds.Rtime), 56},
		{"msqid64_ds.msg_ctime", unsafe.Offsetof(ds.Ctime), 64},
		{"msqid64_ds.msg_cbytes", unsafe.Offsetof(ds.Cbytes), 72},
		{"msqid64_ds.msg_qnum", unsafe.Offsetof(ds.Qnum), 80},
		{"msqid64_ds.msg_qbytes", unsafe.Offsetof(ds.Qbytes), 88},
		{"msqid64_ds.msg_lspid", unsafe.Offsetof(ds.Lspid), 96},
		{"msqid64_ds.msg_lrpid", unsafe.Offsetof(ds.Lrpid), 100},

		{"sizeof(struct msginfo)", unsafe.Sizeof(mi), 32},
		{"sizeofMsginfo", sizeofMsginfo, 32},
		{"msginfo.msgpool", unsafe.Offsetof(mi.Msgpool), 0},
		{"msginfo.msgmap", unsafe.Offsetof(mi.Msgmap), 4},
		{"msginfo.msgmax", unsafe.Offsetof(mi.Msgmax), 8},
		{"msginfo.msgmnb", unsafe.Offsetof(mi.Msgmnb), 12},
		{"msginfo.msgmni", unsafe.Offsetof(mi.Msgmni), 16},
		{"msginfo.msgtql", unsafe.Offsetof(mi.Msgtql), 24},
		{"msginfo.msgseg", unsafe.Offsetof(mi.Msgseg), 28},

		{"sizeof(long) (the message type)", hdrSize, 8},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}
