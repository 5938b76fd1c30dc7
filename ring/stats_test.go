package ring

import (
	"testing"
)

func TestStats(t *testing.T) {
	forModes(t, small, func(t *testing.T, r *Ring) {
		if st := r.Stats(); st != (Stats{Capacity: 8}) {
			t.Fatalf("new ring: %+v", st)
		}
		p, c := pair(t, r)
		for i := 0; i < 5; i++ {
			if err := p.TrySend(1, msg(i)); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 2; i++ {
			expect(t, c, 1, msg(i))
		}
		st := r.Stats()
		if st.Sent != 5 || st.Received != 2 || st.Depth != 3 || st.Producers != 1 || st.Consumers != 1 || st.Capacity != 8 {
			t.Fatalf("after 5 sent and 2 received: %+v", st)
		}
		if st.SemOps() != st.ConsumerSleeps+st.ProducerSleeps+st.Wakeups || st.Recovered != 0 || st.Redelivered != 0 {
			t.Fatalf("counters: %+v", st)
		}
		if _, err := c.TryPeek(); err != nil {
			t.Fatal(err)
		}
		if err := c.Release(); err != nil {
			t.Fatal(err)
		}
		p.Close()
		c.Close()
		if st := r.Stats(); st.Producers != 0 || st.Consumers != 0 || st.Sent != 5 || st.Received != 3 {
			t.Fatalf("after both closed: %+v", st)
		}
	})
}
