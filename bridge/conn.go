package bridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Connect dials NATS for a bridge: it retries a server that is not up yet,
// reconnects for ever, keeps at most c.ReconnectBuffer bytes of what is
// published while disconnected, and counts connections lost and regained
// in m. logf, if not nil, hears of each.
func Connect(c *Config, m *Metrics, logf func(format string, args ...any)) (*nats.Conn, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	nc, err := nats.Connect(c.URL,
		nats.Name(c.Name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.ReconnectBufSize(c.ReconnectBuffer),
		nats.PingInterval(5*time.Second),
		nats.MaxPingsOutstanding(3),
		nats.ConnectHandler(func(*nats.Conn) {
			m.Connected.Store(true)
			logf("connected to %s", c.URL)
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			m.Connected.Store(false)
			m.Disconnects.Add(1)
			logf("disconnected from NATS: %v", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			m.Connected.Store(true)
			m.Reconnects.Add(1)
			logf("reconnected to %s", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrSlowConsumer) {
				return // counted from the subscription's own drop count
			}
			logf("NATS: %v", err)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("bridge: connect %s: %w", c.URL, err)
	}
	if nc.IsConnected() {
		m.Connected.Store(true)
	}
	return nc, nil
}

// ensureStream makes the stream name with the given subjects and duplicate
// window unless it exists; an existing stream is left as it is. It retries
// until ctx is done, since the server may not be up yet.
func ensureStream(ctx context.Context, js jetstream.JetStream, name string, subjects []string, dup time.Duration) error {
	for {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := js.Stream(sctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			_, err = js.CreateStream(sctx, jetstream.StreamConfig{
				Name:       name,
				Subjects:   subjects,
				Storage:    jetstream.FileStorage,
				Duplicates: dup,
			})
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				err = nil
			}
		}
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("bridge: stream %s: %w", name, err)
		}
		if !sleepCtx(ctx, 250*time.Millisecond) {
			return fmt.Errorf("bridge: stream %s: %w", name, err)
		}
	}
}

// sleepCtx waits d or until ctx is done, and reports whether ctx is live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// graceContext is a context that ends grace after parent does: what a
// bridge holds when asked to stop gets that long to be finished.
func graceContext(parent context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	stop := context.AfterFunc(parent, func() {
		t := time.AfterFunc(grace, cancel)
		context.AfterFunc(ctx, func() { t.Stop() })
	})
	return ctx, func() { stop(); cancel() }
}
