//go:build arm64 && gc && !race

package atomicx

// Implemented in seqlock_arm64.s: DMB ISHST and DMB ISHLD.
func storeStore()
func loadLoad()
