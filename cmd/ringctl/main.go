// Command ringctl shows and cleans up the shmring rings of a host.
//
//	ringctl ls [-a] [-json]                 every ring: key, ids, mode, depth, holders, state
//	ringctl stat [-json] KEY|ID...          everything a ring's header and Stats say
//	ringctl watch [-json] [KEY|ID...]       rates each second, like top
//	ringctl rm [-f] [-json] KEY|ID...       remove rings (segment and semaphore set)
//	ringctl gc [-y] [-f] [-older D] [-all-users] [-json] [KEY|ID...]
//	                                        find, and with -y remove, orphaned and broken rings
//
// KEY is a key as ipcs prints it, in hex with 0x (0x0000abcd), or in
// decimal after "key:" (key:43981); ID, a plain number, is a segment id
// (ipcs -m's shmid), and one after "sem:" a semaphore set's id (ipcs -s's
// semid: for a ring whose segment is gone). ls, stat and watch attach read-only and never write a
// ring, so any user who may read a ring can watch it.
//
// A ring's state is active (a live process holds a role), idle (no live
// holder, but a process has the segment attached read-write; read-only
// monitors such as watch do not count), orphaned (no live holder and
// nobody attached), broken (a segment without its semaphore set, a ring's
// set without its segment, or a ring whose creator died before it was
// made), creating (being made by a live process), other-version (a ring of
// another layout version: listed and removable, never read), or corrupt.
// With ls -a, segments that are not rings (not-a-ring) or that the caller
// may not read (no-access) are listed too.
//
// Exit status: 0 done, 1 an error, 2 bad usage, 3 nothing matched.
//
// With -json every command prints one JSON object per ring and line; the
// field names are those of the entry type (key, segment_id, semaphore_id,
// state, note, version, instance_id, mode, slots, slot_size, max_message,
// depth, producers, consumers, owner_uid, creator_uid, perm, attached,
// creator_pid, created, age_seconds; a fan-out ring adds fanout_policy and
// subscribers, each with line, name_hash, pid, alive, closed, position,
// lag, received, lost and evicted; stat adds stats, watch the rates).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
)

// Exit statuses.
const (
	exitOK        = 0
	exitError     = 1
	exitUsage     = 2
	exitNoMatches = 3
)

const usage = `usage: ringctl COMMAND [flags] [KEY|ID...]

Shows and cleans up the shmring rings of this host.

Commands:
  ls      list every ring: key, segment and semaphore ids, mode, slots,
          depth, holders (pid, alive or dead), owner, age and state
            ringctl ls            ringctl ls -a -json
  stat    a ring in full: header, counters, every role line
            ringctl stat 0x0000abcd
  watch   msgs/s and MB/s in and out, depth, sleeps and wake-ups per second,
          refreshed every -interval (default 1s); all rings if none named
            ringctl watch         ringctl watch -json -count 5 163840
  rm      remove rings, after checking that each is one; -f even with live
          holders
            ringctl rm 0x0000abcd 163841
  gc      list orphaned and broken rings (only those named, if any); -y
          removes them. Never touches a ring with a live holder, keeps rings
          that hold messages unless -f, -older D keeps those younger than D,
          and only the caller's own rings unless -all-users
            ringctl gc            ringctl gc -y -older 1h    ringctl gc -y sem:98307

KEY is a key in hex as ipcs prints it (0x0000abcd), or in decimal after
"key:" (key:43981); a plain number is a segment id (ipcs -m's shmid),
"sem:N" a semaphore set's id (ipcs -s's semid).
States: active, idle, orphaned, broken, creating, other-version, corrupt (ls -a:
also not-a-ring, no-access). Every command takes -json: one object a line.
Exit status: 0 done, 1 error, 2 usage, 3 nothing matched.
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run is ringctl with its arguments; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "ringctl: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
	fs := flag.NewFlagSet("ringctl "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{out: stdout, errs: stderr}
	fs.BoolVar(&o.json, "json", false, "print one JSON object per ring and line")
	cmd.flags(fs, o)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: ringctl %s\n\n%s\n", cmd.synopsis, cmd.help)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if err == flag.ErrHelp {
			return exitOK
		}
		return exitUsage
	}
	if !cmd.takesTargets && fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ringctl %s takes no KEY or ID\n", args[0])
		return exitUsage
	}
	if o.count < 0 {
		fmt.Fprintf(stderr, "ringctl %s: -count must not be negative\n", args[0])
		return exitUsage
	}
	for _, a := range fs.Args() {
		t, err := parseTarget(a)
		if err != nil {
			fmt.Fprintf(stderr, "ringctl %s: %v\n", args[0], err)
			return exitUsage
		}
		o.targets = append(o.targets, t)
	}
	if cmd.needTargets && len(o.targets) == 0 {
		fmt.Fprintf(stderr, "ringctl %s: name at least one KEY or ID\n", args[0])
		return exitUsage
	}
	return cmd.run(o)
}

// options are what every command may use.
type options struct {
	out, errs io.Writer
	json      bool
	targets   []target

	all, force, yes, allUsers bool
	older                     durationFlag
	interval                  durationFlag
	count                     int
}

// command is one of ringctl's commands.
type command struct {
	synopsis, help string
	needTargets    bool
	takesTargets   bool
	flags          func(fs *flag.FlagSet, o *options)
	run            func(o *options) int
}

var commands map[string]*command

func init() {
	commands = map[string]*command{
		"ls": {synopsis: "ls [-a] [-json]", help: "Lists every ring of the host.",
			flags: func(fs *flag.FlagSet, o *options) {
				fs.BoolVar(&o.all, "a", false, "also list segments that are not rings, or that cannot be read")
			}, run: runList},
		"stat": {synopsis: "stat [-json] KEY|ID...", help: "Shows a ring in full: header, counters, role lines.",
			needTargets: true, takesTargets: true, flags: func(*flag.FlagSet, *options) {}, run: runStat},
		"watch": {synopsis: "watch [-json] [-interval D] [-count N] [KEY|ID...]",
			help:         "Shows rates every interval: msgs/s and MB/s in and out, depth, sleeps and wake-ups per second.",
			takesTargets: true, flags: func(fs *flag.FlagSet, o *options) {
				o.interval.d = defaultInterval
				fs.Var(&o.interval, "interval", "time between samples")
				fs.IntVar(&o.count, "count", 0, "stop after this many intervals (0: until interrupted)")
			}, run: runWatch},
		"rm": {synopsis: "rm [-f] [-json] KEY|ID...", help: "Removes rings: segment and semaphore set, after checking that each is one.",
			needTargets: true, takesTargets: true, flags: func(fs *flag.FlagSet, o *options) {
				fs.BoolVar(&o.force, "f", false, "remove a ring even if a live process holds a role")
			}, run: runRemove},
		"gc": {synopsis: "gc [-y] [-f] [-older D] [-all-users] [-json] [KEY|ID...]",
			help:         "Lists orphaned and broken rings (of those named, if any), and with -y removes them.",
			takesTargets: true,
			flags: func(fs *flag.FlagSet, o *options) {
				fs.BoolVar(&o.yes, "y", false, "remove what is listed")
				fs.BoolVar(&o.force, "f", false, "also rings that still hold messages")
				fs.Var(&o.older, "older", "only rings older than this (e.g. 1h)")
				fs.BoolVar(&o.allUsers, "all-users", false, "also other users' rings (needs the right to remove them: root)")
			}, run: runGC},
	}
}
