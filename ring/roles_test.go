package ring

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/shmring/shmring/internal/ipctest"
)

func TestRoles(t *testing.T) {
	for _, tc := range []struct {
		mode                 Mode
		producers, consumers int // role lines
		opts                 Options
	}{
		{SPSC, 1, 1, Options{}},
		{MPSC, 3, 1, Options{MaxProducers: 3}},
		{SPMC, 1, 2, Options{MaxConsumers: 2}},
		{MPMC, 2, 3, Options{MaxProducers: 2, MaxConsumers: 3}},
	} {
		t.Run("mode="+tc.mode.String(), func(t *testing.T) {
			opts := tc.opts
			opts.Mode, opts.Slots, opts.MaxMessage = tc.mode, 4, 16
			forMemories(t, &opts, func(t *testing.T, r *Ring) {
				// A second view of the same ring, as another attachment in
				// this process would have: roles belong to the ring.
				view := reopen(t, r, Waiting{})
				var ps []*Producer
				var cs []*Consumer
				for i := 0; i < tc.producers; i++ {
					from := r
					if i%2 == 1 {
						from = view
					}
					p, err := from.NewProducer()
					if err != nil {
						t.Fatalf("producer %d of %d: %v", i+1, tc.producers, err)
					}
					ps = append(ps, p)
				}
				for i := 0; i < tc.consumers; i++ {
					c, err := view.NewConsumer()
					if err != nil {
						t.Fatalf("consumer %d of %d: %v", i+1, tc.consumers, err)
					}
					cs = append(cs, c)
				}
				for _, v := range []*Ring{r, view} {
					if _, err := v.NewProducer(); !errors.Is(err, ErrRoleTaken) {
						t.Fatalf("producer %d of %d: %v, want ErrRoleTaken", tc.producers+1, tc.producers, err)
					}
					if _, err := v.NewConsumer(); !errors.Is(err, ErrRoleTaken) {
						t.Fatalf("consumer %d of %d: %v, want ErrRoleTaken", tc.consumers+1, tc.consumers, err)
					}
				}
				if st := r.Stats(); st.Producers != tc.producers || st.Consumers != tc.consumers {
					t.Fatalf("stats with every role held: %+v", st)
				}
				// A closed role can be taken again, from either view.
				if err := ps[0].Close(); err != nil {
					t.Fatal(err)
				}
				if err := ps[0].Close(); err != nil {
					t.Fatalf("second Close: %v", err)
				}
				if err := cs[len(cs)-1].Close(); err != nil {
					t.Fatal(err)
				}
				if st := r.Stats(); st.Producers != tc.producers-1 || st.Consumers != tc.consumers-1 {
					t.Fatalf("stats after a close on each side: %+v", st)
				}
				p, err := view.NewProducer()
				if err != nil {
					t.Fatalf("producer role after a close: %v", err)
				}
				c, err := r.NewConsumer()
				if err != nil {
					t.Fatalf("consumer role after a close: %v", err)
				}
				if err := p.TrySend(3, []byte("new holders")); err != nil {
					t.Fatal(err)
				}
				expect(t, c, 3, []byte("new holders"))
				if _, err := r.NewProducer(); !errors.Is(err, ErrRoleTaken) {
					t.Fatalf("producer beyond the roles again: %v", err)
				}
			})
		})
	}
}

// Exit statuses of the try-role helpers.
const (
	tryRoleGot   = 0
	tryRoleTaken = 3
)

func init() {
	helpers["try-producer"] = func() int { return helperTryRole(producerSide) }
	helpers["try-consumer"] = func() int { return helperTryRole(consumerSide) }
}

func helperTryRole(s side) int {
	r, err := OpenID(ipctest.GetenvInt("RING_SEG"), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "try-role: open:", err)
		return 1
	}
	defer r.Close()
	if s == producerSide {
		p, err := r.NewProducer()
		if errors.Is(err, ErrRoleTaken) {
			return tryRoleTaken
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "try-role: producer:", err)
			return 1
		}
		if err := p.Send(context.Background(), 42, []byte("from the child")); err != nil {
			fmt.Fprintln(os.Stderr, "try-role: send:", err)
			return 1
		}
		if err := p.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "try-role: close:", err)
			return 1
		}
		return tryRoleGot
	}
	c, err := r.NewConsumer()
	if errors.Is(err, ErrRoleTaken) {
		return tryRoleTaken
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "try-role: consumer:", err)
		return 1
	}
	buf := make([]byte, r.MaxMessage())
	if n, typ, err := c.Receive(context.Background(), buf); err != nil || typ != 43 || string(buf[:n]) != "from the parent" {
		fmt.Fprintf(os.Stderr, "try-role: received %d %q %v\n", typ, buf[:n], err)
		return 1
	}
	if err := c.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "try-role: close:", err)
		return 1
	}
	return tryRoleGot
}

func exitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.ExitCode()
	}
	t.Fatal(err)
	return -1
}

func TestRolesAcrossProcesses(t *testing.T) {
	for _, mode := range []Mode{SPSC, MPSC, SPMC} {
		t.Run("mode="+mode.String(), func(t *testing.T) {
			r := testRing(t, shm, &Options{Mode: mode, Slots: 4, MaxMessage: 32, MaxProducers: 1 + boolInt(mode.multiProducer()),
				MaxConsumers: 1 + boolInt(mode.multiConsumer())})
			env := "RING_SEG=" + strconv.Itoa(r.SegmentID())
			// Hold every role of each side.
			var ps []*Producer
			var cs []*Consumer
			for {
				p, err := r.NewProducer()
				if errors.Is(err, ErrRoleTaken) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				ps = append(ps, p)
			}
			for {
				c, err := r.NewConsumer()
				if errors.Is(err, ErrRoleTaken) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				cs = append(cs, c)
			}
			if got := exitCode(t, ipctest.Command(t, "try-producer", env)); got != tryRoleTaken {
				t.Fatalf("child producer with every producer role held here: exit %d, want %d (ErrRoleTaken)", got, tryRoleTaken)
			}
			if got := exitCode(t, ipctest.Command(t, "try-consumer", env)); got != tryRoleTaken {
				t.Fatalf("child consumer with every consumer role held here: exit %d, want %d (ErrRoleTaken)", got, tryRoleTaken)
			}
			// Release one role of each side: the child gets it.
			if err := ps[0].Close(); err != nil {
				t.Fatal(err)
			}
			if got := exitCode(t, ipctest.Command(t, "try-producer", env)); got != tryRoleGot {
				t.Fatalf("child producer with a role free: exit %d", got)
			}
			expect(t, cs[0], 42, []byte("from the child"))
			if err := cs[0].Close(); err != nil {
				t.Fatal(err)
			}
			sender := ps[len(ps)-1]
			if len(ps) == 1 {
				var err error
				if sender, err = r.NewProducer(); err != nil {
					t.Fatal(err)
				}
			}
			if err := sender.TrySend(43, []byte("from the parent")); err != nil {
				t.Fatal(err)
			}
			if got := exitCode(t, ipctest.Command(t, "try-consumer", env)); got != tryRoleGot {
				t.Fatalf("child consumer with a role free: exit %d", got)
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
