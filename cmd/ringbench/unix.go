package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// setupUnix makes the socket pair of a run: SOCK_SEQPACKET, so that one
// send is one message and one receive takes it whole, in both directions.
// The sockets keep the kernel's default buffer sizes.
func setupUnix(cfg *config, c benchCase) (*runPlan, error) {
	plan := &runPlan{}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return plan, os.NewSyscallError("socketpair", err)
	}
	a, b := os.NewFile(uintptr(fds[0]), "unix-a"), os.NewFile(uintptr(fds[1]), "unix-b")
	spec := childSpec{Transport: "unix", Size: c.size, Producers: 1, Consumers: 1}
	first, second := spec, spec
	if c.mode == modeThroughput {
		first.Role, second.Role = roleSend, roleRecv
	} else {
		first.Role, second.Role = rolePing, rolePong
	}
	plan.children = append(plan.children,
		childPlan{spec: first, files: []*os.File{a}},
		childPlan{spec: second, files: []*os.File{b}})
	pinChildren(cfg, plan.children)
	return plan, nil
}

// unixChild runs one side of a unix socket run.
func unixChild(s *childSpec, ses *session) (*childReport, error) {
	return fdChild(s, ses, fdConn{packet: true})
}
