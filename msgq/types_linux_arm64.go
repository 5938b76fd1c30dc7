// Written by hand for arm64 from the kernel's uapi headers, because no
// arm64 headers or compiler were at hand to run cgo -godefs (see
// types_linux.go):
//
//   - struct ipc64_perm from <asm-generic/ipcbuf.h> (arm64 has no
//     ipcbuf.h of its own and exports the generic one); __kernel_mode_t
//     is unsigned int (<asm-generic/posix_types.h>), so __pad1 is empty;
//   - struct msqid64_ds from <asm-generic/msgbuf.h> (likewise generic on
//     arm64) with __BITS_PER_LONG == 64;
//   - struct msginfo from <linux/msg.h>.
//
// On arm64, as on amd64, long is 64 bits and int 32, and both use the
// generic definitions, so the layout equals types_linux_amd64.go's.
// TestLayout checks every size and offset against the headers' arithmetic.

package msgq

type ipc64Perm struct {
	Key  int32
	Uid  uint32
	Gid  uint32
	Cuid uint32
	Cgid uint32
	Mode uint32
	_    [0]uint8
	Seq  uint16
	_    uint16
	_    uint64
	_    uint64
}

type msqid64DS struct {
	Perm   ipc64Perm
	Stime  int64
	Rtime  int64
	Ctime  int64
	Cbytes uint64
	Qnum   uint64
	Qbytes uint64
	Lspid  int32
	Lrpid  int32
	_      uint64
	_      uint64
}

type msginfo struct {
	Msgpool int32
	Msgmap  int32
	Msgmax  int32
	Msgmnb  int32
	Msgmni  int32
	Msgssz  int32
	Msgtql  int32
	Msgseg  uint16
	_       [2]byte
}

const (
	sizeofMsqid64DS = 0x78
	sizeofMsginfo   = 0x20
)
