package ipc

import (
	"fmt"
	"io/fs"
)

// DefaultMode is the permission every constructor in this module uses unless
// told otherwise: read and write for the owner, nothing for anyone else.
const DefaultMode fs.FileMode = 0o600

// Perm is the ownership and permission record every System V object carries
// (struct ipc_perm).
type Perm struct {
	Key  Key         // the key the object was created with (Private: 0)
	UID  uint32      // owner's user id
	GID  uint32      // owner's group id
	CUID uint32      // creator's user id
	CGID uint32      // creator's group id
	Mode fs.FileMode // the nine permission bits
}

// CheckMode reports an error if mode has bits other than the nine
// permission bits, which System V objects do not have.
func CheckMode(mode fs.FileMode) error {
	if mode&^fs.ModePerm != 0 {
		return fmt.Errorf("ipc: mode %v has bits beyond the nine permission bits", mode)
	}
	return nil
}
