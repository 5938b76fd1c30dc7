// Package msgq binds System V message queues: the kernel-kept queues of
// typed messages that processes on one host reach by key or id (msgget,
// msgsnd, msgrcv, msgctl). It is complete on its own, and it is the
// baseline that the module's shared-memory ring is measured against.
//
// [Create] makes a queue (or [Open] and [OpenID] find one), [Queue.Send] and
// [Queue.Receive] move messages, [Queue.Stat] reports on the queue,
// [Queue.SetMaxBytes], [Queue.SetMode] and [Queue.SetOwner] change it, and
// [Queue.Remove] destroys it. A queue outlives the processes that use it,
// so every program (and every test) that creates one must remove it.
// [SystemLimits], [SystemUsage] and [List] describe all queues.
//
// A message has a type, a positive integer that Receive can select by
// ([Any], [Type], [UpTo], [Except]), and a text of up to msgmax bytes. For
// the kernel, type and text are one buffer (struct msgbuf). [Message] is that
// buffer: a program that keeps one and uses [Queue.SendMessage] and
// [Queue.ReceiveMessage] sends and receives with no allocation and no copy
// beyond the kernel's. Send and Receive take and fill plain byte slices
// instead, through a buffer on the stack for short texts and pooled buffers
// for longer ones: one more copy, and no allocation once the pool is warm.
//
// Blocking calls take a context. When ctx.Done() is nil they make one plain
// blocking system call (retried after EINTR); otherwise a cancelled context
// interrupts the blocked call with a signal to its thread and the call
// returns ctx.Err() (see the comment on the interrupter in msgq.go). Errors
// from the kernel are [*ipc.Error] values that match fs.ErrExist,
// fs.ErrNotExist, fs.ErrPermission, [ipc.ErrRemoved] and [ipc.ErrLimit]
// under errors.Is; the expected outcomes of no-wait calls are the sentinels
// [ErrFull] and [ErrNoMessage], returned without allocating.
//
// # From C
//
//	msgget(key, IPC_CREAT|0600)            Create(key, nil)
//	msgget(key, IPC_CREAT|IPC_EXCL|0640)   Create(key, &Options{Mode: 0o640, Exclusive: true})
//	msgget(IPC_PRIVATE, 0600)              Create(ipc.Private, nil)
//	msgget(key, 0600)                      Open(key)
//	msgsnd(id, &buf, n, 0)                 q.Send(ctx, typ, text, 0)
//	msgsnd(id, &buf, n, IPC_NOWAIT)        q.Send(ctx, typ, text, NoWait)       // EAGAIN: ErrFull
//	msgrcv(id, &buf, n, 0, 0)              q.Receive(ctx, buf, Any(), 0)
//	msgrcv(id, &buf, n, t, 0)              q.Receive(ctx, buf, Type(t), 0)
//	msgrcv(id, &buf, n, -t, 0)             q.Receive(ctx, buf, UpTo(t), 0)
//	msgrcv(id, &buf, n, t, MSG_EXCEPT)     q.Receive(ctx, buf, Except(t), 0)
//	msgrcv(..., IPC_NOWAIT)                q.Receive(ctx, buf, sel, NoWait)     // ENOMSG: ErrNoMessage
//	msgrcv(..., MSG_NOERROR)               q.Receive(ctx, buf, sel, Truncate)   // else E2BIG: ErrTooBig
//	msgctl(id, IPC_STAT, &ds)              q.Stat()
//	msgctl(id, IPC_SET, &ds)               q.SetMaxBytes(n), q.SetMode(m), q.SetOwner(uid, gid)
//	msgctl(id, IPC_RMID, NULL)             q.Remove()
//	msgctl(0, IPC_INFO, &info)             SystemLimits()
//	msgctl(0, MSG_INFO, &info)             SystemUsage()
//
// MSG_COPY (peeking at a message by position) is not bound.
//
// # Caveats
//
// Cancellation sends SIGURG to the blocked thread. The Go runtime handles
// that signal (it uses it for preemption) unless the program has called
// signal.Ignore(syscall.SIGURG), which turns off preemption signals and
// leaves a cancelled call blocked until a message, room or removal comes.
//
// The package supports Linux on amd64 and arm64, where the kernel's message
// type is a 64-bit long.
package msgq
