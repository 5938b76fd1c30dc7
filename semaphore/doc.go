// Package semaphore binds System V semaphore sets (semget, semop,
// semtimedop, semctl) for Linux on amd64 and arm64.
//
// A set is an array of counters that live in the kernel, outlive the
// processes that use them, and are named by an [ipc.Key] or by an id. A
// [Set] is a handle on one: [Create] makes a set, [Open] finds one by key,
// [OpenID] by id, and [Set.Remove] removes it. Each semaphore holds a value
// in 0..[MaxValue]:
//
//   - [Set.Post] and [Set.Add] raise it, waking waiters;
//   - [Set.Wait] lowers it by 1, sleeping while it is 0, until a
//     context.Context is done; [Set.WaitTimeout] sleeps no longer than a
//     duration ([ErrTimeout]); [Set.TryWait] does not sleep
//     ([ErrWouldBlock]);
//   - [Set.Do] applies several operations ([Op]) to the set atomically,
//     each raising, lowering or waiting for zero, optionally without
//     sleeping ([NoWait]) or undone by the kernel when the process exits
//     ([Undo]);
//   - [Set.Value], [Set.SetValue], [Set.Values] and [Set.SetValues] read
//     and set values, [Set.WaitingForIncrease], [Set.WaitingForZero] and
//     [Set.LastPID] report on waiters and users, [Set.Stat], [Set.SetMode]
//     and [Set.SetOwner] on ownership and permissions, and [List] lists
//     every set.
//
// Typical use between two processes, which agree on a key (see
// [ipc.Ftok]):
//
//	// The first creates the set, and sleeps until the second posts.
//	s, err := semaphore.Create(key, 1, &semaphore.Options{Exclusive: true})
//	...
//	err = s.Wait(ctx, 0)
//	...
//	err = s.Remove()
//
//	// The second opens it and posts.
//	s, err := semaphore.Open(key)
//	...
//	err = s.Post(0)
//
// Signals never interrupt a call: the runtime's own signals land on
// sleeping threads all the time, so calls retry, with the time left. The
// operations and [Set.Values] allocate nothing; [ErrWouldBlock] and
// [ErrTimeout] are returned unwrapped. Failed system calls return an [*ipc.Error]; see the package's
// errors for how to test them with errors.Is. A set removed while in use
// makes every call on it, blocked or not, in every process, return an
// error matching [ipc.ErrRemoved].
//
// # Caveats
//
// As with any System V object, a set is not removed when its last user
// exits: remove it yourself, or it stays until reboot (ipcs -s lists it,
// ipcrm -s removes it). A set created by key is briefly visible, with
// values 0, before its creator sets them; a process that opens it must not
// rely on the values until the creator says they are ready.
package semaphore
