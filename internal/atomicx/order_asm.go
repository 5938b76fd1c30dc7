//go:build (amd64 || arm64) && !race

package atomicx

import "sync/atomic"

// Implemented in order_$GOARCH.s.

//go:noescape
func storeRelease(p *atomic.Uint64, v uint64)

//go:noescape
func storeRelease32(p *atomic.Uint32, v uint32)

func fence()

func pause()
