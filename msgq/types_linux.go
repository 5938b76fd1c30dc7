//go:build ignore

// Input to cgo -godefs for types_linux_amd64.go. It is not part of the
// build. On a machine of the target architecture, with the kernel's uapi
// headers installed, run in this directory:
//
//	go tool cgo -godefs types_linux.go |
//		sed -E 's/X__[a-z0-9]+|Pad_cgo_[0-9]+/_/' |
//		gofmt >types_linux_$(go env GOARCH).go
//
// The sed step blanks the kernel's padding and unused fields.

package msgq

/*
#include <linux/msg.h>
*/
import "C"

// struct ipc64_perm, from <asm-generic/ipcbuf.h> via <asm/ipcbuf.h>.
type ipc64Perm C.struct_ipc64_perm

// struct msqid64_ds, from <asm-generic/msgbuf.h> via <asm/msgbuf.h>: what
// msgctl(IPC_STAT) fills and IPC_SET reads.
type msqid64DS C.struct_msqid64_ds

// struct msginfo, from <linux/msg.h>: what msgctl(IPC_INFO) and
// msgctl(MSG_INFO) fill.
type msginfo C.struct_msginfo

const (
	sizeofMsqid64DS = C.sizeof_struct_msqid64_ds
	sizeofMsginfo   = C.sizeof_struct_msginfo
)
