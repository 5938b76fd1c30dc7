package ring

import "runtime"

// yield lets other goroutines run during a long spin.
func yield() { runtime.Gosched() }
