package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestFanout runs -subscribers with each policy: a result per case, every
// subscriber of the fan-out ring delivered messages, and under Overwrite
// the case with no subscriber too.
func TestFanout(t *testing.T) {
	for _, policy := range []string{"block", "overwrite"} {
		t.Run("policy="+policy, func(t *testing.T) {
			cmd := command(t, "-subscribers", "2", "-policy", policy, "-json", "-count", "1", "-duration", "100ms", "-warmup", "20ms", "-slots", "256")
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
			want := 3
			if policy == "overwrite" {
				want = 4
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
