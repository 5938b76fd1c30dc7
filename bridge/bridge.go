package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Run connects to NATS and runs the directions cfg configures until ctx is
// done or one of them fails, then shuts down in order: each direction
// finishes what it holds (within cfg.Grace), the rings are closed (a batch
// still held goes back to the ring, to be delivered again flagged), and
// what was published or acknowledged is flushed to the server before the
// connection closes. m receives the counters (a new Metrics if nil); logf,
// if not nil, hears of connections and errors.
func Run(ctx context.Context, cfg Config, m *Metrics, logf func(format string, args ...any)) error {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	if m == nil {
		m = &Metrics{}
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	nc, err := Connect(&cfg, m, logf)
	if err != nil {
		return err
	}
	defer nc.Close()

	if cfg.Metrics != "" {
		ln, err := net.Listen("tcp", cfg.Metrics)
		if err != nil {
			return fmt.Errorf("bridge: metrics: %w", err)
		}
		srv := &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		logf("metrics on http://%s/metrics, health on /healthz", ln.Addr())
	}

	wait, _ := cfg.waiting() // checked by Validate
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var out *Outbound
	var in *Inbound
	if cfg.Out != nil {
		if out, err = NewOutbound(ctx, nc, *cfg.Out, wait, m, logf); err != nil {
			return err
		}
	}
	if cfg.In != nil {
		if in, err = NewInbound(ctx, nc, *cfg.In, wait, m, logf); err != nil {
			if out != nil {
				out.Close()
			}
			return err
		}
	}
	logf("running: out=%v in=%v", out != nil, in != nil)

	grace := time.Duration(cfg.Grace)
	var wg sync.WaitGroup
	var outErr, inErr error
	if out != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if outErr = out.Run(ctx, grace); outErr != nil {
				cancel(outErr)
			}
		}()
	}
	if in != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if inErr = in.Run(ctx, grace); inErr != nil {
				cancel(inErr)
			}
		}()
	}
	wg.Wait()
	var closeErr error
	if out != nil {
		closeErr = errors.Join(closeErr, out.Close())
	}
	if in != nil {
		closeErr = errors.Join(closeErr, in.Close())
	}
	// Acknowledgements and publishes are buffered: see them out.
	if nc.IsConnected() {
		nc.FlushTimeout(grace)
	}
	return errors.Join(outErr, inErr, closeErr)
}
