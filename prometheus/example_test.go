package shmringprom_test

import (
	"fmt"
	"log"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shmring/shmring/ipc"
	shmringprom "github.com/shmring/shmring/prometheus"
	"github.com/shmring/shmring/ring"
)

func ExampleNewCollector() {
	r, err := ring.Create(ipc.Private, &ring.Options{Slots: 8, MaxMessage: 64})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Remove()

	col := shmringprom.NewCollector()
	col.Add("orders", r)
	reg := prometheus.NewRegistry()
	reg.MustRegister(col)
	// A server would serve the registry:
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	p, err := r.NewProducer()
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range []string{"one", "two", "three"} {
		if err := p.TrySend(1, []byte(m)); err != nil {
			log.Fatal(err)
		}
	}

	fams, err := reg.Gather()
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range fams {
		m := f.GetMetric()[0]
		switch f.GetName() {
		case "shmring_messages_sent_total", "shmring_bytes_sent_total":
			fmt.Println(f.GetName(), m.GetCounter().GetValue())
		case "shmring_depth", "shmring_capacity":
			fmt.Println(f.GetName(), m.GetGauge().GetValue())
		}
	}
	// Output:
	// shmring_bytes_sent_total 11
	// shmring_capacity 8
	// shmring_depth 3
	// shmring_messages_sent_total 3
}
