package ipc

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"testing"
)

func TestParseStart(t *testing.T) {
	for _, tc := range []struct {
		line string
		want uint64
		ok   bool
	}{
		{"1 (init) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 42 100 5", 42, true},
		// A command name with spaces and parentheses of its own.
		{"77 (a) b (c)) R 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 123456789 1 2", 123456789, true},
		{"77 (short) R 1 2 3", 0, false},
		{"no parenthesis at all", 0, false},
		{"5 (x) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 notanumber 1", 0, false},
	} {
		got, err := parseStart([]byte(tc.line))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseStart(%q) = %d, %v; want %d, ok %v", tc.line, got, err, tc.want, tc.ok)
		}
	}
}

func TestProcess(t *testing.T) {
	me, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	if me.PID != os.Getpid() || me.Start == 0 || !me.Alive() {
		t.Fatalf("Self() = %+v, alive %v", me, me.Alive())
	}
	if (Process{PID: me.PID, Start: me.Start + 1}).Alive() {
		t.Error("a process with a later start time than ours is taken for us")
	}
	if (Process{}).Alive() {
		t.Error("the zero Process is alive")
	}
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child, err := FindProcess(cmd.Process.Pid)
	if err != nil {
		// The child may have exited already; it is still a zombie until
		// Wait, so this should not happen.
		t.Fatal(err)
	}
	cmd.Wait()
	if child.Alive() {
		t.Error("a reaped child is alive")
	}
	if _, err := FindProcess(cmd.Process.Pid); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("FindProcess of a reaped child: %v, want fs.ErrNotExist", err)
	}
	if _, err := FindProcess(-1); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("FindProcess(-1): %v", err)
	}
}
