// Package ring is a lock-free message ring in a System V shared-memory
// segment, for processes on one host. A message is a type (an int64 > 0,
// like a message queue's mtype) and up to MaxMessage bytes; the ring holds a
// power-of-two number of them in fixed slots.
//
// While both sides are busy, sending and receiving make no system call and
// allocate nothing: a message costs one copy in and one copy out (none with
// [Producer.Reserve] and [Consumer.Peek]) and a few atomic operations. A side
// with nothing to do spins briefly and then sleeps on a SysV semaphore; the
// other side posts it only when its waiter count says someone sleeps.
//
// # Using it
//
// One process creates the ring under a key ([Create]); others open it by key
// ([Open]) or by segment id ([OpenID]) and learn its geometry from its
// header. Each process then takes a role: [Ring.NewProducer] or
// [Ring.NewConsumer]. The [Mode] (SPSC, MPSC, SPMC, MPMC) says how many of
// each may be held at once, and a process that asks for a role beyond that
// gets [ErrRoleTaken] instead of corrupting the ring.
//
//	r, err := ring.Create(key, &ring.Options{Mode: ring.SPSC, MaxMessage: 256, Slots: 1024})
//	p, err := r.NewProducer()
//	err = p.Send(ctx, 1, []byte("hello"))
//
//	r, err := ring.Open(key, nil)
//	c, err := r.NewConsumer()
//	typ, n, err := c.Receive(ctx, buf)
//
// Blocking calls take a context.Context and return ctx.Err() when it is
// done; Try variants never block and return [ErrFull] or [ErrEmpty]. Batches
// ([Producer.SendBatch], [Consumer.ReceiveBatch]) move many messages with at
// most one wake-up.
//
// # Lifecycle
//
// Like every System V object, a ring outlives the processes that use it:
// its messages survive a consumer's restart. [Producer.Close] lets the
// consumers drain what is left and then see io.EOF. [Ring.Close] detaches;
// only [Ring.Remove] (or [RemoveKey], or ipcrm) destroys the ring. Note that
// systemd's logind removes a user's System V objects when the user's last
// session ends (RemoveIPC=yes, the default for non-system users): run
// long-lived rings under a system user, or set RemoveIPC=no in
// /etc/systemd/logind.conf.
//
// # Failure
//
// Every role holder raises a semaphore of its own with SEM_UNDO, which the
// kernel lowers when the holder dies, however it dies. So a peer's death is
// known without a daemon, a heartbeat or a pid-reuse race:
//
//   - A consumer whose producers all died receives every committed message,
//     then [ErrPeerDead]; a producer blocked on a full ring whose consumers all
//     died gets ErrPeerDead too. Sleepers look every 25 ms, so a death is seen
//     well within a second. A clean Close is io.EOF, not an error.
//   - A producer killed between claiming a slot and committing it (MPSC,
//     MPMC) leaves a hole that a consumer finds and skips ([Stats].Recovered);
//     nothing else is lost or duplicated.
//   - A consumer killed while holding a message (between [Consumer.Peek] and
//     its Release, or in the middle of a copy) does not stall the ring: the
//     consumer that takes over its role, or in the multi-consumer modes any
//     live consumer that finds it, delivers the message again. It is counted
//     in [Stats].Redelivered, and a Peek returns it with Peeked.Redelivered
//     set, whenever the dead consumer had named it on its role line: always
//     in the multi-consumer modes, for an in-place read in the single ones (a
//     single consumer's copy is not announced, to keep its busy path free of
//     extra stores). Delivery is at-least-once across consumer deaths and
//     exactly-once otherwise.
//   - A process that starts again takes over the dead one's role and goes on
//     where it stopped.
//   - [Ring.Remove] wakes every sleeper in every process with [ErrRemoved].
//
// # Memory
//
// The ring works over any line-aligned []byte: the same code runs over a
// heap buffer in this package's tests, where the race detector can see it
// (it cannot see System V shared memory). The shared layout and the
// ordering of every atomic access are documented in layout.go and ring.go.
package ring
