package atomicx

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"
)

// LineSize is the cache-line size of the shared format, in bytes: the unit in
// which shared headers are laid out and slots are strided. It is a constant
// of the format, the same on every architecture (128 covers the 64-byte lines
// of amd64 together with their adjacent-line prefetcher, and the 128-byte
// lines of some arm64 cores), never taken from the running CPU.
const LineSize = 128

// ErrView is returned by the view functions when the requested word does not
// lie wholly inside the buffer or is not naturally aligned.
var ErrView = errors.New("atomicx: word out of bounds or misaligned")

// Uint64At returns an atomic view of the 8 bytes of b at offset off. The
// word must lie within b and its address must be 8-byte aligned. The view is
// valid as long as the memory behind b is: for shared memory, until the
// segment is detached.
func Uint64At(b []byte, off int) (*atomic.Uint64, error) {
	p, err := wordAt(b, off, 8)
	if err != nil {
		return nil, err
	}
	// unsafe.Pointer rule (1): b's memory is at least 8 bytes from p and p is
	// 8-byte aligned, so it may be viewed as an atomic.Uint64, whose only
	// field is the uint64 value.
	return (*atomic.Uint64)(p), nil
}

// Uint32At returns an atomic view of the 4 bytes of b at offset off, with
// the same rules as [Uint64At] and 4-byte alignment.
func Uint32At(b []byte, off int) (*atomic.Uint32, error) {
	p, err := wordAt(b, off, 4)
	if err != nil {
		return nil, err
	}
	// unsafe.Pointer rule (1), as in Uint64At.
	return (*atomic.Uint32)(p), nil
}

func wordAt(b []byte, off, size int) (unsafe.Pointer, error) {
	if off < 0 || off > len(b)-size {
		return nil, fmt.Errorf("%w: %d bytes at offset %d in %d", ErrView, size, off, len(b))
	}
	// unsafe.Pointer rule (3) is not needed: unsafe.Add keeps the pointer
	// inside b's allocation, which was just checked.
	p := unsafe.Add(unsafe.Pointer(unsafe.SliceData(b)), off)
	if uintptr(p)%uintptr(size) != 0 {
		return nil, fmt.Errorf("%w: %d bytes at offset %d are not %d-aligned", ErrView, size, off, size)
	}
	return p, nil
}

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
