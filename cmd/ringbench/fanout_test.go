package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// TestFanout runs -subscribers with each policy, with messages that fit a
// slot and with messages spanning slots (-slot): a result per case, every
// subscriber of the fan-out ring delivered messages, and under Overwrite
// the case with no subscriber too.
func TestFanout(t *testing.T) {
	for _, tc := range []struct {
		policy string
		slot   int // -slot: messages of 1 KiB spanning slots of 256 bytes
	}{{"block", 0}, {"overwrite", 0}, {"block", 256}, {"overwrite", 256}} {
		policy := tc.policy
		t.Run(fmt.Sprintf("policy=%s/slot=%d", policy, tc.slot), func(t *testing.T) {
			args := []string{"-subscribers", "2", "-policy", policy, "-json", "-count", "1", "-duration", "100ms", "-warmup", "20ms", "-slots", "256"}
			if tc.slot > 0 {
				args = append(args, "-sizes", "1024", "-slot", strconv.Itoa(tc.slot))
			}
			cmd := command(t, args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%v: %s", err, stderr.String())
			}
			var cases []string
			for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
				var r fanResult
				if err := json.Unmarshal([]byte(line), &r); err != nil {
					t.Fatalf("%q: %v", line, err)
				}
				cases = append(cases, r.Case)
				if wantSlot := tc.slot; r.Case != fanMsgq && r.SlotSize != wantSlot || r.Case == fanMsgq && r.SlotSize != 0 {
					t.Errorf("%+v: slot size %d, want %d (0 for msgq)", r, r.SlotSize, tc.slot)
				}
				if r.Case == fanNoneAlone {
					if r.ProducerRate <= 0 {
						t.Errorf("%+v: no messages sent", r)
					}
					continue
				}
				if len(r.SubRates) != r.Subscribers || r.Delivered <= 0 || r.CPUPerMsgNs <= 0 {
					t.Errorf("%+v: missing numbers", r)
				}
			}
			want := 4 // 1:1, fan-out, separate rings, msgq
			if policy == "overwrite" {
				want = 5 // and the fan-out ring alone
			}
			if len(cases) != want {
				t.Errorf("cases %v", cases)
			}
		})
	}
	if _, err := parseFlags([]string{"-subscribers", "2", "-policy", "sometimes"}, &bytes.Buffer{}); err == nil {
		t.Error("-policy sometimes: no error")
	}
}
