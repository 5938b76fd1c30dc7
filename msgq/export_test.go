package msgq

// EINTRRetries returns how many system calls have been retried after EINTR
// so far, so that tests can tell that a signal storm reached a blocked call.
func EINTRRetries() uint64 { return eintrRetries.Load() }
