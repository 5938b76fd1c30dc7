package bridge_test

import (
	"context"
	"log"
	"os/signal"
	"syscall"

	"github.com/shmring/shmring/bridge"
)

// Both directions over one connection: ring 0x5eed to JetStream under
// orders.<type>, and orders from another host into ring 0x5eee.
func ExampleRun() {
	cfg := bridge.Config{
		URL:     "nats://hub:4222",
		Metrics: "127.0.0.1:9120",
		Out:     &bridge.OutboundConfig{Ring: "0x5eed", Prefix: "orders.host-a", JetStream: true},
		In:      &bridge.InboundConfig{Ring: "0x5eee", Subject: "orders.host-b.>", JetStream: true, Durable: "host-a"},
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := bridge.Run(ctx, cfg, nil, log.Printf); err != nil {
		log.Fatal(err)
	}
}
