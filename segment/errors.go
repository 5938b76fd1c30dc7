package segment

import "errors"

// Sentinels for conditions this package detects itself. Errors from the
// kernel are [*ipc.Error] values; where one of these sentinels explains an
// errno, the error matches both.
var (
	// ErrSize is returned by [Create] when the size is not positive, when it
	// is larger than the system's limit for one segment (SHMMAX, read from
	// /proc/sys/kernel/shmmax), or when the key names an existing segment
	// that is smaller than the size asked for (EINVAL from shmget).
	ErrSize = errors.New("segment: bad size")

	// ErrHugePages is returned by [Create] with [Options.HugePages] when the
	// kernel cannot back the segment with huge pages: none are free or
	// reserved (ENOMEM; see /proc/sys/vm/nr_hugepages), the caller may not
	// use them (EPERM), or the kernel has none of the default size (EINVAL,
	// ENOENT). The errno is matched as well.
	ErrHugePages = errors.New("segment: huge pages unavailable")

	// ErrPrivate is returned by [Open] when asked for [ipc.Private], which
	// names no existing segment; a private segment is opened by its id with
	// [OpenID].
	ErrPrivate = errors.New("segment: the private key names no segment")
)

// explained pairs an errno with what it means in this call and, if not
// nil, with the sentinel that names that meaning, so that errors.Is
// matches both.
type explained struct {
	why      string
	sentinel error
	errno    error
}

func (e *explained) Error() string { return e.why + ": " + e.errno.Error() }

func (e *explained) Unwrap() []error {
	if e.sentinel == nil {
		return []error{e.errno}
	}
	return []error{e.sentinel, e.errno}
}
