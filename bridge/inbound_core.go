package bridge

import (
	"context"
	"fmt"
	"runtime"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/shmring/shmring/ring"
)

// runCore receives from a core NATS subscription into a buffer of
// cfg.Pending messages (beyond it NATS drops, counted) and sends each batch
// into the ring, waiting for room. When ctx is done it unsubscribes and
// sends what the buffer still holds, within the grace.
func (in *Inbound) runCore(ctx, hctx context.Context) error {
	ch := make(chan *nats.Msg, in.cfg.Pending)
	sub, err := in.nc.ChanSubscribe(in.cfg.Subject, ch)
	if err != nil {
		return fmt.Errorf("bridge: subscribe %s: %w", in.cfg.Subject, err)
	}
	batch := make([]ring.Message, 0, in.cfg.Batch)
	for {
		var first *nats.Msg
		select {
		case first = <-ch:
		case <-ctx.Done():
		}
		if first == nil {
			break
		}
		batch = in.collect(batch[:0], first, ch)
		sent, err := in.send(hctx, batch, nil)
		in.count(batch[:sent])
		if d, err := sub.Dropped(); err == nil {
			in.m.InDropped.Store(uint64(d))
		}
		if err != nil {
			sub.Unsubscribe()
			return in.stopped(err)
		}
	}
	sub.Unsubscribe()
	for len(ch) > 0 && hctx.Err() == nil {
		batch = in.collect(batch[:0], <-ch, ch)
		sent, err := in.send(hctx, batch, nil)
		in.count(batch[:sent])
		if err != nil {
			return in.stopped(err)
		}
	}
	return nil
}

// collect makes a batch of first and what else ch holds now.
func (in *Inbound) collect(batch []ring.Message, first *nats.Msg, ch chan *nats.Msg) []ring.Message {
	for m := first; ; {
		in.noteCount(m)
		if typ := messageType(m, in.cfg.DefaultType); typ == 0 || len(m.Data) > in.ring.MaxMessage() {
			in.m.InRefused.Add(1)
		} else {
			batch = append(batch, ring.Message{
				Type:        typ,
				Data:        m.Data,
				Origin:      in.origins.of(m.Subject, m.Header),
				Redelivered: m.Header.Get(HeaderRedelivered) != "",
			})
		}
		if len(batch) == cap(batch) {
			return batch
		}
		if len(ch) == 0 {
			// Let the client's reader go on a moment: one wake-up of the
			// ring's consumer for many messages costs far less than one
			// each, and a yield costs far less than a wake-up.
			for yields := 0; len(ch) == 0 && yields < collectYields; yields++ {
				runtime.Gosched()
			}
			if len(ch) == 0 {
				return batch
			}
		}
		m = <-ch
	}
}

// collectYields is how often collect yields to the NATS client's reader
// for more messages before it sends a batch.
const collectYields = 4

// noteCount follows an outbound bridge's numbering of each subject and
// counts the numbers that never came as lost.
func (in *Inbound) noteCount(m *nats.Msg) {
	session, count := m.Header.Get(HeaderBridge), m.Header.Get(HeaderCount)
	if session == "" || count == "" {
		return
	}
	n, err := strconv.ParseUint(count, 10, 64)
	if err != nil {
		return
	}
	k := gapKey{session, m.Subject}
	last, seen := in.gaps[k]
	if seen && n > last+1 {
		in.m.InLost.Add(n - last - 1)
	}
	if n > last {
		if len(in.gaps) >= 1<<16 {
			clear(in.gaps)
		}
		in.gaps[k] = n
	}
}
