//go:build go1.24

// Benchmarks use testing.B.Loop, which needs Go 1.24; the module itself
// builds with Go 1.22.

package atomicx

import (
	"sync/atomic"
	"testing"
)

var sink atomic.Uint64

func BenchmarkStore(b *testing.B) {
	b.Run("op=atomic-store", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			sink.Store(uint64(i))
		}
	})
	b.Run("op=store-release", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			StoreRelease(&sink, uint64(i))
		}
	})
	b.Run("op=store-release+fence", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			StoreRelease(&sink, uint64(i))
			Fence()
		}
	})
	b.Run("op=barrier", func(b *testing.B) {
		for b.Loop() {
			Barrier()
		}
	})
}
