package atomicx

import (
	"errors"
	"unsafe"
)

// LineSize is the cache-line size of the shared format, in bytes: the unit in
// which shared headers are laid out and slots are strided. It is a constant
// of the format, the same on every architecture (128 covers the 64-byte lines
// of amd64 together with their adjacent-line prefetcher, and the 128-byte
// lines of some arm64 cores), never taken from the running CPU.
const LineSize = 128

// ErrView is returned by the view functions when the requested struct does
// not lie wholly inside the buffer or is not aligned as it must be.
var ErrView = errors.New("atomicx: word out of bounds or misaligned")

// Aligned reports whether the first byte of b lies on a LineSize boundary.
// Shared memory from shmat is page-aligned; a heap buffer may not be.
func Aligned(b []byte) bool {
	return uintptr(unsafe.Pointer(unsafe.SliceData(b)))%LineSize == 0
}

// AlignedBuffer returns a zeroed heap buffer of n bytes whose first byte lies
// on a LineSize boundary, for running shared-memory code over plain memory
// (tests, and the race detector, which cannot see shared memory).
func AlignedBuffer(n int) []byte {
	raw := make([]byte, n+LineSize)
	skip := int(-uintptr(unsafe.Pointer(unsafe.SliceData(raw))) & (LineSize - 1))
	return raw[skip : skip+n : skip+n]
}
