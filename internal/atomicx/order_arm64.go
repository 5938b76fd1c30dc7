//go:build arm64 && gc && !race

package atomicx

import "sync/atomic"

// On arm64 sync/atomic's store is STLR, a release store (sequentially
// consistent with LDAR loads), and gc inlines it: exactly the release
// store wanted, with no call. An STLR then an LDAR are ordered, so
// storeLoad32 is a full store-load handshake whether or not it fences.

func storeRelease(p *atomic.Uint64, v uint64) { p.Store(v) }

func storeRelease32(p *atomic.Uint32, v uint32) { p.Store(v) }

func storeLoad32(p *atomic.Uint32, v uint32, q *atomic.Uint32, _ bool) uint32 {
	p.Store(v)
	return q.Load()
}
