// Package ring is a message ring in a System V shared-memory segment, for
// processes on one host. A message is a type (an int64 > 0, like a message
// queue's mtype) and up to MaxMessage bytes; the ring holds a power-of-two
// number of them in fixed slots.
//
// While both sides are busy, sending and receiving make no system call and
// allocate nothing: a message costs one copy in and one copy out (none with
// [Producer.Reserve] and [Consumer.Peek]) and a few atomic operations. A
// side with nothing to do spins briefly and then sleeps on a SysV
// semaphore of its own; the other side posts it only when the sleeper has
// said that it sleeps.
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
//	n, typ, err := c.Receive(ctx, buf)
//
// Receive returns the length first, then the type, as the msgq package and
// io.Reader do. Blocking calls take a context.Context and return ctx.Err()
// when it is done; Try variants never block and return [ErrFull] or
// [ErrEmpty]. Batches ([Producer.SendBatch], [Consumer.ReceiveBatch]) move
// many messages with at most one wake-up.
//
// # Handing messages on
//
// A consumer that passes messages to another system (a network link, a
// journal) and may let each go only once that system has acknowledged it
// holds them in place with [Consumer.PeekBatch], many at a time, and lets
// them all go with one [Consumer.Release]; if it dies first, every one is
// delivered again, flagged as Redelivered. To keep messages in flight
// continuously it slides a window instead: [Consumer.TryPeekMore] holds
// more behind those held, and [Consumer.ReleaseFirst] lets the oldest go
// as they are acknowledged, the rest still held. Each message carries what such
// a consumer needs: Seq, its position in the ring, which with the ring's
// [Header] InstanceID names it for deduplication downstream; Origin, a
// tag the sender may set in a batch send, which a bridge uses to tell the
// messages it brought in from those it must send out; and the sender may
// set Redelivered itself, for a message it may have sent before.
//
// # Messages larger than a slot
//
// A ring created with Options.SlotSize below MaxMessage has slots of
// SlotSize bytes, and a message larger than a slot spans as many
// consecutive slots as it needs (MaxMessage may be up to half the ring's
// slots × SlotSize): so a ring can take rare large messages without
// giving every slot their size. A spanning message is claimed whole or
// not at all (a send waits, or TrySend gives ErrFull, until all its slots
// are free), published at once, and received whole, in every mode,
// fan-out included, and every receive call: Receive and ReceiveBatch copy
// it into the caller's buffer, Peek shows it in place as [Peeked].Data, followed by
// [Peeked].Wrapped where it wraps around the end of the ring's memory, both
// valid until Release. [Producer.ReserveSpan] gives the room of a
// message of any size in place, in one part or two at the wrap, where
// Reserve gives one slot's; a PeekBatch holds a spanning message alone. A
// producer killed in the middle of one leaves a hole that
// consumers skip whole, a consumer killed while reading one leaves it
// whole for the next, and no call ever delivers part of a message.
// Messages that fit one slot take the same path as on any other ring.
// [Ring.Slots] counts slots, so such a ring holds fewer messages when they
// are large; Seq grows by the slots a message took.
//
// # Receiving by type
//
// A ring created with Options.Selective (in mode SPMC or MPMC) gives its
// consumers msgrcv's selectors: [Consumer.ReceiveSelect] and the Try,
// batch and Peek forms take an [ipc.Selector], the type msgq.Selector is
// an alias of, so a receive loop moves between a kernel queue and a ring
// unchanged: ipc.AnyType() the oldest message, ipc.OfType(t) the oldest
// of type t, ipc.UpToType(t) the oldest of the lowest type at most t,
// ipc.ExceptType(t) the oldest of another type. Consumers with different
// selectors share the ring, each taking only what it selects; a message
// nobody selects stays, as in a message queue, and holds its slot: once
// the producers come round to that slot they wait (ErrFull) until someone
// takes it, even if other slots are free, so a ring can fill with types
// nobody receives ([Stats].Depth shows it). A sleeping consumer is woken
// only by messages its selector may match. A selective receive looks
// through the ring from the oldest message, so its cost grows with the
// number of messages of other types ahead of the one it takes.
//
// Request and reply, the classic pattern of message queues, works the same
// way: clients send requests of one type (say 1), each carrying its reply
// type, and wait with ReceiveSelect(ipc.OfType(mine)); the server receives
// ipc.OfType(1) and answers each request with a message of the type it
// carries. A client's own pid, int64(os.Getpid()), is a reply type no
// other live client can have; keep request types below the lowest pid
// (pids start above 1), or, if pids could collide with them, offset reply
// types by a constant. The examples of ReceiveSelect show a chat between
// two clients over one ring and a server with several clients.
//
// One rule comes with sending and receiving on one ring: since a message
// holds its slot until it is taken, a process must not wait in Send while
// the ring may hold a message that only it will take (a server's next
// request may sit in the very slot its reply needs). Such a process sends
// with TrySend and, on ErrFull, keeps the message and goes on receiving
// (cmd/ringbench's server does so, keeping at most one reply per client),
// or uses a ring for each direction.
//
// # Fan-out
//
// A ring created with Options.Fanout (mode SPMC or MPMC) gives every
// subscriber every message: [Ring.NewSubscriber] (or NewConsumer) returns
// a Consumer with its own cursor, which receives what was published after
// it joined, or from the oldest message still in the ring, with every
// receive call including Peek and PeekBatch. Options.Policy chooses what a
// slow subscriber costs: under PolicyBlock producers wait for the slowest
// live one (a dead one leaves at once; one that alone holds the ring full
// for Options.EvictAfter is evicted and gets [ErrEvicted]); under
// Overwrite (one producer) they never wait, and a lapped subscriber gets a
// [LapError] with the exact number it lost and goes on at the oldest
// message left. On a fan-out ring whose messages span slots (SlotSize),
// every slot of a spanning message is checked after the copy, so a
// message overwritten while it was read is never delivered (held in
// place, its Release returns [ErrOverwritten]), and a subscriber put in
// the middle of one (by a lap, or joining at the oldest message) passes
// its rest; there the numbers lost ([LapError].Lost, [Consumer.Lost])
// count slots, not messages: a lost message of k slots counts k. A named subscription is durable: taken again by name, it
// resumes where it was. [Ring.Subscribers] reports each subscription. The
// race detector cannot check Overwrite's sequence-locked reads of a heap
// ring (they race with the overwrite by design, and are then discarded):
// run it over a segment.
//
// # Progress
//
// The ring is lock-free in the sense that matters between processes: no
// lock is held across a call, a process that dies at any instruction
// blocks nobody (see Failure), and producers and consumers of one side
// never wait for each other to finish a call. It is not lock-free in the
// strict sense for a stopped process: each slot is filled and emptied in
// order, so a producer that is stopped (SIGSTOP, a debugger) after claiming
// a slot and before committing it holds up every consumer behind that slot
// until it resumes, and a consumer stopped while holding a message holds
// up the producer that needs that slot next, as in every queue built on
// per-slot sequence numbers. A stopped process is never taken for a dead
// one: only the kernel, at its exit, says that it has died.
//
// # Lifecycle
//
// Like every System V object, a ring outlives the processes that use it:
// its messages survive a consumer's restart. [Producer.Close] lets the
// consumers drain what is left and then see io.EOF (see [Consumer] for what
// io.EOF means with many producers). [Ring.Close] detaches; only
// [Ring.Remove] (or [RemoveKey], or ipcrm) destroys the ring. The segment
// and the ring's semaphore set have the same key, so ipcs shows them
// together; RemoveKey removes whichever of the two is left. Note that
// systemd's logind removes a user's System V objects when the user's last
// session ends (RemoveIPC=yes, the default for non-system users): run
// long-lived rings under a system user, or set RemoveIPC=no in
// /etc/systemd/logind.conf.
//
// Close may be called from any goroutine while calls are in flight: they
// return os.ErrClosed (or complete, if they were past waiting), and the
// memory is unmapped only after the last of them has left.
//
// # Failure
//
// Every role line has a lock, a semaphore that its holder keeps raised
// with SEM_UNDO, which the kernel drops when the holder dies, however it
// dies. So a peer's death is known without a daemon, a heartbeat or a
// pid-reuse race, and a taker of a dead peer's role finds whatever the
// dead one had in hand still on its line (the steps, and what a kill at
// each leaves, are in recovery.go). A holder also arranges, with SEM_UNDO,
// that its death posts the wake-up semaphores of the peers that must react,
// so a sleeper learns of a death at once and makes no periodic system call
// while it waits.
//
//   - A consumer whose producers all died receives every committed message,
//     then [ErrPeerDead]; a producer blocked on a full ring whose consumers all
//     died gets ErrPeerDead too. A clean Close is io.EOF, not an error. A
//     peer that is taking a role at that moment is live, not dead.
//   - A producer killed between claiming a slot and committing it (MPSC,
//     MPMC) leaves a hole that a consumer finds and skips ([Stats].Recovered);
//     nothing else is lost or duplicated. A single producer killed after
//     publishing and before recording its tail is found out by its
//     successor, which goes on after the last published message.
//   - A consumer killed while looking at a message in place (between
//     [Consumer.Peek] and its Release) does not stall the ring: the consumer
//     that takes over its role, or in the multi-consumer modes a live
//     consumer that finds it, delivers the message again with
//     Peeked.Redelivered (or, in a batch, Message.Redelivered) set, counted
//     in [Stats].Redelivered. A consumer
//     killed in the middle of a copy never returned that message, which is
//     delivered to the next consumer as a first delivery. So delivery is
//     exactly-once but for messages looked at in place by a consumer that
//     died, which are at-least-once, and flagged.
//   - A process that starts again takes over the dead one's role and goes on
//     where it stopped.
//   - [Ring.Remove] wakes every sleeper in every process with [ErrRemoved].
//
// # Hostile peers
//
// Every word read from the segment is checked before it is used: a size,
// cursor, claim or sequence number that no correct process could have
// written gives [ErrCorrupt], and every loop over shared state is bounded
// by the ring's size or watches its context, so a process that scribbles on
// the segment cannot make a call hang, fault or read outside it. Create
// never adopts a key's objects that another user made or owns ([ErrForeign]),
// and a ring proves that its semaphore set is its own, by a fingerprint of
// its instance id and segment id kept in the set, before it uses or
// removes it.
//
// # Memory
//
// The ring works over any line-aligned []byte: the same code runs over a
// heap buffer in this package's tests, where the race detector can see it
// (it cannot see System V shared memory). The shared layout and the
// ordering of every atomic access are documented in layout.go and ring.go.
package ring
