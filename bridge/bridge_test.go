package bridge

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/shmring/shmring/internal/ipctest"
	"github.com/shmring/shmring/ipc"
	"github.com/shmring/shmring/ring"
)

func TestMain(m *testing.M) { ipctest.Main(m, nil) }

// runServer runs a NATS server with JetStream in this process for the test.
func runServer(t *testing.T) string {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(ipctest.Deadline) {
		t.Fatal("NATS server not ready")
	}
	t.Cleanup(s.Shutdown)
	return s.ClientURL()
}

// newRing creates a private ring for the test and removes it afterwards.
func newRing(t *testing.T) *ring.Ring {
	t.Helper()
	r, err := ring.Create(ipc.Private, &ring.Options{Mode: ring.MPMC, Slots: 64, MaxMessage: 256})
	if err != nil {
		t.Fatal(err)
	}
	ipctest.Track(t, ipctest.Shm, r.SegmentID())
	ipctest.Track(t, ipctest.Sem, r.SemaphoreID())
	t.Cleanup(func() {
		if err := r.Remove(); err != nil {
			t.Errorf("remove ring: %v", err)
		}
	})
	return r
}

func connect(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// runDirection runs one direction on a goroutine until the test ends.
func runDirection(t *testing.T, run func(context.Context, time.Duration) error, closer io.Closer) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		closer.Close()
	})
}

func TestParseRingAddr(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want RingAddr
	}{
		{"0x00005eed", RingAddr{Key: 0x5eed}},
		{"0xffffffff", RingAddr{Key: -1}},
		{"key:24301", RingAddr{Key: 24301}},
		{"id:6127659", RingAddr{SegmentID: 6127659, ByID: true}},
	} {
		got, err := ParseRingAddr(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseRingAddr(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "5eed", "0xzz", "id:-1", "id:x", "key:"} {
		if _, err := ParseRingAddr(bad); err == nil {
			t.Errorf("ParseRingAddr(%q) succeeded", bad)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(`{"url": "nats://h:4222", "grace": "3s",
		"out": {"ring": "0x5eed", "jetstream": true, "duplicates": "10m"},
		"in": {"ring": "id:7", "subject": "a.>"}}`), 0o600)
	c, err := LoadConfig(good)
	if err != nil {
		t.Fatal(err)
	}
	full := c.WithDefaults()
	if err := full.Validate(); err != nil {
		t.Fatal(err)
	}
	if full.URL != "nats://h:4222" || time.Duration(full.Grace) != 3*time.Second ||
		time.Duration(full.Out.Duplicates) != 10*time.Minute || full.Out.Prefix != DefaultPrefix ||
		full.In.Batch != DefaultInBatch || full.In.Durable == "" {
		t.Errorf("config read as %+v, out %+v, in %+v", full, *full.Out, *full.In)
	}

	misspelt := filepath.Join(dir, "misspelt.json")
	os.WriteFile(misspelt, []byte(`{"out": {"rign": "0x5eed"}}`), 0o600)
	if _, err := LoadConfig(misspelt); !errors.Is(err, ErrConfig) {
		t.Errorf("unknown field: %v, want ErrConfig", err)
	}
	for _, bad := range []Config{
		{},
		{Out: &OutboundConfig{Ring: "nowhere"}},
		{Out: &OutboundConfig{Ring: "0x1", Prefix: "a.*"}},
		{In: &InboundConfig{Ring: "0x1"}},
		{In: &InboundConfig{Ring: "0x1", Subject: "a.>", DefaultType: -1}},
	} {
		full := bad.WithDefaults()
		if err := full.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("Validate(%+v) = %v, want ErrConfig", bad, err)
		}
	}
}

func TestMessageType(t *testing.T) {
	for _, tc := range []struct {
		subject, header string
		def, want       int64
	}{
		{"a.b.12", "", 0, 12},
		{"12", "", 0, 12},
		{"a.b.12", "7", 0, 7},
		{"a.b.x", "", 0, 0},
		{"a.b.x", "", 3, 3},
		{"a.b.0", "", 0, 0},
		{"a.b.-4", "bad", 0, 0},
	} {
		m := &nats.Msg{Subject: tc.subject, Header: nats.Header{}}
		if tc.header != "" {
			m.Header.Set(HeaderType, tc.header)
		}
		if got := messageType(m, tc.def); got != tc.want {
			t.Errorf("type of %q (header %q, default %d) = %d, want %d", tc.subject, tc.header, tc.def, got, tc.want)
		}
	}
}

func TestOriginTag(t *testing.T) {
	id := uuid.New()
	again, err := uuid.Parse(id.String())
	if err != nil {
		t.Fatal(err)
	}
	if OriginTag(id) == 0 || OriginTag(id) != OriginTag(again) || OriginTag(uuid.UUID{}) == 0 {
		t.Error("OriginTag must be nonzero and depend only on the UUID")
	}
	if OriginTag(id) == OriginTag(uuid.New()) {
		t.Error("two rings' tags collide")
	}
	if subjectOrigin("a.1") == 0 {
		t.Error("subjectOrigin is zero")
	}
}

// TestOrigins checks that the remembered ring gives each message its own
// ring's tag, as parsing every header would.
func TestOrigins(t *testing.T) {
	a, b := uuid.New(), uuid.New()
	var o origins
	for i, tc := range []struct {
		ring string
		want uint64
	}{
		{a.String(), OriginTag(a)}, {a.String(), OriginTag(a)}, {b.String(), OriginTag(b)},
		{"", subjectOrigin("x.1")}, {"not a uuid", subjectOrigin("x.1")}, {a.String(), OriginTag(a)},
	} {
		h := nats.Header{}
		if tc.ring != "" {
			h.Set(HeaderRing, tc.ring)
		}
		if got := o.of("x.1", h); got != tc.want {
			t.Errorf("message %d (ring %q): origin %x, want %x", i, tc.ring, got, tc.want)
		}
	}
}

// TestOutboundSkipsBridged checks the echo rule: messages that came from
// NATS (a nonzero Origin) are released unpublished unless ForwardBridged.
func TestOutboundSkipsBridged(t *testing.T) {
	url := runServer(t)
	for _, forward := range []bool{false, true} {
		t.Run("forward="+strconv.FormatBool(forward), func(t *testing.T) {
			r := newRing(t)
			nc := connect(t, url)
			sub, err := nc.SubscribeSync("echo.>")
			if err != nil {
				t.Fatal(err)
			}
			nc.Flush()
			m := &Metrics{}
			o, err := NewOutbound(context.Background(), nc, OutboundConfig{Ring: "id:" + strconv.Itoa(r.SegmentID()), Prefix: "echo", Batch: 8, ForwardBridged: forward}, ring.Waiting{}, m, nil)
			if err != nil {
				t.Fatal(err)
			}
			runDirection(t, o.Run, o)
			p, err := r.NewProducer()
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if _, err := p.SendBatch(context.Background(), []ring.Message{
				{Type: 3, Data: []byte("from NATS"), Origin: 99},
				{Type: 4, Data: []byte("local")},
			}); err != nil {
				t.Fatal(err)
			}
			var got []string
			for want := 1 + btoi(forward); len(got) < want; {
				msg, err := sub.NextMsg(ipctest.Deadline)
				if err != nil {
					t.Fatal(err)
				}
				if msg.Header.Get(HeaderRing) != r.Header().InstanceID.String() || msg.Header.Get(HeaderSeq) == "" {
					t.Errorf("headers %v", msg.Header)
				}
				got = append(got, msg.Subject+" "+string(msg.Data))
			}
			want := "echo.4 local"
			if forward {
				want = "echo.3 from NATS,echo.4 local"
			}
			if strings.Join(got, ",") != want {
				t.Errorf("published %q, want %q", got, want)
			}
			if m.OutSkipped.Load() != uint64(1-btoi(forward)) {
				t.Errorf("skipped %d", m.OutSkipped.Load())
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestInboundOrigin checks what Inbound sends into the ring: the type from
// the subject or the header, a nonzero Origin, and refusals counted.
func TestInboundOrigin(t *testing.T) {
	url := runServer(t)
	r := newRing(t)
	nc := connect(t, url)
	m := &Metrics{}
	in, err := NewInbound(context.Background(), nc, InboundConfig{Ring: "id:" + strconv.Itoa(r.SegmentID()), Subject: "in.>", Batch: 8, Pending: 64}, ring.Waiting{}, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	runDirection(t, in.Run, in)
	c, err := r.NewConsumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	src := uuid.New()
	pub := connect(t, url)
	// Probe until the subscription is in place: a message without a type
	// is refused, and counted.
	for m.InRefused.Load() == 0 {
		pub.Publish("in.probe", nil)
		pub.Flush()
		time.Sleep(10 * time.Millisecond)
	}
	bridged := nats.NewMsg("in.5")
	bridged.Header.Set(HeaderRing, src.String())
	bridged.Data = []byte("bridged")
	pub.PublishMsg(bridged)
	typed := nats.NewMsg("in.anything")
	typed.Header.Set(HeaderType, "9")
	typed.Header.Set(HeaderRedelivered, "1")
	typed.Data = []byte("typed")
	pub.PublishMsg(typed)
	pub.Flush()

	ctx, cancel := context.WithTimeout(context.Background(), ipctest.Deadline)
	defer cancel()
	batch := []ring.Message{{Data: make([]byte, 256)}, {Data: make([]byte, 256)}}
	for got := 0; got < 2; {
		n, err := c.ReceiveBatch(ctx, batch[got:])
		if err != nil {
			t.Fatal(err)
		}
		got += n
	}
	if b := batch[0]; b.Type != 5 || string(b.Data) != "bridged" || b.Origin != OriginTag(src) || b.Redelivered {
		t.Errorf("bridged message: %+v", b)
	}
	if b := batch[1]; b.Type != 9 || string(b.Data) != "typed" || b.Origin != subjectOrigin("in.anything") || !b.Redelivered {
		t.Errorf("typed message: %+v", b)
	}
}

func TestMetricsHandler(t *testing.T) {
	m := &Metrics{}
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 503 {
		t.Errorf("healthz while disconnected: %d", code)
	}
	m.Connected.Store(true)
	m.OutMessages.Add(3)
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("healthz while connected: %d", code)
	}
	if _, body := get("/metrics"); !strings.Contains(body, "ringbridge_out_messages_total 3\n") || !strings.Contains(body, "ringbridge_connected 1\n") {
		t.Errorf("metrics:\n%s", body)
	}
	if _, body := get("/metrics.json"); !strings.Contains(body, `"out_messages":3`) {
		t.Errorf("metrics.json: %s", body)
	}
}
