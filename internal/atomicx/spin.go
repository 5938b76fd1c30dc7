package atomicx

// Pause hints to the CPU that the caller is spinning (PAUSE on amd64, YIELD
// on arm64), which saves power and lets a sibling hyper-thread run. It does
// not yield the goroutine.
func Pause() { pause() }
