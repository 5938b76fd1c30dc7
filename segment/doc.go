// Package segment binds System V shared-memory segments: it creates and
// opens them by key or id, attaches them read-write or read-only, detaches
// them, reads and changes their status, removes them and lists them.
//
// It is a thin layer over the kernel's four calls, made through
// golang.org/x/sys/unix:
//
//	C                                        Go
//	shmget(key, size, IPC_CREAT|mode)        Create(key, size, &Options{Mode: mode})
//	shmget(key, size, IPC_CREAT|IPC_EXCL|m)  Create(key, size, &Options{Exclusive: true})
//	shmget(key, size, ...|SHM_HUGETLB)       Create(key, size, &Options{HugePages: true})
//	shmget(key, 0, 0)                        Open(key)
//	shmctl(id, IPC_STAT, &ds) (to check id)  OpenID(id)
//	shmat(id, NULL, 0)                       (*Segment).Attach(false)
//	shmat(id, NULL, SHM_RDONLY)              (*Segment).Attach(true)
//	the address shmat returns                (*Mapping).Bytes()
//	shmdt(addr)                              (*Mapping).Detach()
//	shmctl(id, IPC_STAT, &ds)                (*Segment).Stat()
//	shmctl(id, IPC_SET, &ds) (mode)          (*Segment).SetMode(mode)
//	shmctl(id, IPC_SET, &ds) (uid, gid)      (*Segment).SetOwner(uid, gid)
//	shmctl(id, IPC_RMID, NULL)               (*Segment).Remove()
//	ipcs -m                                  List()
//
// A [Segment] is only a handle: a key and the kernel's id. The memory is
// reached through a [Mapping], which [Segment.Attach] returns and whose
// [Mapping.Bytes] is the attached memory as a []byte.
//
// # Lifetime
//
// A segment outlives the processes that use it: it exists until it is
// removed ([Segment.Remove], ipcrm(1)) and, after that, until its last
// attach is detached. A program that creates segments must remove them,
// or they stay behind until the machine restarts; ipcs -m lists them.
//
// # Errors
//
// Failed system calls return an [*ipc.Error] that names the call, the key
// and the id and wraps the errno, so errors.Is answers fs.ErrExist,
// fs.ErrNotExist, fs.ErrPermission, [ipc.ErrRemoved] and [ipc.ErrLimit] as
// well as the errno itself. A call by id on a segment that no longer exists
// matches [ipc.ErrRemoved]. Conditions the package finds itself have
// sentinels of their own: [ErrSize], [ErrHugePages] and [ErrPrivate].
//
// # Caveats
//
// The slice returned by [Mapping.Bytes] is valid only until
// [Mapping.Detach]. Using it, or any slice taken from it, after Detach
// faults: the memory is no longer mapped. Detach does not wait for other
// goroutines that still use the slice; ordering their last access before
// Detach is the caller's job.
//
// A Mapping that becomes unreachable is not detached for you: the memory
// stays attached until Detach or the end of the process. This is on
// purpose, since a caller may hold the slice without holding the Mapping.
//
// The Go race detector does not see accesses to shared memory, and other
// processes do not take part in the Go memory model: concurrent access to
// the bytes must be ordered by the caller (atomics, semaphores).
package segment
