package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelp checks that -h exits cleanly and says what each mode promises.
func TestHelp(t *testing.T) {
	var out strings.Builder
	if code := run([]string{"-h"}, &out); code != 0 {
		t.Fatalf("-h exited %d", code)
	}
	for _, want := range []string{"AT MOST ONCE", "duplicate", "2m", "Redelivered", "Examples:", "-forward-bridged", "/healthz"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("-h does not say %q", want)
		}
	}
}

// TestUsageErrors checks that a configuration that cannot work is refused
// before anything is opened, with status 2.
func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	misspelt := filepath.Join(dir, "bridge.json")
	os.WriteFile(misspelt, []byte(`{"out": {"rign": "0x5eed"}}`), 0o600)
	for _, args := range [][]string{
		{},                                     // no direction
		{"-out-ring", "nowhere"},               // not a ring address
		{"-in-ring", "0x1", "-in-batch", "-1"}, // impossible size
		{"-config", misspelt},                  // unknown field
		{"-config", filepath.Join(dir, "missing.json")},
		{"-ring-wait", "sometimes", "-out-ring", "0x1"},
		{"-out-ring", "0x1", "extra"},
	} {
		var out strings.Builder
		if code := run(args, &out); code != 2 {
			t.Errorf("ringbridge %q exited %d, want 2 (%s)", args, code, out.String())
		}
	}
}
