package atomicx

import (
	"fmt"
	"unsafe"
)

// At returns a view of the fixed-layout struct T at offset off of b. T must
// hold only fixed-width fields (and sync/atomic types of them), so that its
// layout is the same in every process. The struct must lie wholly inside b
// and start on a LineSize boundary of b's memory.
func At[T any](b []byte, off int) (*T, error) {
	size := int(unsafe.Sizeof(*new(T)))
	if off < 0 || off > len(b)-size {
		return nil, fmt.Errorf("%w: %d-byte struct at offset %d in %d", ErrView, size, off, len(b))
	}
	// unsafe.Add stays inside b's memory, just checked.
	p := unsafe.Add(unsafe.Pointer(unsafe.SliceData(b)), off)
	if uintptr(p)%LineSize != 0 {
		return nil, fmt.Errorf("%w: struct at offset %d is not line-aligned", ErrView, off)
	}
	// unsafe.Pointer rule (1): the memory is at least Sizeof(T) long, aligned
	// for T, and T holds no Go pointers.
	return (*T)(p), nil
}

// Array is a view of n elements of the fixed-layout struct T inside a
// []byte, each at the start of a stride-byte cell, with the bytes of each
// cell after T reachable through [Array.Tail]. It is made once, with every
// bound checked, so that indexing on a hot path costs one comparison. An
// Array is a value: copy it freely; it is valid as long as the memory it
// views.
type Array[T any] struct {
	base   unsafe.Pointer // first cell; not Go memory when the view is of shared memory
	stride uintptr        // bytes from one cell to the next
	n      uint64         // number of cells
	head   uintptr        // unsafe.Sizeof(T), where a cell's tail starts
}

// NewArray returns a view of n cells of stride bytes starting at offset off
// of b, each beginning with a T. The cells must lie wholly inside b, stride
// must be a positive multiple of LineSize no smaller than T, and the first
// cell must be line-aligned.
func NewArray[T any](b []byte, off, stride, n int) (Array[T], error) {
	head := int(unsafe.Sizeof(*new(T)))
	switch {
	case n <= 0 || stride <= 0 || stride%LineSize != 0 || stride < head:
		return Array[T]{}, fmt.Errorf("%w: %d cells of %d bytes with a %d-byte head", ErrView, n, stride, head)
	case off < 0 || off > len(b) || n > (len(b)-off)/stride:
		return Array[T]{}, fmt.Errorf("%w: %d cells of %d bytes at offset %d in %d", ErrView, n, stride, off, len(b))
	}
	p := unsafe.Add(unsafe.Pointer(unsafe.SliceData(b)), off)
	if uintptr(p)%LineSize != 0 {
		return Array[T]{}, fmt.Errorf("%w: cells at offset %d are not line-aligned", ErrView, off)
	}
	return Array[T]{base: p, stride: uintptr(stride), n: uint64(n), head: uintptr(head)}, nil
}

// Len returns the number of cells.
func (a *Array[T]) Len() int { return int(a.n) }

// At returns cell i's T. It panics if i is out of range, as indexing a slice
// does; callers mask i by Len-1 first.
func (a *Array[T]) At(i uint64) *T {
	if i >= a.n {
		panic("atomicx: Array index out of range")
	}
	// unsafe.Pointer rule (3)-free arithmetic with unsafe.Add; the cell lies
	// inside the memory checked by NewArray.
	return (*T)(unsafe.Add(a.base, uintptr(i)*a.stride))
}

// Tail returns the bytes of cell i after its T: stride minus Sizeof(T)
// bytes. Like At, it panics if i is out of range. The slice is valid as long
// as the memory the Array views.
func (a *Array[T]) Tail(i uint64) []byte {
	if i >= a.n {
		panic("atomicx: Array index out of range")
	}
	// unsafe.Slice over memory checked by NewArray to lie inside the buffer.
	return unsafe.Slice((*byte)(unsafe.Add(a.base, uintptr(i)*a.stride+a.head)), a.stride-a.head)
}
