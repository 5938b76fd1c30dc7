package ipc

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Key names a System V IPC object, as key_t does in C. Two processes that
// use the same key reach the same object. [Private] asks for a new object
// that can only be reached by its id.
type Key int32

// Private is IPC_PRIVATE: the key that always creates a new object, reached
// afterwards only through its id.
const Private Key = unix.IPC_PRIVATE

// String formats the key the way ipcs(1) prints it: 0x followed by eight
// hexadecimal digits.
func (k Key) String() string {
	return fmt.Sprintf("0x%08x", uint32(k))
}

// Ftok derives a key from an existing file and a project id, bit for bit as
// glibc's ftok(3) does: the low 16 bits of the inode number, the low 8 bits
// of the device number and the 8 bits of id. Keys made from the same file
// and id are equal in every process, as long as the file is not replaced.
//
// As with ftok(3), different files can yield the same key; id 0 is allowed
// by glibc but gives a key that POSIX leaves unspecified, so Ftok rejects it.
func Ftok(path string, id byte) (Key, error) {
	if id == 0 {
		return 0, fmt.Errorf("ipc: ftok %s: project id must not be 0", path)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, &os.PathError{Op: "ftok", Path: path, Err: err}
	}
	k := uint32(st.Ino&0xffff) | uint32(st.Dev&0xff)<<16 | uint32(id)<<24
	return Key(int32(k)), nil
}
