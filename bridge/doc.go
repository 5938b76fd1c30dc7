// Package bridge carries messages between shmring rings and NATS, so that a
// ring's producer and a consumer on another host need no network code of
// their own: an [Outbound] drains a ring and publishes each message to NATS,
// an [Inbound] subscribes to NATS and sends each message into a ring, and
// [Run] runs either or both over one connection, as the ringbridge command
// does.
//
// # Subjects and headers
//
// A message of type t leaves a ring as a NATS message on the subject
// <prefix>.<t>, with the headers
//
//	Shmring-Ring         the origin ring's instance UUID (ring.Header.InstanceID)
//	Shmring-Seq          the message's sequence in that ring (ring.Peeked.Seq)
//	Shmring-Redelivered  "1" when the ring delivered it again (a consumer died holding it)
//
// and, with JetStream, Nats-Msg-Id = <ring uuid>-<seq>, which names the
// message for the server's deduplication. On the way in, the type is the
// Shmring-Type header if there is one, else the subject's last token,
// which must be a positive integer (else [InboundConfig.DefaultType], else
// the message is refused: counted, and with JetStream terminated).
//
// # Delivery
//
// With JetStream the chain is at-least-once end to end and, within the
// stream's duplicate window, exactly-once:
//
//   - Outbound holds ring messages in place (ring.Consumer.PeekBatch, then
//     TryPeekMore), up to [OutboundConfig.Batch] of them, publishes each
//     asynchronously as it holds it, and releases a message
//     (ring.Consumer.ReleaseFirst) only once JetStream has acknowledged it
//     and every one before it; a publish that fails is sent again with the
//     same Nats-Msg-Id. A bridge that dies holding messages leaves them in
//     the ring, which delivers them again, flagged, to the next
//     bridge; its messages are published again with the same Nats-Msg-Id
//     and the server drops those it already stored. JetStream deduplicates
//     only within the stream's duplicate window (2 minutes unless set
//     otherwise; see [OutboundConfig.Duplicates]): a message published again
//     later than that is stored twice, but it carries Shmring-Redelivered,
//     so the receiving ring flags it.
//   - Inbound pulls from a durable JetStream consumer only as many messages
//     as the ring has free slots (at least one, which it then waits to
//     send), so a full ring stops the pulling: nothing is dropped and
//     nothing is buffered beyond one batch. It acknowledges each message
//     only once the ring has committed it. A bridge killed
//     between the commit and the acknowledgement gets those messages again
//     from JetStream; a message JetStream delivers more than once
//     (NumDelivered > 1), or that carries Shmring-Redelivered, goes into the
//     ring with ring.Message.Redelivered set. So nothing is ever delivered
//     twice unflagged: a consumer of the ring that acts on a message at
//     most once checks the flag (and, to know whether it is really a
//     duplicate, the message's own identity). A server killed outright may
//     come back with its consumer's state older than its acknowledgements
//     and deliver messages again as if for the first time; Inbound also
//     flags every message whose stream sequence is not past the highest it
//     has committed. (What a server keeps across a crash of its machine is
//     JetStream's own matter: it syncs its files every two minutes unless
//     told to sync always.)
//   - Order: a ring's messages reach the stream, and the receiving ring, in
//     the order the ring delivered them, with two exceptions, both flagged:
//     when the server loses a message in flight (it restarts) while a
//     later one in flight with it gets through, the lost one is
//     published again after it; and a message delivered again after a
//     bridge died comes again after the messages it had already sent.
//     Inbound acknowledges each message on its own and lets at most one
//     batch await acknowledgement, so that a successor of a bridge that
//     died gets the dead one's batch (after the consumer's ack wait, 10s)
//     before anything newer.
//
// With core NATS delivery is at most once: a message is gone from the ring
// as soon as the bridge has copied it out, and NATS drops what no subscriber
// is there to take, or what a slow subscriber cannot keep up with. Inbound
// counts the messages it knows it missed: an outbound bridge numbers the
// messages of each subject it publishes (headers Shmring-Bridge and
// Shmring-Count), and a gap in those numbers is reported as lost.
//
// # Echo loops
//
// Every message Inbound sends into a ring carries a nonzero ring.Message.Origin,
// [OriginTag] of the ring it came from (or of the subject, for a message
// that no bridge published), and Outbound by default releases messages with
// a nonzero Origin without publishing them: a message that came from NATS
// does not go back to NATS, so two bridges running both directions between
// the same rings do not echo. [OutboundConfig.ForwardBridged] forwards them
// anyway, for chains of bridges with distinct subjects.
//
// # Connection
//
// The NATS connection reconnects for ever. While it is down, nats.go keeps
// what is published in a buffer of [Config.ReconnectBuffer] bytes; past that,
// publishing fails and Outbound waits and tries again, holding its messages, so
// the ring itself is the buffer.
package bridge
