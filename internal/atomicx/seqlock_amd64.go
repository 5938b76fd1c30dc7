//go:build amd64 && gc && !race

package atomicx

// On amd64 (TSO) stores are never reordered with stores, nor loads with
// loads: both halves cost nothing but the compiler's keeping program
// order, which it does for stores and for loads around atomic operations
// and calls.
func storeStore() {}
func loadLoad()   {}
