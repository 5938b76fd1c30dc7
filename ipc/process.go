package ipc

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// Process names one process for the life of the system: a pid alone can be
// reused once its process has exited, a pid with its start time cannot,
// since a later process with the same pid starts later.
type Process struct {
	PID   int
	Start uint64 // start time in clock ticks after boot (field 22 of /proc/PID/stat)
}

// Self returns the calling process.
func Self() (Process, error) {
	return FindProcess(os.Getpid())
}

// FindProcess returns the running process with the given pid, reading its
// start time from /proc. It fails with an error matching fs.ErrNotExist if
// no process has that pid.
func FindProcess(pid int) (Process, error) {
	start, err := processStart(pid)
	if err != nil {
		return Process{}, err
	}
	return Process{PID: pid, Start: start}, nil
}

// Alive reports whether p still runs: a process with p's pid exists and
// started at p's start time. A zero Process is never alive.
func (p Process) Alive() bool {
	if p.PID <= 0 {
		return false
	}
	start, err := processStart(p.PID)
	return err == nil && start == p.Start
}

// processStart returns field 22 of /proc/pid/stat.
func processStart(pid int) (uint64, error) {
	if pid <= 0 {
		return 0, fmt.Errorf("ipc: process %d: %w", pid, os.ErrNotExist)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("ipc: process %d: %w", pid, err)
	}
	return parseStart(b)
}

// parseStart finds the start time in the text of a /proc/PID/stat file.
// The command name, field 2, is in parentheses and may itself hold spaces
// and parentheses, so the fields are counted from the last ')'.
func parseStart(b []byte) (uint64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("ipc: malformed stat line %q", b)
	}
	fields := bytes.Fields(b[i+1:])
	// fields[0] is field 3 (state); the start time is field 22.
	if len(fields) < 20 {
		return 0, fmt.Errorf("ipc: stat line has %d fields after the command, want at least 20", len(fields))
	}
	return strconv.ParseUint(string(fields[19]), 10, 64)
}
