package ipc

import (
	"io/fs"
	"testing"
)

func TestCheckMode(t *testing.T) {
	for _, mode := range []fs.FileMode{0, 0o600, 0o640, 0o444, 0o777, DefaultMode} {
		if err := CheckMode(mode); err != nil {
			t.Errorf("CheckMode(%#o): %v", mode, err)
		}
	}
	for _, mode := range []fs.FileMode{
		0o1000, 0o1777, 0o4000, 0o10000,
		fs.ModeDir | 0o700, fs.ModeSetuid | 0o600, fs.ModeSetgid, fs.ModeSticky | 0o600,
		fs.ModeNamedPipe, fs.ModeSocket, fs.ModeIrregular,
	} {
		if err := CheckMode(mode); err == nil {
			t.Errorf("CheckMode(%v) = nil, want an error", mode)
		}
	}
	if DefaultMode != 0o600 {
		t.Errorf("DefaultMode = %#o, want 0600", DefaultMode)
	}
}
