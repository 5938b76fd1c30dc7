//go:build !((amd64 || arm64) && gc) || race

package atomicx

// Elsewhere, and under the race detector, a full fence gives at least the
// promised order.
func storeStore() { fence() }
func loadLoad()   { fence() }
