package atomicx

// StoreStore orders every store the calling goroutine made before it
// before every store it makes after it, as seen by any other CPU: the
// writer's half of a sequence lock (mark a record busy, StoreStore, then
// overwrite it). Loads are not ordered by it.
func StoreStore() { storeStore() }

// LoadLoad orders every load the calling goroutine made before it before
// every load it makes after it: the reader's half of a sequence lock (copy
// a record, LoadLoad, then load its sequence word again to see whether it
// was overwritten meanwhile). Stores are not ordered by it.
func LoadLoad() { loadLoad() }
